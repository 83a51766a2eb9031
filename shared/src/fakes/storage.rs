//! An in-memory S3 behind the storage ports: buckets with regions, objects with the headers
//! they were written with, multipart uploads, CRC32C checks of every body and part, bucket
//! settings, a log of every call, faults a test injects per operation and key prefix
//! (AccessDenied, SlowDown, NoSuchBucket, a hang) — the paths an emulator cannot produce — and
//! a delay per operation with a count of concurrent UploadPart calls, so a test under paused
//! time sees how many parts a writer keeps in flight.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use bytes::Bytes;

use crate::domain::setup::checks::BucketSettings;
use crate::error::AwsCallError;
use crate::ports::{
    Body, Crc32c, CustomerStorage, HeadBucketError, ListedObject, Listing, ObjectInfo, ObjectStore,
    PendingUpload, UploadedPart, WriteOptions,
};

/// S3's smallest part, for every part of a multipart upload but the last.
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;

/// The S3 operations of the port, for faults and the call log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    HeadBucket,
    BucketLocation,
    HeadObject,
    List,
    Get,
    Put,
    CreateUpload,
    UploadPart,
    ListParts,
    CompleteUpload,
    AbortUpload,
    ListUploads,
    Copy,
    CopyPart,
    Delete,
    Settings,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::HeadBucket => "HeadBucket",
            Op::BucketLocation => "GetBucketLocation",
            Op::HeadObject => "HeadObject",
            Op::List => "ListObjectsV2",
            Op::Get => "GetObject",
            Op::Put => "PutObject",
            Op::CreateUpload => "CreateMultipartUpload",
            Op::UploadPart => "UploadPart",
            Op::ListParts => "ListParts",
            Op::CompleteUpload => "CompleteMultipartUpload",
            Op::AbortUpload => "AbortMultipartUpload",
            Op::ListUploads => "ListMultipartUploads",
            Op::Copy => "CopyObject",
            Op::CopyPart => "UploadPartCopy",
            Op::Delete => "DeleteObject",
            Op::Settings => "GetBucket*",
        }
    }

    /// Operations that change the bucket.
    pub fn writes(self) -> bool {
        matches!(
            self,
            Op::Put
                | Op::CreateUpload
                | Op::UploadPart
                | Op::CompleteUpload
                | Op::AbortUpload
                | Op::Copy
                | Op::CopyPart
                | Op::Delete
        )
    }
}

/// What an injected fault answers.
#[derive(Debug, Clone)]
pub enum Fault {
    AccessDenied,
    SlowDown,
    NoSuchBucket,
    /// A KMS refusal, as S3 passes it on.
    KmsDenied,
    /// No answer for this long (tests run with paused time).
    Hang(Duration),
    Error(AwsCallError),
}

impl Fault {
    fn error(&self, op: Op) -> AwsCallError {
        let (code, status, retryable, message) = match self {
            Fault::AccessDenied => ("AccessDenied", 403, false, "Access Denied"),
            Fault::SlowDown => ("SlowDown", 503, true, "Please reduce your request rate."),
            Fault::NoSuchBucket => (
                "NoSuchBucket",
                404,
                false,
                "The specified bucket does not exist",
            ),
            Fault::KmsDenied => (
                "KMS.AccessDeniedException",
                403,
                false,
                "not authorized to perform kms:GenerateDataKey",
            ),
            Fault::Hang(_) => ("RequestTimeout", 400, true, "timed out"),
            Fault::Error(e) => return e.clone(),
        };
        AwsCallError {
            service: "s3",
            operation: op.name(),
            code: Some(code.to_owned()),
            message: message.to_owned(),
            http_status: Some(status),
            retryable,
        }
    }
}

struct Rule {
    op: Op,
    key_prefix: String,
    fault: Fault,
    /// Matching calls that succeed before the fault starts.
    passes: u32,
    /// `None`: every time.
    remaining: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub body: Vec<u8>,
    pub options: WriteOptions,
    pub e_tag: String,
}

