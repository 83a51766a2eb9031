//! Ingests files announced by customers' bucket notifications (SQS; S3, SNS or EventBridge inside).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

mod handler;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    run(service_fn(|event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, Error>(handler::handle_batch(event.payload))
    }))
    .await
}
