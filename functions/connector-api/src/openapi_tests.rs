//! Keeps `docs/openapi.json` true to the code: the routes it lists are the routes the dispatcher
//! serves, its references resolve, its request examples pass the real parser, its `required`
//! lists and defaults are the parser's, and what the code serializes fits its response schemas.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use shared::domain::connector::field::FieldError;
use shared::domain::connector::rules;
use shared::domain::connector::spec::{self, AuthSpec, ConnectorSpec};
use shared::domain::connector::{Connector, Parsed};
use shared::domain::setup::{self, PlatformIdentity};

use crate::routes::ROUTES;
use crate::views::ConnectorView;

const DOCUMENT: &str = include_str!("../../../docs/openapi.json");

const HTTP_METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];
/// Keys a path item may hold besides its operations.
const PATH_ITEM_FIELDS: &[&str] = &["summary", "description", "servers", "parameters", "$ref"];

fn document() -> Value {
    serde_json::from_str(DOCUMENT).expect("docs/openapi.json is not valid JSON")
}

/// `(method, path, operation)` for every operation in `paths`.
fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let paths = doc["paths"].as_object().expect("paths is an object");
    let mut out = Vec::new();
    for (path, item) in paths {
        let item = item.as_object().expect("a path item is an object");
        for (key, operation) in item {
            if HTTP_METHODS.contains(&key.as_str()) {
                out.push((key.clone(), path.clone(), operation));
            } else {
                assert!(
                    PATH_ITEM_FIELDS.contains(&key.as_str()),
                    "{path}: {key:?} is neither an HTTP method nor a path item field"
                );
            }
        }
    }
    out
}

/// Follows `$ref`s (`#/components/...`) until a schema, response or parameter that is not one.
fn resolve<'a>(doc: &'a Value, mut node: &'a Value) -> &'a Value {
    for _ in 0..32 {
        let Some(reference) = node.get("$ref").and_then(Value::as_str) else {
            return node;
        };
        node = pointer(doc, reference).unwrap_or_else(|| panic!("unresolved $ref {reference}"));
    }
    panic!("$ref cycle");
}

fn pointer<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    let path = reference.strip_prefix('#')?;
    if !path.starts_with("/components/") {
        return None;
    }
    let unescaped: Vec<String> = path
        .split('/')
        .skip(1)
        .map(|part| part.replace("~1", "/").replace("~0", "~"))
        .collect();
    let mut node = doc;
    for part in &unescaped {
        node = node.get(part.as_str())?;
    }
    Some(node)
}

fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["components"]["schemas"]
        .get(name)
        .unwrap_or_else(|| panic!("components.schemas.{name} is missing"))
}

/// Named examples of one media type (`examples`, or a single `example`).
fn media_examples(media: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    if let Some(example) = media.get("example") {
        out.push(("example".to_owned(), example.clone()));
    }
    if let Some(examples) = media.get("examples").and_then(Value::as_object) {
        for (name, example) in examples {
            let value = example
                .get("value")
                .unwrap_or_else(|| panic!("example {name} has no value"));
            out.push((name.clone(), value.clone()));
        }
    }
    out
}

fn request_examples(doc: &Value, method: &str, path: &str) -> Vec<(String, Value)> {
    let body = &doc["paths"][path][method]["requestBody"];
    let content = resolve(doc, body)["content"]
        .as_object()
        .unwrap_or_else(|| panic!("{method} {path} has no request body content"));
    content.values().flat_map(media_examples).collect()
}

fn create_examples(doc: &Value) -> Vec<(String, Value)> {
    let examples = request_examples(doc, "post", "/connectors");
    assert!(
        examples.len() >= 2,
        "POST /connectors documents at least the export and ingest examples"
    );
    examples
}

fn parse(name: &str, body: &Value) -> ConnectorSpec {
    spec::parse_create(body.clone())
        .unwrap_or_else(|errors| panic!("example {name} is refused by parse_create: {errors:?}"))
}

// ---------------------------------------------------------------------------------------------
// A small validator for the subset of OpenAPI 3.0 schemas the document uses.