#[derive(Debug, Clone, Default)]
pub struct Upload {
    pub key: String,
    pub options: WriteOptions,
    pub parts: BTreeMap<i32, StoredPart>,
}

/// A part as S3 keeps it until the upload completes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPart {
    pub e_tag: String,
    pub bytes: Bytes,
    pub crc32c: Crc32c,
}

#[derive(Debug, Clone)]
pub struct FakeBucket {
    pub region: String,
    /// Whether HeadBucket names the region (`x-amz-bucket-region`); some endpoints do not.
    pub reports_region: bool,
    pub objects: BTreeMap<String, StoredObject>,
    pub uploads: BTreeMap<String, Upload>,
    pub settings: BucketSettings,
}

/// One call as the fake saw it: the operation, its key (or prefix), and whose credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub op: Op,
    pub bucket: String,
    pub key: String,
    pub access_key_id: String,
    /// The headers a write was sent with (PutObject, CreateMultipartUpload, CopyObject).
    pub options: Option<WriteOptions>,
    /// The CRC32C a body was sent with (PutObject, UploadPart), and its size.
    pub body: Option<(Crc32c, usize)>,
}

#[derive(Default)]
struct State {
    buckets: BTreeMap<String, FakeBucket>,
    rules: Vec<Rule>,
    calls: Vec<Call>,
    next_id: u64,
    /// How long each call of an operation takes, once its faults are checked.
    delays: Vec<(Op, Duration)>,
    parts_in_flight: usize,
    max_parts_in_flight: usize,
}

/// Cloning shares the state: hand one clone to the code under test, keep one to inspect.
#[derive(Clone, Default)]
pub struct MemoryStorage {
    state: Arc<Mutex<State>>,
}

impl MemoryStorage {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an empty bucket with no versioning, lock, requester pays or ownership controls.
    pub fn with_bucket(self, name: &str, region: &str) -> Self {
        self.lock().buckets.insert(
            name.to_owned(),
            FakeBucket {
                region: region.to_owned(),
                reports_region: true,
                objects: BTreeMap::new(),
                uploads: BTreeMap::new(),
                settings: BucketSettings {
                    versioning: Some(false),
                    object_lock: Some(false),
                    requester_pays: Some(false),
                    owner_enforced: Some(false),
                },
            },
        );
        self
    }

    /// A customer's file, as if they uploaded it.
    pub fn put_object(&self, bucket: &str, key: &str, body: &[u8]) {
        self.put_object_with(bucket, key, body, WriteOptions::default());
    }

    /// A customer's file uploaded with headers (encryption, content type, metadata).
    pub fn put_object_with(&self, bucket: &str, key: &str, body: &[u8], options: WriteOptions) {
        let mut state = self.lock();
        let e_tag = format!("\"{}\"", state.next_id);
        state.next_id += 1;
        state
            .buckets
            .get_mut(bucket)
            .expect("bucket exists")
            .objects
            .insert(
                key.to_owned(),
                StoredObject {
                    body: body.to_vec(),
                    options,
                    e_tag,
                },
            );
    }

    /// HeadBucket on `bucket` stops naming its region.
    pub fn hide_region(&self, bucket: &str) {
        self.lock()
            .buckets
            .get_mut(bucket)
            .expect("bucket exists")
            .reports_region = false;
    }

    pub fn set_settings(&self, bucket: &str, settings: BucketSettings) {
        self.lock()
            .buckets
            .get_mut(bucket)
            .expect("bucket exists")
            .settings = settings;
    }

    /// Every call of `op` on a key starting with `key_prefix` ("" for all) answers `fault`.
    pub fn fail(&self, op: Op, key_prefix: &str, fault: Fault) {
        self.add_rule(op, key_prefix, fault, None);
    }

