//! The tick over the in-memory stores: one run per slot however the ticks come (repeated,
//! stale, late, dying half-way), missed slots collapsed into one run, a connector with a run in
//! flight left due, and the per-tenant cap.

use chrono::TimeZone;
use serde_json::json;

use super::*;
use crate::domain::connector::ConnectorStatus;
use crate::domain::testing::stored_connector;
use crate::fakes::MemoryConnectorStore;
use crate::fakes::queue::MemoryRunQueue;
use crate::fakes::runs::MemoryRunStore;

struct World {
    connectors: MemoryConnectorStore,
    runs: MemoryRunStore,
    queue: MemoryRunQueue,
    settings: TickSettings,
}

fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, h, m, 0).unwrap()
}

/// An active export connector every 15 minutes, next due at `next`.
fn connector(tenant: &str, id: &str, next: DateTime<Utc>) -> Connector {
    let mut c = stored_connector(json!({
        "name": "Nightly", "direction": "export", "bucket": "acme-exports", "region": "us-east-1",
        "auth": {"mode": "bucket_policy"}, "schedule": "rate(15 minutes)",
        "export": {"tables": [{"name": "sales"}]}
    }));
    c.tenant_id = tenant.into();
    c.connector_id = id.into();
    c.status = ConnectorStatus::Active;
    c.next_run_at = Some(next);
    c.refresh_due_index();
    c
}

fn world(connectors: Vec<Connector>) -> World {
    let store = MemoryConnectorStore::default();
    store.seed(|state| {
        for c in connectors {
            state
                .connectors
                .insert((c.tenant_id.clone(), c.connector_id.clone()), c);
        }
    });
    World {
        connectors: store,
        runs: MemoryRunStore::default(),
        queue: MemoryRunQueue::default(),
        settings: TickSettings::new(5),
    }
}

impl World {
    async fn tick(&self, at: DateTime<Utc>) -> TickReport {
        tick(&self.connectors, &self.runs, &self.queue, at, self.settings)
            .await
            .unwrap()
    }

    fn runs_of(&self, connector_id: &str) -> Vec<Run> {
        self.runs
            .state()
            .runs
            .into_values()
            .filter(|r| r.connector_id == connector_id)
            .collect()
    }

    fn next_run(&self, tenant: &str, id: &str) -> Option<DateTime<Utc>> {
        self.connectors.state().connectors[&(tenant.to_owned(), id.to_owned())].next_run_at
    }

    fn set_next_run(&self, tenant: &str, id: &str, next: DateTime<Utc>) {
        self.connectors.seed(|state| {
            let c = state
                .connectors
                .get_mut(&(tenant.to_owned(), id.to_owned()))
                .unwrap();
            c.next_run_at = Some(next);
            c.refresh_due_index();
        });
    }

    fn starts(&self) -> Vec<String> {
        self.queue
            .messages()
            .into_iter()
            .filter(|m| m.task.is_none())
            .map(|m| m.run_id)
            .collect()
    }
}

fn outcomes(report: &TickReport) -> Vec<(String, TickOutcome)> {
    let mut due: Vec<_> = report
        .due
        .iter()
        .map(|d| (d.connector_id.clone(), d.outcome.clone()))
        .collect();
    due.sort_by(|a, b| a.0.cmp(&b.0));
    due
}

#[tokio::test]
async fn a_due_connector_gets_one_run_for_its_slot_and_its_next_run_moves_on() {
    let w = world(vec![connector("acme", "con_a", at(10, 15))]);
    assert!(w.tick(at(10, 14)).await.due.is_empty(), "not due yet");
    let report = w.tick(at(10, 15)).await;
    let runs = w.runs_of("con_a");
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(
        outcomes(&report),
        [(
            "con_a".to_owned(),
            TickOutcome::Started {
                run_id: run.run_id.clone(),
                slot: at(10, 15),
                missed_slots: 0
            }
        )]
    );
    assert_eq!(
        (run.trigger, run.status, run.slot),
        (RunTrigger::Schedule, RunStatus::Queued, Some(at(10, 15)))
    );
    assert_eq!(w.starts(), std::slice::from_ref(&run.run_id));
    assert_eq!(w.next_run("acme", "con_a"), Some(at(10, 30)));
    // The same minute ticked again, and a minute later: nothing new.
    for again in [at(10, 15), at(10, 16)] {
        assert!(w.tick(again).await.due.is_empty());
    }
    assert_eq!(w.runs_of("con_a").len(), 1);
    assert_eq!(w.starts().len(), 1);
}

