//! Export function: the EventBridge tick finds due connectors; each export queue message
//! carries out one run (docs/architecture.md, "Export").

use std::path::PathBuf;
use std::sync::Arc;

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;
use shared::adapters::dynamodb::DynamoConnectorStore;
use shared::adapters::lake::DynamoLake;
use shared::adapters::runs::DynamoRunStore;
use shared::adapters::s3::S3Storage;
use shared::config::Settings;
use shared::export::engine::{ExportEngine, ExportSettings};
use shared::export::upload::UploadSettings;

mod handler;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let settings = Settings::from_env()?;
    let sdk = shared::aws::load_sdk_config().await;
    let dynamodb = shared::aws::dynamodb_client(&sdk);
    let connectors = DynamoConnectorStore::new(dynamodb.clone(), &settings.connectors_table);
    let broker = shared::credentials::aws_broker(&sdk, &settings);
    let lake = DynamoLake::new(
        shared::aws::s3_client(&sdk),
        dynamodb.clone(),
        &settings.lake_bucket,
        &settings.lake_catalog_table,
    );
    let engine = ExportEngine::new(
        Arc::new(lake),
        DynamoRunStore::new(dynamodb.clone(), &settings.runs_table),
        DynamoConnectorStore::new(dynamodb, &settings.connectors_table),
        Arc::new(broker),
        S3Storage::new(&sdk),
        ExportSettings {
            upload: UploadSettings::default(),
            spool_dir: std::env::var_os("SPOOL_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(std::env::temp_dir),
        },
    );
    let (connectors, engine) = (&connectors, &engine);
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        handler::handle(connectors, engine, event.payload)
            .await
            .map_err(Error::from)
    }))
    .await
}