fn validate(doc: &Value, schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    if value.is_null() {
        if schema.get("nullable") != Some(&json!(true)) {
            errors.push(format!("{path}: null, but the schema is not nullable"));
        }
        return;
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for part in all {
            validate(doc, part, value, path, errors);
        }
    }
    if let Some(branches) = schema.get("oneOf").and_then(Value::as_array) {
        validate_one_of(doc, schema, branches, value, path, errors);
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        errors.push(format!("{path}: {value} is not one of {allowed:?}"));
    }
    let Some(kind) = schema.get("type").and_then(Value::as_str) else {
        return;
    };
    let fits = match kind {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        other => panic!("{path}: unknown schema type {other}"),
    };
    if !fits {
        errors.push(format!("{path}: {value} is not of type {kind}"));
        return;
    }
    match value {
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            for required in schema["required"].as_array().into_iter().flatten() {
                let key = required.as_str().expect("required names are strings");
                if !map.contains_key(key) {
                    errors.push(format!("{path}: required property {key} is missing"));
                }
            }
            for (key, item) in map {
                let item_path = format!("{path}.{key}");
                match properties.and_then(|p| p.get(key)) {
                    Some(property) => validate(doc, property, item, &item_path, errors),
                    None => match schema.get("additionalProperties") {
                        Some(Value::Bool(false)) => {
                            errors.push(format!("{item_path}: not a documented property"));
                        }
                        Some(extra @ Value::Object(_)) => {
                            validate(doc, extra, item, &item_path, errors);
                        }
                        _ => {}
                    },
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    validate(doc, item_schema, item, &format!("{path}[{i}]"), errors);
                }
            }
            let len = items.len() as u64;
            if schema["minItems"].as_u64().is_some_and(|min| len < min) {
                errors.push(format!("{path}: fewer items than minItems"));
            }
        }
        Value::String(text) => {
            let len = text.chars().count() as u64;
            if schema["minLength"].as_u64().is_some_and(|min| len < min) {
                errors.push(format!("{path}: {text:?} is shorter than minLength"));
            }
            if schema["maxLength"].as_u64().is_some_and(|max| len > max) {
                errors.push(format!("{path}: {text:?} is longer than maxLength"));
            }
        }
        Value::Number(n) => {
            let n = n.as_f64().expect("finite");
            if schema["minimum"].as_f64().is_some_and(|min| n < min) {
                errors.push(format!("{path}: {n} is below minimum"));
            }
            if schema["maximum"].as_f64().is_some_and(|max| n > max) {
                errors.push(format!("{path}: {n} is above maximum"));
            }
        }
        _ => {}
    }
}

fn validate_one_of(
    doc: &Value,
    schema: &Value,
    branches: &[Value],
    value: &Value,
    path: &str,
    errors: &mut Vec<String>,
) {
    if let Some(discriminator) = schema.get("discriminator") {
        let property = discriminator["propertyName"]
            .as_str()
            .expect("discriminator.propertyName");
        let Some(tag) = value.get(property).and_then(Value::as_str) else {
            errors.push(format!("{path}: discriminator {property} is missing"));
            return;
        };
        match discriminator["mapping"].get(tag) {
            Some(Value::String(target)) => {
                validate(doc, &json!({ "$ref": target }), value, path, errors);
            }
            _ => errors.push(format!("{path}: {property} {tag:?} has no mapping")),
        }
        return;
    }
    let matching = branches
        .iter()
        .filter(|branch| {
            let mut branch_errors = Vec::new();
            validate(doc, branch, value, path, &mut branch_errors);
            branch_errors.is_empty()
        })
        .count();
    if matching != 1 {
        errors.push(format!(
            "{path}: {value} matches {matching} branches of oneOf, not exactly one"
        ));
    }
}

fn assert_valid(doc: &Value, schema: &Value, value: &Value, context: &str) {
    let mut errors = Vec::new();
    validate(doc, schema, value, context, &mut errors);
    assert!(errors.is_empty(), "{context}:\n  {}", errors.join("\n  "));
}

