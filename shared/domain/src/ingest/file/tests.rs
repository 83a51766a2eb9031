use chrono::TimeZone;
use serde_json::json;

use super::*;
use crate::connector::ConnectorStatus;
use crate::testing::ingest_connector;

fn options(success: Option<&str>, failed: Option<&str>) -> IngestOptions {
    let mut ingest = json!({"table": "orders"});
    if let Some(dir) = success {
        ingest["success_dir"] = json!(dir);
    }
    if let Some(dir) = failed {
        ingest["failed_dir"] = json!(dir);
    }
    ingest_connector(ingest).ingest_options().cloned().unwrap()
}

#[test]
fn the_four_folder_cases_place_good_and_bad_files() {
    let moved = |key: &str| Placement::Move {
        key: key.to_owned(),
    };
    let key = "incoming/2026/12/orders 1+2.csv";
    let cases = [
        (None, None, Placement::Delete, Placement::Stay),
        (
            Some("done/"),
            None,
            moved("done/2026/12/orders 1+2.csv"),
            Placement::Stay,
        ),
        (
            None,
            Some("failed/"),
            Placement::Delete,
            moved("failed/2026/12/orders 1+2.csv"),
        ),
        (
            Some("done/"),
            Some("failed/"),
            moved("done/2026/12/orders 1+2.csv"),
            moved("failed/2026/12/orders 1+2.csv"),
        ),
    ];
    for (success, failed, good, bad) in cases {
        let options = options(success, failed);
        assert_eq!(
            placement(&options, "incoming/", key, true),
            good,
            "{success:?} {failed:?}"
        );
        assert_eq!(
            placement(&options, "incoming/", key, false),
            bad,
            "{success:?} {failed:?}"
        );
    }
}

#[test]
fn sidecars_sit_next_to_where_the_file_ends_up() {
    let key = "incoming/a b.csv.gz";
    assert_eq!(
        sidecar_key(
            key,
            &Placement::Move {
                key: "failed/a b.csv.gz".into()
            }
        ),
        "failed/a b.csv.gz.errors.jsonl"
    );
    assert_eq!(
        sidecar_key(key, &Placement::Stay),
        "incoming/a b.csv.gz.errors.jsonl"
    );
    assert_eq!(
        sidecar_key(key, &Placement::Delete),
        "incoming/a b.csv.gz.errors.jsonl"
    );
}

#[test]
fn only_customer_files_under_the_prefix_are_ingested() {
    let connector = ingest_connector(
        json!({"table": "orders", "success_dir": "done/", "failed_dir": "failed/"}),
    );
    let challenge = connector.challenge_key();
    let cases = [
        ("incoming/orders.csv", Ok(())),
        ("incoming/sub/ü + %2B.csv", Ok(())),
        ("incoming/.hidden", Ok(())),
        ("other/orders.csv", Err(NotIngested::OutsidePrefix)),
        ("incoming/sub/", Err(NotIngested::Folder)),
        (
            "incoming/orders.csv.errors.jsonl",
            Err(NotIngested::Sidecar),
        ),
        ("done/orders.csv", Err(NotIngested::OutsidePrefix)),
        (challenge.as_str(), Err(NotIngested::ServiceObject)),
    ];
    for (key, want) in cases {
        assert_eq!(ingestible(&connector, key), want, "{key}");
    }
    let mut export = crate::testing::export_connector(json!({}));
    export.bucket = connector.bucket.clone();
    assert_eq!(
        ingestible(&export, "exports/x.csv"),
        Err(NotIngested::OutsidePrefix)
    );
}

#[test]
fn a_moved_file_inside_the_prefix_is_not_taken_again() {
    // Stored under looser rules: the success folder inside the source prefix.
    let mut connector = ingest_connector(json!({"table": "orders"}));
    if let crate::connector::Flow::Ingest(options) = &mut connector.flow {
        options.success_dir = Some("incoming/done/".into());
    }
    assert_eq!(
        ingestible(&connector, "incoming/done/a.csv"),
        Err(NotIngested::MovedFile)
    );
    assert_eq!(ingestible(&connector, "incoming/a.csv"), Ok(()));
}

