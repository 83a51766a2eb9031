//! Connector setup API behind API Gateway (HTTP API, JWT authorizer).

use lambda_http::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use shared::adapters::dynamodb::DynamoConnectorStore;
use shared::adapters::ledger::DynamoIngestLedger;
use shared::adapters::runs::DynamoRunStore;
use shared::adapters::s3::S3Storage;
use shared::adapters::secrets_manager::SecretsManagerStore;
use shared::adapters::sqs::SqsRunQueue;
use shared::config::Settings;
use shared::connectors::ConnectorService;
use shared::validation::Validator;
use std::sync::Arc;
use std::time::Duration;

mod edge;
mod handler;
#[cfg(test)]
mod openapi_tests;
mod routes;
mod strict_json;
mod views;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let settings = Settings::from_env()?;
    let sdk = shared::aws::load_sdk_config().await;
    let service = ConnectorService::new(
        DynamoConnectorStore::new(
            shared::aws::dynamodb_client(&sdk),
            &settings.connectors_table,
        ),
        SecretsManagerStore::new(shared::aws::secrets_client(&sdk)),
        settings.secrets_prefix.clone(),
        settings.platform.clone(),
        settings.own.clone(),
    );
    let broker = shared::credentials::aws_broker(&sdk, &settings);
    let validator = Validator::new(
        Arc::new(broker),
        S3Storage::new(&sdk),
        Duration::from_secs(settings.credentials_retry_seconds),
    );
    let runs = DynamoRunStore::new(shared::aws::dynamodb_client(&sdk), &settings.runs_table);
    let queue = SqsRunQueue::new(shared::aws::sqs_client(&sdk), &settings.export_queue_url);
    let files = DynamoIngestLedger::new(
        shared::aws::dynamodb_client(&sdk),
        &settings.ingest_ledger_table,
    );
    let app = handler::App::new(
        service,
        validator,
        runs,
        queue,
        files,
        settings.tenant_claim.clone(),
    )
    .with_tenant_run_cap(settings.tenant_run_cap);
    let app = &app;
    lambda_http::lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        edge::invoke(app, event)
    }))
    .await
}
