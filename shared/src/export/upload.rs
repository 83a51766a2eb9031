//! The multipart writer: a ByteSink that uploads parts as they fill, a bounded number in flight.
//!
//! The writer runs on the encoder's blocking thread; an async task beside it makes the S3 calls,
//! and a blocking thread hashes the parts in order (SHA-256 is the costliest step per byte, so
//! it runs beside the writer's copying rather than after it). A full part goes to both through
//! channels, holding one of `parts_in_flight` permits until its UploadPart and its hashing are
//! done, so memory is at most `parts_in_flight` parts plus the one being filled, whatever the
//! file's size. The writer waits for a permit (back-pressure) rather than run ahead of the
//! network. An object that fits in one part is one PutObject. Every body carries its CRC32C;
//! see docs/architecture.md, "Export".
//!
//! An upload can also pause: the writer uploads what it holds as one more part (at least
//! S3's 5 MiB, so that it may stay a middle part), the upload stays open, and its
//! [`UploadState`] (upload id, parts with their checksums, size, the SHA-256 state) lets a later
//! invocation continue it with [`start_from`] ("Resuming past the deadline").

use std::future::Future;
use std::io::{self, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::runtime::Handle;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::{JoinHandle, JoinSet};

use crate::error::AwsCallError;
use crate::export::resumable_sha256::ResumableSha256;
use crate::export::sink::ByteSink;
use crate::ports::{Body, Crc32c, ObjectStore, UploadedPart, WriteOptions};

const MIB: usize = 1024 * 1024;
/// S3's smallest part (every part but the last).
pub const MIN_PART_SIZE: usize = 5 * MIB;
/// S3's largest part.
pub const MAX_PART_SIZE: usize = 5 * 1024 * MIB;
/// S3's most parts in one upload.
pub const MAX_PARTS: u32 = 10_000;
/// Parts of one size before the size doubles.
const PARTS_PER_SIZE: u32 = 1_000;

/// Attempts of one call when S3 answers a retryable error (SlowDown, a 5xx, a timeout), on top
/// of the SDK's own retries: a throttled part should not fail a whole export.
const ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadSettings {
    /// The size of the first 1,000 parts; later parts grow (see [`part_size`]).
    pub first_part_size: usize,
    /// UploadPart calls in progress at once (at least 1).
    pub parts_in_flight: usize,
}

impl Default for UploadSettings {
    fn default() -> Self {
        Self {
            first_part_size: 8 * MIB,
            parts_in_flight: 4,
        }
    }
}

/// The size of part `part_number` (1-based): `first_part_size` (kept within S3's 5 MiB–5 GiB)
/// for parts 1–1,000, doubling every 1,000 parts after, and 5 GiB for parts 9,001–10,000.
/// Small files keep small parts; 10,000 parts still hold S3's largest object (5 TiB) even from
/// 5 MiB parts, whose doubling alone would reach 4.9 TiB: the last thousand parts make up the
/// rest.
pub fn part_size(part_number: u32, first_part_size: usize) -> usize {
    let first = first_part_size.clamp(MIN_PART_SIZE, MAX_PART_SIZE);
    let doublings = part_number.saturating_sub(1) / PARTS_PER_SIZE;
    if doublings >= MAX_PARTS / PARTS_PER_SIZE - 1 {
        return MAX_PART_SIZE;
    }
    first.saturating_mul(1 << doublings).min(MAX_PART_SIZE)
}

/// What the upload wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedObject {
    pub key: String,
    pub bytes: u64,
    /// SHA-256 of the object's bytes, lowercase hex.
    pub sha256: String,
    /// Parts uploaded; 1 for an object written with one PutObject.
    pub parts: u32,
}

/// An open multipart upload between two invocations: enough to continue it, and to finish the
/// object's SHA-256 without reading back what was uploaded.
pub use crate::domain::export::task::{SavedPart, UploadCheckpoint as UploadState};

fn next_part(state: &UploadState) -> u32 {
    state.parts.last().map_or(1, |p| p.number + 1)
}

/// How an upload ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadOutcome {
    Completed(UploadedObject),
    /// Left open at a part boundary, to be continued.
    Paused(UploadState),
}

/// Lets the code above the writer pause at a part boundary: [`PauseControl::hold`] stops the
/// writer from handing over full parts, so what it holds grows until
/// [`PauseControl::can_pause`]; then finishing the byte stack with `pause` uploads it as the
/// last part so far.
#[derive(Debug, Clone, Default)]
pub struct PauseControl(Arc<PauseShared>);

#[derive(Debug, Default)]
struct PauseShared {
    hold: AtomicBool,
    buffered: AtomicUsize,
}

impl PauseControl {
    pub fn hold(&self) {
        self.0.hold.store(true, Ordering::SeqCst);
    }

    /// The writer holds enough for a middle part.
    pub fn can_pause(&self) -> bool {
        self.0.buffered.load(Ordering::SeqCst) >= MIN_PART_SIZE
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// S3 refused a call (after retries when the error was retryable); the upload was aborted.
    #[error(transparent)]
    Aws(#[from] AwsCallError),
    #[error("the file's writer was dropped before it was finished; the upload was aborted")]
    Abandoned,
    #[error(
        "the file is larger than S3's largest object ({MAX_PARTS} parts, 5 TiB); export it as several files"
    )]
    TooLarge,
    /// The upload task panicked or its runtime shut down; an open upload may be left for the
    /// sweep of abandoned uploads.
    #[error("the upload task stopped: {0}")]
    Interrupted(String),
}

/// Starts the upload of `key`: bytes written to the writer (from a blocking thread, never from
/// async code: it blocks while `parts_in_flight` parts are in flight) are uploaded by a task on
/// `runtime`. Finish the writer, then await the task for the outcome. A writer dropped without
/// `finish` aborts the upload.
pub fn start<S: ObjectStore + 'static>(
    store: Arc<S>,
    key: String,
    options: WriteOptions,
    settings: UploadSettings,
    runtime: &Handle,
) -> (MultipartWriter, UploadTask) {
    start_from(store, key, options, settings, runtime, None)
}

