//! HTTP ⇄ domain translation for the connector API (API Gateway HTTP API, payload v2).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use serde_json::{Value, json};
use shared::connectors::{ConnectorService, ServiceError};
use shared::domain::connector::field::FieldError;
use shared::error::{SecretError, StoreError};
use shared::ports::{ConnectorStore, IngestLedger, RunClaims, RunQueue, RunStore, SecretStore};
use shared::validation::Validate;

use crate::routes::{self, Action};
use crate::views::ConnectorView;

/// Larger bodies are refused before parsing: a connector is a few KiB even with a PGP key.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
pub const DEFAULT_PAGE_SIZE: u32 = 25;
pub const MAX_PAGE_SIZE: u32 = 100;

pub struct App<S, K, V, R, Q, F> {
    service: ConnectorService<S, K>,
    validator: V,
    runs: R,
    queue: Q,
    /// The ingest ledger, for `GET /connectors/{id}/files`.
    files: F,
    tenant_claim: String,
    /// Unfinished runs a tenant may have at once (`TENANT_RUN_CAP`).
    tenant_run_cap: u32,
}

/// An error response: status, stable machine code, message, and the offending fields.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    fields: Vec<FieldError>,
    /// Rarely set, so boxed to keep `Result<_, ApiError>` small.
    extra: Option<Box<ErrorExtra>>,
}

#[derive(Debug, Default)]
struct ErrorExtra {
    /// One more member of the error object, e.g. `current_version`.
    details: Option<(&'static str, Value)>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            fields: Vec::new(),
            extra: None,
        }
    }

    fn invalid(fields: Vec<FieldError>) -> Self {
        let mut e = Self::new(
            StatusCode::BAD_REQUEST,
            "validation_failed",
            format!("{} field(s) are invalid; see fields", fields.len()),
        );
        e.fields = fields;
        e
    }

    fn field(status: StatusCode, code: &'static str, field: &str, rule: &str) -> Self {
        let mut e = Self::new(status, code, format!("{field} {rule}"));
        e.fields = vec![FieldError::new(field, rule)];
        e
    }

    fn with_details(mut self, key: &'static str, value: Value) -> Self {
        self.extra.get_or_insert_with(Box::default).details = Some((key, value));
        self
    }

    /// 412 with the version stored now.
    fn version_mismatch(current: u64, message: String) -> Self {
        Self::new(StatusCode::PRECONDITION_FAILED, "version_mismatch", message)
            .with_details("current_version", json!(current))
    }

    /// The event API Gateway sent could not be read as an HTTP request.
    pub fn unreadable_request() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the request could not be read: a header, the path or the query holds characters HTTP does not allow (e.g. a NUL or control character)",
        )
    }

    #[cfg(test)]
    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn into_response(self) -> Response<Body> {
        let mut error = json!({"code": self.code, "message": self.message});
        if !self.fields.is_empty() {
            error["fields"] = json!(self.fields);
        }
        let extra = self.extra.map(|e| *e).unwrap_or_default();
        if let Some((key, value)) = extra.details {
            error[key] = value;
        }
        json_response(self.status, &json!({ "error": error }))
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid(fields) => ApiError::invalid(fields),
            ServiceError::NotFound => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", "connector not found")
            }
            ServiceError::Overlap {
                other_connector_id,
                message,
            } => ApiError::new(StatusCode::CONFLICT, "prefix_overlap", message)
                .with_details("conflicting_connector_id", json!(other_connector_id)),
            ServiceError::ChangedDuringValidation { current } => ApiError::version_mismatch(
                current,
                format!(
                    "the connector changed while it was being validated (it is now at version {current}); the result was not stored: validate again"
                ),
            ),
            ServiceError::VersionMismatch { current } => ApiError::version_mismatch(
                current,
                format!(
                    "the connector changed since you read it: it is at version {current}; GET it, re-apply your change and send If-Match: {current}"
                ),
            ),
            ServiceError::Busy | ServiceError::Store(StoreError::Contended) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "other changes to this bucket's connectors are in progress; retry in a few seconds",
            ),
            ServiceError::Store(StoreError::Aws(aws))
            | ServiceError::Secret(SecretError::Aws(aws))
                if aws.retryable =>
            {
                tracing::warn!(error = %aws, "transient AWS failure");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    "a backing service is busy; retry in a few seconds",
                )
            }
            other => {
                tracing::error!(error = %other, "request failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "the request failed on our side; it is logged, and retrying later is safe",
                )
            }
        }
    }
}

fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response<Body> {
    let text = serde_json::to_string(body).expect("response bodies always serialize");
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::Text(text))
        .expect("static headers are valid")
}

fn connector_response(status: StatusCode, view: &ConnectorView) -> Response<Body> {
    with_etag(json_response(status, view), view.version)
}

/// The connector's version as its ETag, for the next `If-Match`.
fn with_etag(mut response: Response<Body>, version: u64) -> Response<Body> {
    let etag = HeaderValue::from_str(&format!("\"{version}\"")).expect("digits are a valid header");
    response.headers_mut().insert(header::ETAG, etag);
    response
}

impl<
    S: ConnectorStore,
    K: SecretStore,
    V: Validate,
    R: RunStore + RunClaims,
    Q: RunQueue,
    F: IngestLedger,
> App<S, K, V, R, Q, F>
{
    pub fn new(
        service: ConnectorService<S, K>,
        validator: V,
        runs: R,
        queue: Q,
        files: F,
        tenant_claim: String,
    ) -> Self {
        Self {
            service,
            validator,
            runs,
            queue,
            files,
            tenant_claim,
            tenant_run_cap: shared::config::DEFAULT_TENANT_RUN_CAP,
        }
    }

    pub fn with_tenant_run_cap(mut self, cap: u32) -> Self {
        self.tenant_run_cap = cap;
        self
    }

    /// Never fails the invocation: every outcome is an HTTP response. The request is handled
    /// and logged in a span that carries its route and, once known, its tenant and connector.
    pub async fn handle(&self, request: Request) -> Result<Response<Body>, lambda_http::Error> {
        use tracing::Instrument as _;
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let span = tracing::info_span!(
            "request",
            route = route_key_of(&request).unwrap_or_default(),
            tenant_id = tracing::field::Empty,
            connector_id = tracing::field::Empty,
        );
        // Boxed: the dispatch future is large (validation), too large for a test's stack.
        let response = match Box::pin(self.dispatch(request))
            .instrument(span.clone())
            .await
        {
            Ok(response) => response,
            Err(e) => e.into_response(),
        };
        let status = response.status().as_u16();
        span.in_scope(|| tracing::info!(%method, %path, status, "request"));
        Ok(response)
    }

    /// Dispatches on the route API Gateway matched (its route key), with the connector id from
    /// the path parameters; the raw path is not matched again.
    async fn dispatch(&self, request: Request) -> Result<Response<Body>, ApiError> {
        let tenant = tenant_of(&request, &self.tenant_claim)?;
        let span = tracing::Span::current();
        span.record("tenant_id", tenant.as_str());
        // Only a route of the table: API Gateway answers undeclared routes itself, so this is
        // an event of another shape (`$default`, a hand-made or test event).
        let matched = route_key_of(&request)
            .and_then(routes::for_route_key)
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route"))?;
        let id = if matched.takes_id {
            let id = request
                .path_parameters_ref()
                .and_then(|params| params.first(routes::ID_PARAMETER))
                .filter(|id| is_connector_id(id))
                .ok_or_else(|| {
                    ApiError::new(StatusCode::NOT_FOUND, "not_found", "connector not found")
                })?;
            span.record("connector_id", id);
            id
        } else {
            ""
        };
        let run_id = if matched.takes_run_id {
            let run_id = request
                .path_parameters_ref()
                .and_then(|params| params.first(routes::RUN_ID_PARAMETER))
                .filter(|run_id| is_run_id(run_id))
                .ok_or_else(run_not_found)?;
            run_id.to_owned()
        } else {
            String::new()
        };
        let service = &self.service;
        match matched.action {
            Action::CreateConnector => {
                let body = json_body(&request)?;
                let created = service.create(&tenant, body).await?;
                let mut response =
                    connector_response(StatusCode::CREATED, &ConnectorView::from(&created));
                if let Ok(location) =
                    HeaderValue::from_str(&format!("/connectors/{}", created.connector_id))
                {
                    response.headers_mut().insert(header::LOCATION, location);
                }
                Ok(response)
            }
            Action::ListConnectors => {
                let (limit, after) = list_params(&request, is_connector_id)?;
                let page = service.list(&tenant, limit, after.as_deref()).await?;
                let items: Vec<ConnectorView> =
                    page.items.iter().map(ConnectorView::from).collect();
                let next_token = page.next.map(|id| URL_SAFE_NO_PAD.encode(id));
                Ok(json_response(
                    StatusCode::OK,
                    &json!({"items": items, "next_token": next_token}),
                ))
            }
            Action::GetConnector => {
                let connector = service.get(&tenant, id).await?;
                Ok(connector_response(
                    StatusCode::OK,
                    &ConnectorView::from(&connector),
                ))
            }
            Action::UpdateConnector => {
                let expected = if_match(&request)?.ok_or_else(|| {
                    ApiError::field(
                        StatusCode::PRECONDITION_REQUIRED,
                        "precondition_required",
                        "If-Match",
                        "header is required: send the version (ETag) you read, so concurrent edits are not lost",
                    )
                })?;
                let body = json_body(&request)?;
                let updated = service.update(&tenant, id, expected, body).await?;
                Ok(connector_response(
                    StatusCode::OK,
                    &ConnectorView::from(&updated),
                ))
            }
            Action::DeleteConnector => {
                let expected = if_match(&request)?;
                service.delete(&tenant, id, expected).await?;
                Ok(Response::builder()
                    .status(StatusCode::NO_CONTENT)
                    .body(Body::Empty)
                    .expect("static response"))
            }
            Action::GetSetup => {
                let setup = service.setup(&tenant, id).await?;
                Ok(json_response(StatusCode::OK, &setup))
            }
            Action::ValidateConnector => {
                let (report, connector) = service.validate(&tenant, id, &self.validator).await?;
                let mut body = serde_json::to_value(&report).expect("report serializes");
                body["connector_version"] = json!(connector.version);
                Ok(with_etag(
                    json_response(StatusCode::OK, &body),
                    connector.version,
                ))
            }
            Action::StartRun => self.start_run(&tenant, id).await,
            Action::ListRuns => {
                let (limit, after) = list_params(&request, is_run_id)?;
                self.list_runs(&tenant, id, limit, after.as_deref()).await
            }
            Action::GetRun => self.get_run(&tenant, id, &run_id).await,
            Action::RetryRun => self.retry_run(&tenant, id, &run_id).await,
            Action::ListFiles => {
                let (limit, after) = list_params(&request, files::is_file_token)?;
                let status = files::status_param(&request)?;
                self.list_files(&tenant, id, status, limit, after.as_deref())
                    .await
            }
        }
    }
}