/// The `oneOf` branch a discriminated schema picks for `value`.
fn variant<'a>(doc: &'a Value, schema: &'a Value, value: &Value) -> &'a Value {
    let schema = resolve(doc, schema);
    let property = schema["discriminator"]["propertyName"]
        .as_str()
        .expect("a discriminated oneOf");
    let tag = value[property].as_str().expect("the discriminator is set");
    let target = schema["discriminator"]["mapping"][tag]
        .as_str()
        .unwrap_or_else(|| panic!("no mapping for {property} {tag:?}"));
    let target = pointer(doc, target).unwrap_or_else(|| panic!("unresolved mapping {target}"));
    resolve(doc, target)
}

// ---------------------------------------------------------------------------------------------
// Stored connectors built from the examples, for the response schemas.

fn platform() -> PlatformIdentity {
    PlatformIdentity {
        principal_arn: "arn:aws:iam::123456789012:role/connectors-connector-access".into(),
        web_identity_provider: "oidc.connectors.example.com".into(),
        web_identity_audience: "sts.amazonaws.com".into(),
        ingest_queue_arn: "arn:aws:sqs:us-east-1:123456789012:connectors-ingest".into(),
    }
}

/// The connector `ConnectorService::create` would store for `spec`.
fn stored(spec: &ConnectorSpec) -> Connector {
    let auth = match &spec.auth {
        AuthSpec::Role { role_arn } => json!({"mode": "role", "role_arn": role_arn}),
        AuthSpec::WebIdentity { role_arn } => {
            json!({"mode": "web_identity", "role_arn": role_arn})
        }
        AuthSpec::AccessKey(keys) => json!({
            "mode": "access_key",
            "secret_arn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:connectors/acme/con_1/0a1b2c3d-AbCdEf",
            "access_key_id_hint": keys.as_ref().expect("a created connector has keys").hint(),
        }),
        AuthSpec::BucketPolicy => json!({"mode": "bucket_policy"}),
    };
    let connector = json!({
        "tenant_id": "acme",
        "connector_id": "con_019ab3c4d5e67f808192a3b4c5d6e7f8",
        "name": spec.name,
        "direction": spec.flow.direction(),
        "bucket": spec.bucket,
        "region": spec.region,
        "prefix": spec.prefix,
        "auth": auth,
        "external_id": "q7XbN2kLm9PzR4tVw8YcA1sD5fGh3JjK6uE0oIiW2nBv7MxZ",
        "challenge_file": "connector-challenge-3f9c2a7e1b5d4c8a9e0f6b2d7c1a5e3f.txt",
        "schedule": spec.flow.schedule().map(Parsed::text),
        "export": spec.flow.export_options(),
        "ingest": spec.flow.ingest_options(),
        "status": "pending_validation",
        "next_run_at": spec.flow.schedule().map(|_| "2026-11-24T02:00:00Z"),
        "version": 1,
        "created_at": "2026-11-23T14:00:00.123456Z",
        "updated_at": "2026-11-23T14:00:00.123456Z",
    });
    serde_json::from_value(connector).expect("a stored connector")
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[test]
fn documented_paths_are_exactly_the_routes() {
    let doc = document();
    let routed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(method, path, _)| (method.as_str().to_lowercase(), (*path).to_owned()))
        .collect();
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect();
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from docs/openapi.json: {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "documented operations that routes::ROUTES does not serve: {unrouted:?}"
    );
}

#[test]
fn path_templates_declare_their_path_parameters() {
    let doc = document();
    for (method, path, operation) in operations(&doc) {
        let shared = doc["paths"][&path]["parameters"].as_array();
        let own = operation["parameters"].as_array();
        let declared: BTreeSet<String> = shared
            .into_iter()
            .chain(own)
            .flatten()
            .map(|p| resolve(&doc, p))
            .filter(|p| p["in"] == "path")
            .map(|p| {
                assert_eq!(
                    p["required"], true,
                    "{method} {path}: path parameters are required"
                );
                p["name"].as_str().expect("parameter name").to_owned()
            })
            .collect();
        let templated: BTreeSet<String> = path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
            .map(str::to_owned)
            .collect();
        assert_eq!(declared, templated, "{method} {path}: path parameters");
    }
}