#[test]
fn routing_picks_the_connector_whose_prefix_holds_the_key() {
    let mut a = ingest_connector(json!({"table": "a"}));
    a.connector_id = "con_a".into();
    a.prefix = "in/".into();
    let mut b = ingest_connector(json!({"table": "b"}));
    b.connector_id = "con_b".into();
    b.prefix = "in/deep/".into();
    b.status = ConnectorStatus::NeedsAttention;
    let connectors = vec![a, b];
    let routed = |key: &str| route(&connectors, key).map(|c| c.connector_id.as_str());
    assert_eq!(routed("in/x.csv"), Some("con_a"));
    assert_eq!(routed("in/deep/x.csv"), Some("con_b"));
    assert_eq!(routed("elsewhere/x.csv"), None);
    assert_eq!(routed("in/"), None);
}

#[test]
fn file_identity_is_fixed_length_and_does_not_collide() {
    let a = FileIdentity::new("b", "k", "\"e1\"");
    assert_eq!(a.etag, "e1");
    assert_eq!(a.object_id(), FileIdentity::new("b", "k", "e1").object_id());
    assert_eq!(a.object_id().len(), 64);
    let long = FileIdentity::new("b", &"k".repeat(1024), "e1");
    assert_eq!(long.object_id().len(), 64);
    let distinct = [
        FileIdentity::new("b", "k", "e2"),
        FileIdentity::new("b", "k2", "e1"),
        FileIdentity::new("b2", "k", "e1"),
        FileIdentity::new("b", r#"k","e1"#, ""),
    ];
    for other in distinct {
        assert_ne!(a.object_id(), other.object_id(), "{other:?}");
    }
}

#[test]
fn reject_policies_accept_and_stop() {
    let cases: &[(RejectPolicy, u64, u64, bool, bool)] = &[
        // policy, bad, total, accepts, exceeded
        (RejectPolicy::default(), 0, 10, true, false),
        (RejectPolicy::default(), 1, 10, false, true),
        (RejectPolicy::MaxBadRows(2), 2, 10, true, false),
        (RejectPolicy::MaxBadRows(2), 3, 10, false, true),
        (RejectPolicy::MaxBadPercent(10.0), 1, 10, true, false),
        (RejectPolicy::MaxBadPercent(10.0), 2, 10, false, false),
        (RejectPolicy::MaxBadPercent(10.0), 0, 0, true, false),
        (RejectPolicy::MaxBadPercent(0.0), 1, 1000, false, true),
        (RejectPolicy::MaxBadPercent(100.0), 10, 10, true, false),
    ];
    for &(policy, bad, total, accepts, exceeded) in cases {
        assert_eq!(
            policy.accepts(bad, total),
            accepts,
            "{policy:?} {bad}/{total}"
        );
        assert_eq!(policy.exceeded(bad), exceeded, "{policy:?} {bad}");
    }
    assert_eq!(RejectPolicy::default().describe(), "no bad row is accepted");
    assert_eq!(
        serde_json::to_value(RejectPolicy::MaxBadPercent(2.5)).unwrap(),
        json!({"max_bad_percent": 2.5})
    );
}

fn record(status: FileStatus) -> IngestFile {
    let when = chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let file = FileIdentity::new("acme-drops", "incoming/a.csv", "e1");
    IngestFile {
        object_id: file.object_id(),
        tenant_id: "acme".into(),
        connector_id: "con_1".into(),
        file,
        version_id: None,
        size: 10,
        table: "orders".into(),
        status,
        intake: Intake::Notification,
        attempts: 1,
        holder: Some("inv-1".into()),
        lease_until: Some(1_000),
        first_seen_at: when,
        updated_at: when,
        finished_at: None,
        duration_ms: None,
        verdict: None,
        rows_loaded: 0,
        rows_rejected: 0,
        content_bytes: 0,
        placement: None,
        moved: false,
        sidecar_key: None,
        error: None,
        version: 1,
    }
}

#[test]
fn deliveries_take_wait_or_stop_by_the_record() {
    let loaded = Some(Verdict::Loaded { parts: vec![3] });
    let refused = Some(Verdict::Refused {
        error: RunError {
            reason: "empty_file".into(),
            message: "m".into(),
            remediation: "r".into(),
            aws_error_code: None,
        },
    });
    let with = |status, attempts, lease: Option<i64>, verdict: Option<Verdict>, moved| {
        let mut r = record(status);
        r.attempts = attempts;
        r.lease_until = lease;
        r.verdict = verdict;
        r.moved = moved;
        r
    };
    let cases = [
        (None, Delivery::Take { attempt: 1 }),
        (
            Some(with(FileStatus::Processing, 1, Some(1_001), None, false)),
            Delivery::Busy { until: 1_001 },
        ),
        // The holder's lease lapsed: it crashed.
        (
            Some(with(FileStatus::Processing, 1, Some(1_000), None, false)),
            Delivery::Take { attempt: 2 },
        ),
        (
            Some(with(FileStatus::Processing, 3, Some(999), None, false)),
            Delivery::Quarantine,
        ),
        // Loaded before the crash: only the move is left, however many attempts.
        (
            Some(with(
                FileStatus::Processing,
                3,
                Some(999),
                loaded.clone(),
                false,
            )),
            Delivery::Take { attempt: 4 },
        ),
        (
            Some(with(FileStatus::Retrying, 1, None, None, false)),
            Delivery::Take { attempt: 2 },
        ),
        (
            Some(with(FileStatus::Retrying, 3, None, None, false)),
            Delivery::Quarantine,
        ),
        (
            Some(with(FileStatus::Succeeded, 1, None, loaded.clone(), true)),
            Delivery::Done(FileStatus::Succeeded),
        ),
        (
            Some(with(FileStatus::Failed, 1, None, refused.clone(), true)),
            Delivery::Done(FileStatus::Failed),
        ),
        (
            Some(with(FileStatus::Failed, 1, None, refused.clone(), false)),
            Delivery::Take { attempt: 2 },
        ),
        (
            Some(with(FileStatus::Quarantined, 3, None, None, false)),
            Delivery::Done(FileStatus::Quarantined),
        ),
    ];
    for (record, want) in cases {
        assert_eq!(on_delivery(record.as_ref(), 1_000), want, "{record:?}");
    }
}

#[test]
fn statuses_round_trip_their_names() {
    for status in [
        FileStatus::Processing,
        FileStatus::Succeeded,
        FileStatus::Failed,
        FileStatus::Retrying,
        FileStatus::Quarantined,
    ] {
        assert_eq!(FileStatus::parse(status.as_str()), Some(status));
        assert_eq!(
            serde_json::to_value(status).unwrap(),
            json!(status.as_str())
        );
    }
    assert_eq!(FileStatus::parse("done"), None);
    assert!(FileStatus::Failed.is_final() && !FileStatus::Retrying.is_final());
}

#[test]
fn a_quarantined_file_says_what_failed_and_how_to_retry() {
    let last = RunError {
        reason: "access_denied".into(),
        message: "GetObject was denied".into(),
        remediation: "allow s3:GetObject on incoming/*".into(),
        aws_error_code: Some("AccessDenied".into()),
    };
    let e = quarantine_error(Some(&last));
    assert_eq!(e.reason, "quarantined");
    assert!(
        e.message.contains("3 times") && e.message.contains("GetObject was denied"),
        "{}",
        e.message
    );
    assert!(
        e.remediation.starts_with("allow s3:GetObject"),
        "{}",
        e.remediation
    );
    assert_eq!(e.aws_error_code.as_deref(), Some("AccessDenied"));
    assert!(
        quarantine_error(None)
            .remediation
            .contains("upload the file again")
    );
}

/// The s3-ingest function's `Timeout` in template.yaml, in seconds.
fn ingest_function_timeout() -> i64 {
    let template =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml"))
            .expect("template.yaml at the repository root");
    let function = template
        .split("\n  S3IngestFunction:\n")
        .nth(1)
        .expect("an S3IngestFunction resource");
    function
        .lines()
        .find_map(|l| l.trim().strip_prefix("Timeout:"))
        .and_then(|t| t.trim().parse().ok())
        .expect("a Timeout of the s3-ingest function")
}

#[test]
fn a_claim_outlasts_the_ingest_function_but_not_by_much() {
    let timeout = ingest_function_timeout();
    // A live holder is never overtaken…
    assert!(
        FILE_LEASE_SECONDS > timeout,
        "{FILE_LEASE_SECONDS} <= {timeout}"
    );
    // …and a crashed holder's claim lapses before the next quarter-hourly poll after it.
    assert!(
        FILE_LEASE_SECONDS <= timeout + 5 * 60,
        "{FILE_LEASE_SECONDS} > {timeout} + 300"
    );
}
