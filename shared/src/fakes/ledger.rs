//! In-memory ingest ledger with the adapter's version rule, a log of writes, and injectable
//! write failures.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::domain::ingest::file::{FileStatus, IngestFile};
use crate::error::{AwsCallError, StoreError};
use crate::ports::{IngestLedger, Page};

#[derive(Default)]
struct State {
    files: BTreeMap<String, IngestFile>,
    /// Every accepted write, in order.
    writes: Vec<IngestFile>,
    /// Writes refused from now on (after the given number of accepted ones).
    fail_after: Option<usize>,
}

#[derive(Default)]
pub struct MemoryLedger {
    state: Mutex<State>,
}

impl MemoryLedger {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("not poisoned")
    }

    pub fn files(&self) -> Vec<IngestFile> {
        self.state().files.values().cloned().collect()
    }

    pub fn writes(&self) -> Vec<IngestFile> {
        self.state().writes.clone()
    }

    /// After `accepted` more writes, every write fails (a crash of the invocation's writes).
    pub fn fail_writes_after(&self, accepted: usize) {
        let mut state = self.state();
        state.fail_after = Some(state.writes.len() + accepted);
    }

    pub fn heal(&self) {
        self.state().fail_after = None;
    }

    /// Replaces a record as it is (a lapsed lease, an old record).
    pub fn seed(&self, file: IngestFile) {
        self.state().files.insert(file.object_id.clone(), file);
    }
}

impl IngestLedger for MemoryLedger {
    async fn get(&self, object_id: &str) -> Result<Option<IngestFile>, StoreError> {
        Ok(self.state().files.get(object_id).cloned())
    }

    async fn put(&self, file: &IngestFile) -> Result<(), StoreError> {
        let mut state = self.state();
        if state.fail_after.is_some_and(|n| state.writes.len() >= n) {
            return Err(StoreError::Aws(AwsCallError {
                service: "dynamodb",
                operation: "PutItem",
                code: Some("InternalServerError".to_owned()),
                message: "injected fault".to_owned(),
                http_status: Some(500),
                retryable: true,
            }));
        }
        let stored = state.files.get(&file.object_id).map(|f| f.version);
        let expected = (file.version > 1).then(|| file.version - 1);
        if stored != expected {
            return Err(StoreError::Contended);
        }
        state.files.insert(file.object_id.clone(), file.clone());
        state.writes.push(file.clone());
        Ok(())
    }

    async fn list(
        &self,
        connector_id: &str,
        status: Option<FileStatus>,
        limit: u32,
        after: Option<&str>,
    ) -> Result<Page<IngestFile>, StoreError> {
        let key = |f: &IngestFile| format!("{}#{}", f.first_seen_at.to_rfc3339(), f.object_id);
        let mut files: Vec<IngestFile> = self
            .state()
            .files
            .values()
            .filter(|f| f.connector_id == connector_id)
            .filter(|f| status.is_none_or(|s| f.status == s))
            .filter(|f| after.is_none_or(|after| key(f).as_str() < after))
            .cloned()
            .collect();
        files.sort_by_key(|f| std::cmp::Reverse(key(f)));
        let next = (files.len() > limit as usize).then(|| key(&files[limit as usize - 1]));
        files.truncate(limit as usize);
        Ok(Page { items: files, next })
    }
}
