//! One customer file, from its notification (or the poll that found it) to its place after
//! loading (docs/architecture.md, "Ingest"):
//!
//! 1. route: the bucket's connectors (`by-bucket`) and the one whose prefix holds the key;
//! 2. HeadObject: the ETag that makes the file's identity, and its encryption and metadata;
//! 3. claim: the ledger record, written only at the version read (one holder at a time; a
//!    claim left by a crashed invocation lapses after its lease);
//! 4. load: parse → Parquet parts staged in the lake → error sidecar → counts in the ledger →
//!    the parts committed once per file (the load id is the file's ledger id), then the verdict;
//! 5. place: delete, or copy → verify → delete, or leave, as the folder rules say; then the
//!    final status.
//!
//! Each step is redone or skipped on a later delivery by what the ledger and the lake say, so a
//! crash between any two steps ends with the file loaded once and placed once.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use tokio::runtime::Handle;
use uuid::Uuid;

use crate::connector_bucket::{BucketRefusal, bucket_refusal, open_bucket};
use crate::credentials::CredentialBroker;
use crate::domain::connector::{AuthMode, Connector, ConnectorStatus, IngestOptions, poll_shards};
use crate::domain::export::run::RunError;
use crate::domain::ingest::file::{
    Delivery, FILE_LEASE_SECONDS, FileIdentity, FileStatus, IngestFile, Intake, Placement, Verdict,
    on_delivery, placement, quarantine_error, route, sidecar_key,
};
use crate::domain::ingest::notification::{ObjectCreated, PolledFile};
use crate::error::{AwsCallError, StoreError};
use crate::ingest::parse::{BadRow, FileError, ParseError, ParseSettings, ParsedBatch, parse_file};
use crate::ingest::source::StoreSource;
use crate::lake::part_file::PartEncoder;
use crate::lake::{Lake, LakeError, LoadState, StagedPart};
use crate::ports::{
    Body, ConnectorStore, CustomerStorage, IngestLedger, ObjectInfo, ObjectStore, PolledFileQueue,
    SecretStore, SecurityTokenService, UploadedPart, WriteOptions,
};

/// The output buffer reserved for a part cut at `part_bytes`: the cut comes after the batch
/// that crosses it, and the encoder's size is an estimate, so a quarter more.
pub fn part_capacity(part_bytes: usize) -> usize {
    part_bytes + part_bytes / 4
}

/// Parses of one file in one attempt: each lost race on the table's schema (another file of
/// the table committed first and changed it) costs one; past this the file is retried later.
const MAX_PARSES: u32 = 3;

/// How the service loads and moves.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// A lake part is cut once its encoded size reaches this (readers fetch parts whole).
    pub part_bytes: usize,
    /// Bad rows kept for the sidecar; past it the sidecar says how many more there were.
    pub sidecar_rows: usize,
    /// Largest object moved with one CopyObject (S3 allows 5 GiB); larger ones are copied in
    /// parts of `copy_part_bytes`.
    pub single_copy_bytes: u64,
    pub copy_part_bytes: u64,
    /// Keys per ListObjectsV2 page of a poll.
    pub poll_page_keys: i32,
    /// Objects listed per connector and poll (the page that crosses it is finished): a prefix
    /// holding more is listed further next time only once files leave it (moved or deleted),
    /// so bad files that stay must be few.
    pub poll_objects_per_connector: usize,
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self {
            part_bytes: 16 * 1024 * 1024,
            sidecar_rows: 10_000,
            single_copy_bytes: 5 * 1024 * 1024 * 1024,
            copy_part_bytes: 512 * 1024 * 1024,
            poll_page_keys: 1000,
            poll_objects_per_connector: 10_000,
        }
    }
}

/// Ingest connectors read per `poll#n` shard and poll.
const POLL_CONNECTORS_PER_SHARD: u32 = 1000;

/// What a poll of the source prefixes did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PollReport {
    pub connectors: u32,
    /// Files this poll found undecided and sent to the ingest queue.
    pub queued: u32,
    /// Files found after the time budget, for the next poll.
    pub left_for_next_poll: u32,
    /// What failed (a connector's listing, a file), to be tried again next time.
    pub failed: Vec<String>,
}

/// What the s3-ingest handler needs of the service (a narrow trait, so the handler's tests
/// can count deliveries without AWS).
pub trait IngestFiles: Send + Sync {
    fn ingest(
        &self,
        found: &FoundObject,
    ) -> impl std::future::Future<Output = Result<Handled, IngestError>> + Send;

    fn poll_prefixes(
        &self,
        until: Option<Instant>,
    ) -> impl std::future::Future<Output = Result<PollReport, IngestError>> + Send;
}

/// A file some intake path announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundObject {
    pub bucket: String,
    pub key: String,
    /// The ETag the notification or listing gave, when it gave one.
    pub e_tag: Option<String>,
    pub intake: Intake,
}

