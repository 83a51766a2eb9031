//! One file task of a run as stored in the runs table (docs/architecture.md, "Fan-out"): its
//! state, how often it was attempted, continued past a deadline or restarted, and the
//! checkpoint a continuation starts from.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::run::{FileTask, ManifestColumn, RunError, WrittenFile};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Enqueued, not started (or released for a retry).
    Pending,
    /// An invocation holds the task's lease, or left a checkpoint to continue from.
    Writing,
    /// The object is complete in the customer's bucket.
    Written,
    Failed,
}

/// Where a continuation picks up: the open multipart upload, the next source row, the rows
/// already written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub upload: UploadCheckpoint,
    /// The next row to read: row `rows_into_part` (0-based) of lake part `part_seq`.
    pub part_seq: u64,
    pub rows_into_part: u64,
    /// Data rows in the file so far.
    pub rows: u64,
    pub saved_at: DateTime<Utc>,
}

/// An open multipart upload between two invocations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadCheckpoint {
    pub upload_id: String,
    /// Parts uploaded, in order.
    pub parts: Vec<SavedPart>,
    /// Bytes in those parts.
    pub bytes: u64,
    /// The SHA-256 of those bytes, not yet finalised.
    pub sha256: Sha256State,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedPart {
    pub number: u32,
    pub etag: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc32c: Option<u32>,
}

/// SHA-256's eight working words after the last whole block, the bytes hashed, and the
/// unhashed tail (under 64 bytes) in hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sha256State {
    pub words: [u32; 8],
    pub len: u64,
    pub tail: String,
}

/// One file task's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub run_id: String,
    /// The file's place in the run's plan (`RunPlan::files`).
    pub index: u32,
    pub key: String,
    pub table: String,
    pub state: TaskState,
    /// Invocations that took the task (continuations included).
    pub attempts: u32,
    /// Times an invocation near its deadline left a checkpoint and handed the rest on.
    pub continuations: u32,
    /// Times the file was started over (a format that cannot continue, or a lost checkpoint).
    pub restarts: u32,
    /// Epoch seconds until which an invocation holds the task; 0 when none does.
    pub lease_until: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Checkpoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written: Option<WrittenFile>,
    /// The file's columns, for the manifest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schema: Vec<ManifestColumn>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RunError>,
    pub updated_at: DateTime<Utc>,
    /// DynamoDB TTL, as the run's.
    pub expires_at: i64,
}

impl TaskRecord {
    pub fn pending(
        run_id: &str,
        index: u32,
        file: &FileTask,
        now: DateTime<Utc>,
        expires_at: i64,
    ) -> Self {
        TaskRecord {
            run_id: run_id.to_owned(),
            index,
            key: file.key.clone(),
            table: file.table.clone(),
            state: TaskState::Pending,
            attempts: 0,
            continuations: 0,
            restarts: 0,
            lease_until: 0,
            checkpoint: None,
            written: None,
            schema: Vec::new(),
            error: None,
            updated_at: now,
            expires_at,
        }
    }

    /// Whether an invocation may take the task at `now` (epoch seconds).
    pub fn is_free(&self, now: i64) -> bool {
        self.state != TaskState::Written && self.lease_until <= now
    }
}
