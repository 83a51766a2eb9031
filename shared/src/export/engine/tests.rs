//! A run through the fakes: the lake, the runs table, the connectors table, STS and the
//! customer's bucket, with the failures an emulator cannot produce on demand.

use std::io::Read;

use aws_credential_types::provider::SharedCredentialsProvider;
use serde_json::json;

use super::*;
use crate::domain::connector::platform::OwnResources;
use crate::domain::export::run::RunTrigger;
use crate::domain::testing::{EXTERNAL_ID, export_connector};
use crate::fakes::lake::MemoryLake;
use crate::fakes::queue::MemoryRunQueue;
use crate::fakes::runs::{MemoryRunStore, RunOp};
use crate::fakes::storage::{Fault, MemoryStorage, Op};
use crate::fakes::sts::{FakeRole, MemorySts};
use crate::fakes::{MemoryConnectorStore, MemorySecretStore};
use crate::lake::seed::{self, SeedTable};
use crate::ports::ClaimOutcome;

const PRINCIPAL: &str = "arn:aws:iam::123456789012:role/connector-access";
const ROLE: &str = "arn:aws:iam::111111111111:role/acme-export";
const BUCKET: &str = "acme-exports";

type Engine = ExportEngine<
    MemoryLake,
    MemoryRunStore,
    MemoryConnectorStore,
    MemorySts,
    MemorySecretStore,
    MemoryStorage,
    MemoryRunQueue,
>;

struct World {
    engine: Engine,
    sts: MemorySts,
    storage: MemoryStorage,
    lake: Arc<MemoryLake>,
    connector: Connector,
}

fn world(export: serde_json::Value) -> World {
    world_with(export_connector(export))
}

fn world_with(connector: Connector) -> World {
    world_with_settings(connector, ExportSettings::new(std::env::temp_dir()))
}

fn world_with_settings(connector: Connector, settings: ExportSettings) -> World {
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
        sts.clone(),
        MemorySecretStore::default(),
        PRINCIPAL.into(),
        crate::credentials::TokenSource::None,
        own,
    );
    let storage = MemoryStorage::new().with_bucket(BUCKET, "us-east-1");
    let connectors = MemoryConnectorStore::default();
    let stored = connector.clone();
    connectors.seed(move |state| {
        state.connectors.insert(
            (stored.tenant_id.clone(), stored.connector_id.clone()),
            stored,
        );
    });
    let lake = Arc::new(MemoryLake::new());
    let engine = ExportEngine::new(
        lake.clone(),
        RunStores {
            runs: MemoryRunStore::default(),
            connectors,
            queue: MemoryRunQueue::default(),
        },
        Arc::new(broker),
        storage.clone(),
        settings,
    );
    World {
        engine,
        sts,
        storage,
        lake,
        connector,
    }
}

impl World {
    fn append(&self, table: SeedTable, first_row: u64, rows: usize) -> RecordBatch {
        let batch = seed::batch(table, 3, first_row, rows);
        self.lake
            .append_at(
                &self.connector.tenant_id,
                table.name(),
                std::slice::from_ref(&batch),
                Utc::now(),
            )
            .unwrap();
        batch
    }

    /// Queues a run and delivers the export queue's messages until none is left.
    async fn run(&self) -> Result<Option<Run>, EngineError> {
        let run_id = self.queue_run().await;
        self.deliver_all(&Delivery::unbounded()).await;
        Ok(self
            .engine
            .runs
            .get(&self.connector.connector_id, &run_id)
            .await?)
    }

    /// Records a run `queued` and sends its start message, as the API and the tick do.
    async fn queue_run(&self) -> String {
        let run_id = format!("run_{}", uuid::Uuid::now_v7().simple());
        let run = Run::queued(
            &self.connector.tenant_id,
            &self.connector.connector_id,
            run_id.clone(),
            RunTrigger::Api,
            Utc::now(),
        );
        let claimed = self.engine.runs.claim(&run, 4).await.unwrap();
        assert_eq!(claimed, ClaimOutcome::Claimed);
        self.engine
            .queue
            .enqueue(&RunMessage::start(&run))
            .await
            .unwrap();
        run_id
    }

