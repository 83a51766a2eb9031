//! The ingest queue, for the files the poll found: messages in the order they were sent, and
//! injectable send failures.

use std::sync::{Arc, Mutex};

use crate::domain::ingest::notification::PolledFile;
use crate::error::AwsCallError;
use crate::ports::PolledFileQueue;

/// Clones share one queue, so a test keeps a handle on the one its service sends to.
#[derive(Default, Clone)]
pub struct MemoryPolledFileQueue {
    files: Arc<Mutex<Vec<PolledFile>>>,
    failures: Arc<Mutex<Vec<AwsCallError>>>,
    /// How many of `files` a test has taken for delivery.
    delivered: Arc<Mutex<usize>>,
}

impl MemoryPolledFileQueue {
    pub fn sent(&self) -> Vec<PolledFile> {
        self.files.lock().expect("not poisoned").clone()
    }

    /// The files sent since the last call (all of them are kept in `sent`).
    pub fn take_new(&self) -> Vec<PolledFile> {
        let files = self.files.lock().expect("not poisoned");
        let mut delivered = self.delivered.lock().expect("not poisoned");
        let new = files[*delivered..].to_vec();
        *delivered = files.len();
        new
    }

    /// The next send fails with `error` (and sends nothing).
    pub fn fail_next(&self, error: AwsCallError) {
        self.failures.lock().expect("not poisoned").push(error);
    }
}

impl PolledFileQueue for MemoryPolledFileQueue {
    async fn enqueue_polled(&self, files: &[PolledFile]) -> Result<(), AwsCallError> {
        if let Some(error) = self.failures.lock().expect("not poisoned").pop() {
            return Err(error);
        }
        self.files
            .lock()
            .expect("not poisoned")
            .extend_from_slice(files);
        Ok(())
    }
}
