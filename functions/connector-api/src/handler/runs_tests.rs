//! The runs routes over the in-memory fakes: every refusal, tenant isolation, paging, a queue
//! that refuses the message, and the view's shape. Events start from the samples in
//! `events/connector-api/`.

use chrono::{Duration, Utc};
use serde_json::{Value, json};
use shared::connectors::ConnectorService;
use shared::domain::connector::{Connector, ConnectorStatus};
use shared::domain::export::run::{
    FileTask, Run, RunError, RunMessage, RunPlan, RunStatus, RunTrigger, TablePlan, WrittenFile,
};
use shared::domain::ingest::file::FileStatus;
use shared::domain::setup::PlatformIdentity;
use shared::domain::setup::checks::ValidationReport;
use shared::error::{AwsCallError, StoreError};
use shared::fakes::ledger::MemoryLedger;
use shared::fakes::queue::MemoryRunQueue;
use shared::fakes::runs::{MemoryRunStore, RunOp};
use shared::fakes::{MemoryConnectorStore, MemorySecretStore};

use super::*;

const EXPORT: &str = "con_0000000000000000000000000000000";
const INGEST: &str = "con_1111111111111111111111111111111";
/// Another tenant's export connector.
const FOREIGN: &str = "con_2222222222222222222222222222222";

/// The runs routes never validate.
struct NoValidation;

impl Validate for NoValidation {
    async fn validate(&self, _: &Connector) -> ValidationReport {
        panic!("the runs routes must not validate")
    }
}

type TestApp = App<
    MemoryConnectorStore,
    MemorySecretStore,
    NoValidation,
    MemoryRunStore,
    MemoryRunQueue,
    MemoryLedger,
>;

fn connector(tenant: &str, id: &str, body: Value, status: ConnectorStatus) -> Connector {
    let mut c = domain::testing::stored_connector(body);
    c.tenant_id = tenant.into();
    c.connector_id = id.into();
    c.status = status;
    c
}

fn export_body() -> Value {
    json!({
        "name": "Nightly", "direction": "export", "bucket": "acme-data", "region": "us-east-1",
        "auth": {"mode": "bucket_policy"}, "export": {"tables": [{"name": "orders"}]}
    })
}

/// `acme` with an active export and an active ingest connector; `globex` with an active export.
fn app() -> TestApp {
    let store = MemoryConnectorStore::default();
    let ingest = json!({
        "name": "Drops", "direction": "ingest", "bucket": "acme-drops", "region": "us-east-1",
        "auth": {"mode": "bucket_policy"}, "ingest": {"table": "orders"}
    });
    store.seed(|state| {
        for c in [
            connector("acme", EXPORT, export_body(), ConnectorStatus::Active),
            connector("acme", INGEST, ingest, ConnectorStatus::Active),
            connector("globex", FOREIGN, export_body(), ConnectorStatus::Active),
        ] {
            state
                .connectors
                .insert((c.tenant_id.clone(), c.connector_id.clone()), c);
        }
    });
    let service = ConnectorService::new(
        store,
        MemorySecretStore::default(),
        "test/connectors/".into(),
        PlatformIdentity {
            principal_arn: "arn:aws:iam::123456789012:role/connector-access".into(),
            web_identity_provider: "oidc.example.com".into(),
            web_identity_audience: "sts.amazonaws.com".into(),
            ingest_queue_arn: "arn:aws:sqs:us-east-1:123456789012:ingest".into(),
        },
        shared::domain::connector::platform::OwnResources::default(),
    );
    App::new(
        service,
        NoValidation,
        MemoryRunStore::default(),
        MemoryRunQueue::default(),
        MemoryLedger::new(),
        "tenant_id".into(),
    )
}

