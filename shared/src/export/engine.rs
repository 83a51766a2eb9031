//! One export run, from its queue message to the `.DONE` marker (docs/architecture.md,
//! "Export"): load the run and its connector, obtain the connector's credentials, re-check the
//! challenge file, plan once (a redelivered message reuses the stored plan, so every key stays
//! the same), write each file task that is not written yet, then the manifest, the marker, and
//! only then the watermark.
//!
//! A failure the customer must fix (a denied write, a value that cannot be written unquoted)
//! ends the run as `failed` with the remediation and leaves the watermark where it was; a
//! failure on our side (DynamoDB, the lake, a throttle that outlasted the retries) is returned
//! so the message is delivered again and the run continues where it stopped.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use chrono::Utc;

use crate::connector_bucket::{BucketRefusal, bucket_refusal, open_bucket};
use crate::credentials::CredentialBroker;
use crate::domain::connector::{
    AuthMode, Connector, ConnectorStatus, ExportCompression, ExportOptions, FileFormat,
};
use crate::domain::export::layout;
use crate::domain::export::plan::{self, PlanRequest, TableParts};
use crate::domain::export::run::{
    FileTask, Manifest, ManifestColumn, ManifestFile, Run, RunError, RunMessage, RunPlan,
    RunStatus, WatermarkRange, Watermarks, WrittenFile,
};
use crate::domain::export::task::{Checkpoint, TaskRecord, TaskState};
use crate::error::{AwsCallError, StoreError};
use crate::export::encode::{self, EncodeError, ParquetCodec};
use crate::export::resumable_sha256::ResumableSha256;
use crate::export::sink::ByteSink;
use crate::export::upload::{self, UploadError, UploadOutcome, UploadSettings};
use crate::export::{compress, pgp};
use crate::lake::{Lake, LakeError, LakePart};
use crate::ports::{
    ConnectorStore, CustomerStorage, ObjectStore, RunClaims, RunQueue, RunStore, SecretStore,
    SecurityTokenService, WriteOptions,
};

/// Rows per batch read from the lake: large enough for fast column loops, small enough that a
/// batch of wide rows stays a few MiB.
const BATCH_ROWS: usize = 8192;

/// How the engine writes: part sizes and parallelism of uploads, where containers spool.
#[derive(Debug, Clone)]
pub struct ExportSettings {
    pub upload: UploadSettings,
    /// Ephemeral storage for tar members (their size goes in the header, before the bytes).
    pub spool_dir: PathBuf,
    /// How long before the function's deadline a file task checkpoints and hands the rest of
    /// its file to a new invocation (`EXPORT_DEADLINE_MARGIN_SECONDS`).
    pub deadline_margin: Duration,
    /// How long a file task is held by the invocation that took it: longer than the function
    /// may run, shorter than the queue's visibility timeout, so that the redelivery of a
    /// message whose invocation died finds the task free.
    pub task_lease: Duration,
    /// The export queue's maxReceiveCount: the delivery that fails for the last time records
    /// the run as failed before the message moves to the dead-letter queue.
    pub max_receive_count: u32,
}

impl ExportSettings {
    pub fn new(spool_dir: PathBuf) -> Self {
        Self {
            upload: UploadSettings::default(),
            spool_dir,
            deadline_margin: Duration::from_secs(120),
            task_lease: Duration::from_secs(16 * 60),
            max_receive_count: 3,
        }
    }
}

/// Earlier runs whose planned keys the sweep of abandoned uploads recognises as ours.
const SWEEP_RUNS: u32 = 20;

/// A failure on our side: the message should be delivered again.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("runs or connectors table: {0}")]
    Store(#[from] StoreError),
    #[error("lake: {0}")]
    Lake(#[from] LakeError),
    #[error("{0}")]
    Retry(AwsCallError),
}

/// Why `export` stopped before the end.
enum Stop {
    /// The run failed for a reason it records.
    Failed(RunError),
    /// Try again later (the message is redelivered).
    Retry(EngineError),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Stop::Retry(EngineError::Store(e))
    }
}

impl From<RunError> for Stop {
    fn from(e: RunError) -> Self {
        Stop::Failed(e)
    }
}

impl From<LakeError> for Stop {
    fn from(e: LakeError) -> Self {
        match e {
            LakeError::Aws(aws) => Stop::Retry(EngineError::Lake(LakeError::Aws(aws))),
            other => Stop::Failed(run_error(
                "lake_unreadable",
                format!("the platform's copy of the data could not be read: {other}"),
                "this is on our side: contact support with the run id; nothing in your account needs to change",
            )),
        }
    }
}

fn run_error(reason: &str, message: impl Into<String>, remediation: impl Into<String>) -> RunError {
    RunError {
        reason: reason.to_owned(),
        message: message.into(),
        remediation: remediation.into(),
        aws_error_code: None,
    }
}

pub struct ExportEngine<L, R, C, T, K, S, Q> {
    lake: Arc<L>,
    runs: R,
    connectors: C,
    broker: Arc<CredentialBroker<T, K>>,
    storage: S,
    queue: Q,
    settings: ExportSettings,
}

/// The stores a run reads and writes besides the lake and the customer's bucket (the runs
/// table also holds the run's in-flight markers, released when it finishes).
pub struct RunStores<R, C, Q> {
    pub runs: R,
    pub connectors: C,
    pub queue: Q,
}

/// What the engine knows of the delivery it serves: when the invocation must stop, and
/// whether SQS will deliver the message again after a failure.
#[derive(Debug, Clone, Copy)]
pub struct Delivery {
    /// The function's deadline; `None`: no deadline (tests, tools).
    pub deadline: Option<Instant>,
    /// SQS's ApproximateReceiveCount of the message (1 on its first delivery).
    pub receive_count: u32,
}