    /// Delivers every message sent so far and those they send, as SQS and Lambda would: a
    /// message whose delivery fails is delivered again (with a higher receive count) up to
    /// the queue's maxReceiveCount, then dropped as SQS moves it to the dead-letter queue.
    /// The failures, in order.
    async fn deliver_all(&self, delivery: &Delivery) -> Vec<EngineError> {
        let mut failures = Vec::new();
        let mut pending: Vec<(RunMessage, u32)> = Vec::new();
        for _ in 0..1_000 {
            pending.extend(self.engine.queue.take_new().into_iter().map(|m| (m, 1)));
            let Some((message, count)) = (!pending.is_empty()).then(|| pending.remove(0)) else {
                return failures;
            };
            let this = Delivery {
                receive_count: count,
                ..*delivery
            };
            if let Err(e) = self.engine.execute(&message, &this).await {
                failures.push(e);
                if count < self.engine.settings.max_receive_count {
                    pending.push((message, count + 1));
                }
            }
        }
        panic!("the queue did not drain");
    }

    fn message(&self, run_id: &str) -> RunMessage {
        RunMessage {
            tenant_id: self.connector.tenant_id.clone(),
            connector_id: self.connector.connector_id.clone(),
            run_id: run_id.to_owned(),
            task: None,
            continuation: 0,
        }
    }

    fn object(&self, key: &str) -> Vec<u8> {
        self.storage
            .bucket(BUCKET)
            .unwrap()
            .objects
            .get(key)
            .unwrap_or_else(|| panic!("no object {key}"))
            .body
            .clone()
    }

    fn keys(&self) -> Vec<String> {
        self.storage.keys(BUCKET)
    }

    fn open_uploads(&self) -> usize {
        self.storage.bucket(BUCKET).unwrap().uploads.len()
    }

    async fn watermarks(&self) -> Watermarks {
        self.engine
            .runs
            .watermarks(&self.connector.connector_id)
            .await
            .unwrap()
    }
}

