//! Structured logs to stdout (CloudWatch in AWS), level from `RUST_LOG`.

use tracing_subscriber::EnvFilter;

/// JSON lines inside Lambda (CloudWatch Logs Insights can query them), readable text locally.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let in_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some()
        && std::env::var_os("AWS_ENDPOINT_URL").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .without_time();
    if in_lambda {
        builder.json().with_current_span(false).init();
    } else {
        builder.with_ansi(false).init();
    }
}
