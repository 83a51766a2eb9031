//! Connection validation against the local stack with IAM enforced: customer roles, users,
//! policies and buckets are created in a stand-in customer account from the very documents the
//! setup endpoint returns, then broken one permission at a time.

use serde_json::{Value, json};
use tests::{Api, Stack, unique_bucket, unique_tenant, without_action};

struct Setup<'a> {
    api: Api<'a>,
    id: String,
    body: Value,
    setup: Value,
}

/// Creates an export connector with role auth on a fresh customer bucket and returns it with its
/// setup instructions (the role itself is created by the caller).
async fn role_connector<'a>(
    stack: &'a Stack,
    label: &str,
    bucket_region: &str,
) -> (Setup<'a>, String) {
    let (customer, bucket, api) = bucket_and_tenant(stack, label, bucket_region).await;
    let role_name = format!("{label}-{}", &bucket[bucket.len() - 8..]);
    let role_arn = format!("arn:aws:iam::{}:role/{role_name}", customer.account_id);
    let created = api
        .post(
            "/connectors",
            &json!({
                "name": label, "direction": "export", "bucket": bucket, "region": "us-east-1",
                "prefix": "exports/daily", "auth": {"mode": "role", "role_arn": role_arn},
            }),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.raw_body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let setup = api.get(&format!("/connectors/{id}/setup")).await.body;
    (
        Setup {
            api,
            id,
            body: created.body,
            setup,
        },
        role_name,
    )
}

/// A new customer bucket (in `region`) and an API client for a new tenant.
async fn bucket_and_tenant<'a>(
    stack: &'a Stack,
    label: &str,
    region: &str,
) -> (tests::Customer, String, Api<'a>) {
    let customer = stack.customer();
    let bucket = unique_bucket(label);
    customer.create_bucket(&bucket, region).await;
    (customer, bucket, stack.api(&unique_tenant(label)))
}

/// Creates the connector's role exactly as its setup instructions say.
async fn set_up_as_instructed(stack: &Stack, s: &Setup<'_>, role: &str) -> tests::Customer {
    let customer = stack.customer();
    customer
        .create_role(
            role,
            &s.setup["trust_policy"],
            &s.setup["permission_policy"],
        )
        .await;
    customer
}

async fn validate(s: &Setup<'_>) -> Value {
    let out = s
        .api
        .post(&format!("/connectors/{}/validate", s.id), &json!({}))
        .await;
    assert_eq!(out.status, 200, "{}", out.raw_body);
    out.body
}

fn check<'v>(report: &'v Value, id: &str) -> &'v Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id}: {report}"))
}

