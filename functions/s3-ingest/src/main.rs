//! Ingest function: customers' files, announced by their bucket notifications (the ingest
//! queue: S3, SNS-wrapped or EventBridge) or found by the scheduled poll of source prefixes,
//! loaded into the lake once and moved as the connector's folder rules say
//! (docs/architecture.md, "Ingest").

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;
use shared::adapters::dynamodb::DynamoConnectorStore;
use shared::adapters::lake::DynamoLake;
use shared::adapters::ledger::DynamoIngestLedger;
use shared::adapters::s3::S3Storage;
use shared::adapters::sqs::SqsPolledFileQueue;
use shared::config::Settings;
use shared::ingest::service::{IngestService, IngestSettings};

mod handler;

/// The poll starts no new file this close to the function's deadline (or in the last half of
/// a shorter invocation): a file started then has the rest of the invocation to load.
const POLL_MARGIN: Duration = Duration::from_secs(5 * 60);

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let settings = Settings::from_env()?;
    let sdk = shared::aws::load_sdk_config().await;
    let dynamodb = shared::aws::dynamodb_client(&sdk);
    let lake = DynamoLake::new(
        shared::aws::s3_client(&sdk),
        dynamodb.clone(),
        &settings.lake_bucket,
        &settings.lake_catalog_table,
    );
    let service = IngestService::new(
        Arc::new(lake),
        DynamoIngestLedger::new(dynamodb.clone(), &settings.ingest_ledger_table),
        DynamoConnectorStore::new(dynamodb, &settings.connectors_table),
        Arc::new(shared::credentials::aws_broker(&sdk, &settings)),
        S3Storage::new(&sdk),
        SqsPolledFileQueue::new(shared::aws::sqs_client(&sdk), &settings.ingest_queue_url),
        IngestSettings::default(),
    );
    let service = &service;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        let left = event
            .context
            .deadline()
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        // No time left at the start means no deadline was given (a local emulator): no budget.
        let poll_until = (!left.is_zero())
            .then(|| Instant::now() + left.saturating_sub(POLL_MARGIN.min(left / 2)));
        handler::handle(service, event.payload, poll_until)
            .await
            .map_err(Error::from)
    }))
    .await
}
