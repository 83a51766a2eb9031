//! Where a file's bytes come from while it is parsed. Parsing is blocking work on its own
//! thread, so a source is blocking too: the S3 source behind it fetches ranges on the async
//! runtime and hands them over.

use std::io::{self, Read};
use std::sync::{Arc, Mutex};

use bytes::{Buf, Bytes};
use futures::StreamExt;
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use crate::error::AwsCallError;
use crate::ports::ObjectStore;

/// A file's bytes: by range (Parquet's footer, a zip's central directory) or in one pass from
/// the start (everything else). Memory stays bounded by what a source keeps in flight, never by
/// the file's size.
pub trait Source: Send + Sync {
    /// The file's size in bytes.
    fn len(&self) -> u64;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `len` bytes from `offset` (fewer only at the end of the file).
    fn read_range(&self, offset: u64, len: u64) -> io::Result<Bytes>;

    /// A reader from byte 0 to the end.
    fn sequential(&self) -> io::Result<Box<dyn Read + Send + '_>>;
}

/// A file held in memory (tests, small files).
#[derive(Debug, Clone)]
pub struct MemorySource(pub Bytes);

impl MemorySource {
    pub fn new(bytes: impl Into<Bytes>) -> Self {
        Self(bytes.into())
    }
}

impl Source for MemorySource {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }

    fn read_range(&self, offset: u64, len: u64) -> io::Result<Bytes> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.0.len());
        let end = usize::try_from(offset.saturating_add(len))
            .unwrap_or(usize::MAX)
            .min(self.0.len());
        Ok(self.0.slice(start..end))
    }

    fn sequential(&self) -> io::Result<Box<dyn Read + Send + '_>> {
        Ok(Box::new(io::Cursor::new(self.0.clone())))
    }
}

/// Bytes per ranged GET of a sequential read, and how many are in flight: about
/// `CHUNK_BYTES × (READ_AHEAD + 2)` held at once (in flight, queued, being parsed).
pub const CHUNK_BYTES: u64 = 8 * 1024 * 1024;
pub const READ_AHEAD: usize = 2;

/// An object in the customer's bucket, read by ranges under `If-Match` of the ETag it was
/// claimed with, so that one load reads one upload's bytes. Its calls run on the runtime
/// behind `handle`; use it from a blocking thread. The first S3 failure is kept
/// ([`StoreSource::failure`]): the parser only sees an I/O error, and the caller must tell a
/// failed read (retry) from a bad file (refuse).
pub struct StoreSource<S> {
    store: Arc<S>,
    key: String,
    e_tag: String,
    len: u64,
    handle: Handle,
    failure: Arc<Mutex<Option<AwsCallError>>>,
}

impl<S: ObjectStore + 'static> StoreSource<S> {
    pub fn new(store: Arc<S>, key: &str, e_tag: &str, len: u64, handle: Handle) -> Self {
        Self {
            store,
            key: key.to_owned(),
            e_tag: e_tag.to_owned(),
            len,
            handle,
            failure: Arc::default(),
        }
    }

    /// The first S3 call that failed while reading, if any.
    pub fn failure(&self) -> Option<AwsCallError> {
        self.failure.lock().expect("not poisoned").clone()
    }

    fn failed(&self, e: AwsCallError) -> io::Error {
        let error = io::Error::other(format!("reading the object failed: {e}"));
        self.failure.lock().expect("not poisoned").get_or_insert(e);
        error
    }
}

impl<S: ObjectStore + 'static> Source for StoreSource<S> {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_range(&self, offset: u64, len: u64) -> io::Result<Bytes> {
        let end = offset.saturating_add(len).min(self.len);
        if offset >= end {
            return Ok(Bytes::new());
        }
        let fetch = self
            .store
            .get_range_if(&self.key, offset, end - 1, &self.e_tag);
        self.handle.block_on(fetch).map_err(|e| self.failed(e))
    }

    fn sequential(&self) -> io::Result<Box<dyn Read + Send + '_>> {
        let (sender, receiver) = mpsc::channel::<Result<Bytes, AwsCallError>>(1);
        let (store, key, e_tag, len) = (
            self.store.clone(),
            self.key.clone(),
            self.e_tag.clone(),
            self.len,
        );
        let reader = self.handle.spawn(async move {
            let ranges = (0..len.div_ceil(CHUNK_BYTES)).map(|i| {
                let first = i * CHUNK_BYTES;
                (first, (first + CHUNK_BYTES).min(len) - 1)
            });
            let mut chunks = futures::stream::iter(ranges)
                .map(|(first, last)| {
                    let (store, key, e_tag) = (store.clone(), key.clone(), e_tag.clone());
                    async move { store.get_range_if(&key, first, last, &e_tag).await }
                })
                .buffered(READ_AHEAD);
            while let Some(chunk) = chunks.next().await {
                let failed = chunk.is_err();
                // The reader went away (the parse stopped early): stop fetching.
                if sender.send(chunk).await.is_err() || failed {
                    break;
                }
            }
        });
        Ok(Box::new(ChunkReader {
            receiver,
            current: Bytes::new(),
            source: self,
            reader,
        }))
    }
}

/// The reading end of a sequential read: chunks in order as the fetching task hands them over.
struct ChunkReader<'a, S> {
    receiver: mpsc::Receiver<Result<Bytes, AwsCallError>>,
    current: Bytes,
    source: &'a StoreSource<S>,
    reader: tokio::task::JoinHandle<()>,
}

impl<S: ObjectStore + 'static> Read for ChunkReader<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.receiver.blocking_recv() {
                None => return Ok(0),
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(self.source.failed(e)),
            }
        }
        let n = buf.len().min(self.current.len());
        self.current.copy_to_slice(&mut buf[..n]);
        Ok(n)
    }
}

impl<S> Drop for ChunkReader<'_, S> {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_ranges_stop_at_the_end() {
        let source = MemorySource::new(&b"0123456789"[..]);
        assert_eq!(source.len(), 10);
        assert_eq!(&source.read_range(2, 3).unwrap()[..], b"234");
        assert_eq!(&source.read_range(8, 5).unwrap()[..], b"89");
        assert!(source.read_range(12, 5).unwrap().is_empty());
        let mut all = Vec::new();
        source.sequential().unwrap().read_to_end(&mut all).unwrap();
        assert_eq!(all, b"0123456789");
    }
}
