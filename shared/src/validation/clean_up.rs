//! The test objects a validation writes, and their removal at the end whatever failed.

use std::sync::Mutex;

use crate::ports::ObjectStore;

/// Keys written and not yet removed.
#[derive(Default)]
pub(super) struct TestObjects {
    keys: Mutex<Vec<String>>,
}

impl TestObjects {
    pub(super) fn remember(&self, key: &str) {
        self.keys.lock().expect("not poisoned").push(key.to_owned());
    }

    pub(super) fn holds(&self, key: &str) -> bool {
        self.keys
            .lock()
            .expect("not poisoned")
            .iter()
            .any(|k| k == key)
    }

    pub(super) fn forget(&self, key: &str) {
        self.keys.lock().expect("not poisoned").retain(|k| k != key);
    }

    /// Removes what is left; says which objects remain when it cannot.
    pub(super) async fn remove_all(&self, store: &impl ObjectStore) -> Option<String> {
        let keys: Vec<String> = self.keys.lock().expect("not poisoned").clone();
        let mut remaining = Vec::new();
        for key in keys {
            match store.delete(&key).await {
                Ok(()) => self.forget(&key),
                Err(_) => remaining.push(format!("s3://{}/{key}", store.bucket())),
            }
        }
        (!remaining.is_empty()).then(|| {
            format!(
                "; these test objects could not be removed, delete them by hand: {}",
                remaining.join(", ")
            )
        })
    }
}
