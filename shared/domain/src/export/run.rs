//! A run as stored in the runs table (`connector_id`, `run_id`) and returned by the runs API.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The highest lake part sequence exported, per table. A table absent from the map has never
/// been exported: its first run takes the parts inside the backfill window.
pub type Watermarks = BTreeMap<String, u64>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
}

impl RunStatus {
    pub fn is_finished(self) -> bool {
        matches!(self, RunStatus::Succeeded | RunStatus::Failed)
    }
}

/// Who asked for the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunTrigger {
    /// `POST /connectors/{id}/runs`.
    Api,
    /// A schedule slot.
    Schedule,
}

/// One lake part as the planner sees it: its place in the table, its size and age, and which
/// schema it was written with (parts of different schemas never share a file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartSummary {
    pub seq: u64,
    pub rows: u64,
    pub bytes: u64,
    pub created_at: DateTime<Utc>,
    /// Equal for parts with the same columns and types.
    pub schema_id: String,
}

/// One output file: the lake parts `first_seq..=last_seq` of one table, written to `key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileTask {
    pub table: String,
    /// 1-based within the table in this run (the key template's `[part_number]`).
    pub part_number: u32,
    /// Full object key in the customer's bucket (under the connector's prefix).
    pub key: String,
    /// Inclusive range of lake part sequences; `None` for the empty file of a table with no
    /// new rows (`empty_export: empty_file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<(u64, u64)>,
    /// Rows and lake (Parquet) bytes of those parts.
    pub rows: u64,
    pub lake_bytes: u64,
}

/// What a run exports of one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TablePlan {
    pub table: String,
    /// The selected columns in order; `None` for every column of the lake table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
    /// Watermark before the run (`None`: first export of this table).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_seq: Option<u64>,
    /// Watermark the run leaves once its `.DONE` marker is written (`after_seq` when there is
    /// nothing new).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub through_seq: Option<u64>,
}

/// Everything a run will write, fixed before it writes anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunPlan {
    /// The run's time in every key (`[timestamp_loaded]`, date parts).
    pub loaded_at: DateTime<Utc>,
    pub tables: Vec<TablePlan>,
    pub files: Vec<FileTask>,
    pub manifest_key: String,
    /// `None` when the connector turned the success marker off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_key: Option<String>,
}

impl RunPlan {
    /// The watermarks this run started from, given the current ones: every planned table at
    /// its `after_seq` (absent when it had none).
    pub fn watermarks_before(&self, current: &Watermarks) -> Watermarks {
        let mut before = current.clone();
        for table in &self.tables {
            match table.after_seq {
                Some(seq) => before.insert(table.table.clone(), seq),
                None => before.remove(&table.table),
            };
        }
        before
    }

    /// The watermarks after this run: every planned table at its `through_seq`.
    pub fn watermarks_after(&self, before: &Watermarks) -> Watermarks {
        let mut after = before.clone();
        for table in &self.tables {
            if let Some(seq) = table.through_seq {
                after.insert(table.table.clone(), seq);
            }
        }
        after
    }
}

/// A file the run wrote (and completed) in the customer's bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrittenFile {
    pub key: String,
    pub table: String,
    pub rows: u64,
    /// Size of the object as stored.
    pub bytes: u64,
    /// Hex SHA-256 of the object's bytes.
    pub sha256: String,
}

/// Why a run failed, and what the customer (or operator) should do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunError {
    /// Short machine-readable reason, e.g. `access_denied`, `challenge_file_missing`,
    /// `value_needs_quoting`.
    pub reason: String,
    pub message: String,
    pub remediation: String,
    /// The AWS error code behind it, when a call failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_error_code: Option<String>,
}

/// One run of an export connector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub tenant_id: String,
    pub connector_id: String,
    pub run_id: String,
    pub trigger: RunTrigger,
    pub status: RunStatus,
    pub requested_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<RunPlan>,
    /// Files completed so far (all of them once the run succeeded).
    #[serde(default)]
    pub files: Vec<WrittenFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RunError>,
    /// The schedule slot a scheduled run was claimed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<DateTime<Utc>>,
    /// Earlier slots that passed unclaimed (the service was down): this run covers them too.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub missed_slots: u32,
    /// Epoch seconds after which DynamoDB's TTL removes the record.
    pub expires_at: i64,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// How long run records are kept.
pub const RUN_RETENTION_DAYS: i64 = 90;

/// How long a claim's in-flight markers hold without the run finishing: a run that died
/// without recording an outcome stops blocking its connector and its tenant after this.
pub const IN_FLIGHT_LEASE_HOURS: i64 = 6;

impl Run {
    pub fn queued(
        tenant_id: &str,
        connector_id: &str,
        run_id: String,
        trigger: RunTrigger,
        now: DateTime<Utc>,
    ) -> Self {
        Run {
            tenant_id: tenant_id.to_owned(),
            connector_id: connector_id.to_owned(),
            run_id,
            trigger,
            status: RunStatus::Queued,
            requested_at: now,
            started_at: None,
            finished_at: None,
            plan: None,
            files: Vec::new(),
            error: None,
            slot: None,
            missed_slots: 0,
            expires_at: (now + chrono::Duration::days(RUN_RETENTION_DAYS)).timestamp(),
        }
    }

    pub fn rows(&self) -> u64 {
        self.files.iter().map(|f| f.rows).sum()
    }

    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }

    /// Milliseconds from start to finish (or `None` while it runs).
    pub fn duration_ms(&self) -> Option<i64> {
        Some((self.finished_at? - self.started_at?).num_milliseconds())
    }
}

/// The manifest written after every data file of a run, before the `.DONE` marker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub run_id: String,
    pub connector_id: String,
    pub loaded_at: DateTime<Utc>,
    pub files: Vec<ManifestFile>,
    /// Per table, the lake part sequences the run covered: `(after, through]`.
    pub watermarks: BTreeMap<String, WatermarkRange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    pub key: String,
    pub table: String,
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
    /// The columns in file order, with their types as the lake names them.
    pub schema: Vec<ManifestColumn>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestColumn {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub nullable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatermarkRange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub through: Option<u64>,
}

/// The export queue's message: start this run (plan it and fan its files out), or, with
/// `task`, write (or continue) one of its files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunMessage {
    pub tenant_id: String,
    pub connector_id: String,
    pub run_id: String,
    /// The file's index in the run's plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<u32>,
    /// Which continuation of the task this message carries (0: its first message).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub continuation: u32,
}

impl RunMessage {
    pub fn start(run: &Run) -> Self {
        RunMessage {
            tenant_id: run.tenant_id.clone(),
            connector_id: run.connector_id.clone(),
            run_id: run.run_id.clone(),
            task: None,
            continuation: 0,
        }
    }

    pub fn for_task(&self, index: u32, continuation: u32) -> Self {
        RunMessage {
            task: Some(index),
            continuation,
            ..self.clone()
        }
    }
}
