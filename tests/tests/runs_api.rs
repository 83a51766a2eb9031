//! The runs API against the local stack: an export connector set up and validated as its setup
//! instructions say, a run started through the API, its message on the export queue, the run
//! readable by its tenant only. Needs `scripts/local-stack up`; fails when it is down.

use std::time::Duration;

use serde_json::{Value, json};
use tests::{Api, Call, Stack, unique_bucket, unique_tenant};

/// An export connector with role auth on a new customer bucket, its role created from the
/// setup instructions, and validated: active. Returns its id.
async fn active_export(stack: &Stack, api: &Api<'_>, label: &str) -> String {
    let customer = stack.customer();
    let bucket = unique_bucket(label);
    customer.create_bucket(&bucket, "us-east-1").await;
    let role_name = format!("{label}-{}", &bucket[bucket.len() - 8..]);
    let role_arn = format!("arn:aws:iam::{}:role/{role_name}", customer.account_id);
    let created = api
        .post(
            "/connectors",
            &json!({
                "name": label, "direction": "export", "bucket": bucket, "region": "us-east-1",
                "prefix": "exports/", "auth": {"mode": "role", "role_arn": role_arn},
                "export": {"tables": [{"name": "orders"}]}
            }),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.raw_body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let setup = api.get(&format!("/connectors/{id}/setup")).await.body;
    customer
        .create_role(
            &role_name,
            &setup["trust_policy"],
            &setup["permission_policy"],
        )
        .await;
    let report = api
        .post(&format!("/connectors/{id}/validate"), &json!({}))
        .await;
    assert_eq!(report.status, 200, "{}", report.raw_body);
    assert_eq!(report.body["status"], "active", "{:#}", report.body);
    id
}

/// Receives from the export queue until the message of `run_id` shows up (and deletes it).
async fn message_of(stack: &Stack, run_id: &str) -> Value {
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let queue = stack.env.get("EXPORT_QUEUE_URL");
    for _ in 0..10 {
        let out = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("ReceiveMessage");
        for message in out.messages.unwrap_or_default() {
            let body: Value = serde_json::from_str(message.body().unwrap_or_default())
                .expect("the export queue carries JSON");
            if body["run_id"] == run_id {
                sqs.delete_message()
                    .queue_url(queue)
                    .receipt_handle(message.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .expect("DeleteMessage");
                return body;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("no message for {run_id} on the export queue")
}

#[tokio::test]
async fn a_run_started_through_the_api_is_queued_and_readable_by_its_tenant_only() {
    let stack = Stack::connect().await;
    let tenant = unique_tenant("runs");
    let api = stack.api(&tenant);
    let id = active_export(&stack, &api, "runs").await;
    let runs = format!("/connectors/{id}/runs");

    let started = api.post(&runs, &json!({})).await;
    assert_eq!(started.status, 202, "{}", started.raw_body);
    let run = &started.body;
    let run_id = run["run_id"].as_str().unwrap().to_owned();
    assert!(run_id.starts_with("run_") && run_id.len() == 36, "{run_id}");
    assert_eq!(
        (&run["status"], &run["trigger"], &run["connector_id"]),
        (&json!("queued"), &json!("api"), &json!(id))
    );
    let path = format!("{runs}/{run_id}");
    assert_eq!(started.header("location"), Some(path.as_str()));

    assert_eq!(
        message_of(&stack, &run_id).await,
        json!({"tenant_id": tenant, "connector_id": id, "run_id": run_id})
    );

    let read = api.get(&path).await;
    assert_eq!(read.status, 200, "{}", read.raw_body);
    // A read adds the file tasks (none before the run plans); the rest is what the start said.
    let mut with_tasks = run.clone();
    with_tasks["tasks"] = json!([]);
    assert_eq!(read.body, with_tasks);
    let listed = api.get(&runs).await;
    assert_eq!(listed.status, 200, "{}", listed.raw_body);
    assert_eq!(listed.body, json!({"items": [run], "next_token": null}));

    // Stored in the runs table under the connector, with the TTL attribute.
    let item = stack
        .dynamodb()
        .get_item()
        .table_name(stack.env.get("RUNS_TABLE"))
        .key(
            "connector_id",
            aws_sdk_dynamodb::types::AttributeValue::S(id.clone()),
        )
        .key(
            "run_id",
            aws_sdk_dynamodb::types::AttributeValue::S(run_id.clone()),
        )
        .send()
        .await
        .expect("GetItem")
        .item
        .expect("the run is stored");
    assert!(item["expires_at"].as_n().is_ok(), "{item:?}");

    // While it is queued, another start is refused and names it.
    let again = api.post(&runs, &json!({})).await;
    assert_eq!(again.status, 409, "{}", again.raw_body);
    assert_eq!(again.body["error"]["code"], "run_in_progress");
    assert_eq!(again.body["error"]["run_id"], json!(run_id));
    assert_eq!(again.error_fields(), vec!["runs"]);

    // Another tenant sees nothing of it.
    let other = stack.api(&unique_tenant("other"));
    for out in [
        other.post(&runs, &json!({})).await,
        other.get(&runs).await,
        other.get(&path).await,
    ] {
        assert_eq!(out.status, 404, "{}", out.raw_body);
        assert_eq!(out.body["error"]["code"], "not_found");
    }
    let bad_page = api
        .call(
            "GET",
            &runs,
            Call {
                query: &[("limit", "0")],
                ..Call::default()
            },
        )
        .await;
    assert_eq!(bad_page.status, 400);
    assert_eq!(bad_page.error_fields(), vec!["limit"]);
}

#[tokio::test]
async fn a_connector_that_is_not_validated_does_not_run() {
    let stack = Stack::connect().await;
    let api = stack.api(&unique_tenant("pending"));
    let created = api
        .post(
            "/connectors",
            &json!({
                "name": "pending", "direction": "export", "bucket": unique_bucket("pending"),
                "region": "us-east-1", "auth": {"mode": "bucket_policy"},
                "export": {"tables": [{"name": "orders"}]}
            }),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.raw_body);
    let id = created.body["id"].as_str().unwrap();
    let out = api
        .post(&format!("/connectors/{id}/runs"), &json!({}))
        .await;
    assert_eq!(out.status, 409, "{}", out.raw_body);
    assert_eq!(out.body["error"]["code"], "connector_not_active");
    assert_eq!(out.error_fields(), vec!["status"]);
    let listed = api.get(&format!("/connectors/{id}/runs")).await;
    assert_eq!(listed.body["items"], json!([]));
}
