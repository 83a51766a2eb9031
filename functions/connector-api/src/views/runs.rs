//! What the API returns of a run: its state, what it planned, what it wrote, why it failed.
//! Every member is always present (`null` when not known yet), so a client polling a run reads
//! one shape from `queued` to `succeeded`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use shared::domain::export::run::{Run, RunError, RunPlan, RunStatus, RunTrigger, WrittenFile};
use shared::domain::export::task::{TaskRecord, TaskState};

#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    pub run_id: String,
    pub connector_id: String,
    pub status: RunStatus,
    pub trigger: RunTrigger,
    pub requested_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    /// Rows and stored bytes of the files written so far.
    pub rows: u64,
    pub bytes: u64,
    /// `null` until the run has planned (it plans before it writes anything).
    pub plan: Option<RunPlanView>,
    pub files: Vec<WrittenFileView>,
    pub error: Option<RunErrorView>,
    /// The schedule slot of a scheduled run (`null` for one started by the API).
    pub slot: Option<DateTime<Utc>>,
    /// Earlier slots that passed unclaimed (the service was down) and this run covers.
    pub missed_slots: u32,
    /// Each file task's state; `null` in listings (read one run for them).
    pub tasks: Option<Vec<TaskView>>,
    pub links: RunLinks,
}

/// One file task: where its file stands and what it took.
#[derive(Debug, Clone, Serialize)]
pub struct TaskView {
    pub index: u32,
    pub key: String,
    pub table: String,
    pub state: TaskState,
    /// Invocations that took the task, continuations included.
    pub attempts: u32,
    /// Times the task checkpointed near the function's deadline and went on in a new one.
    pub continuations: u32,
    /// Times the file was started over (a format that cannot continue mid-file).
    pub restarts: u32,
    /// Rows written so far (all of them once `written`).
    pub rows: u64,
    pub error: Option<RunErrorView>,
}

impl From<&TaskRecord> for TaskView {
    fn from(t: &TaskRecord) -> Self {
        TaskView {
            index: t.index,
            key: t.key.clone(),
            table: t.table.clone(),
            state: t.state,
            attempts: t.attempts,
            continuations: t.continuations,
            restarts: t.restarts,
            rows: t
                .written
                .as_ref()
                .map(|w| w.rows)
                .or(t.checkpoint.as_ref().map(|c| c.rows))
                .unwrap_or(0),
            error: t.error.as_ref().map(RunErrorView::from),
        }
    }
}

impl RunView {
    /// The run with its file tasks; while it runs, the files written so far come from them.
    pub fn with_tasks(run: &Run, tasks: &[TaskRecord]) -> Self {
        let mut view = RunView::from(run);
        if run.files.is_empty() {
            view.files = tasks
                .iter()
                .filter_map(|t| t.written.as_ref())
                .map(WrittenFileView::from)
                .collect();
            view.rows = view.files.iter().map(|f| f.rows).sum();
            view.bytes = view.files.iter().map(|f| f.bytes).sum();
        }
        view.tasks = Some(tasks.iter().map(TaskView::from).collect());
        view
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RunPlanView {
    pub loaded_at: DateTime<Utc>,
    pub tables: Vec<PlannedTableView>,
    pub files: Vec<PlannedFileView>,
    pub manifest_key: String,
    /// `null` when the connector turned the `.DONE` marker off.
    pub done_key: Option<String>,
}

/// One table of the plan: its columns and the lake part sequences it covers, `(after, through]`.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedTableView {
    pub table: String,
    /// `null`: every column of the table.
    pub columns: Option<Vec<String>>,
    pub watermark: WatermarkView,
}

#[derive(Debug, Clone, Serialize)]
pub struct WatermarkView {
    /// `null`: the table's first export.
    pub after: Option<u64>,
    /// `null`: nothing to export (no part yet).
    pub through: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedFileView {
    pub key: String,
    pub table: String,
    pub rows: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct WrittenFileView {
    pub key: String,
    pub table: String,
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunErrorView {
    pub reason: String,
    pub message: String,
    pub remediation: String,
    pub aws_error_code: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunLinks {
    #[serde(rename = "self")]
    pub self_: String,
    pub connector: String,
}

/// Where a run is served.
pub fn run_path(connector_id: &str, run_id: &str) -> String {
    format!("/connectors/{connector_id}/runs/{run_id}")
}

impl From<&RunPlan> for RunPlanView {
    fn from(plan: &RunPlan) -> Self {
        RunPlanView {
            loaded_at: plan.loaded_at,
            tables: plan
                .tables
                .iter()
                .map(|t| PlannedTableView {
                    table: t.table.clone(),
                    columns: t.columns.clone(),
                    watermark: WatermarkView {
                        after: t.after_seq,
                        through: t.through_seq,
                    },
                })
                .collect(),
            files: plan
                .files
                .iter()
                .map(|f| PlannedFileView {
                    key: f.key.clone(),
                    table: f.table.clone(),
                    rows: f.rows,
                })
                .collect(),
            manifest_key: plan.manifest_key.clone(),
            done_key: plan.done_key.clone(),
        }
    }
}

impl From<&WrittenFile> for WrittenFileView {
    fn from(f: &WrittenFile) -> Self {
        WrittenFileView {
            key: f.key.clone(),
            table: f.table.clone(),
            rows: f.rows,
            bytes: f.bytes,
            sha256: f.sha256.clone(),
        }
    }
}

impl From<&RunError> for RunErrorView {
    fn from(e: &RunError) -> Self {
        RunErrorView {
            reason: e.reason.clone(),
            message: e.message.clone(),
            remediation: e.remediation.clone(),
            aws_error_code: e.aws_error_code.clone(),
        }
    }
}

impl From<&Run> for RunView {
    fn from(run: &Run) -> Self {
        RunView {
            run_id: run.run_id.clone(),
            connector_id: run.connector_id.clone(),
            status: run.status,
            trigger: run.trigger,
            requested_at: run.requested_at,
            started_at: run.started_at,
            finished_at: run.finished_at,
            duration_ms: run.duration_ms(),
            rows: run.rows(),
            bytes: run.bytes(),
            plan: run.plan.as_ref().map(RunPlanView::from),
            files: run.files.iter().map(WrittenFileView::from).collect(),
            error: run.error.as_ref().map(RunErrorView::from),
            slot: run.slot,
            missed_slots: run.missed_slots,
            tasks: None,
            links: RunLinks {
                self_: run_path(&run.connector_id, &run.run_id),
                connector: format!("/connectors/{}", run.connector_id),
            },
        }
    }
}