/// [`start`], or with `resume` the continuation of a paused upload: the writer's first byte
/// follows the last uploaded one.
pub fn start_from<S: ObjectStore + 'static>(
    store: Arc<S>,
    key: String,
    options: WriteOptions,
    settings: UploadSettings,
    runtime: &Handle,
    resume: Option<UploadState>,
) -> (MultipartWriter, UploadTask) {
    let parts_in_flight = settings.parts_in_flight.max(1);
    let permits = Arc::new(Semaphore::new(parts_in_flight));
    // Every part in the channel holds a permit, so it never fills: room for them all and the
    // closing message.
    let (handoff, received) = mpsc::channel(parts_in_flight + 1);
    let (to_hasher, hashed) = std::sync::mpsc::channel::<(Bytes, Permit)>();
    let (first_part, bytes, mut sha256, upload_id, uploaded) = match resume {
        None => (1, 0, ResumableSha256::default(), None, Vec::new()),
        Some(state) => (
            next_part(&state),
            state.bytes,
            // The engine checks a checkpoint's hash state before it resumes from it.
            ResumableSha256::from_state(&state.sha256).unwrap_or_default(),
            Some(state.upload_id.clone()),
            state
                .parts
                .iter()
                .map(|p| UploadedPart {
                    part_number: i32::try_from(p.number).unwrap_or(i32::MAX),
                    e_tag: p.etag.clone(),
                    crc32c: p.crc32c.map(Crc32c),
                })
                .collect(),
        ),
    };
    let sha256 = runtime.spawn_blocking(move || {
        for (bytes, _permit) in hashed {
            sha256.update(&bytes);
        }
        sha256
    });
    let upload = Upload {
        store,
        key: key.clone(),
        options,
        upload_id,
        in_flight: JoinSet::new(),
        uploaded,
    };
    let handle = runtime.spawn(upload.run(received, sha256, permits.clone()));
    let first_part_size = settings.first_part_size.clamp(MIN_PART_SIZE, MAX_PART_SIZE);
    let writer = MultipartWriter {
        key,
        runtime: runtime.clone(),
        first_part_size,
        buffer: Vec::with_capacity(first_part_size),
        part_number: first_part,
        bytes,
        permits,
        handoff,
        to_hasher: Some(to_hasher),
        pause: PauseControl::default(),
    };
    (writer, UploadTask { handle })
}

/// A part's claim on memory, shared by its upload and its hashing: freed when both are done.
type Permit = Arc<OwnedSemaphorePermit>;

/// What the writer hands the upload task.
enum Handoff {
    Part {
        number: u32,
        body: Body,
        permit: Permit,
    },
    /// The last part (possibly empty when it is the only one) and the file's size.
    Last {
        number: u32,
        body: Body,
        permit: Permit,
        bytes: u64,
    },
    /// The last part before a pause (at least [`MIN_PART_SIZE`]) and the size so far.
    Pause {
        number: u32,
        body: Body,
        permit: Permit,
        bytes: u64,
    },
    TooLarge,
}

/// The bottom of an export file's byte stack (see [`start`]).
pub struct MultipartWriter {
    key: String,
    runtime: Handle,
    first_part_size: usize,
    /// The part being filled: `part_number`'s.
    buffer: Vec<u8>,
    part_number: u32,
    bytes: u64,
    /// One per part that may be held at once; the upload task closes them when it fails.
    permits: Arc<Semaphore>,
    handoff: mpsc::Sender<Handoff>,
    /// Dropped by `finish`, which ends the hashing.
    to_hasher: Option<std::sync::mpsc::Sender<(Bytes, Permit)>>,
    pause: PauseControl,
}

impl MultipartWriter {
    pub fn pause_control(&self) -> PauseControl {
        self.pause.clone()
    }

    /// The error of every write after the upload failed; the task has the cause.
    fn failed(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::BrokenPipe,
            format!(
                "the upload of {} failed; its upload task has the error",
                self.key
            ),
        )
    }

    /// A permit for one more part in memory, waiting while `parts_in_flight` are taken.
    fn permit(&self) -> io::Result<Permit> {
        self.runtime
            .block_on(self.permits.clone().acquire_owned())
            .map(Arc::new)
            .map_err(|_closed| self.failed())
    }

    /// The buffer as a part's body, also sent to be hashed.
    fn take_part(&mut self, permit: &Permit, next_size: usize) -> io::Result<Body> {
        let bytes = std::mem::replace(&mut self.buffer, Vec::with_capacity(next_size));
        let body = Body::new(bytes);
        self.to_hasher
            .as_ref()
            .and_then(|hasher| hasher.send((body.bytes.clone(), permit.clone())).ok())
            .ok_or_else(|| self.failed())?;
        Ok(body)
    }

    /// Hands the full buffer over as a part and starts the next one.
    fn hand_over(&mut self) -> io::Result<()> {
        if self.part_number == MAX_PARTS {
            // Tell the task why, so that it aborts with the reason rather than "abandoned".
            let _ = self.handoff.blocking_send(Handoff::TooLarge);
            return Err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                UploadError::TooLarge.to_string(),
            ));
        }
        let permit = self.permit()?;
        let body = self.take_part(
            &permit,
            part_size(self.part_number + 1, self.first_part_size),
        )?;
        let part = Handoff::Part {
            number: self.part_number,
            body,
            permit,
        };
        self.handoff
            .blocking_send(part)
            .map_err(|_closed| self.failed())?;
        self.part_number += 1;
        Ok(())
    }
}