#[tokio::test]
async fn a_tick_that_read_the_connector_before_another_moved_it_finds_the_slot_taken() {
    let w = world(vec![connector("acme", "con_a", at(10, 15))]);
    w.tick(at(10, 15)).await;
    let first = w.runs_of("con_a").remove(0);
    // The second tick saw the connector before the first one's write landed.
    w.set_next_run("acme", "con_a", at(10, 15));
    let report = w.tick(at(10, 16)).await;
    assert_eq!(
        outcomes(&report),
        [(
            "con_a".to_owned(),
            TickOutcome::SlotAlreadyClaimed {
                run_id: first.run_id.clone(),
                requeued: true
            }
        )]
    );
    assert_eq!(
        w.runs_of("con_a"),
        std::slice::from_ref(&first),
        "still one run"
    );
    assert_eq!(w.next_run("acme", "con_a"), Some(at(10, 30)));
    // Once it runs, a stale tick no longer re-sends its start.
    w.runs.seed(|state| {
        for run in state.runs.values_mut() {
            run.status = RunStatus::Running;
        }
    });
    w.set_next_run("acme", "con_a", at(10, 15));
    let report = w.tick(at(10, 17)).await;
    assert!(matches!(
        report.due[0].outcome,
        TickOutcome::SlotAlreadyClaimed {
            requeued: false,
            ..
        }
    ));
    assert_eq!(w.starts(), [first.run_id.clone(), first.run_id]);
}

#[tokio::test]
async fn a_tick_that_died_after_its_claim_is_completed_by_the_next_one() {
    let w = world(vec![connector("acme", "con_a", at(10, 15))]);
    // The claim landed; the enqueue failed (as if the tick died there).
    w.queue.fail_next(MemoryRunQueue::throttled());
    let report = w.tick(at(10, 15)).await;
    assert!(
        matches!(&report.due[0].outcome, TickOutcome::Failed { error } if error.contains("RequestThrottled")),
        "{report:?}"
    );
    assert_eq!(w.next_run("acme", "con_a"), Some(at(10, 15)), "still due");
    assert!(w.starts().is_empty());
    let report = w.tick(at(10, 16)).await;
    let run = w.runs_of("con_a").remove(0);
    assert_eq!(
        report.due[0].outcome,
        TickOutcome::SlotAlreadyClaimed {
            run_id: run.run_id.clone(),
            requeued: true
        }
    );
    assert_eq!(w.starts(), [run.run_id]);
    assert_eq!(w.next_run("acme", "con_a"), Some(at(10, 30)));
    assert_eq!(w.runs_of("con_a").len(), 1);
}

#[tokio::test]
async fn slots_missed_while_down_run_once_and_the_run_says_how_many() {
    let w = world(vec![connector("acme", "con_a", at(8, 0))]);
    let report = w.tick(at(10, 20)).await;
    let run = w.runs_of("con_a").remove(0);
    assert_eq!(
        report.due[0].outcome,
        TickOutcome::Started {
            run_id: run.run_id.clone(),
            slot: at(10, 15),
            missed_slots: 9
        }
    );
    assert_eq!((run.slot, run.missed_slots), (Some(at(10, 15)), 9));
    assert_eq!(w.next_run("acme", "con_a"), Some(at(10, 30)));
}

#[tokio::test]
async fn a_connector_with_a_run_in_flight_waits_and_then_runs_once_for_the_latest_slot() {
    let w = world(vec![connector("acme", "con_a", at(10, 15))]);
    let manual = Run::queued("acme", "con_a", new_run_id(), RunTrigger::Api, Utc::now());
    assert_eq!(
        w.runs.claim(&manual, 5).await.unwrap(),
        ClaimOutcome::Claimed
    );
    for minute in [15, 30, 45] {
        let report = w.tick(at(10, minute)).await;
        assert_eq!(
            report.due[0].outcome,
            TickOutcome::InFlight {
                run_id: manual.run_id.clone()
            }
        );
    }
    assert_eq!(w.next_run("acme", "con_a"), Some(at(10, 15)), "stays due");
    w.runs.release(&manual).await.unwrap();
    let report = w.tick(at(10, 46)).await;
    assert!(
        matches!(
            report.due[0].outcome,
            TickOutcome::Started {
                slot,
                missed_slots: 2,
                ..
            } if slot == at(10, 45)
        ),
        "{report:?}"
    );
    assert_eq!(w.runs_of("con_a").len(), 2);
}

