//! The schedule's tick (docs/architecture.md, "Schedules"): find the connectors due through
//! the `by-due` index, claim each one's slot (one run per slot, however many ticks ask), enqueue
//! the run and move the connector's next run past the tick.
//!
//! The claim writes the run and its markers in one transaction; the enqueue and the move of the
//! next run follow it. A tick that dies between them leaves the connector due, so the next tick
//! finds the slot taken, enqueues that run again if it is still queued (a start delivered twice
//! is harmless), and moves the next run then: nothing is lost and no second run starts.

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;

use crate::domain::connector::{Connector, ConnectorStatus, Direction, Parsed, due_shards};
use crate::domain::export::run::{Run, RunMessage, RunStatus, RunTrigger};
use crate::error::StoreError;
use crate::ports::{ClaimOutcome, ConnectorStore, RunClaims, RunQueue, RunStore};
use crate::run_id::new_run_id;

#[derive(Debug, Clone, Copy)]
pub struct TickSettings {
    /// Unfinished runs a tenant may have (the claim's seats).
    pub tenant_run_cap: u32,
    /// Connectors taken per `by-due` shard and tick; the rest wait for the next tick.
    pub per_shard: u32,
    /// Connectors claimed at once.
    pub concurrency: usize,
}

impl TickSettings {
    pub fn new(tenant_run_cap: u32) -> Self {
        Self {
            tenant_run_cap,
            per_shard: 250,
            concurrency: 16,
        }
    }
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct TickReport {
    pub tick_at: String,
    pub due: Vec<DueConnector>,
}

impl TickReport {
    pub fn started(&self) -> usize {
        self.due
            .iter()
            .filter(|d| matches!(d.outcome, TickOutcome::Started { .. }))
            .count()
    }
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct DueConnector {
    pub tenant_id: String,
    pub connector_id: String,
    #[serde(flatten)]
    pub outcome: TickOutcome,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum TickOutcome {
    /// A run was claimed for the slot and enqueued.
    Started {
        run_id: String,
        slot: DateTime<Utc>,
        missed_slots: u32,
    },
    /// The slot already has its run (a duplicate or overlapping tick, or one that died after
    /// its claim): re-enqueued when still queued; the connector's next run moved on.
    SlotAlreadyClaimed { run_id: String, requeued: bool },
    /// The connector's previous run is unfinished: it stays due, and its next tick after that
    /// run finishes starts one run for the latest slot.
    InFlight { run_id: String },
    /// The tenant has its cap of unfinished runs: it stays due for the next tick.
    TenantAtCap { cap: u32 },
    /// Not due after all (changed, paused or deleted since the index was read).
    NotDue,
    /// Our side failed; the connector stays due and the next tick tries again.
    Failed { error: String },
}

/// The tick's stores, built once per cold start.
pub struct Scheduler<C, R, Q> {
    pub connectors: C,
    pub runs: R,
    pub queue: Q,
    pub settings: TickSettings,
}

impl<C: ConnectorStore, R: RunStore + RunClaims, Q: RunQueue> Scheduler<C, R, Q> {
    pub async fn tick(&self, tick_at: DateTime<Utc>) -> Result<TickReport, StoreError> {
        tick(
            &self.connectors,
            &self.runs,
            &self.queue,
            tick_at,
            self.settings,
        )
        .await
    }
}

/// One tick at `tick_at` (the event's time, so a delayed or retried tick keeps its slots).
/// A failed `by-due` query fails the tick; a failure on one connector is reported and the rest
/// go on.
pub async fn tick<C, R, Q>(
    connectors: &C,
    runs: &R,
    queue: &Q,
    tick_at: DateTime<Utc>,
    settings: TickSettings,
) -> Result<TickReport, StoreError>
where
    C: ConnectorStore,
    R: RunStore + RunClaims,
    Q: RunQueue,
{
    let mut keys = Vec::new();
    for shard in due_shards() {
        keys.extend(
            connectors
                .due(&shard, tick_at.timestamp(), settings.per_shard)
                .await?,
        );
    }
    let due = futures::stream::iter(keys)
        .map(|(tenant_id, connector_id)| async move {
            let outcome = match start_due(
                connectors,
                runs,
                queue,
                &tenant_id,
                &connector_id,
                tick_at,
                settings,
            )
            .await
            {
                Ok(outcome) => outcome,
                Err(e) => TickOutcome::Failed {
                    error: e.to_string(),
                },
            };
            log(&tenant_id, &connector_id, &outcome);
            DueConnector {
                tenant_id,
                connector_id,
                outcome,
            }
        })
        .buffer_unordered(settings.concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
    let report = TickReport {
        tick_at: tick_at.to_rfc3339(),
        due,
    };
    tracing::info!(tick_at = %tick_at, due = report.due.len(), started = report.started(), "export tick");
    Ok(report)
}

fn log(tenant_id: &str, connector_id: &str, outcome: &TickOutcome) {
    let span = tracing::info_span!("connector", %tenant_id, %connector_id);
    let _entered = span.enter();
    match outcome {
        TickOutcome::Failed { error } => {
            tracing::error!(%error, "could not start a scheduled run; the next tick retries")
        }
        TickOutcome::TenantAtCap { cap } => {
            tracing::warn!(
                cap,
                "tenant at its cap of unfinished runs; the connector waits"
            )
        }
        other => tracing::info!(outcome = ?other, "scheduled run"),
    }
}

async fn start_due<C, R, Q>(
    connectors: &C,
    runs: &R,
    queue: &Q,
    tenant_id: &str,
    connector_id: &str,
    tick_at: DateTime<Utc>,
    settings: TickSettings,
) -> Result<TickOutcome, StoreError>
where
    C: ConnectorStore,
    R: RunStore + RunClaims,
    Q: RunQueue,
{
    // Read consistently: the index may lag a tick that already moved the next run.
    let Some(connector) = connectors.get(tenant_id, connector_id).await? else {
        return Ok(TickOutcome::NotDue);
    };
    let (Some(Parsed::Valid(schedule)), Some(next_run_at)) =
        (connector.schedule(), connector.next_run_at)
    else {
        return Ok(TickOutcome::NotDue);
    };
    if connector.direction() != Direction::Export || connector.status != ConnectorStatus::Active {
        return Ok(TickOutcome::NotDue);
    }
    let Some(due) = schedule.due_slot(next_run_at, tick_at) else {
        return Ok(TickOutcome::NotDue);
    };
    let mut run = Run::queued(
        tenant_id,
        connector_id,
        new_run_id(),
        RunTrigger::Schedule,
        Utc::now(),
    );
    run.slot = Some(due.slot);
    run.missed_slots = due.missed;
    let outcome = match runs.claim(&run, settings.tenant_run_cap).await? {
        ClaimOutcome::Claimed => {
            queue
                .enqueue(&RunMessage::start(&run))
                .await
                .map_err(StoreError::Aws)?;
            TickOutcome::Started {
                run_id: run.run_id,
                slot: due.slot,
                missed_slots: due.missed,
            }
        }
        ClaimOutcome::SlotTaken { run_id } => {
            let queued = runs
                .get(connector_id, &run_id)
                .await?
                .filter(|r| r.status == RunStatus::Queued);
            if let Some(queued) = &queued {
                queue
                    .enqueue(&RunMessage::start(queued))
                    .await
                    .map_err(StoreError::Aws)?;
            }
            TickOutcome::SlotAlreadyClaimed {
                run_id,
                requeued: queued.is_some(),
            }
        }
        ClaimOutcome::InFlight { run_id } => return Ok(TickOutcome::InFlight { run_id }),
        ClaimOutcome::TenantAtCap { cap } => return Ok(TickOutcome::TenantAtCap { cap }),
        ClaimOutcome::RunChanged => {
            return Err(StoreError::Corrupt(format!(
                "a new run id {} was already taken",
                run.run_id
            )));
        }
    };
    move_next_run(connectors, connector, due.next).await?;
    Ok(outcome)
}

/// Moves the connector's next run to `next` (the first slot after the tick). A connector edited
/// meanwhile keeps what the edit set (its write computed the next run anew).
async fn move_next_run<C: ConnectorStore>(
    connectors: &C,
    mut connector: Connector,
    next: Option<DateTime<Utc>>,
) -> Result<(), StoreError> {
    let expected = connector.version;
    connector.next_run_at = next;
    connector.version += 1;
    connector.updated_at = Utc::now();
    connector.refresh_due_index();
    match connectors.replace(&connector, expected, &[]).await {
        Ok(()) | Err(StoreError::VersionConflict { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests;