impl Write for MultipartWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.permits.is_closed() {
            return Err(self.failed());
        }
        let mut rest = buf;
        while !rest.is_empty() {
            let held = self.pause.0.hold.load(Ordering::Relaxed);
            // While held (a pause is coming) the part grows past its size, within S3's.
            let size = if held {
                MAX_PART_SIZE
            } else {
                part_size(self.part_number, self.first_part_size)
            };
            // A full part goes only once more bytes come, so that a file of exactly one
            // part is still one PutObject and a last part is never empty.
            if self.buffer.len() >= size {
                self.hand_over()?;
                continue;
            }
            let (taken, left) = rest.split_at((size - self.buffer.len()).min(rest.len()));
            self.buffer.extend_from_slice(taken);
            self.bytes += taken.len() as u64;
            rest = left;
        }
        self.pause
            .0
            .buffered
            .store(self.buffer.len(), Ordering::Relaxed);
        Ok(buf.len())
    }

    /// Parts go when they are full; there is nothing to flush before.
    fn flush(&mut self) -> io::Result<()> {
        if self.permits.is_closed() {
            return Err(self.failed());
        }
        Ok(())
    }
}

impl ByteSink for MultipartWriter {
    /// Hands the last part over; the upload task completes the object (await it for the
    /// outcome).
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        if self.permits.is_closed() {
            return Err(self.failed());
        }
        let permit = self.permit()?;
        let body = self.take_part(&permit, 0)?;
        // The hashing ends with this part.
        self.to_hasher = None;
        let last = Handoff::Last {
            number: self.part_number,
            body,
            permit,
            bytes: self.bytes,
        };
        self.handoff
            .blocking_send(last)
            .map_err(|_closed| self.failed())
    }

    /// Uploads what the writer holds as one more part and leaves the upload open; the upload
    /// task's outcome is [`UploadOutcome::Paused`]. Refused below S3's smallest middle part.
    fn pause(mut self: Box<Self>) -> io::Result<()> {
        if self.permits.is_closed() {
            return Err(self.failed());
        }
        if self.buffer.len() < MIN_PART_SIZE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a pause needs at least {MIN_PART_SIZE} bytes held, not {}",
                    self.buffer.len()
                ),
            ));
        }
        let permit = self.permit()?;
        let body = self.take_part(&permit, 0)?;
        self.to_hasher = None;
        let pause = Handoff::Pause {
            number: self.part_number,
            body,
            permit,
            bytes: self.bytes,
        };
        self.handoff
            .blocking_send(pause)
            .map_err(|_closed| self.failed())
    }
}

#[cfg(test)]
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut text, b| {
        let _ = write!(text, "{b:02x}");
        text
    })
}

/// The upload's outcome: await it after finishing the writer (or [`UploadTask::outcome`]
/// after finishing or pausing it).
pub struct UploadTask {
    handle: JoinHandle<Result<UploadOutcome, UploadError>>,
}

impl UploadTask {
    pub async fn outcome(self) -> Result<UploadOutcome, UploadError> {
        self.handle
            .await
            .unwrap_or_else(|e| Err(UploadError::Interrupted(e.to_string())))
    }
}

impl Future for UploadTask {
    type Output = Result<UploadedObject, UploadError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.handle).poll(cx).map(|joined| {
            match joined.unwrap_or_else(|e| Err(UploadError::Interrupted(e.to_string())))? {
                UploadOutcome::Completed(object) => Ok(object),
                UploadOutcome::Paused(_) => Err(UploadError::Interrupted(
                    "the upload paused; await its outcome() instead".into(),
                )),
            }
        })
    }
}

/// The task's side of one upload.
struct Upload<S> {
    store: Arc<S>,
    key: String,
    options: WriteOptions,
    /// Set once the first part needs a multipart upload.
    upload_id: Option<String>,
    in_flight: JoinSet<Result<UploadedPart, AwsCallError>>,
    uploaded: Vec<UploadedPart>,
}

