//! What the benchmark drivers (`src/bin/bench_*.rs`, run by `scripts/bench`) share: their
//! errors, `--flag value` arguments, the process's CPU time and peak RSS, and the entry point
//! that prints one JSON line per measured command.

use std::collections::HashMap;
use std::io;

use serde_json::{Value, json};
use shared::adapters::s3::{S3Bucket, S3Storage};
use shared::ports::CustomerStorage;

/// Why a benchmark step could not run; the script prints it and stops.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The command line is wrong; the driver's usage follows the message.
    #[error("{0}")]
    Usage(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("{what}: {detail}")]
    Aws { what: String, detail: String },
    #[error("{0}")]
    Failed(String),
}

pub fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> BenchError {
    let what = what.into();
    move |source| BenchError::Io { what, source }
}

pub fn aws_error<E: std::error::Error + 'static>(
    what: impl Into<String>,
) -> impl FnOnce(E) -> BenchError {
    let what = what.into();
    move |error| BenchError::Aws {
        what,
        detail: aws_sdk_s3::error::DisplayErrorContext(&error).to_string(),
    }
}

/// `--name value` pairs after the subcommand.
pub struct Flags {
    values: HashMap<String, String>,
}

impl Flags {
    pub fn parse(args: &[String]) -> Result<Self, BenchError> {
        let mut values = HashMap::new();
        let mut rest = args.iter();
        while let Some(flag) = rest.next() {
            let name = flag
                .strip_prefix("--")
                .ok_or_else(|| BenchError::Usage(format!("expected a --flag, got '{flag}'")))?;
            let value = rest
                .next()
                .ok_or_else(|| BenchError::Usage(format!("--{name} needs a value")))?;
            values.insert(name.to_owned(), value.clone());
        }
        Ok(Self { values })
    }

    pub fn text(&self, name: &str) -> Result<String, BenchError> {
        self.values
            .get(name)
            .cloned()
            .ok_or_else(|| BenchError::Usage(format!("--{name} is required")))
    }

    pub fn number(&self, name: &str, default: u64) -> Result<u64, BenchError> {
        match self.values.get(name) {
            None => Ok(default),
            Some(text) => text.parse().map_err(|_| {
                BenchError::Usage(format!("--{name} must be a whole number, not '{text}'"))
            }),
        }
    }
}

/// The process's peak resident set (VmHWM) in bytes, as the kernel counts it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// CPU time of this process so far (user + system), every thread counted: how many cores a
/// conversion used.
pub fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // utime and stime are fields 14 and 15; the command name (field 2) may hold spaces, so
    // count from the closing parenthesis.
    let Some((_, after_name)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    // Linux reports these in USER_HZ, which is 100 on every architecture it supports.
    ticks as f64 / 100.0
}

pub fn mb_per_s(bytes: u64, seconds: f64) -> f64 {
    bytes as f64 / 1e6 / seconds.max(1e-9)
}

/// A driver's `main`: runs `<command> [--flag value]...` and prints its JSON result with the
/// command and the peak RSS added; usage errors print `usage` (exit 2), failures exit 1.
pub async fn main(
    binary: &str,
    usage: &str,
    run: impl AsyncFnOnce(&str, &Flags) -> Result<Value, BenchError>,
) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprint!("{usage}");
        std::process::exit(2);
    };
    let result = match Flags::parse(rest) {
        Ok(flags) => run(command, &flags).await,
        Err(error) => Err(error),
    };
    match result {
        Ok(mut value) => {
            if let Value::Object(fields) = &mut value {
                fields.insert("command".into(), json!(command));
                fields.insert("peak_rss_bytes".into(), json!(peak_rss_bytes()));
            }
            println!("{value}");
        }
        Err(error @ BenchError::Usage(_)) => {
            eprintln!("{binary} {command}: {error}\n{usage}");
            std::process::exit(2);
        }
        Err(error) => {
            eprintln!("{binary} {command}: {error}");
            std::process::exit(1);
        }
    }
}

pub async fn sdk_config() -> aws_config::SdkConfig {
    shared::aws::load_sdk_config().await
}

pub async fn s3() -> aws_sdk_s3::Client {
    shared::aws::s3_client(&sdk_config().await)
}

/// A bucket as the functions' adapter opens it (the connector's client, the same retry and
/// timeout settings), with the environment's credentials.
pub async fn open_bucket(bucket: &str) -> Result<S3Bucket, BenchError> {
    let sdk = sdk_config().await;
    let credentials = sdk.credentials_provider().ok_or_else(|| {
        BenchError::Usage("no AWS credentials in the environment (AWS_ACCESS_KEY_ID)".into())
    })?;
    let region = sdk
        .region()
        .map_or("us-east-1".to_owned(), |r| r.to_string());
    Ok(S3Storage::new(&sdk).open(credentials, bucket, &region))
}

/// `create-bucket --bucket NAME` (one that exists already is fine).
pub async fn create_bucket(flags: &Flags) -> Result<Value, BenchError> {
    let bucket = flags.text("bucket")?;
    let client = s3().await;
    if let Err(error) = client.create_bucket().bucket(&bucket).send().await {
        let exists = error
            .as_service_error()
            .is_some_and(|e| e.is_bucket_already_owned_by_you() || e.is_bucket_already_exists());
        if !exists {
            return Err(aws_error(format!("CreateBucket {bucket}"))(error));
        }
    }
    Ok(json!({ "bucket": bucket }))
}

/// `delete-prefix --bucket B --prefix P`: every object under the prefix.
pub async fn delete_prefix(flags: &Flags) -> Result<Value, BenchError> {
    let bucket = flags.text("bucket")?;
    let prefix = flags.text("prefix")?;
    let client = s3().await;
    let mut deleted = 0u64;
    let mut pages = client
        .list_objects_v2()
        .bucket(&bucket)
        .prefix(&prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(aws_error(format!("ListObjectsV2 {prefix}")))?;
        for object in page.contents() {
            let Some(key) = object.key() else { continue };
            client
                .delete_object()
                .bucket(&bucket)
                .key(key)
                .send()
                .await
                .map_err(aws_error(format!("DeleteObject {key}")))?;
            deleted += 1;
        }
    }
    Ok(json!({ "deleted": deleted }))
}

/// The result of an upload task taken from a `JoinSet`.
pub fn joined<T>(
    result: Option<Result<Result<T, BenchError>, tokio::task::JoinError>>,
) -> Result<T, BenchError> {
    match result {
        Some(Ok(inner)) => inner,
        Some(Err(join)) => Err(BenchError::Failed(format!("an upload task failed: {join}"))),
        None => Err(BenchError::Failed("no upload task to wait for".into())),
    }
}
