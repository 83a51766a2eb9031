//! Files through the fakes: the connectors table, STS, the customer's bucket, the ledger and
//! the lake, with the crashes and races an emulator cannot produce on demand.

use std::collections::BTreeMap;
use std::io::Write;

use arrow_array::{Array, Int64Array, StringArray};
use serde_json::json;

use super::*;
use crate::domain::connector::platform::OwnResources;
use crate::domain::connector::{Encryption, SseMode};
use crate::domain::testing::{EXTERNAL_ID, ingest_connector};
use crate::fakes::lake::MemoryLake;
use crate::fakes::ledger::MemoryLedger;
use crate::fakes::queue::MemoryPolledFileQueue;
use crate::fakes::storage::{Fault, MemoryStorage, Op};
use crate::fakes::sts::{FakeRole, MemorySts};
use crate::fakes::{MemoryConnectorStore, MemorySecretStore};

const PRINCIPAL: &str = "arn:aws:iam::123456789012:role/connector-access";
const ROLE: &str = "arn:aws:iam::111111111111:role/acme-ingest";
const BUCKET: &str = "acme-drops";

type Service = IngestService<
    MemoryLake,
    MemoryLedger,
    MemoryConnectorStore,
    MemorySts,
    MemorySecretStore,
    MemoryStorage,
    MemoryPolledFileQueue,
>;

struct World {
    service: Service,
    storage: MemoryStorage,
    lake: Arc<MemoryLake>,
    poll_queue: MemoryPolledFileQueue,
    connector: Connector,
}

fn world(ingest: serde_json::Value) -> World {
    world_with(ingest_connector(ingest), IngestSettings::default())
}

fn world_with(connector: Connector, settings: IngestSettings) -> World {
    let sts = MemorySts::new(PRINCIPAL).with_role(
        ROLE,
        FakeRole {
            trusted: vec![PRINCIPAL.into()],
            external_id: Some(EXTERNAL_ID.into()),
            web_identity_token: None,
        },
    );
    let own = OwnResources::new(["platform-lake".to_owned()], Some("123456789012".into()));
    let broker = CredentialBroker::new(
        sts,
        MemorySecretStore::default(),
        PRINCIPAL.into(),
        crate::credentials::TokenSource::None,
        own,
    );
    let storage = MemoryStorage::new().with_bucket(BUCKET, "us-east-1");
    let connectors = MemoryConnectorStore::default();
    let mut stored = connector.clone();
    stored.refresh_due_index();
    connectors.seed(move |state| {
        state.connectors.insert(
            (stored.tenant_id.clone(), stored.connector_id.clone()),
            stored,
        );
    });
    let lake = Arc::new(MemoryLake::new());
    let poll_queue = MemoryPolledFileQueue::default();
    let service = IngestService::new(
        lake.clone(),
        MemoryLedger::new(),
        connectors,
        Arc::new(broker),
        storage.clone(),
        poll_queue.clone(),
        settings,
    );
    World {
        service,
        storage,
        lake,
        poll_queue,
        connector,
    }
}

fn found(key: &str) -> FoundObject {
    FoundObject {
        bucket: BUCKET.into(),
        key: key.into(),
        e_tag: None,
        intake: Intake::Notification,
    }
}

const GOOD_CSV: &str = "id,name\n1,ann\n2,bob\n3,cy\n";
/// Line 3 is ragged: a bad row whatever the types.
const ONE_BAD_ROW_CSV: &str = "id,name\n1,ann\n2,bob,extra\n3,cy\n";

impl World {
    fn drop_file(&self, key: &str, body: &str) {
        self.storage.put_object(BUCKET, key, body.as_bytes());
    }

    async fn deliver(&self, key: &str) -> Result<Handled, IngestError> {
        self.service.handle(&found(key)).await
    }

    /// Delivers the files the poll sent since the last call, as s3-ingest does a poll message.
    async fn deliver_polled(&self) -> Vec<Handled> {
        let mut handled = Vec::new();
        for file in self.poll_queue.take_new() {
            let polled = FoundObject::polled(file);
            handled.push(
                self.service
                    .handle(&polled)
                    .await
                    .expect("a polled file is decided"),
            );
        }
        handled
    }

    fn polled_keys(&self) -> Vec<String> {
        self.poll_queue
            .messages()
            .into_iter()
            .map(|f| f.key)
            .collect()
    }

    fn keys(&self) -> Vec<String> {
        self.storage.keys(BUCKET)
    }

    fn body(&self, key: &str) -> String {
        let bucket = self.storage.bucket(BUCKET).unwrap();
        String::from_utf8(bucket.objects[key].body.clone()).unwrap()
    }

    /// Every id in the lake's `orders` table, in part order.
    fn lake_ids(&self) -> Vec<i64> {
        self.lake
            .all_batches("acme", "orders")
            .iter()
            .flat_map(|b| {
                let ids = b
                    .column_by_name("id")
                    .unwrap()
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .clone();
                ids.iter().map(|v| v.unwrap()).collect::<Vec<_>>()
            })
            .collect()
    }

    fn parts(&self) -> usize {
        futures::executor::block_on(self.lake.parts_after("acme", "orders", None))
            .unwrap()
            .len()
    }

    fn only_file(&self) -> IngestFile {
        let files = self.service.ledger().files();
        assert_eq!(files.len(), 1, "{files:?}");
        files.into_iter().next().unwrap()
    }

    /// The holder of every record crashed long ago: its leases lapsed.
    fn lapse_leases(&self) {
        for mut file in self.service.ledger().files() {
            if file.lease_until.is_some() {
                file.lease_until = Some(0);
            }
            self.service.ledger().seed(file);
        }
    }
}

