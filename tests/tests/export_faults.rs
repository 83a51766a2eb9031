//! A fanned-out export run through S3 that throttles and fails: the customer's bucket is reached
//! through a fault-injecting proxy in front of the local S3 server (`tests::fault_proxy`), which
//! answers a fixed share of every S3 operation with `503 SlowDown` or `500 InternalError`, some
//! of them more times in a row than the SDK retries. The run is claimed by a tick and carried
//! out by the export engine with the real adapters (STS, DynamoDB, SQS, S3) in this process; a
//! queue of this test's own plays the export queue, redelivering what failed, so the local
//! poller and function (which reach S3 directly) never see these messages.
//!
//! What must hold: the run succeeds, every row of the table is in exactly one file exactly
//! once, the manifest describes the objects as stored, `.DONE` is written, the watermark covers
//! the table, and no multipart upload is left open.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::MessageSystemAttributeName;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use shared::adapters::dynamodb::DynamoConnectorStore;
use shared::adapters::lake::DynamoLake;
use shared::adapters::runs::DynamoRunStore;
use shared::adapters::s3::S3Storage;
use shared::adapters::sqs::SqsRunQueue;
use shared::domain::export::run::RunMessage;
use shared::export::engine::{Delivery, ExportEngine, ExportSettings, RunStores};
use shared::lake::Lake;
use shared::lake::seed::{self, SeedTable};
use shared::ports::RunStore;
use shared::scheduler::{Scheduler, TickOutcome, TickSettings};
use tests::fault_proxy::{FaultPlan, FaultProxy};
use tests::{Stack, hex, unique_tenant};

const SEED: u64 = 21;
/// Four lake parts of 40,000 rows: with `max_file_size_mb` 5 the plan makes several files,
/// each several 5 MiB parts of JSONL, so multipart uploads are in play.
const PARTS: u64 = 4;
const ROWS_PER_PART: usize = 40_000;
const MIB: usize = 1024 * 1024;

