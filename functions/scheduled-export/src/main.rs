//! Export scheduler, fired every minute by EventBridge.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use shared::adapters::dynamodb::DynamoConnectorStore;
use shared::config::Settings;

mod handler;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let settings = Settings::from_env()?;
    let sdk = shared::aws::load_sdk_config().await;
    let store = DynamoConnectorStore::new(
        shared::aws::dynamodb_client(&sdk),
        &settings.connectors_table,
    );
    let store = &store;
    run(service_fn(move |event: LambdaEvent<_>| async move {
        handler::tick(store, event.payload)
            .await
            .map_err(Error::from)
    }))
    .await
}
