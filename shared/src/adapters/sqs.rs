//! The export queue adapter (SQS): a `RunMessage` as the JSON body of one message.

use aws_sdk_sqs::Client;

use crate::domain::export::run::RunMessage;
use crate::error::AwsCallError;
use crate::ports::RunQueue;

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
                .message_deduplication_id(&message.run_id);
        }
        send.send()
            .await
            .map_err(|e| AwsCallError::from_sdk("sqs", "SendMessage", &e))?;
        Ok(())
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
