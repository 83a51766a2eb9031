//! The connector setup API against the local AWS stack, called through the Lambda Invoke API
//! with API Gateway payload v2 events. Needs `scripts/local-stack up`; fails when it is down.

use serde_json::{Value, json};
use tests::{Call, Stack, unique_bucket, unique_tenant};

fn export_body(bucket: &str, prefix: &str) -> Value {
    json!({
        "name": "Nightly warehouse export",
        "direction": "export",
        "bucket": bucket,
        "region": "us-east-1",
        "prefix": prefix,
        "auth": {"mode": "role", "role_arn": "arn:aws:iam::111111111111:role/acme-export"},
        "schedule": "cron(0 2 * * ? *)",
        "export": {"tables": [{"name": "orders"}]}
    })
}

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";

fn ingest_body(bucket: &str) -> Value {
    json!({
        "name": "Order drops",
        "direction": "ingest",
        "bucket": bucket,
        "region": "us-east-1",
        "prefix": "incoming/",
        "auth": {"mode": "access_key", "access_key_id": KEY_ID, "secret_access_key": SECRET},
        "ingest": {"table": "orders", "success_dir": "done/", "failed_dir": "failed/"}
    })
}

fn id_of(body: &Value) -> String {
    body["id"].as_str().expect("connector id").to_owned()
}

#[tokio::test]
async fn create_read_update_delete() {
    let stack = Stack::connect().await;
    let tenant = unique_tenant("crud");
    let api = stack.api(&tenant);
    let bucket = unique_bucket("crud");

    let created = api
        .post("/connectors", &export_body(&bucket, "exports"))
        .await;
    assert_eq!(created.status, 201, "{}", created.raw_body);
    let c = &created.body;
    let id = id_of(c);
    assert!(id.starts_with("con_"));
    assert_eq!(c["status"], "pending_validation");
    assert_eq!(c["version"], 1);
    assert_eq!(c["prefix"], "exports/");
    assert_eq!(
        c["export"]["format"]["delimiter"], ",",
        "defaults filled in"
    );
    assert_eq!(c["export"]["compression"], "gzip");
    assert_eq!(c["export"]["backfill_days"], 730);
    assert!(c["next_run_at"].as_str().unwrap().ends_with("T02:00:00Z"));
    let examples = c["key_examples"].as_array().unwrap();
    assert!(
        examples[0].as_str().unwrap().starts_with("exports/"),
        "{examples:?}"
    );
    assert!(c["external_id"].as_str().unwrap().len() >= 32);
    assert_eq!(
        created.header("location"),
        Some(format!("/connectors/{id}").as_str())
    );
    assert_eq!(created.header("etag"), Some("\"1\""));

    let read = api.get(&format!("/connectors/{id}")).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body, created.body);

    // A cosmetic change keeps the status; a new version is returned.
    let renamed = api
        .patch(
            &format!("/connectors/{id}"),
            1,
            &json!({"name": "Renamed", "export": {"compression": "zstd"}}),
        )
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.raw_body);
    assert_eq!(renamed.body["name"], "Renamed");
    assert_eq!(renamed.body["version"], 2);
    assert_eq!(renamed.body["export"]["compression"], "zstd");
    assert_eq!(
        renamed.body["export"]["format"]["type"], "csv",
        "untouched options stay"
    );
    assert_eq!(renamed.body["external_id"], c["external_id"]);

    let deleted = api.delete(&format!("/connectors/{id}")).await;
    assert_eq!(deleted.status, 204);
    assert_eq!(api.get(&format!("/connectors/{id}")).await.status, 404);
    assert!(stack.stored_item(&tenant, &id).await.is_none());
}

