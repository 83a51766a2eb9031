//! A fault-injecting HTTP proxy in front of the local S3 server, for end-to-end tests of how
//! the product survives S3's throttling and server errors.
//!
//! Requests for one bucket (path-style, as the SDK addresses a custom endpoint) are answered,
//! on a fixed schedule per S3 operation, with `503 SlowDown` or `500 InternalError` *instead of*
//! being forwarded: S3 refuses a throttled request before acting on it. A fault is a streak:
//! the same request (method, path and query) is refused again on its next attempts, up to the
//! streak's length, so some faults outlast the SDK's own retries and reach the engine's retry
//! and the queue's redelivery. Every other request is forwarded byte for byte, headers
//! included (the SigV4 signature covers the Host header, which the proxy keeps), one
//! connection to the server per request.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

/// Which requests fail, and how many times in a row.
#[derive(Debug, Clone)]
pub struct FaultPlan {
    /// Only requests whose path starts with `/{bucket}` are touched.
    pub bucket: String,
    /// The n-th request of an operation (1-based, counted per operation) starts a fault when
    /// `n % every == first % every`, from `first` on.
    pub first: u32,
    pub every: u32,
    /// Streak lengths, taken in turn by successive faults: how many attempts of the same
    /// request are refused. The SDK tries a request 3 times, so a streak of 4 reaches the
    /// engine.
    pub streaks: Vec<u32>,
}

/// What the proxy did, per S3 operation.
#[derive(Debug, Default, Clone)]
pub struct FaultStats {
    pub forwarded: HashMap<&'static str, u32>,
    pub refused: HashMap<&'static str, u32>,
}

impl FaultStats {
    pub fn total_refused(&self) -> u32 {
        self.refused.values().sum()
    }
}

#[derive(Default)]
struct State {
    seen: HashMap<&'static str, u32>,
    faults_started: usize,
    /// Requests still to refuse: (method, path and query) → attempts left.
    streaks: HashMap<String, u32>,
    stats: FaultStats,
}

pub struct FaultProxy {
    /// `http://127.0.0.1:PORT`: the endpoint to give the S3 client.
    pub url: String,
    state: Arc<Mutex<State>>,
    accept: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free local port and forwards to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str, plan: FaultPlan) -> Self {
        assert!(plan.every > 0 && !plan.streaks.is_empty(), "{plan:?}");
        let upstream: SocketAddr = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .unwrap_or_else(|e| panic!("the S3 endpoint {upstream} is not http://ip:port: {e}"));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a local port for the fault proxy");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let plan = Arc::new(plan);
        let shared = state.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (state, plan) = (shared.clone(), plan.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        handle(request, upstream, state.clone(), plan.clone())
                    });
                    // A client that hangs up mid-request ends its connection only.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { url, state, accept }
    }

    pub fn stats(&self) -> FaultStats {
        self.state.lock().unwrap().stats.clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// The S3 operation a path-style request is, from its method and query (enough to count and
/// report; unknown shapes count as `Other`).
pub fn operation(method: &str, path_and_query: &str) -> &'static str {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let has = |name: &str| {
        query
            .split('&')
            .any(|pair| pair == name || pair.starts_with(&format!("{name}=")))
    };
    let object = path.trim_start_matches('/').contains('/');
    match method {
        "POST" if has("uploads") => "CreateMultipartUpload",
        "POST" if has("uploadId") => "CompleteMultipartUpload",
        "POST" if has("delete") => "DeleteObjects",
        "PUT" if has("partNumber") => "UploadPart",
        "PUT" if object => "PutObject",
        "DELETE" if has("uploadId") => "AbortMultipartUpload",
        "DELETE" if object => "DeleteObject",
        "GET" if has("uploads") => "ListMultipartUploads",
        "GET" if has("uploadId") => "ListParts",
        "GET" if has("list-type") => "ListObjectsV2",
        "GET" if object => "GetObject",
        "HEAD" if object => "HeadObject",
        "HEAD" => "HeadBucket",
        _ => "Other",
    }
}

/// `Some(status)`: refuse this request. Counts the request either way.
fn decide(state: &Mutex<State>, plan: &FaultPlan, method: &str, target: &str) -> Option<u16> {
    let op = operation(method, target);
    let mut state = state.lock().unwrap();
    let path = target.split('?').next().unwrap_or(target);
    let ours =
        path == format!("/{}", plan.bucket) || path.starts_with(&format!("/{}/", plan.bucket));
    let request_key = format!("{method} {target}");
    let refuse = if !ours {
        false
    } else if let Some(left) = state.streaks.get_mut(&request_key) {
        *left -= 1;
        if *left == 0 {
            state.streaks.remove(&request_key);
        }
        true
    } else {
        let seen = state.seen.entry(op).or_default();
        *seen += 1;
        let n = *seen;
        if n >= plan.first && n % plan.every == plan.first % plan.every {
            let streak = plan.streaks[state.faults_started % plan.streaks.len()];
            state.faults_started += 1;
            if streak > 1 {
                state.streaks.insert(request_key, streak - 1);
            }
            true
        } else {
            false
        }
    };
    let counts = if refuse {
        &mut state.stats.refused
    } else {
        &mut state.stats.forwarded
    };
    *counts.entry(op).or_default() += 1;
    // Alternate throttling and a server error, by how many this operation has had refused.
    refuse.then(|| {
        if state.stats.refused[op] % 2 == 1 {
            503
        } else {
            500
        }
    })
}

