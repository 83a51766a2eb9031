//! Ingest end to end against the local stack: files dropped in a customer's bucket reach
//! `s3-ingest` through the bucket's event notification (moto → the ingest queue → the local
//! poller) or through the scheduled poll of the source prefix, are loaded into the lake once,
//! and are moved as the connector's folder rules say.

use std::collections::BTreeSet;
use std::io::Write;
use std::time::{Duration, Instant};

use arrow_array::{Array, Int64Array};
use serde_json::{Value, json};
use shared::adapters::lake::{COMMITTED_TAG_VALUE, DynamoLake};
use shared::adapters::ledger::DynamoIngestLedger;
use shared::domain::ingest::file::{FileStatus, IngestFile, Intake};
use shared::lake::Lake;
use shared::ports::IngestLedger;
use tests::{ActiveConnector, Call, Customer, Stack, lake_object_tag, unique_tenant};

struct Ingesting {
    customer: Customer,
    tenant: String,
    connector: ActiveConnector,
    lake: DynamoLake,
    ledger: DynamoIngestLedger,
    s3: aws_sdk_s3::Client,
    lake_bucket: String,
}

async fn ingest_connector(stack: &Stack, label: &str, ingest: Value) -> Ingesting {
    let customer = stack.customer();
    let tenant = unique_tenant(label);
    let api = stack.api(&tenant);
    let connector = customer
        .active_connector(
            &api,
            label,
            json!({"name": "Drops", "direction": "ingest", "prefix": "incoming/", "ingest": ingest}),
        )
        .await;
    Ingesting {
        customer,
        tenant,
        connector,
        lake: DynamoLake::new(
            stack.s3(),
            stack.dynamodb(),
            stack.env.get("LAKE_BUCKET"),
            stack.env.get("LAKE_CATALOG_TABLE"),
        ),
        ledger: DynamoIngestLedger::new(stack.dynamodb(), stack.env.get("INGEST_LEDGER_TABLE")),
        s3: stack.s3(),
        lake_bucket: stack.env.get("LAKE_BUCKET").to_owned(),
    }
}

impl Ingesting {
    async fn configure_notification(&self) {
        self.customer
            .apply_event_notification(
                &self.connector.bucket,
                &self.connector.setup["event_notification"],
            )
            .await;
    }

    async fn drop_file(&self, key: &str, body: Vec<u8>) {
        self.customer
            .put_object(&self.connector.bucket, key, body)
            .await;
    }

    async fn keys(&self) -> BTreeSet<String> {
        self.customer
            .keys_under(&self.connector.bucket, "")
            .await
            .into_iter()
            .filter(|k| !k.starts_with("incoming/.connector"))
            .filter(|k| !k.contains("connector-challenge"))
            .collect()
    }

    async fn files(&self) -> Vec<IngestFile> {
        self.ledger
            .list(&self.connector.id, None, 100, None)
            .await
            .expect("ledger listing")
            .items
    }

