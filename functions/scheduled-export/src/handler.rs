//! One scheduler tick: find the export connectors that are due.
//!
//! Claiming a due connector (conditional write per schedule slot) and running the export are
//! the export capability's work (docs/architecture.md, "The flow"); until then the
//! tick only reports what is due, and changes nothing, so no schedule slot is consumed without an export.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use chrono::Utc;
use serde::Serialize;
use shared::domain::connector::due_shards;
use shared::error::StoreError;
use shared::ports::ConnectorStore;

/// Upper bound of connectors looked at per shard and tick; the rest wait for the next tick.
const DUE_PER_SHARD: u32 = 100;

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct TickReport {
    pub tick_at: String,
    pub due: Vec<DueConnector>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct DueConnector {
    pub tenant_id: String,
    pub connector_id: String,
}

pub async fn tick<S: ConnectorStore>(
    store: &S,
    event: EventBridgeEvent,
) -> Result<TickReport, StoreError> {
    // The event's own time keeps a delayed or retried tick on the slot it was fired for.
    let tick_at = event.time.unwrap_or_else(Utc::now);
    let mut due = Vec::new();
    for shard in due_shards() {
        for (tenant_id, connector_id) in store
            .due(&shard, tick_at.timestamp(), DUE_PER_SHARD)
            .await?
        {
            tracing::info_span!("connector", %tenant_id, %connector_id)
                .in_scope(|| tracing::info!(shard = %shard, "export connector due"));
            due.push(DueConnector {
                tenant_id,
                connector_id,
            });
        }
    }
    tracing::info!(tick_at = %tick_at, due = due.len(), "export tick");
    Ok(TickReport {
        tick_at: tick_at.to_rfc3339(),
        due,
    })
}
