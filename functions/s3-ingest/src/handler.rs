//! SQS batch ⇄ notification intake. Each message is acknowledged only when nothing in it needs
//! ingesting; every other message is reported as a batch item failure, so SQS delivers it again
//! and, after the queue's `maxReceiveCount`, moves it to the dead-letter queue. Nothing is dropped.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use shared::domain::ingest::notification::{Notification, ledger_id, parse_message};
use tracing::{info, info_span, warn};

/// Whether a message may be deleted from the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Acknowledge,
    Retry,
}

/// Handles one SQS batch; the response lists the messages that must stay on the queue.
pub fn handle_batch(event: SqsEvent) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for message in &event.records {
        // SQS always sends a message id. Should one be missing, the empty identifier makes Lambda
        // treat the whole batch as failed: everything is retried rather than anything lost.
        let message_id = message.message_id.as_deref().unwrap_or_default();
        let _message = info_span!("message", message_id).entered();
        if handle_message(message_id, message) == Outcome::Retry {
            response.add_failure(message_id);
        }
    }
    response
}

fn handle_message(message_id: &str, message: &SqsMessage) -> Outcome {
    let body = message.body.as_deref().unwrap_or_default();
    match parse_message(body) {
        Ok(Notification::TestEvent) => {
            info!(message_id, "S3 test event acknowledged");
            Outcome::Acknowledge
        }
        Ok(Notification::Ignored { reason }) => {
            info!(message_id, %reason, "notification acknowledged: nothing to ingest");
            Outcome::Acknowledge
        }
        Ok(Notification::Objects(objects)) => {
            for object in &objects {
                // One span per file; ingest records the tenant and connector it finds for the
                // bucket (by-bucket index) when it lands.
                let _record = info_span!(
                    "record",
                    ledger_id = %ledger_id(object),
                    tenant_id = tracing::field::Empty,
                    connector_id = tracing::field::Empty,
                )
                .entered();
                info!(
                    message_id,
                    bucket = %object.bucket,
                    key = %object.key,
                    size = object.size,
                    event_name = object.event_name.as_deref(),
                    "object created"
                );
            }
            // Ingest (ledger, parsing, lake parts, moves) is not deployed yet. Acknowledging the
            // message would delete the only notice of these files and lose their ingest, so it
            // stays on the queue (and ends in the dead-letter queue, from which it can be redriven
            // once ingest is deployed).
            warn!(
                message_id,
                objects = objects.len(),
                "ingest is not deployed yet: the notification stays on the queue"
            );
            Outcome::Retry
        }
        Err(error) => {
            warn!(
                message_id,
                error = %error,
                "notification not understood: it stays on the queue and ends in the dead-letter queue"
            );
            Outcome::Retry
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::path::PathBuf;

    fn events_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events/s3-ingest")
    }

    fn event(file: &str) -> SqsEvent {
        let path = events_dir().join(file);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn failures(response: &SqsBatchResponse) -> Vec<&str> {
        response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect()
    }

    /// Every sample event, with the message ids that must be reported as failures (in order).
    const CASES: &[(&str, &[&str])] = &[
        ("sqs-s3-put.json", &["8c5f4a1e-3b6d-4e2a-9f1c-0d7e6b5a4c31"]),
        ("sqs-s3-test-event.json", &[]),
        (
            "sqs-sns-s3-put.json",
            &["0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"],
        ),
        (
            "sqs-moto-style.json",
            &["5d3c0e8a-1f2b-4c3d-8e4f-5a6b7c8d9e0f"],
        ),
        (
            "sqs-eventbridge-object-created.json",
            &["7e6d5c4b-3a29-4180-9f8e-7d6c5b4a3921"],
        ),
        (
            "sqs-mixed-batch.json",
            &[
                "2b3c4d5e-6f70-4812-93a4-b5c6d7e8f901",
                "3c4d5e6f-7081-4923-a4b5-c6d7e8f90a12",
            ],
        ),
        ("warmup.json", &[]),
    ];

    #[test]
    fn every_sample_event_reports_exactly_the_expected_failures() {
        for (file, want) in CASES {
            let response = handle_batch(event(file));
            assert_eq!(failures(&response), *want, "{file}");
        }
    }

    #[test]
    fn every_sample_event_has_a_case() {
        let on_disk: BTreeSet<String> = std::fs::read_dir(events_dir())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".json"))
            .collect();
        let cased: BTreeSet<String> = CASES.iter().map(|(f, _)| (*f).to_owned()).collect();
        assert_eq!(on_disk, cased);
    }

    /// The sample events parse into what their names say (so the failures above are for the
    /// right reasons).
    #[test]
    fn sample_events_parse_as_intended() {
        let bodies = |file: &str| -> Vec<Result<Notification, String>> {
            event(file)
                .records
                .iter()
                .map(|m| {
                    parse_message(m.body.as_deref().unwrap_or_default()).map_err(|e| e.to_string())
                })
                .collect()
        };
        let keys = |file: &str| -> Vec<String> {
            bodies(file)
                .into_iter()
                .flat_map(|n| match n {
                    Ok(Notification::Objects(objects)) => {
                        objects.into_iter().map(|o| o.key).collect::<Vec<_>>()
                    }
                    other => panic!("{file}: {other:?}"),
                })
                .collect()
        };
        assert_eq!(
            keys("sqs-s3-put.json"),
            vec!["incoming/données 2026/orders+returns 日本.csv"]
        );
        assert_eq!(keys("sqs-sns-s3-put.json"), vec!["incoming/orders 1.csv"]);
        assert_eq!(
            keys("sqs-moto-style.json"),
            vec!["incoming/orders/file 1.csv"]
        );
        assert_eq!(
            keys("sqs-eventbridge-object-created.json"),
            vec!["incoming/orders+returns 2026.csv"]
        );
        assert_eq!(
            bodies("sqs-s3-test-event.json"),
            vec![Ok(Notification::TestEvent)]
        );
        let mixed = bodies("sqs-mixed-batch.json");
        assert_eq!(mixed.len(), 3);
        assert_eq!(mixed[0], Ok(Notification::TestEvent));
        assert!(matches!(&mixed[1], Ok(Notification::Objects(o)) if o.len() == 1));
        assert!(mixed[2].as_ref().is_err_and(|e| e.contains("not JSON")));
    }

    #[test]
    fn a_message_without_an_id_fails_the_whole_batch() {
        let event: SqsEvent =
            serde_json::from_str(r#"{"Records":[{"body":"{\"hello\":1}"}]}"#).unwrap();
        assert_eq!(failures(&handle_batch(event)), vec![""]);
    }

    #[test]
    fn a_message_without_a_body_is_kept() {
        let event: SqsEvent = serde_json::from_str(r#"{"Records":[{"messageId":"m1"}]}"#).unwrap();
        assert_eq!(failures(&handle_batch(event)), vec!["m1"]);
    }

    #[test]
    fn ignored_notifications_are_acknowledged() {
        let body = serde_json::json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectRemoved:Delete", "s3": {"bucket": {"name": "b"}, "object": {"key": "k"}}}]}).to_string();
        let event: SqsEvent = serde_json::from_value(
            serde_json::json!({"Records": [{"messageId": "m1", "body": body}]}),
        )
        .unwrap();
        assert!(handle_batch(event).batch_item_failures.is_empty());
    }
}