#[test]
fn document_is_openapi_3_and_every_operation_is_complete() {
    let doc = document();
    let version = doc["openapi"].as_str().expect("openapi version string");
    assert!(version.starts_with("3."), "not OpenAPI 3.x: {version}");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());

    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .expect("components.securitySchemes");
    let global = doc.get("security");
    let mut operation_ids = BTreeSet::new();
    for (method, path, operation) in operations(&doc) {
        let context = format!("{method} {path}");
        let id = operation["operationId"]
            .as_str()
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| panic!("{context}: no operationId"));
        assert!(
            operation_ids.insert(id.to_owned()),
            "{context}: operationId {id} is reused"
        );

        // Per-operation security overrides the global one; `[]` would make it public.
        let security = operation.get("security").or(global);
        let requirements = security
            .and_then(Value::as_array)
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| panic!("{context}: no security requirement"));
        for requirement in requirements {
            let requirement = requirement.as_object().expect("a requirement object");
            assert!(
                !requirement.is_empty(),
                "{context}: an empty requirement is anonymous"
            );
            for scheme in requirement.keys() {
                assert!(
                    schemes.contains_key(scheme),
                    "{context}: unknown scheme {scheme}"
                );
            }
        }

        let responses = operation["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{context}: no responses"));
        assert!(
            responses.keys().any(|status| status.starts_with('2')),
            "{context}: no success response"
        );
        assert!(responses.contains_key("401"), "{context}: no 401 response");
        // The handler validates bodies, query parameters and headers; an operation that takes
        // none of them has nothing to answer 400 for.
        let takes_input = operation.get("requestBody").is_some()
            || [&doc["paths"][&path]["parameters"], &operation["parameters"]]
                .into_iter()
                .filter_map(Value::as_array)
                .flatten()
                .any(|p| resolve(&doc, p)["in"] != "path");
        if takes_input {
            assert!(responses.contains_key("400"), "{context}: no 400 response");
        }
        for (status, response) in responses {
            assert!(
                resolve(&doc, response)["description"].is_string(),
                "{context}: response {status} has no description"
            );
        }
    }
}

#[test]
fn every_ref_resolves_to_a_component() {
    fn walk(doc: &Value, node: &Value, at: &str, seen: &mut usize) {
        match node {
            Value::Object(map) => {
                if let Some(reference) = map.get("$ref") {
                    let reference = reference.as_str().expect("$ref is a string");
                    assert!(
                        pointer(doc, reference).is_some(),
                        "{at}: $ref {reference} does not resolve to a #/components/ entry"
                    );
                    *seen += 1;
                }
                for (key, value) in map {
                    walk(doc, value, &format!("{at}/{key}"), seen);
                }
            }
            Value::Array(items) => {
                for (i, value) in items.iter().enumerate() {
                    walk(doc, value, &format!("{at}/{i}"), seen);
                }
            }
            _ => {}
        }
    }
    let doc = document();
    let mut seen = 0;
    walk(&doc, &doc, "#", &mut seen);
    assert!(seen > 0, "the document uses $refs");
}

#[test]
fn create_examples_are_accepted_by_the_parser() {
    let doc = document();
    let names: Vec<String> = create_examples(&doc)
        .into_iter()
        .map(|(name, body)| {
            parse(&name, &body);
            name
        })
        .collect();
    for direction in ["export", "ingest"] {
        assert!(
            create_examples(&doc)
                .iter()
                .any(|(_, body)| body["direction"] == direction),
            "no {direction} example among {names:?}"
        );
    }
}

#[test]
fn create_required_lists_are_what_the_parser_requires() {
    let doc = document();
    let request_schema = &doc["paths"]["/connectors"]["post"]["requestBody"]["content"]["application/json"]
        ["schema"];
    for (name, body) in create_examples(&doc) {
        let direction = body["direction"].as_str().expect("examples set direction");
        let connector_schema = variant(&doc, request_schema, &body);
        let auth_schema = variant(&doc, &connector_schema["properties"]["auth"], &body["auth"]);
        let required = |schema: &Value| -> BTreeSet<String> {
            schema["required"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| r.as_str().expect("a name").to_owned())
                .collect()
        };
        let top = required(connector_schema);
        for field in ["name", "direction", "bucket", "region", "auth"] {
            assert!(top.contains(field), "{name}: {field} is not in required");
        }
        check_required(&name, &body, None, &top);
        check_required(&name, &body, Some("auth"), &required(auth_schema));
        if direction == "ingest" {
            let ingest_schema = resolve(&doc, &connector_schema["properties"]["ingest"]);
            check_required(&name, &body, Some("ingest"), &required(ingest_schema));
        }
    }
}