#[tokio::test]
async fn a_tenant_at_its_cap_waits_while_other_tenants_start() {
    let mut w = world(vec![
        connector("acme", "con_a1", at(10, 0)),
        connector("acme", "con_a2", at(10, 0)),
        connector("acme", "con_a3", at(10, 0)),
        connector("globex", "con_g1", at(10, 0)),
    ]);
    w.settings.tenant_run_cap = 2;
    let report = w.tick(at(10, 0)).await;
    let by_tenant = |tenant: &str| -> Vec<bool> {
        let mut started: Vec<bool> = report
            .due
            .iter()
            .filter(|d| d.tenant_id == tenant)
            .map(|d| matches!(d.outcome, TickOutcome::Started { .. }))
            .collect();
        started.sort();
        started
    };
    assert_eq!(by_tenant("acme"), [false, true, true]);
    assert_eq!(by_tenant("globex"), [true]);
    let waiting: Vec<_> = report
        .due
        .iter()
        .filter(|d| !matches!(d.outcome, TickOutcome::Started { .. }))
        .collect();
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].outcome, TickOutcome::TenantAtCap { cap: 2 });
    assert_eq!(
        w.next_run("acme", &waiting[0].connector_id),
        Some(at(10, 0)),
        "the one that waits stays due"
    );
    // One of acme's runs finishes: the waiting connector starts on the next tick.
    let finished = w
        .runs
        .state()
        .runs
        .into_values()
        .find(|r| r.tenant_id == "acme")
        .unwrap();
    w.runs.release(&finished).await.unwrap();
    let report = w.tick(at(10, 1)).await;
    assert_eq!(report.started(), 1);
    assert_eq!(report.due[0].connector_id, waiting[0].connector_id);
}

#[tokio::test]
async fn a_lapsed_marker_no_longer_blocks_the_connector() {
    let mut w = world(vec![connector("acme", "con_a", at(10, 15))]);
    let lost = Run::queued("acme", "con_a", new_run_id(), RunTrigger::Api, Utc::now());
    assert_eq!(w.runs.claim(&lost, 1).await.unwrap(), ClaimOutcome::Claimed);
    // Its lease ran out without the run finishing (its function died unrecorded).
    w.runs.seed(|state| {
        let lapsed = Utc::now().timestamp() - 1;
        state.claims.in_flight.get_mut("con_a").unwrap().expires_at = lapsed;
        for seat in state.claims.seats.values_mut().flat_map(|s| s.values_mut()) {
            seat.expires_at = lapsed;
        }
    });
    w.settings.tenant_run_cap = 1;
    let report = w.tick(at(10, 15)).await;
    assert!(
        matches!(report.due[0].outcome, TickOutcome::Started { .. }),
        "{report:?}"
    );
}

#[tokio::test]
async fn connectors_that_stopped_being_due_are_left_alone() {
    let paused = {
        let mut c = connector("acme", "con_p", at(10, 0));
        c.status = ConnectorStatus::NeedsAttention;
        // As a stale index entry would still show it.
        c.due_shard = Some(crate::domain::connector::due_shard_for("con_p"));
        c.due_at = Some(at(10, 0).timestamp());
        c
    };
    let w = world(vec![paused]);
    let report = w.tick(at(10, 0)).await;
    assert_eq!(
        outcomes(&report),
        [("con_p".to_owned(), TickOutcome::NotDue)]
    );
    assert!(w.runs.state().runs.is_empty());
}

#[test]
fn the_report_names_each_outcome() {
    let report = TickReport {
        tick_at: "2026-12-01T10:00:00+00:00".into(),
        due: vec![DueConnector {
            tenant_id: "acme".into(),
            connector_id: "con_a".into(),
            outcome: TickOutcome::TenantAtCap { cap: 2 },
        }],
    };
    assert_eq!(
        serde_json::to_value(&report).unwrap(),
        json!({"tick_at": "2026-12-01T10:00:00+00:00", "due": [
            {"tenant_id": "acme", "connector_id": "con_a", "outcome": "tenant_at_cap", "cap": 2}
        ]})
    );
}
