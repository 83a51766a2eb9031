//! The queue adapters (SQS): the export queue, a `RunMessage` as the JSON body of one message;
//! the ingest queue, for the files the poll found.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

use crate::domain::export::run::RunMessage;
use crate::domain::ingest::notification::PolledFile;
use crate::error::AwsCallError;
use crate::ports::{PolledFileQueue, RunQueue};

#[derive(Clone)]
pub struct SqsRunQueue {
    client: Client,
    queue_url: String,
}

impl SqsRunQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }
}

/// The message body: `RunMessage` as JSON.
pub fn message_body(message: &RunMessage) -> String {
    serde_json::to_string(message).expect("three strings always serialize")
}

impl RunQueue for SqsRunQueue {
    async fn enqueue(&self, message: &RunMessage) -> Result<(), AwsCallError> {
        let mut send = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(message_body(message));
        // A FIFO queue needs a group and a deduplication id: one group per connector keeps its
        // runs in order, and the run id makes a resent message for the same run a duplicate.
        if self.queue_url.ends_with(".fifo") {
            send = send
                .message_group_id(&message.connector_id)
                .message_deduplication_id(deduplication_id(message));
        }
        send.send()
            .await
            .map_err(|e| AwsCallError::from_sdk("sqs", "SendMessage", &e))?;
        Ok(())
    }

    async fn enqueue_all(&self, messages: &[RunMessage]) -> Result<(), AwsCallError> {
        let fifo = self.queue_url.ends_with(".fifo");
        for chunk in messages.chunks(SEND_BATCH_MAX) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, message)| {
                    let entry = SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(message_body(message));
                    let entry = if fifo {
                        entry
                            .message_group_id(&message.connector_id)
                            .message_deduplication_id(deduplication_id(message))
                    } else {
                        entry
                    };
                    entry.build().map_err(unbuilt_entry)
                })
                .collect::<Result<Vec<_>, _>>()?;
            send_batch(&self.client, &self.queue_url, entries).await?;
        }
        Ok(())
    }
}

/// The ingest queue adapter (SQS), for the files the poll found: a [`PolledFile`]'s message
/// body, handled by `s3-ingest` like a notification.
#[derive(Clone)]
pub struct SqsPolledFileQueue {
    client: Client,
    queue_url: String,
}

impl SqsPolledFileQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }
}

impl PolledFileQueue for SqsPolledFileQueue {
    async fn enqueue_polled(&self, files: &[PolledFile]) -> Result<(), AwsCallError> {
        for chunk in files.chunks(SEND_BATCH_MAX) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, file)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(file.message_body())
                        .build()
                        .map_err(unbuilt_entry)
                })
                .collect::<Result<Vec<_>, _>>()?;
            send_batch(&self.client, &self.queue_url, entries).await?;
        }
        Ok(())
    }
}

/// SendMessageBatch takes ten entries at most.
const SEND_BATCH_MAX: usize = 10;

fn unbuilt_entry(e: aws_sdk_sqs::error::BuildError) -> AwsCallError {
    AwsCallError {
        service: "sqs",
        operation: "SendMessageBatch",
        code: None,
        message: e.to_string(),
        http_status: None,
        retryable: false,
    }
}

/// One SendMessageBatch; an error when any entry was not accepted.
async fn send_batch(
    client: &Client,
    queue_url: &str,
    entries: Vec<SendMessageBatchRequestEntry>,
) -> Result<(), AwsCallError> {
    let out = client
        .send_message_batch()
        .queue_url(queue_url)
        .set_entries(Some(entries))
        .send()
        .await
        .map_err(|e| AwsCallError::from_sdk("sqs", "SendMessageBatch", &e))?;
    if let Some(failed) = out.failed.first() {
        return Err(AwsCallError {
            service: "sqs",
            operation: "SendMessageBatch",
            code: Some(failed.code.clone()),
            message: failed.message.clone().unwrap_or_default(),
            http_status: None,
            // The sender's fault (a bad entry) is not worth retrying; SQS's is.
            retryable: !failed.sender_fault,
        });
    }
    Ok(())
}

/// A FIFO queue drops a second message with the same id within five minutes: one per run
/// start, per file task and per continuation.
fn deduplication_id(message: &RunMessage) -> String {
    match message.task {
        None => message.run_id.clone(),
        Some(task) => format!("{}-{task}-{}", message.run_id, message.continuation),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_the_run_message_as_json() {
        let message = RunMessage {
            tenant_id: "acme".into(),
            connector_id: "con_1".into(),
            run_id: "run_0193abcdef0123456789abcdef012345".into(),
            task: None,
            continuation: 0,
        };
        let body = message_body(&message);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&body).unwrap(),
            serde_json::json!({
                "tenant_id": "acme",
                "connector_id": "con_1",
                "run_id": "run_0193abcdef0123456789abcdef012345"
            })
        );
        assert_eq!(serde_json::from_str::<RunMessage>(&body).unwrap(), message);
    }
}
