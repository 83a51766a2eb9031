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

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use aws_credential_types::provider::SharedCredentialsProvider;
use chrono::Utc;

use crate::credentials::{ConnectorCredentials, CredentialBroker, SessionPurpose};
use crate::domain::connector::{
    AuthMode, Connector, ConnectorStatus, ExportCompression, ExportOptions,
};
use crate::domain::export::layout;
use crate::domain::export::plan::{self, PlanRequest, TableParts};
use crate::domain::export::run::{
    FileTask, Manifest, ManifestColumn, ManifestFile, Run, RunError, RunMessage, RunPlan,
    RunStatus, WatermarkRange, Watermarks, WrittenFile,
};
use crate::domain::setup::checks::{missing_permission, objects_arn};
use crate::error::{AwsCallError, StoreError};
use crate::export::encode::{self, EncodeError, ParquetCodec};
use crate::export::sink::ByteSink;
use crate::export::upload::{self, UploadError, UploadSettings};
use crate::export::{compress, pgp};
use crate::lake::{Lake, LakeError, LakePart};
use crate::ports::{
    ConnectorStore, CustomerStorage, ObjectStore, RunStore, SecretStore, SecurityTokenService,
    WriteOptions,
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
}

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

pub struct ExportEngine<L, R, C, T, K, S> {
    lake: Arc<L>,
    runs: R,
    connectors: C,
    broker: Arc<CredentialBroker<T, K>>,
    storage: S,
    settings: ExportSettings,
}

