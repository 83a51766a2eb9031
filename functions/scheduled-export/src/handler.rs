//! The export function's two events: the EventBridge tick (claim due connectors' slots and
//! enqueue their runs) and the export queue's messages (carry out a run, or one of its file
//! tasks, each; docs/architecture.md, "Schedules" and "Export").

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use chrono::Utc;
use serde_json::Value;
use shared::domain::export::run::RunMessage;
use shared::error::StoreError;
use shared::export::engine::{Delivery, ExecuteRun};
use shared::ports::{ConnectorStore, RunClaims, RunQueue, RunStore};
use shared::scheduler::Scheduler;

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("the event is neither an SQS batch nor an EventBridge event: {0}")]
    UnknownEvent(serde_json::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Dispatches on the event's shape: SQS batches carry `Records`.
pub async fn handle<C, R, Q, E>(
    scheduler: &Scheduler<C, R, Q>,
    engine: &E,
    event: Value,
    deadline: Option<std::time::Instant>,
) -> Result<Value, HandlerError>
where
    C: ConnectorStore,
    R: RunStore + RunClaims,
    Q: RunQueue,
    E: ExecuteRun,
{
    if event.get("Records").is_some() {
        let batch: SqsEvent = serde_json::from_value(event).map_err(HandlerError::UnknownEvent)?;
        let response = runs(engine, batch, deadline).await;
        Ok(serde_json::to_value(response).expect("a batch response serialises"))
    } else {
        let tick_event: EventBridgeEvent =
            serde_json::from_value(event).map_err(HandlerError::UnknownEvent)?;
        // The event's own time keeps a delayed or retried tick on the slots it was fired for.
        let tick_at = tick_event.time.unwrap_or_else(Utc::now);
        let report = scheduler.tick(tick_at).await?;
        Ok(serde_json::to_value(report).expect("a tick report serialises"))
    }
}

/// One run per message. A message that fails on our side (or does not parse) is reported as a
/// batch item failure: SQS delivers it again, and after the queue's maxReceiveCount it goes to
/// the dead-letter queue, where an operator sees it (and the run records why, on that last
/// delivery). A run that failed for a reason the customer must fix is finished, not retried.
/// `deadline` is the invocation's: a file task near it checkpoints and continues in a new
/// message.
pub async fn runs<E: ExecuteRun>(
    engine: &E,
    batch: SqsEvent,
    deadline: Option<std::time::Instant>,
) -> SqsBatchResponse {
    let mut failures = Vec::new();
    for record in batch.records {
        let id = record.message_id.clone().unwrap_or_default();
        let message: RunMessage = match record.body.as_deref().map(serde_json::from_str).transpose()
        {
            Ok(Some(message)) => message,
            Ok(None) | Err(_) => {
                tracing::error!(message_id = %id, "export queue message is not a run message");
                failures.push(id);
                continue;
            }
        };
        let delivery = Delivery {
            deadline,
            receive_count: record
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|n| n.parse().ok())
                .unwrap_or(1),
        };
        let span = tracing::info_span!(
            "run",
            tenant_id = %message.tenant_id,
            connector_id = %message.connector_id,
            run_id = %message.run_id,
            task = ?message.task,
        );
        let _entered = span.enter();
        if let Err(e) = engine.execute_run(&message, &delivery).await {
            tracing::warn!(error = %e, "run interrupted; the message will be delivered again");
            failures.push(id);
        }
    }
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures
        .into_iter()
        .map(|item_identifier| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = item_identifier;
            failure
        })
        .collect();
    response
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use serde_json::json;
    use shared::domain::export::run::Run;
    use shared::error::AwsCallError;
    use shared::export::engine::EngineError;

    use super::*;

    /// Records the runs asked for; fails those whose run id starts with `retry`.
    #[derive(Default)]
    struct FakeEngine {
        asked: Mutex<Vec<(RunMessage, u32)>>,
    }

    impl ExecuteRun for FakeEngine {
        async fn execute_run(
            &self,
            message: &RunMessage,
            delivery: &Delivery,
        ) -> Result<Option<Run>, EngineError> {
            self.asked
                .lock()
                .unwrap()
                .push((message.clone(), delivery.receive_count));
            if message.run_id.starts_with("retry") {
                return Err(EngineError::Retry(AwsCallError {
                    service: "dynamodb",
                    operation: "PutItem",
                    code: Some("ThrottlingException".into()),
                    message: "slow down".into(),
                    http_status: Some(400),
                    retryable: true,
                }));
            }
            Ok(None)
        }
    }

    fn record(id: &str, body: &str) -> Value {
        json!({"messageId": id, "receiptHandle": "h", "body": body, "attributes": {"ApproximateReceiveCount": "2"}, "messageAttributes": {},
               "md5OfBody": "", "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:export", "awsRegion": "us-east-1"})
    }

    fn message(run_id: &str) -> String {
        json!({"tenant_id": "acme", "connector_id": "con_1", "run_id": run_id}).to_string()
    }

    #[tokio::test]
    async fn only_the_messages_to_retry_are_reported_as_failures() {
        let engine = FakeEngine::default();
        let batch: SqsEvent = serde_json::from_value(json!({"Records": [
            record("m1", &message("run_a")),
            record("m2", &message("retry_b")),
            record("m3", "not json"),
            record("m4", &message("run_c")),
        ]}))
        .unwrap();
        let response = runs(&engine, batch, None).await;
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, vec!["m2", "m3"]);
        let asked: Vec<String> = engine
            .asked
            .lock()
            .unwrap()
            .iter()
            .map(|(m, count)| format!("{}/{count}", m.run_id))
            .collect();
        assert_eq!(
            asked,
            vec!["run_a/2", "retry_b/2", "run_c/2"],
            "a bad message does not stop the batch; each carries its receive count"
        );
    }

    #[test]
    fn sample_events_are_told_apart_by_shape() {
        for (file, is_batch) in [
            ("tick.json", false),
            ("warmup.json", false),
            ("sqs-run-message.json", true),
            ("sqs-run-message-last-attempt.json", true),
        ] {
            let path = format!(
                "{}/../../events/scheduled-export/{file}",
                env!("CARGO_MANIFEST_DIR")
            );
            let event: Value =
                serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            assert_eq!(event.get("Records").is_some(), is_batch, "{file}");
            if is_batch {
                let batch: SqsEvent = serde_json::from_value(event).expect(file);
                let body = batch.records[0].body.as_deref().unwrap();
                serde_json::from_str::<RunMessage>(body).expect(file);
            } else {
                serde_json::from_value::<EventBridgeEvent>(event).expect(file);
            }
        }
    }
}
