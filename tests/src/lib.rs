//! Harness for the integration tests and the walkthrough: reads `.local-stack/env` written by
//! `scripts/local-stack up`, builds SDK clients for the local AWS server, and calls the functions
//! through the Lambda Invoke API exactly as AWS would. Everything here fails loudly when the
//! stack is not running: a test that needs it must never pass without it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use aws_config::{Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_sdk_lambda::primitives::Blob;
use serde_json::{Value, json};
use shared::adapters::dynamodb::DynamoConnectorStore;
use shared::domain::connector::Connector;
use shared::error::StoreError;
use shared::ports::{BucketClaims, ClaimsWrite, ConnectorStore, Page};

pub mod bench;
pub mod fault_proxy;

/// Values from `.local-stack/env`.
#[derive(Debug, Clone)]
pub struct StackEnv {
    pub vars: HashMap<String, String>,
}

impl StackEnv {
    pub fn repo_root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("tests/ sits in the repository")
            .to_path_buf()
    }

    /// Reads the env file; panics with the command to run when it is missing.
    pub fn load() -> Self {
        let path = std::env::var("LOCAL_STACK_ENV")
            .map(PathBuf::from)
            .unwrap_or_else(|_| Self::repo_root().join(".local-stack/env"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "the local AWS stack is not set up ({}: {e}); start it with `scripts/local-stack up`",
                path.display()
            )
        });
        let vars = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
            .collect();
        Self { vars }
    }

    pub fn get(&self, key: &str) -> &str {
        self.vars.get(key).unwrap_or_else(|| {
            panic!("{key} is missing from .local-stack/env; re-run `scripts/local-stack up`")
        })
    }
}

/// Clients and helpers bound to the running local stack.
pub struct Stack {
    pub env: StackEnv,
    pub sdk: SdkConfig,
    lambda: aws_sdk_lambda::Client,
}

impl Stack {
    /// Connects and checks that both the AWS server and the functions answer.
    pub async fn connect() -> Self {
        let env = StackEnv::load();
        let sdk = sdk_config(&env, None);
        let lambda_config = aws_sdk_lambda::config::Builder::from(&sdk)
            .endpoint_url(env.get("LAMBDA_ENDPOINT_URL"))
            .build();
        let stack = Self {
            lambda: aws_sdk_lambda::Client::from_conf(lambda_config),
            sdk,
            env,
        };
        let tables = tokio::time::timeout(
            Duration::from_secs(10),
            stack.dynamodb().list_tables().send(),
        )
        .await;
        match tables {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!(
                "the local AWS server at {} refused a call ({:?}); restart it with `scripts/local-stack down && scripts/local-stack up`",
                stack.env.get("AWS_ENDPOINT_URL"),
                e
            ),
            Err(_) => panic!(
                "the local AWS server at {} did not answer within 10 s; start it with `scripts/local-stack up`",
                stack.env.get("AWS_ENDPOINT_URL")
            ),
        }
        stack
    }

    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk)
    }

    pub fn secrets(&self) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&self.sdk)
    }

    pub fn s3(&self) -> aws_sdk_s3::Client {
        shared::aws::s3_client(&self.sdk)
    }

    pub fn iam(&self) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(&self.sdk)
    }

    /// Invokes a function through the Lambda Invoke API and returns its JSON result.
    pub async fn invoke(&self, function: &str, payload: &Value) -> Value {
        let out = self
            .lambda
            .invoke()
            .function_name(function)
            .payload(Blob::new(serde_json::to_vec(payload).expect("JSON")))
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "invoking {function} at {} failed: {e:?}; are the functions running (`scripts/local-stack status`)?",
                    self.env.get("LAMBDA_ENDPOINT_URL")
                )
            });
        let bytes = out.payload.map(Blob::into_inner).unwrap_or_default();
        if let Some(error) = out.function_error {
            panic!(
                "{function} failed ({error}): {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "{function} returned non-JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        })
    }

    /// An API client acting as `tenant` (its identity in the JWT claims API Gateway verified).
    pub fn api(&self, tenant: &str) -> Api<'_> {
        Api {
            stack: self,
            tenant: Some(tenant.to_owned()),
        }
    }

    /// An API client with no verified identity.
    pub fn anonymous_api(&self) -> Api<'_> {
        Api {
            stack: self,
            tenant: None,
        }
    }

    /// The raw connectors-table item, to check what is (and is not) stored.
    pub async fn stored_item(&self, tenant: &str, connector_id: &str) -> Option<Value> {
        use aws_sdk_dynamodb::types::AttributeValue;
        let out = self
            .dynamodb()
            .get_item()
            .table_name(self.env.get("CONNECTORS_TABLE"))
            .key("tenant_id", AttributeValue::S(tenant.to_owned()))
            .key("connector_id", AttributeValue::S(connector_id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .expect("GetItem on the local stack");
        out.item.map(|item| attribute_map_to_json(&item))
    }
}

/// SDK configuration for the local server, with the stack's admin keys or the given ones.
pub fn sdk_config(env: &StackEnv, credentials: Option<Credentials>) -> SdkConfig {
    let credentials = credentials.unwrap_or_else(|| {
        Credentials::new(
            env.get("AWS_ACCESS_KEY_ID"),
            env.get("AWS_SECRET_ACCESS_KEY"),
            None,
            None,
            "local-stack-env",
        )
    });
    SdkConfig::builder()
        .behavior_version(shared::aws::behavior_version())
        .region(Region::new(env.get("AWS_REGION").to_owned()))
        .endpoint_url(env.get("AWS_ENDPOINT_URL"))
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(credentials),
        )
        .build()
}

