//! Regressions for the defects a black-box probe of the setup API found: the platform's own
//! buckets and account, DELETE/PATCH races and their secret, parallel creates and updates on one
//! prefix, and events the runtime cannot parse. Against the local stack, through the Invoke API.

use std::sync::Arc;

use serde_json::{Value, json};
use tests::{Call, Stack, unique_bucket, unique_tenant};

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
/// The platform's account as the local stack configures it (scripts/provision.py).
const PLATFORM_ACCOUNT: &str = "999999999999";

fn body(mode: &str, bucket: &str, prefix: &str) -> Value {
    let auth = match mode {
        "role" => json!({"mode": "role", "role_arn": "arn:aws:iam::111111111111:role/r"}),
        "web_identity" => {
            json!({"mode": "web_identity", "role_arn": "arn:aws:iam::111111111111:role/r"})
        }
        "access_key" => {
            json!({"mode": "access_key", "access_key_id": KEY_ID, "secret_access_key": SECRET})
        }
        _ => json!({"mode": "bucket_policy"}),
    };
    json!({
        "name": format!("{mode} connector"), "direction": "ingest", "bucket": bucket,
        "region": "us-east-1", "prefix": prefix, "auth": auth, "ingest": {"table": "orders"},
    })
}

const MODES: [&str; 4] = ["role", "web_identity", "access_key", "bucket_policy"];

#[tokio::test]
async fn the_platforms_own_buckets_and_account_are_refused_in_every_mode() {
    let stack = Stack::connect().await;
    let lake = stack.env.get("LAKE_BUCKET").to_owned();
    let api = stack.api(&unique_tenant("own"));
    for mode in MODES {
        // Create on the lake: 400 naming the bucket.
        let out = api.post("/connectors", &body(mode, &lake, "x/")).await;
        assert_eq!(out.status, 400, "{mode}: {}", out.raw_body);
        assert_eq!(out.error_fields(), vec!["bucket"], "{mode}");

        // Update onto the lake: 400, and the stored connector is unchanged.
        let bucket = unique_bucket("own");
        let created = api.post("/connectors", &body(mode, &bucket, "x/")).await;
        assert_eq!(created.status, 201, "{mode}: {}", created.raw_body);
        let id = created.body["id"].as_str().unwrap().to_owned();
        let path = format!("/connectors/{id}");
        let out = api.patch(&path, 1, &json!({"bucket": lake})).await;
        assert_eq!(out.status, 400, "{mode}: {}", out.raw_body);
        assert_eq!(out.error_fields(), vec!["bucket"], "{mode}");
        assert_eq!(api.get(&path).await.body["bucket"], bucket.as_str());

        // A connector that reached the lake some other way (an item written before this rule)
        // fails validation at the config check, before any credential is obtained.
        let item_table = stack.env.get("CONNECTORS_TABLE");
        stack
            .dynamodb()
            .update_item()
            .table_name(item_table)
            .key(
                "tenant_id",
                aws_sdk_dynamodb::types::AttributeValue::S(api.tenant().into()),
            )
            .key(
                "connector_id",
                aws_sdk_dynamodb::types::AttributeValue::S(id.clone()),
            )
            .update_expression("SET #b = :lake")
            .expression_attribute_names("#b", "bucket")
            .expression_attribute_values(
                ":lake",
                aws_sdk_dynamodb::types::AttributeValue::S(lake.clone()),
            )
            .send()
            .await
            .expect("UpdateItem");
        let out = api.post(&format!("{path}/validate"), &json!({})).await;
        assert_eq!(out.status, 200, "{mode}: {}", out.raw_body);
        assert_eq!(out.body["status"], "failed", "{mode}");
        let checks = out.body["checks"].as_array().unwrap();
        assert_eq!(checks[0]["id"], "config");
        assert_eq!(checks[0]["status"], "fail", "{mode}: {}", out.raw_body);
        assert!(
            checks[0]["message"]
                .as_str()
                .unwrap()
                .contains("platform's own buckets"),
            "{mode}: {}",
            checks[0]
        );
        assert!(
            checks[1..].iter().all(|c| c["status"] == "skip"),
            "{mode}: nothing else runs"
        );
        assert_eq!(api.get(&path).await.body["status"], "failed");
    }
    // A role of the platform's account, by account.
    for mode in ["role", "web_identity"] {
        let mut b = body(mode, &unique_bucket("own"), "x/");
        b["auth"]["role_arn"] = json!(format!("arn:aws:iam::{PLATFORM_ACCOUNT}:role/r"));
        let out = api.post("/connectors", &b).await;
        assert_eq!(out.status, 400, "{mode}: {}", out.raw_body);
        assert_eq!(out.error_fields(), vec!["auth.role_arn"], "{mode}");
    }
}