/// The route API Gateway matched: `requestContext.routeKey`, e.g. `GET /connectors/{id}`.
fn route_key_of(request: &Request) -> Option<&str> {
    match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.route_key.as_deref(),
        _ => None,
    }
}

/// The tenant, only from the JWT authorizer's claims that API Gateway verified; never from a
/// header or the body.
pub fn tenant_of(request: &Request, claim: &str) -> Result<String, ApiError> {
    let unauthenticated = |why: &str| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            format!("{why}; sign in and send a valid bearer token"),
        )
    };
    let claims = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx
            .authorizer
            .as_ref()
            .and_then(|a| a.jwt.as_ref())
            .map(|jwt| &jwt.claims),
        _ => None,
    };
    let claims = claims.ok_or_else(|| unauthenticated("no verified identity on the request"))?;
    let tenant = claims
        .get(claim)
        .ok_or_else(|| unauthenticated(&format!("the token has no {claim} claim")))?;
    let well_formed = (1..=128).contains(&tenant.len())
        && tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@'));
    if !well_formed {
        return Err(unauthenticated(&format!("the {claim} claim is malformed")));
    }
    Ok(tenant.clone())
}

/// The body as a JSON value: 413 past the size limit, 400 for anything but JSON.
pub fn json_body(request: &Request) -> Result<Value, ApiError> {
    let bytes: &[u8] = match request.body() {
        Body::Empty => &[],
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => &[],
    };
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "the body is {} bytes; the limit is {MAX_BODY_BYTES}",
                bytes.len()
            ),
        ));
    }
    if bytes.is_empty() {
        return Err(ApiError::field(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "body",
            "is required: send a JSON object",
        ));
    }
    crate::strict_json::from_slice(bytes).map_err(|e| {
        ApiError::field(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "body",
            &format!("must be JSON with each key once per object: {e}"),
        )
    })
}