/// Each field in `required` is refused when missing, and each field the parser refuses as
/// missing is in `required`, for the object at `nested` (or the root) of a valid `body`.
fn check_required(example: &str, body: &Value, nested: Option<&str>, required: &BTreeSet<String>) {
    let object = match nested {
        Some(key) => &body[key],
        None => body,
    };
    let dotted = |field: &str| match nested {
        Some(key) => format!("{key}.{field}"),
        None => field.to_owned(),
    };
    let without = |field: &str| {
        let mut body = body.clone();
        let target = match nested {
            Some(key) => &mut body[key],
            None => &mut body,
        };
        target.as_object_mut().expect("an object").remove(field);
        body
    };
    let refused_as_missing = |errors: &[FieldError], field: &str| {
        errors
            .iter()
            .any(|e| e.field == dotted(field) && e.rule.starts_with("is required"))
    };
    for field in required {
        match spec::parse_create(without(field)) {
            Ok(_) => panic!(
                "{example}: {} is documented as required, but parse_create accepts the body without it",
                dotted(field)
            ),
            Err(errors) => assert!(
                refused_as_missing(&errors, field),
                "{example}: without {}, parse_create reports {errors:?}",
                dotted(field)
            ),
        }
    }
    for field in object.as_object().expect("an object").keys() {
        if let Err(errors) = spec::parse_create(without(field)) {
            assert!(
                !refused_as_missing(&errors, field) || required.contains(field),
                "{example}: parse_create requires {} but the schema does not list it",
                dotted(field)
            );
        }
    }
}

