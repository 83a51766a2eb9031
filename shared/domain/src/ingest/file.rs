//! One customer file on its way into the lake: its identity, its ledger record, what a new
//! delivery of it may do, the customer's reject policy and folder rules (docs/architecture.md,
//! "Ingest").

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use crate::connector::RejectPolicy;
use crate::connector::{Connector, IngestOptions};
use crate::export::run::RunError;

/// Suffix of the error sidecar written next to a file with rejected rows; such keys are ours and
/// never ingested.
pub const SIDECAR_SUFFIX: &str = ".errors.jsonl";

/// Deliveries of a file that may fail before it is quarantined.
pub const MAX_FILE_ATTEMPTS: u32 = 3;

/// How long an invocation holds a file it claimed: longer than the function's timeout, so a
/// live holder is never overtaken; a claim left by a crashed invocation is taken over after it.
pub const FILE_LEASE_SECONDS: i64 = 16 * 60;

/// A file once: bucket, key and ETag. The ETag is what every path that finds a file knows (S3
/// and EventBridge notifications, HeadObject, ListObjectsV2), where a version id is absent from
/// listings, so a file seen by a notification and by the poll of its prefix is one file; a
/// re-upload with new content has a new ETag and is a new file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileIdentity {
    pub bucket: String,
    pub key: String,
    /// Without the quotes S3's object APIs put around it.
    pub etag: String,
}

impl FileIdentity {
    pub fn new(bucket: &str, key: &str, etag: &str) -> Self {
        Self {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            etag: unquote_etag(etag).to_owned(),
        }
    }

    /// The ledger key: SHA-256 of `["bucket","key","etag"]` in hex. Fixed-length whatever the
    /// key (S3 keys reach 1,024 bytes, DynamoDB partition keys stop at 2,048), and the JSON
    /// array keeps odd keys from colliding (`a","b` vs `a`).
    pub fn object_id(&self) -> String {
        let text = serde_json::json!([self.bucket, self.key, self.etag]).to_string();
        let digest = Sha256::digest(text.as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// `"abc"` → `abc`; notifications send ETags bare, the object APIs quoted.
pub fn unquote_etag(etag: &str) -> &str {
    etag.trim_matches('"')
}

/// Where a file ends up once it is decided (the four cases of the folder settings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Placement {
    /// Deleted from the source (a good file without a success folder).
    Delete,
    /// Moved to `key` (the success or failed folder).
    Move { key: String },
    /// Left where it is (a bad file without a failed folder).
    Stay,
}

/// The placement of `key` under the connector's folder rules:
///
/// | success dir | failed dir | a good file | a bad file |
/// |---|---|---|---|
/// | – | – | deleted | stays in source |
/// | set | – | moved to success dir | stays in source |
/// | – | set | deleted | moved to failed dir |
/// | set | set | moved to success dir | moved to failed dir |
///
/// A moved file keeps its path below the source prefix, so subfolders survive the move.
pub fn placement(options: &IngestOptions, source_prefix: &str, key: &str, good: bool) -> Placement {
    let dir = if good {
        options.success_dir.as_deref()
    } else {
        options.failed_dir.as_deref()
    };
    match (dir, good) {
        (Some(dir), _) => Placement::Move {
            key: format!("{dir}{}", key.strip_prefix(source_prefix).unwrap_or(key)),
        },
        (None, true) => Placement::Delete,
        (None, false) => Placement::Stay,
    }
}

/// The sidecar of a file's refused rows, next to where the file ends up (beside its source key
/// when the file is deleted or stays).
pub fn sidecar_key(source_key: &str, placement: &Placement) -> String {
    let base = match placement {
        Placement::Move { key } => key.as_str(),
        Placement::Delete | Placement::Stay => source_key,
    };
    format!("{base}{SIDECAR_SUFFIX}")
}

/// Why a key is not a file to ingest for a connector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotIngested {
    /// Outside the connector's source prefix.
    OutsidePrefix,
    /// A folder marker (`…/`).
    Folder,
    /// A validation object or the challenge file.
    ServiceObject,
    /// An error sidecar we wrote.
    Sidecar,
    /// Inside the success or failed folder (files already decided).
    MovedFile,
}

/// Whether `key` in the connector's bucket is a customer file this connector ingests.
pub fn ingestible(connector: &Connector, key: &str) -> Result<(), NotIngested> {
    let Some(options) = connector.ingest_options() else {
        return Err(NotIngested::OutsidePrefix);
    };
    if !key.starts_with(connector.prefix.as_str()) {
        return Err(NotIngested::OutsidePrefix);
    }
    if key.ends_with('/') {
        return Err(NotIngested::Folder);
    }
    if connector.is_service_object(key) {
        return Err(NotIngested::ServiceObject);
    }
    if key.ends_with(SIDECAR_SUFFIX) {
        return Err(NotIngested::Sidecar);
    }
    if options.move_dirs().iter().any(|dir| key.starts_with(dir)) {
        return Err(NotIngested::MovedFile);
    }
    Ok(())
}

/// The connector among a bucket's that ingests `key`: the ingest connector whose prefix holds
/// it, whatever its status (prefixes of one bucket never overlap; the longest wins should
/// they). Only an active one loads; the caller decides what to do about the others.
pub fn route<'a>(connectors: &'a [Connector], key: &str) -> Option<&'a Connector> {
    connectors
        .iter()
        .filter(|c| ingestible(c, key).is_ok())
        .max_by_key(|c| c.prefix.len())
}