fn finished(handled: Handled) -> IngestFile {
    match handled {
        Handled::Finished(file) => *file,
        other => panic!("expected a finished file, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_four_folder_cases_place_good_and_bad_files() {
    // (success dir, failed dir, where the good file ends, where the bad file ends)
    type Case<'a> = (Option<&'a str>, Option<&'a str>, Option<&'a str>, &'a str);
    let cases: [Case; 4] = [
        (None, None, None, "incoming/bad.csv"),
        (
            Some("done/"),
            None,
            Some("done/good.csv"),
            "incoming/bad.csv",
        ),
        (None, Some("failed/"), None, "failed/bad.csv"),
        (
            Some("done/"),
            Some("failed/"),
            Some("done/good.csv"),
            "failed/bad.csv",
        ),
    ];
    for (success, failed, good_at, bad_at) in cases {
        let mut ingest = json!({"table": "orders"});
        if let Some(dir) = success {
            ingest["success_dir"] = json!(dir);
        }
        if let Some(dir) = failed {
            ingest["failed_dir"] = json!(dir);
        }
        let w = world(ingest);
        w.drop_file("incoming/good.csv", GOOD_CSV);
        w.drop_file("incoming/bad.csv", "");
        let good = finished(w.deliver("incoming/good.csv").await.unwrap());
        let bad = finished(w.deliver("incoming/bad.csv").await.unwrap());
        let context = format!("{success:?} {failed:?}");
        assert_eq!(good.status, FileStatus::Succeeded, "{context}");
        assert_eq!(good.rows_loaded, 3, "{context}");
        assert_eq!(bad.status, FileStatus::Failed, "{context}");
        assert_eq!(
            bad.error.as_ref().unwrap().reason,
            "unreadable_file",
            "{context}"
        );
        assert!(
            bad.error.as_ref().unwrap().message.contains("empty"),
            "{context}: {:?}",
            bad.error
        );
        let mut want: Vec<String> = good_at.into_iter().map(str::to_owned).collect();
        want.push(bad_at.to_owned());
        want.sort();
        assert_eq!(w.keys(), want, "{context}");
        if let Some(at) = good_at {
            assert_eq!(w.body(at), GOOD_CSV, "{context}");
        }
        assert_eq!(w.lake_ids(), vec![1, 2, 3], "{context}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_late_and_concurrent_deliveries_load_one_part() {
    let w = world(json!({"table": "orders", "success_dir": "done/"}));
    w.drop_file("incoming/a.csv", GOOD_CSV);
    let (first, second) = tokio::join!(w.deliver("incoming/a.csv"), w.deliver("incoming/a.csv"));
    let outcomes = [first.unwrap(), second.unwrap()];
    assert_eq!(
        outcomes
            .iter()
            .filter(|h| matches!(h, Handled::Finished(_)))
            .count(),
        1,
        "{outcomes:?}"
    );
    // A late duplicate, with and without the ETag the notification carried.
    let e_tag = w.only_file().file.etag.clone();
    assert_eq!(w.deliver("incoming/a.csv").await.unwrap(), Handled::Gone);
    let late = FoundObject {
        e_tag: Some(e_tag),
        ..found("incoming/a.csv")
    };
    assert_eq!(w.service.handle(&late).await.unwrap(), Handled::Gone);
    assert_eq!(w.parts(), 1);
    assert_eq!(w.lake_ids(), vec![1, 2, 3]);
    assert_eq!(w.keys(), vec!["done/a.csv"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reupload_with_new_content_is_a_new_file() {
    let w = world(json!({"table": "orders"}));
    w.drop_file("incoming/a.csv", GOOD_CSV);
    finished(w.deliver("incoming/a.csv").await.unwrap());
    w.drop_file("incoming/a.csv", "id,name\n4,dee\n");
    finished(w.deliver("incoming/a.csv").await.unwrap());
    assert_eq!(w.lake_ids(), vec![1, 2, 3, 4]);
    assert_eq!(w.service.ledger().files().len(), 2);
    assert!(w.keys().is_empty());
}

/// Where a delivery can die, and how the next one must finish.
#[derive(Debug, Clone, Copy)]
enum Crash {
    /// Staging the first part fails (after the claim, before any lake write).
    BeforeLakeWrite,
    /// The commit is applied, its answer lost.
    LakeCommitAnswer,
    /// The ledger stops accepting writes after the claim and the counts: the lake commit
    /// happened, the verdict was not recorded.
    AfterCommitBeforeVerdict,
    /// The copy to the success folder fails.
    Copy,
    /// The copy is made, the delete of the source fails.
    Delete,
    /// Everything is done in S3, the final ledger write fails.
    FinalRecord,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_any_two_steps_loads_once_and_moves_once() {
    for crash in [
        Crash::BeforeLakeWrite,
        Crash::LakeCommitAnswer,
        Crash::AfterCommitBeforeVerdict,
        Crash::Copy,
        Crash::Delete,
        Crash::FinalRecord,
    ] {
        let w = world(json!({"table": "orders", "success_dir": "done/"}));
        let key = "incoming/2026/orders 1+2 %2B ü.csv";
        w.drop_file(key, GOOD_CSV);
        match crash {
            Crash::BeforeLakeWrite => w.lake.fail_stages(1),
            Crash::LakeCommitAnswer => w.lake.lose_commit_answers(1),
            // Claim, counts: then the writes fail.
            Crash::AfterCommitBeforeVerdict => w.service.ledger().fail_writes_after(2),
            Crash::Copy => w.storage.fail_times(Op::Copy, "done/", Fault::SlowDown, 1),
            Crash::Delete => w
                .storage
                .fail_times(Op::Delete, "incoming/", Fault::SlowDown, 1),
            // Claim, counts, verdict: then the final write fails.
            Crash::FinalRecord => w.service.ledger().fail_writes_after(3),
        }
        let first = w.deliver(key).await;
        assert!(first.is_err(), "{crash:?}: {first:?}");
        w.service.ledger().heal();
        w.lapse_leases();
        let second = w.deliver(key).await.unwrap();
        let file = match second {
            Handled::Finished(file) => *file,
            // The final write failed after the source was deleted: the notification's
            // ETag finds the record and finishes it.
            Handled::Gone => {
                let e_tag = w.only_file().file.etag.clone();
                let late = FoundObject {
                    e_tag: Some(e_tag),
                    ..found(key)
                };
                finished(w.service.handle(&late).await.unwrap())
            }
            other => panic!("{crash:?}: {other:?}"),
        };
        assert_eq!(file.status, FileStatus::Succeeded, "{crash:?}: {file:?}");
        assert_eq!(file.rows_loaded, 3, "{crash:?}");
        assert_eq!(w.parts(), 1, "{crash:?}");
        assert_eq!(w.lake_ids(), vec![1, 2, 3], "{crash:?}");
        assert_eq!(
            w.keys(),
            vec!["done/2026/orders 1+2 %2B ü.csv"],
            "{crash:?}"
        );
        assert_eq!(
            w.body("done/2026/orders 1+2 %2B ü.csv"),
            GOOD_CSV,
            "{crash:?}"
        );
        // Nothing more happens on yet another delivery.
        let again = FoundObject {
            e_tag: Some(file.file.etag.clone()),
            ..found(key)
        };
        assert!(
            matches!(
                w.service.handle(&again).await.unwrap(),
                Handled::Gone | Handled::Duplicate(_)
            ),
            "{crash:?}"
        );
        assert_eq!(w.parts(), 1, "{crash:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_claim_makes_a_second_delivery_a_duplicate() {
    let w = world(json!({"table": "orders"}));
    w.drop_file("incoming/a.csv", GOOD_CSV);
    w.service.ledger().fail_writes_after(2);
    let claimed_at = chrono::Utc::now().timestamp();
    assert!(w.deliver("incoming/a.csv").await.is_err());
    w.service.ledger().heal();
    let lease = w.only_file().lease_until.expect("a claim holds a lease");
    assert!(
        (claimed_at + FILE_LEASE_SECONDS..=claimed_at + FILE_LEASE_SECONDS + 5).contains(&lease),
        "lease until {lease}, claimed at {claimed_at}"
    );
    // The first holder's lease is live: it may still be working.
    assert_eq!(
        w.deliver("incoming/a.csv").await.unwrap(),
        Handled::Duplicate(FileStatus::Processing)
    );
    w.lapse_leases();
    finished(w.deliver("incoming/a.csv").await.unwrap());
    assert_eq!(w.lake_ids(), vec![1, 2, 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rows_within_the_policy_load_the_rest_and_go_to_the_sidecar() {
    let w =
        world(json!({"table": "orders", "success_dir": "done/", "reject": {"max_bad_rows": 1}}));
    w.drop_file("incoming/a.csv", ONE_BAD_ROW_CSV);
    let file = finished(w.deliver("incoming/a.csv").await.unwrap());
    assert_eq!(file.status, FileStatus::Succeeded);
    assert_eq!((file.rows_loaded, file.rows_rejected), (2, 1));
    assert_eq!(file.sidecar_key.as_deref(), Some("done/a.csv.errors.jsonl"));
    assert_eq!(w.lake_ids(), vec![1, 3]);
    let sidecar: Vec<serde_json::Value> = w
        .body("done/a.csv.errors.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(sidecar.len(), 1);
    assert_eq!(sidecar[0]["line"], 3);
    assert!(
        sidecar[0]["reason"].as_str().unwrap().contains("fields"),
        "{sidecar:?}"
    );
    assert_eq!(sidecar[0]["raw"], "2,bob,extra");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_bad_rows_fail_the_file_and_load_nothing_of_it() {
    let w = world(json!({"table": "orders", "failed_dir": "failed/"}));
    w.drop_file("incoming/a.csv", ONE_BAD_ROW_CSV);
    let file = finished(w.deliver("incoming/a.csv").await.unwrap());
    assert_eq!(file.status, FileStatus::Failed);
    let error = file.error.clone().unwrap();
    assert_eq!(error.reason, "too_many_bad_rows");
    assert_eq!(
        error.message,
        "loading stopped at 1 bad row (listed in the file's .errors.jsonl beside where it went); no bad row is accepted"
    );
    assert!(error.remediation.contains("ingest.reject"), "{error:?}");
    assert_eq!(file.rows_loaded, 0);
    assert_eq!(w.parts(), 0);
    assert_eq!(w.keys(), vec!["failed/a.csv", "failed/a.csv.errors.jsonl"]);
    // Percent policies: 1 of 3 is 33 %.
    for (percent, status) in [(30.0, FileStatus::Failed), (40.0, FileStatus::Succeeded)] {
        let w = world(json!({"table": "orders", "reject": {"max_bad_percent": percent}}));
        w.drop_file("incoming/a.csv", ONE_BAD_ROW_CSV);
        let file = finished(w.deliver("incoming/a.csv").await.unwrap());
        assert_eq!(file.status, status, "{percent}");
        if status == FileStatus::Failed {
            assert_eq!(
                file.error.unwrap().message,
                "1 of 3 rows are bad (listed in the file's .errors.jsonl beside where it went); at most 30 % of the rows may be bad"
            );
        }
        // Without folders the sidecar sits beside the source key.
        assert_eq!(
            file.sidecar_key.as_deref(),
            Some("incoming/a.csv.errors.jsonl")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_files_fail_with_a_reason_and_leave_nothing_in_the_lake() {
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gzip, GOOD_CSV.repeat(50).as_bytes()).unwrap();
    let gzip = gzip.finish().unwrap();
    let truncated = gzip[..gzip.len() / 2].to_vec();
    const FIX: &str = "fix the file and upload it again";
    const REJECT: &str = "fix the rows the sidecar lists and upload the file again, or allow more bad rows with ingest.reject";
    // (file, its bytes, the reason or a word of the message, what to do)
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        ("empty.csv", Vec::new(), "empty", FIX),
        ("header.csv", b"id,name\n".to_vec(), "no data rows", FIX),
        (
            "binary.csv",
            b"\x00\x01\x02\x03binary\x00".to_vec(),
            "binary",
            "fix the file and upload it again; check ingest.compression and ingest.format",
        ),
        ("cut.csv.gz", truncated, "gzip", FIX),
        (
            "ragged.csv",
            b"id,name\n1,ann,extra\n".to_vec(),
            "too_many_bad_rows",
            REJECT,
        ),
        (
            "utf8.csv",
            b"id,name\n1,\xff\xfe\n".to_vec(),
            "too_many_bad_rows",
            REJECT,
        ),
    ];
    for (name, body, expected, remediation) in cases {
        let w = world(json!({"table": "orders"}));
        let key = format!("incoming/{name}");
        w.storage.put_object(BUCKET, &key, &body);
        let file = finished(w.deliver(&key).await.unwrap());
        assert_eq!(file.status, FileStatus::Failed, "{name}");
        let error = file.error.unwrap();
        assert!(
            error.reason == expected || error.message.contains(expected),
            "{name}: {error:?}"
        );
        assert_eq!(error.remediation, remediation, "{name}");
        assert_eq!(w.parts(), 0, "{name}");
        // No failed folder: the bad file stays where it is.
        assert!(w.keys().contains(&key), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_keeps_failing_is_quarantined_and_not_tried_again() {
    let w = world(json!({"table": "orders"}));
    w.drop_file("incoming/a.csv", GOOD_CSV);
    w.storage.fail(Op::Get, "incoming/", Fault::AccessDenied);
    for attempt in 1..=3 {
        let e = w.deliver("incoming/a.csv").await.unwrap_err();
        assert!(matches!(e, IngestError::Refused(_)), "{attempt}: {e:?}");
        let file = w.only_file();
        assert_eq!(
            (file.status, file.attempts),
            (FileStatus::Retrying, attempt)
        );
        let error = file.error.unwrap();
        assert_eq!(error.reason, "access_denied");
        assert!(error.remediation.contains("s3:GetObject"), "{error:?}");
    }
    let file = finished(w.deliver("incoming/a.csv").await.unwrap());
    assert_eq!(file.status, FileStatus::Quarantined);
    assert!(file.error.unwrap().remediation.contains("s3:GetObject"));
    assert_eq!(
        w.deliver("incoming/a.csv").await.unwrap(),
        Handled::Duplicate(FileStatus::Quarantined)
    );
    assert!(w.keys().contains(&"incoming/a.csv".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_read_is_retried_and_then_loads() {
    let w = world(json!({"table": "orders"}));
    w.drop_file("incoming/a.csv", GOOD_CSV);
    w.storage
        .fail_times(Op::Get, "incoming/", Fault::SlowDown, 1);
    let e = w.deliver("incoming/a.csv").await.unwrap_err();
    assert!(matches!(e, IngestError::Aws(_)), "{e:?}");
    assert_eq!(w.only_file().status, FileStatus::Retrying);
    assert_eq!(w.parts(), 0);
    let file = finished(w.deliver("incoming/a.csv").await.unwrap());
    assert_eq!((file.status, file.attempts), (FileStatus::Succeeded, 2));
    assert!(file.error.is_none());
    assert_eq!(w.lake_ids(), vec![1, 2, 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_users_write_load_and_move_keeping_their_path() {
    for key in [
        "incoming/a b.csv",
        "incoming/a+b.csv",
        "incoming/a%2Bb.csv",
        "incoming/données/日本 ü.csv",
        "incoming/deep/er/x.csv",
    ] {
        let w = world(json!({"table": "orders", "success_dir": "archive/"}));
        w.drop_file(key, GOOD_CSV);
        let file = finished(w.deliver(key).await.unwrap());
        let target = key.replacen("incoming/", "archive/", 1);
        assert_eq!(
            file.placement,
            Some(Placement::Move {
                key: target.clone()
            }),
            "{key}"
        );
        assert_eq!(w.keys(), vec![target], "{key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_keeps_metadata_and_encryption() {
    let w = world(json!({"table": "orders", "success_dir": "done/"}));
    let options = WriteOptions {
        encryption: Some(Encryption {
            sse: SseMode::AwsKms,
            kms_key_id: Some("arn:aws:kms:us-east-1:111111111111:key/k1".into()),
        }),
        content_type: Some("text/csv".into()),
        metadata: BTreeMap::from([("source".to_owned(), "erp".to_owned())]),
        ..WriteOptions::default()
    };
    w.storage.put_object_with(
        BUCKET,
        "incoming/a.csv",
        GOOD_CSV.as_bytes(),
        options.clone(),
    );
    finished(w.deliver("incoming/a.csv").await.unwrap());
    let moved = &w.storage.bucket(BUCKET).unwrap().objects["done/a.csv"];
    assert_eq!(moved.options.encryption, options.encryption);
    assert_eq!(moved.options.metadata, options.metadata);
    assert_eq!(moved.options.content_type.as_deref(), Some("text/csv"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_file_becomes_several_parts_committed_together() {
    let settings = IngestSettings {
        part_bytes: 16 * 1024,
        ..IngestSettings::default()
    };
    let w = world_with(ingest_connector(json!({"table": "orders"})), settings);
    let mut csv = String::from("id,name\n");
    for i in 0..200_000 {
        csv.push_str(&format!("{i},name-{}\n", i * 7919 % 100_003));
    }
    w.drop_file("incoming/big.csv", &csv);
    let file = finished(w.deliver("incoming/big.csv").await.unwrap());
    assert_eq!(file.rows_loaded, 200_000);
    let Some(Verdict::Loaded { parts }) = &file.verdict else {
        panic!("{file:?}")
    };
    assert!(parts.len() > 3, "{parts:?}");
    assert_eq!(parts.len(), w.parts());
    let ids = w.lake_ids();
    assert_eq!(ids.len(), 200_000);
    assert!(ids.iter().enumerate().all(|(i, id)| *id == i as i64));
}

/// Two first files of a table loading at once each infer a schema; the one that commits second
/// is parsed again against the schema the first gave the table, so the table never holds two
/// types for one column.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_loses_the_race_for_the_first_schema_is_parsed_again() {
    use arrow_array::{Float64Array, RecordBatch};
    use arrow_schema::{DataType, Field, Schema};
    let winner = || {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("total", DataType::Float64, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1])),
                Arc::new(Float64Array::from(vec![9.5])),
            ],
        )
        .unwrap()
    };
    // (file, its rows, what becomes of it once `total` is Float64)
    let cases = [
        // Inferred Int64 alone; read again as Float64 it fits.
        ("id,total\n2,3\n4,5\n", FileStatus::Succeeded, vec![1, 2, 4]),
        // Inferred Utf8 alone; read again, "12.50 EUR" is a bad row, and no bad row is accepted.
        ("id,total\n2,12.50 EUR\n", FileStatus::Failed, vec![1]),
    ];
    for (csv, status, ids) in cases {
        let w = world(json!({"table": "orders"}));
        w.drop_file("incoming/late.csv", csv);
        w.lake.commit_first("acme", "orders", vec![winner()]);
        let file = finished(w.deliver("incoming/late.csv").await.unwrap());
        assert_eq!(file.status, status, "{csv}: {file:?}");
        assert_eq!(w.lake_ids(), ids, "{csv}");
        let parts = w.lake.parts_after("acme", "orders", None).await.unwrap();
        for part in &parts {
            assert_eq!(
                part.schema.field_with_name("total").unwrap().data_type(),
                &DataType::Float64,
                "{csv}: part {}",
                part.seq
            );
        }
    }
}

/// A file that loses the race for the schema at every parse gives up after three and is
/// retried later, nothing of it loaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_keeps_losing_the_schema_race_is_retried_later() {
    use arrow_array::RecordBatch;
    use arrow_schema::{DataType, Field, Schema};
    // Each winner adds a column, so the file's parts never extend the table in time.
    let winner = |columns: usize| {
        let fields: Vec<Field> = (0..columns)
            .map(|c| match c {
                0 => Field::new("id", DataType::Int64, true),
                1 => Field::new("name", DataType::Utf8, true),
                n => Field::new(format!("extra_{n}"), DataType::Utf8, true),
            })
            .collect();
        let arrays: Vec<Arc<dyn Array>> = (0..columns)
            .map(|c| -> Arc<dyn Array> {
                if c == 0 {
                    Arc::new(Int64Array::from(vec![100 + columns as i64]))
                } else {
                    Arc::new(StringArray::from(vec!["w"]))
                }
            })
            .collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap()
    };
    let w = world(json!({"table": "orders"}));
    w.drop_file("incoming/a.csv", GOOD_CSV);
    for columns in [3, 4, 5] {
        w.lake.commit_first("acme", "orders", vec![winner(columns)]);
    }
    assert!(w.deliver("incoming/a.csv").await.is_err());
    assert_eq!(w.only_file().status, FileStatus::Retrying);
    assert_eq!(w.lake_ids(), vec![103, 104, 105], "only the winners' rows");
}

/// Under bucket-policy auth our principal writes the sidecar into the customer's bucket: the
/// bucket owner gets full control of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_written_under_a_bucket_policy_is_the_bucket_owners() {
    let mut connector = crate::domain::testing::stored_connector(json!({
        "name": "Acme Drops", "direction": "ingest", "bucket": BUCKET, "region": "us-east-1",
        "prefix": "incoming/", "auth": {"mode": "bucket_policy"},
        "ingest": {"table": "orders", "reject": {"max_bad_rows": 1}},
    }));
    connector.status = crate::domain::connector::ConnectorStatus::Active;
    let w = world_with(connector, IngestSettings::default());
    w.drop_file("incoming/a.csv", ONE_BAD_ROW_CSV);
    let file = finished(w.deliver("incoming/a.csv").await.unwrap());
    let sidecar = file.sidecar_key.expect("a sidecar");
    let bucket = w.storage.bucket(BUCKET).unwrap();
    let options = &bucket.objects[&sidecar].options;
    assert!(options.bucket_owner_full_control, "{sidecar}");
    assert_eq!(
        options.content_type.as_deref(),
        Some("application/x-ndjson")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_files_add_columns_and_incompatible_types_are_refused() {
    let w = world(json!({"table": "orders"}));
    w.drop_file("incoming/1.csv", GOOD_CSV);
    finished(w.deliver("incoming/1.csv").await.unwrap());
    w.drop_file("incoming/2.csv", "name,id,note\ndee,4,new\n");
    let second = finished(w.deliver("incoming/2.csv").await.unwrap());
    assert_eq!(second.status, FileStatus::Succeeded);
    let schema = w
        .lake
        .table_schema("acme", "orders")
        .await
        .unwrap()
        .unwrap();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["id", "name", "note"]);
    let last = w.lake.all_batches("acme", "orders").pop().unwrap();
    let note = last.column_by_name("note").unwrap();
    let note = note.as_any().downcast_ref::<StringArray>().unwrap();
    assert_eq!(note.value(0), "new");
    w.drop_file("incoming/3.csv", "id,name\nabc,eve\ndef,fay\n");
    let third = finished(w.deliver("incoming/3.csv").await.unwrap());
    assert_eq!(third.status, FileStatus::Failed);
    let error = third.error.unwrap();
    assert!(error.message.contains("\"id\""), "{error:?}");
    assert!(
        error
            .remediation
            .contains("the table's schema comes from its first file"),
        "{error:?}"
    );
    assert_eq!(w.lake_ids(), vec![1, 2, 3, 4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_no_active_connector_takes_are_ignored() {
    let w = world(json!({"table": "orders", "success_dir": "done/"}));
    for key in [
        "elsewhere/a.csv",
        "incoming/",
        "incoming/a.csv.errors.jsonl",
        "done/a.csv",
    ] {
        w.drop_file(key, GOOD_CSV);
        assert!(
            matches!(w.deliver(key).await.unwrap(), Handled::Ignored(_)),
            "{key}"
        );
    }
    let other = FoundObject {
        bucket: "someone-elses".into(),
        ..found("incoming/a.csv")
    };
    assert!(matches!(
        w.service.handle(&other).await.unwrap(),
        Handled::Ignored(_)
    ));
    let mut paused = w.connector.clone();
    paused.status = ConnectorStatus::NeedsAttention;
    let w = world_with(paused, IngestSettings::default());
    w.drop_file("incoming/a.csv", GOOD_CSV);
    match w.deliver("incoming/a.csv").await.unwrap() {
        Handled::Ignored(reason) => assert!(reason.contains("poll"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(w.parts(), 0);
    assert!(w.service.ledger().files().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_stops_listing_rows_at_its_limit() {
    let settings = IngestSettings {
        sidecar_rows: 2,
        ..IngestSettings::default()
    };
    let connector =
        ingest_connector(json!({"table": "orders", "reject": {"max_bad_percent": 100}}));
    let w = world_with(connector, settings);
    w.drop_file("incoming/a.csv", "id,name\n1,a\n2,b,x\n3,c,x\n4,d,x\n");
    let file = finished(w.deliver("incoming/a.csv").await.unwrap());
    assert_eq!((file.rows_loaded, file.rows_rejected), (1, 3));
    let lines: Vec<serde_json::Value> = w
        .body("incoming/a.csv.errors.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[2]["more_bad_rows"], 1);
    // A file refused part-way counts the rows past the sidecar's limit too.
    let settings = IngestSettings {
        sidecar_rows: 1,
        ..IngestSettings::default()
    };
    let connector = ingest_connector(json!({"table": "orders", "reject": {"max_bad_rows": 2}}));
    let w = world_with(connector, settings);
    w.drop_file("incoming/a.csv", "id,name\n1,a\n2,b,x\n3,c,x\n4,d,x\n");
    let file = finished(w.deliver("incoming/a.csv").await.unwrap());
    assert_eq!(file.status, FileStatus::Failed);
    assert_eq!((file.rows_loaded, file.rows_rejected), (0, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poll_sends_what_no_notification_brought_and_it_loads_once() {
    let w = world(json!({"table": "orders", "success_dir": "done/"}));
    w.drop_file("incoming/notified.csv", GOOD_CSV);
    finished(w.deliver("incoming/notified.csv").await.unwrap());
    w.drop_file("incoming/missed 1+2.csv", "id,name\n4,dee\n");
    w.drop_file("incoming/bad.csv", "");
    w.drop_file("incoming/sub/", "");
    let report = w.service.poll(None).await.unwrap();
    assert_eq!((report.connectors, report.queued), (1, 2), "{report:?}");
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(
        w.polled_keys(),
        vec!["incoming/bad.csv", "incoming/missed 1+2.csv"]
    );
    let sent = w.poll_queue.messages();
    assert!(
        sent.iter()
            .all(|f| f.bucket == BUCKET && !f.etag.is_empty()),
        "{sent:?}"
    );
    // Nothing is loaded by the poll itself.
    assert_eq!(w.parts(), 1);
    // A second poll before the queue is drained sends them again; both copies load once.
    let again = w.service.poll(None).await.unwrap();
    assert_eq!(again.queued, 2, "{again:?}");
    let handled = w.deliver_polled().await;
    let finished_count = handled
        .iter()
        .filter(|h| matches!(h, Handled::Finished(_)))
        .count();
    assert_eq!(finished_count, 2, "{handled:?}");
    assert_eq!(w.lake_ids(), vec![1, 2, 3, 4]);
    assert_eq!(w.parts(), 2);
    let missed = w
        .service
        .ledger()
        .files()
        .into_iter()
        .find(|f| f.file.key == "incoming/missed 1+2.csv")
        .expect("recorded");
    assert_eq!(missed.intake, Intake::Poll);
    // The bad file stays (no failed folder) and is not sent again by the next poll; the
    // notification of the missed file, arriving late, finds it gone.
    let later = w.service.poll(None).await.unwrap();
    assert_eq!(later.queued, 0, "{later:?}");
    assert_eq!(
        w.deliver("incoming/missed 1+2.csv").await.unwrap(),
        Handled::Gone
    );
    assert_eq!(w.parts(), 2);
    assert_eq!(
        w.keys(),
        vec![
            "done/missed 1+2.csv",
            "done/notified.csv",
            "incoming/bad.csv",
            "incoming/sub/"
        ]
    );
    // Past its time budget a poll sends nothing and says what it left.
    w.drop_file("incoming/later.csv", "id,name\n5,eve\n");
    let late = w.service.poll(Some(Instant::now())).await.unwrap();
    assert_eq!((late.queued, late.left_for_next_poll), (0, 1), "{late:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_whose_send_fails_says_so_and_the_next_poll_sends_the_files() {
    let w = world(json!({"table": "orders"}));
    w.drop_file("incoming/a.csv", GOOD_CSV);
    w.poll_queue.fail_next(MemoryPolledFileQueue::throttled());
    let report = w.service.poll(None).await.unwrap();
    assert_eq!(report.queued, 0, "{report:?}");
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert!(
        report.failed[0].contains(&w.connector.connector_id)
            && report.failed[0].contains("RequestThrottled"),
        "{report:?}"
    );
    assert!(w.poll_queue.messages().is_empty());
    assert_eq!(w.keys(), vec!["incoming/a.csv"], "the file waits in place");
    let next = w.service.poll(None).await.unwrap();
    assert_eq!((next.queued, next.failed.len()), (1, 0), "{next:?}");
    w.deliver_polled().await;
    assert_eq!(w.lake_ids(), vec![1, 2, 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_does_not_send_a_file_an_invocation_holds_until_its_claim_lapses() {
    let w = world(json!({"table": "orders"}));
    w.drop_file("incoming/a.csv", GOOD_CSV);
    // The claim is written, then the invocation stops writing: it still holds the file.
    w.service.ledger().fail_writes_after(1);
    assert!(w.deliver("incoming/a.csv").await.is_err());
    w.service.ledger().heal();
    assert_eq!(w.only_file().status, FileStatus::Processing);
    let held = w.service.poll(None).await.unwrap();
    assert_eq!(held.queued, 0, "{held:?}");
    // Its holder crashed: once the lease lapses the poll sends the file and it loads.
    w.lapse_leases();
    let lapsed = w.service.poll(None).await.unwrap();
    assert_eq!(lapsed.queued, 1, "{lapsed:?}");
    w.deliver_polled().await;
    assert_eq!(w.only_file().status, FileStatus::Succeeded);
    assert_eq!(w.lake_ids(), vec![1, 2, 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_lists_a_connector_up_to_its_limit_and_the_rest_next_time() {
    let settings = IngestSettings {
        poll_page_keys: 2,
        poll_objects_per_connector: 3,
        ..IngestSettings::default()
    };
    let w = world_with(ingest_connector(json!({"table": "orders"})), settings);
    for n in 1..=5 {
        w.drop_file(&format!("incoming/{n}.csv"), &format!("id,name\n{n},x\n"));
    }
    // Pages of 2: the second page crosses the limit of 3 and is finished, the third waits.
    let first = w.service.poll(None).await.unwrap();
    assert_eq!(first.queued, 4, "{first:?}");
    w.deliver_polled().await;
    assert_eq!(w.keys(), vec!["incoming/5.csv"]);
    // This time through the trait the handler calls.
    let second = IngestFiles::poll_prefixes(&w.service, None).await.unwrap();
    assert_eq!(second.queued, 1, "{second:?}");
    w.deliver_polled().await;
    assert_eq!(w.lake_ids(), vec![1, 2, 3, 4, 5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_skips_a_connector_that_is_no_longer_active() {
    use crate::domain::connector::ConnectorStatus;
    let w = world(json!({"table": "orders"}));
    w.drop_file("incoming/a.csv", GOOD_CSV);
    // Validation failed since the index was written: the poll shard still names it.
    w.service.connectors().seed(|state| {
        for connector in state.connectors.values_mut() {
            connector.status = ConnectorStatus::Failed;
        }
    });
    let report = w.service.poll(None).await.unwrap();
    assert_eq!((report.connectors, report.queued), (0, 0), "{report:?}");
    assert!(w.poll_queue.messages().is_empty());
    assert_eq!(w.keys(), vec!["incoming/a.csv"]);
    assert!(w.service.ledger().files().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_whose_head_is_refused_is_retried_with_the_permission_named() {
    let w = world(json!({"table": "orders"}));
    w.drop_file("incoming/a.csv", GOOD_CSV);
    w.storage
        .fail(Op::HeadObject, "incoming/", Fault::AccessDenied);
    let error = w.deliver("incoming/a.csv").await.unwrap_err();
    assert!(error.to_string().contains("s3:GetObject"), "{error}");
    // Not taken for a file that is gone: nothing recorded, the file untouched.
    assert!(w.service.ledger().files().is_empty());
    assert_eq!(w.keys(), vec!["incoming/a.csv"]);
}

/// The buffer reserved for a part holds a part cut the way the service cuts them (after the
/// batch that crosses the size), without reserving much more.
#[test]
fn a_part_cut_at_its_size_fits_the_buffer_reserved_for_it() {
    use crate::lake::part_file::PartEncoder;
    use crate::lake::seed::{self, SeedTable};
    let part_bytes = 256 * 1024;
    let capacity = part_capacity(part_bytes);
    assert!(capacity <= 2 * part_bytes, "{capacity}");
    let mut encoder =
        PartEncoder::with_capacity("sales", &seed::schema(SeedTable::Sales), capacity)
            .expect("an encoder");
    let mut offset = 0;
    while encoder.size() < part_bytes {
        encoder
            .write(&seed::batch(SeedTable::Sales, 1, offset, 1024))
            .expect("encodes");
        offset += 1024;
    }
    let part = encoder.finish().expect("finishes");
    assert!(
        (part_bytes / 2..=capacity).contains(&part.bytes.len()),
        "{} bytes for a part cut at {part_bytes}, {capacity} reserved",
        part.bytes.len()
    );
}

/// Past the single-copy size a move is a multipart copy of 5 MiB parts (S3's smallest), the
/// last one shorter, and the moved object is byte for byte the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_past_the_single_copy_size_is_a_multipart_copy() {
    let settings = IngestSettings {
        single_copy_bytes: 1024,
        copy_part_bytes: 1024,
        ..IngestSettings::default()
    };
    let w = world_with(
        ingest_connector(json!({"table": "orders", "success_dir": "done/"})),
        settings,
    );
    let mut csv = String::from("id,name\n");
    let mut id = 0;
    while csv.len() < 11 << 20 {
        csv.push_str(&format!("{id},name-{id}\n"));
        id += 1;
    }
    w.drop_file("incoming/big.csv", &csv);
    let file = finished(w.deliver("incoming/big.csv").await.unwrap());
    assert_eq!(file.status, FileStatus::Succeeded);
    assert_eq!(w.keys(), vec!["done/big.csv"]);
    assert!(w.body("done/big.csv") == csv, "the moved object differs");
    let copies = w
        .storage
        .calls()
        .iter()
        .filter(|c| c.op == Op::CopyPart)
        .count();
    assert_eq!(copies, 3, "11 MiB in parts of 5 MiB");
}

/// Set in the child process [`a_file_larger_than_the_memory_limit_loads`] starts.
const UNDER_MEMORY_LIMIT: &str = "INGEST_TEST_UNDER_MEMORY_LIMIT";
/// The child's data segment limit (RLIMIT_DATA: heap and private anonymous mappings).
const MEMORY_LIMIT_MIB: u64 = 256;

/// A file larger than the memory the process may use loads. The test re-runs this binary for
/// [`loads_a_file_twice_the_memory_limit`] in a child whose data segment is capped, so memory
/// that grew with the file would abort the child at its first refused allocation.
#[test]
fn a_file_larger_than_the_memory_limit_loads() {
    let exe = std::env::current_exe().expect("the test binary");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -d {} && exec \"$0\" \"$@\"",
            MEMORY_LIMIT_MIB * 1024
        ))
        .arg(exe)
        .args([
            "ingest::service::tests::loads_a_file_twice_the_memory_limit",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(UNDER_MEMORY_LIMIT, "1")
        .output()
        .expect("the child runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "the child failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}

/// Only meaningful under the limit; run through [`a_file_larger_than_the_memory_limit_loads`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by a_file_larger_than_the_memory_limit_loads, in a process with capped memory"]
async fn loads_a_file_twice_the_memory_limit() {
    assert_eq!(
        std::env::var(UNDER_MEMORY_LIMIT).as_deref(),
        Ok("1"),
        "run through a_file_larger_than_the_memory_limit_loads"
    );
    let limits = std::fs::read_to_string("/proc/self/limits").expect("/proc/self/limits");
    let data_limit = limits
        .lines()
        .find(|l| l.starts_with("Max data size"))
        .expect("a data size limit line");
    assert!(
        data_limit.contains(&(MEMORY_LIMIT_MIB << 20).to_string()),
        "the limit is in force: {data_limit}"
    );
    // 256 KiB of distinct rows repeated: zstd's window spans a repeat, so the stored object stays
    // small while its content is twice the limit.
    let mut chunk = String::new();
    let mut chunk_rows = 0u64;
    while chunk.len() < 256 << 10 {
        chunk.push_str(&format!(
            "{chunk_rows},customer {},{}.{:02},2026-12-0{}T10:00:00Z\n",
            chunk_rows * 7919 % 10_007,
            chunk_rows % 1_000,
            chunk_rows % 100,
            chunk_rows % 9 + 1
        ));
        chunk_rows += 1;
    }
    let header = "id,name,amount,at\n";
    let repeats = ((2 * MEMORY_LIMIT_MIB) << 20) / chunk.len() as u64 + 1;
    let mut encoder = zstd::Encoder::new(Vec::new(), 1).expect("zstd");
    encoder.write_all(header.as_bytes()).unwrap();
    for _ in 0..repeats {
        encoder.write_all(chunk.as_bytes()).unwrap();
    }
    let compressed = encoder.finish().unwrap();
    let content = header.len() as u64 + repeats * chunk.len() as u64;
    assert!(content > (2 * MEMORY_LIMIT_MIB) << 20);
    assert!(compressed.len() < 16 << 20, "{} bytes", compressed.len());

    let w = world(json!({"table": "orders"}));
    w.lake.forget_rows();
    w.storage
        .put_object(BUCKET, "incoming/huge.csv.zst", &compressed);
    drop(compressed);
    let file = finished(w.deliver("incoming/huge.csv.zst").await.unwrap());
    assert_eq!(file.status, FileStatus::Succeeded, "{file:?}");
    assert_eq!(file.rows_loaded, repeats * chunk_rows);
    assert_eq!(file.content_bytes, content);
    assert!(w.parts() > 1, "{file:?}");
    assert!(
        w.keys().is_empty(),
        "the good file is deleted: {:?}",
        w.keys()
    );
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let peak = status
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .unwrap_or("VmHWM unknown");
    eprintln!("{content} bytes of CSV loaded under a {MEMORY_LIMIT_MIB} MiB data limit; {peak}");
}