    /// The next `times` such calls answer `fault`; later ones succeed.
    pub fn fail_times(&self, op: Op, key_prefix: &str, fault: Fault, times: u32) {
        self.add_rule(op, key_prefix, fault, Some(times));
    }

    /// The first `passes` such calls succeed, every later one answers `fault` (the second part
    /// of an upload, say).
    pub fn fail_after(&self, op: Op, key_prefix: &str, fault: Fault, passes: u32) {
        self.lock().rules.push(Rule {
            op,
            key_prefix: key_prefix.to_owned(),
            fault,
            passes,
            remaining: None,
        });
    }

    /// The first `passes` such calls succeed, the next `times` answer `fault`, later ones
    /// succeed again (an upload interrupted between two parts, then delivered again).
    pub fn fail_between(&self, op: Op, key_prefix: &str, fault: Fault, passes: u32, times: u32) {
        self.lock().rules.push(Rule {
            op,
            key_prefix: key_prefix.to_owned(),
            fault,
            passes,
            remaining: Some(times),
        });
    }

    fn add_rule(&self, op: Op, key_prefix: &str, fault: Fault, remaining: Option<u32>) {
        self.lock().rules.push(Rule {
            op,
            key_prefix: key_prefix.to_owned(),
            fault,
            passes: 0,
            remaining,
        });
    }

    pub fn bucket(&self, name: &str) -> Option<FakeBucket> {
        self.lock().buckets.get(name).cloned()
    }

    /// The keys in a bucket, in order.
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        self.bucket(bucket)
            .map(|b| b.objects.keys().cloned().collect())
            .unwrap_or_default()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// Every later call of `op` takes `duration` (tests run with paused time), so calls a
    /// client makes concurrently overlap.
    pub fn delay(&self, op: Op, duration: Duration) {
        self.lock().delays.push((op, duration));
    }

    /// The most UploadPart calls that were in progress at once.
    pub fn max_parts_in_flight(&self) -> usize {
        self.lock().max_parts_in_flight
    }

    /// Counts an UploadPart in progress until the guard drops (also when its caller gives up
    /// on it).
    fn part_in_flight(&self) -> InFlight {
        let mut state = self.lock();
        state.parts_in_flight += 1;
        state.max_parts_in_flight = state.max_parts_in_flight.max(state.parts_in_flight);
        InFlight(self.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("not poisoned")
    }
}

struct InFlight(MemoryStorage);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.lock().parts_in_flight -= 1;
    }
}

impl CustomerStorage for MemoryStorage {
    type Store = MemoryBucket;

    fn open(
        &self,
        credentials: SharedCredentialsProvider,
        bucket: &str,
        region: &str,
    ) -> MemoryBucket {
        MemoryBucket {
            storage: self.clone(),
            bucket: bucket.to_owned(),
            region: region.to_owned(),
            credentials,
        }
    }
}

/// One bucket of a [`MemoryStorage`], opened with a connector's credentials.
pub struct MemoryBucket {
    storage: MemoryStorage,
    bucket: String,
    /// The client's region: S3 redirects (301) calls made in another than the bucket's.
    region: String,
    credentials: SharedCredentialsProvider,
}

impl MemoryBucket {
    /// Logs the call, then answers an injected fault, expired credentials or a missing bucket
    /// before the operation itself runs.
    async fn begin(
        &self,
        op: Op,
        key: &str,
        options: Option<&WriteOptions>,
    ) -> Result<(), AwsCallError> {
        self.begin_with_body(op, key, options, None).await
    }

