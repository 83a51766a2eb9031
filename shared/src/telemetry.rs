//! Logs to stdout (CloudWatch in AWS) through the Lambda runtime's own subscriber
//! (`lambda_runtime::tracing`), which follows the function's logging configuration:
//!
//! - format: JSON lines when `AWS_LAMBDA_LOG_FORMAT` is `JSON` (template.yaml's `LoggingConfig`
//!   sets it in AWS), readable text otherwise (locally);
//! - level: a non-empty `RUST_LOG` (e.g. `info,shared=debug`) replaces everything else, so it
//!   must name a default level too; otherwise `AWS_LAMBDA_LOG_LEVEL` (the `ApplicationLogLevel`
//!   of `LoggingConfig`), else `info`.
//!
//! The runtime wraps each invocation in a span with the request id; inside it, every function
//! opens a span per unit of work with the fields below, so each line says whose work it was.
//! Field names are shared by all functions: `tenant_id`, `connector_id` (where known). Never a
//! secret, a body or a token.

/// Installs the subscriber; call once, first thing in `main`.
pub fn init() {
    lambda_runtime::tracing::init_default_subscriber();
}