impl Delivery {
    pub fn unbounded() -> Self {
        Self {
            deadline: None,
            receive_count: 1,
        }
    }
}

/// How a file task's invocation ended.
enum FileOutcome {
    Written(WrittenFile, Vec<ManifestColumn>),
    Paused(Checkpoint),
}

impl<L, R, C, T, K, S, Q> ExportEngine<L, R, C, T, K, S, Q>
where
    L: Lake + 'static,
    R: RunStore + RunClaims,
    C: ConnectorStore,
    T: SecurityTokenService + 'static,
    K: SecretStore + 'static,
    S: CustomerStorage,
    S::Store: 'static,
    Q: RunQueue,
{
    pub fn new(
        lake: Arc<L>,
        stores: RunStores<R, C, Q>,
        broker: Arc<CredentialBroker<T, K>>,
        storage: S,
        settings: ExportSettings,
    ) -> Self {
        Self {
            lake,
            runs: stores.runs,
            connectors: stores.connectors,
            broker,
            storage,
            queue: stores.queue,
            settings,
        }
    }

    /// Carries out what the message asks: start the run (plan it, fan its files out), or
    /// write one of its files (and, for the last one written, finish the run). `Ok(None)`: no
    /// such run (or not this tenant's), nothing to do. `Ok(Some(run))`: the run as it stands.
    pub async fn execute(
        &self,
        message: &RunMessage,
        delivery: &Delivery,
    ) -> Result<Option<Run>, EngineError> {
        let Some(run) = self
            .runs
            .get(&message.connector_id, &message.run_id)
            .await?
        else {
            tracing::warn!(run_id = %message.run_id, "no such run; message dropped");
            return Ok(None);
        };
        if run.tenant_id != message.tenant_id {
            tracing::warn!(run_id = %message.run_id, "run of another tenant; message dropped");
            return Ok(None);
        }
        if run.status.is_finished() {
            tracing::info!(run_id = %run.run_id, status = ?run.status, "run already finished");
            return Ok(Some(run));
        }
        let connector = match self
            .connectors
            .get(&message.tenant_id, &message.connector_id)
            .await?
        {
            Some(c) => c,
            None => {
                let error = run_error(
                    "connector_deleted",
                    "the connector was deleted before the run finished",
                    "nothing to do: create the connector again to export",
                );
                return self.fail(None, run, error).await.map(Some);
            }
        };
        if let Some(error) = not_runnable(&connector) {
            return self.fail(Some(&connector), run, error).await.map(Some);
        }
        let mut run = run;
        let outcome = match message.task {
            None => self.start(&connector, &mut run).await,
            Some(index) => {
                self.run_task(&connector, &mut run, message, index, delivery)
                    .await
            }
        };
        match outcome {
            Ok(()) => Ok(Some(run)),
            Err(Stop::Failed(error)) => self.fail(Some(&connector), run, error).await.map(Some),
            Err(Stop::Retry(e)) if delivery.receive_count >= self.settings.max_receive_count => {
                // SQS will not deliver it again (it goes to the dead-letter queue): the run
                // says so instead of staying `running`.
                let error = run_error(
                    "retries_exhausted",
                    format!(
                        "the run was interrupted {} times on our side; last: {e}",
                        delivery.receive_count
                    ),
                    "nothing is lost: the watermark stays, and the next run (or POST …/retry) exports these rows; if it keeps happening, contact support with the run id",
                );
                self.fail(Some(&connector), run, error).await?;
                Err(e)
            }
            Err(Stop::Retry(e)) => {
                // Keep the progress (plan) for the redelivery.
                if message.task.is_none()
                    && let Err(save) = self.runs.update(&run).await
                {
                    tracing::warn!(error = %save, "could not save the run's progress");
                }
                Err(e)
            }
        }
    }

    /// The run message: credentials and the challenge file checked, the plan fixed (or the
    /// stored one), abandoned uploads swept, one task record and one message per file.
    async fn start(&self, connector: &Connector, run: &mut Run) -> Result<(), Stop> {
        run.status = RunStatus::Running;
        run.started_at.get_or_insert_with(Utc::now);
        self.runs.update(run).await?;
        let store = self.open_bucket(connector).await?;
        if connector.auth.mode() == AuthMode::BucketPolicy {
            self.check_challenge_file(connector, &store).await?;
        }
        let watermarks = self.runs.watermarks(&connector.connector_id).await?;
        let plan = match run.plan.clone() {
            Some(plan) => plan,
            None => {
                let plan = self.plan(connector, &run.run_id, &watermarks).await?;
                run.plan = Some(plan.clone());
                self.runs.update(run).await?;
                plan
            }
        };
        check_watermarks(&plan, &watermarks)?;
        let tasks = self
            .runs
            .tasks(&connector.connector_id, &run.run_id)
            .await?;
        self.sweep_uploads(connector, &store, run, &tasks).await;
        if plan.files.is_empty() {
            return self.finish_run(connector, &store, run, &plan).await;
        }
        let now = Utc::now();
        let records: Vec<TaskRecord> = plan
            .files
            .iter()
            .enumerate()
            .map(|(i, file)| TaskRecord::pending(&run.run_id, i as u32, file, now, run.expires_at))
            .collect();
        self.runs
            .create_tasks(&connector.connector_id, &records)
            .await?;
        let tasks = self
            .runs
            .tasks(&connector.connector_id, &run.run_id)
            .await?;
        let message = RunMessage::start(run);
        let to_send: Vec<RunMessage> = tasks
            .iter()
            .filter(|t| t.state != TaskState::Written)
            .map(|t| message.for_task(t.index, t.continuations))
            .collect();
        if to_send.is_empty() {
            // Every file was written by an earlier delivery; the finishing step may not have run.
            return self.finish_run(connector, &store, run, &plan).await;
        }
        self.queue
            .enqueue_all(&to_send)
            .await
            .map_err(|e| Stop::Retry(EngineError::Retry(e)))?;
        tracing::info!(run_id = %run.run_id, files = plan.files.len(), queued = to_send.len(), "run fanned out");
        Ok(())
    }

    /// One file task: taken under a lease (a duplicate delivery while another invocation
    /// holds it is dropped), written (or continued from its checkpoint), then counted; the
    /// invocation that counts the last file finishes the run.
    async fn run_task(
        &self,
        connector: &Connector,
        run: &mut Run,
        message: &RunMessage,
        index: u32,
        delivery: &Delivery,
    ) -> Result<(), Stop> {
        let Some(plan) = run.plan.clone() else {
            tracing::warn!(run_id = %run.run_id, index, "a file task of a run without a plan; dropped");
            return Ok(());
        };
        let Some(file) = plan.files.get(index as usize).cloned() else {
            tracing::warn!(run_id = %run.run_id, index, "no such file task; dropped");
            return Ok(());
        };
        let now = Utc::now().timestamp();
        let lease_until = now + self.settings.task_lease.as_secs() as i64;
        let taken = self
            .runs
            .take_task(
                &connector.connector_id,
                &run.run_id,
                index,
                now,
                lease_until,
            )
            .await?;
        let Some(mut task) = taken else {
            let tasks = self
                .runs
                .tasks(&connector.connector_id, &run.run_id)
                .await?;
            if tasks
                .iter()
                .any(|t| t.index == index && t.state == TaskState::Written)
            {
                // Written before; a crash may have come before it was counted.
                return self
                    .count_and_finish(connector, run, &plan, index, None)
                    .await;
            }
            tracing::info!(run_id = %run.run_id, index, "file task held by another invocation; duplicate dropped");
            return Ok(());
        };
        let store = Arc::new(self.open_bucket(connector).await?);
        let options = connector
            .export_options()
            .expect("not_runnable refuses ingest connectors");
        let resume = match task.checkpoint.take() {
            Some(checkpoint) if continuable(options) && checkpoint_is_sound(&checkpoint) => {
                Some(checkpoint)
            }
            Some(stale) => {
                self.abort_quietly(store.as_ref(), &file.key, &stale.upload.upload_id)
                    .await;
                task.restarts += 1;
                None
            }
            None if task.attempts > 1 => {
                // An earlier attempt stopped mid-file without a checkpoint: start over, and
                // abort what it may have left open under this file's key.
                self.abort_uploads_of(store.as_ref(), &file.key).await;
                task.restarts += 1;
                None
            }
            None => None,
        };
        let table = plan
            .tables
            .iter()
            .find(|t| t.table == file.table)
            .expect("every file task's table is planned");
        let listed = self
            .lake
            .parts_after(
                &connector.tenant_id,
                &table.table,
                table.after_seq.and_then(|s| s.checked_sub(1)),
            )
            .await?;
        let (parts, projection) = file_inputs(connector, &file, table.columns.as_deref(), &listed)?;
        let written = self
            .write_file(
                connector,
                options,
                store.clone(),
                &file,
                parts,
                &projection,
                resume,
                delivery,
            )
            .await;
        task.updated_at = Utc::now();
        let outcome = match written {
            Ok(FileOutcome::Written(written, schema)) => {
                task.state = TaskState::Written;
                task.written = Some(written);
                task.schema = schema;
                task.lease_until = 0;
                match self.runs.save_task(&connector.connector_id, &task).await {
                    Ok(()) => {
                        self.count_and_finish(connector, run, &plan, index, Some(store.as_ref()))
                            .await
                    }
                    Err(e) => Err(e.into()),
                }
            }
            Ok(FileOutcome::Paused(checkpoint)) => {
                task.continuations += 1;
                task.lease_until = 0;
                tracing::info!(
                    run_id = %run.run_id, index, key = %file.key,
                    rows = checkpoint.rows, bytes = checkpoint.upload.bytes,
                    continuation = task.continuations,
                    "file task near its deadline: checkpointed, continuing in a new invocation"
                );
                task.checkpoint = Some(checkpoint);
                match self.runs.save_task(&connector.connector_id, &task).await {
                    Ok(()) => self
                        .queue
                        .enqueue(&message.for_task(index, task.continuations))
                        .await
                        .map_err(|e| Stop::Retry(EngineError::Retry(e))),
                    Err(e) => Err(e.into()),
                }
            }
            Err(Stop::Failed(error)) => {
                task.state = TaskState::Failed;
                task.error = Some(error.clone());
                task.lease_until = 0;
                self.runs.save_task(&connector.connector_id, &task).await?;
                Err(Stop::Failed(error))
            }
            Err(retry) => Err(retry),
        };
        if matches!(outcome, Err(Stop::Retry(_))) {
            // Free the task (with what it achieved) for the redelivery at once, rather than
            // when its lease lapses.
            task.lease_until = 0;
            if let Err(save) = self.runs.save_task(&connector.connector_id, &task).await {
                tracing::warn!(error = %save, "could not release the file task");
            }
        }
        outcome
    }

    /// Counts file `index` as written (once), and finishes the run when it was the last.
    async fn count_and_finish(
        &self,
        connector: &Connector,
        run: &mut Run,
        plan: &RunPlan,
        index: u32,
        store: Option<&S::Store>,
    ) -> Result<(), Stop> {
        let (written, _) = self
            .runs
            .count_written(&connector.connector_id, &run.run_id, index)
            .await?;
        if (written as usize) < plan.files.len() {
            return Ok(());
        }
        match store {
            Some(store) => self.finish_run(connector, store, run, plan).await,
            None => {
                let store = self.open_bucket(connector).await?;
                self.finish_run(connector, &store, run, plan).await
            }
        }
    }

    /// The manifest (from the task records, in plan order: a redone finishing step writes the
    /// same bytes), the `.DONE` marker, then the watermarks, then the run `succeeded`.
    async fn finish_run(
        &self,
        connector: &Connector,
        store: &S::Store,
        run: &mut Run,
        plan: &RunPlan,
    ) -> Result<(), Stop> {
        let tasks = self
            .runs
            .tasks(&connector.connector_id, &run.run_id)
            .await?;
        let mut files = Vec::with_capacity(plan.files.len());
        let mut manifest_files = Vec::with_capacity(plan.files.len());
        for (i, _) in plan.files.iter().enumerate() {
            let Some((written, schema)) = tasks
                .iter()
                .find(|t| t.index as usize == i)
                .and_then(|t| t.written.as_ref().map(|w| (w, &t.schema)))
            else {
                tracing::warn!(run_id = %run.run_id, index = i, "finishing a run with a file not written; left to its task");
                return Ok(());
            };
            files.push(written.clone());
            manifest_files.push(ManifestFile {
                key: written.key.clone(),
                table: written.table.clone(),
                rows: written.rows,
                bytes: written.bytes,
                sha256: written.sha256.clone(),
                schema: schema.clone(),
            });
        }
        let manifest = Manifest {
            run_id: run.run_id.clone(),
            connector_id: connector.connector_id.clone(),
            loaded_at: plan.loaded_at,
            files: manifest_files,
            watermarks: plan
                .tables
                .iter()
                .map(|t| {
                    (
                        t.table.clone(),
                        WatermarkRange {
                            after: t.after_seq,
                            through: t.through_seq,
                        },
                    )
                })
                .collect(),
        };
        let body = serde_json::to_vec_pretty(&manifest).expect("a manifest serialises");
        self.put_small(
            connector,
            store,
            &plan.manifest_key,
            body,
            "application/json",
        )
        .await?;
        if let Some(done) = &plan.done_key {
            self.put_small(connector, store, done, Vec::new(), "text/plain")
                .await?;
        }
        let expected =
            plan.watermarks_before(&self.runs.watermarks(&connector.connector_id).await?);
        let next = plan.watermarks_after(&expected);
        match self
            .runs
            .advance_watermarks(&connector.connector_id, &run.run_id, &expected, &next)
            .await
        {
            Ok(()) => {}
            Err(StoreError::Contended) => {
                return Err(Stop::Failed(run_error(
                    "watermark_moved",
                    "another run committed its watermark first",
                    "nothing is lost: the next run continues from the new watermark",
                )));
            }
            Err(e) => return Err(e.into()),
        }
        run.files = files;
        run.finished_at = Some(Utc::now());
        run.status = RunStatus::Succeeded;
        tracing::info!(run_id = %run.run_id, files = run.files.len(), rows = run.rows(), bytes = run.bytes(), "export run succeeded");
        self.runs.update(run).await?;
        self.release(run).await;
        Ok(())
    }

    /// Ends the run `failed` with `error`, keeps the watermark, releases its in-flight markers;
    /// a failure the customer must fix in their account also marks the connector
    /// `needs_attention`. Uploads the run's checkpoints hold open are aborted.
    async fn fail(
        &self,
        connector: Option<&Connector>,
        mut run: Run,
        error: RunError,
    ) -> Result<Run, EngineError> {
        tracing::warn!(run_id = %run.run_id, reason = %error.reason, message = %error.message, "export run failed");
        if let (Some(connector), true) = (connector, needs_customer(&error.reason)) {
            self.needs_attention(connector).await;
        }
        if let Some(connector) = connector {
            self.abort_checkpoints(connector, &run).await;
        }
        run.finished_at = Some(Utc::now());
        run.status = RunStatus::Failed;
        run.error = Some(error);
        self.runs.update(&run).await?;
        self.release(&run).await;
        Ok(run)
    }

    /// Best effort: what is left open is swept at the connector's next run.
    async fn abort_checkpoints(&self, connector: &Connector, run: &Run) {
        let Ok(tasks) = self.runs.tasks(&connector.connector_id, &run.run_id).await else {
            return;
        };
        let open: Vec<(&str, &str)> = tasks
            .iter()
            .filter_map(|t| {
                t.checkpoint
                    .as_ref()
                    .map(|c| (t.key.as_str(), c.upload.upload_id.as_str()))
            })
            .collect();
        if open.is_empty() {
            return;
        }
        let Ok(store) = self.open_bucket(connector).await else {
            return;
        };
        for (key, upload_id) in open {
            self.abort_quietly(&store, key, upload_id).await;
        }
    }

    /// Releases the run's in-flight markers (best effort: a marker left behind lapses with
    /// its lease).
    async fn release(&self, run: &Run) {
        if let Err(e) = self.runs.release(run).await {
            tracing::warn!(run_id = %run.run_id, error = %e, "could not release the run's in-flight markers");
        }
    }

    /// Aborts multipart uploads left open under the connector's prefix on keys that this
    /// connector's recent runs planned (a run that failed or died mid-file), except those a
    /// task of this run continues from. Keys no run of ours planned are the customer's and are
    /// left alone. Best effort: a failure is logged, and the next run sweeps again.
    async fn sweep_uploads(
        &self,
        connector: &Connector,
        store: &S::Store,
        run: &Run,
        tasks: &[TaskRecord],
    ) {
        let open = match store.list_uploads(&connector.prefix).await {
            Ok(open) if !open.is_empty() => open,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, "could not list open uploads for the sweep");
                return;
            }
        };
        let mut ours: std::collections::HashSet<String> = std::collections::HashSet::new();
        match self
            .runs
            .list(&connector.connector_id, SWEEP_RUNS, None)
            .await
        {
            Ok(page) => {
                for earlier in page.items.iter().chain(std::iter::once(run)) {
                    if let Some(plan) = &earlier.plan {
                        ours.extend(plan.files.iter().map(|f| f.key.clone()));
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not read earlier runs for the sweep");
                return;
            }
        }
        let kept: std::collections::HashSet<&str> = tasks
            .iter()
            .filter_map(|t| t.checkpoint.as_ref().map(|c| c.upload.upload_id.as_str()))
            .collect();
        for upload in open {
            if ours.contains(&upload.key) && !kept.contains(upload.upload_id.as_str()) {
                tracing::info!(key = %upload.key, upload_id = %upload.upload_id, "aborting an abandoned multipart upload");
                self.abort_quietly(store, &upload.key, &upload.upload_id)
                    .await;
            }
        }
    }

    async fn abort_uploads_of(&self, store: &S::Store, key: &str) {
        match store.list_uploads(key).await {
            Ok(open) => {
                for upload in open.iter().filter(|u| u.key == key) {
                    self.abort_quietly(store, key, &upload.upload_id).await;
                }
            }
            Err(e) => {
                tracing::warn!(%key, error = %e, "could not list open uploads of a restarted file")
            }
        }
    }

    async fn abort_quietly(&self, store: &S::Store, key: &str, upload_id: &str) {
        if let Err(e) = store.abort_upload(key, upload_id).await
            && e.effective_code() != Some("NoSuchUpload")
        {
            tracing::warn!(%key, %upload_id, error = %e, "could not abort a multipart upload");
        }
    }

    /// The customer's bucket with the connector's credentials, renewed as they near expiry.
    async fn open_bucket(&self, connector: &Connector) -> Result<S::Store, Stop> {
        open_bucket(&self.broker, &self.storage, connector)
            .await
            .map_err(Stop::from)
    }

    /// A `bucket_policy` connector acts as our own principal: before each run, the customer's
    /// proof of ownership must still be there.
    async fn check_challenge_file(
        &self,
        connector: &Connector,
        store: &S::Store,
    ) -> Result<(), Stop> {
        let key = connector.challenge_key();
        match store.head_object(&key).await {
            Ok(_) => Ok(()),
            Err(e) if e.http_status == Some(404) => Err(Stop::Failed(RunError {
                reason: "challenge_file_missing".into(),
                message: format!("s3://{}/{key} is gone", connector.bucket),
                remediation: format!(
                    "upload an empty object named {:?} to s3://{}/{} again and keep it there, then validate the connector",
                    connector.challenge_file, connector.bucket, connector.prefix
                ),
                aws_error_code: e.effective_code().map(str::to_owned),
            })),
            Err(e) => Err(bucket_failure(
                connector,
                e,
                "s3:GetObject",
                "reading the challenge file",
            )),
        }
    }

    /// Marks the connector as needing the customer's attention (best effort: the run's own
    /// error already says what to do).
    async fn needs_attention(&self, connector: &Connector) {
        let mut changed = connector.clone();
        changed.status = ConnectorStatus::NeedsAttention;
        changed.version += 1;
        changed.updated_at = Utc::now();
        if let Err(e) = self
            .connectors
            .replace(&changed, connector.version, &[])
            .await
        {
            tracing::warn!(error = %e, "could not mark the connector needs_attention");
        }
    }

    async fn plan(
        &self,
        connector: &Connector,
        run_id: &str,
        watermarks: &Watermarks,
    ) -> Result<RunPlan, Stop> {
        let options = connector.export_options().expect("an export connector");
        let known = self.lake.tables(&connector.tenant_id).await?;
        let selection: Vec<(String, Option<Vec<String>>)> = if options.tables.is_empty() {
            known.iter().map(|t| (t.clone(), None)).collect()
        } else {
            options
                .tables
                .iter()
                .map(|t| (t.name.clone(), t.columns.clone()))
                .collect()
        };
        let mut tables = Vec::new();
        for (table, columns) in selection {
            if !known.contains(&table) {
                return Err(Stop::Failed(run_error(
                    "table_not_found",
                    format!("table {table} does not exist"),
                    format!(
                        "remove {table} from export.tables or check its name (tables: {})",
                        known.join(", ")
                    ),
                )));
            }
            let watermark = watermarks.get(&table).copied();
            let parts = self
                .lake
                .parts_after(&connector.tenant_id, &table, watermark)
                .await?;
            if let Some(first) = parts.first() {
                Projection::new(&first.schema, columns.as_deref(), options, connector)?;
            }
            tables.push(TableParts {
                table,
                columns,
                watermark,
                parts: parts.iter().map(LakePart::summary).collect(),
            });
        }
        plan::plan(PlanRequest {
            connector,
            run_id,
            loaded_at: Utc::now(),
            tables,
        })
        .map_err(|e| {
            Stop::Failed(run_error(
                "plan",
                e.to_string(),
                "change the export settings as the message says",
            ))
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn write_file(
        &self,
        connector: &Connector,
        options: &ExportOptions,
        store: Arc<S::Store>,
        task: &FileTask,
        parts: Vec<LakePart>,
        projection: &Projection,
        resume: Option<Checkpoint>,
        delivery: &Delivery,
    ) -> Result<FileOutcome, Stop> {
        let started = std::time::Instant::now();
        let runtime = tokio::runtime::Handle::current();
        let (writer, upload) = upload::start_from(
            store,
            task.key.clone(),
            write_options(connector, Some(layout::content_type(options))),
            self.settings.upload,
            &runtime,
            resume.as_ref().map(|c| c.upload.clone()),
        );
        // Only formats that can continue pause; the others run to the end (or, killed at the
        // deadline, start over on the next delivery).
        let pause_at = delivery
            .deadline
            .filter(|_| continuable(options))
            .map(|deadline| {
                deadline
                    .checked_sub(self.settings.deadline_margin)
                    .unwrap_or_else(std::time::Instant::now)
            });
        let pipeline = FilePipeline {
            lake: self.lake.clone(),
            parts,
            projection: projection.clone(),
            options: options.clone(),
            member: layout::member_name(&task.key, options),
            spool_dir: self.settings.spool_dir.clone(),
            resume: resume.clone(),
            pause_at,
            pause: writer.pause_control(),
        };
        let encoded = tokio::task::spawn_blocking(move || pipeline.run(Box::new(writer), runtime))
            .await
            .expect("the encoding thread does not panic");
        let uploaded = upload.outcome().await;
        let context = |what: String| format!("{} ({}): {what}", task.key, task.table);
        let (end, object) = match (encoded, uploaded) {
            (Ok(end), Ok(object)) => (end, object),
            // The upload's own error explains a broken pipe on the encoding side.
            (_, Err(UploadError::Aws(e))) => {
                return Err(bucket_failure(
                    connector,
                    e,
                    "s3:PutObject",
                    &context("writing the file".into()),
                ));
            }
            (
                Err(FileError::Encode(EncodeError::Value {
                    column,
                    row,
                    reason,
                    remediation,
                })),
                _,
            ) => {
                let row = row + resume.as_ref().map_or(0, |c| c.rows);
                return Err(Stop::Failed(run_error(
                    "value_not_writable",
                    context(format!("column {column}, row {row}: {reason}")),
                    remediation,
                )));
            }
            (Err(FileError::Encode(EncodeError::Unsupported { column, data_type })), _) => {
                return Err(Stop::Failed(run_error(
                    "unsupported_column",
                    context(format!(
                        "column {column} has type {data_type}, which exports cannot write"
                    )),
                    format!("leave {column} out of export.tables[].columns"),
                )));
            }
            (
                Err(FileError::Encode(EncodeError::Settings {
                    setting,
                    reason,
                    remediation,
                })),
                _,
            ) => {
                return Err(Stop::Failed(run_error(
                    "format_settings",
                    format!("export.format.{setting}: {reason}"),
                    remediation,
                )));
            }
            (Err(FileError::Lake(e)), _) => return Err(e.into()),
            (Err(FileError::Encode(e)), _) => {
                return Err(Stop::Failed(run_error(
                    "write_failed",
                    context(e.to_string()),
                    "run again; if it persists, contact support with the run id",
                )));
            }
            (Err(FileError::Setup(message)), _) => {
                return Err(Stop::Failed(run_error(
                    "write_failed",
                    context(message),
                    "check export.pgp_public_key and export.compression; run again",
                )));
            }
            (Ok(_), Err(e)) => {
                return Err(Stop::Failed(run_error(
                    "write_failed",
                    context(e.to_string()),
                    "run again; if it persists, contact support with the run id",
                )));
            }
        };
        let before = resume.as_ref().map_or(0, |c| c.rows);
        match (end, object) {
            (PipelineEnd::Finished { rows }, UploadOutcome::Completed(object)) => {
                let rows = before + rows;
                tracing::info!(
                    key = %task.key,
                    rows,
                    bytes = object.bytes,
                    parts = object.parts,
                    ms = started.elapsed().as_millis() as u64,
                    "file written"
                );
                Ok(FileOutcome::Written(
                    WrittenFile {
                        key: task.key.clone(),
                        table: task.table.clone(),
                        rows,
                        bytes: object.bytes,
                        sha256: object.sha256,
                    },
                    manifest_schema(&projection.schema),
                ))
            }
            (
                PipelineEnd::Paused {
                    rows,
                    part_seq,
                    rows_into_part,
                },
                UploadOutcome::Paused(upload),
            ) => Ok(FileOutcome::Paused(Checkpoint {
                upload,
                part_seq,
                rows_into_part,
                rows: before + rows,
                saved_at: Utc::now(),
            })),
            _ => Err(Stop::Failed(run_error(
                "write_failed",
                context("the encoder and the upload disagree on whether the file paused".into()),
                "run again; if it persists, contact support with the run id",
            ))),
        }
    }

    async fn put_small(
        &self,
        connector: &Connector,
        store: &S::Store,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), Stop> {
        store
            .put(
                key,
                crate::ports::Body::new(body),
                &write_options(connector, Some(content_type)),
            )
            .await
            .map(|_| ())
            .map_err(|e| bucket_failure(connector, e, "s3:PutObject", &format!("writing {key}")))
    }
}

/// The lake parts of one file task (out of its table's `listed` parts) and the columns it
/// writes. An empty file still has the table's columns: those of the part at the watermark.
fn file_inputs(
    connector: &Connector,
    task: &FileTask,
    columns: Option<&[String]>,
    listed: &[LakePart],
) -> Result<(Vec<LakePart>, Projection), Stop> {
    let options = connector.export_options().expect("an export connector");
    let parts: Vec<LakePart> = match task.parts {
        Some((first, last)) => listed
            .iter()
            .filter(|p| (first..=last).contains(&p.seq))
            .cloned()
            .collect(),
        None => Vec::new(),
    };
    let schema = match parts.first().or(listed.first()) {
        Some(part) => part.schema.clone(),
        None => Arc::new(Schema::new(
            columns
                .unwrap_or_default()
                .iter()
                .map(|c| Field::new(c, DataType::Utf8, true))
                .collect::<Vec<_>>(),
        )),
    };
    let projection = Projection::new(&schema, columns, options, connector)?;
    Ok((parts, projection))
}

/// A connector that must not run, and why.
fn not_runnable(connector: &Connector) -> Option<RunError> {
    let Some(options) = connector.export_options() else {
        return Some(run_error(
            "not_an_export",
            "the connector ingests; only export connectors run exports",
            "start runs on an export connector",
        ));
    };
    if let Some(rule) = match &options.key_template {
        crate::domain::connector::Parsed::Stale { rule, .. } => Some(rule),
        crate::domain::connector::Parsed::Valid(_) => None,
    } {
        return Some(run_error(
            "key_template",
            format!("export.key_template breaks today's rules: {rule}"),
            "PATCH export.key_template, then validate the connector",
        ));
    }
    (connector.status != ConnectorStatus::Active).then(|| {
        run_error(
            "not_active",
            format!(
                "the connector is {}, not active",
                serde_json::to_value(connector.status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            ),
            format!(
                "validate it (POST /connectors/{}/validate) and fix what the checks report",
                connector.connector_id
            ),
        )
    })
}

/// Whether a file of these options can be continued mid-file by a later invocation: text
/// (delimited, JSONL), uncompressed or as concatenated gzip members / zstd frames. Parquet's
/// footer, zip's and tar's headers and OpenPGP's packets span the whole file.
fn continuable(options: &ExportOptions) -> bool {
    options.pgp_public_key.is_none()
        && !matches!(options.format, FileFormat::Parquet)
        && matches!(
            options.compression,
            ExportCompression::None | ExportCompression::Gzip | ExportCompression::Zstd
        )
}

/// A checkpoint a continuation can start from: its parts numbered 1, 2, 3… and its hash
/// state one a hasher saved for that many bytes.
fn checkpoint_is_sound(checkpoint: &Checkpoint) -> bool {
    let upload = &checkpoint.upload;
    !upload.upload_id.is_empty()
        && !upload.parts.is_empty()
        && upload
            .parts
            .iter()
            .enumerate()
            .all(|(i, p)| p.number as usize == i + 1)
        && upload.sha256.len == upload.bytes
        && ResumableSha256::from_state(&upload.sha256).is_some()
}

/// Failures the customer fixes in their own account: the connector then needs their
/// attention (and validation) before it runs again.
fn needs_customer(reason: &str) -> bool {
    matches!(
        reason,
        "credentials" | "access_denied" | "kms" | "bucket_missing" | "challenge_file_missing"
    )
}

/// The watermarks must still be where the plan started from: otherwise another run exported
/// these parts in the meantime.
fn check_watermarks(plan: &RunPlan, watermarks: &Watermarks) -> Result<(), Stop> {
    for table in &plan.tables {
        if watermarks.get(&table.table).copied() != table.after_seq {
            return Err(Stop::Failed(run_error(
                "watermark_moved",
                format!(
                    "another run exported table {} while this one ran",
                    table.table
                ),
                "nothing is lost: the next run continues from the new watermark",
            )));
        }
    }
    Ok(())
}

/// The headers of every object a run writes: the export's SSE, the bucket-owner ACL in
/// bucket_policy mode, the content type.
fn write_options(connector: &Connector, content_type: Option<&str>) -> WriteOptions {
    WriteOptions {
        encryption: connector.export_options().map(|e| e.encryption.clone()),
        bucket_owner_full_control: connector.auth.mode() == AuthMode::BucketPolicy,
        content_type: content_type.map(str::to_owned),
        metadata: Default::default(),
    }
}

/// A refused or failed call on the customer's bucket, as the run's error (a throttle that
/// outlasted the retries is tried again later).
fn bucket_failure(connector: &Connector, e: AwsCallError, action: &str, doing: &str) -> Stop {
    bucket_refusal(connector, e, action, &connector.prefix, doing).into()
}

impl From<BucketRefusal> for Stop {
    fn from(refusal: BucketRefusal) -> Self {
        match refusal {
            BucketRefusal::Retry(e) => Stop::Retry(EngineError::Retry(e)),
            BucketRefusal::Refused(e) => Stop::Failed(e),
        }
    }
}

/// The columns a file writes: the selected ones in the selected order, then the optional
/// source-connector column.
#[derive(Debug, Clone)]
struct Projection {
    indices: Vec<usize>,
    schema: SchemaRef,
    source: Option<String>,
}

impl Projection {
    fn new(
        lake: &Schema,
        columns: Option<&[String]>,
        options: &ExportOptions,
        connector: &Connector,
    ) -> Result<Self, RunError> {
        let indices = match columns {
            None => (0..lake.fields().len()).collect(),
            Some(columns) => {
                let mut indices = Vec::with_capacity(columns.len());
                for column in columns {
                    match lake.index_of(column) {
                        Ok(i) => indices.push(i),
                        Err(_) => {
                            let names: Vec<&str> =
                                lake.fields().iter().map(|f| f.name().as_str()).collect();
                            return Err(run_error(
                                "column_not_found",
                                format!("column {column} does not exist"),
                                format!(
                                    "remove it from export.tables[].columns (columns: {})",
                                    names.join(", ")
                                ),
                            ));
                        }
                    }
                }
                indices
            }
        };
        let mut fields: Vec<Field> = indices.iter().map(|&i| lake.field(i).clone()).collect();
        let source = options.source_connector_id_column.clone();
        if let Some(name) = &source {
            if fields.iter().any(|f| f.name() == name) {
                return Err(run_error(
                    "column_clash",
                    format!(
                        "export.source_connector_id_column {name} is also a column of the table"
                    ),
                    "choose another name for export.source_connector_id_column",
                ));
            }
            fields.push(Field::new(name, DataType::Utf8, false));
        }
        Ok(Projection {
            indices,
            schema: Arc::new(Schema::new(fields)),
            source: source.map(|_| connector.connector_id.clone()),
        })
    }

    fn apply(&self, batch: &RecordBatch) -> Result<RecordBatch, FileError> {
        let mut columns: Vec<ArrayRef> = self
            .indices
            .iter()
            .map(|&i| batch.column(i).clone())
            .collect();
        if let Some(id) = &self.source {
            columns.push(Arc::new(StringArray::from(vec![
                id.as_str();
                batch.num_rows()
            ])));
        }
        RecordBatch::try_new(self.schema.clone(), columns).map_err(|e| {
            FileError::Lake(LakeError::Invalid {
                table: String::new(),
                reason: format!("a part's columns changed within one file: {e}"),
            })
        })
    }
}

fn manifest_schema(schema: &Schema) -> Vec<ManifestColumn> {
    schema
        .fields()
        .iter()
        .map(|f| ManifestColumn {
            name: f.name().clone(),
            kind: encode::column_type_name(f.data_type())
                .unwrap_or_else(|| f.data_type().to_string()),
            nullable: f.is_nullable(),
        })
        .collect()
}

#[derive(Debug, thiserror::Error)]
enum FileError {
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("{0}")]
    Setup(String),
}

/// The synchronous half of one file: lake batches → encoder → compressor → encryptor → the
/// multipart writer, on a blocking thread (the encoders are CPU-bound). With `resume` it
/// continues a paused file from its next row; with `pause_at` it pauses at the first part
/// boundary after that instant.
struct FilePipeline<L> {
    lake: Arc<L>,
    parts: Vec<LakePart>,
    projection: Projection,
    options: ExportOptions,
    member: String,
    spool_dir: PathBuf,
    resume: Option<Checkpoint>,
    pause_at: Option<std::time::Instant>,
    pause: upload::PauseControl,
}

/// Where the pipeline stopped; `rows` counts this invocation's rows only.
enum PipelineEnd {
    Finished {
        rows: u64,
    },
    Paused {
        rows: u64,
        part_seq: u64,
        rows_into_part: u64,
    },
}

impl<L: Lake> FilePipeline<L> {
    fn run(
        self,
        writer: Box<dyn ByteSink>,
        runtime: tokio::runtime::Handle,
    ) -> Result<PipelineEnd, FileError> {
        let options = &self.options;
        let mut sink = writer;
        if let Some(key) = &options.pgp_public_key {
            sink = pgp::encryptor(key, &self.member, sink).map_err(|e| {
                FileError::Setup(format!("encrypting for export.pgp_public_key: {e}"))
            })?;
        }
        if !options.compresses_inside() && options.compression != ExportCompression::None {
            sink = compress::compressor(options.compression, &self.member, &self.spool_dir, sink)
                .map_err(|e| {
                FileError::Setup(format!(
                    "starting {:?} compression: {e}",
                    options.compression
                ))
            })?;
        }
        let codec = match options.compression {
            ExportCompression::Gzip => ParquetCodec::Gzip,
            ExportCompression::Zstd => ParquetCodec::Zstd,
            _ => ParquetCodec::Snappy,
        };
        // A continued file has its header already.
        let format = match (&options.format, &self.resume) {
            (FileFormat::Delimited(settings), Some(_)) => {
                FileFormat::Delimited(crate::domain::connector::DelimitedFormat {
                    header: false,
                    ..settings.clone()
                })
            }
            (format, _) => format.clone(),
        };
        let mut encoder = encode::encoder(&format, codec, self.projection.schema.clone(), sink)?;
        let (from_seq, mut skip) = self
            .resume
            .as_ref()
            .map_or((0, 0), |c| (c.part_seq, c.rows_into_part));
        for part in self.parts.iter().filter(|p| p.seq >= from_seq) {
            if part.seq > from_seq {
                skip = 0;
            }
            let mut into_part = 0u64;
            let batches = runtime.block_on(self.lake.read_part(part, BATCH_ROWS))?;
            for batch in batches {
                let batch = batch?;
                let rows = batch.num_rows() as u64;
                let batch = if skip >= rows {
                    skip -= rows;
                    into_part += rows;
                    continue;
                } else if skip > 0 {
                    let kept = batch.slice(skip as usize, (rows - skip) as usize);
                    into_part += skip;
                    skip = 0;
                    kept
                } else {
                    batch
                };
                into_part += batch.num_rows() as u64;
                encoder.write_batch(&self.projection.apply(&batch)?)?;
                if self
                    .pause_at
                    .is_some_and(|at| std::time::Instant::now() >= at)
                {
                    self.pause.hold();
                    if self.pause.can_pause() {
                        let rows = encoder.rows();
                        encoder.pause()?;
                        return Ok(PipelineEnd::Paused {
                            rows,
                            part_seq: part.seq,
                            rows_into_part: into_part,
                        });
                    }
                }
            }
        }
        let rows = encoder.rows();
        encoder.finish()?;
        Ok(PipelineEnd::Finished { rows })
    }
}

/// What the export function's queue handler needs of the engine (a fake in its tests).
pub trait ExecuteRun: Send + Sync {
    fn execute_run(
        &self,
        message: &RunMessage,
        delivery: &Delivery,
    ) -> impl std::future::Future<Output = Result<Option<Run>, EngineError>> + Send;
}

impl<L, R, C, T, K, S, Q> ExecuteRun for ExportEngine<L, R, C, T, K, S, Q>
where
    L: Lake + 'static,
    R: RunStore + RunClaims,
    C: ConnectorStore,
    T: SecurityTokenService + 'static,
    K: SecretStore + 'static,
    S: CustomerStorage,
    S::Store: 'static,
    Q: RunQueue,
{
    async fn execute_run(
        &self,
        message: &RunMessage,
        delivery: &Delivery,
    ) -> Result<Option<Run>, EngineError> {
        self.execute(message, delivery).await
    }
}

#[cfg(test)]
mod tests;