    /// [`Self::begin`] for a call that sends a body: logs its checksum and size, then, after
    /// the faults, refuses a body that does not match its CRC32C as S3 does (`BadDigest`).
    async fn begin_with_body(
        &self,
        op: Op,
        key: &str,
        options: Option<&WriteOptions>,
        body: Option<&Body>,
    ) -> Result<(), AwsCallError> {
        let credentials =
            self.credentials
                .provide_credentials()
                .await
                .map_err(|e| AwsCallError {
                    service: "s3",
                    operation: op.name(),
                    code: None,
                    message: format!("no credentials: {e}"),
                    http_status: None,
                    retryable: false,
                })?;
        let fault = {
            let mut state = self.storage.lock();
            state.calls.push(Call {
                op,
                bucket: self.bucket.clone(),
                key: key.to_owned(),
                access_key_id: credentials.access_key_id().to_owned(),
                options: options.cloned(),
                body: body.map(|b| (b.crc32c, b.bytes.len())),
            });
            let rule = state
                .rules
                .iter_mut()
                .find(|r| r.op == op && key.starts_with(&r.key_prefix) && r.remaining != Some(0));
            match rule {
                Some(rule) if rule.passes > 0 => {
                    rule.passes -= 1;
                    None
                }
                Some(rule) => {
                    if let Some(n) = rule.remaining.as_mut() {
                        *n -= 1;
                    }
                    Some(rule.fault.clone())
                }
                None => None,
            }
        };
        if let Some(fault) = fault {
            if let Fault::Hang(duration) = fault {
                tokio::time::sleep(duration).await;
            }
            return Err(fault.error(op));
        }
        let delay: Duration = self
            .storage
            .lock()
            .delays
            .iter()
            .filter(|(delayed, _)| *delayed == op)
            .map(|(_, d)| *d)
            .sum();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if credentials
            .expiry()
            .is_some_and(|at| at <= SystemTime::now())
        {
            return Err(AwsCallError {
                service: "s3",
                operation: op.name(),
                code: Some("ExpiredToken".into()),
                message: "The provided token has expired.".into(),
                http_status: Some(400),
                retryable: false,
            });
        }
        let bucket_region = self.storage.bucket(&self.bucket).map(|b| b.region);
        let mut e = match bucket_region {
            None => Fault::NoSuchBucket.error(op),
            // GetBucketLocation answers from any region; everything else is redirected.
            Some(region) if region != self.region && op != Op::BucketLocation => AwsCallError {
                service: "s3",
                operation: op.name(),
                code: Some("PermanentRedirect".into()),
                message: format!("the bucket is in {region}"),
                http_status: Some(301),
                retryable: false,
            },
            Some(_) => return body.map_or(Ok(()), |b| Self::verify(op, b)),
        };
        if op == Op::HeadBucket {
            // HeadBucket has no body: a bare status.
            e.code = None;
        }
        Err(e)
    }

    fn with_bucket<R>(&self, f: impl FnOnce(&mut FakeBucket, &mut u64) -> R) -> R {
        let mut state = self.storage.lock();
        let State {
            buckets, next_id, ..
        } = &mut *state;
        f(
            buckets.get_mut(&self.bucket).expect("checked in begin"),
            next_id,
        )
    }

    fn verify(op: Op, body: &Body) -> Result<(), AwsCallError> {
        if Crc32c::of(&body.bytes) == body.crc32c {
            return Ok(());
        }
        Err(AwsCallError {
            service: "s3",
            operation: op.name(),
            code: Some("BadDigest".into()),
            message: "The CRC32C you specified did not match the calculated checksum.".into(),
            http_status: Some(400),
            retryable: false,
        })
    }

    fn missing(op: Op, code: &str) -> AwsCallError {
        AwsCallError {
            service: "s3",
            operation: op.name(),
            code: (op != Op::HeadObject).then(|| code.to_owned()),
            message: "not found".into(),
            http_status: Some(404),
            retryable: false,
        }
    }

    /// An `If-Match` that no longer holds: the object was overwritten.
    fn precondition_failed(op: Op) -> AwsCallError {
        AwsCallError {
            service: "s3",
            operation: op.name(),
            code: Some("PreconditionFailed".to_owned()),
            message: "At least one of the pre-conditions you specified did not hold".into(),
            http_status: Some(412),
            retryable: false,
        }
    }
}