/// A DynamoDB item as plain JSON (numbers as strings), for assertions.
pub fn attribute_map_to_json(
    item: &HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
) -> Value {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    fn one(v: &A) -> Value {
        match v {
            A::S(s) => json!(s),
            A::N(n) => json!(n),
            A::Bool(b) => json!(b),
            A::Null(_) => Value::Null,
            A::L(list) => Value::Array(list.iter().map(one).collect()),
            A::M(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), one(v))).collect()),
            A::Ss(list) => json!(list),
            other => json!(format!("{other:?}")),
        }
    }
    Value::Object(item.iter().map(|(k, v)| (k.clone(), one(v))).collect())
}

/// The API as a customer's client sees it, through API Gateway's payload v2.
pub struct Api<'a> {
    stack: &'a Stack,
    tenant: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: u16,
    pub headers: HashMap<String, String>,
    /// The body as JSON (`Null` when empty).
    pub body: Value,
    pub raw_body: String,
}

impl ApiResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The `field` names of a 4xx body.
    pub fn error_fields(&self) -> Vec<String> {
        self.body["error"]["fields"]
            .as_array()
            .map(|f| {
                f.iter()
                    .filter_map(|e| e["field"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[derive(Default)]
pub struct Call<'b> {
    pub body: Option<&'b str>,
    pub headers: &'b [(&'b str, &'b str)],
    pub query: &'b [(&'b str, &'b str)],
}

impl Api<'_> {
    /// The tenant this client acts as ("" when anonymous).
    pub fn tenant(&self) -> &str {
        self.tenant.as_deref().unwrap_or_default()
    }

    pub async fn get(&self, path: &str) -> ApiResponse {
        self.call("GET", path, Call::default()).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> ApiResponse {
        let text = body.to_string();
        self.call(
            "POST",
            path,
            Call {
                body: Some(&text),
                ..Call::default()
            },
        )
        .await
    }

    pub async fn patch(&self, path: &str, version: u64, body: &Value) -> ApiResponse {
        let text = body.to_string();
        let etag = format!("\"{version}\"");
        self.call(
            "PATCH",
            path,
            Call {
                body: Some(&text),
                headers: &[("if-match", &etag)],
                ..Call::default()
            },
        )
        .await
    }

    pub async fn delete(&self, path: &str) -> ApiResponse {
        self.call("DELETE", path, Call::default()).await
    }

    /// Every page of `GET /connectors` at `limit` per page, following `next_token`; each page is
    /// returned as answered (the caller checks statuses and sizes).
    pub async fn pages(&self, limit: u32) -> Vec<ApiResponse> {
        let limit = limit.to_string();
        let mut pages: Vec<ApiResponse> = Vec::new();
        loop {
            let token = pages
                .last()
                .and_then(|p| p.body["next_token"].as_str().map(str::to_owned));
            if !pages.is_empty() && token.is_none() {
                return pages;
            }
            let mut query = vec![("limit", limit.as_str())];
            if let Some(t) = &token {
                query.push(("next_token", t.as_str()));
            }
            let page = self
                .call(
                    "GET",
                    "/connectors",
                    Call {
                        query: &query,
                        ..Call::default()
                    },
                )
                .await;
            let failed = page.status != 200;
            pages.push(page);
            if failed {
                return pages;
            }
        }
    }

    pub async fn call(&self, method: &str, path: &str, call: Call<'_>) -> ApiResponse {
        let event = api_event(self.tenant.as_deref(), method, path, &call);
        let out = self.stack.invoke("connector-api", &event).await;
        let status = out["statusCode"].as_u64().expect("statusCode") as u16;
        let headers = out["headers"]
            .as_object()
            .map(|h| {
                h.iter()
                    .map(|(k, v)| {
                        (
                            k.to_ascii_lowercase(),
                            v.as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let raw_body = match (&out["body"], out["isBase64Encoded"].as_bool()) {
            (Value::String(b), Some(true)) => {
                use base64::Engine as _;
                String::from_utf8(
                    base64::engine::general_purpose::STANDARD
                        .decode(b)
                        .expect("base64 body"),
                )
                .expect("UTF-8 body")
            }
            (Value::String(b), _) => b.clone(),
            _ => String::new(),
        };
        let body = if raw_body.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&raw_body)
                .unwrap_or_else(|e| panic!("{method} {path}: non-JSON body ({e}): {raw_body}"))
        };
        ApiResponse {
            status,
            headers,
            body,
            raw_body,
        }
    }
}

/// The routes of `docs/openapi.json` as (method, template), literal ones first. A unit test of
/// connector-api keeps that document equal to its route table and to template.yaml's HttpApi
/// routes, so these are the routes API Gateway matches.
fn documented_routes() -> &'static [(String, String)] {
    static ROUTES: OnceLock<Vec<(String, String)>> = OnceLock::new();
    ROUTES.get_or_init(|| {
        let doc: Value = serde_json::from_str(include_str!("../../docs/openapi.json"))
            .expect("docs/openapi.json is JSON");
        let mut routes: Vec<(String, String)> = doc["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .flat_map(|(template, item)| {
                item.as_object()
                    .into_iter()
                    .flatten()
                    .map(|(method, _)| method.to_uppercase())
                    .filter(|m| {
                        ["GET", "PUT", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS"]
                            .contains(&m.as_str())
                    })
                    .map(move |m| (m, template.clone()))
            })
            .collect();
        routes.sort_by_key(|(_, template)| (template.matches('{').count(), template.clone()));
        routes
    })
}

/// What API Gateway matches for a request: the route key (`GET /connectors/{id}`) and the path
/// parameters, decoded; `("$default", None)` when no route matches. (Deployed, such a request
/// never reaches the function; here it does, and the function answers 404 itself.)
pub fn route_for(method: &str, path: &str) -> (String, Option<Value>) {
    let segments: Vec<&str> = path.split('/').collect();
    for (route_method, template) in documented_routes() {
        if !route_method.eq_ignore_ascii_case(method) {
            continue;
        }
        let parts: Vec<&str> = template.split('/').collect();
        if parts.len() != segments.len() {
            continue;
        }
        let mut params = serde_json::Map::new();
        let fits = parts.iter().zip(&segments).all(|(part, segment)| {
            match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(name) if !segment.is_empty() => {
                    let value = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
                    params.insert(name.to_owned(), json!(value));
                    true
                }
                Some(_) => false,
                None => part == segment,
            }
        });
        if fits {
            let params = (!params.is_empty()).then_some(Value::Object(params));
            return (format!("{route_method} {template}"), params);
        }
    }
    ("$default".to_owned(), None)
}

/// An API Gateway HTTP API (payload v2) event, as the JWT authorizer hands it to the function:
/// with the route key and path parameters API Gateway would match (`route_for`).
pub fn api_event(tenant: Option<&str>, method: &str, path: &str, call: &Call<'_>) -> Value {
    let (route_key, path_parameters) = route_for(method, path);
    let query: Vec<String> = call.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut headers = serde_json::Map::new();
    headers.insert("content-type".into(), json!("application/json"));
    for (k, v) in call.headers {
        headers.insert(k.to_ascii_lowercase(), json!(v));
    }
    let mut context = json!({
        "accountId": "123456789012",
        "apiId": "local",
        "domainName": "localhost",
        "domainPrefix": "localhost",
        "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "tests"},
        "requestId": uuid::Uuid::new_v4().to_string(),
        "routeKey": route_key,
        "stage": "$default",
        "time": "23/Nov/2026:14:00:00 +0000",
        "timeEpoch": 1_795_442_400_000_i64
    });
    if let Some(tenant) = tenant {
        context["authorizer"] = json!({"jwt": {"claims": {"tenant_id": tenant, "sub": format!("user@{tenant}")}, "scopes": null}});
    }
    let mut event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": query.join("&"),
        "headers": headers,
        "requestContext": context,
        "isBase64Encoded": false
    });
    if let Some(body) = call.body {
        event["body"] = json!(body);
    }
    if let Some(params) = path_parameters {
        event["pathParameters"] = params;
    }
    event
}

/// A tenant id no other test uses, so tests run in parallel and re-run against a live stack.
pub fn unique_tenant(label: &str) -> String {
    format!(
        "t-{label}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// A bucket name no other test uses.
pub fn unique_bucket(label: &str) -> String {
    format!(
        "{label}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// The stand-in customer: its own IAM roles, users and buckets. They live in the stack's account
/// because moto evaluates trust and role policies only within the caller's account (a role in
/// another account is assumable whatever its trust policy says, and its policies are not found),
/// so only same-account roles give real denials.
pub struct Customer {
    pub account_id: String,
    pub s3: aws_sdk_s3::Client,
    pub iam: aws_sdk_iam::Client,
}

impl Stack {
    pub fn customer(&self) -> Customer {
        Customer {
            account_id: self.env.get("LOCAL_STACK_ACCOUNT_ID").to_owned(),
            s3: self.s3(),
            iam: self.iam(),
        }
    }
}

/// A connector set up as a customer follows the setup endpoint, and validated.
pub struct ActiveConnector {
    pub id: String,
    pub bucket: String,
    /// The customer's role (same account, see [`Customer`]).
    pub role: String,
    /// What `GET /connectors/{id}/setup` answered.
    pub setup: Value,
}

impl Customer {
    /// A new bucket in us-east-1 and a connector on it: `body` (name, direction, prefix,
    /// options) gains the bucket, the region and role auth; the role is created with the
    /// setup endpoint's trust and permission policies, and validation must make it active.
    pub async fn active_connector(
        &self,
        api: &Api<'_>,
        label: &str,
        mut body: Value,
    ) -> ActiveConnector {
        let bucket = unique_bucket(label);
        self.create_bucket(&bucket, "us-east-1").await;
        let role = format!("{label}-{}", &bucket[bucket.len() - 8..]);
        let fields = body.as_object_mut().expect("a connector body is an object");
        fields.insert("bucket".into(), json!(bucket));
        fields.insert("region".into(), json!("us-east-1"));
        fields.insert(
            "auth".into(),
            json!({"mode": "role", "role_arn": format!("arn:aws:iam::{}:role/{role}", self.account_id)}),
        );
        let created = api.post("/connectors", &body).await;
        assert_eq!(created.status, 201, "{}", created.raw_body);
        let id = created.body["id"].as_str().unwrap().to_owned();
        let setup = api.get(&format!("/connectors/{id}/setup")).await.body;
        self.create_role(&role, &setup["trust_policy"], &setup["permission_policy"])
            .await;
        let report = api
            .post(&format!("/connectors/{id}/validate"), &json!({}))
            .await;
        assert_eq!(report.body["status"], "active", "{}", report.raw_body);
        ActiveConnector {
            id,
            bucket,
            role,
            setup,
        }
    }

    /// An object's bytes and Content-Type.
    pub async fn object(&self, bucket: &str, key: &str) -> (Vec<u8>, Option<String>) {
        let out = self
            .s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GetObject {key}: {e:?}"));
        let content_type = out.content_type().map(str::to_owned);
        let bytes = out.body.collect().await.unwrap().into_bytes().to_vec();
        (bytes, content_type)
    }

    pub async fn create_bucket(&self, name: &str, region: &str) {
        let mut request = self.s3.create_bucket().bucket(name);
        if region != "us-east-1" {
            request = request.create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(region))
                    .build(),
            );
        }
        request.send().await.expect("customer CreateBucket");
    }

    /// Creates a role with the given trust policy and inline permission policy; returns its ARN.
    pub async fn create_role(&self, name: &str, trust: &Value, permissions: &Value) -> String {
        let role = self
            .iam
            .create_role()
            .role_name(name)
            .assume_role_policy_document(trust.to_string())
            .send()
            .await
            .expect("customer CreateRole");
        self.put_role_policy(name, permissions).await;
        role.role.expect("role").arn
    }

    pub async fn put_role_policy(&self, role: &str, permissions: &Value) {
        self.iam
            .put_role_policy()
            .role_name(role)
            .policy_name("connector")
            .policy_document(permissions.to_string())
            .send()
            .await
            .expect("customer PutRolePolicy");
    }

    /// An IAM user (with the policy, if any) and a new access key: (key id, secret).
    pub async fn create_user_with_key(
        &self,
        name: &str,
        permissions: Option<&Value>,
    ) -> (String, String) {
        self.iam
            .create_user()
            .user_name(name)
            .send()
            .await
            .expect("CreateUser");
        if let Some(permissions) = permissions {
            self.put_user_policy(name, permissions).await;
        }
        let key = self
            .iam
            .create_access_key()
            .user_name(name)
            .send()
            .await
            .expect("CreateAccessKey")
            .access_key
            .expect("key");
        (key.access_key_id, key.secret_access_key)
    }

    pub async fn put_user_policy(&self, user: &str, permissions: &Value) {
        self.iam
            .put_user_policy()
            .user_name(user)
            .policy_name("connector")
            .policy_document(permissions.to_string())
            .send()
            .await
            .expect("PutUserPolicy");
    }

    pub async fn put_object(&self, bucket: &str, key: &str, body: Vec<u8>) {
        self.s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(aws_sdk_s3::primitives::ByteStream::from(body))
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutObject {key}: {e:?}"));
    }

    /// Applies the bucket notification `GET …/setup` gave (`event_notification`) as a customer
    /// would: the queue, the `s3:ObjectCreated:*` events and the prefix filter it names.
    pub async fn apply_event_notification(&self, bucket: &str, notification: &Value) {
        use aws_sdk_s3::types::{
            Event, FilterRule, FilterRuleName, NotificationConfiguration,
            NotificationConfigurationFilter, QueueConfiguration, S3KeyFilter,
        };
        let config = &notification["QueueConfigurations"][0];
        let prefix = config["Filter"]["Key"]["FilterRules"][0]["Value"]
            .as_str()
            .expect("a prefix filter");
        let prefix_rule = FilterRule::builder()
            .name(FilterRuleName::Prefix)
            .value(prefix)
            .build();
        let queue = QueueConfiguration::builder()
            .id(config["Id"].as_str().expect("an Id"))
            .queue_arn(config["QueueArn"].as_str().expect("a QueueArn"))
            .events(Event::from("s3:ObjectCreated:*"))
            .filter(
                NotificationConfigurationFilter::builder()
                    .key(S3KeyFilter::builder().filter_rules(prefix_rule).build())
                    .build(),
            )
            .build()
            .expect("a queue configuration");
        self.s3
            .put_bucket_notification_configuration()
            .bucket(bucket)
            .notification_configuration(
                NotificationConfiguration::builder()
                    .queue_configurations(queue)
                    .build(),
            )
            .send()
            .await
            .expect("PutBucketNotificationConfiguration");
    }

    /// Keys under `prefix` (to check what validation left behind).
    pub async fn keys_under(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let out = self
            .s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .send()
            .await
            .expect("customer ListObjectsV2");
        out.contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect()
    }
}

/// The policy with `action` removed from every statement (statements left empty are dropped).
pub fn without_action(policy: &Value, action: &str) -> Value {
    let mut policy = policy.clone();
    if let Some(statements) = policy["Statement"].as_array_mut() {
        for s in statements.iter_mut() {
            if let Some(actions) = s["Action"].as_array_mut() {
                actions.retain(|a| a != action);
            }
        }
        statements.retain(|s| s["Action"].as_array().is_none_or(|a| !a.is_empty()));
    }
    policy
}

/// Lower-case hex, as S3 checksums and the manifest's SHA-256 are written.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The connectors table, with `due` narrowed to one tenant's connectors: a tick run by a test
/// from a future time must not start other tests' connectors, which share the table.
pub struct OneTenant {
    tenant_id: String,
    store: DynamoConnectorStore,
}

impl ConnectorStore for OneTenant {
    async fn get(&self, tenant_id: &str, id: &str) -> Result<Option<Connector>, StoreError> {
        self.store.get(tenant_id, id).await
    }

    async fn list(
        &self,
        tenant_id: &str,
        limit: u32,
        after: Option<&str>,
    ) -> Result<Page<Connector>, StoreError> {
        self.store.list(tenant_id, limit, after).await
    }

    async fn list_by_bucket(&self, bucket: &str) -> Result<Vec<Connector>, StoreError> {
        self.store.list_by_bucket(bucket).await
    }

    async fn due(
        &self,
        shard: &str,
        until_epoch: i64,
        limit: u32,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let mut keys = self.store.due(shard, until_epoch, limit).await?;
        keys.retain(|(tenant, _)| *tenant == self.tenant_id);
        Ok(keys)
    }

    async fn bucket_claims(
        &self,
        tenant_id: &str,
        bucket: &str,
    ) -> Result<BucketClaims, StoreError> {
        self.store.bucket_claims(tenant_id, bucket).await
    }

    async fn create(&self, connector: &Connector, claims: &ClaimsWrite) -> Result<(), StoreError> {
        self.store.create(connector, claims).await
    }

    async fn replace(
        &self,
        connector: &Connector,
        expected_version: u64,
        claims: &[ClaimsWrite],
    ) -> Result<(), StoreError> {
        self.store
            .replace(connector, expected_version, claims)
            .await
    }

    async fn delete(
        &self,
        tenant_id: &str,
        id: &str,
        expected_version: u64,
        claims: Option<&ClaimsWrite>,
    ) -> Result<(), StoreError> {
        self.store
            .delete(tenant_id, id, expected_version, claims)
            .await
    }
}

impl Stack {
    /// The connectors table as one tenant's ticks see it.
    pub fn one_tenant(&self, tenant_id: &str) -> OneTenant {
        OneTenant {
            tenant_id: tenant_id.to_owned(),
            store: DynamoConnectorStore::new(self.dynamodb(), self.env.get("CONNECTORS_TABLE")),
        }
    }

    /// The functions' settings, read from the env file they run with.
    pub fn settings(&self) -> shared::config::Settings {
        shared::config::Settings::from_lookup(|key| self.env.vars.get(key).cloned())
            .unwrap_or_else(|e| panic!("the functions' settings in .local-stack/env: {e}"))
    }
}

/// The value of a lake object's `lake-object` tag: staged until its load commits it.
pub async fn lake_object_tag(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> String {
    let tags = s3
        .get_object_tagging()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetObjectTagging {key}: {e:?}"));
    let values: Vec<&str> = tags
        .tag_set()
        .iter()
        .filter(|t| t.key() == shared::adapters::lake::LAKE_OBJECT_TAG)
        .map(|t| t.value())
        .collect();
    assert_eq!(values.len(), 1, "{key}: {:?}", tags.tag_set());
    values[0].to_owned()
}

#[cfg(test)]
mod route_tests {
    use super::*;

    /// The event builder matches routes as API Gateway does (pure: no stack needed).
    #[test]
    fn route_for_matches_like_api_gateway() {
        let cases: &[(&str, &str, &str, Value)] = &[
            ("POST", "/connectors", "POST /connectors", Value::Null),
            ("GET", "/connectors", "GET /connectors", Value::Null),
            (
                "GET",
                "/connectors/con_1",
                "GET /connectors/{id}",
                json!({"id": "con_1"}),
            ),
            (
                "POST",
                "/connectors/con_1/validate",
                "POST /connectors/{id}/validate",
                json!({"id": "con_1"}),
            ),
            (
                "GET",
                "/connectors/a%20b/setup",
                "GET /connectors/{id}/setup",
                json!({"id": "a b"}),
            ),
            ("PUT", "/connectors/con_1", "$default", Value::Null),
            ("GET", "/connectors/", "$default", Value::Null),
            ("GET", "/connectors//setup", "$default", Value::Null),
            ("GET", "/tenants", "$default", Value::Null),
        ];
        for (method, path, key, params) in cases {
            let (got_key, got_params) = route_for(method, path);
            assert_eq!(got_key, *key, "{method} {path}");
            assert_eq!(
                got_params.unwrap_or(Value::Null),
                *params,
                "{method} {path}"
            );
        }
        let event = api_event(
            Some("acme"),
            "DELETE",
            "/connectors/con_9",
            &Call::default(),
        );
        assert_eq!(event["routeKey"], "DELETE /connectors/{id}");
        assert_eq!(
            event["requestContext"]["routeKey"],
            "DELETE /connectors/{id}"
        );
        assert_eq!(event["pathParameters"]["id"], "con_9");
    }
}
