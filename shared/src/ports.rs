//! Narrow traits the application logic depends on; adapters implement them per AWS service.

use std::collections::BTreeMap;
use std::future::Future;

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use bytes::Bytes;

use crate::domain::connector::spec::AccessKeyPair;
use crate::domain::connector::{Connector, Encryption};
use crate::domain::export::run::{Run, RunMessage, Watermarks};
use crate::domain::export::task::TaskRecord;
use crate::domain::ingest::file::{FileStatus, IngestFile};
use crate::domain::setup::checks::BucketSettings;
use crate::error::{AwsCallError, SecretError, StoreError};

/// One page of a listing; `next` is the last key of the page when more may follow.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// The prefixes one tenant's connectors hold on one bucket (connector id → prefix), read
/// consistently. Writes that add, move or drop a prefix carry the version they read, so two
/// concurrent creates or updates on the same bucket cannot both pass the overlap check: the
/// second one's write fails with `StoreError::Contended` and is retried against the new claims.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketClaims {
    /// `None` while no claims record exists for the bucket.
    pub version: Option<u64>,
    pub prefixes: BTreeMap<String, String>,
}

/// A new state of one bucket's claims, written only if they are still at `expected`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimsWrite {
    pub bucket: String,
    pub expected: Option<u64>,
    pub prefixes: BTreeMap<String, String>,
}

pub trait ConnectorStore: Send + Sync {
    fn get(
        &self,
        tenant_id: &str,
        connector_id: &str,
    ) -> impl Future<Output = Result<Option<Connector>, StoreError>> + Send;

    /// Connectors of a tenant in id order, starting after `after`.
    fn list(
        &self,
        tenant_id: &str,
        limit: u32,
        after: Option<&str>,
    ) -> impl Future<Output = Result<Page<Connector>, StoreError>> + Send;

    /// Every connector on a bucket, any tenant (ingest routing, overlap checks).
    fn list_by_bucket(
        &self,
        bucket: &str,
    ) -> impl Future<Output = Result<Vec<Connector>, StoreError>> + Send;