impl ObjectStore for MemoryBucket {
    fn bucket(&self) -> &str {
        &self.bucket
    }

    async fn head_bucket(&self) -> Result<Option<String>, HeadBucketError> {
        match self.begin(Op::HeadBucket, "", None).await {
            Ok(()) => Ok(self.with_bucket(|b, _| b.reports_region.then(|| b.region.clone()))),
            Err(error) => Err(HeadBucketError {
                // S3 names the region of a bucket that exists, even when it refuses.
                region: self.storage.bucket(&self.bucket).map(|b| b.region),
                error,
            }),
        }
    }

    async fn bucket_location(&self) -> Result<String, AwsCallError> {
        self.begin(Op::BucketLocation, "", None).await?;
        Ok(self.with_bucket(|b, _| b.region.clone()))
    }

    async fn head_object(&self, key: &str) -> Result<ObjectInfo, AwsCallError> {
        self.begin(Op::HeadObject, key, None).await?;
        self.with_bucket(|b, _| b.objects.get(key).cloned())
            .map(|o| ObjectInfo {
                size: o.body.len() as u64,
                e_tag: Some(o.e_tag),
                version_id: None,
                content_type: o.options.content_type.clone(),
                encryption: o.options.encryption.clone(),
                metadata: o.options.metadata.clone(),
            })
            .ok_or_else(|| Self::missing(Op::HeadObject, "NoSuchKey"))
    }

    async fn list(
        &self,
        prefix: &str,
        max_keys: i32,
        continuation: Option<&str>,
    ) -> Result<Listing, AwsCallError> {
        self.begin(Op::List, prefix, None).await?;
        let max = usize::try_from(max_keys).unwrap_or(0).max(1);
        Ok(self.with_bucket(|b, _| {
            let mut matching = b
                .objects
                .iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .filter(|(k, _)| continuation.is_none_or(|after| k.as_str() > after));
            let objects: Vec<ListedObject> = matching
                .by_ref()
                .take(max)
                .map(|(k, o)| ListedObject {
                    key: k.clone(),
                    size: o.body.len() as u64,
                    e_tag: Some(o.e_tag.clone()),
                })
                .collect();
            let more = matching.next().is_some();
            Listing {
                continuation: more
                    .then(|| objects.last().map(|o| o.key.clone()))
                    .flatten(),
                objects,
            }
        }))
    }

    async fn get(&self, key: &str, range: Option<(u64, u64)>) -> Result<Vec<u8>, AwsCallError> {
        self.begin(Op::Get, key, None).await?;
        let body = self
            .with_bucket(|b, _| b.objects.get(key).map(|o| o.body.clone()))
            .ok_or_else(|| Self::missing(Op::Get, "NoSuchKey"))?;
        let Some((first, last)) = range else {
            return Ok(body);
        };
        let len = body.len() as u64;
        if first >= len || last < first {
            // An empty object has no byte 0.
            return Err(AwsCallError {
                code: Some("InvalidRange".into()),
                http_status: Some(416),
                message: "The requested range is not satisfiable".into(),
                ..Self::missing(Op::Get, "InvalidRange")
            });
        }
        let end = last.min(len - 1);
        Ok(body[usize::try_from(first).unwrap_or(usize::MAX)
            ..=usize::try_from(end).unwrap_or(usize::MAX)]
            .to_vec())
    }

    async fn get_range_if(
        &self,
        key: &str,
        first: u64,
        last: u64,
        e_tag: &str,
    ) -> Result<Bytes, AwsCallError> {
        let current = self.with_bucket(|b, _| b.objects.get(key).map(|o| o.e_tag.clone()));
        if current.is_some_and(|current| current.trim_matches('"') != e_tag.trim_matches('"')) {
            self.begin(Op::Get, key, None).await?;
            return Err(Self::precondition_failed(Op::Get));
        }
        self.get(key, Some((first, last))).await.map(Bytes::from)
    }