/// What the ledger shows of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    /// Claimed by an invocation (loading, or moving after its rows are in the lake).
    Processing,
    /// Its rows are in the lake and it was moved or deleted as the rules say.
    Succeeded,
    /// Refused (a malformed file, or more bad rows than the policy allows): nothing of it is in
    /// the lake; it was moved to the failed folder or left in place. Final.
    Failed,
    /// A failure that may pass (a throttle, a denied read the customer can fix): the next
    /// delivery tries again.
    Retrying,
    /// Failed [`MAX_FILE_ATTEMPTS`] times: not tried again.
    Quarantined,
}

impl FileStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FileStatus::Processing => "processing",
            FileStatus::Succeeded => "succeeded",
            FileStatus::Failed => "failed",
            FileStatus::Retrying => "retrying",
            FileStatus::Quarantined => "quarantined",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            FileStatus::Processing,
            FileStatus::Succeeded,
            FileStatus::Failed,
            FileStatus::Retrying,
            FileStatus::Quarantined,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    /// Nothing more will happen to the file.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            FileStatus::Succeeded | FileStatus::Failed | FileStatus::Quarantined
        )
    }
}

/// What came of loading a file, kept once it is decided so that a retry only finishes the move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Verdict {
    /// The good rows are in the lake as these parts.
    Loaded { parts: Vec<u64> },
    /// Nothing was loaded, for `error`.
    Refused { error: RunError },
}

/// How the file was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Intake {
    Notification,
    Poll,
}

/// The ledger record of one file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IngestFile {
    pub object_id: String,
    pub tenant_id: String,
    pub connector_id: String,
    pub file: FileIdentity,
    pub version_id: Option<String>,
    /// Bytes as stored (compressed).
    pub size: u64,
    pub table: String,
    pub status: FileStatus,
    pub intake: Intake,
    /// Deliveries that took the file (the first one included).
    pub attempts: u32,
    /// Which invocation holds the file, until when (epoch seconds).
    pub holder: Option<String>,
    pub lease_until: Option<i64>,
    pub first_seen_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Time of the attempt that finished it.
    pub duration_ms: Option<u64>,
    pub verdict: Option<Verdict>,
    pub rows_loaded: u64,
    pub rows_rejected: u64,
    /// Bytes after decompression.
    pub content_bytes: u64,
    /// Where the file went (set with the verdict, done once `moved`).
    pub placement: Option<Placement>,
    pub moved: bool,
    pub sidecar_key: Option<String>,
    /// The last failure: the verdict's for a refused file, the latest attempt's while retrying.
    pub error: Option<RunError>,
    /// Optimistic concurrency: every write expects the version it read.
    pub version: u64,
}

/// What a delivery of a file may do, given its ledger record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Nobody has it: claim it (a first attempt, a retry, or a take-over of a lapsed claim),
    /// then load it unless its verdict is already recorded, then place it.
    Take { attempt: u32 },
    /// Another invocation holds it until `until`; this delivery is a duplicate.
    Busy { until: i64 },
    /// It is decided and placed; nothing to do.
    Done(FileStatus),
    /// It failed too often: record it quarantined and stop.
    Quarantine,
}

/// The decision for a delivery at `now` (epoch seconds).
pub fn on_delivery(record: Option<&IngestFile>, now: i64) -> Delivery {
    let Some(record) = record else {
        return Delivery::Take { attempt: 1 };
    };
    match record.status {
        FileStatus::Succeeded | FileStatus::Quarantined => Delivery::Done(record.status),
        // A refused file is final once placed; one whose move was cut short is finished.
        FileStatus::Failed if record.moved => Delivery::Done(record.status),
        FileStatus::Processing if record.lease_until.is_some_and(|until| until > now) => {
            Delivery::Busy {
                until: record.lease_until.unwrap_or(now),
            }
        }
        // A decided file only has its move left, which never counts against its attempts.
        _ if record.verdict.is_some() => Delivery::Take {
            attempt: record.attempts + 1,
        },
        _ if record.attempts >= MAX_FILE_ATTEMPTS => Delivery::Quarantine,
        _ => Delivery::Take {
            attempt: record.attempts + 1,
        },
    }
}

/// What a customer should do about a file that failed: the remediation of its error, or, for a
/// quarantined file, how to have it tried again.
pub fn quarantine_error(last: Option<&RunError>) -> RunError {
    let last_message = last.map_or_else(
        || "the last attempt left no reason".to_owned(),
        |e| e.message.clone(),
    );
    RunError {
        reason: "quarantined".to_owned(),
        message: format!(
            "the file failed {MAX_FILE_ATTEMPTS} times and is no longer tried; last failure: {last_message}"
        ),
        remediation: last.map_or_else(
            || "upload the file again (a new upload is a new file)".to_owned(),
            |e| {
                format!(
                    "{}; then upload the file again (a new upload is a new file)",
                    e.remediation
                )
            },
        ),
        aws_error_code: last.and_then(|e| e.aws_error_code.clone()),
    }
}

#[cfg(test)]
mod tests;
