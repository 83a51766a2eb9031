//! `GET /connectors/{id}/files`: what became of each file an ingest connector found, newest
//! first, optionally of one status (docs/architecture.md, "Ingest").

use chrono::{DateTime, Utc};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use serde_json::json;
use shared::domain::connector::field::FieldError;
use shared::domain::ingest::file::{FileStatus, IngestFile, Intake, Placement, Verdict};
use shared::ports::{ConnectorStore, IngestLedger, RunClaims, RunQueue, RunStore, SecretStore};
use shared::validation::Validate;

use super::runs::store_failure;
use super::{ApiError, App, URL_SAFE_NO_PAD, json_response};
use crate::views::runs::RunErrorView;
use base64::Engine as _;

/// A page token decodes to the ledger's `seen_key`: `<RFC 3339 time>#<64 hex digits>`.
pub fn is_file_token(token: &str) -> bool {
    token.split_once('#').is_some_and(|(time, id)| {
        DateTime::parse_from_rfc3339(time).is_ok()
            && id.len() == 64
            && id.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

/// `status`: one of the file statuses, or absent for all.
pub fn status_param(request: &Request) -> Result<Option<FileStatus>, ApiError> {
    let Some(raw) = request
        .query_string_parameters_ref()
        .and_then(|q| q.first("status"))
    else {
        return Ok(None);
    };
    FileStatus::parse(raw).map(Some).ok_or_else(|| {
        ApiError::invalid(vec![FieldError::new(
            "status",
            "must be one of processing, succeeded, failed, retrying, quarantined",
        )])
    })
}

/// Where a file went, as the customer sees it.
#[derive(Debug, Serialize)]
pub struct Destination {
    /// `deleted`, `moved` or `left_in_place`.
    pub action: &'static str,
    pub key: Option<String>,
    /// Whether it happened yet (a file still processing may have its place decided).
    pub done: bool,
}

/// One file in the API: its outcome and, for a failure, what to do.
#[derive(Debug, Serialize)]
pub struct FileView {
    pub id: String,
    pub bucket: String,
    pub key: String,
    pub etag: String,
    pub status: FileStatus,
    pub found_by: Intake,
    pub size_bytes: u64,
    pub content_bytes: u64,
    pub rows_loaded: u64,
    pub rows_rejected: u64,
    pub attempts: u32,
    pub table: String,
    /// Lake part numbers the file's rows are in.
    pub lake_parts: Vec<u64>,
    pub first_seen_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<u64>,
    pub destination: Option<Destination>,
    /// The error sidecar listing refused rows (line, column, reason, raw text).
    pub errors_key: Option<String>,
    pub error: Option<RunErrorView>,
}

impl From<&IngestFile> for FileView {
    fn from(f: &IngestFile) -> Self {
        let destination = f.placement.as_ref().map(|p| match p {
            Placement::Delete => Destination {
                action: "deleted",
                key: None,
                done: f.moved,
            },
            Placement::Move { key } => Destination {
                action: "moved",
                key: Some(key.clone()),
                done: f.moved,
            },
            Placement::Stay => Destination {
                action: "left_in_place",
                key: Some(f.file.key.clone()),
                done: f.moved,
            },
        });
        Self {
            id: f.object_id.clone(),
            bucket: f.file.bucket.clone(),
            key: f.file.key.clone(),
            etag: f.file.etag.clone(),
            status: f.status,
            found_by: f.intake,
            size_bytes: f.size,
            content_bytes: f.content_bytes,
            rows_loaded: f.rows_loaded,
            rows_rejected: f.rows_rejected,
            attempts: f.attempts,
            table: f.table.clone(),
            lake_parts: match &f.verdict {
                Some(Verdict::Loaded { parts }) => parts.clone(),
                _ => Vec::new(),
            },
            first_seen_at: f.first_seen_at,
            updated_at: f.updated_at,
            finished_at: f.finished_at,
            duration_ms: f.duration_ms,
            destination,
            errors_key: f.sidecar_key.clone(),
            error: f.error.as_ref().map(RunErrorView::from),
        }
    }
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
    /// `GET /connectors/{id}/files`.
    pub(super) async fn list_files(
        &self,
        tenant: &str,
        id: &str,
        status: Option<FileStatus>,
        limit: u32,
        after: Option<&str>,
    ) -> Result<Response<Body>, ApiError> {
        self.connector(tenant, id).await?;
        let page = self
            .files
            .list(id, status, limit, after)
            .await
            .map_err(store_failure)?;
        let items: Vec<FileView> = page
            .items
            .iter()
            .filter(|f| f.tenant_id == tenant)
            .map(FileView::from)
            .collect();
        let next_token = page.next.map(|seen| URL_SAFE_NO_PAD.encode(seen));
        Ok(json_response(
            StatusCode::OK,
            &json!({"items": items, "next_token": next_token}),
        ))
    }
}
