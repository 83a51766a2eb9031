//! SDK configuration and clients, built once per cold start and shared by every invocation.
//! Each client is behind the cargo feature of its service.

use aws_config::{BehaviorVersion, SdkConfig};

/// The SDK behaviour (defaults for retries, timeouts, …) we have tested against, pinned so an
/// SDK upgrade cannot change it unnoticed; move it forward deliberately.
pub fn behavior_version() -> BehaviorVersion {
    BehaviorVersion::v2026_01_12()
}

/// Loads the default chain (Lambda role in AWS; `AWS_ENDPOINT_URL` and keys from the
/// environment locally).
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(behavior_version()).load().await
}

/// True when an endpoint override points the SDK at a local AWS-compatible server.
pub fn uses_custom_endpoint(config: &SdkConfig) -> bool {
    config.endpoint_url().is_some()
}

/// S3 client; path-style addressing when a custom endpoint is set, since local servers on
/// 127.0.0.1 cannot serve virtual-hosted bucket names (there is no env var for this).
#[cfg(feature = "s3")]
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(s3_config(config).build())
}

/// S3 client acting as a connector: its credentials (a provider that renews them, or a fixed
/// set), in the bucket's region.
#[cfg(feature = "s3")]
pub fn connector_s3_client(
    config: &SdkConfig,
    credentials: impl aws_credential_types::provider::ProvideCredentials + 'static,
    region: &str,
) -> aws_sdk_s3::Client {
    let s3_config = s3_config(config)
        .credentials_provider(credentials)
        .region(aws_config::Region::new(region.to_owned()))
        .build();
    aws_sdk_s3::Client::from_conf(s3_config)
}

#[cfg(feature = "s3")]
fn s3_config(config: &SdkConfig) -> aws_sdk_s3::config::Builder {
    aws_sdk_s3::config::Builder::from(config).force_path_style(uses_custom_endpoint(config))
}

#[cfg(feature = "dynamodb")]
pub fn dynamodb_client(config: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(config)
}

#[cfg(feature = "secrets-manager")]
pub fn secrets_client(config: &SdkConfig) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(config)
}

#[cfg(feature = "sqs")]
pub fn sqs_client(config: &SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(config)
}