    /// Keys (tenant, connector id) of connectors in one `by-due` shard whose next run is at or
    /// before `until_epoch`, earliest first.
    fn due(
        &self,
        shard: &str,
        until_epoch: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<(String, String)>, StoreError>> + Send;

    /// The tenant's claims on `bucket` (consistent read).
    fn bucket_claims(
        &self,
        tenant_id: &str,
        bucket: &str,
    ) -> impl Future<Output = Result<BucketClaims, StoreError>> + Send;

    /// Writes a new connector and its bucket's claims in one transaction. Fails with
    /// `AlreadyExists` rather than overwrite, and with `Contended` when the claims changed.
    fn create(
        &self,
        connector: &Connector,
        claims: &ClaimsWrite,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Writes `connector` only if the stored version is still `expected_version`, together
    /// with `claims` (none when bucket and prefix are unchanged; two when it moves bucket).
    /// With claims, any failed condition is `Contended`: the caller re-reads and decides.
    fn replace(
        &self,
        connector: &Connector,
        expected_version: u64,
        claims: &[ClaimsWrite],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes only if the stored version is still `expected_version`, releasing the
    /// connector's claim in the same transaction when one is given.
    fn delete(
        &self,
        tenant_id: &str,
        connector_id: &str,
        expected_version: u64,
        claims: Option<&ClaimsWrite>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Where customers' access keys live (never in the connectors table).
pub trait SecretStore: Send + Sync {
    /// Creates the secret `name` and returns its ARN.
    fn create(
        &self,
        name: &str,
        keys: &AccessKeyPair,
        tenant_id: &str,
    ) -> impl Future<Output = Result<String, SecretError>> + Send;

    fn update(
        &self,
        arn: &str,
        keys: &AccessKeyPair,
    ) -> impl Future<Output = Result<(), SecretError>> + Send;

    fn get(&self, arn: &str) -> impl Future<Output = Result<AccessKeyPair, SecretError>> + Send;

    /// Deletes at once (no recovery window); a secret already gone is not an error.
    fn delete(&self, arn: &str) -> impl Future<Output = Result<(), SecretError>> + Send;
}

/// What runs and validation do in a customer's bucket, bound to one bucket, one region and one
/// connector's credentials. Errors keep what S3 said (`AwsCallError`), so callers decide from
/// the code: a denial names the missing permission, a throttle is retried.
pub trait ObjectStore: Send + Sync {
    fn bucket(&self) -> &str;

    /// HeadBucket: the region S3 reports. S3 names the region in a refusal too (301/400/403),
    /// so the error carries it when it was sent.
    fn head_bucket(&self) -> impl Future<Output = Result<Option<String>, HeadBucketError>> + Send;

    /// GetBucketLocation, normalised to a region name (`us-east-1` for the empty constraint).
    fn bucket_location(&self) -> impl Future<Output = Result<String, AwsCallError>> + Send;

    fn head_object(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<ObjectInfo, AwsCallError>> + Send;

    /// One page of ListObjectsV2 under `prefix`, continuing from `continuation`.
    fn list(
        &self,
        prefix: &str,
        max_keys: i32,
        continuation: Option<&str>,
    ) -> impl Future<Output = Result<Listing, AwsCallError>> + Send;

    /// The object's bytes, or the inclusive byte range `first..=last` of them.
    fn get(
        &self,
        key: &str,
        range: Option<(u64, u64)>,
    ) -> impl Future<Output = Result<Vec<u8>, AwsCallError>> + Send;

    /// The range `first..=last` of the object, only while its ETag is still `e_tag`
    /// (`If-Match`): an object overwritten mid-read fails with `PreconditionFailed` (412)
    /// instead of mixing two uploads' bytes.
    fn get_range_if(
        &self,
        key: &str,
        first: u64,
        last: u64,
        e_tag: &str,
    ) -> impl Future<Output = Result<Bytes, AwsCallError>> + Send;

    /// PutObject with the body's CRC32C; the new object's ETag.
    fn put(
        &self,
        key: &str,
        body: Body,
        options: &WriteOptions,
    ) -> impl Future<Output = Result<String, AwsCallError>> + Send;

    /// CreateMultipartUpload with the write options and CRC32C as the additional checksum
    /// (`ChecksumAlgorithm`), so every part must carry its CRC32C.
    fn create_upload(
        &self,
        key: &str,
        options: &WriteOptions,
    ) -> impl Future<Output = Result<String, AwsCallError>> + Send;

    /// UploadPart with the body's CRC32C; the part as CompleteMultipartUpload names it.
    fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: i32,
        body: Body,
    ) -> impl Future<Output = Result<UploadedPart, AwsCallError>> + Send;

    /// UploadPartCopy: bytes `first..=last` of `source_key` (same bucket, only while its ETag
    /// is `source_e_tag`) as part `part_number` of an upload to `key`.
    fn copy_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: i32,
        source_key: &str,
        source_e_tag: &str,
        range: (u64, u64),
    ) -> impl Future<Output = Result<UploadedPart, AwsCallError>> + Send;

    /// ListParts of an upload in progress.
    fn list_parts(
        &self,
        key: &str,
        upload_id: &str,
    ) -> impl Future<Output = Result<Vec<UploadedPart>, AwsCallError>> + Send;

    /// CompleteMultipartUpload with every part, ascending, each with its ETag and CRC32C.
    fn complete_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[UploadedPart],
    ) -> impl Future<Output = Result<(), AwsCallError>> + Send;

    fn abort_upload(
        &self,
        key: &str,
        upload_id: &str,
    ) -> impl Future<Output = Result<(), AwsCallError>> + Send;

    /// Multipart uploads in progress under `prefix` (abandoned ones are swept).
    fn list_uploads(
        &self,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<PendingUpload>, AwsCallError>> + Send;

    /// CopyObject within the bucket, keeping metadata, with the write options.
    fn copy(
        &self,
        source_key: &str,
        target_key: &str,
        options: &WriteOptions,
    ) -> impl Future<Output = Result<(), AwsCallError>> + Send;

    /// DeleteObject; a key already gone is not an error (S3 answers 204 either way).
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), AwsCallError>> + Send;

    /// Versioning, object lock, requester pays and object ownership; a setting that could not
    /// be read is `None`.
    fn settings(&self) -> impl Future<Output = BucketSettings> + Send;
}

/// Opens an [`ObjectStore`] on a customer's bucket with a connector's credentials (a fixed set
/// or a provider that renews them).
pub trait CustomerStorage: Send + Sync {
    type Store: ObjectStore;

    fn open(
        &self,
        credentials: SharedCredentialsProvider,
        bucket: &str,
        region: &str,
    ) -> Self::Store;
}

/// A refused HeadBucket, with the region S3 named in `x-amz-bucket-region`, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadBucketError {
    pub error: AwsCallError,
    pub region: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectInfo {
    pub size: u64,
    pub e_tag: Option<String>,
    pub version_id: Option<String>,
    pub content_type: Option<String>,
    /// Server-side encryption as S3 reports it (`None`: none, or a kind we do not name).
    pub encryption: Option<Encryption>,
    /// User metadata (`x-amz-meta-*`), names without the prefix.
    pub metadata: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub objects: Vec<ListedObject>,
    /// Set when more keys follow.
    pub continuation: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    pub key: String,
    pub size: u64,
    pub e_tag: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedPart {
    pub part_number: i32,
    pub e_tag: String,
    /// The part's CRC32C; CompleteMultipartUpload of an upload created with the checksum
    /// needs it for every part. `None` when ListParts did not report one.
    pub crc32c: Option<Crc32c>,
}

/// The bytes of an object or a part with their CRC32C, which travels as S3's additional
/// checksum (`x-amz-checksum-crc32c`): S3 refuses a body that does not match it (`BadDigest`),
/// so what is stored is what we computed. `Bytes` so that a retry resends without a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    pub bytes: Bytes,
    pub crc32c: Crc32c,
}

impl Body {
    /// The bytes with their checksum computed here.
    pub fn new(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Self {
            crc32c: Crc32c::of(&bytes),
            bytes,
        }
    }
}

/// A CRC32C (Castagnoli) value; S3 carries it as the base64 of its four big-endian bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Crc32c(pub u32);

impl Crc32c {
    pub fn of(bytes: &[u8]) -> Self {
        // crc-fast returns every width as u64; a CRC-32 fits in the low half.
        let value = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, bytes);
        Self(value as u32)
    }

    pub fn to_be_bytes(self) -> [u8; 4] {
        self.0.to_be_bytes()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingUpload {
    pub key: String,
    pub upload_id: String,
}

/// Headers every object we write carries: the connector's server-side encryption and, for
/// `bucket_policy` connectors, the ACL that hands the object to the bucket owner.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOptions {
    pub encryption: Option<Encryption>,
    pub bucket_owner_full_control: bool,
    pub content_type: Option<String>,
    /// User metadata to set (PutObject, CreateMultipartUpload; CopyObject copies the source's).
    pub metadata: BTreeMap<String, String>,
}

/// Our side of AWS STS: assuming customers' roles and our own principal, and asking who a set
/// of credentials belongs to. `caller` is whose credentials sign the call (`None`: the
/// function's own).
pub trait SecurityTokenService: Send + Sync {
    fn assume_role(
        &self,
        caller: Option<&Credentials>,
        request: &AssumeRole,
    ) -> impl Future<Output = Result<Credentials, AwsCallError>> + Send;

    fn assume_role_with_web_identity(
        &self,
        request: &AssumeRole,
        token: &str,
    ) -> impl Future<Output = Result<Credentials, AwsCallError>> + Send;

    /// GetCallerIdentity (needs no permission): the ARN behind `caller`.
    fn caller_arn(
        &self,
        caller: Option<&Credentials>,
    ) -> impl Future<Output = Result<String, AwsCallError>> + Send;

    /// The function's own credentials (its execution role in AWS; the environment locally).
    fn own_credentials(&self) -> impl Future<Output = Result<Credentials, AwsCallError>> + Send;
}

/// One AssumeRole(-WithWebIdentity) request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssumeRole {
    pub role_arn: String,
    pub session_name: String,
    pub external_id: Option<String>,
    pub source_identity: Option<String>,
    pub duration_seconds: i32,
    /// Inline session policy (JSON) narrowing the session.
    pub policy: Option<String>,
}

/// The runs table: one record per run, plus each connector's export watermarks.
pub trait RunStore: Send + Sync {
    /// Writes a new run; `StoreError::AlreadyExists` when its id is taken.
    fn create(&self, run: &Run) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn get(
        &self,
        connector_id: &str,
        run_id: &str,
    ) -> impl Future<Output = Result<Option<Run>, StoreError>> + Send;

    /// The connector's runs, newest first; `after` continues from a page's `next`.
    fn list(
        &self,
        connector_id: &str,
        limit: u32,
        after: Option<&str>,
    ) -> impl Future<Output = Result<Page<Run>, StoreError>> + Send;

    /// Replaces the run's record (status, plan, files, outcome).
    fn update(&self, run: &Run) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The connector's export watermarks (empty before its first successful run).
    fn watermarks(
        &self,
        connector_id: &str,
    ) -> impl Future<Output = Result<Watermarks, StoreError>> + Send;

    /// Writes the run's file task records that do not exist yet: a start delivered again
    /// keeps the progress of those that do.
    fn create_tasks(
        &self,
        connector_id: &str,
        tasks: &[TaskRecord],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The run's file task records, in plan order.
    fn tasks(
        &self,
        connector_id: &str,
        run_id: &str,
    ) -> impl Future<Output = Result<Vec<TaskRecord>, StoreError>> + Send;

    /// Takes task `index` for one invocation until `lease_until` (epoch seconds) if it is not
    /// written and no lease is live at `now`: one more attempt, state `writing`. `None` when it
    /// is written or another invocation holds it (a duplicate delivery).
    fn take_task(
        &self,
        connector_id: &str,
        run_id: &str,
        index: u32,
        now: i64,
        lease_until: i64,
    ) -> impl Future<Output = Result<Option<TaskRecord>, StoreError>> + Send;

    /// Replaces a task record (by the invocation holding its lease).
    fn save_task(
        &self,
        connector_id: &str,
        task: &TaskRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Counts task `index` as written, once however often it is called: the run's written
    /// tasks afterwards, and whether this call was the one that counted it.
    fn count_written(
        &self,
        connector_id: &str,
        run_id: &str,
        index: u32,
    ) -> impl Future<Output = Result<(u32, bool), StoreError>> + Send;

    /// Moves the watermarks from `expected` to `next`, only if they are still `expected`
    /// (`StoreError::Contended` otherwise): a run's data is committed once. The same run
    /// moving them to the same `next` again (a finishing step redone) succeeds.
    fn advance_watermarks(
        &self,
        connector_id: &str,
        run_id: &str,
        expected: &Watermarks,
        next: &Watermarks,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The export queue: a message starts a run, or writes one of its files, in `scheduled-export`.
pub trait RunQueue: Send + Sync {
    fn enqueue(
        &self,
        message: &RunMessage,
    ) -> impl Future<Output = Result<(), AwsCallError>> + Send;

    /// Every message, in batches; an error when any one was not accepted (sending them all
    /// again is safe: file tasks are idempotent).
    fn enqueue_all(
        &self,
        messages: &[RunMessage],
    ) -> impl Future<Output = Result<(), AwsCallError>> + Send;
}

/// The ingest queue, for files the poll of a source prefix found: each is then handled by
/// `s3-ingest` like a notified file, in parallel with the others.
pub trait PolledFileQueue: Send + Sync {
    /// Every file, in batches; an error when any one was not accepted (sending them all again
    /// is safe: the ledger loads a file once).
    fn enqueue_polled(
        &self,
        files: &[crate::domain::ingest::notification::PolledFile],
    ) -> impl Future<Output = Result<(), AwsCallError>> + Send;
}

/// What claiming a run found (docs/architecture.md, "Schedules").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The run is recorded `queued` and holds its markers: enqueue it.
    Claimed,
    /// Another run already holds the run's schedule slot (a duplicate or overlapping tick).
    SlotTaken { run_id: String },
    /// The connector has an unfinished run; nothing was written.
    InFlight { run_id: String },
    /// The tenant already has `cap` unfinished runs; nothing was written.
    TenantAtCap { cap: u32 },
    /// A retried run is no longer `failed` (another retry took it); nothing was written.
    RunChanged,
}

/// The runs table's in-flight markers: at most one unfinished run per connector (scheduled or
/// manual), one run per schedule slot, and a cap of unfinished runs per tenant. A run holds
/// its markers from its claim until it finishes; a marker left by a run that died unrecorded
/// lapses after [`crate::domain::export::run::IN_FLIGHT_LEASE_HOURS`].
pub trait RunClaims: Send + Sync {
    /// Writes `run` (`queued`: a new run, or a failed one queued again) together with its
    /// connector's in-flight marker, one of its tenant's `tenant_cap` seats and, for a
    /// scheduled run, its slot: all of them or none.
    fn claim(
        &self,
        run: &Run,
        tenant_cap: u32,
    ) -> impl Future<Output = Result<ClaimOutcome, StoreError>> + Send;

    /// Releases the markers `run` holds (its connector's, and its tenant seat); markers held
    /// by another run are left alone, and releasing twice is a no-op. The slot stays taken.
    fn release(&self, run: &Run) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The ingest ledger: one record per file (bucket, key, ETag), written with optimistic
/// concurrency so that one delivery at a time acts on a file (docs/architecture.md, "Ingest").
pub trait IngestLedger: Send + Sync {
    fn get(
        &self,
        object_id: &str,
    ) -> impl Future<Output = Result<Option<IngestFile>, StoreError>> + Send;

    /// Writes `file` if the stored record is at `file.version - 1` (no record for version 1);
    /// `StoreError::Contended` when another write got there first.
    fn put(&self, file: &IngestFile) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The connector's files, newest first, optionally of one status; `after` continues from
    /// a page's `next`.
    fn list(
        &self,
        connector_id: &str,
        status: Option<FileStatus>,
        limit: u32,
        after: Option<&str>,
    ) -> impl Future<Output = Result<Page<IngestFile>, StoreError>> + Send;
}
