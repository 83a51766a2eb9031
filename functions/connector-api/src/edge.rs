//! The Lambda edge of the API: the raw event in, an API Gateway (payload v2) response out. The
//! event is parsed here rather than by the runtime, so an event it cannot turn into a request
//! (a NUL or control character in a header value, say) is a 400 in the API's error shape
//! instead of an invocation error that API Gateway would show as a 500.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use lambda_http::request::LambdaRequest;
use lambda_http::{Body, LambdaEvent, Request, RequestExt, Response};
use serde_json::{Map, Value, json};
use shared::ports::{ConnectorStore, IngestLedger, RunClaims, RunQueue, RunStore, SecretStore};
use shared::validation::Validate;

use crate::handler::{ApiError, App};

pub async fn invoke<
    S: ConnectorStore,
    K: SecretStore,
    V: Validate,
    R: RunStore + RunClaims,
    Q: RunQueue,
    F: IngestLedger,
>(
    app: &App<S, K, V, R, Q, F>,
    event: LambdaEvent<Value>,
) -> Result<Value, lambda_http::Error> {
    let LambdaEvent { payload, context } = event;
    let response = match serde_json::from_value::<LambdaRequest>(payload) {
        // The conversion panics on a URI the HTTP types refuse (a raw query or host with a
        // space, say); that too is the client's malformed request, not our failure.
        Ok(lambda_request) => match std::panic::catch_unwind(move || Request::from(lambda_request))
        {
            Ok(request) => Box::pin(app.handle(request.with_lambda_context(context))).await?,
            Err(_) => unreadable("the request's URI could not be built"),
        },
        // What was wrong, never the event itself: it may hold a bearer token.
        Err(e) => unreadable(&e.to_string()),
    };
    Ok(gateway_response(response))
}

fn unreadable(why: &str) -> Response<Body> {
    tracing::warn!(error = why, "request event could not be read");
    ApiError::unreadable_request().into_response()
}

/// The payload-v2 response API Gateway expects.
pub fn gateway_response(response: Response<Body>) -> Value {
    let (parts, body) = response.into_parts();
    let mut headers = Map::new();
    for name in parts.headers.keys() {
        let values: Vec<&str> = parts
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        headers.insert(name.as_str().to_owned(), json!(values.join(", ")));
    }
    let (body, is_base64_encoded) = match body {
        Body::Empty => (None, false),
        Body::Text(text) => (Some(text), false),
        Body::Binary(bytes) => (Some(STANDARD.encode(bytes)), true),
        _ => (None, false),
    };
    let mut out = json!({
        "statusCode": parts.status.as_u16(),
        "headers": headers,
        "isBase64Encoded": is_base64_encoded,
        "cookies": [],
    });
    if let Some(body) = body {
        out["body"] = json!(body);
    }
    out
}