fn statuses(report: &Value) -> Vec<(String, String)> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_owned(),
                c["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_role_set_up_as_instructed_passes_and_activates() {
    let stack = Stack::connect().await;
    let (s, role) = role_connector(&stack, "pass", "us-east-1").await;
    let customer = set_up_as_instructed(&stack, &s, &role).await;

    let report = validate(&s).await;
    assert_eq!(report["status"], "active", "{report:#}");
    let expected = [
        ("config", "pass"),
        ("credentials", "pass"),
        ("external_id_enforced", "pass"),
        ("bucket_exists", "pass"),
        ("bucket_region", "pass"),
        ("list", "pass"),
        ("write", "pass"),
        ("multipart", "pass"),
        ("read", "pass"),
        ("delete", "pass"),
        ("source_read", "skip"),
        ("move", "skip"),
        ("challenge_file", "skip"),
        ("bucket_settings", "pass"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(statuses(&report), expected);
    for c in report["checks"].as_array().unwrap() {
        assert!(c["duration_ms"].is_u64() && c["message"].is_string(), "{c}");
    }

    // Stored on the connector: active, with the checks; test objects are gone.
    let connector = s.api.get(&format!("/connectors/{}", s.id)).await.body;
    assert_eq!(connector["status"], "active");
    assert_eq!(connector["validation"]["checks"], report["checks"]);
    assert_eq!(connector["version"], report["connector_version"]);
    let bucket = s.body["bucket"].as_str().unwrap();
    assert_eq!(
        customer
            .keys_under(bucket, "exports/daily/.connector-check/")
            .await,
        Vec::<String>::new()
    );

    // Schedulable now: it appears in the scheduler's index.
    let item = stack
        .stored_item(&connector_tenant(&s), &s.id)
        .await
        .unwrap();
    assert!(
        item["due_shard"].as_str().unwrap().starts_with("due#"),
        "{item}"
    );
}

fn connector_tenant(s: &Setup<'_>) -> String {
    // The API client was built for one tenant; it is in the stored item's key.
    s.api.tenant().to_owned()
}

#[tokio::test]
async fn each_missing_action_fails_its_check_and_names_the_action() {
    let stack = Stack::connect().await;
    // (action removed, failing check)
    let cases = [
        ("s3:PutObject", "write"),
        ("s3:GetObject", "read"),
        ("s3:DeleteObject", "delete"),
        ("s3:AbortMultipartUpload", "multipart"),
        ("s3:ListBucket", "list"),
        ("s3:GetBucketLocation", "bucket_exists"),
    ];
    for (action, failing) in cases {
        {
            let label = format!("miss-{}", failing.replace('_', "-"));
            let (s, role) = role_connector(&stack, &label, "us-east-1").await;
            let customer = stack.customer();
            customer
                .create_role(
                    &role,
                    &s.setup["trust_policy"],
                    &without_action(&s.setup["permission_policy"], action),
                )
                .await;
            let report = validate(&s).await;
            assert_eq!(report["status"], "failed", "{action}: {report:#}");
            let c = check(&report, failing);
            assert_eq!(c["status"], "fail", "{action}: {report:#}");
            assert_eq!(c["aws_error_code"], "AccessDenied", "{action}: {c}");
            let remediation = c["remediation"].as_str().unwrap();
            assert!(remediation.contains(action), "{action}: {remediation}");
            assert!(remediation.contains(&role), "names the role: {remediation}");
            // Whatever failed, no test object stays behind unless deleting is what is missing.
            let bucket = s.body["bucket"].as_str().unwrap();
            let left = customer
                .keys_under(bucket, "exports/daily/.connector-check/")
                .await;
            if action == "s3:DeleteObject" {
                assert!(!left.is_empty());
                assert!(
                    c["message"]
                        .as_str()
                        .unwrap()
                        .contains("delete them by hand"),
                    "{c}"
                );
            } else {
                assert!(left.is_empty(), "{action}: left {left:?}");
            }
            let connector = s.api.get(&format!("/connectors/{}", s.id)).await.body;
            assert_eq!(connector["status"], "failed");
        }
    }
}

#[tokio::test]
async fn a_missing_bucket_is_reported_and_later_checks_skipped() {
    let stack = Stack::connect().await;
    let (s, role) = role_connector(&stack, "nobucket", "us-east-1").await;
    let customer = set_up_as_instructed(&stack, &s, &role).await;
    customer
        .s3
        .delete_bucket()
        .bucket(s.body["bucket"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let report = validate(&s).await;
    assert_eq!(report["status"], "failed");
    let c = check(&report, "bucket_exists");
    assert_eq!(c["status"], "fail", "{report:#}");
    assert!(c["message"].as_str().unwrap().contains("no bucket named"));
    for id in ["list", "write", "delete"] {
        assert_eq!(check(&report, id)["status"], "skip", "{id}");
    }
}

#[tokio::test]
async fn a_bucket_in_another_region_names_the_right_region() {
    let stack = Stack::connect().await;
    let (s, role) = role_connector(&stack, "region", "eu-west-1").await;
    set_up_as_instructed(&stack, &s, &role).await;
    let report = validate(&s).await;
    assert_eq!(report["status"], "failed");
    let c = check(&report, "bucket_region");
    assert_eq!(c["status"], "fail", "{report:#}");
    assert!(
        c["remediation"].as_str().unwrap().contains("eu-west-1"),
        "{c}"
    );
    assert_eq!(report["bucket_region"], "eu-west-1");
}

/// The probe's reproduction: a role that trusts our principal without the ExternalId condition
/// and may do anything in a bucket holding `private/payroll.csv`. Any tenant can name it; the
/// validation must not touch the bucket (the role cannot even delete, so a test object written
/// anyway would stay behind), and a run gets no session.
#[tokio::test]
async fn a_role_ignoring_the_external_id_is_never_used_on_the_bucket() {
    use shared::adapters::dynamodb::DynamoConnectorStore;
    use shared::adapters::secrets_manager::SecretsManagerStore;
    use shared::credentials::{CredentialBroker, CredentialError, SessionPurpose, TokenSource};
    use shared::ports::ConnectorStore;

    let stack = Stack::connect().await;
    let (customer, bucket, api) = bucket_and_tenant(&stack, "deputy", "us-east-1").await;
    customer
        .s3
        .put_object()
        .bucket(&bucket)
        .key("private/payroll.csv")
        .body(b"name,salary\n".to_vec().into())
        .send()
        .await
        .unwrap();
    let role = format!("victim-{}", &bucket[bucket.len() - 8..]);
    let role_arn = format!("arn:aws:iam::{}:role/{role}", customer.account_id);
    let created = api
        .post(
            "/connectors",
            &json!({
                "name": "not mine", "direction": "ingest", "bucket": bucket, "region": "us-east-1",
                "prefix": "private/", "auth": {"mode": "role", "role_arn": role_arn},
                "ingest": {"table": "payroll"},
            }),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.raw_body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let setup = api.get(&format!("/connectors/{id}/setup")).await.body;
    let mut trust = setup["trust_policy"].clone();
    trust["Statement"][0]
        .as_object_mut()
        .unwrap()
        .remove("Condition");
    let everything_but_delete = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:*", "Resource": [format!("arn:aws:s3:::{bucket}"), format!("arn:aws:s3:::{bucket}/*")]},
        {"Effect": "Deny", "Action": "s3:DeleteObject", "Resource": format!("arn:aws:s3:::{bucket}/*")},
    ]});
    customer
        .create_role(&role, &trust, &everything_but_delete)
        .await;
    let s = Setup {
        api,
        id: id.clone(),
        body: created.body,
        setup,
    };

    let report = validate(&s).await;
    assert_eq!(report["status"], "failed", "{report:#}");
    let probe = check(&report, "external_id_enforced");
    assert_eq!(probe["status"], "fail");
    assert!(
        probe["remediation"]
            .as_str()
            .unwrap()
            .contains(s.body["external_id"].as_str().unwrap())
    );
    let after: Vec<(String, String)> = statuses(&report).into_iter().skip(3).collect();
    assert_eq!(after.len(), 11);
    for (id, status) in &after {
        assert_eq!(status, "skip", "{id} must not run: {report:#}");
        assert!(
            check(&report, id)["message"]
                .as_str()
                .unwrap()
                .contains("external_id_enforced"),
            "{id} says why"
        );
    }
    assert!(!report.to_string().contains("payroll"), "nothing was read");
    assert_eq!(
        customer.keys_under(&bucket, "").await,
        vec!["private/payroll.csv".to_owned()],
        "nothing was written"
    );

    // A run asks for a session the same way and is refused before any S3 call.
    let store = DynamoConnectorStore::new(stack.dynamodb(), stack.env.get("CONNECTORS_TABLE"));
    let connector = store.get(s.api.tenant(), &id).await.unwrap().unwrap();
    let broker = CredentialBroker::new(
        shared::adapters::sts::StsTokens::new(&stack.sdk),
        SecretsManagerStore::new(stack.secrets()),
        stack.env.get("CONNECTOR_PRINCIPAL_ARN").to_owned(),
        TokenSource::None,
        shared::domain::connector::platform::OwnResources::default(),
    );
    let run = broker.obtain(&connector, SessionPurpose::Run).await;
    assert!(
        matches!(run, Err(CredentialError::ExternalIdNotEnforced { .. })),
        "{run:?}"
    );
}

#[tokio::test]
async fn a_wrong_external_id_in_the_trust_policy_fails_credentials() {
    let stack = Stack::connect().await;
    let (s, role) = role_connector(&stack, "wrongext", "us-east-1").await;
    let mut trust = s.setup["trust_policy"].clone();
    trust["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"] =
        json!("someone-elses-id");
    stack
        .customer()
        .create_role(&role, &trust, &s.setup["permission_policy"])
        .await;
    let report = validate(&s).await;
    assert_eq!(report["status"], "failed");
    let c = check(&report, "credentials");
    assert_eq!(c["status"], "fail", "{report:#}");
    assert_eq!(c["aws_error_code"], "AccessDenied");
    assert!(
        c["message"].as_str().unwrap().contains("tried"),
        "retried for propagation: {c}"
    );
    assert!(
        c["remediation"]
            .as_str()
            .unwrap()
            .contains(s.body["external_id"].as_str().unwrap())
    );
    assert_eq!(check(&report, "write")["status"], "skip");
}

#[tokio::test]
async fn access_keys_pass_and_never_reach_the_logs() {
    let stack = Stack::connect().await;
    let (customer, bucket, api) = bucket_and_tenant(&stack, "keys", "us-east-1").await;
    // Create with placeholder keys to get the policy, then the real user and keys.
    let body = json!({
        "name": "drops", "direction": "ingest", "bucket": bucket, "region": "us-east-1", "prefix": "in/",
        "auth": {"mode": "access_key", "access_key_id": "AKIAPLACEHOLDER00000", "secret_access_key": "placeholderplaceholderplaceholder0000000"},
        "ingest": {"table": "orders", "success_dir": "done/", "failed_dir": "failed/"}
    });
    let created = api.post("/connectors", &body).await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    let setup = api.get(&format!("/connectors/{id}/setup")).await.body;
    let user = format!("connector-{}", &bucket[bucket.len() - 8..]);
    let (key_id, secret) = customer
        .create_user_with_key(&user, Some(&setup["permission_policy"]))
        .await;
    customer
        .s3
        .put_object()
        .bucket(&bucket)
        .key("in/orders-1.csv")
        .body(b"id\n1\n".to_vec().into())
        .send()
        .await
        .unwrap();
    let patched = api
        .patch(
            &format!("/connectors/{id}"),
            1,
            &json!({"auth": {"access_key_id": key_id, "secret_access_key": secret}}),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.raw_body);

    let out = api
        .post(&format!("/connectors/{id}/validate"), &json!({}))
        .await;
    let report = &out.body;
    assert_eq!(report["status"], "active", "{report:#}");
    assert_eq!(check(report, "source_read")["status"], "pass");
    assert!(
        check(report, "source_read")["message"]
            .as_str()
            .unwrap()
            .contains("in/orders-1.csv")
    );
    assert_eq!(check(report, "move")["status"], "pass");
    assert_eq!(check(report, "external_id_enforced")["status"], "skip");
    assert!(!out.raw_body.contains(&secret));
    assert_eq!(
        customer.keys_under(&bucket, "done/").await,
        Vec::<String>::new(),
        "test copies removed"
    );

    // The functions' log (everything they printed while the stack ran) never shows the secret.
    let state_dir = std::env::var("LOCAL_STACK_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| tests::StackEnv::repo_root().join(".local-stack"));
    let log = std::fs::read_to_string(state_dir.join("lambda.log")).expect("function log");
    assert!(
        log.contains(&format!("/connectors/{id}/validate")),
        "the log covers this connector's validation"
    );
    assert!(
        !log.contains(&secret),
        "secret access key found in the function log"
    );
    assert!(
        !log.contains(&key_id),
        "access key id found in the function log"
    );
}

#[tokio::test]
async fn challenge_file_missing_then_present() {
    let stack = Stack::connect().await;
    let (customer, bucket, api) = bucket_and_tenant(&stack, "challenge", "us-east-1").await;
    let created = api
        .post("/connectors", &json!({"name": "stitch-style", "direction": "export", "bucket": bucket, "region": "us-east-1", "prefix": "drop", "auth": {"mode": "bucket_policy"}}))
        .await;
    assert_eq!(created.status, 201, "{}", created.raw_body);
    let id = created.body["id"].as_str().unwrap();
    let setup = api.get(&format!("/connectors/{id}/setup")).await.body;
    customer
        .s3
        .put_bucket_policy()
        .bucket(&bucket)
        .policy(setup["bucket_policy"].to_string())
        .send()
        .await
        .expect("PutBucketPolicy");

    let report = api
        .post(&format!("/connectors/{id}/validate"), &json!({}))
        .await
        .body;
    let c = check(&report, "challenge_file");
    assert_eq!(c["status"], "fail", "{report:#}");
    // Nothing touches the bucket before ownership is proven.
    for id in [
        "bucket_exists",
        "list",
        "write",
        "delete",
        "bucket_settings",
    ] {
        let skipped = check(&report, id);
        assert_eq!(skipped["status"], "skip", "{id}: {skipped}");
        assert!(
            skipped["message"]
                .as_str()
                .unwrap()
                .contains("challenge file"),
            "{skipped}"
        );
    }
    assert!(
        customer
            .keys_under(&bucket, "drop/.connector-check/")
            .await
            .is_empty()
    );
    assert!(
        c["remediation"]
            .as_str()
            .unwrap()
            .contains(created.body["challenge_file"].as_str().unwrap())
    );
    assert_eq!(report["status"], "failed");

    let key = setup["challenge_file"]["key"].as_str().unwrap();
    customer
        .s3
        .put_object()
        .bucket(&bucket)
        .key(key)
        .body(Vec::new().into())
        .send()
        .await
        .unwrap();
    let report = api
        .post(&format!("/connectors/{id}/validate"), &json!({}))
        .await
        .body;
    assert_eq!(
        check(&report, "challenge_file")["status"],
        "pass",
        "{report:#}"
    );
    assert_eq!(report["status"], "active", "{report:#}");
}

#[tokio::test]
async fn run_credentials_renew_as_fresh_sessions_scoped_by_the_role() {
    use aws_credential_types::provider::ProvideCredentials;
    use shared::adapters::dynamodb::DynamoConnectorStore;
    use shared::adapters::secrets_manager::SecretsManagerStore;
    use shared::credentials::{
        ConnectorCredentials, CredentialBroker, SessionPurpose, TokenSource,
    };
    use shared::ports::ConnectorStore;
    use std::sync::Arc;

    let stack = Stack::connect().await;
    let (s, role) = role_connector(&stack, "session", "us-east-1").await;
    set_up_as_instructed(&stack, &s, &role).await;
    let store = DynamoConnectorStore::new(stack.dynamodb(), stack.env.get("CONNECTORS_TABLE"));
    let connector = store
        .get(s.api.tenant(), &s.id)
        .await
        .unwrap()
        .expect("stored");
    let broker = Arc::new(CredentialBroker::new(
        shared::adapters::sts::StsTokens::new(&stack.sdk),
        SecretsManagerStore::new(stack.secrets()),
        stack.env.get("CONNECTOR_PRINCIPAL_ARN").to_owned(),
        TokenSource::None,
        shared::domain::connector::platform::OwnResources::default(),
    ));
    let provider = ConnectorCredentials::new(broker, Arc::new(connector), SessionPurpose::Run);

    // Each call is a new session (what the SDK's identity cache asks for when the last nears
    // expiry), lasting an hour at most.
    let first = provider.provide_credentials().await.expect("session");
    let second = provider.provide_credentials().await.expect("session");
    assert_ne!(first.access_key_id(), second.access_key_id());
    assert!(first.session_token().is_some());
    let lifetime = first
        .expiry()
        .unwrap()
        .duration_since(std::time::SystemTime::now())
        .unwrap();
    assert!(
        lifetime <= std::time::Duration::from_secs(3600)
            && lifetime > std::time::Duration::from_secs(3000),
        "{lifetime:?}"
    );

    // An S3 client on the provider acts with the role's permissions: inside the prefix yes,
    // outside it no.
    let s3 = shared::aws::connector_s3_client(&stack.sdk, provider, "us-east-1");
    let bucket = s.body["bucket"].as_str().unwrap();
    s3.put_object()
        .bucket(bucket)
        .key("exports/daily/part-1.csv")
        .body(b"a\n".to_vec().into())
        .send()
        .await
        .expect("inside the prefix");
    let outside = s3
        .put_object()
        .bucket(bucket)
        .key("elsewhere/x.csv")
        .body(b"a\n".to_vec().into())
        .send()
        .await;
    assert!(outside.is_err(), "outside the prefix is denied");
}

#[tokio::test]
async fn web_identity_without_a_token_source_says_so() {
    let stack = Stack::connect().await;
    let (customer, bucket, api) = bucket_and_tenant(&stack, "webid", "us-east-1").await;
    let created = api
        .post("/connectors", &json!({"name": "oidc", "direction": "export", "bucket": bucket, "region": "us-east-1",
            "auth": {"mode": "web_identity", "role_arn": format!("arn:aws:iam::{}:role/oidc-role", customer.account_id)}}))
        .await;
    let id = created.body["id"].as_str().unwrap();
    let report = api
        .post(&format!("/connectors/{id}/validate"), &json!({}))
        .await
        .body;
    let c = check(&report, "credentials");
    assert_eq!(c["status"], "fail", "{report:#}");
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .contains("WEB_IDENTITY_TOKEN_FILE"),
        "{c}"
    );
    assert_eq!(report["status"], "failed");
}

#[tokio::test]
async fn ingest_handles_keys_with_spaces_plus_escapes_and_unicode() {
    let stack = Stack::connect().await;
    let (customer, bucket, api) = bucket_and_tenant(&stack, "keys-odd", "us-east-1").await;
    let role_name = format!("ingest-odd-{}", &bucket[bucket.len() - 8..]);
    let role_arn = format!("arn:aws:iam::{}:role/{role_name}", customer.account_id);
    // Spaces go in the file name, not the prefix: moto mis-verifies the signature of an STS call
    // whose session policy holds a space (real STS accepts it).
    let prefix = "incoming/données/a+b%2B/";
    let created = api
        .post(
            "/connectors",
            &json!({"name": "odd keys", "direction": "ingest", "bucket": bucket, "region": "us-east-1",
                "prefix": prefix, "auth": {"mode": "role", "role_arn": role_arn},
                "ingest": {"table": "orders", "success_dir": "done/été+1/", "failed_dir": "failed/%2B/"}}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.raw_body);
    assert_eq!(created.body["prefix"], prefix, "stored as given");
    let id = created.body["id"].as_str().unwrap();
    let setup = api.get(&format!("/connectors/{id}/setup")).await.body;
    // moto rejects the signature of IAM calls whose form body holds non-ASCII text, so the role
    // gets the setup policy's actions on the whole bucket instead of the Unicode prefix.
    let mut permissions = setup["permission_policy"].clone();
    for statement in permissions["Statement"].as_array_mut().unwrap() {
        let objects = statement["Resource"].to_string().contains('/');
        statement["Resource"] = if objects {
            json!(format!("arn:aws:s3:::{bucket}/*"))
        } else {
            json!(format!("arn:aws:s3:::{bucket}"))
        };
        statement.as_object_mut().unwrap().remove("Condition");
    }
    customer
        .create_role(&role_name, &setup["trust_policy"], &permissions)
        .await;
    let file = format!("{prefix}order 1+2 %2B 日本.csv");
    customer
        .s3
        .put_object()
        .bucket(&bucket)
        .key(&file)
        .body(b"id\n1\n".to_vec().into())
        .send()
        .await
        .unwrap();

    let report = api
        .post(&format!("/connectors/{id}/validate"), &json!({}))
        .await
        .body;
    assert_eq!(report["status"], "active", "{report:#}");
    let source = check(&report, "source_read");
    assert!(
        source["message"].as_str().unwrap().contains(&file),
        "{source}"
    );
    assert_eq!(check(&report, "move")["status"], "pass");
    assert_eq!(
        customer.keys_under(&bucket, "done/").await,
        Vec::<String>::new(),
        "copies removed"
    );
    assert_eq!(
        customer.keys_under(&bucket, prefix).await,
        vec![file],
        "the customer's file is untouched"
    );
}

/// An ingest role whose policy lets it write the validation folder but not error sidecars
/// beside the source files (an older or hand-written policy) fails the write check, naming the
/// grant, instead of failing the first run with bad rows.
#[tokio::test]
async fn an_ingest_role_without_the_sidecar_grant_fails_write_naming_it() {
    let stack = Stack::connect().await;
    let (customer, bucket, api) = bucket_and_tenant(&stack, "no-sidecar", "us-east-1").await;
    let role_name = format!("no-sidecar-{}", &bucket[bucket.len() - 8..]);
    let role_arn = format!("arn:aws:iam::{}:role/{role_name}", customer.account_id);
    let created = api
        .post(
            "/connectors",
            &json!({"name": "drops", "direction": "ingest", "bucket": bucket, "region": "us-east-1",
                "prefix": "incoming/", "auth": {"mode": "role", "role_arn": role_arn},
                "ingest": {"table": "orders"}}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.raw_body);
    let id = created.body["id"].as_str().unwrap();
    let setup = api.get(&format!("/connectors/{id}/setup")).await.body;
    let sidecars = format!("arn:aws:s3:::{bucket}/incoming/*.errors.jsonl");
    let mut permissions = setup["permission_policy"].clone();
    let mut removed = 0;
    for statement in permissions["Statement"].as_array_mut().unwrap() {
        if let Some(resources) = statement["Resource"].as_array_mut() {
            let before = resources.len();
            resources.retain(|r| r.as_str() != Some(sidecars.as_str()));
            removed += before - resources.len();
        }
    }
    assert_eq!(
        removed, 1,
        "the setup policy grants {sidecars}: {permissions:#}"
    );
    customer
        .create_role(&role_name, &setup["trust_policy"], &permissions)
        .await;

    let report = api
        .post(&format!("/connectors/{id}/validate"), &json!({}))
        .await
        .body;
    assert_eq!(report["status"], "failed", "{report:#}");
    let write = check(&report, "write");
    assert_eq!(write["status"], "fail", "{write}");
    assert_eq!(write["aws_error_code"], "AccessDenied", "{write}");
    let remediation = write["remediation"].as_str().unwrap();
    assert!(
        remediation.contains(&format!("lacks s3:PutObject on {sidecars}")),
        "{remediation}"
    );
    assert_eq!(check(&report, "read")["status"], "pass", "{report:#}");
    assert_eq!(check(&report, "delete")["status"], "pass", "{report:#}");
    assert_eq!(
        customer.keys_under(&bucket, "incoming/").await,
        Vec::<String>::new(),
        "no test object stays"
    );
}

#[tokio::test]
async fn validated_exports_become_due_for_the_scheduler() {
    let stack = Stack::connect().await;
    let (s, role) = role_connector(&stack, "sched", "us-east-1").await;
    set_up_as_instructed(&stack, &s, &role).await;
    let tick = |time: &str| {
        json!({"version": "0", "id": "tick", "detail-type": "Scheduled Event", "source": "aws.events",
               "account": "123456789012", "time": time, "region": "us-east-1", "resources": [], "detail": {}})
    };
    let due = |report: &Value| {
        report["due"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["connector_id"] == s.id.as_str())
    };
    // Pending validation: never due.
    let far = stack
        .invoke("scheduled-export", &tick("2099-01-01T00:00:00Z"))
        .await;
    assert!(
        !due(&far),
        "a connector pending validation is not scheduled"
    );

    let report = validate(&s).await;
    assert_eq!(report["status"], "active", "{report:#}");
    let connector = s.api.get(&format!("/connectors/{}", s.id)).await.body;
    let next_run = connector["next_run_at"].as_str().unwrap();
    let before = stack
        .invoke(
            "scheduled-export",
            &tick(connector["updated_at"].as_str().unwrap()),
        )
        .await;
    assert!(!due(&before), "not due before its next run ({next_run})");
    let after = stack
        .invoke("scheduled-export", &tick(&one_minute_after(next_run)))
        .await;
    assert!(due(&after), "due once {next_run} has passed: {after}");
}

/// `2026-11-24T02:00:00Z` → `2026-11-24T02:01:00Z` (schedules fire on whole hours here).
fn one_minute_after(at: &str) -> String {
    assert!(
        at.len() == 20 && at.ends_with(":00:00Z"),
        "a whole hour: {at}"
    );
    format!("{}01:00Z", &at[..14])
}
