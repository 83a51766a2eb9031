//! The ingest function's two events (docs/architecture.md, "Ingest"):
//! - an SQS batch of the ingest queue: each message is a notification (S3, SNS-wrapped or
//!   EventBridge) of one or more files, or a file the poll found, each handed to the ingest
//!   service. A message is
//!   acknowledged only when every file in it is decided (or is nothing to ingest); otherwise it
//!   is reported as a batch item failure, so SQS delivers it again and, after the queue's
//!   `maxReceiveCount`, moves it to the dead-letter queue. Nothing is dropped, and the ledger
//!   makes the redelivery of files already decided a no-op.
//! - the scheduled poll (EventBridge): every active ingest connector's source prefix is listed
//!   for files no notification brought, and those are sent to the ingest queue.

use std::time::Instant;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures::StreamExt;
use serde_json::Value;
use shared::domain::ingest::notification::{Notification, parse_message};
use shared::ingest::service::{FoundObject, Handled, IngestFiles};
use tracing::{Instrument, error, info, info_span, warn};

/// Messages of one batch handled at once: files of a batch load in parallel, each on its own
/// thread, within the function's memory.
const MESSAGES_IN_PARALLEL: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("the event is neither an SQS batch nor a scheduled event: {0}")]
    UnknownEvent(serde_json::Error),
    #[error("the poll of source prefixes failed: {0}")]
    Poll(String),
}

/// Dispatches on the event's shape: SQS batches carry `Records`, the poll is an EventBridge
/// scheduled event. `poll_until` is when the poll must stop starting files.
pub async fn handle<I: IngestFiles>(
    ingest: &I,
    event: Value,
    poll_until: Option<Instant>,
) -> Result<Value, HandlerError> {
    if event.get("Records").is_some() {
        let batch: SqsEvent = serde_json::from_value(event).map_err(HandlerError::UnknownEvent)?;
        let response = handle_batch(ingest, batch).await;
        Ok(serde_json::to_value(response).expect("a batch response serialises"))
    } else if event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event") {
        let report = ingest
            .poll_prefixes(poll_until)
            .await
            .map_err(|e| HandlerError::Poll(e.to_string()))?;
        info!(?report, "poll of source prefixes done");
        Ok(serde_json::to_value(report).expect("a poll report serialises"))
    } else {
        Err(HandlerError::UnknownEvent(serde::de::Error::custom(
            "no Records and not a Scheduled Event",
        )))
    }
}

/// Handles one SQS batch; the response lists the messages that must stay on the queue.
pub async fn handle_batch<I: IngestFiles>(ingest: &I, event: SqsEvent) -> SqsBatchResponse {
    let outcomes: Vec<(String, bool)> = futures::stream::iter(event.records.iter())
        .map(|message| {
            // SQS always sends a message id. Should one be missing, the empty identifier makes
            // Lambda treat the whole batch as failed: everything is retried, nothing lost.
            let message_id = message.message_id.clone().unwrap_or_default();
            let span = info_span!("message", message_id = %message_id);
            async move {
                let retry = !handle_message(ingest, &message_id, message).await;
                (message_id, retry)
            }
            .instrument(span)
        })
        .buffered(MESSAGES_IN_PARALLEL)
        .collect()
        .await;
    let mut response = SqsBatchResponse::default();
    for (message_id, retry) in outcomes {
        if retry {
            response.add_failure(message_id);
        }
    }
    response
}

/// Whether the message may be deleted from the queue.
async fn handle_message<I: IngestFiles>(
    ingest: &I,
    message_id: &str,
    message: &SqsMessage,
) -> bool {
    let body = message.body.as_deref().unwrap_or_default();
    let files: Vec<FoundObject> = match parse_message(body) {
        Ok(Notification::TestEvent) => {
            info!(message_id, "S3 test event acknowledged");
            return true;
        }
        Ok(Notification::Ignored { reason }) => {
            info!(message_id, %reason, "notification acknowledged: nothing to ingest");
            return true;
        }
        Ok(Notification::Objects(objects)) => {
            objects.into_iter().map(FoundObject::notified).collect()
        }
        Ok(Notification::Polled(file)) => vec![FoundObject::polled(file)],
        Err(error) => {
            warn!(
                message_id,
                error = %error,
                "notification not understood: it stays on the queue and ends in the dead-letter queue"
            );
            return false;
        }
    };
    let mut all_done = true;
    for found in files {
        let span = info_span!("file", bucket = %found.bucket, key = %found.key);
        match ingest.ingest(&found).instrument(span).await {
            Ok(Handled::Finished(file)) => info!(
                message_id,
                bucket = %found.bucket,
                key = %found.key,
                object_id = %file.object_id,
                connector_id = %file.connector_id,
                status = file.status.as_str(),
                rows_loaded = file.rows_loaded,
                rows_rejected = file.rows_rejected,
                reason = file.error.as_ref().map(|e| e.reason.as_str()),
                "file decided"
            ),
            Ok(Handled::Ignored(reason)) => {
                info!(message_id, bucket = %found.bucket, key = %found.key, %reason, "not ingested")
            }
            Ok(other) => {
                info!(message_id, bucket = %found.bucket, key = %found.key, outcome = ?other, "nothing to do")
            }
            Err(e) => {
                error!(message_id, bucket = %found.bucket, key = %found.key, error = %e, "file not decided: the message is delivered again");
                all_done = false;
            }
        }
    }
    all_done
}

#[cfg(test)]
mod tests;