impl<S: ObjectStore + 'static> Upload<S> {
    async fn run(
        mut self,
        mut handoff: mpsc::Receiver<Handoff>,
        sha256: JoinHandle<ResumableSha256>,
        permits: Arc<Semaphore>,
    ) -> Result<UploadOutcome, UploadError> {
        let outcome = self.drive(&mut handoff, sha256).await;
        if outcome.is_err() {
            // The writer's next write, finish or wait for a permit fails at once.
            permits.close();
            handoff.close();
            self.abort().await;
        }
        outcome
    }

    async fn drive(
        &mut self,
        handoff: &mut mpsc::Receiver<Handoff>,
        sha256: JoinHandle<ResumableSha256>,
    ) -> Result<UploadOutcome, UploadError> {
        loop {
            tokio::select! {
                // A failed part ends the upload at once, even while the writer fills the next.
                Some(joined) = self.in_flight.join_next(), if !self.in_flight.is_empty() => {
                    self.uploaded.push(part_outcome(joined)?);
                }
                message = handoff.recv() => match message {
                    None => return Err(UploadError::Abandoned),
                    Some(Handoff::TooLarge) => return Err(UploadError::TooLarge),
                    Some(Handoff::Part { number, body, permit }) => {
                        self.send_part(number, body, permit).await?;
                    }
                    Some(Handoff::Last { number, body, permit, bytes }) => {
                        let parts = self.complete(number, body, permit).await?;
                        let sha256 = sha256
                            .await
                            .map_err(|e| UploadError::Interrupted(e.to_string()))?;
                        return Ok(UploadOutcome::Completed(UploadedObject {
                            key: self.key.clone(),
                            bytes,
                            sha256: sha256.finish_hex(),
                            parts,
                        }));
                    }
                    Some(Handoff::Pause { number, body, permit, bytes }) => {
                        self.send_part(number, body, permit).await?;
                        while let Some(joined) = self.in_flight.join_next().await {
                            self.uploaded.push(part_outcome(joined)?);
                        }
                        self.uploaded.sort_by_key(|p| p.part_number);
                        let sha256 = sha256
                            .await
                            .map_err(|e| UploadError::Interrupted(e.to_string()))?;
                        let state = UploadState {
                            // Kept open on purpose: not aborted when this task ends.
                            upload_id: self.upload_id.take().unwrap_or_default(),
                            parts: self
                                .uploaded
                                .iter()
                                .map(|p| SavedPart {
                                    number: u32::try_from(p.part_number).unwrap_or_default(),
                                    etag: p.e_tag.clone(),
                                    crc32c: p.crc32c.map(|c| c.0),
                                })
                                .collect(),
                            bytes,
                            sha256: sha256.to_state(),
                        };
                        return Ok(UploadOutcome::Paused(state));
                    }
                },
            }
        }
    }

    /// Starts UploadPart of one part (creating the upload first), holding its permit until the
    /// call ends.
    async fn send_part(
        &mut self,
        number: u32,
        body: Body,
        permit: Permit,
    ) -> Result<(), UploadError> {
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let id = retried(|| self.store.create_upload(&self.key, &self.options)).await?;
                tracing::debug!(key = %self.key, upload_id = %id, "multipart upload created");
                self.upload_id = Some(id.clone());
                id
            }
        };
        let store = self.store.clone();
        let key = self.key.clone();
        // Part numbers stop at MAX_PARTS (checked by the writer), well within i32.
        let part_number = i32::try_from(number).map_err(|_| UploadError::TooLarge)?;
        self.in_flight.spawn(async move {
            let uploaded =
                retried(|| store.upload_part(&key, &upload_id, part_number, body.clone())).await;
            drop(permit);
            uploaded
        });
        Ok(())
    }

    /// The last part: one PutObject when it is the only one, else its UploadPart, the others'
    /// ends and CompleteMultipartUpload. The number of parts.
    async fn complete(
        &mut self,
        number: u32,
        body: Body,
        permit: Permit,
    ) -> Result<u32, UploadError> {
        if self.upload_id.is_none() {
            retried(|| self.store.put(&self.key, body.clone(), &self.options)).await?;
            drop(permit);
            return Ok(1);
        }
        // A continued upload whose pause fell on its last byte has no last part to send.
        let nothing_after_a_pause = body.bytes.is_empty() && number > 1;
        if nothing_after_a_pause {
            drop(permit);
        } else {
            self.send_part(number, body, permit).await?;
        }
        while let Some(joined) = self.in_flight.join_next().await {
            self.uploaded.push(part_outcome(joined)?);
        }
        self.uploaded.sort_by_key(|p| p.part_number);
        let upload_id = self.upload_id.clone().unwrap_or_default();
        retried(|| {
            self.store
                .complete_upload(&self.key, &upload_id, &self.uploaded)
        })
        .await?;
        self.upload_id = None;
        Ok(self.uploaded.len() as u32)
    }

    /// Stops the parts in flight, then aborts the upload, so that no part lands after the abort
    /// and nothing is left open (and billed) in the customer's bucket.
    async fn abort(&mut self) {
        self.in_flight.shutdown().await;
        let Some(upload_id) = self.upload_id.take() else {
            return;
        };
        match retried(|| self.store.abort_upload(&self.key, &upload_id)).await {
            Ok(()) => tracing::debug!(key = %self.key, %upload_id, "multipart upload aborted"),
            // The sweep of abandoned uploads (ObjectStore::list_uploads) removes it later.
            Err(e) => tracing::warn!(
                key = %self.key, %upload_id, error = %e,
                "the multipart upload could not be aborted"
            ),
        }
    }
}

fn part_outcome(
    joined: Result<Result<UploadedPart, AwsCallError>, tokio::task::JoinError>,
) -> Result<UploadedPart, UploadError> {
    joined
        .map_err(|e| UploadError::Interrupted(e.to_string()))?
        .map_err(UploadError::Aws)
}