#[tokio::test]
async fn changing_where_or_how_resets_validation() {
    let stack = Stack::connect().await;
    let tenant = unique_tenant("reset");
    let api = stack.api(&tenant);
    let bucket = unique_bucket("reset");
    let created = api.post("/connectors", &export_body(&bucket, "a")).await;
    let id = id_of(&created.body);

    // Mark it active as a passing validation would, then change what validation depends on.
    mark_active(&stack, &tenant, &id).await;
    let cases: &[(Value, &str)] = &[
        (json!({"name": "cosmetic"}), "active"),
        (json!({"prefix": "b/"}), "pending_validation"),
    ];
    for (patch, expected_status) in cases {
        let current = api.get(&format!("/connectors/{id}")).await.body;
        let version = current["version"].as_u64().unwrap();
        let out = api
            .patch(&format!("/connectors/{id}"), version, patch)
            .await;
        assert_eq!(out.status, 200, "{patch}: {}", out.raw_body);
        assert_eq!(out.body["status"], *expected_status, "{patch}");
    }
    for patch in [
        json!({"bucket": unique_bucket("moved")}),
        json!({"auth": {"role_arn": "arn:aws:iam::111111111111:role/other"}}),
        json!({"region": "eu-west-1"}),
    ] {
        mark_active(&stack, &tenant, &id).await;
        let version = api.get(&format!("/connectors/{id}")).await.body["version"]
            .as_u64()
            .unwrap();
        let out = api
            .patch(&format!("/connectors/{id}"), version, &patch)
            .await;
        assert_eq!(out.status, 200, "{patch}: {}", out.raw_body);
        assert_eq!(out.body["status"], "pending_validation", "{patch}");
    }
}

/// Sets status active directly in the table (the validate endpoint is the real path).
async fn mark_active(stack: &Stack, tenant: &str, id: &str) {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    stack
        .dynamodb()
        .update_item()
        .table_name(stack.env.get("CONNECTORS_TABLE"))
        .key("tenant_id", A::S(tenant.into()))
        .key("connector_id", A::S(id.into()))
        .update_expression("SET #s = :a, version = version + :one")
        .expression_attribute_names("#s", "status")
        .expression_attribute_values(":a", A::S("active".into()))
        .expression_attribute_values(":one", A::N("1".into()))
        .send()
        .await
        .expect("UpdateItem");
}

#[tokio::test]
async fn listing_pages_through_every_connector_once() {
    let stack = Stack::connect().await;
    let api = stack.api(&unique_tenant("page"));
    let bucket = unique_bucket("page");
    let mut created = Vec::new();
    for i in 0..5 {
        let out = api
            .post("/connectors", &export_body(&bucket, &format!("p{i}")))
            .await;
        assert_eq!(out.status, 201, "{}", out.raw_body);
        created.push(id_of(&out.body));
    }
    let pages = api.pages(2).await;
    let mut seen = Vec::new();
    for page in &pages {
        assert_eq!(page.status, 200, "{}", page.raw_body);
        let items = page.body["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(id_of));
    }
    assert_eq!(pages.len(), 3, "5 items in pages of 2");
    created.sort();
    assert_eq!(seen, created, "each connector once, in id order");

    let bad = api
        .call(
            "GET",
            "/connectors",
            Call {
                query: &[("limit", "0")],
                ..Call::default()
            },
        )
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.error_fields(), vec!["limit"]);
}

