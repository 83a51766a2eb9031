//! Handler tests driven by the sample events in `events/connector-api/`. They cover everything
//! decided before the first AWS call (identity, routing, body and header parsing, validation);
//! the AWS-backed paths are exercised against the local stack in `tests/`.

use super::*;
use shared::adapters::dynamodb::DynamoConnectorStore;
use shared::adapters::secrets_manager::SecretsManagerStore;
use shared::domain::setup::PlatformIdentity;
use shared::validation::Validator;

fn event_text(name: &str) -> String {
    let path = format!(
        "{}/../../events/connector-api/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn event(name: &str) -> Request {
    lambda_http::request::from_str(&event_text(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The real adapters, pointed at an address nothing listens on: the cases below must answer
/// before any AWS call, and would fail loudly if one were made.
fn app() -> App<
    DynamoConnectorStore,
    SecretsManagerStore,
    impl shared::validation::Validate,
    shared::adapters::runs::DynamoRunStore,
    shared::adapters::sqs::SqsRunQueue,
    shared::adapters::ledger::DynamoIngestLedger,
> {
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(shared::aws::behavior_version())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url("http://127.0.0.1:9")
        .build();
    let broker = shared::credentials::CredentialBroker::new(
        shared::adapters::sts::StsTokens::new(&sdk),
        SecretsManagerStore::new(shared::aws::secrets_client(&sdk)),
        "arn:aws:iam::123456789012:role/connector-access".into(),
        shared::credentials::TokenSource::None,
        shared::domain::connector::platform::OwnResources::default(),
    );
    let validator = Validator::new(
        std::sync::Arc::new(broker),
        shared::adapters::s3::S3Storage::new(&sdk),
        std::time::Duration::from_secs(1),
    );
    let service = ConnectorService::new(
        DynamoConnectorStore::new(shared::aws::dynamodb_client(&sdk), "connectors"),
        SecretsManagerStore::new(shared::aws::secrets_client(&sdk)),
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
        validator,
        shared::adapters::runs::DynamoRunStore::new(shared::aws::dynamodb_client(&sdk), "runs"),
        shared::adapters::sqs::SqsRunQueue::new(
            shared::aws::sqs_client(&sdk),
            "http://127.0.0.1:9/123456789012/export",
        ),
        shared::adapters::ledger::DynamoIngestLedger::new(
            shared::aws::dynamodb_client(&sdk),
            "ledger",
        ),
        "tenant_id".into(),
    )
}

async fn respond(request: Request) -> (StatusCode, Value) {
    let response = app().handle(request).await.expect("handler never fails");
    let status = response.status();
    let body = match response.body() {
        Body::Text(t) => serde_json::from_str(t).expect("JSON body"),
        Body::Empty => Value::Null,
        other => panic!("unexpected body {other:?}"),
    };
    (status, body)
}

fn field_names(body: &Value) -> Vec<String> {
    body["error"]["fields"]
        .as_array()
        .map(|fields| {
            fields
                .iter()
                .map(|f| f["field"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn answers_before_any_aws_call() {
    // (event file, status, error code, fields named in the error)
    let cases: &[(&str, u16, &str, &[&str])] = &[
        ("create-no-claims", 401, "unauthenticated", &[]),
        ("create-no-tenant-claim", 401, "unauthenticated", &[]),
        ("create-not-json", 400, "invalid_json", &["body"]),
        (
            "create-invalid-fields",
            400,
            "validation_failed",
            &[
                "external_id",
                "name",
                "bucket",
                "region",
                "prefix",
                "auth.role_arn",
                "schedule",
                "export.format.delimiter",
                "export.key_template",
                "export.max_file_size_mb",
                "colour",
            ],
        ),
        (
            "list-bad-params",
            400,
            "validation_failed",
            &["limit", "next_token"],
        ),
        (
            "update-without-if-match",
            428,
            "precondition_required",
            &["If-Match"],
        ),
        ("unknown-route", 404, "not_found", &[]),
    ];
    for (name, status, code, fields) in cases {
        let (got_status, body) = respond(event(name)).await;
        assert_eq!(got_status.as_u16(), *status, "{name}: {body}");
        assert_eq!(body["error"]["code"], *code, "{name}: {body}");
        let got_fields = field_names(&body);
        for field in *fields {
            assert!(
                got_fields.iter().any(|f| f == field),
                "{name}: expected a rule for {field}, got {got_fields:?}"
            );
        }
        if !fields.is_empty() {
            for f in body["error"]["fields"].as_array().unwrap() {
                assert!(
                    !f["rule"].as_str().unwrap().is_empty(),
                    "{name}: every field names its rule"
                );
            }
        }
    }
}

#[tokio::test]
async fn bodies_over_64_kib_are_refused_with_413() {
    let mut raw: Value = serde_json::from_str(&event_text("create-export-role")).unwrap();
    let mut body: Value = serde_json::from_str(raw["body"].as_str().unwrap()).unwrap();
    body["name"] = json!("x".repeat(MAX_BODY_BYTES));
    raw["body"] = json!(body.to_string());
    let request = lambda_http::request::from_str(&raw.to_string()).unwrap();
    let (status, body) = respond(request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"]["code"], "payload_too_large");
}

/// Dispatch follows the route key API Gateway matched, not the raw path; a key outside the
/// table (API Gateway answers undeclared methods and paths itself, so no 405 reaches us) is a
/// 404, as is a route's missing or malformed `{id}` path parameter.
#[tokio::test]
async fn dispatch_is_by_route_key_and_path_parameters() {
    type Edit = fn(&mut Value);
    let cases: &[(&str, &str, Edit, u16, &str)] = &[
        (
            "a method no route declares",
            "get-connector",
            |e| {
                e["requestContext"]["http"]["method"] = json!("PUT");
                e["requestContext"]["routeKey"] = json!("PUT /connectors/{id}");
            },
            404,
            "not_found",
        ),
        (
            "the $default route",
            "get-connector",
            |e| e["requestContext"]["routeKey"] = json!("$default"),
            404,
            "not_found",
        ),
        (
            "no route key",
            "get-connector",
            |e| {
                e["requestContext"]
                    .as_object_mut()
                    .unwrap()
                    .remove("routeKey");
            },
            404,
            "not_found",
        ),
        (
            "the route key, not the raw path, decides",
            "update-without-if-match",
            |e| {
                e["rawPath"] = json!("/elsewhere");
                e["requestContext"]["http"]["path"] = json!("/elsewhere");
            },
            428,
            "precondition_required",
        ),
        (
            "no id path parameter",
            "update-without-if-match",
            |e| {
                e.as_object_mut().unwrap().remove("pathParameters");
            },
            404,
            "not_found",
        ),
        (
            "an id that is not a connector id",
            "update-without-if-match",
            |e| e["pathParameters"]["id"] = json!("con_1/../x"),
            404,
            "not_found",
        ),
        (
            "a route key without an id ignores path parameters",
            "list-bad-params",
            |e| e["pathParameters"] = json!({"id": "not an id"}),
            400,
            "validation_failed",
        ),
    ];
    for (name, file, edit, status, code) in cases {
        let mut raw: Value = serde_json::from_str(&event_text(file)).unwrap();
        edit(&mut raw);
        let request = lambda_http::request::from_str(&raw.to_string()).unwrap();
        let response = app().handle(request).await.unwrap();
        assert_eq!(response.status().as_u16(), *status, "{name}");
        assert!(response.headers().get(header::ALLOW).is_none(), "{name}");
        let Body::Text(text) = response.body() else {
            panic!("{name}: no JSON body")
        };
        let body: Value = serde_json::from_str(text).unwrap();
        assert_eq!(body["error"]["code"], *code, "{name}: {body}");
    }
}

/// Each sample event carries what API Gateway would send for its method and path: the route
/// key of the matching route and its `id`, or `$default` (and no path parameters) when no route
/// of the table matches.
#[test]
fn sample_events_carry_the_route_key_api_gateway_would_match() {
    /// The path parameters of `path` under `template` (`None`: it does not fit).
    fn fits(template: &str, path: &str) -> Option<Option<Value>> {
        let (parts, segments): (Vec<_>, Vec<_>) =
            (template.split('/').collect(), path.split('/').collect());
        if parts.len() != segments.len() {
            return None;
        }
        let mut params = serde_json::Map::new();
        for (part, segment) in parts.iter().zip(&segments) {
            match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(name) if !segment.is_empty() => {
                    params.insert(name.to_owned(), json!(segment));
                }
                _ if part != segment => return None,
                _ => {}
            }
        }
        Some((!params.is_empty()).then_some(Value::Object(params)))
    }
    let dir = format!("{}/../../events/connector-api", env!("CARGO_MANIFEST_DIR"));
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let event: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let method = event["requestContext"]["http"]["method"].as_str().unwrap();
        let raw_path = event["rawPath"].as_str().unwrap();
        let matched = crate::routes::ROUTES.iter().find_map(|(m, template, _)| {
            let id = fits(template, raw_path).filter(|_| m.as_str() == method)?;
            Some((crate::routes::route_key(m, template), id))
        });
        let (key, id) = matched.unwrap_or_else(|| ("$default".to_owned(), None));
        assert_eq!(event["routeKey"], json!(key), "{name}: routeKey");
        assert_eq!(event["requestContext"]["routeKey"], json!(key), "{name}");
        let params = event.get("pathParameters").cloned().unwrap_or(Value::Null);
        match id {
            Some(expected) => assert_eq!(params, expected, "{name}: pathParameters"),
            None => assert!(params.is_null(), "{name}: no pathParameters expected"),
        }
    }
}

#[test]
fn tenant_comes_only_from_verified_claims() {
    assert_eq!(
        tenant_of(&event("create-export-role"), "tenant_id").unwrap(),
        "acme"
    );
    // A tenant header is ignored: identity is what the authorizer verified.
    let mut raw: Value = serde_json::from_str(&event_text("create-no-claims")).unwrap();
    raw["headers"]["x-tenant-id"] = json!("acme");
    let request = lambda_http::request::from_str(&raw.to_string()).unwrap();
    assert_eq!(
        tenant_of(&request, "tenant_id").unwrap_err().status(),
        StatusCode::UNAUTHORIZED
    );
    // The claim name is configurable.
    assert!(tenant_of(&event("create-export-role"), "org").is_err());
    let mut raw: Value = serde_json::from_str(&event_text("create-export-role")).unwrap();
    for bad in ["", "a/b", "acme tenant", &"t".repeat(129)] {
        raw["requestContext"]["authorizer"]["jwt"]["claims"]["tenant_id"] = json!(bad);
        let request = lambda_http::request::from_str(&raw.to_string()).unwrap();
        assert!(tenant_of(&request, "tenant_id").is_err(), "{bad:?}");
    }
}

#[test]
fn base64_bodies_decode_to_the_same_json() {
    let plain = json_body(&event("create-export-role")).unwrap();
    let encoded = json_body(&event("create-base64-body")).unwrap();
    assert_eq!(plain, encoded);
    assert_eq!(plain["bucket"], "acme-data-exports");
}

#[test]
fn if_match_accepts_exactly_the_etag_forms() {
    let cases: &[(&str, Option<u64>)] = &[
        ("\"1\"", Some(1)),
        ("7", Some(7)),
        ("W/\"12\"", Some(12)),
        (" \"3\" ", Some(3)),
        ("\"0\"", Some(0)),
        ("*", None),
        ("\"1", None),
        ("1\"", None),
        ("W/1", None),
        ("W/\"1", None),
        ("+3", None),
        ("-3", None),
        ("03", None),
        ("\"03\"", None),
        ("\"\"", None),
        ("", None),
        ("1 2", None),
        ("\"1\", \"2\"", None),
        ("99999999999999999999999", None),
    ];
    let raw: Value = serde_json::from_str(&event_text("delete-connector")).unwrap();
    for (header_value, expected) in cases {
        let mut raw = raw.clone();
        raw["headers"]["if-match"] = json!(header_value);
        let request = lambda_http::request::from_str(&raw.to_string()).unwrap();
        match expected {
            Some(version) => assert_eq!(
                if_match(&request).unwrap(),
                Some(*version),
                "{header_value}"
            ),
            None => assert_eq!(
                if_match(&request).unwrap_err().status(),
                StatusCode::BAD_REQUEST,
                "{header_value}"
            ),
        }
    }
    assert_eq!(if_match(&event("update-without-if-match")).unwrap(), None);
}

#[tokio::test]
async fn repeated_body_keys_are_a_400_naming_the_key() {
    let mut raw: Value = serde_json::from_str(&event_text("create-export-role")).unwrap();
    let body = raw["body"]
        .as_str()
        .unwrap()
        .replacen('{', "{\"name\": \"first\",", 1);
    raw["body"] = json!(body);
    let request = lambda_http::request::from_str(&raw.to_string()).unwrap();
    let (status, body) = respond(request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_json");
    let rule = body["error"]["fields"][0]["rule"].as_str().unwrap();
    assert!(rule.contains("\"name\" appears twice"), "{rule}");
}

#[test]
fn page_tokens_round_trip_and_reject_forgeries() {
    let token = URL_SAFE_NO_PAD.encode("con_0193abc");
    let mut raw: Value = serde_json::from_str(&event_text("list-connectors")).unwrap();
    raw["rawQueryString"] = json!(format!("limit=2&next_token={token}"));
    let request = lambda_http::request::from_str(&raw.to_string()).unwrap();
    assert_eq!(
        list_params(&request, is_connector_id).unwrap(),
        (2, Some("con_0193abc".to_owned()))
    );
    assert_eq!(
        list_params(&event("list-connectors"), is_connector_id).unwrap(),
        (2, None)
    );
    for forged in [
        URL_SAFE_NO_PAD.encode("acme#con_1"),
        URL_SAFE_NO_PAD.encode("con_"),
    ] {
        raw["rawQueryString"] = json!(format!("next_token={forged}"));
        let request = lambda_http::request::from_str(&raw.to_string()).unwrap();
        assert!(list_params(&request, is_connector_id).is_err(), "{forged}");
    }
}

#[test]
fn every_sample_event_is_a_valid_request() {
    let dir = format!("{}/../../events/connector-api", env!("CARGO_MANIFEST_DIR"));
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        count += 1;
    }
    assert!(count >= 10, "sample events found: {count}");
}

/// An event the runtime's request parser refuses is still answered in the API's shape.
#[tokio::test]
async fn unreadable_events_are_a_400_not_an_invocation_error() {
    let app = app();
    let invoke = |payload: Value| {
        let event = lambda_http::LambdaEvent::new(payload, lambda_http::Context::default());
        crate::edge::invoke(&app, event)
    };
    let good: Value = serde_json::from_str(&event_text("unknown-route")).unwrap();
    let out = invoke(good.clone()).await.unwrap();
    assert_eq!(out["statusCode"], 404, "{out}");
    assert_eq!(out["headers"]["content-type"], "application/json");
    let body: Value = serde_json::from_str(out["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "not_found");

    for bad in ["a\u{0}b", "line\nbreak", "bell\u{7}"] {
        let mut event = good.clone();
        event["headers"]["x-probe"] = json!(bad);
        let out = invoke(event).await.expect("never an invocation error");
        assert_eq!(out["statusCode"], 400, "{bad:?}: {out}");
        let body: Value = serde_json::from_str(out["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["error"]["code"], "invalid_request", "{bad:?}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("header")
        );
    }
    for (field, bad) in [("rawQueryString", "a b=c"), ("rawPath", "/connectors /x")] {
        let mut event = good.clone();
        event[field] = json!(bad);
        if field == "rawPath" {
            event["requestContext"]["http"]["path"] = json!(bad);
        }
        let out = invoke(event).await.expect("never an invocation error");
        let status = out["statusCode"].as_u64().unwrap();
        assert!((400..500).contains(&status), "{field} {bad:?}: {out}");
    }
    let out = invoke(json!({"not": "an API Gateway event"}))
        .await
        .unwrap();
    assert_eq!(out["statusCode"], 400, "{out}");
}
