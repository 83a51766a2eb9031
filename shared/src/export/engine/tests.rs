//! A run through the fakes: the lake, the runs table, the connectors table, STS and the
//! customer's bucket, with the failures an emulator cannot produce on demand.

use std::io::Read;

use serde_json::json;

use super::*;
use crate::domain::connector::platform::OwnResources;
use crate::domain::export::run::RunTrigger;
use crate::domain::testing::{EXTERNAL_ID, export_connector};
use crate::fakes::lake::MemoryLake;
use crate::fakes::claims::MemoryRunClaims;
use crate::fakes::runs::{MemoryRunQueue, MemoryRunStore, RunOp};
use crate::fakes::storage::{Fault, MemoryStorage, Op};
use crate::fakes::sts::{FakeRole, MemorySts};
use crate::fakes::{MemoryConnectorStore, MemorySecretStore};
use crate::lake::seed::{self, SeedTable};

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
    MemoryRunClaims,
>;

struct World {
    engine: Engine,
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
        sts,
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
            claims: MemoryRunClaims::default(),
        },
        Arc::new(broker),
        storage.clone(),
        settings,
    );
    World {
        engine,
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
        Ok(self.engine.runs.get(&self.connector.connector_id, &run_id).await?)
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
        self.engine.runs.create(&run).await.unwrap();
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