#[test]
fn request_and_response_examples_fit_their_schemas() {
    let doc = document();
    let mut checked = 0;
    for (method, path, operation) in operations(&doc) {
        let mut bodies = Vec::new();
        if let Some(body) = operation.get("requestBody") {
            bodies.push(("request".to_owned(), resolve(&doc, body)));
        }
        for (status, response) in operation["responses"].as_object().into_iter().flatten() {
            bodies.push((status.clone(), resolve(&doc, response)));
        }
        for (what, body) in bodies {
            for (media_type, media) in body["content"].as_object().into_iter().flatten() {
                for (name, example) in media_examples(media) {
                    let context = format!("{method} {path} {what} {media_type} example {name}");
                    assert_valid(&doc, &media["schema"], &example, &context);
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 10, "only {checked} examples found");
}

#[test]
fn responses_fit_what_the_code_serializes() {
    let doc = document();
    let mut modes = BTreeSet::new();
    for (name, body) in create_examples(&doc) {
        let connector = stored(&parse(&name, &body));
        modes.insert(body["auth"]["mode"].as_str().unwrap_or_default().to_owned());
        let view = serde_json::to_value(ConnectorView::from(&connector)).expect("serializes");
        assert_valid(
            &doc,
            schema(&doc, "ConnectorView"),
            &view,
            &format!("{name} view"),
        );
        let setup = setup::instructions(&connector, &platform());
        let setup = serde_json::to_value(setup).expect("serializes");
        let context = format!("{name} setup");
        assert_valid(&doc, schema(&doc, "SetupInstructions"), &setup, &context);
    }
    for mode in ["role", "web_identity", "access_key", "bucket_policy"] {
        assert!(
            modes.contains(mode),
            "no create example uses auth mode {mode}"
        );
    }
}

#[test]
fn documented_defaults_are_the_parsers_defaults() {
    let doc = document();
    let minimal = |direction: &str, extra: Value| {
        let mut body = json!({
            "name": "n",
            "direction": direction,
            "bucket": "acme-data",
            "region": "us-east-1",
            "auth": {"mode": "bucket_policy"},
        });
        body.as_object_mut()
            .expect("an object")
            .extend(extra.as_object().expect("an object").clone());
        let spec = parse("minimal", &body);
        json!({
            "prefix": spec.prefix,
            "schedule": spec.flow.schedule().map(Parsed::text),
            "export": spec.flow.export_options(),
            "ingest": spec.flow.ingest_options(),
        })
    };
    let export = minimal("export", json!({}));
    let ingest = minimal("ingest", json!({"ingest": {"table": "orders"}}));
    let mut compared = 0;
    check_defaults(
        &doc,
        schema(&doc, "ExportConnectorCreate"),
        &export,
        "export",
        &mut compared,
    );
    check_defaults(
        &doc,
        schema(&doc, "IngestConnectorCreate"),
        &ingest,
        "ingest",
        &mut compared,
    );
    assert!(compared >= 15, "only {compared} documented defaults found");
}

/// Every `default` under `schema` equals what the parser filled in at the same place.
fn check_defaults(doc: &Value, schema: &Value, parsed: &Value, path: &str, compared: &mut usize) {
    let schema = resolve(doc, schema);
    if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
        for part in parts {
            check_defaults(doc, part, parsed, path, compared);
        }
    }
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (key, property) in properties {
        let Some(value) = parsed.get(key).filter(|v| !v.is_null()) else {
            continue;
        };
        let at = format!("{path}.{key}");
        let resolved = resolve(doc, property);
        if let Some(default) = property.get("default").or(resolved.get("default")) {
            assert_eq!(default, value, "{at}: documented default vs parse_create");
            *compared += 1;
        }
        check_defaults(doc, property, value, &at, compared);
    }
}

#[test]
fn patch_examples_apply_to_a_created_connector() {
    let doc = document();
    let connectors: Vec<Connector> = create_examples(&doc)
        .iter()
        .map(|(name, body)| stored(&parse(name, body)))
        .collect();
    let patches = request_examples(&doc, "patch", "/connectors/{id}");
    assert!(!patches.is_empty(), "PATCH /connectors/{{id}} has examples");
    for (name, patch) in patches {
        let outcomes: Vec<_> = connectors
            .iter()
            .map(|c| spec::parse_patch(c, patch.clone()))
            .collect();
        assert!(
            outcomes.iter().any(Result::is_ok),
            "patch example {name} applies to no documented connector: {outcomes:?}"
        );
    }
}

#[test]
fn region_enum_is_the_known_region_list() {
    let doc = document();
    let documented: BTreeSet<&str> = schema(&doc, "Region")["enum"]
        .as_array()
        .expect("Region.enum")
        .iter()
        .map(|r| r.as_str().expect("a region"))
        .collect();
    let known: BTreeSet<&str> = rules::KNOWN_REGIONS.iter().copied().collect();
    assert_eq!(documented, known);
}

/// Runs as the views serialize them, queued to failed, fit the `Run` schema; the documented
/// run examples read back as runs of the domain (no member the code would not produce).
#[test]
fn run_views_fit_the_run_schema() {
    use chrono::TimeZone;
    use shared::domain::export::run::{
        FileTask, Run, RunError, RunPlan, RunStatus, RunTrigger, TablePlan, WrittenFile,
    };

    use crate::views::runs::RunView;

    let doc = document();
    let at = chrono::Utc
        .with_ymd_and_hms(2026, 11, 24, 2, 0, 0)
        .single()
        .expect("a valid time");
    let queued = Run::queued(
        "acme",
        "con_019ab3c4d5e67f808192a3b4c5d6e7f8",
        "run_019ab3d1e2f37a4b8c5d6e7f8091a2b3".into(),
        RunTrigger::Api,
        at,
    );
    let mut failed = queued.clone();
    failed.trigger = RunTrigger::Schedule;
    failed.status = RunStatus::Failed;
    failed.started_at = Some(at);
    failed.finished_at = Some(at + chrono::Duration::seconds(90));
    failed.plan = Some(RunPlan {
        loaded_at: at,
        tables: vec![
            TablePlan {
                table: "orders".into(),
                columns: Some(vec!["id".into()]),
                after_seq: Some(4),
                through_seq: Some(9),
            },
            TablePlan {
                table: "customers".into(),
                columns: None,
                after_seq: None,
                through_seq: None,
            },
        ],
        files: vec![FileTask {
            table: "orders".into(),
            part_number: 1,
            key: "exports/orders_1.csv".into(),
            parts: Some((5, 9)),
            rows: 10,
            lake_bytes: 900,
        }],
        manifest_key: "exports/_manifests/m.json".into(),
        done_key: None,
    });
    failed.files = vec![WrittenFile {
        key: "exports/orders_1.csv".into(),
        table: "orders".into(),
        rows: 10,
        bytes: 321,
        sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into(),
    }];
    failed.error = Some(RunError {
        reason: "not_queued".into(),
        message: "m".into(),
        remediation: "r".into(),
        aws_error_code: None,
    });
    let mut succeeded = failed.clone();
    succeeded.status = RunStatus::Succeeded;
    succeeded.error = None;
    for (name, run) in [
        ("queued", &queued),
        ("failed", &failed),
        ("succeeded", &succeeded),
    ] {
        let view = serde_json::to_value(RunView::from(run)).expect("serializes");
        assert_valid(
            &doc,
            schema(&doc, "Run"),
            &view,
            &format!("{name} run view"),
        );
        let list = json!({"items": [view], "next_token": null});
        assert_valid(
            &doc,
            schema(&doc, "RunList"),
            &list,
            &format!("{name} list"),
        );
    }
    let examples = &doc["paths"]["/connectors/{id}/runs/{run_id}"]["get"]["responses"]["200"]["content"]
        ["application/json"]["examples"];
    for status in ["queued", "succeeded", "failed"] {
        assert_eq!(
            examples[status]["value"]["status"], status,
            "GET run documents a {status} run"
        );
    }
}

#[test]
fn file_views_fit_the_file_schema() {
    use chrono::TimeZone;
    use shared::domain::export::run::RunError;
    use shared::domain::ingest::file::{
        FileIdentity, FileStatus, IngestFile, Intake, Placement, Verdict,
    };

    use crate::handler::files::FileView;

    let doc = document();
    let at = chrono::Utc.with_ymd_and_hms(2026, 12, 7, 9, 0, 0).unwrap();
    let file = FileIdentity::new("acme-drops", "incoming/a b+c.csv", "\"e1\"");
    let processing = IngestFile {
        object_id: file.object_id(),
        tenant_id: "acme".into(),
        connector_id: "con_019ab3c4d5e67f808192a3b4c5d6e7f8".into(),
        file,
        version_id: None,
        size: 10,
        table: "orders".into(),
        status: FileStatus::Processing,
        intake: Intake::Poll,
        attempts: 1,
        holder: Some("h".into()),
        lease_until: Some(1),
        first_seen_at: at,
        updated_at: at,
        finished_at: None,
        duration_ms: None,
        verdict: None,
        rows_loaded: 0,
        rows_rejected: 0,
        content_bytes: 0,
        placement: None,
        moved: false,
        sidecar_key: None,
        error: None,
        version: 1,
    };
    let mut succeeded = processing.clone();
    succeeded.status = FileStatus::Succeeded;
    succeeded.verdict = Some(Verdict::Loaded { parts: vec![1, 2] });
    succeeded.placement = Some(Placement::Move {
        key: "done/a b+c.csv".into(),
    });
    succeeded.moved = true;
    succeeded.sidecar_key = Some("done/a b+c.csv.errors.jsonl".into());
    succeeded.finished_at = Some(at);
    succeeded.duration_ms = Some(5);
    let mut failed = processing.clone();
    failed.status = FileStatus::Failed;
    failed.placement = Some(Placement::Stay);
    failed.moved = true;
    failed.error = Some(RunError {
        reason: "unreadable_file".into(),
        message: "m".into(),
        remediation: "r".into(),
        aws_error_code: None,
    });
    let mut deleted = succeeded.clone();
    deleted.placement = Some(Placement::Delete);
    for (name, file) in [
        ("processing", processing),
        ("succeeded", succeeded),
        ("failed", failed),
        ("deleted", deleted),
    ] {
        let view = serde_json::to_value(FileView::from(&file)).expect("serializes");
        assert_valid(&doc, schema(&doc, "IngestedFile"), &view, name);
    }
}