/// `call`, again after a growing, jittered pause while S3 answers a retryable error, up to
/// [`ATTEMPTS`] times.
async fn retried<T, F, Fut>(mut call: F) -> Result<T, AwsCallError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AwsCallError>>,
{
    let mut attempt = 1;
    loop {
        match call().await {
            Err(e) if e.retryable && attempt < ATTEMPTS => {
                let backoff = FIRST_BACKOFF * 2u32.pow(attempt - 1);
                // Half fixed, half random: parts throttled together do not retry together.
                let jitter = backoff.mul_f64(rand::random::<f64>() / 2.0);
                let pause = backoff / 2 + jitter;
                tracing::warn!(error = %e, attempt, ?pause, "retrying");
                tokio::time::sleep(pause).await;
                attempt += 1;
            }
            outcome => return outcome,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use aws_credential_types::Credentials;
    use aws_credential_types::provider::SharedCredentialsProvider;
    use sha2::{Digest, Sha256};

    use super::*;
    use crate::fakes::storage::{Fault, MemoryBucket, MemoryStorage, Op};
    use crate::ports::{Crc32c, CustomerStorage};

    const BUCKET: &str = "acme-exports";
    const KEY: &str = "exports/orders/run-1/orders-0001.csv.gz";
    const GIB: usize = 1024 * MIB;

    fn storage() -> (MemoryStorage, Arc<MemoryBucket>) {
        let storage = MemoryStorage::new().with_bucket(BUCKET, "eu-west-1");
        let credentials = Credentials::new("AKIAEXPORT", "secret", None, None, "test");
        let bucket = storage.open(
            SharedCredentialsProvider::new(credentials),
            BUCKET,
            "eu-west-1",
        );
        (storage, Arc::new(bucket))
    }

    fn options() -> WriteOptions {
        WriteOptions {
            content_type: Some("application/gzip".into()),
            ..WriteOptions::default()
        }
    }

    fn settings(parts_in_flight: usize) -> UploadSettings {
        UploadSettings {
            first_part_size: MIN_PART_SIZE,
            parts_in_flight,
        }
    }

    /// Bytes that differ from part to part (xorshift), so a part out of order shows.
    fn data(len: usize) -> Arc<Vec<u8>> {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let bytes = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        Arc::new(bytes)
    }

    fn sha256_hex(bytes: &[u8]) -> String {
        hex(&Sha256::digest(bytes))
    }

    fn ops(storage: &MemoryStorage) -> Vec<Op> {
        storage.calls().iter().map(|c| c.op).collect()
    }

    /// How a test's writer thread ends.
    #[derive(Clone, Copy)]
    enum End {
        Finish,
        /// Dropped without `finish`, as when the encoder above it fails.
        Drop,
    }

    /// Writes `data` in `chunk`-byte writes from a blocking thread, as an encoder does, then
    /// ends the writer.
    async fn write(
        writer: MultipartWriter,
        data: Arc<Vec<u8>>,
        chunk: usize,
        end: End,
    ) -> io::Result<()> {
        on_blocking_thread(move || {
            let mut writer = Box::new(writer);
            for piece in data.chunks(chunk) {
                writer.write_all(piece)?;
            }
            match end {
                End::Finish => writer.finish(),
                End::Drop => Ok(()),
            }
        })
        .await
    }

    /// Runs `work` on a blocking thread. Paused time stands still while a blocking task runs,
    /// so the paused tests (on the current-thread runtime, which paused time needs) move it on
    /// by hand until the thread is done. Time then runs far ahead of the thread, so the tests
    /// of concurrency run in real time on the multi-thread runtime.
    async fn on_blocking_thread<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
        let paused =
            Handle::current().runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread;
        let thread = tokio::task::spawn_blocking(work);
        while paused && !thread.is_finished() {
            tokio::time::advance(Duration::from_millis(10)).await;
        }
        thread.await.expect("the writer thread does not panic")
    }

    fn upload(
        bucket: &Arc<MemoryBucket>,
        settings: UploadSettings,
    ) -> (MultipartWriter, UploadTask) {
        start(
            bucket.clone(),
            KEY.into(),
            options(),
            settings,
            &Handle::current(),
        )
    }

    /// What must hold after any failed upload: no upload left open, no object.
    async fn assert_nothing_left(storage: &MemoryStorage, bucket: &MemoryBucket) {
        assert!(bucket.list_uploads("").await.unwrap().is_empty());
        assert!(
            storage.keys(BUCKET).is_empty(),
            "{:?}",
            storage.keys(BUCKET)
        );
    }

    #[test]
    fn part_sizes_start_at_the_first_size_and_grow_within_s3s_limits() {
        let cases = [
            // (part number, first part size, size)
            (1, 8 * MIB, 8 * MIB),
            (1_000, 8 * MIB, 8 * MIB),
            (1_001, 8 * MIB, 16 * MIB),
            (2_000, 8 * MIB, 16 * MIB),
            (2_001, 8 * MIB, 32 * MIB),
            (8_001, 8 * MIB, 2 * GIB),
            (9_000, 8 * MIB, 2 * GIB),
            (9_001, 8 * MIB, 5 * GIB),
            (10_000, 8 * MIB, 5 * GIB),
            // No part 0: read as the first.
            (0, 8 * MIB, 8 * MIB),
            // The first size is kept within S3's limits.
            (1, 1, 5 * MIB),
            (1, 0, 5 * MIB),
            (1, 6 * GIB, 5 * GIB),
            (1_001, 3 * GIB, 5 * GIB),
            (5_001, 1_000 * MIB, 5 * GIB),
        ];
        for (part, first, size) in cases {
            assert_eq!(part_size(part, first), size, "part {part}, first {first}");
        }
    }

    #[test]
    fn ten_thousand_parts_hold_s3s_largest_object_from_any_first_size() {
        const FIVE_TIB: u64 = 5 * 1024 * 1024 * 1024 * 1024;
        for first in [
            0,
            MIN_PART_SIZE,
            8 * MIB,
            64 * MIB,
            1_000 * MIB,
            MAX_PART_SIZE,
        ] {
            let sizes: Vec<usize> = (1..=MAX_PARTS).map(|n| part_size(n, first)).collect();
            let total: u64 = sizes.iter().map(|&s| s as u64).sum();
            assert!(total >= FIVE_TIB, "first {first}: {total}");
            assert!(
                sizes
                    .iter()
                    .all(|&s| (MIN_PART_SIZE..=MAX_PART_SIZE).contains(&s)),
                "first {first}"
            );
            assert!(sizes.windows(2).all(|w| w[0] <= w[1]), "first {first}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_object_that_fits_in_one_part_is_one_put() {
        // (size, bytes per write): empty, tiny in 1-byte writes, exactly one part.
        let cases = [
            (0, 1),
            (1, 1),
            (1_000, 1),
            (4_099, 7),
            (MIN_PART_SIZE, 65_536),
        ];
        for (size, chunk) in cases {
            let (storage, bucket) = storage();
            let data = data(size);
            let (writer, task) = upload(&bucket, settings(4));
            write(writer, data.clone(), chunk, End::Finish)
                .await
                .unwrap();
            let uploaded = task.await.unwrap();

            assert_eq!(
                uploaded,
                UploadedObject {
                    key: KEY.into(),
                    bytes: size as u64,
                    sha256: sha256_hex(&data),
                    parts: 1,
                },
                "{size}"
            );
            assert_eq!(ops(&storage), [Op::Put], "{size}");
            let put = &storage.calls()[0];
            assert_eq!(put.body, Some((Crc32c::of(&data), size)), "{size}");
            assert_eq!(put.options, Some(options()), "{size}");
            let object = &storage.bucket(BUCKET).unwrap().objects[KEY];
            assert_eq!(object.body, *data, "{size}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_sha256_of_an_empty_file_is_the_well_known_one() {
        let (_storage, bucket) = storage();
        let (writer, task) = upload(&bucket, settings(4));
        write(writer, data(0), 1, End::Finish).await.unwrap();
        assert_eq!(
            task.await.unwrap().sha256,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_three_part_object_is_uploaded_in_parts_in_order_with_their_checksums() {
        let (storage, bucket) = storage();
        let size = 2 * MIN_PART_SIZE + 1_234;
        let data = data(size);
        let (writer, task) = upload(&bucket, settings(4));
        // Writes of an odd size, so that parts fill in the middle of a write.
        write(writer, data.clone(), 65_537, End::Finish)
            .await
            .unwrap();
        let uploaded = task.await.unwrap();

        assert_eq!(
            uploaded,
            UploadedObject {
                key: KEY.into(),
                bytes: size as u64,
                sha256: sha256_hex(&data),
                parts: 3,
            }
        );
        assert_eq!(
            ops(&storage),
            [
                Op::CreateUpload,
                Op::UploadPart,
                Op::UploadPart,
                Op::UploadPart,
                Op::CompleteUpload
            ]
        );
        let create = &storage.calls()[0];
        assert_eq!(create.options, Some(options()));
        // Every part was sent with its CRC32C (the fake refuses a wrong one).
        let mut sent: Vec<(Crc32c, usize)> = storage
            .calls()
            .iter()
            .filter(|c| c.op == Op::UploadPart)
            .map(|c| c.body.expect("a part is sent with its checksum"))
            .collect();
        let mut expected: Vec<(Crc32c, usize)> = data
            .chunks(MIN_PART_SIZE)
            .map(|part| (Crc32c::of(part), part.len()))
            .collect();
        sent.sort_by_key(|&(crc, len)| (len, crc.0));
        expected.sort_by_key(|&(crc, len)| (len, crc.0));
        assert_eq!(sent, expected);
        // The parts were completed in order: the object is the bytes written.
        let object = &storage.bucket(BUCKET).unwrap().objects[KEY];
        assert!(
            object.body == *data,
            "the object differs from what was written"
        );
        assert_eq!(object.options, options());
        assert!(bucket.list_uploads("").await.unwrap().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_more_than_parts_in_flight_parts_are_uploaded_at_once() {
        for parts_in_flight in [1, 3, 4] {
            let (storage, bucket) = storage();
            // Each UploadPart takes a while, so parts the writer hands over pile up in flight.
            storage.delay(Op::UploadPart, Duration::from_millis(300));
            let parts = 2 * parts_in_flight + 1;
            let data = data((parts - 1) * MIN_PART_SIZE + 1);
            let (writer, task) = upload(&bucket, settings(parts_in_flight));
            write(writer, data.clone(), 1 << 20, End::Finish)
                .await
                .unwrap();
            let uploaded = task.await.unwrap();

            assert_eq!(uploaded.parts as usize, parts);
            assert_eq!(
                storage.max_parts_in_flight(),
                parts_in_flight,
                "{parts_in_flight} in flight"
            );
            let object = &storage.bucket(BUCKET).unwrap().objects[KEY];
            assert!(object.body == *data, "{parts_in_flight} in flight");
        }
    }

    /// Writes `data` with the writer held from the start, then pauses (or, when the writer
    /// refuses, reports the refusal).
    async fn write_and_pause(writer: MultipartWriter, data: Arc<Vec<u8>>) -> io::Result<()> {
        on_blocking_thread(move || {
            let control = writer.pause_control();
            control.hold();
            let mut writer = Box::new(writer);
            for piece in data.chunks(1 << 20) {
                writer.write_all(piece)?;
            }
            assert_eq!(control.can_pause(), data.len() >= MIN_PART_SIZE);
            writer.pause()
        })
        .await
    }

    #[tokio::test(start_paused = true)]
    async fn a_paused_upload_continued_twice_is_the_same_object_as_one_written_at_once() {
        // Held writers let the part grow past the part size (9 MiB > 5 MiB) until the pause.
        let (storage, bucket) = storage();
        let whole = data(9 * MIB + 6 * MIB + 1_234);
        let pieces = [
            &whole[..9 * MIB],
            &whole[9 * MIB..15 * MIB],
            &whole[15 * MIB..],
        ];
        let mut state = None;
        for (i, piece) in pieces.iter().enumerate() {
            let (writer, task) = start_from(
                bucket.clone(),
                KEY.into(),
                options(),
                settings(2),
                &Handle::current(),
                state.take(),
            );
            let piece = Arc::new(piece.to_vec());
            if i < 2 {
                write_and_pause(writer, piece).await.unwrap();
                let UploadOutcome::Paused(paused) = task.outcome().await.unwrap() else {
                    panic!("piece {i} paused");
                };
                assert_eq!(paused.parts.len(), i + 1);
                assert_eq!(paused.parts[i].number, i as u32 + 1);
                assert!(paused.parts.iter().all(|p| p.crc32c.is_some()));
                // The upload stays open between invocations, and its state survives JSON.
                assert_eq!(bucket.list_uploads("").await.unwrap().len(), 1);
                let json = serde_json::to_string(&paused).unwrap();
                state = Some(serde_json::from_str(&json).unwrap());
            } else {
                write(writer, piece, 65_536, End::Finish).await.unwrap();
                let object = task.await.unwrap();
                assert_eq!(
                    object,
                    UploadedObject {
                        key: KEY.into(),
                        bytes: whole.len() as u64,
                        sha256: sha256_hex(&whole),
                        parts: 3,
                    }
                );
            }
        }
        assert_eq!(storage.bucket(BUCKET).unwrap().objects[KEY].body, *whole);
        assert!(bucket.list_uploads("").await.unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_continuation_with_nothing_left_to_write_completes_the_paused_parts() {
        let (storage, bucket) = storage();
        let whole = data(6 * MIB);
        let (writer, task) = upload(&bucket, settings(4));
        write_and_pause(writer, whole.clone()).await.unwrap();
        let UploadOutcome::Paused(paused) = task.outcome().await.unwrap() else {
            panic!("paused");
        };
        let (writer, task) = start_from(
            bucket.clone(),
            KEY.into(),
            options(),
            settings(4),
            &Handle::current(),
            Some(paused),
        );
        write(writer, Arc::new(Vec::new()), 1, End::Finish)
            .await
            .unwrap();
        let object = task.await.unwrap();
        assert_eq!((object.bytes, object.parts), (6 * MIB as u64, 1));
        assert_eq!(object.sha256, sha256_hex(&whole));
        assert_eq!(storage.bucket(BUCKET).unwrap().objects[KEY].body, *whole);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_below_s3s_smallest_middle_part_is_refused_and_the_upload_aborted() {
        let (storage, bucket) = storage();
        let (writer, task) = upload(&bucket, settings(4));
        let error = write_and_pause(writer, data(MIN_PART_SIZE - 1))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        assert!(matches!(task.outcome().await, Err(UploadError::Abandoned)));
        assert_nothing_left(&storage, &bucket).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_part_throttled_once_is_retried_and_the_upload_completes() {
        let (storage, bucket) = storage();
        storage.fail_times(Op::UploadPart, "", Fault::SlowDown, 1);
        let data = data(2 * MIN_PART_SIZE + 1);
        let (writer, task) = upload(&bucket, settings(2));
        write(writer, data.clone(), 1 << 20, End::Finish)
            .await
            .unwrap();
        let uploaded = task.await.unwrap();

        assert_eq!(uploaded.parts, 3);
        let attempts = ops(&storage)
            .iter()
            .filter(|&&op| op == Op::UploadPart)
            .count();
        assert_eq!(attempts, 4, "three parts, one of them twice");
        let object = &storage.bucket(BUCKET).unwrap().objects[KEY];
        assert!(object.body == *data);
        assert!(bucket.list_uploads("").await.unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttle_that_stays_fails_the_upload_after_a_few_attempts_and_aborts_it() {
        let (storage, bucket) = storage();
        storage.fail(Op::UploadPart, "", Fault::SlowDown);
        let (writer, task) = upload(&bucket, settings(1));
        let written = write(writer, data(3 * MIN_PART_SIZE), 1 << 20, End::Finish).await;
        let error = task.await.unwrap_err();

        assert!(written.is_err(), "the writer sees the failure");
        let UploadError::Aws(e) = &error else {
            panic!("{error:?}")
        };
        assert_eq!(
            (e.operation, e.code.as_deref()),
            ("UploadPart", Some("SlowDown"))
        );
        let calls = ops(&storage);
        let attempts = calls.iter().filter(|&&op| op == Op::UploadPart).count();
        assert_eq!(attempts, ATTEMPTS as usize);
        assert_eq!(calls.last(), Some(&Op::AbortUpload));
        assert_nothing_left(&storage, &bucket).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_part_refused_fails_the_upload_with_s3s_code_aborts_it_and_stops_the_writer() {
        let (storage, bucket) = storage();
        // Part 1 lands, part 2 is refused.
        storage.fail_after(Op::UploadPart, "", Fault::AccessDenied, 1);
        let (writer, task) = upload(&bucket, settings(1));
        let data = data(4 * MIN_PART_SIZE);
        let written = on_blocking_thread(move || {
            let mut writer = Box::new(writer);
            let failed = data
                .chunks(1 << 20)
                .map(|piece| writer.write_all(piece))
                .find_map(Result::err)
                .expect("a write fails once the upload has");
            // Later writes fail at once, and so does finish.
            let again = writer.write(b"more").unwrap_err();
            let finished = writer.finish().unwrap_err();
            (failed, again, finished)
        })
        .await;
        let error = task.await.unwrap_err();

        let UploadError::Aws(e) = &error else {
            panic!("{error:?}")
        };
        assert_eq!(
            (e.operation, e.code.as_deref(), e.http_status),
            ("UploadPart", Some("AccessDenied"), Some(403))
        );
        assert!(error.to_string().contains("AccessDenied"), "{error}");
        for e in [written.0, written.1, written.2] {
            assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
            assert!(e.to_string().contains(KEY), "{e}");
        }
        let calls = ops(&storage);
        let attempts = calls.iter().filter(|&&op| op == Op::UploadPart).count();
        assert_eq!(attempts, 2, "a denial is not retried: {calls:?}");
        assert_eq!(calls.last(), Some(&Op::AbortUpload));
        assert_nothing_left(&storage, &bucket).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_create_or_complete_fails_the_upload_and_leaves_nothing_open() {
        // (refused call, calls made)
        let cases = [
            (Op::CreateUpload, vec![Op::CreateUpload]),
            (
                Op::CompleteUpload,
                vec![
                    Op::CreateUpload,
                    Op::UploadPart,
                    Op::UploadPart,
                    Op::CompleteUpload,
                    Op::AbortUpload,
                ],
            ),
            (Op::Put, vec![Op::Put]),
        ];
        for (refused, calls) in cases {
            let (storage, bucket) = storage();
            storage.fail(refused, "", Fault::AccessDenied);
            let size = if refused == Op::Put {
                10
            } else {
                MIN_PART_SIZE + 1
            };
            let (writer, task) = upload(&bucket, settings(4));
            // The writer may finish before the task fails: the task has the outcome.
            let _ = write(writer, data(size), 1 << 20, End::Finish).await;
            let error = task.await.unwrap_err();

            assert!(
                matches!(&error, UploadError::Aws(e) if e.code.as_deref() == Some("AccessDenied")),
                "{refused:?}: {error:?}"
            );
            assert_eq!(ops(&storage), calls, "{refused:?}");
            assert_nothing_left(&storage, &bucket).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_writer_dropped_without_finish_aborts_the_upload() {
        // (bytes written before the drop, whether an upload was started)
        let cases = [
            (0, false),
            (MIN_PART_SIZE, false),
            (2 * MIN_PART_SIZE + 10, true),
        ];
        for (size, started) in cases {
            let (storage, bucket) = storage();
            let (writer, task) = upload(&bucket, settings(4));
            write(writer, data(size), 1 << 20, End::Drop).await.unwrap();
            let error = task.await.unwrap_err();

            assert!(matches!(error, UploadError::Abandoned), "{size}: {error:?}");
            let calls = ops(&storage);
            if started {
                // Parts not yet sent when the drop arrives are not sent at all.
                assert_eq!(calls.first(), Some(&Op::CreateUpload), "{size}");
                assert_eq!(calls.last(), Some(&Op::AbortUpload), "{size}");
                assert!(!calls.contains(&Op::CompleteUpload), "{size}");
            } else {
                assert_eq!(calls, [], "{size}");
            }
            assert_nothing_left(&storage, &bucket).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_writer_dropped_while_parts_are_in_flight_stops_them_and_aborts() {
        let (storage, bucket) = storage();
        // Parts that would take a minute: the abort must not wait for them.
        storage.delay(Op::UploadPart, Duration::from_secs(60));
        let (writer, task) = upload(&bucket, settings(4));
        let data = data(3 * MIN_PART_SIZE + 1);
        let started = std::time::Instant::now();
        let watched = storage.clone();
        on_blocking_thread(move || {
            let mut writer = writer;
            writer.write_all(&data).unwrap();
            while watched.max_parts_in_flight() < 3 {
                std::thread::sleep(Duration::from_millis(1));
            }
            drop(writer);
        })
        .await;
        let error = task.await.unwrap_err();

        assert!(matches!(error, UploadError::Abandoned), "{error:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(
            ops(&storage),
            [
                Op::CreateUpload,
                Op::UploadPart,
                Op::UploadPart,
                Op::UploadPart,
                Op::AbortUpload
            ]
        );
        assert_nothing_left(&storage, &bucket).await;
    }

    /// Raw multipart upload against the writer, both into the fake, 8 MiB parts, 4 in flight:
    /// wall-clock speed (the best of five rounds, as other work on the machine slows single
    /// rounds) and CPU time per GB (the process's, from /proc: steadier under load):
    /// `cargo test --release -p shared --lib export::upload::tests::throughput -- --ignored
    /// --nocapture`.
    #[test]
    #[ignore = "a measurement; run in release"]
    fn throughput() {
        const SIZE: usize = 512 * MIB;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let data = data(SIZE);
        let settings = UploadSettings::default();
        let mb_per_s =
            |started: std::time::Instant| SIZE as f64 / 1e6 / started.elapsed().as_secs_f64();
        // utime + stime of this process, in clock ticks (10 ms).
        let cpu_ticks = || -> u64 {
            let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
            let after_name = stat.rsplit(')').next().unwrap_or_default();
            let fields: Vec<&str> = after_name.split_whitespace().collect();
            fields.get(11..13).map_or(0, |times| {
                times.iter().filter_map(|t| t.parse::<u64>().ok()).sum()
            })
        };

        let raw = || {
            let (_storage, bucket) = storage();
            let started = std::time::Instant::now();
            runtime.block_on(async {
                let id = bucket.create_upload("raw", &options()).await.unwrap();
                let mut parts = Vec::new();
                let mut in_flight: JoinSet<Result<UploadedPart, AwsCallError>> = JoinSet::new();
                for (i, part) in data.chunks(settings.first_part_size).enumerate() {
                    if in_flight.len() == settings.parts_in_flight {
                        parts.push(in_flight.join_next().await.unwrap().unwrap().unwrap());
                    }
                    let (bucket, id) = (bucket.clone(), id.clone());
                    // The copy stands for the encoder's bytes arriving; Body::new for the
                    // checksum the SDK would compute.
                    let body = Body::new(part.to_vec());
                    let number = i32::try_from(i + 1).unwrap();
                    in_flight
                        .spawn(async move { bucket.upload_part("raw", &id, number, body).await });
                }
                while let Some(part) = in_flight.join_next().await {
                    parts.push(part.unwrap().unwrap());
                }
                parts.sort_by_key(|p| p.part_number);
                bucket.complete_upload("raw", &id, &parts).await.unwrap();
            });
            mb_per_s(started)
        };
        let through_writer = || {
            let (_storage, bucket) = storage();
            let started = std::time::Instant::now();
            let (writer, task) = start(bucket, KEY.into(), options(), settings, runtime.handle());
            let written = data.clone();
            runtime
                .block_on(runtime.spawn_blocking(move || {
                    let mut writer = Box::new(writer);
                    for piece in written.chunks(64 * 1024) {
                        writer.write_all(piece)?;
                    }
                    writer.finish()
                }))
                .unwrap()
                .unwrap();
            let uploaded = runtime.block_on(task).unwrap();
            assert_eq!(uploaded.bytes, SIZE as u64);
            mb_per_s(started)
        };
        let sha256_alone = || {
            let started = std::time::Instant::now();
            std::hint::black_box(Sha256::digest(&data[..]));
            mb_per_s(started)
        };
        const ROUNDS: u64 = 5;
        // (best MB/s, CPU seconds per GB)
        let measure = |round: &dyn Fn() -> f64| {
            let ticks = cpu_ticks();
            let best = (0..ROUNDS).map(|_| round()).fold(0.0, f64::max);
            let cpu_seconds = (cpu_ticks() - ticks) as f64 / 100.0;
            (best, cpu_seconds / (ROUNDS as f64 * SIZE as f64 / 1e9))
        };
        let (raw, raw_cpu) = measure(&raw);
        let (writer, writer_cpu) = measure(&through_writer);
        let (sha256, sha256_cpu) = measure(&sha256_alone);
        println!(
            "raw multipart: {raw:.0} MB/s, {raw_cpu:.2} CPU s/GB; through the writer (64 KiB writes, CRC32C, SHA-256): {writer:.0} MB/s ({:.0} %), {writer_cpu:.2} CPU s/GB; SHA-256 alone: {sha256:.0} MB/s, {sha256_cpu:.2} CPU s/GB",
            100.0 * writer / raw
        );
    }
}
