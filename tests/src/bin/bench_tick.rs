//! Driver of `scripts/bench tick`: what one export tick costs, in DynamoDB calls and time, as
//! the number of connectors and of due connectors changes. Against the DynamoDB and SQS of
//! `AWS_ENDPOINT_URL` (the benchmark's own moto): it creates a connectors table (with the
//! `by-due` index), a runs table and an export queue per scenario, seeds the connectors through
//! the connectors adapter, and ticks through `shared::scheduler` with the DynamoDB and SQS
//! adapters, counting every DynamoDB call by operation.
//!
//! Usage: bench_tick <total connectors> <due connectors> [<total> <due>]...

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, PutRequest, ScalarAttributeType, WriteRequest,
};
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;
use shared::adapters::dynamodb::DynamoConnectorStore;
use shared::adapters::runs::DynamoRunStore;
use shared::adapters::sqs::SqsRunQueue;
use shared::domain::connector::ConnectorStatus;
use shared::scheduler::{Scheduler, TickOutcome, TickSettings};

/// DynamoDB calls by operation (`x-amz-target`), counted before each is sent.
#[derive(Debug, Default, Clone)]
struct CallCounter(Arc<Mutex<BTreeMap<String, u64>>>);

impl CallCounter {
    fn take(&self) -> BTreeMap<String, u64> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "CallCounter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let target = context
            .request()
            .headers()
            .get("x-amz-target")
            .and_then(|t| t.rsplit('.').next())
            .unwrap_or("?")
            .to_owned();
        *self.0.lock().unwrap().entry(target).or_default() += 1;
        Ok(())
    }
}

fn key(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .unwrap()
}

fn attribute(name: &str, kind: ScalarAttributeType) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(kind)
        .build()
        .unwrap()
}

/// The connectors and runs tables as template.yaml declares them.
async fn create_tables(client: &aws_sdk_dynamodb::Client, connectors: &str, runs: &str) {
    let index = |name: &str, hash: &str, range: &str, projection: ProjectionType| {
        GlobalSecondaryIndex::builder()
            .index_name(name)
            .key_schema(key(hash, KeyType::Hash))
            .key_schema(key(range, KeyType::Range))
            .projection(Projection::builder().projection_type(projection).build())
            .build()
            .unwrap()
    };
    client
        .create_table()
        .table_name(connectors)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("tenant_id", ScalarAttributeType::S))
        .attribute_definitions(attribute("connector_id", ScalarAttributeType::S))
        .attribute_definitions(attribute("bucket", ScalarAttributeType::S))
        .attribute_definitions(attribute("due_shard", ScalarAttributeType::S))
        .attribute_definitions(attribute("due_at", ScalarAttributeType::N))
        .key_schema(key("tenant_id", KeyType::Hash))
        .key_schema(key("connector_id", KeyType::Range))
        .global_secondary_indexes(index(
            "by-bucket",
            "bucket",
            "connector_id",
            ProjectionType::All,
        ))
        .global_secondary_indexes(index(
            "by-due",
            "due_shard",
            "due_at",
            ProjectionType::KeysOnly,
        ))
        .send()
        .await
        .expect("CreateTable connectors");
    client
        .create_table()
        .table_name(runs)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("connector_id", ScalarAttributeType::S))
        .attribute_definitions(attribute("run_id", ScalarAttributeType::S))
        .key_schema(key("connector_id", KeyType::Hash))
        .key_schema(key("run_id", KeyType::Range))
        .send()
        .await
        .expect("CreateTable runs");
}