impl FoundObject {
    /// A file a bucket notification announced.
    pub fn notified(object: ObjectCreated) -> Self {
        Self {
            bucket: object.bucket,
            key: object.key,
            e_tag: object.etag,
            intake: Intake::Notification,
        }
    }

    /// A file the poll found and sent to the ingest queue.
    pub fn polled(file: PolledFile) -> Self {
        Self {
            bucket: file.bucket,
            key: file.key,
            e_tag: Some(file.etag),
            intake: Intake::Poll,
        }
    }
}

/// What became of a delivery; every one of these lets the message go.
#[derive(Debug, Clone, PartialEq)]
pub enum Handled {
    /// Not a file any connector ingests now, and why.
    Ignored(String),
    /// The object is no longer there (deleted, or already moved by an earlier delivery).
    Gone,
    /// Another delivery has it or had it: nothing was done.
    Duplicate(FileStatus),
    /// Decided and placed by this delivery.
    Finished(Box<IngestFile>),
}

/// The delivery must be retried (the message stays on the queue); the ledger says why when it
/// got that far.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("connectors or ledger table: {0}")]
    Store(#[from] StoreError),
    #[error("lake: {0}")]
    Lake(#[from] LakeError),
    #[error("{0}")]
    Aws(AwsCallError),
    /// The customer must act (credentials, a permission); retried after they do.
    #[error("{}: {}", .0.message, .0.remediation)]
    Refused(RunError),
}

impl From<BucketRefusal> for IngestError {
    fn from(refusal: BucketRefusal) -> Self {
        match refusal {
            BucketRefusal::Retry(e) => IngestError::Aws(e),
            BucketRefusal::Refused(e) => IngestError::Refused(e),
        }
    }
}

pub struct IngestService<L, G, C, T, K, S, Q> {
    lake: Arc<L>,
    ledger: G,
    connectors: C,
    broker: Arc<CredentialBroker<T, K>>,
    storage: S,
    /// Where the poll sends the files it finds.
    poll_queue: Q,
    settings: IngestSettings,
    /// This invocation, as a ledger holder.
    holder: String,
}

/// What a load decided, before it is recorded.
struct Loaded {
    verdict: Verdict,
    rows_loaded: u64,
    rows_rejected: u64,
    content_bytes: u64,
    sidecar: Option<Vec<u8>>,
}

/// Why a parse stopped early.
enum Stop {
    TooManyBadRows,
    Lake(LakeError),
}

/// What the blocking half of a load hands back.
struct Parsed {
    result: Result<crate::ingest::parse::ParseSummary, ParseError<Stop>>,
    staged: Vec<StagedPart>,
    sidecar: Sidecar,
    read_failure: Option<AwsCallError>,
}

/// The bad rows of a file as JSON lines, up to a limit.
#[derive(Default)]
struct Sidecar {
    lines: Vec<u8>,
    kept: usize,
    dropped: u64,
}

impl Sidecar {
    fn add(&mut self, row: &BadRow, limit: usize) {
        if self.kept >= limit {
            self.dropped += 1;
            return;
        }
        if let Ok(line) = serde_json::to_vec(row) {
            self.lines.extend_from_slice(&line);
            self.lines.push(b'\n');
            self.kept += 1;
        }
    }

    fn finish(mut self) -> Option<Vec<u8>> {
        if self.kept == 0 && self.dropped == 0 {
            return None;
        }
        if self.dropped > 0 {
            let note = serde_json::json!({
                "truncated": true,
                "more_bad_rows": self.dropped,
                "reason": format!("only the first {} bad rows are listed", self.kept),
            });
            self.lines.extend_from_slice(note.to_string().as_bytes());
            self.lines.push(b'\n');
        }
        Some(self.lines)
    }
}

fn problem(reason: &str, message: impl Into<String>, remediation: impl Into<String>) -> RunError {
    RunError {
        reason: reason.to_owned(),
        message: message.into(),
        remediation: remediation.into(),
        aws_error_code: None,
    }
}

/// The customer-facing verdict on a file the parser refused.
fn unreadable(error: &FileError, options: &IngestOptions) -> RunError {
    let settings = match error {
        FileError::CompressionMismatch(_) | FileError::Binary { .. } => {
            "; check ingest.compression and ingest.format"
        }
        FileError::Settings(_) => "; change ingest.format",
        FileError::IncompatibleColumn { .. } | FileError::MissingRequiredColumn { .. } => {
            " (the table's schema comes from its first file; new columns may be added, existing ones keep their type)"
        }
        _ => "",
    };
    problem(
        "unreadable_file",
        format!(
            "the file cannot be loaded as {} into table {}: {error}",
            options.format.kind().extension(),
            options.table
        ),
        format!("fix the file and upload it again{settings}"),
    )
}

impl<L, G, C, T, K, S, Q> IngestService<L, G, C, T, K, S, Q>
where
    L: Lake + 'static,
    G: IngestLedger,
    C: ConnectorStore,
    T: SecurityTokenService + 'static,
    K: SecretStore + 'static,
    S: CustomerStorage,
    Q: PolledFileQueue,
    S::Store: 'static,
{
    pub fn new(
        lake: Arc<L>,
        ledger: G,
        connectors: C,
        broker: Arc<CredentialBroker<T, K>>,
        storage: S,
        poll_queue: Q,
        settings: IngestSettings,
    ) -> Self {
        Self {
            lake,
            ledger,
            connectors,
            broker,
            storage,
            poll_queue,
            settings,
            holder: Uuid::new_v4().to_string(),
        }
    }

    pub fn ledger(&self) -> &G {
        &self.ledger
    }

    pub fn connectors(&self) -> &C {
        &self.connectors
    }

    /// Handles one announced file; `Err` when the delivery must be retried.
    pub async fn handle(&self, found: &FoundObject) -> Result<Handled, IngestError> {
        let connectors = self.connectors.list_by_bucket(&found.bucket).await?;
        let Some(connector) = route(&connectors, &found.key) else {
            return Ok(Handled::Ignored(format!(
                "no ingest connector takes s3://{}/{} (outside every source prefix, a folder, a moved file or one of ours)",
                found.bucket, found.key
            )));
        };
        self.handle_for(connector, found).await
    }

    /// Lists every active ingest connector's source prefix for the files no notification
    /// brought (or whose notification was lost): files the ledger has decided are skipped with
    /// one read, the rest are sent to the ingest queue, a page at a time, and load there in
    /// parallel the way of a notification, so a file seen both ways (or sent by two polls)
    /// loads once. Sends nothing found after `until`; the rest wait for the next poll.
    pub async fn poll(&self, until: Option<Instant>) -> Result<PollReport, IngestError> {
        let mut report = PollReport::default();
        for shard in poll_shards() {
            for (tenant, id) in self
                .connectors
                .due(&shard, i64::MAX, POLL_CONNECTORS_PER_SHARD)
                .await?
            {
                let Some(connector) = self.connectors.get(&tenant, &id).await? else {
                    continue;
                };
                if connector.status != ConnectorStatus::Active
                    || connector.ingest_options().is_none()
                {
                    continue;
                }
                report.connectors += 1;
                if let Err(e) = self.poll_connector(&connector, until, &mut report).await {
                    tracing::warn!(connector_id = %connector.connector_id, error = %e, "poll of the source prefix failed");
                    report
                        .failed
                        .push(format!("{}: {e}", connector.connector_id));
                }
            }
        }
        Ok(report)
    }

    async fn poll_connector(
        &self,
        connector: &Connector,
        until: Option<Instant>,
        report: &mut PollReport,
    ) -> Result<(), IngestError> {
        let store = open_bucket(&self.broker, &self.storage, connector).await?;
        let mut continuation: Option<String> = None;
        let mut listed = 0;
        loop {
            let page = store
                .list(
                    &connector.prefix,
                    self.settings.poll_page_keys,
                    continuation.as_deref(),
                )
                .await
                .map_err(|e| {
                    IngestError::from(bucket_refusal(
                        connector,
                        e,
                        "s3:ListBucket",
                        &connector.prefix,
                        "listing the source prefix",
                    ))
                })?;
            let mut found = Vec::new();
            let now = Utc::now().timestamp();
            for object in page.objects {
                listed += 1;
                if crate::domain::ingest::file::ingestible(connector, &object.key).is_err() {
                    continue;
                }
                let Some(e_tag) = object.e_tag else { continue };
                let identity = FileIdentity::new(&connector.bucket, &object.key, &e_tag);
                let known = self.ledger.get(&identity.object_id()).await?;
                // Decided files and files an invocation holds now are not sent: while the
                // queue has a backlog, each poll would otherwise add a copy of every file in it.
                if matches!(
                    on_delivery(known.as_ref(), now),
                    Delivery::Done(_) | Delivery::Busy { .. }
                ) {
                    continue;
                }
                if until.is_some_and(|until| Instant::now() >= until) {
                    report.left_for_next_poll += 1;
                    continue;
                }
                found.push(PolledFile {
                    bucket: connector.bucket.clone(),
                    key: object.key,
                    etag: e_tag,
                });
            }
            self.poll_queue
                .enqueue_polled(&found)
                .await
                .map_err(IngestError::Aws)?;
            report.queued += found.len() as u32;
            continuation = page.continuation;
            if continuation.is_none() || listed >= self.settings.poll_objects_per_connector {
                return Ok(());
            }
        }
    }

    /// The delivery of `found` to the connector routed for it.
    async fn handle_for(
        &self,
        connector: &Connector,
        found: &FoundObject,
    ) -> Result<Handled, IngestError> {
        if connector.status != ConnectorStatus::Active {
            return Ok(Handled::Ignored(format!(
                "connector {} is {}: its files are picked up by the poll once it validates",
                connector.connector_id,
                serde_json::to_value(connector.status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            )));
        }
        let store = Arc::new(open_bucket(&self.broker, &self.storage, connector).await?);
        let head = match store.head_object(&found.key).await {
            Ok(head) => head,
            Err(e) if e.http_status == Some(404) => return self.gone(connector, found).await,
            Err(e) => {
                return Err(bucket_refusal(
                    connector,
                    e,
                    "s3:GetObject",
                    &connector.prefix,
                    &format!("reading s3://{}/{}", found.bucket, found.key),
                )
                .into());
            }
        };
        let Some(e_tag) = head.e_tag.clone().or_else(|| found.e_tag.clone()) else {
            return Err(IngestError::Aws(AwsCallError {
                service: "s3",
                operation: "HeadObject",
                code: None,
                message: format!("s3://{}/{} has no ETag", found.bucket, found.key),
                http_status: None,
                retryable: true,
            }));
        };
        let identity = FileIdentity::new(&found.bucket, &found.key, &e_tag);
        let Some(file) = self
            .claim(connector, &identity, &head, found.intake)
            .await?
        else {
            let status = self
                .ledger
                .get(&identity.object_id())
                .await?
                .map_or(FileStatus::Processing, |f| f.status);
            return Ok(Handled::Duplicate(status));
        };
        if file.status == FileStatus::Quarantined {
            return Ok(Handled::Finished(Box::new(file)));
        }
        self.process(connector, &store, file, &head).await
    }

    /// The object is gone: a delivery after the move (or the customer deleted it). When the
    /// ledger knows the file and its placement was cut short, the placement is finished.
    async fn gone(
        &self,
        connector: &Connector,
        found: &FoundObject,
    ) -> Result<Handled, IngestError> {
        let Some(e_tag) = &found.e_tag else {
            return Ok(Handled::Gone);
        };
        let identity = FileIdentity::new(&found.bucket, &found.key, e_tag);
        let Some(file) = self.ledger.get(&identity.object_id()).await? else {
            return Ok(Handled::Gone);
        };
        if file.status.is_final() || file.verdict.is_none() {
            return Ok(Handled::Gone);
        }
        let store = Arc::new(open_bucket(&self.broker, &self.storage, connector).await?);
        let head = ObjectInfo::default();
        match self
            .claim(connector, &identity, &head, found.intake)
            .await?
        {
            Some(file) => self.process(connector, &store, file, &head).await,
            None => Ok(Handled::Duplicate(FileStatus::Processing)),
        }
    }

    /// Takes the file for this delivery: `None` when another delivery has it or had it.
    async fn claim(
        &self,
        connector: &Connector,
        identity: &FileIdentity,
        head: &ObjectInfo,
        intake: Intake,
    ) -> Result<Option<IngestFile>, IngestError> {
        let object_id = identity.object_id();
        // Two rounds: a lost race re-reads and then sees the winner's claim.
        for _ in 0..2 {
            let record = self.ledger.get(&object_id).await?;
            let now = Utc::now();
            let mut file = match on_delivery(record.as_ref(), now.timestamp()) {
                Delivery::Done(_) | Delivery::Busy { .. } => return Ok(None),
                Delivery::Quarantine => {
                    let mut file = record.expect("a record to quarantine");
                    file.error = Some(quarantine_error(file.error.as_ref()));
                    file.finished_at = Some(now);
                    match self.save(&mut file, FileStatus::Quarantined).await {
                        Ok(()) => return Ok(Some(file)),
                        Err(IngestError::Store(StoreError::Contended)) => continue,
                        Err(e) => return Err(e),
                    }
                }
                Delivery::Take { attempt } => {
                    let mut file = record.unwrap_or_else(|| IngestFile {
                        object_id: object_id.clone(),
                        tenant_id: connector.tenant_id.clone(),
                        connector_id: connector.connector_id.clone(),
                        file: identity.clone(),
                        version_id: head.version_id.clone(),
                        size: head.size,
                        table: connector
                            .ingest_options()
                            .map(|o| o.table.clone())
                            .unwrap_or_default(),
                        status: FileStatus::Processing,
                        intake,
                        attempts: 0,
                        holder: None,
                        lease_until: None,
                        first_seen_at: now,
                        updated_at: now,
                        finished_at: None,
                        duration_ms: None,
                        verdict: None,
                        rows_loaded: 0,
                        rows_rejected: 0,
                        content_bytes: 0,
                        placement: None,
                        moved: false,
                        sidecar_key: None,
                        error: None,
                        version: 0,
                    });
                    file.attempts = attempt;
                    file.holder = Some(self.holder.clone());
                    file.lease_until = Some(now.timestamp() + FILE_LEASE_SECONDS);
                    file
                }
            };
            match self.save(&mut file, FileStatus::Processing).await {
                Ok(()) => return Ok(Some(file)),
                Err(IngestError::Store(StoreError::Contended)) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Writes the record at its next version with `status`.
    async fn save(&self, file: &mut IngestFile, status: FileStatus) -> Result<(), IngestError> {
        let mut next = file.clone();
        next.status = status;
        next.version += 1;
        next.updated_at = Utc::now();
        if status != FileStatus::Processing {
            next.holder = None;
            next.lease_until = None;
        }
        self.ledger.put(&next).await?;
        *file = next;
        Ok(())
    }

    /// Loads (unless the verdict is in) and places a claimed file.
    async fn process(
        &self,
        connector: &Connector,
        store: &Arc<S::Store>,
        mut file: IngestFile,
        head: &ObjectInfo,
    ) -> Result<Handled, IngestError> {
        let started = Instant::now();
        let options = connector
            .ingest_options()
            .cloned()
            .expect("routed to an ingest connector");
        if file.verdict.is_none() {
            match self.load(connector, &options, store, &mut file, head).await {
                Ok(()) => {}
                Err(Failure::Superseded) => {
                    file.verdict = Some(Verdict::Refused {
                        error: problem(
                            "overwritten",
                            "the object was overwritten while it was loaded; nothing of this version is in the lake",
                            "nothing to do: the new upload is loaded as a file of its own",
                        ),
                    });
                    file.error = file.verdict.as_ref().and_then(|v| match v {
                        Verdict::Refused { error } => Some(error.clone()),
                        Verdict::Loaded { .. } => None,
                    });
                    file.placement = Some(Placement::Stay);
                    file.moved = true;
                    file.finished_at = Some(Utc::now());
                    self.save(&mut file, FileStatus::Failed).await?;
                    return Ok(Handled::Finished(Box::new(file)));
                }
                Err(Failure::Retry(retry)) => {
                    let (error, cause) = *retry;
                    file.error = Some(error);
                    self.save(&mut file, FileStatus::Retrying).await?;
                    return Err(cause);
                }
            }
        }
        if let Err((error, cause)) = self.place(connector, store, &mut file, head).await {
            file.error = Some(error);
            self.save(&mut file, FileStatus::Retrying).await?;
            return Err(cause);
        }
        let status = match file.verdict {
            Some(Verdict::Loaded { .. }) => FileStatus::Succeeded,
            _ => FileStatus::Failed,
        };
        file.moved = true;
        file.finished_at = Some(Utc::now());
        file.duration_ms = Some(
            file.duration_ms
                .unwrap_or_default()
                .saturating_add(started.elapsed().as_millis() as u64),
        );
        if status == FileStatus::Succeeded {
            file.error = None;
        }
        self.save(&mut file, status).await?;
        Ok(Handled::Finished(Box::new(file)))
    }

    /// Decides the file: its good rows committed to the lake once, or refused; records the
    /// verdict, the counts and the placement.
    async fn load(
        &self,
        connector: &Connector,
        options: &IngestOptions,
        store: &Arc<S::Store>,
        file: &mut IngestFile,
        head: &ObjectInfo,
    ) -> Result<(), Failure> {
        let started = Instant::now();
        let (tenant, table) = (connector.tenant_id.clone(), options.table.clone());
        let seqs = match self
            .lake
            .load_state(&tenant, &table, &file.object_id)
            .await
            .map_err(Failure::lake)?
        {
            // Committed (or cut short) before a crash: the counts were recorded before the commit.
            LoadState::Committed(seqs) => Some(seqs),
            LoadState::Pending => Some(
                self.lake
                    .commit_load(&tenant, &table, &file.object_id, &[])
                    .await
                    .map_err(Failure::lake)?,
            ),
            LoadState::Absent => None,
        };
        if let Some(seqs) = seqs {
            file.verdict = Some(Verdict::Loaded { parts: seqs });
            file.placement = Some(placement(options, &connector.prefix, &file.file.key, true));
            self.save(file, FileStatus::Processing)
                .await
                .map_err(Failure::ours)?;
            return Ok(());
        }
        // Parses of this file: a lost race on the table's schema costs one more.
        let mut parses = 0;
        loop {
            parses += 1;
            // A sidecar named by an earlier parse of this loop is not this parse's.
            file.sidecar_key = None;
            let table_schema = self
                .lake
                .table_schema(&tenant, &table)
                .await
                .map_err(Failure::lake)?;
            let parsed = self
                .parse(connector, options, store, file, head, table_schema)
                .await?;
            if let Some(e) = parsed.read_failure {
                if e.effective_code() == Some("PreconditionFailed") {
                    return Err(Failure::Superseded);
                }
                return Err(Failure::bucket(
                    connector,
                    e,
                    "s3:GetObject",
                    "reading the file",
                ));
            }
            let decided = self.decide(options, parsed)?;
            let good = matches!(decided.0.verdict, Verdict::Loaded { .. });
            let place = placement(options, &connector.prefix, &file.file.key, good);
            let (loaded, staged) = decided;
            if let Some(lines) = &loaded.sidecar {
                let key = sidecar_key(&file.file.key, &place);
                let options = WriteOptions {
                    bucket_owner_full_control: connector.auth.mode() == AuthMode::BucketPolicy,
                    content_type: Some("application/x-ndjson".to_owned()),
                    ..WriteOptions::default()
                };
                store
                    .put(&key, Body::new(lines.clone()), &options)
                    .await
                    .map_err(|e| {
                        Failure::bucket(connector, e, "s3:PutObject", &format!("writing {key}"))
                    })?;
                file.sidecar_key = Some(key);
            }
            file.rows_loaded = loaded.rows_loaded;
            file.rows_rejected = loaded.rows_rejected;
            file.content_bytes = loaded.content_bytes;
            file.placement = Some(place);
            file.duration_ms = Some(started.elapsed().as_millis() as u64);
            if let Verdict::Refused { error } = &loaded.verdict {
                file.error = Some(error.clone());
                file.verdict = Some(loaded.verdict.clone());
                return self
                    .save(file, FileStatus::Processing)
                    .await
                    .map_err(Failure::ours);
            }
            // The counts first: a crash after the commit finds them here.
            self.save(file, FileStatus::Processing)
                .await
                .map_err(Failure::ours)?;
            let seqs = if staged.is_empty() {
                Vec::new()
            } else {
                match self
                    .lake
                    .commit_load(&tenant, &table, &file.object_id, &staged)
                    .await
                {
                    Ok(seqs) => seqs,
                    // Another file of the table loaded first and changed its schema: parse again
                    // against the table as it is now (nothing of this load went in).
                    Err(LakeError::SchemaChanged { .. }) if parses < MAX_PARSES => continue,
                    Err(e) => return Err(Failure::lake(e)),
                }
            };
            file.verdict = Some(Verdict::Loaded { parts: seqs });
            file.duration_ms = Some(started.elapsed().as_millis() as u64);
            return self
                .save(file, FileStatus::Processing)
                .await
                .map_err(Failure::ours);
        }
    }

    /// Parses on a blocking thread, staging parts as they fill.
    async fn parse(
        &self,
        connector: &Connector,
        options: &IngestOptions,
        store: &Arc<S::Store>,
        file: &IngestFile,
        head: &ObjectInfo,
        table_schema: Option<arrow_schema::SchemaRef>,
    ) -> Result<Parsed, Failure> {
        let source = StoreSource::new(
            store.clone(),
            &file.file.key,
            &file.file.etag,
            head.size,
            Handle::current(),
        );
        let settings = ParseSettings::new(options.format.clone(), options.compression);
        let (lake, tenant, table, key) = (
            self.lake.clone(),
            connector.tenant_id.clone(),
            options.table.clone(),
            file.file.key.clone(),
        );
        let (policy, part_bytes, sidecar_rows) = (
            options.reject,
            self.settings.part_bytes,
            self.settings.sidecar_rows,
        );
        let handle = Handle::current();
        tokio::task::spawn_blocking(move || {
            let mut staged = Vec::new();
            let mut sidecar = Sidecar::default();
            let mut bad = 0u64;
            let mut encoder: Option<PartEncoder> = None;
            let stage = |encoder: PartEncoder| -> Result<StagedPart, LakeError> {
                let part = encoder.finish()?;
                handle.block_on(lake.stage_part(&tenant, &table, part))
            };
            let result = parse_file(
                &source,
                &key,
                &settings,
                table_schema.as_ref(),
                |batch: ParsedBatch| {
                    for row in &batch.bad_rows {
                        sidecar.add(row, sidecar_rows);
                    }
                    bad += batch.bad_rows.len() as u64;
                    if policy.exceeded(bad) {
                        return Err(Stop::TooManyBadRows);
                    }
                    if batch.batch.num_rows() == 0 {
                        return Ok(());
                    }
                    if encoder.is_none() {
                        encoder = Some(
                            PartEncoder::with_capacity(
                                &table,
                                &batch.batch.schema(),
                                part_capacity(part_bytes),
                            )
                            .map_err(Stop::Lake)?,
                        );
                    }
                    let current = encoder.as_mut().expect("just set");
                    current.write(&batch.batch).map_err(Stop::Lake)?;
                    if current.size() >= part_bytes {
                        let full = encoder.take().expect("just used");
                        staged.push(stage(full).map_err(Stop::Lake)?);
                    }
                    Ok(())
                },
            );
            let result = match (result, encoder.take()) {
                (Ok(summary), Some(last)) => match stage(last) {
                    Ok(part) => {
                        staged.push(part);
                        Ok(summary)
                    }
                    Err(e) => Err(ParseError::Stopped(Stop::Lake(e))),
                },
                (result, _) => result,
            };
            Parsed {
                result,
                staged,
                sidecar,
                read_failure: source.failure(),
            }
        })
        .await
        .map_err(|e| {
            Failure::retry(
                problem(
                    "internal",
                    format!("the load stopped: {e}"),
                    "nothing to do: it is tried again",
                ),
                IngestError::Aws(AwsCallError {
                    service: "ingest",
                    operation: "parse",
                    code: None,
                    message: e.to_string(),
                    http_status: None,
                    retryable: true,
                }),
            )
        })
    }

    /// The verdict on a parsed file under the connector's reject policy.
    fn decide(
        &self,
        options: &IngestOptions,
        parsed: Parsed,
    ) -> Result<(Loaded, Vec<StagedPart>), Failure> {
        let sidecar_note = || {
            format!(
                "(listed in the file's .errors.jsonl beside where it went); {}",
                options.reject.describe()
            )
        };
        let refused = |error: RunError, rejected: u64, content: u64, sidecar: Option<Vec<u8>>| {
            Ok((
                Loaded {
                    verdict: Verdict::Refused { error },
                    rows_loaded: 0,
                    rows_rejected: rejected,
                    content_bytes: content,
                    sidecar,
                },
                Vec::new(),
            ))
        };
        let Parsed {
            result,
            staged,
            sidecar,
            ..
        } = parsed;
        let rejected = sidecar.kept as u64 + sidecar.dropped;
        match result {
            Ok(summary) => {
                let total = summary.rows + summary.bad_rows;
                if !options.reject.accepts(summary.bad_rows, total) {
                    return refused(
                        problem(
                            "too_many_bad_rows",
                            format!(
                                "{} of {total} rows are bad {}",
                                summary.bad_rows,
                                sidecar_note()
                            ),
                            "fix the rows the sidecar lists and upload the file again, or allow more bad rows with ingest.reject",
                        ),
                        summary.bad_rows,
                        summary.content_bytes,
                        sidecar.finish(),
                    );
                }
                Ok((
                    Loaded {
                        verdict: Verdict::Loaded { parts: Vec::new() },
                        rows_loaded: summary.rows,
                        rows_rejected: summary.bad_rows,
                        content_bytes: summary.content_bytes,
                        sidecar: sidecar.finish(),
                    },
                    staged,
                ))
            }
            Err(ParseError::Stopped(Stop::TooManyBadRows)) => refused(
                problem(
                    "too_many_bad_rows",
                    format!(
                        "loading stopped at {rejected} bad {} {}",
                        if rejected == 1 { "row" } else { "rows" },
                        sidecar_note()
                    ),
                    "fix the rows the sidecar lists and upload the file again, or allow more bad rows with ingest.reject",
                ),
                rejected,
                0,
                sidecar.finish(),
            ),
            Err(ParseError::Stopped(Stop::Lake(e))) => Err(Failure::lake(e)),
            Err(ParseError::File(e)) => refused(unreadable(&e, options), rejected, 0, None),
        }
    }

    /// Puts the file where the folder rules say: the source is deleted only after the copy is
    /// verified, and only once the verdict is recorded (which the caller ensured).
    async fn place(
        &self,
        connector: &Connector,
        store: &Arc<S::Store>,
        file: &mut IngestFile,
        head: &ObjectInfo,
    ) -> Result<(), (RunError, IngestError)> {
        let key = file.file.key.clone();
        let refusal = |e: AwsCallError, action: &str, prefix: &str, doing: &str| {
            let error = match bucket_refusal(connector, e.clone(), action, prefix, doing) {
                BucketRefusal::Refused(error) => error,
                BucketRefusal::Retry(_) => problem(
                    "bucket_busy",
                    format!("{doing} failed: {e}"),
                    "nothing to do: it is tried again",
                ),
            };
            (error.clone(), IngestError::Refused(error))
        };
        let placement = file.placement.clone().unwrap_or(Placement::Stay);
        if placement == Placement::Stay {
            return Ok(());
        }
        // The file's own bytes, if still there: a retry after the delete finds nothing, and an
        // upload over the key since the load is a new file that must not be touched.
        let source = match store.head_object(&key).await {
            Ok(info)
                if info.e_tag.as_deref().map(|t| t.trim_matches('"'))
                    == Some(file.file.etag.as_str()) =>
            {
                info
            }
            Ok(_) => return Ok(()),
            Err(e) if e.http_status == Some(404) => return Ok(()),
            Err(e) => {
                return Err(refusal(
                    e,
                    "s3:GetObject",
                    &connector.prefix,
                    &format!("reading {key}"),
                ));
            }
        };
        if let Placement::Move { key: target } = &placement {
            let dir = target
                .strip_suffix(key.strip_prefix(connector.prefix.as_str()).unwrap_or(&key))
                .unwrap_or(target)
                .to_owned();
            let head = if head.e_tag.is_some() { head } else { &source };
            self.copy(connector, store, &key, target, head)
                .await
                .map_err(|e| {
                    refusal(
                        e,
                        "s3:PutObject",
                        &dir,
                        &format!("copying {key} to {target}"),
                    )
                })?;
            let copied = store.head_object(target).await.map_err(|e| {
                refusal(
                    e,
                    "s3:GetObject",
                    &dir,
                    &format!("checking the copy {target}"),
                )
            })?;
            if copied.size != source.size {
                return Err(refusal(
                    AwsCallError {
                        service: "s3",
                        operation: "CopyObject",
                        code: None,
                        message: format!(
                            "the copy holds {} bytes, the source {}",
                            copied.size, source.size
                        ),
                        http_status: None,
                        retryable: true,
                    },
                    "s3:PutObject",
                    &dir,
                    &format!("copying {key} to {target}"),
                ));
            }
        }
        store.delete(&key).await.map_err(|e| {
            refusal(
                e,
                "s3:DeleteObject",
                &connector.prefix,
                &format!("deleting {key}"),
            )
        })
    }

    /// CopyObject up to 5 GiB, a multipart copy beyond; either way with the source's
    /// encryption, content type and metadata.
    async fn copy(
        &self,
        connector: &Connector,
        store: &Arc<S::Store>,
        key: &str,
        target: &str,
        head: &ObjectInfo,
    ) -> Result<(), AwsCallError> {
        let options = WriteOptions {
            encryption: head.encryption.clone(),
            bucket_owner_full_control: connector.auth.mode() == AuthMode::BucketPolicy,
            content_type: head.content_type.clone(),
            metadata: head.metadata.clone(),
        };
        if head.size <= self.settings.single_copy_bytes {
            return store.copy(key, target, &options).await;
        }
        let e_tag = head.e_tag.as_deref().unwrap_or_default();
        let upload_id = store.create_upload(target, &options).await?;
        let step = self.settings.copy_part_bytes.max(5 * 1024 * 1024);
        let mut parts: Vec<UploadedPart> = Vec::new();
        let mut first = 0;
        while first < head.size {
            let last = (first + step).min(head.size) - 1;
            let number = parts.len() as i32 + 1;
            match store
                .copy_part(target, &upload_id, number, key, e_tag, (first, last))
                .await
            {
                Ok(part) => parts.push(part),
                Err(e) => {
                    let _ = store.abort_upload(target, &upload_id).await;
                    return Err(e);
                }
            }
            first = last + 1;
        }
        store.complete_upload(target, &upload_id, &parts).await
    }
}

impl<L, G, C, T, K, S, Q> IngestFiles for IngestService<L, G, C, T, K, S, Q>
where
    L: Lake + 'static,
    G: IngestLedger,
    C: ConnectorStore,
    T: SecurityTokenService + 'static,
    K: SecretStore + 'static,
    S: CustomerStorage,
    Q: PolledFileQueue,
    S::Store: 'static,
{
    async fn ingest(&self, found: &FoundObject) -> Result<Handled, IngestError> {
        self.handle(found).await
    }

    async fn poll_prefixes(&self, until: Option<Instant>) -> Result<PollReport, IngestError> {
        self.poll(until).await
    }
}

/// Why a load did not reach a verdict.
enum Failure {
    /// Try again later; the error is what the ledger shows meanwhile (boxed: it is large and
    /// rare).
    Retry(Box<(RunError, IngestError)>),
    /// The object changed under the read.
    Superseded,
}

impl Failure {
    fn retry(error: RunError, cause: IngestError) -> Self {
        Failure::Retry(Box::new((error, cause)))
    }

    fn lake(e: LakeError) -> Self {
        Failure::retry(
            problem(
                "lake",
                format!("the platform's lake could not be written: {e}"),
                "nothing to do: it is tried again; if it keeps failing, contact support with the file's id",
            ),
            IngestError::Lake(e),
        )
    }

    fn ours(e: IngestError) -> Self {
        Failure::retry(
            problem(
                "internal",
                format!("recording the file failed: {e}"),
                "nothing to do: it is tried again",
            ),
            e,
        )
    }

    fn bucket(connector: &Connector, e: AwsCallError, action: &str, doing: &str) -> Self {
        match bucket_refusal(connector, e.clone(), action, &connector.prefix, doing) {
            BucketRefusal::Refused(error) => {
                Failure::retry(error.clone(), IngestError::Refused(error))
            }
            BucketRefusal::Retry(e) => Failure::retry(
                problem(
                    "bucket_busy",
                    format!("{doing} failed: {e}"),
                    "nothing to do: it is tried again",
                ),
                IngestError::Aws(e),
            ),
        }
    }
}

#[cfg(test)]
mod tests;
