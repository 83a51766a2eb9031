use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Mutex;

use shared::domain::export::run::RunError;
use shared::domain::ingest::file::{FileStatus, Intake};
use shared::error::AwsCallError;
use shared::ingest::service::{IngestError, PollReport};

use super::*;

/// Records what it was handed; keys listed in `failing` fail like a throttled read.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<FoundObject>>,
    failing: Vec<String>,
    polls: Mutex<u32>,
}

impl IngestFiles for Recorder {
    async fn ingest(&self, found: &FoundObject) -> Result<Handled, IngestError> {
        self.seen.lock().unwrap().push(found.clone());
        if self.failing.contains(&found.key) {
            return Err(IngestError::Aws(AwsCallError {
                service: "s3",
                operation: "GetObject",
                code: Some("SlowDown".into()),
                message: "Please reduce your request rate.".into(),
                http_status: Some(503),
                retryable: true,
            }));
        }
        Ok(Handled::Duplicate(FileStatus::Succeeded))
    }

    async fn poll_prefixes(&self, _until: Option<Instant>) -> Result<PollReport, IngestError> {
        *self.polls.lock().unwrap() += 1;
        Err(IngestError::Refused(RunError {
            reason: "r".into(),
            message: "m".into(),
            remediation: "x".into(),
            aws_error_code: None,
        }))
    }
}

fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events/s3-ingest")
}

fn event(file: &str) -> SqsEvent {
    let path = events_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn failures(response: &SqsBatchResponse) -> Vec<&str> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect()
}

/// Every sample event: the keys handed to ingest, and the message ids reported as failures.
const CASES: &[(&str, &[&str], &[&str])] = &[
    (
        "sqs-s3-put.json",
        &["incoming/données 2026/orders+returns 日本.csv"],
        &[],
    ),
    ("sqs-s3-test-event.json", &[], &[]),
    ("sqs-sns-s3-put.json", &["incoming/orders 1.csv"], &[]),
    ("sqs-moto-style.json", &["incoming/orders/file 1.csv"], &[]),
    (
        "sqs-eventbridge-object-created.json",
        &["incoming/orders+returns 2026.csv"],
        &[],
    ),
    // A test event, one file, and a body that is not JSON (kept for the dead-letter queue).
    (
        "sqs-mixed-batch.json",
        &["incoming/batch 2.csv"],
        &["3c4d5e6f-7081-4923-a4b5-c6d7e8f90a12"],
    ),
    // A file the poll found: its key is plain text, `+` and `%2B` stay as they are.
    (
        "sqs-poll-found.json",
        &["incoming/found by poll 1+2 %2B été.csv"],
        &[],
    ),
    ("warmup.json", &[], &[]),
];

#[tokio::test]
async fn a_poll_message_is_ingested_as_found_by_the_poll() {
    let ingest = Recorder::default();
    handle_batch(&ingest, event("sqs-poll-found.json")).await;
    handle_batch(&ingest, event("sqs-s3-put.json")).await;
    let seen = ingest.seen.lock().unwrap().clone();
    let intakes: Vec<(Intake, Option<&str>)> = seen
        .iter()
        .map(|f| (f.intake, f.e_tag.as_deref()))
        .collect();
    assert_eq!(
        intakes[0],
        (Intake::Poll, Some("9bb58f26192e4ba00f01e2e7b136bbd8"))
    );
    assert_eq!(intakes[1].0, Intake::Notification);
}

#[tokio::test]
async fn every_sample_event_hands_its_files_over_and_keeps_what_it_cannot_read() {
    for (file, keys, want_failures) in CASES {
        let ingest = Recorder::default();
        let response = handle_batch(&ingest, event(file)).await;
        assert_eq!(failures(&response), *want_failures, "{file}");
        let seen: Vec<String> = ingest
            .seen
            .lock()
            .unwrap()
            .iter()
            .map(|f| f.key.clone())
            .collect();
        assert_eq!(seen, *keys, "{file}");
    }
}

#[test]
fn every_sample_event_has_a_case() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(events_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".json"))
        .collect();
    let cased: BTreeSet<String> = CASES.iter().map(|(f, _, _)| (*f).to_owned()).collect();
    assert_eq!(on_disk, cased);
}

#[tokio::test]
async fn only_the_message_whose_file_failed_is_retried() {
    let record = |id: &str, key: &str| {
        let body = serde_json::json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": "b"}, "object": {"key": key, "eTag": "e1"}}}]})
        .to_string();
        serde_json::json!({"messageId": id, "body": body})
    };
    let event: SqsEvent = serde_json::from_value(serde_json::json!({"Records": [
        record("m1", "in/a.csv"), record("m2", "in/b+c.csv"), record("m3", "in/d.csv"),
    ]}))
    .unwrap();
    let ingest = Recorder {
        failing: vec!["in/b c.csv".into()],
        ..Recorder::default()
    };
    let response = handle_batch(&ingest, event).await;
    assert_eq!(failures(&response), vec!["m2"]);
    let seen = ingest.seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    assert!(
        seen.iter().all(|f| f.e_tag.as_deref() == Some("e1")),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_message_without_an_id_or_body_is_kept() {
    let ingest = Recorder::default();
    let event: SqsEvent =
        serde_json::from_str(r#"{"Records":[{"body":"{\"hello\":1}"}]}"#).unwrap();
    assert_eq!(failures(&handle_batch(&ingest, event).await), vec![""]);
    let event: SqsEvent = serde_json::from_str(r#"{"Records":[{"messageId":"m1"}]}"#).unwrap();
    assert_eq!(failures(&handle_batch(&ingest, event).await), vec!["m1"]);
}

#[tokio::test]
async fn the_scheduled_event_polls_and_reports_a_failed_poll() {
    let ingest = Recorder::default();
    let scheduled =
        serde_json::json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
    let e = handle(&ingest, scheduled, None).await.unwrap_err();
    assert!(matches!(e, HandlerError::Poll(_)), "{e}");
    assert_eq!(*ingest.polls.lock().unwrap(), 1);
    assert!(
        handle(&ingest, serde_json::json!({"hello": 1}), None)
            .await
            .is_err()
    );
}