impl<L, R, C, T, K, S> ExportEngine<L, R, C, T, K, S>
where
    L: Lake + 'static,
    R: RunStore,
    C: ConnectorStore,
    T: SecurityTokenService + 'static,
    K: SecretStore + 'static,
    S: CustomerStorage,
    S::Store: 'static,
{
    pub fn new(
        lake: Arc<L>,
        runs: R,
        connectors: C,
        broker: Arc<CredentialBroker<T, K>>,
        storage: S,
        settings: ExportSettings,
    ) -> Self {
        Self {
            lake,
            runs,
            connectors,
            broker,
            storage,
            settings,
        }
    }

    /// Carries out the run the message names. `Ok(None)`: no such run (or not this tenant's),
    /// nothing to do. `Ok(Some(run))`: the run as it ended (or had already ended).
    pub async fn execute(&self, message: &RunMessage) -> Result<Option<Run>, EngineError> {
        let Some(mut run) = self
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
                    "the connector was deleted before the run started",
                    "nothing to do: create the connector again to export",
                );
                return self.finish(run, Err(error)).await.map(Some);
            }
        };
        if let Some(error) = not_runnable(&connector) {
            return self.finish(run, Err(error)).await.map(Some);
        }
        run.status = RunStatus::Running;
        run.started_at.get_or_insert_with(Utc::now);
        self.runs.update(&run).await?;
        match self.export(&connector, &mut run).await {
            Ok(()) => self.finish(run, Ok(())).await.map(Some),
            Err(Stop::Failed(error)) => self.finish(run, Err(error)).await.map(Some),
            Err(Stop::Retry(e)) => {
                // Keep the progress (plan, files written) for the redelivery.
                if let Err(save) = self.runs.update(&run).await {
                    tracing::warn!(error = %save, "could not save the run's progress");
                }
                Err(e)
            }
        }
    }

    async fn finish(
        &self,
        mut run: Run,
        outcome: Result<(), RunError>,
    ) -> Result<Run, EngineError> {
        run.finished_at = Some(Utc::now());
        match outcome {
            Ok(()) => {
                run.status = RunStatus::Succeeded;
                tracing::info!(run_id = %run.run_id, files = run.files.len(), rows = run.rows(), bytes = run.bytes(), "export run succeeded");
            }
            Err(error) => {
                tracing::warn!(run_id = %run.run_id, reason = %error.reason, message = %error.message, "export run failed");
                run.status = RunStatus::Failed;
                run.error = Some(error);
            }
        }
        self.runs.update(&run).await?;
        Ok(run)
    }

    async fn export(&self, connector: &Connector, run: &mut Run) -> Result<(), Stop> {
        let options = connector
            .export_options()
            .expect("not_runnable refuses ingest connectors");
        let store = Arc::new(self.open_bucket(connector).await?);
        if connector.auth.mode() == AuthMode::BucketPolicy {
            self.check_challenge_file(connector, store.as_ref()).await?;
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
        // The watermarks must still be where the plan started from: otherwise another run
        // exported these parts in the meantime.
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

        // Each planned table's parts, listed once for all its files: from the part at the
        // watermark (whose columns an empty file takes) to the newest.
        let mut listed = std::collections::HashMap::new();
        for table in &plan.tables {
            let parts = self
                .lake
                .parts_after(
                    &connector.tenant_id,
                    &table.table,
                    table.after_seq.and_then(|s| s.checked_sub(1)),
                )
                .await?;
            listed.insert(table.table.as_str(), parts);
        }

        let mut manifest_files = Vec::new();
        for task in &plan.files {
            let table = plan
                .tables
                .iter()
                .find(|t| t.table == task.table)
                .expect("every file task's table is planned");
            let (parts, projection) = file_inputs(
                connector,
                task,
                table.columns.as_deref(),
                &listed[task.table.as_str()],
            )?;
            let written = match run.files.iter().find(|f| f.key == task.key) {
                Some(done) => done.clone(),
                None => {
                    let written = self
                        .write_file(connector, options, store.clone(), task, parts, &projection)
                        .await?;
                    run.files.push(written.clone());
                    self.runs.update(run).await?;
                    written
                }
            };
            manifest_files.push(ManifestFile {
                key: written.key,
                table: written.table,
                rows: written.rows,
                bytes: written.bytes,
                sha256: written.sha256,
                schema: manifest_schema(&projection.schema),
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
            store.as_ref(),
            &plan.manifest_key,
            body,
            "application/json",
        )
        .await?;
        if let Some(done) = &plan.done_key {
            self.put_small(connector, store.as_ref(), done, Vec::new(), "text/plain")
                .await?;
        }
        let next = plan.watermarks_after(&watermarks);
        match self
            .runs
            .advance_watermarks(&connector.connector_id, &run.run_id, &watermarks, &next)
            .await
        {
            Ok(()) => Ok(()),
            Err(StoreError::Contended) => Err(Stop::Failed(run_error(
                "watermark_moved",
                "another run committed its watermark first",
                "nothing is lost: the next run continues from the new watermark",
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// The customer's bucket with the connector's credentials, renewed as they near expiry.
    async fn open_bucket(&self, connector: &Connector) -> Result<S::Store, Stop> {
        // Obtain once up front: a refusal is reported with its remediation here, not as an
        // opaque credentials error on the first S3 call.
        if let Err(e) = self.broker.obtain(connector, SessionPurpose::Run).await {
            if e.aws().is_some_and(|a| a.retryable) {
                return Err(Stop::Retry(EngineError::Retry(
                    e.aws().cloned().expect("checked above"),
                )));
            }
            let check = crate::validation::credentials_failure_for_run(connector, &e);
            return Err(Stop::Failed(RunError {
                reason: "credentials".into(),
                message: check.message,
                remediation: check.remediation.unwrap_or_default(),
                aws_error_code: check.aws_error_code,
            }));
        }
        let provider = ConnectorCredentials::new(
            self.broker.clone(),
            Arc::new(connector.clone()),
            SessionPurpose::Run,
        );
        Ok(self.storage.open(
            SharedCredentialsProvider::new(provider),
            &connector.bucket,
            &connector.region,
        ))
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
            Err(e) if e.http_status == Some(404) => {
                self.needs_attention(connector).await;
                Err(Stop::Failed(RunError {
                    reason: "challenge_file_missing".into(),
                    message: format!("s3://{}/{key} is gone", connector.bucket),
                    remediation: format!(
                        "upload an empty object named {:?} to s3://{}/{} again and keep it there, then validate the connector",
                        connector.challenge_file, connector.bucket, connector.prefix
                    ),
                    aws_error_code: e.effective_code().map(str::to_owned),
                }))
            }
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

    async fn write_file(
        &self,
        connector: &Connector,
        options: &ExportOptions,
        store: Arc<S::Store>,
        task: &FileTask,
        parts: Vec<LakePart>,
        projection: &Projection,
    ) -> Result<WrittenFile, Stop> {
        let started = std::time::Instant::now();
        let runtime = tokio::runtime::Handle::current();
        let (writer, upload) = upload::start(
            store,
            task.key.clone(),
            write_options(connector, Some(layout::content_type(options))),
            self.settings.upload,
            &runtime,
        );
        let pipeline = FilePipeline {
            lake: self.lake.clone(),
            parts,
            projection: projection.clone(),
            options: options.clone(),
            member: layout::member_name(&task.key, options),
            spool_dir: self.settings.spool_dir.clone(),
        };
        let encoded = tokio::task::spawn_blocking(move || pipeline.run(Box::new(writer), runtime))
            .await
            .expect("the encoding thread does not panic");
        let uploaded = upload.await;
        let context = |what: String| format!("{} ({}): {what}", task.key, task.table);
        let (rows, object) = match (encoded, uploaded) {
            (Ok(rows), Ok(object)) => (rows, object),
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
        tracing::info!(
            key = %task.key,
            rows,
            bytes = object.bytes,
            parts = object.parts,
            ms = started.elapsed().as_millis() as u64,
            "file written"
        );
        Ok(WrittenFile {
            key: task.key.clone(),
            table: task.table.clone(),
            rows,
            bytes: object.bytes,
            sha256: object.sha256,
        })
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

/// The headers of every object a run writes: the export's SSE, the bucket-owner ACL in
/// bucket_policy mode, the content type.
fn write_options(connector: &Connector, content_type: Option<&str>) -> WriteOptions {
    WriteOptions {
        encryption: connector.export_options().map(|e| e.encryption.clone()),
        bucket_owner_full_control: connector.auth.mode() == AuthMode::BucketPolicy,
        content_type: content_type.map(str::to_owned),
    }
}

/// A refused or failed call on the customer's bucket, as the run's error: a denial names the
/// missing permission, a KMS refusal the key policy; a throttle that outlasted the retries is
/// tried again later.
fn bucket_failure(connector: &Connector, e: AwsCallError, action: &str, doing: &str) -> Stop {
    if e.retryable {
        return Stop::Retry(EngineError::Retry(e));
    }
    let code = e.effective_code().map(str::to_owned);
    let (reason, message, remediation) = if e.is_access_denied() {
        (
            "access_denied",
            format!("{doing} was denied"),
            missing_permission(
                connector,
                action,
                &objects_arn(connector, &connector.prefix),
            ),
        )
    } else if code.as_deref().is_some_and(|c| c.starts_with("KMS")) {
        (
            "kms",
            format!("{doing} failed on the KMS key: {}", e.message),
            "the role needs kms:GenerateDataKey and kms:Decrypt on export.encryption.kms_key_id, and the key policy must allow it".to_owned(),
        )
    } else if code.as_deref() == Some("NoSuchBucket") {
        (
            "bucket_missing",
            format!("{doing}: the bucket {} no longer exists", connector.bucket),
            "create the bucket again or PATCH the connector's bucket, then validate".to_owned(),
        )
    } else {
        (
            "bucket_error",
            format!("{doing} failed: {e}"),
            "run again; if it persists, contact support with the run id".to_owned(),
        )
    };
    Stop::Failed(RunError {
        reason: reason.to_owned(),
        message,
        remediation,
        aws_error_code: code,
    })
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
/// multipart writer, on a blocking thread (the encoders are CPU-bound).
struct FilePipeline<L> {
    lake: Arc<L>,
    parts: Vec<LakePart>,
    projection: Projection,
    options: ExportOptions,
    member: String,
    spool_dir: PathBuf,
}

impl<L: Lake> FilePipeline<L> {
    /// Rows written.
    fn run(
        self,
        writer: Box<dyn ByteSink>,
        runtime: tokio::runtime::Handle,
    ) -> Result<u64, FileError> {
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
        let mut encoder =
            encode::encoder(&options.format, codec, self.projection.schema.clone(), sink)?;
        for part in &self.parts {
            let batches = runtime.block_on(self.lake.read_part(part, BATCH_ROWS))?;
            for batch in batches {
                encoder.write_batch(&self.projection.apply(&batch?)?)?;
            }
        }
        let rows = encoder.rows();
        encoder.finish()?;
        Ok(rows)
    }
}

/// What the export function's queue handler needs of the engine (a fake in its tests).
pub trait ExecuteRun: Send + Sync {
    fn execute_run(
        &self,
        message: &RunMessage,
    ) -> impl std::future::Future<Output = Result<Option<Run>, EngineError>> + Send;
}

impl<L, R, C, T, K, S> ExecuteRun for ExportEngine<L, R, C, T, K, S>
where
    L: Lake + 'static,
    R: RunStore,
    C: ConnectorStore,
    T: SecurityTokenService + 'static,
    K: SecretStore + 'static,
    S: CustomerStorage,
    S::Store: 'static,
{
    async fn execute_run(&self, message: &RunMessage) -> Result<Option<Run>, EngineError> {
        self.execute(message).await
    }
}

#[cfg(test)]
mod tests;
