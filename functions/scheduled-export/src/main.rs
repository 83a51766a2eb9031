//! Export function: the EventBridge tick claims due connectors' slots and enqueues their runs;
//! each export queue message carries out a run or one of its file tasks (docs/architecture.md,
//! "Schedules" and "Export").

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;
use shared::adapters::dynamodb::DynamoConnectorStore;
use shared::adapters::lake::DynamoLake;
use shared::adapters::runs::DynamoRunStore;
use shared::adapters::s3::S3Storage;
use shared::adapters::sqs::SqsRunQueue;
use shared::config::Settings;
use shared::export::engine::{ExportEngine, ExportSettings, RunStores};
use shared::scheduler::{Scheduler, TickSettings};

mod handler;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let settings = Settings::from_env()?;
    let sdk = shared::aws::load_sdk_config().await;
    let dynamodb = shared::aws::dynamodb_client(&sdk);
    let broker = shared::credentials::aws_broker(&sdk, &settings);
    let lake = DynamoLake::new(
        shared::aws::s3_client(&sdk),
        dynamodb.clone(),
        &settings.lake_bucket,
        &settings.lake_catalog_table,
    );
    let mut export = ExportSettings::new(
        std::env::var_os("SPOOL_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir),
    );
    if let Some(seconds) = env_number("EXPORT_DEADLINE_MARGIN_SECONDS")? {
        export.deadline_margin = Duration::from_secs(seconds);
    }
    if let Some(count) = env_number("EXPORT_MAX_RECEIVE_COUNT")? {
        export.max_receive_count = u32::try_from(count).unwrap_or(u32::MAX);
    }
    let engine = ExportEngine::new(
        Arc::new(lake),
        RunStores {
            runs: DynamoRunStore::new(dynamodb.clone(), &settings.runs_table),
            connectors: DynamoConnectorStore::new(dynamodb.clone(), &settings.connectors_table),
            queue: SqsRunQueue::new(shared::aws::sqs_client(&sdk), &settings.export_queue_url),
        },
        Arc::new(broker),
        S3Storage::new(&sdk),
        export,
    );
    let scheduler = Scheduler {
        connectors: DynamoConnectorStore::new(dynamodb.clone(), &settings.connectors_table),
        runs: DynamoRunStore::new(dynamodb, &settings.runs_table),
        queue: SqsRunQueue::new(shared::aws::sqs_client(&sdk), &settings.export_queue_url),
        settings: TickSettings::new(settings.tenant_run_cap),
    };
    let (scheduler, engine) = (&scheduler, &engine);
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = Instant::now()
            + event
                .context
                .deadline()
                .duration_since(SystemTime::now())
                .unwrap_or_default();
        handler::handle(scheduler, engine, event.payload, Some(deadline))
            .await
            .map_err(Error::from)
    }))
    .await
}

/// An optional whole-number setting; a value that is not one stops the cold start.
fn env_number(name: &str) -> Result<Option<u64>, Error> {
    match std::env::var(name) {
        Ok(text) => text.trim().parse().map(Some).map_err(|_| {
            format!("{name} must be a whole number of seconds or a count, not {text:?}").into()
        }),
        Err(_) => Ok(None),
    }
}