/// DELETE and PATCH at once: whichever loses changes nothing, and a connector that survives
/// keeps its secret.
#[tokio::test]
async fn a_delete_that_loses_a_race_keeps_the_secret() {
    let stack = Arc::new(Stack::connect().await);
    let tenant = unique_tenant("race");
    let mut outcomes = std::collections::BTreeMap::new();
    for round in 0..12 {
        let api = stack.api(&tenant);
        let created = api
            .post(
                "/connectors",
                &body("access_key", &unique_bucket("race"), "in/"),
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.raw_body);
        let id = created.body["id"].as_str().unwrap().to_owned();
        let path = format!("/connectors/{id}");
        let (deleted, patched) = {
            let (s1, s2, t1, t2, p1, p2) = (
                stack.clone(),
                stack.clone(),
                tenant.clone(),
                tenant.clone(),
                path.clone(),
                path.clone(),
            );
            let delete = tokio::spawn(async move {
                s1.api(&t1)
                    .call(
                        "DELETE",
                        &p1,
                        Call {
                            headers: &[("if-match", "\"1\"")],
                            ..Call::default()
                        },
                    )
                    .await
                    .status
            });
            let patch = tokio::spawn(async move {
                s2.api(&t2)
                    .patch(&p2, 1, &json!({"name": "patched"}))
                    .await
                    .status
            });
            (delete.await.unwrap(), patch.await.unwrap())
        };
        let item = stack.stored_item(&tenant, &id).await;
        *outcomes.entry((deleted, patched)).or_insert(0) += 1;
        match (deleted, patched) {
            (204, 412 | 404) => assert!(item.is_none(), "round {round}: deleted"),
            (412, 200) => {
                let item = item.unwrap_or_else(|| panic!("round {round}: the PATCH won"));
                assert_eq!(item["name"], "patched");
                let arn = item["auth"]["secret_arn"].as_str().unwrap();
                stack
                    .secrets()
                    .get_secret_value()
                    .secret_id(arn)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("round {round}: secret lost: {e:?}"));
                assert_eq!(api.delete(&path).await.status, 204, "clean up");
            }
            other => panic!("round {round}: DELETE/PATCH answered {other:?}"),
        }
    }
    println!("(DELETE, PATCH) outcomes over 12 rounds: {outcomes:?}");
}

/// Parallel creates on one tenant's bucket with the same or nested prefixes: at most one wins;
/// the others are told which connector holds the prefix (409) or to retry (503).
#[tokio::test]
async fn parallel_creates_and_moves_on_one_prefix_have_one_winner() {
    let stack = Arc::new(Stack::connect().await);
    for round in 0..6 {
        let tenant = unique_tenant("claims");
        let bucket = unique_bucket("claims");
        let prefixes = ["data/", "data/", "data/a/", "data/", "data/a/b/", "data/"];
        let mut tasks = Vec::new();
        for prefix in prefixes {
            let (stack, tenant, bucket) = (stack.clone(), tenant.clone(), bucket.clone());
            tasks.push(tokio::spawn(async move {
                stack
                    .api(&tenant)
                    .post("/connectors", &body("role", &bucket, prefix))
                    .await
            }));
        }
        let mut winners = 0;
        for task in tasks {
            let out = task.await.unwrap();
            match out.status {
                201 => winners += 1,
                409 | 503 => {}
                other => panic!("round {round}: {other} {}", out.raw_body),
            }
        }
        assert_eq!(winners, 1, "round {round}: exactly one create wins");
        let listed = stack.api(&tenant).get("/connectors").await;
        assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);

        // Two more connectors on separate prefixes both move onto the same new prefix at once.
        let api = stack.api(&tenant);
        let mut ids = Vec::new();
        for prefix in ["left/", "right/"] {
            let out = api
                .post("/connectors", &body("role", &bucket, prefix))
                .await;
            assert_eq!(out.status, 201, "{}", out.raw_body);
            ids.push(out.body["id"].as_str().unwrap().to_owned());
        }
        let mut tasks = Vec::new();
        for id in &ids {
            let (stack, tenant, id) = (stack.clone(), tenant.clone(), id.clone());
            tasks.push(tokio::spawn(async move {
                stack
                    .api(&tenant)
                    .patch(
                        &format!("/connectors/{id}"),
                        1,
                        &json!({"prefix": "moved/"}),
                    )
                    .await
                    .status
            }));
        }
        let mut moved = 0;
        for task in tasks {
            match task.await.unwrap() {
                200 => moved += 1,
                409 | 503 => {}
                other => panic!("round {round}: PATCH answered {other}"),
            }
        }
        assert_eq!(moved, 1, "round {round}: exactly one move wins");
    }
}

/// Deleting a connector releases its prefix; wildcards never reach a policy.
#[tokio::test]
async fn released_prefixes_can_be_taken_again_and_wildcards_are_refused() {
    let stack = Stack::connect().await;
    let api = stack.api(&unique_tenant("release"));
    let bucket = unique_bucket("release");
    let first = api
        .post("/connectors", &body("role", &bucket, "abc/"))
        .await;
    assert_eq!(first.status, 201, "{}", first.raw_body);
    let again = api
        .post("/connectors", &body("role", &bucket, "abc/"))
        .await;
    assert_eq!(again.status, 409, "{}", again.raw_body);
    let id = first.body["id"].as_str().unwrap();
    assert_eq!(api.delete(&format!("/connectors/{id}")).await.status, 204);
    let taken = api
        .post("/connectors", &body("role", &bucket, "abc/"))
        .await;
    assert_eq!(taken.status, 201, "{}", taken.raw_body);
    for prefix in ["*", "a*", "?bc", "${aws:userid}", "a\u{202e}b/"] {
        let out = api
            .post("/connectors", &body("role", &bucket, prefix))
            .await;
        assert_eq!(out.status, 400, "{prefix:?}: {}", out.raw_body);
        assert_eq!(out.error_fields(), vec!["prefix"], "{prefix:?}");
    }
}

/// A header value the runtime's HTTP types refuse is a 400 in the API's error shape.
#[tokio::test]
async fn an_event_with_a_control_character_in_a_header_is_a_400() {
    let stack = Stack::connect().await;
    let mut event = tests::api_event(Some("acme"), "GET", "/connectors", &Call::default());
    event["headers"]["x-probe"] = json!("a\u{0}b");
    let out = stack.invoke("connector-api", &event).await;
    assert_eq!(out["statusCode"], 400, "{out}");
    let body: Value = serde_json::from_str(out["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "invalid_request");
}