fn sample(name: &str) -> Value {
    let path = format!(
        "{}/../../events/connector-api/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The sample event `name` for `tenant` (`None`: no verified claims), on `connector` (and
/// `run_id`, for the run route), with the raw query `query`.
fn event(
    name: &str,
    tenant: Option<&str>,
    connector: &str,
    run_id: Option<&str>,
    query: &str,
) -> Request {
    let mut e = sample(name);
    let mut path = format!("/connectors/{connector}/runs");
    e["pathParameters"]["id"] = json!(connector);
    if let Some(run_id) = run_id {
        path = format!("{path}/{run_id}");
        e["pathParameters"]["run_id"] = json!(run_id);
    }
    e["rawPath"] = json!(path);
    e["requestContext"]["http"]["path"] = json!(path);
    e["rawQueryString"] = json!(query);
    match tenant {
        Some(t) => e["requestContext"]["authorizer"]["jwt"]["claims"]["tenant_id"] = json!(t),
        None => {
            e["requestContext"]
                .as_object_mut()
                .unwrap()
                .remove("authorizer");
        }
    }
    lambda_http::request::from_str(&e.to_string()).unwrap()
}

struct Answer {
    status: u16,
    location: Option<String>,
    body: Value,
}

async fn call(app: &TestApp, request: Request) -> Answer {
    let response = app.handle(request).await.expect("handler never fails");
    let location = response
        .headers()
        .get(header::LOCATION)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = match response.body() {
        Body::Text(t) => serde_json::from_str(t).expect("JSON body"),
        other => panic!("unexpected body {other:?}"),
    };
    Answer {
        status: response.status().as_u16(),
        location,
        body,
    }
}

async fn start(app: &TestApp, tenant: &str, connector: &str) -> Answer {
    call(app, event("start-run", Some(tenant), connector, None, "")).await
}

/// A run id made at `at`, as `new_run_id` would have made it then.
fn run_id_at(at: chrono::DateTime<Utc>, n: u32) -> String {
    format!("run_{:012x}7000800000000000{n:04x}", at.timestamp_millis())
}

fn seeded_run(app: &TestApp, age: Duration, status: RunStatus, n: u32) -> String {
    let at = Utc::now() - age;
    let id = run_id_at(at, n);
    let mut run = Run::queued("acme", EXPORT, id.clone(), RunTrigger::Schedule, at);
    run.status = status;
    app.runs.insert(run);
    id
}

fn rule_of(body: &Value, field: &str) -> String {
    let fields = body["error"]["fields"]
        .as_array()
        .unwrap_or_else(|| panic!("no fields: {body}"));
    let f = fields
        .iter()
        .find(|f| f["field"] == field)
        .unwrap_or_else(|| panic!("no rule for {field}: {body}"));
    f["rule"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_started_run_is_recorded_queued_enqueued_and_answered_202() {
    let app = app();
    let out = start(&app, "acme", EXPORT).await;
    assert_eq!(out.status, 202, "{}", out.body);
    let run_id = out.body["run_id"].as_str().unwrap().to_owned();
    assert!(is_run_id(&run_id), "{run_id}");
    assert_eq!(
        out.location.as_deref(),
        Some(format!("/connectors/{EXPORT}/runs/{run_id}").as_str())
    );
    assert_eq!(out.body["status"], "queued");
    assert_eq!(out.body["trigger"], "api");
    assert_eq!(out.body["connector_id"], EXPORT);

    let stored = app.runs.state().runs;
    let run = &stored[&(EXPORT.to_owned(), run_id.clone())];
    assert_eq!(
        (run.status, run.trigger, run.tenant_id.as_str()),
        (RunStatus::Queued, RunTrigger::Api, "acme")
    );
    assert_eq!(app.queue.messages(), [RunMessage::start(run)]);
    // What the POST answered is what a GET shows.
    let read = call(
        &app,
        event("get-run", Some("acme"), EXPORT, Some(&run_id), ""),
    )
    .await;
    assert_eq!(read.status, 200);
    // A read adds the file tasks (none before the run is planned); the rest is the same.
    assert_eq!(read.body["tasks"], json!([]));
    assert_eq!(out.body["tasks"], Value::Null);
    let (mut read, mut out) = (read.body, out.body);
    read.as_object_mut().unwrap().remove("tasks");
    out.as_object_mut().unwrap().remove("tasks");
    assert_eq!(read, out);
}

#[tokio::test]
async fn a_failed_run_is_retried_with_its_plan_and_anything_else_is_refused() {
    let app = app();
    let run_id = start(&app, "acme", EXPORT).await.body["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let retry = |tenant| {
        let mut request = event("retry-run", tenant, EXPORT, Some(&run_id), "");
        *request.uri_mut() = format!("/connectors/{EXPORT}/runs/{run_id}/retry")
            .parse()
            .unwrap();
        request
    };
    // Queued: not failed yet.
    let refused = call(&app, retry(Some("acme"))).await;
    assert_eq!(refused.status, 409);
    assert_eq!(
        refused.body["error"]["code"], "run_not_failed",
        "{}",
        refused.body
    );
    assert!(rule_of(&refused.body, "status").contains("only a failed run"));

    // Failed, with a plan whose watermark is still in place: queued again, same plan.
    let mut run = app.runs.state().runs[&(EXPORT.to_owned(), run_id.clone())].clone();
    run.status = RunStatus::Failed;
    run.finished_at = Some(Utc::now());
    run.error = Some(shared::domain::export::run::RunError {
        reason: "access_denied".into(),
        message: "denied".into(),
        remediation: "grant s3:PutObject".into(),
        aws_error_code: Some("AccessDenied".into()),
    });
    app.runs.insert(run.clone());
    // The engine releases a failed run's markers.
    app.runs.release(&run).await.unwrap();
    let other = call(&app, retry(Some("globex"))).await;
    assert_eq!(other.status, 404, "another tenant's run does not exist");
    let sent = app.queue.messages().len();
    let retried = call(&app, retry(Some("acme"))).await;
    assert_eq!(retried.status, 202, "{}", retried.body);
    assert_eq!(retried.body["status"], "queued");
    assert_eq!(retried.body["error"], Value::Null);
    let messages = app.queue.messages();
    assert_eq!(messages.len(), sent + 1);
    assert_eq!(messages.last().unwrap(), &RunMessage::start(&run));
}

/// One refused start: every one is a 409 naming the field and the rule.
struct Refusal {
    what: &'static str,
    connector: &'static str,
    /// The connector's status, when not active.
    status: Option<ConnectorStatus>,
    code: &'static str,
    field: &'static str,
    words: &'static [&'static str],
}

#[tokio::test]
async fn refusals_name_the_field_and_rule() {
    let cases = [
        Refusal {
            what: "an ingest connector",
            connector: INGEST,
            status: None,
            code: "not_an_export",
            field: "direction",
            words: &["ingest", "export"],
        },
        Refusal {
            what: "an ingest connector that is not active either: direction first",
            connector: INGEST,
            status: Some(ConnectorStatus::PendingValidation),
            code: "not_an_export",
            field: "direction",
            words: &["ingest"],
        },
        Refusal {
            what: "pending validation",
            connector: EXPORT,
            status: Some(ConnectorStatus::PendingValidation),
            code: "connector_not_active",
            field: "status",
            words: &["is pending_validation", "validate", "/validate"],
        },
        Refusal {
            what: "failed validation",
            connector: EXPORT,
            status: Some(ConnectorStatus::Failed),
            code: "connector_not_active",
            field: "status",
            words: &["is failed", "validate"],
        },
        Refusal {
            what: "needs attention",
            connector: EXPORT,
            status: Some(ConnectorStatus::NeedsAttention),
            code: "connector_not_active",
            field: "status",
            words: &["is needs_attention", "validate"],
        },
    ];
    for case in cases {
        let app = app();
        let what = case.what;
        if let Some(status) = case.status {
            let key = ("acme".to_owned(), case.connector.to_owned());
            app.service
                .store()
                .seed(|state| state.connectors.get_mut(&key).unwrap().status = status);
        }
        let out = start(&app, "acme", case.connector).await;
        assert_eq!(out.status, 409, "{what}: {}", out.body);
        assert_eq!(out.body["error"]["code"], case.code, "{what}");
        let rule = rule_of(&out.body, case.field);
        for word in case.words {
            assert!(rule.contains(word), "{what}: {rule:?} lacks {word:?}");
        }
        assert!(app.runs.state().runs.is_empty(), "{what}: no run recorded");
        assert!(app.queue.messages().is_empty(), "{what}: nothing enqueued");
    }
}

#[tokio::test]
async fn a_run_in_flight_blocks_a_new_one_until_it_is_released_or_its_lease_lapses() {
    // (what, change to the first run's markers, blocks)
    type Change = fn(&TestApp, &Run);
    let cases: &[(&str, Option<Change>, bool)] = &[
        ("in flight", None, true),
        (
            "released when it finished",
            Some(|app, run| {
                app.runs.seed(|state| {
                    state
                        .claims
                        .in_flight
                        .retain(|_, held| held.run_id != run.run_id);
                    for seats in state.claims.seats.values_mut() {
                        seats.retain(|_, held| held.run_id != run.run_id);
                    }
                })
            }),
            false,
        ),
        (
            "its lease lapsed (its function died unrecorded)",
            Some(|app, _| {
                app.runs.seed(|state| {
                    for held in state.claims.in_flight.values_mut() {
                        held.expires_at = Utc::now().timestamp() - 1;
                    }
                })
            }),
            false,
        ),
    ];
    for (what, change, blocks) in cases {
        let app = app();
        let first = start(&app, "acme", EXPORT).await;
        assert_eq!(first.status, 202, "{what}: {}", first.body);
        let open = first.body["run_id"].as_str().unwrap().to_owned();
        let run = app.runs.state().runs[&(EXPORT.to_owned(), open.clone())].clone();
        if let Some(change) = change {
            change(&app, &run);
        }
        let out = start(&app, "acme", EXPORT).await;
        if *blocks {
            assert_eq!(out.status, 409, "{what}: {}", out.body);
            assert_eq!(out.body["error"]["code"], "run_in_progress", "{what}");
            assert_eq!(out.body["error"]["run_id"], json!(open), "{what}");
            let rule = rule_of(&out.body, "runs");
            assert!(
                rule.contains(&open) && rule.contains("queued"),
                "{what}: {rule}"
            );
        } else {
            assert_eq!(out.status, 202, "{what}: {}", out.body);
        }
    }
}

#[tokio::test]
async fn a_refused_enqueue_fails_the_run_and_answers_503() {
    let app = app();
    app.queue.fail_next(MemoryRunQueue::throttled());
    let out = start(&app, "acme", EXPORT).await;
    assert_eq!(out.status, 503, "{}", out.body);
    assert_eq!(out.body["error"]["code"], "temporarily_unavailable");
    let run_id = out.body["error"]["run_id"].as_str().unwrap().to_owned();
    assert!(
        out.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&run_id)
    );

    let run = &app.runs.state().runs[&(EXPORT.to_owned(), run_id.clone())];
    assert_eq!(run.status, RunStatus::Failed);
    assert!(run.finished_at.is_some());
    let error = run.error.as_ref().unwrap();
    assert_eq!(error.reason, "not_queued");
    assert_eq!(error.aws_error_code.as_deref(), Some("RequestThrottled"));
    assert!(!error.remediation.is_empty());
    assert!(app.queue.messages().is_empty());

    // The failed run is visible, and does not block the retry.
    let read = call(
        &app,
        event("get-run", Some("acme"), EXPORT, Some(&run_id), ""),
    )
    .await;
    assert_eq!(read.body["status"], "failed");
    assert_eq!(read.body["error"]["reason"], "not_queued");
    assert_eq!(read.body["error"]["aws_error_code"], "RequestThrottled");
    assert_eq!(start(&app, "acme", EXPORT).await.status, 202);
}

#[tokio::test]
async fn runs_table_failures_are_503_when_retryable_and_500_otherwise() {
    let throttled = AwsCallError {
        service: "dynamodb",
        operation: "PutItem",
        code: Some("ProvisionedThroughputExceededException".into()),
        message: "slow down".into(),
        http_status: Some(400),
        retryable: true,
    };
    let cases: Vec<(RunOp, StoreError, u16)> = vec![
        (RunOp::Claim, StoreError::Aws(throttled), 503),
        (RunOp::Claim, StoreError::Corrupt("x".into()), 500),
    ];
    for (op, error, status) in cases {
        let app = app();
        app.runs.fail_next(op, error);
        let out = start(&app, "acme", EXPORT).await;
        assert_eq!(out.status, status, "{op:?}: {}", out.body);
        assert!(app.queue.messages().is_empty(), "{op:?}: nothing enqueued");
        assert!(app.runs.state().runs.is_empty(), "{op:?}");
    }
}

#[tokio::test]
async fn other_tenants_and_unknown_ids_are_404() {
    let app = app();
    let theirs = start(&app, "globex", FOREIGN).await;
    assert_eq!(theirs.status, 202);
    let their_run = theirs.body["run_id"].as_str().unwrap().to_owned();
    let mine = start(&app, "acme", EXPORT).await.body["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let unknown = "con_9999999999999999999999999999999";
    let requests = [
        (
            "start on another tenant's connector",
            event("start-run", Some("acme"), FOREIGN, None, ""),
            "connector not found",
        ),
        (
            "list another tenant's runs",
            event("list-runs", Some("acme"), FOREIGN, None, ""),
            "connector not found",
        ),
        (
            "read another tenant's run",
            event("get-run", Some("acme"), FOREIGN, Some(&their_run), ""),
            "connector not found",
        ),
        (
            "start on an unknown connector",
            event("start-run", Some("acme"), unknown, None, ""),
            "connector not found",
        ),
        (
            "list an unknown connector",
            event("list-runs", Some("acme"), unknown, None, ""),
            "connector not found",
        ),
        (
            "another connector's run under mine",
            event("get-run", Some("acme"), EXPORT, Some(&their_run), ""),
            "run not found",
        ),
        (
            "my run under my other connector",
            event("get-run", Some("acme"), INGEST, Some(&mine), ""),
            "run not found",
        ),
        (
            "an unknown run",
            event(
                "get-run",
                Some("acme"),
                EXPORT,
                Some(&run_id_at(Utc::now(), 7)),
                "",
            ),
            "run not found",
        ),
        (
            "the watermarks item",
            event("get-run", Some("acme"), EXPORT, Some("watermarks"), ""),
            "run not found",
        ),
        (
            "a malformed run id",
            event("get-run", Some("acme"), EXPORT, Some("run_../x"), ""),
            "run not found",
        ),
    ];
    for (what, request, message) in requests {
        let out = call(&app, request).await;
        assert_eq!(out.status, 404, "{what}: {}", out.body);
        assert_eq!(out.body["error"]["code"], "not_found", "{what}");
        assert_eq!(out.body["error"]["message"], message, "{what}");
    }
    // Their run is untouched and still theirs.
    let read = call(
        &app,
        event("get-run", Some("globex"), FOREIGN, Some(&their_run), ""),
    )
    .await;
    assert_eq!(read.status, 200);
    assert_eq!(app.queue.messages().len(), 2);

    for name in ["start-run", "list-runs"] {
        let out = call(&app, event(name, None, EXPORT, None, "")).await;
        assert_eq!(out.status, 401, "{name}");
    }
}

#[tokio::test]
async fn listing_pages_newest_first_and_refuses_bad_parameters() {
    let app = app();
    let ids: Vec<String> = (0..5)
        .map(|i| {
            seeded_run(
                &app,
                Duration::minutes(90 - i),
                RunStatus::Succeeded,
                i as u32,
            )
        })
        .collect();
    let mut seen = Vec::new();
    let mut query = "limit=2".to_owned();
    let mut pages = 0;
    loop {
        let out = call(&app, event("list-runs", Some("acme"), EXPORT, None, &query)).await;
        assert_eq!(out.status, 200, "{}", out.body);
        pages += 1;
        let items = out.body["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(
            items
                .iter()
                .map(|r| r["run_id"].as_str().unwrap().to_owned()),
        );
        match out.body["next_token"].as_str() {
            Some(token) => query = format!("limit=2&next_token={token}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);

    let forged_connector_token = super::URL_SAFE_NO_PAD.encode(EXPORT);
    let cases = [
        ("limit=0".to_owned(), vec!["limit"]),
        ("limit=101".to_owned(), vec!["limit"]),
        (
            "limit=two&next_token=abc".to_owned(),
            vec!["limit", "next_token"],
        ),
        (
            format!("next_token={forged_connector_token}"),
            vec!["next_token"],
        ),
        (
            format!("next_token={}", super::URL_SAFE_NO_PAD.encode("watermarks")),
            vec!["next_token"],
        ),
    ];
    for (query, fields) in cases {
        let out = call(&app, event("list-runs", Some("acme"), EXPORT, None, &query)).await;
        assert_eq!(out.status, 400, "{query}: {}", out.body);
        assert_eq!(out.body["error"]["code"], "validation_failed");
        for field in fields {
            assert!(!rule_of(&out.body, field).is_empty(), "{query}");
        }
    }
    // A connector without runs lists none.
    let out = call(&app, event("list-runs", Some("acme"), INGEST, None, "")).await;
    assert_eq!(out.body, json!({"items": [], "next_token": null}));
}

#[tokio::test]
async fn the_view_shows_plan_files_outcome_and_links() {
    let app = app();
    let at = Utc::now() - Duration::minutes(10);
    let run_id = run_id_at(at, 1);
    let mut run = Run::queued("acme", EXPORT, run_id.clone(), RunTrigger::Schedule, at);
    run.status = RunStatus::Failed;
    run.started_at = Some(at + Duration::seconds(2));
    run.finished_at = Some(at + Duration::milliseconds(14_250));
    run.plan = Some(RunPlan {
        loaded_at: at,
        tables: vec![
            TablePlan {
                table: "orders".into(),
                columns: Some(vec!["id".into(), "total".into()]),
                after_seq: Some(41),
                through_seq: Some(57),
            },
            TablePlan {
                table: "customers".into(),
                columns: None,
                after_seq: None,
                through_seq: None,
            },
        ],
        files: vec![
            FileTask {
                table: "orders".into(),
                part_number: 1,
                key: "exports/orders/orders_1.csv.gz".into(),
                parts: Some((42, 50)),
                rows: 1000,
                lake_bytes: 52_000,
            },
            FileTask {
                table: "orders".into(),
                part_number: 2,
                key: "exports/orders/orders_2.csv.gz".into(),
                parts: Some((51, 57)),
                rows: 700,
                lake_bytes: 40_000,
            },
        ],
        manifest_key: "exports/_manifests/run.json".into(),
        done_key: None,
    });
    run.files = vec![WrittenFile {
        key: "exports/orders/orders_1.csv.gz".into(),
        table: "orders".into(),
        rows: 1000,
        bytes: 18_432,
        sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into(),
    }];
    run.error = Some(RunError {
        reason: "access_denied".into(),
        message: "PutObject was refused on exports/orders/orders_2.csv.gz".into(),
        remediation: "allow s3:PutObject on the prefix".into(),
        aws_error_code: Some("AccessDenied".into()),
    });
    app.runs.insert(run);

    let out = call(
        &app,
        event("get-run", Some("acme"), EXPORT, Some(&run_id), ""),
    )
    .await;
    assert_eq!(out.status, 200, "{}", out.body);
    let view = &out.body;
    let mut keys: Vec<&str> = view
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "bytes",
            "connector_id",
            "duration_ms",
            "error",
            "files",
            "finished_at",
            "links",
            "missed_slots",
            "plan",
            "requested_at",
            "rows",
            "run_id",
            "slot",
            "started_at",
            "status",
            "tasks",
            "trigger"
        ]
    );
    assert_eq!(view["status"], "failed");
    assert_eq!(view["trigger"], "schedule");
    assert_eq!(view["duration_ms"], 12_250);
    assert_eq!(
        (view["rows"].as_u64(), view["bytes"].as_u64()),
        (Some(1000), Some(18_432))
    );
    assert_eq!(
        view["plan"]["tables"],
        json!([
            {"table": "orders", "columns": ["id", "total"], "watermark": {"after": 41, "through": 57}},
            {"table": "customers", "columns": null, "watermark": {"after": null, "through": null}}
        ])
    );
    assert_eq!(
        view["plan"]["files"][1],
        json!({"key": "exports/orders/orders_2.csv.gz", "table": "orders", "rows": 700})
    );
    assert_eq!(view["plan"]["done_key"], Value::Null);
    assert_eq!(view["files"][0]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(
        view["error"],
        json!({
            "reason": "access_denied",
            "message": "PutObject was refused on exports/orders/orders_2.csv.gz",
            "remediation": "allow s3:PutObject on the prefix",
            "aws_error_code": "AccessDenied"
        })
    );
    assert_eq!(
        view["links"],
        json!({
            "self": format!("/connectors/{EXPORT}/runs/{run_id}"),
            "connector": format!("/connectors/{EXPORT}")
        })
    );

    // A queued run: the same members, not known yet.
    let queued = start(&app, "acme", EXPORT).await.body;
    for key in ["started_at", "finished_at", "duration_ms", "plan", "error"] {
        assert_eq!(queued[key], Value::Null, "{key}");
    }
    assert_eq!(queued["files"], json!([]));
    assert_eq!(
        (queued["rows"].as_u64(), queued["bytes"].as_u64()),
        (Some(0), Some(0))
    );
}

// ---------------------------------------------------------------------------------------------
// GET /connectors/{id}/files

fn files_event(tenant: &str, connector: &str, query: &str) -> Request {
    let mut e = sample("list-runs");
    let path = format!("/connectors/{connector}/files");
    e["pathParameters"]["id"] = json!(connector);
    e["routeKey"] = json!("GET /connectors/{id}/files");
    e["requestContext"]["routeKey"] = json!("GET /connectors/{id}/files");
    e["rawPath"] = json!(path);
    e["requestContext"]["http"]["path"] = json!(path);
    e["rawQueryString"] = json!(query);
    e["requestContext"]["authorizer"]["jwt"]["claims"]["tenant_id"] = json!(tenant);
    lambda_http::request::from_str(&e.to_string()).unwrap()
}

fn seeded_file(app: &TestApp, tenant: &str, key: &str, status: FileStatus, minute: u32) -> String {
    use chrono::TimeZone;
    use shared::domain::ingest::file::{FileIdentity, IngestFile, Intake, Placement, Verdict};
    let at = Utc.with_ymd_and_hms(2026, 12, 7, 9, minute, 0).unwrap();
    let file = FileIdentity::new("acme-drops", key, "e1");
    let record = IngestFile {
        object_id: file.object_id(),
        tenant_id: tenant.into(),
        connector_id: INGEST.into(),
        file,
        version_id: None,
        size: 10,
        table: "orders".into(),
        status,
        intake: Intake::Notification,
        attempts: 1,
        holder: None,
        lease_until: None,
        first_seen_at: at,
        updated_at: at,
        finished_at: Some(at),
        duration_ms: Some(12),
        verdict: Some(Verdict::Loaded { parts: vec![3] }),
        rows_loaded: 4,
        rows_rejected: 0,
        content_bytes: 10,
        placement: Some(Placement::Delete),
        moved: true,
        sidecar_key: None,
        error: None,
        version: 1,
    };
    let id = record.object_id.clone();
    app.files.seed(record);
    id
}

#[tokio::test]
async fn files_list_newest_first_by_status_and_only_the_tenants_own() {
    let app = app();
    let old = seeded_file(&app, "acme", "incoming/old.csv", FileStatus::Succeeded, 1);
    let failed = seeded_file(&app, "acme", "incoming/bad.csv", FileStatus::Failed, 2);
    let new = seeded_file(&app, "acme", "incoming/new.csv", FileStatus::Succeeded, 3);
    // Another tenant's record under the same connector id never shows.
    seeded_file(
        &app,
        "globex",
        "incoming/theirs.csv",
        FileStatus::Succeeded,
        0,
    );
    let ids = |answer: &Answer| -> Vec<String> {
        answer.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = call(&app, files_event("acme", INGEST, "")).await;
    assert_eq!(all.status, 200, "{}", all.body);
    assert_eq!(ids(&all), vec![new.clone(), failed.clone(), old.clone()]);
    assert_eq!(all.body["items"][0]["destination"]["action"], "deleted");
    assert_eq!(all.body["items"][0]["lake_parts"], json!([3]));
    let only_failed = call(&app, files_event("acme", INGEST, "status=failed")).await;
    assert_eq!(ids(&only_failed), vec![failed]);
    let first = call(&app, files_event("acme", INGEST, "limit=2")).await;
    assert_eq!(ids(&first), vec![new, ids(&all)[1].clone()]);
    let token = first.body["next_token"].as_str().unwrap().to_owned();
    let second = call(
        &app,
        files_event("acme", INGEST, &format!("limit=2&next_token={token}")),
    )
    .await;
    assert_eq!(ids(&second), vec![old]);
    assert_eq!(second.body["next_token"], Value::Null);
    for (query, field) in [
        ("status=done", "status"),
        ("next_token=bm9wZQ", "next_token"),
        ("limit=0", "limit"),
    ] {
        let refused = call(&app, files_event("acme", INGEST, query)).await;
        assert_eq!(refused.status, 400, "{query}");
        assert_eq!(
            refused.body["error"]["fields"][0]["field"], field,
            "{query}"
        );
    }
    assert_eq!(
        call(&app, files_event("globex", INGEST, "")).await.status,
        404
    );
}
