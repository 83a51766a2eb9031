//! In-memory queues: the export queue ([`MemoryRunQueue`]) and the ingest queue the poll sends
//! found files to ([`MemoryPolledFileQueue`]). Messages are kept in the order they were sent;
//! a send can be made to fail.

use std::sync::{Arc, Mutex};

use crate::domain::export::run::RunMessage;
use crate::domain::ingest::notification::PolledFile;
use crate::error::AwsCallError;
use crate::ports::{PolledFileQueue, RunQueue};

/// Clones share one queue, so a test keeps a handle on the one its code sends to.
pub struct MemoryQueue<T> {
    messages: Arc<Mutex<Vec<T>>>,
    failures: Arc<Mutex<Vec<AwsCallError>>>,
    /// How many of `messages` a test has taken for delivery.
    delivered: Arc<Mutex<usize>>,
}

pub type MemoryRunQueue = MemoryQueue<RunMessage>;
pub type MemoryPolledFileQueue = MemoryQueue<PolledFile>;

impl<T> Default for MemoryQueue<T> {
    fn default() -> Self {
        Self {
            messages: Arc::default(),
            failures: Arc::default(),
            delivered: Arc::default(),
        }
    }
}

impl<T> Clone for MemoryQueue<T> {
    fn clone(&self) -> Self {
        Self {
            messages: self.messages.clone(),
            failures: self.failures.clone(),
            delivered: self.delivered.clone(),
        }
    }
}

impl<T: Clone> MemoryQueue<T> {
    pub fn messages(&self) -> Vec<T> {
        self.messages.lock().expect("not poisoned").clone()
    }

    /// The messages sent since the last call (all of them are kept in `messages`).
    pub fn take_new(&self) -> Vec<T> {
        let messages = self.messages.lock().expect("not poisoned");
        let mut delivered = self.delivered.lock().expect("not poisoned");
        let new = messages[*delivered..].to_vec();
        *delivered = messages.len();
        new
    }

    /// The next send fails with `error` (and sends nothing).
    pub fn fail_next(&self, error: AwsCallError) {
        self.failures.lock().expect("not poisoned").push(error);
    }

    /// A throttled send, as SQS answers under load.
    pub fn throttled() -> AwsCallError {
        AwsCallError {
            service: "sqs",
            operation: "SendMessage",
            code: Some("RequestThrottled".into()),
            message: "Request is throttled.".into(),
            http_status: Some(403),
            retryable: true,
        }
    }

    fn send(&self, messages: &[T]) -> Result<(), AwsCallError> {
        if let Some(error) = self.failures.lock().expect("not poisoned").pop() {
            return Err(error);
        }
        self.messages
            .lock()
            .expect("not poisoned")
            .extend_from_slice(messages);
        Ok(())
    }
}

impl RunQueue for MemoryRunQueue {
    async fn enqueue(&self, message: &RunMessage) -> Result<(), AwsCallError> {
        self.send(std::slice::from_ref(message))
    }

    async fn enqueue_all(&self, messages: &[RunMessage]) -> Result<(), AwsCallError> {
        self.send(messages)
    }
}

impl PolledFileQueue for MemoryPolledFileQueue {
    async fn enqueue_polled(&self, files: &[PolledFile]) -> Result<(), AwsCallError> {
        self.send(files)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::domain::export::run::{Run, RunTrigger};

    #[tokio::test]
    async fn a_failed_send_sends_nothing_and_clones_share_the_queue() {
        let at = chrono::Utc.with_ymd_and_hms(2026, 11, 24, 2, 0, 0).unwrap();
        let run = Run::queued("acme", "con_1", "run_01".into(), RunTrigger::Api, at);
        let queue = MemoryRunQueue::default();
        let handle = queue.clone();
        queue.fail_next(MemoryRunQueue::throttled());
        let message = RunMessage::start(&run);
        assert_eq!(
            queue.enqueue(&message).await.unwrap_err().code.as_deref(),
            Some("RequestThrottled")
        );
        assert!(handle.messages().is_empty());
        queue.enqueue(&message).await.unwrap();
        queue
            .enqueue_all(&[message.clone(), message.clone()])
            .await
            .unwrap();
        assert_eq!(handle.messages().len(), 3);
        assert_eq!(handle.take_new().len(), 3);
        assert!(handle.take_new().is_empty(), "taken once");
    }
}