fn gunzip(bytes: &[u8]) -> String {
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_string(&mut text)
        .unwrap();
    text
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn a_run_writes_its_files_then_the_manifest_then_the_marker_then_moves_the_watermark() {
    let w = world(json!({"tables": [{"name": "sales"}, {"name": "stores"}]}));
    w.append(SeedTable::Sales, 0, 50);
    w.append(SeedTable::Sales, 50, 30);
    w.append(SeedTable::Stores, 0, 7);
    let run = w.run().await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(run.files.len(), 2);
    assert_eq!(run.rows(), 87);
    let plan = run.plan.as_ref().unwrap();

    let sales = &run.files[0];
    assert_eq!(sales.table, "sales");
    assert!(
        sales.key.starts_with("exports/acme-shop/sales/") && sales.key.ends_with("_00001.csv.gz"),
        "{}",
        sales.key
    );
    let body = w.object(&sales.key);
    assert_eq!(sales.sha256, sha256_hex(&body));
    assert_eq!(sales.bytes, body.len() as u64);
    let text = gunzip(&body);
    assert!(
        text.starts_with("sale_id,") || text.lines().next().unwrap().contains(','),
        "a header row: {}",
        &text[..80]
    );

    let manifest: Manifest = serde_json::from_slice(&w.object(&plan.manifest_key)).unwrap();
    assert_eq!(manifest.run_id, run.run_id);
    let listed: Vec<(&str, u64, &str)> = manifest
        .files
        .iter()
        .map(|f| (f.key.as_str(), f.bytes, f.sha256.as_str()))
        .collect();
    let written: Vec<(&str, u64, &str)> = run
        .files
        .iter()
        .map(|f| (f.key.as_str(), f.bytes, f.sha256.as_str()))
        .collect();
    assert_eq!(listed, written, "the manifest matches the objects");
    assert!(
        manifest.files[0]
            .schema
            .iter()
            .any(|c| c.kind.starts_with("decimal("))
    );
    assert_eq!(
        manifest.watermarks["sales"],
        WatermarkRange {
            after: None,
            through: Some(2)
        }
    );

    // The marker comes last of all writes.
    let puts: Vec<String> = w
        .storage
        .calls()
        .into_iter()
        .filter(|c| matches!(c.op, Op::Put | Op::CreateUpload))
        .map(|c| c.key)
        .collect();
    assert_eq!(puts.last(), plan.done_key.as_ref(), "{puts:?}");
    assert!(
        puts.iter().position(|k| *k == plan.manifest_key)
            > puts.iter().position(|k| *k == sales.key)
    );
    let data_put = w
        .storage
        .calls()
        .into_iter()
        .find(|c| c.key == sales.key)
        .unwrap();
    assert_eq!(
        data_put.options.unwrap().content_type.as_deref(),
        Some("application/gzip")
    );

    assert_eq!(
        w.watermarks().await,
        [("sales".to_owned(), 2), ("stores".to_owned(), 1)]
            .into_iter()
            .collect()
    );
    // Nothing new: the next run writes no data file.
    let again = w.run().await.unwrap().unwrap();
    assert_eq!(again.status, RunStatus::Succeeded);
    assert!(again.files.is_empty());
}

#[tokio::test]
async fn a_redelivered_run_after_a_failure_on_our_side_overwrites_and_never_adds() {
    let w = world(json!({"tables": [{"name": "sales"}]}));
    w.append(SeedTable::Sales, 0, 40);
    // The manifest's write is throttled past the retries: the finishing step stops and its
    // message is delivered again.
    w.storage
        .fail_times(Op::Put, "exports/_runs/", Fault::SlowDown, 1);
    let run_id = w.queue_run().await;
    let failures = w.deliver_all(&Delivery::unbounded()).await;
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(matches!(failures[0], EngineError::Retry(_)));
    let run = w
        .engine
        .runs
        .get(&w.connector.connector_id, &run_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    let data: Vec<String> = w
        .keys()
        .into_iter()
        .filter(|k| !k.contains("/_runs/"))
        .collect();
    assert_eq!(data.len(), 1, "one data file, not two: {data:?}");
    assert_eq!(w.watermarks().await.get("sales"), Some(&1));

    // And another delivery of a finished run's messages writes nothing.
    let calls = w.storage.calls().len();
    let again = w
        .engine
        .execute(&w.message(&run_id), &Delivery::unbounded())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.status, RunStatus::Succeeded);
    assert_eq!(w.storage.calls().len(), calls);
}

#[tokio::test]
async fn a_denied_write_fails_the_run_names_the_permission_and_keeps_the_watermark() {
    let w = world(json!({"tables": [{"name": "sales"}]}));
    w.append(SeedTable::Sales, 0, 40);
    w.storage
        .fail(Op::Put, "exports/acme-shop/", Fault::AccessDenied);
    w.storage
        .fail(Op::CreateUpload, "exports/acme-shop/", Fault::AccessDenied);
    let run = w.run().await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    let error = run.error.unwrap();
    assert_eq!(error.reason, "access_denied");
    assert_eq!(error.aws_error_code.as_deref(), Some("AccessDenied"));
    assert!(
        error.remediation.contains("s3:PutObject")
            && error
                .remediation
                .contains("arn:aws:s3:::acme-exports/exports/*"),
        "{}",
        error.remediation
    );
    assert_eq!(w.watermarks().await, Watermarks::new());
    assert!(
        w.keys().iter().all(|k| !k.ends_with(".DONE")),
        "{:?}",
        w.keys()
    );
    assert_eq!(w.open_uploads(), 0);
}

#[tokio::test]
async fn a_value_that_cannot_be_written_unquoted_fails_the_run_without_a_file() {
    let w = world(
        json!({"tables": [{"name": "sales"}], "format": {"type": "csv", "quote": "never"}, "compression": "none"}),
    );
    w.append(SeedTable::Sales, 0, 200);
    let run = w.run().await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    let error = run.error.unwrap();
    assert_eq!(error.reason, "value_not_writable", "{error:?}");
    assert!(error.message.contains("row "), "{}", error.message);
    assert!(w.keys().is_empty(), "nothing written: {:?}", w.keys());
    assert_eq!(w.open_uploads(), 0);
    assert_eq!(w.watermarks().await, Watermarks::new());
}

#[tokio::test]
async fn selected_columns_come_in_order_with_the_source_connector_column_last() {
    let w = world(json!({
        "tables": [{"name": "stores", "columns": ["city", "store_id"]}],
        "source_connector_id_column": "source_connector",
        "compression": "none",
        "format": {"type": "csv", "quote": "all"},
    }));
    let schema = seed::schema(SeedTable::Stores);
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert!(
        names.contains(&"city") && names.contains(&"store_id"),
        "{names:?}"
    );
    w.append(SeedTable::Stores, 0, 3);
    let run = w.run().await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    let text = String::from_utf8(w.object(&run.files[0].key)).unwrap();
    assert_eq!(
        text.lines().next().unwrap(),
        "\"city\",\"store_id\",\"source_connector\""
    );
    assert!(
        text.lines().nth(1).unwrap().ends_with(",\"con_1\""),
        "{text}"
    );
}

#[tokio::test]
async fn a_missing_table_or_column_is_named_with_what_exists() {
    let w = world(json!({"tables": [{"name": "orders"}]}));
    w.append(SeedTable::Sales, 0, 3);
    let error = w.run().await.unwrap().unwrap().error.unwrap();
    assert_eq!(error.reason, "table_not_found");
    assert!(error.remediation.contains("sales"), "{}", error.remediation);

    let w = world(json!({"tables": [{"name": "sales", "columns": ["nope"]}]}));
    w.append(SeedTable::Sales, 0, 3);
    let error = w.run().await.unwrap().unwrap().error.unwrap();
    assert_eq!(error.reason, "column_not_found");
    assert!(error.message.contains("nope"));
}

#[tokio::test]
async fn without_the_success_marker_no_done_is_written() {
    let w = world(
        json!({"tables": [{"name": "sales"}], "success_marker": false, "format": {"type": "parquet"}, "compression": "zstd"}),
    );
    w.append(SeedTable::Sales, 0, 10);
    let run = w.run().await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert!(w.keys().iter().all(|k| !k.ends_with(".DONE")));
    let key = &run.files[0].key;
    assert!(
        key.contains("/sales.parquet/") && key.ends_with(".parquet"),
        "{key}"
    );
    assert_eq!(&w.object(key)[..4], b"PAR1");
}

#[tokio::test]
async fn a_bucket_policy_connector_whose_challenge_file_is_gone_fails_and_needs_attention() {
    let mut connector = export_connector(json!({"tables": [{"name": "sales"}]}));
    connector.auth = crate::domain::connector::Auth::BucketPolicy;
    let w = world_with(connector);
    w.append(SeedTable::Sales, 0, 3);
    let run = w.run().await.unwrap().unwrap();
    let error = run.error.unwrap();
    assert_eq!(error.reason, "challenge_file_missing");
    assert!(error.remediation.contains(&w.connector.challenge_file));
    let stored = w.engine.connectors.state().connectors[&(
        w.connector.tenant_id.clone(),
        w.connector.connector_id.clone(),
    )]
        .clone();
    assert_eq!(stored.status, ConnectorStatus::NeedsAttention);
    assert!(w.keys().is_empty());

    // With the file back, the run writes (as our principal, handing objects to the owner).
    w.storage
        .put_object(BUCKET, &w.connector.challenge_key(), b"");
    let mut active = stored;
    active.status = ConnectorStatus::Active;
    w.engine.connectors.seed(move |s| {
        s.connectors.insert(
            (active.tenant_id.clone(), active.connector_id.clone()),
            active,
        );
    });
    let run = w.run().await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    let put = w
        .storage
        .calls()
        .into_iter()
        .find(|c| c.key == run.files[0].key)
        .unwrap();
    assert!(put.options.unwrap().bucket_owner_full_control);
}

#[tokio::test]
async fn a_connector_that_is_not_active_does_not_run() {
    let mut connector = export_connector(json!({}));
    connector.status = ConnectorStatus::PendingValidation;
    let w = world_with(connector);
    let error = w.run().await.unwrap().unwrap().error.unwrap();
    assert_eq!(error.reason, "not_active");
    assert_eq!(
        error.message,
        "the connector is pending_validation, not active"
    );
    assert!(error.remediation.contains("/validate"));
}

#[tokio::test]
async fn an_empty_file_has_the_tables_columns_when_nothing_is_new() {
    let w = world(
        json!({"tables": [{"name": "stores", "columns": ["store_id", "city"]}], "empty_export": "empty_file", "compression": "none"}),
    );
    w.append(SeedTable::Stores, 0, 5);
    let first = w.run().await.unwrap().unwrap();
    assert_eq!(first.files[0].rows, 5);
    let second = w.run().await.unwrap().unwrap();
    assert_eq!(second.status, RunStatus::Succeeded, "{:?}", second.error);
    assert_eq!(second.files.len(), 1);
    assert_eq!(second.files[0].rows, 0);
    let text = String::from_utf8(w.object(&second.files[0].key)).unwrap();
    assert_eq!(text, "store_id,city\n", "only the header");
}

/// The rows of a run's data files, decompressed, headers dropped, in file order.
fn data_rows(w: &World, run: &Run) -> Vec<String> {
    let mut rows = Vec::new();
    for file in &run.files {
        let body = w.object(&file.key);
        let text = if file.key.ends_with(".gz") {
            gunzip(&body)
        } else if file.key.ends_with(".zst") {
            String::from_utf8(zstd::decode_all(&body[..]).unwrap()).unwrap()
        } else {
            String::from_utf8(body).unwrap()
        };
        rows.extend(
            text.lines()
                .skip(usize::from(file.key.contains(".csv")))
                .map(str::to_owned),
        );
    }
    rows
}

fn tasks_of(w: &World, run: &Run) -> Vec<TaskRecord> {
    w.engine
        .runs
        .state()
        .tasks
        .values()
        .filter(|t| t.run_id == run.run_id)
        .cloned()
        .collect()
}

fn puts_of(w: &World, key: &str) -> usize {
    w.storage
        .calls()
        .iter()
        .filter(|c| c.op == Op::Put && c.key == key)
        .count()
}

fn large_settings() -> ExportSettings {
    let mut settings = ExportSettings::new(std::env::temp_dir());
    settings.upload.first_part_size = crate::export::upload::MIN_PART_SIZE;
    settings
}

/// Enough rows of `sales` for a CSV of more than two 5 MiB parts.
const LARGE_ROWS: usize = 120_000;

#[tokio::test]
async fn each_file_is_its_own_task_and_the_last_one_written_finishes_the_run_once() {
    let w = world(json!({"tables": [{"name": "sales"}, {"name": "stores"}, {"name": "products"}]}));
    w.append(SeedTable::Sales, 0, 20);
    w.append(SeedTable::Stores, 0, 5);
    w.append(SeedTable::Products, 0, 9);
    let run = w.run().await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    let messages = w.engine.queue.messages();
    let tasks: Vec<Option<u32>> = messages.iter().map(|m| m.task).collect();
    assert_eq!(
        tasks,
        [None, Some(0), Some(1), Some(2)],
        "a start, then one message per file"
    );
    let records = tasks_of(&w, &run);
    assert_eq!(records.len(), 3);
    assert!(
        records
            .iter()
            .all(|t| t.state == TaskState::Written && t.attempts == 1)
    );
    let plan = run.plan.as_ref().unwrap();
    assert_eq!(puts_of(&w, &plan.manifest_key), 1);
    assert_eq!(puts_of(&w, plan.done_key.as_ref().unwrap()), 1);
    assert_eq!(w.engine.runs.state().watermarks["con_1"].version, 1);
    let claims = w.engine.runs.state().claims;
    assert_eq!(claims.released, std::slice::from_ref(&run.run_id));
    assert!(claims.in_flight.is_empty(), "{:?}", claims.in_flight);
    assert!(
        claims.seats.values().all(|s| s.is_empty()),
        "{:?}",
        claims.seats
    );
}

#[tokio::test]
async fn a_run_killed_at_any_point_and_retried_writes_the_same_objects_once() {
    type Inject = fn(&World);
    let cases: [(&str, Inject); 7] = [
        ("between two parts", |w| {
            w.storage
                .fail_between(Op::UploadPart, "exports/acme-shop/", Fault::SlowDown, 1, 4)
        }),
        ("after the last part", |w| {
            w.storage
                .fail_times(Op::CompleteUpload, "exports/acme-shop/", Fault::SlowDown, 4)
        }),
        ("after the file, before its task was saved", |w| {
            w.engine
                .runs
                .fail_next(RunOp::SaveTask, retryable_store_error())
        }),
        ("after the task was saved, before it was counted", |w| {
            w.engine
                .runs
                .fail_next(RunOp::CountWritten, retryable_store_error())
        }),
        ("after the manifest", |w| {
            w.storage
                .fail_times(Op::Put, "exports/_runs/", Fault::SlowDown, 1);
            // The manifest passes (it is the first Put under _runs/), the marker does not.
            w.storage
                .fail_between(Op::Put, "exports/_runs/", Fault::SlowDown, 1, 1);
        }),
        ("before the watermark", |w| {
            w.engine
                .runs
                .fail_next(RunOp::AdvanceWatermarks, retryable_store_error())
        }),
        ("while fanning out", |w| {
            w.engine.queue.fail_next(MemoryRunQueue::throttled())
        }),
    ];
    let reference = {
        let w = world_with_settings(
            export_connector(json!({"tables": [{"name": "sales"}], "compression": "none"})),
            large_settings(),
        );
        w.append(SeedTable::Sales, 0, LARGE_ROWS);
        let run = w.run().await.unwrap().unwrap();
        assert!(
            run.bytes() > 2 * crate::export::upload::MIN_PART_SIZE as u64,
            "{} bytes: more than two parts",
            run.bytes()
        );
        data_rows(&w, &run)
    };
    for (point, inject) in cases {
        // One part in flight, so that the faults "between two parts" all strike one part.
        let mut settings = large_settings();
        settings.upload.parts_in_flight = 1;
        let w = world_with_settings(
            export_connector(json!({"tables": [{"name": "sales"}], "compression": "none"})),
            settings,
        );
        w.append(SeedTable::Sales, 0, LARGE_ROWS);
        let run_id = w.queue_run().await;
        inject(&w);
        let failures = w.deliver_all(&Delivery::unbounded()).await;
        assert!(!failures.is_empty(), "{point}: the fault struck");
        let run = w.engine.runs.get("con_1", &run_id).await.unwrap().unwrap();
        assert_eq!(run.status, RunStatus::Succeeded, "{point}: {:?}", run.error);
        let plan = run.plan.as_ref().unwrap();
        let data: Vec<String> = w
            .keys()
            .into_iter()
            .filter(|k| !k.contains("/_runs/"))
            .collect();
        let planned: Vec<String> = plan.files.iter().map(|f| f.key.clone()).collect();
        assert_eq!(data, planned, "{point}: the planned objects, no others");
        assert_eq!(data_rows(&w, &run), reference, "{point}: every row once");
        let runs_folder: Vec<String> = w
            .keys()
            .into_iter()
            .filter(|k| k.contains("/_runs/"))
            .collect();
        assert_eq!(
            runs_folder.len(),
            2,
            "{point}: one manifest, one marker: {runs_folder:?}"
        );
        let manifest: Manifest = serde_json::from_slice(&w.object(&plan.manifest_key)).unwrap();
        assert_eq!(manifest.files.len(), 1, "{point}");
        assert_eq!(
            manifest.files[0].sha256,
            sha256_hex(&w.object(&planned[0])),
            "{point}"
        );
        let marks = &w.engine.runs.state().watermarks["con_1"];
        assert_eq!(
            (marks.version, marks.watermarks.get("sales")),
            (1, Some(&1)),
            "{point}: advanced once"
        );
        assert_eq!(w.open_uploads(), 0, "{point}: nothing left open");
    }
}

fn internal_error() -> Fault {
    Fault::Error(AwsCallError {
        service: "s3",
        operation: "",
        code: Some("InternalError".into()),
        message: "We encountered an internal error. Please try again.".into(),
        http_status: Some(500),
        retryable: true,
    })
}

fn retryable_store_error() -> StoreError {
    StoreError::Aws(AwsCallError {
        service: "dynamodb",
        operation: "PutItem",
        code: Some("ProvisionedThroughputExceededException".into()),
        message: "slow down".into(),
        http_status: Some(400),
        retryable: true,
    })
}

#[tokio::test]
async fn forced_continuations_give_the_content_of_an_uninterrupted_run() {
    // (options, rows): uncompressed CSV, JSONL in zstd frames, CSV in gzip members.
    let cases = [
        (json!({"compression": "none"}), LARGE_ROWS),
        (
            json!({"format": {"type": "jsonl"}, "compression": "zstd"}),
            2 * LARGE_ROWS,
        ),
        (json!({"compression": "gzip"}), 3 * LARGE_ROWS),
    ];
    for (options, rows) in cases {
        let mut export = json!({"tables": [{"name": "sales"}]});
        export
            .as_object_mut()
            .unwrap()
            .extend(options.as_object().unwrap().clone());
        let mut outputs = Vec::new();
        for deadline in [None, Some(Instant::now())] {
            let mut settings = large_settings();
            settings.deadline_margin = Duration::ZERO;
            let w = world_with_settings(export_connector(export.clone()), settings);
            w.append(SeedTable::Sales, 0, rows);
            let run_id = w.queue_run().await;
            let failures = w
                .deliver_all(&Delivery {
                    deadline,
                    receive_count: 1,
                })
                .await;
            assert!(failures.is_empty(), "{export}: {failures:?}");
            let run = w.engine.runs.get("con_1", &run_id).await.unwrap().unwrap();
            assert_eq!(
                run.status,
                RunStatus::Succeeded,
                "{export}: {:?}",
                run.error
            );
            let task = &tasks_of(&w, &run)[0];
            let body = w.object(&run.files[0].key);
            assert_eq!(run.files[0].sha256, sha256_hex(&body), "{export}");
            assert_eq!(run.files[0].rows, rows as u64, "{export}");
            outputs.push((data_rows(&w, &run), task.continuations, task.restarts));
            assert_eq!(w.open_uploads(), 0);
        }
        let (uninterrupted, none, _) = &outputs[0];
        let (continued, continuations, restarts) = &outputs[1];
        assert_eq!(*none, 0, "{export}");
        assert!(
            *continuations >= 1,
            "{export}: the deadline forced a continuation"
        );
        assert_eq!(*restarts, 0, "{export}");
        assert_eq!(
            continued, uninterrupted,
            "{export}: the same rows in the same order"
        );
    }
}

#[tokio::test]
async fn a_format_that_cannot_continue_runs_to_the_end_past_the_margin() {
    let mut settings = large_settings();
    settings.deadline_margin = Duration::ZERO;
    let w = world_with_settings(
        export_connector(json!({"tables": [{"name": "sales"}], "format": {"type": "parquet"}})),
        settings,
    );
    w.append(SeedTable::Sales, 0, 5_000);
    let run_id = w.queue_run().await;
    w.deliver_all(&Delivery {
        deadline: Some(Instant::now()),
        receive_count: 1,
    })
    .await;
    let run = w.engine.runs.get("con_1", &run_id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    let task = &tasks_of(&w, &run)[0];
    assert_eq!(
        (task.continuations, task.restarts, task.attempts),
        (0, 0, 1)
    );
}

#[tokio::test]
async fn a_file_killed_without_a_checkpoint_starts_over_and_the_run_says_so() {
    let w = world_with_settings(
        export_connector(json!({"tables": [{"name": "sales"}], "format": {"type": "parquet"}})),
        large_settings(),
    );
    w.append(SeedTable::Sales, 0, 3_000);
    // A delivery that died mid-file: the task was taken, its lease lapsed, an upload is open.
    let run_id = w.queue_run().await;
    let start = w.engine.queue.take_new();
    w.engine
        .execute(&start[0], &Delivery::unbounded())
        .await
        .unwrap();
    let task_message = w.engine.queue.take_new().remove(0);
    let key = w
        .engine
        .runs
        .get("con_1", &run_id)
        .await
        .unwrap()
        .unwrap()
        .plan
        .unwrap()
        .files[0]
        .key
        .clone();
    let store = w.storage.open(
        SharedCredentialsProvider::new(aws_credential_types::Credentials::new(
            "a", "b", None, None, "t",
        )),
        BUCKET,
        "us-east-1",
    );
    let orphan = store
        .create_upload(&key, &WriteOptions::default())
        .await
        .unwrap();
    w.engine
        .runs
        .take_task("con_1", &run_id, 0, 0, 0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(w.open_uploads(), 1, "{orphan}");

    w.engine
        .execute(&task_message, &Delivery::unbounded())
        .await
        .unwrap();
    let run = w.engine.runs.get("con_1", &run_id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    let task = &tasks_of(&w, &run)[0];
    assert_eq!((task.attempts, task.restarts), (2, 1));
    assert_eq!(w.open_uploads(), 0, "the dead attempt's upload was aborted");
}

#[tokio::test]
async fn a_duplicate_delivery_while_another_invocation_holds_the_task_is_dropped() {
    let w = world(json!({"tables": [{"name": "sales"}]}));
    w.append(SeedTable::Sales, 0, 10);
    let run_id = w.queue_run().await;
    let start = w.engine.queue.take_new();
    w.engine
        .execute(&start[0], &Delivery::unbounded())
        .await
        .unwrap();
    let task_message = w.engine.queue.take_new().remove(0);
    let far = Utc::now().timestamp() + 600;
    w.engine
        .runs
        .take_task("con_1", &run_id, 0, 0, far)
        .await
        .unwrap()
        .unwrap();
    let calls = w.storage.calls().len();
    w.engine
        .execute(&task_message, &Delivery::unbounded())
        .await
        .unwrap();
    assert_eq!(
        w.storage.calls().len(),
        calls,
        "nothing written by the duplicate"
    );
    let run = w.engine.runs.get("con_1", &run_id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Running);
}

#[tokio::test]
async fn revoked_credentials_need_attention_keep_the_watermark_and_the_backlog_follows_once() {
    let w = world(json!({"tables": [{"name": "sales"}], "compression": "none"}));
    w.append(SeedTable::Sales, 0, 10);
    let first = w.run().await.unwrap().unwrap();
    assert_eq!(first.status, RunStatus::Succeeded, "{:?}", first.error);

    // The customer's role no longer trusts us; rows keep arriving meanwhile.
    // (The run's first AssumeRole, with a wrong external ID, is refused anyway.)
    w.sts.refuse_next_where(
        |r| r.external_id.as_deref() == Some(EXTERNAL_ID),
        crate::fakes::sts::sts_error(
            "AssumeRole",
            "AccessDenied",
            403,
            "not authorized to perform sts:AssumeRole",
        ),
    );
    w.append(SeedTable::Sales, 10, 15);
    let refused = w.run().await.unwrap().unwrap();
    assert_eq!(refused.status, RunStatus::Failed);
    let error = refused.error.unwrap();
    assert_eq!(error.reason, "credentials");
    assert!(!error.remediation.is_empty());
    let key = (
        w.connector.tenant_id.clone(),
        w.connector.connector_id.clone(),
    );
    let stored = w.engine.connectors.state().connectors[&key].clone();
    assert_eq!(stored.status, ConnectorStatus::NeedsAttention);
    assert_eq!(w.watermarks().await.get("sales"), Some(&1), "kept");
    w.append(SeedTable::Sales, 25, 5);

    // Validated again: the next run exports everything since the last good one, once.
    let mut active = stored;
    active.status = ConnectorStatus::Active;
    w.engine.connectors.seed(move |s| {
        s.connectors.insert(key, active);
    });
    let backlog = w.run().await.unwrap().unwrap();
    assert_eq!(backlog.status, RunStatus::Succeeded, "{:?}", backlog.error);
    assert_eq!(backlog.rows(), 20);
    assert_eq!(w.watermarks().await.get("sales"), Some(&3));
    let again = w.run().await.unwrap().unwrap();
    assert_eq!(again.rows(), 0, "nothing twice");
}

#[tokio::test]
async fn throttles_and_5xx_on_a_share_of_s3_calls_lose_and_duplicate_nothing() {
    let export = json!({"tables": [{"name": "sales"}, {"name": "stores"}], "compression": "none", "max_file_size_mb": 5});
    let reference = world_with_settings(export_connector(export.clone()), large_settings());
    reference.append(SeedTable::Sales, 0, LARGE_ROWS / 2);
    reference.append(SeedTable::Sales, (LARGE_ROWS / 2) as u64, LARGE_ROWS / 2);
    reference.append(SeedTable::Stores, 0, 50);
    let reference_run = reference.run().await.unwrap().unwrap();
    let w = world_with_settings(
        export_connector(
            json!({"tables": [{"name": "sales"}, {"name": "stores"}], "compression": "none", "max_file_size_mb": 5}),
        ),
        large_settings(),
    );
    w.append(SeedTable::Sales, 0, LARGE_ROWS / 2);
    w.append(SeedTable::Sales, (LARGE_ROWS / 2) as u64, LARGE_ROWS / 2);
    w.append(SeedTable::Stores, 0, 50);
    for (op, fault, times) in [
        (Op::UploadPart, Fault::SlowDown, 3),
        (Op::UploadPart, internal_error(), 2),
        (Op::CreateUpload, Fault::SlowDown, 2),
        (Op::CompleteUpload, internal_error(), 3),
        (Op::Put, Fault::SlowDown, 5),
    ] {
        w.storage.fail_times(op, "", fault, times);
    }
    let run = w.run().await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert!(run.files.len() >= 3, "several files: {}", run.files.len());
    assert_eq!(run.rows(), LARGE_ROWS as u64 + 50);
    let rows = data_rows(&w, &run);
    assert_eq!(
        rows,
        data_rows(&reference, &reference_run),
        "every row once"
    );
    assert_eq!(w.open_uploads(), 0);
}

#[tokio::test]
async fn a_message_that_fails_on_its_last_delivery_fails_the_run_with_the_reason() {
    let w = world(json!({"tables": [{"name": "sales"}]}));
    w.append(SeedTable::Sales, 0, 10);
    w.storage.fail(Op::Put, "exports/_runs/", Fault::SlowDown);
    let run_id = w.queue_run().await;
    let failures = w.deliver_all(&Delivery::unbounded()).await;
    assert_eq!(failures.len(), 3, "maxReceiveCount deliveries");
    let run = w.engine.runs.get("con_1", &run_id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    let error = run.error.unwrap();
    assert_eq!(error.reason, "retries_exhausted");
    assert!(error.message.contains("SlowDown"), "{}", error.message);
    assert_eq!(w.watermarks().await, Watermarks::new());
    let claims = w.engine.runs.state().claims;
    assert_eq!(claims.released, [run_id]);
    assert!(
        claims.in_flight.is_empty(),
        "a failed run frees its connector"
    );
}

#[tokio::test]
async fn the_sweep_aborts_uploads_our_runs_left_and_leaves_the_customers_alone() {
    let w = world(json!({"tables": [{"name": "sales"}]}));
    w.append(SeedTable::Sales, 0, 10);
    let first = w.run().await.unwrap().unwrap();
    let ours = first.files[0].key.clone();
    let store = w.storage.open(
        SharedCredentialsProvider::new(aws_credential_types::Credentials::new(
            "a", "b", None, None, "t",
        )),
        BUCKET,
        "us-east-1",
    );
    store
        .create_upload(&ours, &WriteOptions::default())
        .await
        .unwrap();
    store
        .create_upload(
            "exports/acme-shop/their-own-upload.bin",
            &WriteOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(w.open_uploads(), 2);
    w.run().await.unwrap().unwrap();
    let left: Vec<String> = store
        .list_uploads("")
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.key)
        .collect();
    assert_eq!(left, ["exports/acme-shop/their-own-upload.bin"]);
}