    async fn put(
        &self,
        key: &str,
        body: Body,
        options: &WriteOptions,
    ) -> Result<String, AwsCallError> {
        self.begin_with_body(Op::Put, key, Some(options), Some(&body))
            .await?;
        Ok(self.with_bucket(|b, next| {
            let e_tag = format!("\"{next}\"");
            *next += 1;
            b.objects.insert(
                key.to_owned(),
                StoredObject {
                    body: body.bytes.to_vec(),
                    options: options.clone(),
                    e_tag: e_tag.clone(),
                },
            );
            e_tag
        }))
    }

    async fn create_upload(
        &self,
        key: &str,
        options: &WriteOptions,
    ) -> Result<String, AwsCallError> {
        self.begin(Op::CreateUpload, key, Some(options)).await?;
        Ok(self.with_bucket(|b, next| {
            let id = format!("upload-{next}");
            *next += 1;
            b.uploads.insert(
                id.clone(),
                Upload {
                    key: key.to_owned(),
                    options: options.clone(),
                    parts: BTreeMap::new(),
                },
            );
            id
        }))
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: i32,
        body: Body,
    ) -> Result<UploadedPart, AwsCallError> {
        let _in_flight = self.storage.part_in_flight();
        self.begin_with_body(Op::UploadPart, key, None, Some(&body))
            .await?;
        self.with_bucket(|b, next| {
            let upload = b
                .uploads
                .get_mut(upload_id)
                .filter(|u| u.key == key)
                .ok_or_else(|| Self::missing(Op::UploadPart, "NoSuchUpload"))?;
            let e_tag = format!("\"part-{next}\"");
            *next += 1;
            upload.parts.insert(
                part_number,
                StoredPart {
                    e_tag: e_tag.clone(),
                    bytes: body.bytes,
                    crc32c: body.crc32c,
                },
            );
            Ok(UploadedPart {
                part_number,
                e_tag,
                crc32c: Some(body.crc32c),
            })
        })
    }

    async fn list_parts(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<Vec<UploadedPart>, AwsCallError> {
        self.begin(Op::ListParts, key, None).await?;
        self.with_bucket(|b, _| {
            let upload = b
                .uploads
                .get(upload_id)
                .filter(|u| u.key == key)
                .ok_or_else(|| Self::missing(Op::ListParts, "NoSuchUpload"))?;
            Ok(upload
                .parts
                .iter()
                .map(|(n, part)| UploadedPart {
                    part_number: *n,
                    e_tag: part.e_tag.clone(),
                    crc32c: Some(part.crc32c),
                })
                .collect())
        })
    }

    async fn complete_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[UploadedPart],
    ) -> Result<(), AwsCallError> {
        self.begin(Op::CompleteUpload, key, None).await?;
        self.with_bucket(|b, next| {
            let upload = b
                .uploads
                .get(upload_id)
                .filter(|u| u.key == key)
                .ok_or_else(|| Self::missing(Op::CompleteUpload, "NoSuchUpload"))?;
            // S3's rules: at least one part, ascending numbers, every part but the last ≥ 5 MiB.
            let refuse = |code: &str, message: &str| AwsCallError {
                code: Some(code.to_owned()),
                http_status: Some(400),
                message: message.to_owned(),
                ..Self::missing(Op::CompleteUpload, code)
            };
            if parts.is_empty() {
                return Err(refuse("MalformedXML", "no parts"));
            }
            if parts
                .windows(2)
                .any(|w| w[0].part_number >= w[1].part_number)
            {
                return Err(refuse(
                    "InvalidPartOrder",
                    "parts must be in ascending order",
                ));
            }
            let small = parts[..parts.len() - 1].iter().any(|p| {
                upload
                    .parts
                    .get(&p.part_number)
                    .is_some_and(|stored| stored.bytes.len() < MIN_PART_SIZE)
            });
            if small {
                return Err(refuse(
                    "EntityTooSmall",
                    "a part other than the last is under 5 MiB",
                ));
            }
            // The upload was created with CRC32C: each part must name the checksum it was
            // uploaded with.
            let mut body = Vec::new();
            for part in parts {
                match upload.parts.get(&part.part_number) {
                    Some(stored)
                        if stored.e_tag == part.e_tag && part.crc32c == Some(stored.crc32c) =>
                    {
                        body.extend_from_slice(&stored.bytes)
                    }
                    _ => {
                        return Err(AwsCallError {
                            code: Some("InvalidPart".into()),
                            http_status: Some(400),
                            ..Self::missing(Op::CompleteUpload, "InvalidPart")
                        });
                    }
                }
            }
            let upload = b.uploads.remove(upload_id).expect("present");
            let e_tag = format!("\"{next}-{}\"", parts.len());
            *next += 1;
            b.objects.insert(
                key.to_owned(),
                StoredObject {
                    body,
                    options: upload.options,
                    e_tag,
                },
            );
            Ok(())
        })
    }