#[tokio::test]
async fn tenants_never_see_each_other() {
    let stack = Stack::connect().await;
    let owner = stack.api(&unique_tenant("owner"));
    let other = stack.api(&unique_tenant("other"));
    let bucket = unique_bucket("iso");
    let id = id_of(
        &owner
            .post("/connectors", &export_body(&bucket, "x"))
            .await
            .body,
    );
    let path = format!("/connectors/{id}");

    assert_eq!(other.get(&path).await.status, 404);
    assert_eq!(other.get(&format!("{path}/setup")).await.status, 404);
    assert_eq!(
        other
            .patch(&path, 1, &json!({"name": "hijack"}))
            .await
            .status,
        404
    );
    assert_eq!(other.delete(&path).await.status, 404);
    assert_eq!(
        other
            .post(&format!("{path}/validate"), &json!({}))
            .await
            .status,
        404
    );
    let listed = other.get("/connectors").await;
    assert_eq!(listed.body["items"], json!([]));
    // Still intact for its owner.
    let mine = owner.get(&path).await;
    assert_eq!(mine.status, 200);
    assert_eq!(mine.body["name"], "Nightly warehouse export");

    // No identity, or a tenant header instead of a verified claim: 401.
    let anonymous = stack.anonymous_api();
    assert_eq!(anonymous.get("/connectors").await.status, 401);
    let spoofed = anonymous
        .call(
            "GET",
            &path,
            Call {
                headers: &[("x-tenant-id", "owner")],
                ..Call::default()
            },
        )
        .await;
    assert_eq!(spoofed.status, 401);
}

#[tokio::test]
async fn overlapping_prefixes_on_one_bucket_conflict() {
    let stack = Stack::connect().await;
    let api = stack.api(&unique_tenant("overlap"));
    let bucket = unique_bucket("overlap");
    let first = api
        .post("/connectors", &export_body(&bucket, "data/exports"))
        .await;
    assert_eq!(first.status, 201);
    let first_id = id_of(&first.body);

    for prefix in ["data/exports/daily", "data", ""] {
        let clash = api.post("/connectors", &export_body(&bucket, prefix)).await;
        assert_eq!(clash.status, 409, "{prefix:?}: {}", clash.raw_body);
        assert_eq!(
            clash.body["error"]["conflicting_connector_id"],
            first_id.as_str()
        );
        assert!(
            clash.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&first_id)
        );
    }
    // A sibling folder, or the same prefix of another tenant, is fine.
    assert_eq!(
        api.post("/connectors", &export_body(&bucket, "data/exports-2"))
            .await
            .status,
        201
    );
    let other_tenant = stack.api(&unique_tenant("overlap2"));
    assert_eq!(
        other_tenant
            .post("/connectors", &export_body(&bucket, "data/exports"))
            .await
            .status,
        201
    );

    // Moving a connector onto another's prefix conflicts too.
    let second = api
        .post("/connectors", &export_body(&bucket, "elsewhere"))
        .await;
    let out = api
        .patch(
            &format!("/connectors/{}", id_of(&second.body)),
            1,
            &json!({"prefix": "data/exports/x"}),
        )
        .await;
    assert_eq!(out.status, 409, "{}", out.raw_body);
}

#[tokio::test]
async fn stale_versions_and_missing_preconditions_are_refused() {
    let stack = Stack::connect().await;
    let api = stack.api(&unique_tenant("occ"));
    let id = id_of(
        &api.post("/connectors", &export_body(&unique_bucket("occ"), ""))
            .await
            .body,
    );
    let path = format!("/connectors/{id}");
    assert_eq!(
        api.patch(&path, 1, &json!({"name": "first"})).await.status,
        200
    );

    let stale = api.patch(&path, 1, &json!({"name": "second"})).await;
    assert_eq!(stale.status, 412, "{}", stale.raw_body);
    assert_eq!(stale.body["error"]["current_version"], 2);
    assert_eq!(
        api.get(&path).await.body["name"],
        "first",
        "the stale write changed nothing"
    );

    let text = json!({"name": "x"}).to_string();
    let unconditional = api
        .call(
            "PATCH",
            &path,
            Call {
                body: Some(&text),
                ..Call::default()
            },
        )
        .await;
    assert_eq!(unconditional.status, 428);
    assert_eq!(unconditional.error_fields(), vec!["If-Match"]);

    let stale_delete = api
        .call(
            "DELETE",
            &path,
            Call {
                headers: &[("if-match", "\"1\"")],
                ..Call::default()
            },
        )
        .await;
    assert_eq!(stale_delete.status, 412);
    assert_eq!(api.get(&path).await.status, 200);
}

