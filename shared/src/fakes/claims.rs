//! The runs table's in-flight markers in memory (see `ports::RunClaims`).

use std::sync::Mutex;

use crate::domain::export::run::Run;
use crate::error::StoreError;
use crate::ports::RunClaims;

#[derive(Default)]
pub struct MemoryRunClaims {
    released: Mutex<Vec<String>>,
}

impl MemoryRunClaims {
    /// Run ids whose markers were released, in order.
    pub fn released(&self) -> Vec<String> {
        self.released.lock().expect("not poisoned").clone()
    }
}

impl RunClaims for MemoryRunClaims {
    async fn release(&self, run: &Run) -> Result<(), StoreError> {
        self.released
            .lock()
            .expect("not poisoned")
            .push(run.run_id.clone());
        Ok(())
    }
}