    async fn abort_upload(&self, key: &str, upload_id: &str) -> Result<(), AwsCallError> {
        self.begin(Op::AbortUpload, key, None).await?;
        self.with_bucket(|b, _| match b.uploads.get(upload_id) {
            Some(u) if u.key == key => {
                b.uploads.remove(upload_id);
                Ok(())
            }
            _ => Err(Self::missing(Op::AbortUpload, "NoSuchUpload")),
        })
    }

    async fn list_uploads(&self, prefix: &str) -> Result<Vec<PendingUpload>, AwsCallError> {
        self.begin(Op::ListUploads, prefix, None).await?;
        Ok(self.with_bucket(|b, _| {
            b.uploads
                .iter()
                .filter(|(_, u)| u.key.starts_with(prefix))
                .map(|(id, u)| PendingUpload {
                    key: u.key.clone(),
                    upload_id: id.clone(),
                })
                .collect()
        }))
    }

    async fn copy_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: i32,
        source_key: &str,
        source_e_tag: &str,
        (first, last): (u64, u64),
    ) -> Result<UploadedPart, AwsCallError> {
        self.begin(Op::CopyPart, key, None).await?;
        let source = self
            .with_bucket(|b, _| b.objects.get(source_key).cloned())
            .ok_or_else(|| Self::missing(Op::CopyPart, "NoSuchKey"))?;
        if source.e_tag.trim_matches('"') != source_e_tag.trim_matches('"') {
            return Err(Self::precondition_failed(Op::CopyPart));
        }
        // As S3: part numbers 1 to 10,000, and a byte range inside the source.
        let size = source.body.len() as u64;
        if !(1..=10_000).contains(&part_number) || first > last || last >= size {
            return Err(AwsCallError {
                service: "s3",
                operation: Op::CopyPart.name(),
                code: Some("InvalidArgument".to_owned()),
                message: format!(
                    "part {part_number}, bytes {first}-{last} of a {size}-byte source"
                ),
                http_status: Some(400),
                retryable: false,
            });
        }
        let bytes = Bytes::copy_from_slice(&source.body[first as usize..=last as usize]);
        self.with_bucket(|b, next| {
            let upload = b
                .uploads
                .get_mut(upload_id)
                .filter(|u| u.key == key)
                .ok_or_else(|| Self::missing(Op::CopyPart, "NoSuchUpload"))?;
            let e_tag = format!("\"part-{next}\"");
            *next += 1;
            let crc32c = Crc32c::of(&bytes);
            upload.parts.insert(
                part_number,
                StoredPart {
                    e_tag: e_tag.clone(),
                    bytes,
                    crc32c,
                },
            );
            Ok(UploadedPart {
                part_number,
                e_tag,
                crc32c: Some(crc32c),
            })
        })
    }

    async fn copy(
        &self,
        source_key: &str,
        target_key: &str,
        options: &WriteOptions,
    ) -> Result<(), AwsCallError> {
        self.begin(Op::Copy, target_key, Some(options)).await?;
        self.with_bucket(|b, next| {
            let source = b
                .objects
                .get(source_key)
                .cloned()
                .ok_or_else(|| Self::missing(Op::Copy, "NoSuchKey"))?;
            let e_tag = format!("\"{next}\"");
            *next += 1;
            // MetadataDirective COPY: the source's metadata and content type travel along.
            let options = WriteOptions {
                metadata: source.options.metadata.clone(),
                content_type: source.options.content_type.clone(),
                ..options.clone()
            };
            b.objects.insert(
                target_key.to_owned(),
                StoredObject {
                    body: source.body,
                    options,
                    e_tag,
                },
            );
            Ok(())
        })
    }

    async fn delete(&self, key: &str) -> Result<(), AwsCallError> {
        self.begin(Op::Delete, key, None).await?;
        self.with_bucket(|b, _| b.objects.remove(key));
        Ok(())
    }

    async fn settings(&self) -> BucketSettings {
        match self.begin(Op::Settings, "", None).await {
            Ok(()) => self.with_bucket(|b, _| b.settings.clone()),
            Err(_) => BucketSettings::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_credential_types::Credentials;

    use super::*;

    fn bucket() -> MemoryBucket {
        let credentials = Credentials::new("AKIAFAKE", "secret", None, None, "test");
        MemoryStorage::new().with_bucket("b", "us-east-1").open(
            SharedCredentialsProvider::new(credentials),
            "b",
            "us-east-1",
        )
    }

    fn wrong(bytes: &'static [u8]) -> Body {
        Body {
            bytes: Bytes::from_static(bytes),
            crc32c: Crc32c(Crc32c::of(bytes).0 ^ 1),
        }
    }

    #[test]
    fn crc32c_is_castagnolis() {
        // The check value of CRC-32C (iSCSI) and an empty body.
        assert_eq!(Crc32c::of(b"123456789"), Crc32c(0xE306_9283));
        assert_eq!(Crc32c::of(b""), Crc32c(0));
    }

    #[tokio::test]
    async fn a_body_that_does_not_match_its_checksum_is_refused_as_s3_does() {
        let bucket = bucket();
        let put = bucket
            .put("k", wrong(b"abc"), &WriteOptions::default())
            .await
            .unwrap_err();
        assert_eq!(
            (put.code.as_deref(), put.http_status),
            (Some("BadDigest"), Some(400))
        );
        let id = bucket
            .create_upload("k", &WriteOptions::default())
            .await
            .unwrap();
        let part = bucket
            .upload_part("k", &id, 1, wrong(b"abc"))
            .await
            .unwrap_err();
        assert_eq!(part.code.as_deref(), Some("BadDigest"));
        assert!(bucket.list_parts("k", &id).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn completing_needs_each_parts_checksum() {
        let bucket = bucket();
        let id = bucket
            .create_upload("k", &WriteOptions::default())
            .await
            .unwrap();
        let part = bucket
            .upload_part("k", &id, 1, Body::new(&b"only part"[..]))
            .await
            .unwrap();
        assert_eq!(part.crc32c, Some(Crc32c::of(b"only part")));
        assert_eq!(
            bucket.list_parts("k", &id).await.unwrap(),
            vec![part.clone()]
        );
        for crc32c in [None, Some(Crc32c(1))] {
            let named = UploadedPart {
                crc32c,
                ..part.clone()
            };
            let refused = bucket.complete_upload("k", &id, &[named]).await;
            assert_eq!(
                refused.unwrap_err().code.as_deref(),
                Some("InvalidPart"),
                "{crc32c:?}"
            );
        }
        bucket.complete_upload("k", &id, &[part]).await.unwrap();
        assert_eq!(bucket.get("k", None).await.unwrap(), b"only part");
    }
}