#[tokio::test]
async fn bad_bodies_name_each_field_and_store_nothing() {
    let stack = Stack::connect().await;
    let tenant = unique_tenant("bad");
    let api = stack.api(&tenant);
    let bucket = unique_bucket("bad");

    let mut body = export_body(&bucket, "x");
    body["bucket"] = json!(format!("s3://{bucket}/x"));
    body["region"] = json!("mars-1");
    body["colour"] = json!("blue");
    body["external_id"] = json!("my-own-external-id");
    let out = api.post("/connectors", &body).await;
    assert_eq!(out.status, 400);
    let mut fields = out.error_fields();
    fields.sort();
    assert_eq!(fields, vec!["bucket", "colour", "external_id", "region"]);
    let bucket_rule = &out.body["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["field"] == "bucket")
        .unwrap()["rule"];
    assert!(
        bucket_rule.as_str().unwrap().contains("bucket name only"),
        "{bucket_rule}"
    );

    let not_json = api
        .call(
            "POST",
            "/connectors",
            Call {
                body: Some("bucket=x"),
                ..Call::default()
            },
        )
        .await;
    assert_eq!(not_json.status, 400);
    assert_eq!(not_json.body["error"]["code"], "invalid_json");

    let big = json!({"name": "x".repeat(70 * 1024)});
    assert_eq!(api.post("/connectors", &big).await.status, 413);

    assert_eq!(
        api.get("/connectors").await.body["items"],
        json!([]),
        "nothing was stored"
    );
}

#[tokio::test]
async fn external_ids_are_ours_unique_and_immutable() {
    let stack = Stack::connect().await;
    let api = stack.api(&unique_tenant("ext"));
    let bucket = unique_bucket("ext");
    let a = api
        .post("/connectors", &export_body(&bucket, "a"))
        .await
        .body;
    let b = api
        .post("/connectors", &export_body(&bucket, "b"))
        .await
        .body;
    let (ea, eb) = (
        a["external_id"].as_str().unwrap(),
        b["external_id"].as_str().unwrap(),
    );
    assert_ne!(ea, eb);
    for e in [ea, eb] {
        assert!(
            e.len() >= 32 && e.chars().all(|c| c.is_ascii_alphanumeric()),
            "{e}"
        );
    }
    let path = format!("/connectors/{}", id_of(&a));
    let out = api
        .patch(&path, 1, &json!({"external_id": "attacker-chosen-id"}))
        .await;
    assert_eq!(out.status, 400);
    assert_eq!(out.error_fields(), vec!["external_id"]);
    // Even a change of auth mode keeps it.
    let out = api
        .patch(&path, 1, &json!({"auth": {"mode": "bucket_policy"}}))
        .await;
    assert_eq!(out.status, 200, "{}", out.raw_body);
    assert_eq!(out.body["external_id"], ea);
}

#[tokio::test]
async fn access_keys_live_only_in_secrets_manager() {
    let stack = Stack::connect().await;
    let tenant = unique_tenant("keys");
    let api = stack.api(&tenant);
    let created = api
        .post("/connectors", &ingest_body(&unique_bucket("keys")))
        .await;
    assert_eq!(created.status, 201, "{}", created.raw_body);
    let id = id_of(&created.body);
    assert_eq!(
        created.body["auth"],
        json!({"mode": "access_key", "access_key_id_hint": "AKIA…MPLE"})
    );

    // No response carries the secret (nor the full key id, nor the secret's ARN).
    let responses = [
        created.raw_body.clone(),
        api.get(&format!("/connectors/{id}")).await.raw_body,
        api.get("/connectors").await.raw_body,
        api.get(&format!("/connectors/{id}/setup")).await.raw_body,
    ];
    for body in &responses {
        assert!(
            !body.contains(SECRET) && !body.contains(KEY_ID) && !body.contains("secretsmanager"),
            "{body}"
        );
    }

    // DynamoDB holds the secret's ARN only.
    let item = stack.stored_item(&tenant, &id).await.expect("stored");
    let item_text = item.to_string();
    assert!(
        !item_text.contains(SECRET) && !item_text.contains(KEY_ID),
        "{item_text}"
    );
    let arn = item["auth"]["secret_arn"]
        .as_str()
        .expect("secret ARN stored")
        .to_owned();
    let secret = stack
        .secrets()
        .get_secret_value()
        .secret_id(&arn)
        .send()
        .await
        .unwrap();
    let value: Value = serde_json::from_str(secret.secret_string().unwrap()).unwrap();
    assert_eq!(value["secret_access_key"], SECRET);

    // Rotating the keys writes a new secret and removes the old one.
    let rotated = api
        .patch(
            &format!("/connectors/{id}"),
            1,
            &json!({"auth": {"access_key_id": "AKIAROTATEDROTATED99", "secret_access_key": "abcdefghijklmnopqrstuvwxyz0123456789ABCD"}}),
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.raw_body);
    assert_eq!(rotated.body["auth"]["access_key_id_hint"], "AKIA…ED99");
    let new_arn = stack.stored_item(&tenant, &id).await.unwrap()["auth"]["secret_arn"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_arn, arn);
    assert!(
        stack
            .secrets()
            .get_secret_value()
            .secret_id(&arn)
            .send()
            .await
            .is_err(),
        "old secret removed"
    );

    // A patch that does not touch the keys keeps them.
    let renamed = api
        .patch(&format!("/connectors/{id}"), 2, &json!({"name": "Renamed"}))
        .await;
    assert_eq!(renamed.status, 200);
    assert_eq!(
        stack.stored_item(&tenant, &id).await.unwrap()["auth"]["secret_arn"],
        new_arn.as_str()
    );

    // Deleting the connector deletes its secret.
    assert_eq!(api.delete(&format!("/connectors/{id}")).await.status, 204);
    let gone = stack
        .secrets()
        .get_secret_value()
        .secret_id(&new_arn)
        .send()
        .await;
    assert!(gone.is_err(), "secret removed with the connector");
}

#[tokio::test]
async fn setup_instructions_match_the_connector() {
    let stack = Stack::connect().await;
    let api = stack.api(&unique_tenant("setup"));
    let bucket = unique_bucket("setup");
    let created = api
        .post("/connectors", &export_body(&bucket, "exports"))
        .await
        .body;
    let setup = api
        .get(&format!("/connectors/{}/setup", id_of(&created)))
        .await;
    assert_eq!(setup.status, 200, "{}", setup.raw_body);
    let s = &setup.body;
    let trust = &s["trust_policy"]["Statement"][0];
    assert_eq!(
        trust["Principal"]["AWS"],
        stack.env.get("CONNECTOR_PRINCIPAL_ARN")
    );
    assert_eq!(
        trust["Condition"]["StringEquals"]["sts:ExternalId"],
        created["external_id"]
    );
    let objects = &s["permission_policy"]["Statement"][0];
    assert_eq!(
        objects["Resource"],
        json!([format!("arn:aws:s3:::{bucket}/exports/*")])
    );
    assert_eq!(
        s["challenge_file"]["key"],
        format!("exports/{}", created["challenge_file"].as_str().unwrap())
    );

    let ingest = api
        .post("/connectors", &ingest_body(&unique_bucket("setup-in")))
        .await
        .body;
    let setup = api
        .get(&format!("/connectors/{}/setup", id_of(&ingest)))
        .await
        .body;
    assert!(
        setup["trust_policy"].is_null(),
        "access keys need no trust policy"
    );
    assert_eq!(
        setup["event_notification"]["QueueConfigurations"][0]["QueueArn"],
        stack.env.get("INGEST_QUEUE_ARN")
    );
}