/// `total` active daily export connectors over 2,000 tenants: `due` of them due at `tick`, the
/// rest a day later. Written with BatchWriteItem (items as the connectors adapter stores them):
/// the local server copies every table in each transaction, so seeding through the adapter's
/// transactions would take hours.
async fn seed(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    total: usize,
    due: usize,
    tick: DateTime<Utc>,
) {
    let started = Instant::now();
    let items: Vec<WriteRequest> = (0..total)
        .map(|i| {
            let mut c = domain::testing::stored_connector(json!({
                "name": format!("export {i}"), "direction": "export",
                "bucket": format!("customer-{i:05}"), "region": "us-east-1",
                "auth": {"mode": "bucket_policy"}, "schedule": "rate(1 day)",
                "export": {"tables": [{"name": "sales"}]}
            }));
            c.tenant_id = format!("tenant-{:04}", i % 2_000);
            c.connector_id = format!("con_{i:032x}");
            c.status = ConnectorStatus::Active;
            c.next_run_at = Some(if i < due {
                tick - Duration::minutes(1)
            } else {
                tick + Duration::days(1)
            });
            c.refresh_due_index();
            let item = serde_dynamo::to_item(&c).expect("a connector item");
            WriteRequest::builder()
                .put_request(PutRequest::builder().set_item(Some(item)).build().unwrap())
                .build()
        })
        .collect();
    for batch in items.chunks(25) {
        let mut pending = Some(batch.to_vec());
        while let Some(requests) = pending.take().filter(|r| !r.is_empty()) {
            let out = client
                .batch_write_item()
                .request_items(table, requests)
                .send()
                .await
                .expect("BatchWriteItem");
            pending = out.unprocessed_items.and_then(|mut u| u.remove(table));
        }
    }
    eprintln!(
        "  seeded {total} connectors ({due} due) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("whole numbers: <total> <due> ..."))
        .collect();
    assert!(
        !args.is_empty() && args.len().is_multiple_of(2),
        "usage: bench_tick <total> <due> [<total> <due>]..."
    );
    let sdk = shared::aws::load_sdk_config().await;
    let counter = CallCounter::default();
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .interceptor(counter.clone())
            .build(),
    );
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let tick = Utc.with_ymd_and_hms(2026, 12, 1, 2, 0, 30).unwrap();

    println!(
        "| connectors | due | started | DynamoDB calls | of which reads (Query, GetItem) | Query calls | tick time (s) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for (n, pair) in args.chunks(2).enumerate() {
        let (total, due) = (pair[0], pair[1]);
        assert!(due <= total, "due {due} of {total}?");
        let (connectors, runs) = (format!("bench-connectors-{n}"), format!("bench-runs-{n}"));
        create_tables(&dynamodb, &connectors, &runs).await;
        let queue = sqs
            .create_queue()
            .queue_name(format!("bench-export-{n}"))
            .send()
            .await
            .expect("CreateQueue")
            .queue_url
            .unwrap_or_default();
        seed(&dynamodb, &connectors, total, due, tick).await;
        let store = DynamoConnectorStore::new(dynamodb.clone(), &connectors);
        let scheduler = Scheduler {
            connectors: store,
            runs: DynamoRunStore::new(dynamodb.clone(), &runs),
            queue: SqsRunQueue::new(sqs.clone(), &queue),
            // One tick takes at most 8 shards × 250 keys; room for every due one here. One
            // claim at a time: the local server is not safe for concurrent transactions.
            settings: TickSettings {
                per_shard: 2_000,
                concurrency: 1,
                ..TickSettings::new(5)
            },
        };
        counter.take();
        let started = Instant::now();
        let report = scheduler.tick(tick).await.expect("the tick");
        let elapsed = started.elapsed().as_secs_f64();
        let calls = counter.take();
        let claimed = report
            .due
            .iter()
            .filter(|d| matches!(d.outcome, TickOutcome::Started { .. }))
            .count();
        let reads =
            calls.get("Query").copied().unwrap_or(0) + calls.get("GetItem").copied().unwrap_or(0);
        println!(
            "| {total} | {due} | {claimed} | {} | {reads} | {} | {elapsed:.2} |",
            calls.values().sum::<u64>(),
            calls.get("Query").copied().unwrap_or(0),
        );
        eprintln!("  calls by operation: {calls:?}");
        // The local server copies every table in each transaction: drop this scenario's, so
        // the next one's times are its own.
        for table in [&connectors, &runs] {
            dynamodb
                .delete_table()
                .table_name(table)
                .send()
                .await
                .expect("DeleteTable");
        }
    }
}