async fn handle(
    request: Request<Incoming>,
    upstream: SocketAddr,
    state: Arc<Mutex<State>>,
    plan: Arc<FaultPlan>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = request.method().as_str().to_owned();
    let target = request
        .uri()
        .path_and_query()
        .map_or("/".to_owned(), |p| p.as_str().to_owned());
    // The body is read first either way: a refused client must not be left mid-upload.
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return Ok(plain(
                StatusCode::BAD_REQUEST,
                format!("reading the body: {e}"),
            ));
        }
    };
    if let Some(status) = decide(&state, &plan, &method, &target) {
        return Ok(s3_error(status));
    }
    let forwarded = Request::from_parts(parts, Full::new(body));
    Ok(forward(forwarded, upstream).await.unwrap_or_else(|e| {
        plain(
            StatusCode::BAD_GATEWAY,
            format!("forwarding to {upstream}: {e}"),
        )
    }))
}

async fn forward(
    request: Request<Full<Bytes>>,
    upstream: SocketAddr,
) -> Result<Response<Full<Bytes>>, Box<dyn std::error::Error + Send + Sync>> {
    let stream = TcpStream::connect(upstream).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let response = sender.send_request(request).await?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Response::from_parts(parts, Full::new(body)))
}

fn s3_error(status: u16) -> Response<Full<Bytes>> {
    let (code, message) = match status {
        503 => ("SlowDown", "Please reduce your request rate."),
        _ => (
            "InternalError",
            "We encountered an internal error. Please try again.",
        ),
    };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>fault-proxy</RequestId></Error>"
    );
    Response::builder()
        .status(status)
        .header("content-type", "application/xml")
        .body(Full::new(Bytes::from(body)))
        .expect("a static response")
}

fn plain(status: StatusCode, text: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .body(Full::new(Bytes::from(text)))
        .expect("a static response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_named_from_method_and_query() {
        let cases = [
            ("POST", "/b/k.csv?uploads", "CreateMultipartUpload"),
            ("POST", "/b/k.csv?uploadId=u1", "CompleteMultipartUpload"),
            ("PUT", "/b/k.csv?partNumber=2&uploadId=u1", "UploadPart"),
            ("PUT", "/b/a%2Bb%20c.csv?x-id=PutObject", "PutObject"),
            ("PUT", "/b", "Other"),
            ("DELETE", "/b/k.csv?uploadId=u1", "AbortMultipartUpload"),
            ("DELETE", "/b/k.csv", "DeleteObject"),
            ("GET", "/b?uploads&prefix=x", "ListMultipartUploads"),
            ("GET", "/b?list-type=2&prefix=exports%2F", "ListObjectsV2"),
            ("GET", "/b/k.csv?uploadId=u1", "ListParts"),
            ("GET", "/b/k.csv", "GetObject"),
            ("HEAD", "/b/k.csv", "HeadObject"),
            ("HEAD", "/b", "HeadBucket"),
            ("POST", "/b?delete", "DeleteObjects"),
        ];
        for (method, target, want) in cases {
            assert_eq!(operation(method, target), want, "{method} {target}");
        }
    }

    #[test]
    fn faults_follow_the_plan_per_operation_and_repeat_for_their_streak() {
        let plan = FaultPlan {
            bucket: "b".into(),
            first: 2,
            every: 3,
            streaks: vec![1, 3],
        };
        let state = Mutex::new(State::default());
        let mut got = Vec::new();
        for n in 1..=6 {
            got.push(decide(&state, &plan, "PUT", &format!("/b/k{n}")).is_some());
        }
        // The 2nd and 5th PutObject start faults; other buckets are never touched.
        assert_eq!(got, [false, true, false, false, true, false]);
        assert!(decide(&state, &plan, "PUT", "/other/k2").is_none());
        assert!(decide(&state, &plan, "PUT", "/bb/k2").is_none());
        // The second fault's streak is 3: its request is refused twice more, then passes.
        assert_eq!(decide(&state, &plan, "PUT", "/b/k5"), Some(503));
        assert_eq!(decide(&state, &plan, "PUT", "/b/k5"), Some(500));
        assert!(decide(&state, &plan, "PUT", "/b/k5").is_none());
        let stats = state.lock().unwrap().stats.clone();
        assert_eq!(stats.refused["PutObject"], 4);
        assert_eq!(stats.forwarded["PutObject"], 7);
        // Another operation has its own count.
        assert!(decide(&state, &plan, "GET", "/b/k1").is_none());
        assert!(decide(&state, &plan, "GET", "/b/k1").is_some());
    }
}