/// `If-Match` as a version: exactly `3`, `"3"` or `W/"3"` (the ETag we sent, strong or weak).
/// Anything else (`*`, a half-quoted value, a sign, leading zeros) is a 400.
pub fn if_match(request: &Request) -> Result<Option<u64>, ApiError> {
    let Some(value) = request.headers().get(header::IF_MATCH) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| parse_version_tag(v.trim()))
        .map(Some)
        .ok_or_else(|| {
            ApiError::field(
                StatusCode::BAD_REQUEST,
                "invalid_header",
                "If-Match",
                "must be the connector's version as its ETag, e.g. \"3\" (also 3 or W/\"3\")",
            )
        })
}

fn parse_version_tag(tag: &str) -> Option<u64> {
    let digits = tag
        .strip_prefix("W/\"")
        .or_else(|| tag.strip_prefix('"'))
        .map_or(Some(tag), |rest| rest.strip_suffix('"'))?;
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    canonical.then(|| digits.parse().ok()).flatten()
}

/// `limit` (1–100) and `next_token` (opaque, from the previous page: the last id of that page,
/// which must pass `is_listed_id`).
pub fn list_params(
    request: &Request,
    is_listed_id: fn(&str) -> bool,
) -> Result<(u32, Option<String>), ApiError> {
    let query = request.query_string_parameters_ref();
    let mut errors = Vec::new();
    let limit = match query.and_then(|q| q.first("limit")) {
        None => DEFAULT_PAGE_SIZE,
        Some(raw) => match raw.parse::<u32>() {
            Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
            _ => {
                errors.push(FieldError::new(
                    "limit",
                    format!("must be a whole number from 1 to {MAX_PAGE_SIZE}"),
                ));
                DEFAULT_PAGE_SIZE
            }
        },
    };
    let after = match query.and_then(|q| q.first("next_token")) {
        None => None,
        Some(token) => {
            let decoded = URL_SAFE_NO_PAD
                .decode(token)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .filter(|id| is_listed_id(id));
            if decoded.is_none() {
                errors.push(FieldError::new(
                    "next_token",
                    "is not a token this API issued; pass next_token from the previous page unchanged",
                ));
            }
            decoded
        }
    };
    if errors.is_empty() {
        Ok((limit, after))
    } else {
        Err(ApiError::invalid(errors))
    }
}

fn is_connector_id(id: &str) -> bool {
    id.strip_prefix("con_").is_some_and(|rest| {
        !rest.is_empty() && rest.len() <= 64 && rest.chars().all(|c| c.is_ascii_alphanumeric())
    })
}

pub(crate) mod files;
mod runs;
use runs::{is_run_id, run_not_found};

#[cfg(test)]
mod runs_tests;
#[cfg(test)]
mod tests;