    /// Waits until `count` files are final in the ledger.
    async fn wait_for_files(&self, count: usize) -> Vec<IngestFile> {
        let started = Instant::now();
        loop {
            let files = self.files().await;
            let done = files.iter().filter(|f| f.status.is_final()).count();
            if done >= count {
                return files;
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "{done} of {count} files decided after 90 s: {files:#?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Every id loaded into the tenant's `orders` table, sorted. Every part the catalog names
    /// is tagged committed, so the lake's lifecycle rule never expires it.
    async fn lake_ids(&self) -> Vec<i64> {
        let mut ids = Vec::new();
        for part in self
            .lake
            .parts_after(&self.tenant, "orders", None)
            .await
            .unwrap()
        {
            assert_eq!(
                lake_object_tag(&self.s3, &self.lake_bucket, &part.key).await,
                COMMITTED_TAG_VALUE,
                "{}",
                part.key
            );
            for batch in self.lake.read_part(&part, 8192).await.unwrap() {
                let batch = batch.unwrap();
                let column = batch.column_by_name("id").unwrap();
                let column = column.as_any().downcast_ref::<Int64Array>().unwrap();
                ids.extend(column.iter().flatten());
            }
        }
        ids.sort();
        ids
    }
}

fn csv(ids: std::ops::Range<i64>) -> Vec<u8> {
    let mut text = String::from("id,name,amount\n");
    for id in ids {
        text.push_str(&format!("{id},name {id},{}.5\n", id * 3));
    }
    text.into_bytes()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test]
async fn notified_files_load_once_and_move_by_the_folder_rules() {
    let stack = Stack::connect().await;
    let ingesting = ingest_connector(
        &stack,
        "ingest",
        json!({"table": "orders", "success_dir": "done/", "failed_dir": "failed/",
               "reject": {"max_bad_rows": 1}}),
    )
    .await;
    ingesting.configure_notification().await;
    let mut with_one_bad_row = csv(100..110);
    with_one_bad_row.extend_from_slice(b"110,too,many,fields\n");
    let mut with_two_bad_rows = csv(200..205);
    with_two_bad_rows.extend_from_slice(b"x,y\n1,2,3,4\n");
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("incoming/2026/12/orders 1.csv", csv(0..50)),
        ("incoming/a+b %2B 日本.csv.gz", gzip(&csv(50..100))),
        ("incoming/one bad row.csv", with_one_bad_row),
        ("incoming/two bad rows.csv", with_two_bad_rows),
        ("incoming/empty.csv", Vec::new()),
    ];
    for (key, body) in &files {
        ingesting.drop_file(key, body.clone()).await;
    }
    let decided = ingesting.wait_for_files(files.len()).await;
    let status = |key: &str| {
        decided
            .iter()
            .find(|f| f.file.key == key)
            .unwrap_or_else(|| panic!("{key} not in the ledger: {decided:#?}"))
    };
    for key in [
        "incoming/2026/12/orders 1.csv",
        "incoming/a+b %2B 日本.csv.gz",
        "incoming/one bad row.csv",
    ] {
        assert_eq!(
            status(key).status,
            FileStatus::Succeeded,
            "{key}: {:?}",
            status(key)
        );
    }
    assert_eq!(status("incoming/one bad row.csv").rows_rejected, 1);
    for (key, reason) in [
        ("incoming/two bad rows.csv", "too_many_bad_rows"),
        ("incoming/empty.csv", "unreadable_file"),
    ] {
        let file = status(key);
        assert_eq!(file.status, FileStatus::Failed, "{key}");
        assert_eq!(
            file.error.as_ref().unwrap().reason,
            reason,
            "{key}: {file:?}"
        );
    }
    let want: BTreeSet<String> = [
        "done/2026/12/orders 1.csv",
        "done/a+b %2B 日本.csv.gz",
        "done/one bad row.csv",
        "done/one bad row.csv.errors.jsonl",
        "failed/two bad rows.csv",
        "failed/two bad rows.csv.errors.jsonl",
        "failed/empty.csv",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(ingesting.keys().await, want);
    let (sidecar, _) = ingesting
        .customer
        .object(
            &ingesting.connector.bucket,
            "done/one bad row.csv.errors.jsonl",
        )
        .await;
    let line: Value =
        serde_json::from_slice(sidecar.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(line["line"], 12, "{line}");
    assert_eq!(line["raw"], "110,too,many,fields");
    let expected: Vec<i64> = (0..110).collect();
    assert_eq!(ingesting.lake_ids().await, expected);

    // The Files API tells the customer the same, with what to do about the failures.
    let api = stack.api(&ingesting.tenant);
    let files_path = format!("/connectors/{}/files", ingesting.connector.id);
    let listed = api
        .call(
            "GET",
            &files_path,
            Call {
                query: &[("status", "failed")],
                ..Call::default()
            },
        )
        .await;
    assert_eq!(listed.status, 200, "{}", listed.raw_body);
    let failed = listed.body["items"].as_array().unwrap();
    assert_eq!(failed.len(), 2, "{}", listed.raw_body);
    for file in failed {
        assert_eq!(file["destination"]["action"], "moved", "{file}");
        assert!(
            file["destination"]["key"]
                .as_str()
                .unwrap()
                .starts_with("failed/"),
            "{file}"
        );
        assert!(
            !file["error"]["remediation"].as_str().unwrap().is_empty(),
            "{file}"
        );
    }
    let all = api.get(&files_path).await;
    assert_eq!(all.body["items"].as_array().unwrap().len(), files.len());

    // The same notification again (a duplicate delivery): the file is gone, nothing loads twice.
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let queue_name = stack
        .env
        .get("INGEST_QUEUE_ARN")
        .rsplit(':')
        .next()
        .unwrap();
    let queue_url = sqs
        .get_queue_url()
        .queue_name(queue_name)
        .send()
        .await
        .expect("GetQueueUrl")
        .queue_url
        .unwrap();
    let e_tag = status("incoming/2026/12/orders 1.csv").file.etag.clone();
    let duplicate = json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": ingesting.connector.bucket},
               "object": {"key": "incoming/2026/12/orders+1.csv", "eTag": e_tag}}}]});
    sqs.send_message()
        .queue_url(queue_url)
        .message_body(duplicate.to_string())
        .send()
        .await
        .expect("SendMessage");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(ingesting.lake_ids().await, expected);
    assert_eq!(ingesting.files().await.len(), files.len());
}

#[tokio::test]
async fn the_poll_loads_files_no_notification_announced() {
    let stack = Stack::connect().await;
    let ingesting = ingest_connector(&stack, "ingest-poll", json!({"table": "orders"})).await;
    // No notification configured: only the poll can find these.
    ingesting
        .drop_file("incoming/polled 1.csv", csv(0..20))
        .await;
    ingesting
        .drop_file("incoming/sub/polled+2.csv", csv(20..30))
        .await;
    ingesting
        .drop_file("incoming/bad.csv", b"id,name\n".to_vec())
        .await;
    let scheduled = json!({"version": "0", "id": "poll-1", "detail-type": "Scheduled Event",
        "source": "aws.events", "time": "2026-12-07T00:00:00Z", "region": "us-east-1",
        "resources": [], "detail": {}});
    // The poll sends what it finds to the ingest queue; the files load from there, in
    // parallel, like notified ones.
    let report = stack.invoke("s3-ingest", &scheduled).await;
    assert!(report["connectors"].as_u64().unwrap() >= 1, "{report}");
    assert!(report["queued"].as_u64().unwrap() >= 3, "{report}");
    let files = ingesting.wait_for_files(3).await;
    assert!(files.iter().all(|f| f.intake == Intake::Poll), "{files:#?}");
    assert_eq!(
        files
            .iter()
            .filter(|f| f.status == FileStatus::Succeeded)
            .count(),
        2,
        "{files:#?}"
    );
    // Good files deleted (no success folder), the bad one left where it was (no failed folder).
    assert_eq!(
        ingesting.keys().await,
        BTreeSet::from(["incoming/bad.csv".to_owned()])
    );
    assert_eq!(ingesting.lake_ids().await, (0..30).collect::<Vec<_>>());
    // A second poll finds nothing new: the bad file is decided, so it is not sent again.
    let again = stack.invoke("s3-ingest", &scheduled).await;
    assert_eq!(ingesting.files().await.len(), 3, "{again}");
    assert_eq!(ingesting.lake_ids().await.len(), 30);
}