#[tokio::test]
async fn throttled_and_failing_s3_calls_lose_no_row_duplicate_none_and_leave_no_upload_open() {
    let stack = Stack::connect().await;
    let customer = stack.customer();
    let tenant = unique_tenant("faults");
    let api = stack.api(&tenant);
    let connector = customer
        .active_connector(
            &api,
            "faults",
            json!({
                "name": "Throttled", "direction": "export", "prefix": "exports/",
                "schedule": "rate(1 hour)",
                "export": {
                    "tables": [{"name": "sales"}], "format": {"type": "jsonl"},
                    "compression": "none", "max_file_size_mb": 5
                },
            }),
        )
        .await;
    let (id, bucket) = (connector.id, connector.bucket);

    let lake = Arc::new(DynamoLake::new(
        stack.s3(),
        stack.dynamodb(),
        stack.env.get("LAKE_BUCKET"),
        stack.env.get("LAKE_CATALOG_TABLE"),
    ));
    // The table's sale ids (unique; a few rows have none, as the sample data nulls every column).
    let mut expected: Vec<Option<i64>> = Vec::new();
    for n in 0..PARTS {
        let batch = seed::batch(
            SeedTable::Sales,
            SEED,
            n * ROWS_PER_PART as u64,
            ROWS_PER_PART,
        );
        let ids = batch
            .column_by_name("sale_id")
            .unwrap()
            .as_any()
            .downcast_ref::<arrow_array::Int64Array>()
            .unwrap();
        expected.extend(ids.iter());
        lake.append_part(&tenant, "sales", std::slice::from_ref(&batch))
            .await
            .expect("append to the lake");
    }

    // From the third request of each operation on, every third is refused: once, twice, or
    // four times in a row (past the SDK's three attempts), in turn.
    let proxy = FaultProxy::start(
        stack.env.get("AWS_ENDPOINT_URL"),
        FaultPlan {
            bucket: bucket.clone(),
            first: 3,
            every: 3,
            streaks: vec![1, 2, 4],
        },
    )
    .await;
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let queue_url = sqs
        .create_queue()
        .queue_name(format!("export-faults-{}", &bucket[bucket.len() - 8..]))
        .send()
        .await
        .expect("create the test's export queue")
        .queue_url
        .unwrap();
    let through_proxy = stack.sdk.to_builder().endpoint_url(&proxy.url).build();
    let mut settings = ExportSettings::new(std::env::temp_dir());
    settings.upload.first_part_size = 5 * MIB;
    let runs_store = || DynamoRunStore::new(stack.dynamodb(), stack.env.get("RUNS_TABLE"));
    let engine = ExportEngine::new(
        lake.clone(),
        RunStores {
            runs: runs_store(),
            connectors: DynamoConnectorStore::new(
                stack.dynamodb(),
                stack.env.get("CONNECTORS_TABLE"),
            ),
            queue: SqsRunQueue::new(sqs.clone(), &queue_url),
        },
        Arc::new(shared::credentials::aws_broker(
            &stack.sdk,
            &stack.settings(),
        )),
        S3Storage::new(&through_proxy),
        settings,
    );

    // The scheduled slot, claimed by a tick into the test's queue.
    let view = api.get(&format!("/connectors/{id}")).await.body;
    let slot: chrono::DateTime<chrono::Utc> =
        view["next_run_at"].as_str().unwrap().parse().unwrap();
    let runs = runs_store();
    let scheduler = Scheduler {
        connectors: stack.one_tenant(&tenant),
        runs: runs_store(),
        queue: SqsRunQueue::new(sqs.clone(), &queue_url),
        settings: TickSettings::new(5),
    };
    let report = scheduler
        .tick(slot + chrono::Duration::seconds(5))
        .await
        .unwrap();
    let run_id = report
        .due
        .iter()
        .find_map(|d| match &d.outcome {
            TickOutcome::Started { run_id, .. } if d.connector_id == id => Some(run_id.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("the tick starts the slot's run: {report:?}"));

    // The queue, played: a delivery that fails is made visible again at once (SQS would after
    // the visibility timeout), with its receive count going up.
    let deadline = Instant::now() + Duration::from_secs(300);
    let (mut deliveries, mut redeliveries) = (0u32, 0u32);
    loop {
        let received = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .expect("receive from the test's export queue");
        let messages = received.messages.unwrap_or_default();
        let finished = runs
            .get(&id, &run_id)
            .await
            .unwrap()
            .is_some_and(|r| r.status.is_finished());
        if messages.is_empty() && finished {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "run {run_id} did not finish in 300 s ({deliveries} deliveries, proxy {:?})",
            proxy.stats()
        );
        for message in messages {
            deliveries += 1;
            let body: RunMessage = serde_json::from_str(message.body().unwrap()).unwrap();
            let receive_count = message
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
            let delivery = Delivery {
                deadline: None,
                receive_count,
            };
            let handle = message.receipt_handle().unwrap();
            match engine.execute(&body, &delivery).await {
                Ok(_) => {
                    sqs.delete_message()
                        .queue_url(&queue_url)
                        .receipt_handle(handle)
                        .send()
                        .await
                        .unwrap();
                }
                Err(e) => {
                    redeliveries += 1;
                    eprintln!("delivery {body:?} (receive {receive_count}) failed: {e}; again");
                    sqs.change_message_visibility()
                        .queue_url(&queue_url)
                        .receipt_handle(handle)
                        .visibility_timeout(0)
                        .send()
                        .await
                        .unwrap();
                }
            }
        }
    }
    let stats = proxy.stats();
    eprintln!("{deliveries} deliveries, {redeliveries} redelivered; proxy: {stats:?}");

    let run = api
        .get(&format!("/connectors/{id}/runs/{run_id}"))
        .await
        .body;
    assert_eq!(run["status"], "succeeded", "{run:#}");
    let files = run["files"].as_array().unwrap();
    assert!(files.len() >= 2, "the plan fans out: {run:#}");
    for task in run["tasks"].as_array().unwrap() {
        assert_eq!(task["state"], "written", "{task}");
    }

    // The proxy refused each multipart call, some past the SDK's retries (the run's two
    // single PUTs, manifest and .DONE, come before any operation's third request).
    for operation in [
        "CreateMultipartUpload",
        "UploadPart",
        "CompleteMultipartUpload",
    ] {
        assert!(
            stats.refused.get(operation).copied().unwrap_or(0) >= 1,
            "no {operation} was refused: {stats:?}"
        );
    }
    assert!(stats.total_refused() >= 8, "{stats:?}");

    // Every row once, in the files the run names; each file as the manifest describes it.
    let mut sale_ids = Vec::new();
    let mut stored = BTreeMap::new();
    for file in files {
        let key = file["key"].as_str().unwrap();
        let bytes = customer.object(&bucket, key).await.0;
        let digest = hex(&Sha256::digest(&bytes));
        assert_eq!(
            (bytes.len() as u64, digest.as_str()),
            (
                file["bytes"].as_u64().unwrap(),
                file["sha256"].as_str().unwrap()
            ),
            "{key}"
        );
        let mut rows = 0u64;
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let row: Value = serde_json::from_slice(line)
                .unwrap_or_else(|e| panic!("{key}: a line that is not JSON ({e})"));
            sale_ids.push(row["sale_id"].as_i64());
            rows += 1;
        }
        assert_eq!(rows, file["rows"].as_u64().unwrap(), "{key}");
        stored.insert(key.to_owned(), (bytes.len() as u64, digest));
    }
    sale_ids.sort_unstable();
    expected.sort_unstable();
    assert_eq!(expected.len(), PARTS as usize * ROWS_PER_PART);
    assert!(
        sale_ids == expected,
        "rows lost or duplicated: {} rows exported of {}, first differences {:?}",
        sale_ids.len(),
        expected.len(),
        sale_ids
            .iter()
            .zip(&expected)
            .filter(|(a, b)| a != b)
            .take(3)
            .collect::<Vec<_>>()
    );

    let manifest_key = run["plan"]["manifest_key"].as_str().unwrap();
    let manifest: Value =
        serde_json::from_slice(&customer.object(&bucket, manifest_key).await.0).unwrap();
    let listed: BTreeMap<String, (u64, String)> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["key"].as_str().unwrap().to_owned(),
                (
                    f["bytes"].as_u64().unwrap(),
                    f["sha256"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect();
    assert_eq!(
        listed, stored,
        "the manifest describes the objects as stored"
    );
    let done = manifest_key.replace("manifest.json", ".DONE");
    let mut keys = customer.keys_under(&bucket, "exports/").await;
    keys.retain(|k| !k.contains(".connector-check/"));
    let mut want: Vec<String> = stored.keys().cloned().collect();
    want.extend([manifest_key.to_owned(), done]);
    want.sort();
    keys.sort();
    assert_eq!(
        keys, want,
        "the data files, the manifest and .DONE, nothing else"
    );

    let open = customer
        .s3
        .list_multipart_uploads()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert!(
        open.uploads().is_empty(),
        "open uploads: {:?}",
        open.uploads()
    );

    let watermarks = runs.watermarks(&id).await.unwrap();
    let last_part = lake
        .parts_after(&tenant, "sales", None)
        .await
        .unwrap()
        .last()
        .map(|p| p.seq)
        .unwrap();
    assert_eq!(watermarks.get("sales"), Some(&last_part), "{watermarks:?}");
    sqs.delete_queue().queue_url(&queue_url).send().await.ok();
}
