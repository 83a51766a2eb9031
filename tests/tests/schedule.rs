//! The tick against the local stack: the real `by-due` index, the claim transaction in the
//! runs table and the export queue. Duplicate and concurrent ticks start one run per slot; a
//! tick after an outage starts one run for the latest slot and says how many it covers.
//!
//! The ticks run in this process through `shared::scheduler` with the DynamoDB and SQS
//! adapters, over a connector store that sees this test's tenant only: other test files'
//! connectors share the table and must not be started by a tick from the future.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use shared::adapters::runs::DynamoRunStore;
use shared::adapters::sqs::SqsRunQueue;
use shared::scheduler::{Scheduler, TickOutcome, TickReport, TickSettings};
use tests::{Api, OneTenant, Stack, unique_tenant};

fn scheduler(stack: &Stack, tenant: &str) -> Scheduler<OneTenant, DynamoRunStore, SqsRunQueue> {
    Scheduler {
        connectors: stack.one_tenant(tenant),
        runs: DynamoRunStore::new(stack.dynamodb(), stack.env.get("RUNS_TABLE")),
        queue: SqsRunQueue::new(
            aws_sdk_sqs::Client::new(&stack.sdk),
            stack.env.get("EXPORT_QUEUE_URL"),
        ),
        settings: TickSettings::new(5),
    }
}

/// An active hourly export connector; returns its id.
async fn hourly_export(stack: &Stack, api: &Api<'_>) -> String {
    let body = json!({
        "name": "hourly", "direction": "export", "prefix": "exports/", "schedule": "rate(1 hour)",
        "export": {"tables": [{"name": "orders"}]}
    });
    stack
        .customer()
        .active_connector(api, "tick", body)
        .await
        .id
}

async fn next_run_at(api: &Api<'_>, id: &str) -> DateTime<Utc> {
    let view = api.get(&format!("/connectors/{id}")).await.body;
    view["next_run_at"]
        .as_str()
        .unwrap_or_else(|| panic!("an active export has a next run: {view}"))
        .parse()
        .unwrap()
}

fn outcomes(reports: &[TickReport], id: &str) -> Vec<TickOutcome> {
    reports
        .iter()
        .flat_map(|r| &r.due)
        .filter(|d| d.connector_id == id)
        .map(|d| d.outcome.clone())
        .collect()
}

/// Waits until the run is finished (the local poller hands its message to the function).
async fn finished(api: &Api<'_>, id: &str, run_id: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let run = api
            .get(&format!("/connectors/{id}/runs/{run_id}"))
            .await
            .body;
        if run["status"] == "succeeded" || run["status"] == "failed" {
            return run;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the run did not finish: {run}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn duplicate_and_concurrent_ticks_start_one_run_per_slot_and_an_outage_one_run() {
    let stack = Stack::connect().await;
    let tenant = unique_tenant("tick");
    let api = stack.api(&tenant);
    let id = hourly_export(&stack, &api).await;
    let slot = next_run_at(&api, &id).await;
    let ticks = scheduler(&stack, &tenant);

    // Before its slot, nothing is due.
    let early = ticks
        .tick(slot - chrono::Duration::seconds(1))
        .await
        .unwrap();
    assert!(outcomes(&[early], &id).is_empty());

    // Six ticks of the slot's minute at once, then two late duplicates.
    let at = slot + chrono::Duration::seconds(20);
    let mut reports = futures_join(&ticks, &[at; 6]).await;
    reports.push(ticks.tick(at).await.unwrap());
    reports.push(ticks.tick(at + chrono::Duration::minutes(3)).await.unwrap());
    let seen = outcomes(&reports, &id);
    let started: Vec<&String> = seen
        .iter()
        .filter_map(|o| match o {
            TickOutcome::Started { run_id, .. } => Some(run_id),
            _ => None,
        })
        .collect();
    assert_eq!(started.len(), 1, "one run for the slot: {seen:?}");
    let run_id = started[0].clone();
    for outcome in &seen {
        match outcome {
            TickOutcome::Started {
                slot: got,
                missed_slots,
                ..
            } => assert_eq!((*got, *missed_slots), (slot, 0)),
            TickOutcome::SlotAlreadyClaimed { run_id: taken, .. }
            | TickOutcome::InFlight { run_id: taken } => assert_eq!(taken, &run_id),
            other => panic!("a duplicate tick did {other:?}"),
        }
    }
    assert_eq!(
        next_run_at(&api, &id).await,
        slot + chrono::Duration::hours(1)
    );

    let listed = api.get(&format!("/connectors/{id}/runs")).await.body;
    let runs = listed["items"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{listed}");
    assert_eq!(
        (&runs[0]["run_id"], &runs[0]["trigger"], &runs[0]["slot"]),
        (
            &json!(run_id),
            &json!("schedule"),
            &json!(slot.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        ),
        "{listed}"
    );
    let first = finished(&api, &id, &run_id).await;
    // A tick of that minute delivered again after the run finished starts nothing.
    let stale = ticks.tick(at).await.unwrap();
    assert!(outcomes(&[stale], &id).is_empty());

    // Five hours later (four slots passed unclaimed): one run, for the latest slot.
    let after_outage = slot + chrono::Duration::hours(5) + chrono::Duration::minutes(7);
    let reports = futures_join(&ticks, &[after_outage; 3]).await;
    let seen = outcomes(&reports, &id);
    let caught_up: Vec<_> = seen
        .iter()
        .filter_map(|o| match o {
            TickOutcome::Started {
                run_id,
                slot,
                missed_slots,
            } => Some((run_id.clone(), *slot, *missed_slots)),
            _ => None,
        })
        .collect();
    assert_eq!(caught_up.len(), 1, "{seen:?} (first run {first})");
    let (late_run, late_slot, missed) = caught_up[0].clone();
    assert_eq!((late_slot, missed), (slot + chrono::Duration::hours(5), 4));
    let run = api
        .get(&format!("/connectors/{id}/runs/{late_run}"))
        .await
        .body;
    assert_eq!(run["missed_slots"], 4, "{run}");
    assert_eq!(
        next_run_at(&api, &id).await,
        slot + chrono::Duration::hours(6)
    );
    finished(&api, &id, &late_run).await;
    let listed = api.get(&format!("/connectors/{id}/runs")).await.body;
    assert_eq!(listed["items"].as_array().unwrap().len(), 2, "{listed}");
}

/// Runs the ticks concurrently, as overlapping EventBridge deliveries would.
async fn futures_join(
    ticks: &Scheduler<OneTenant, DynamoRunStore, SqsRunQueue>,
    at: &[DateTime<Utc>],
) -> Vec<TickReport> {
    let handles = at.iter().map(|t| ticks.tick(*t));
    futures::future::join_all(handles)
        .await
        .into_iter()
        .map(|r| r.expect("the tick reads the by-due index"))
        .collect()
}
