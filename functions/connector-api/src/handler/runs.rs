//! The runs routes: start an export run now, list a connector's runs, read one.

use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Response};
use serde_json::json;
pub use shared::adapters::runs::is_run_id;
use shared::adapters::runs::new_run_id;
use shared::domain::connector::{Connector, ConnectorStatus, Direction};
use shared::domain::export::run::{Run, RunError, RunMessage, RunStatus, RunTrigger};
use shared::error::{AwsCallError, StoreError};
use shared::ports::{ConnectorStore, RunQueue, RunStore, SecretStore};
use shared::validation::Validate;

use super::{ApiError, App, json_response};
use crate::views::runs::{RunView, run_path};

/// A run still `queued` or `running` this long after it was requested is taken as lost (its
/// function died without recording an outcome) and no longer blocks a new run.
pub const LOST_RUN_AFTER: Duration = Duration::hours(1);
/// Runs read while looking for one in progress; runs come newest first and the scan stops at
/// the first older than [`LOST_RUN_AFTER`], so this only bounds a pathological burst.
const OPEN_RUN_SCAN_LIMIT: usize = 500;
const OPEN_RUN_SCAN_PAGE: u32 = 50;

pub fn run_not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "run not found")
}

/// When a `run_` UUID v7 id was made: its first 48 bits are Unix milliseconds.
fn run_id_created_at(run_id: &str) -> Option<DateTime<Utc>> {
    let hex = run_id.strip_prefix("run_")?.get(..12)?;
    let millis = i64::from_str_radix(hex, 16).ok()?;
    DateTime::from_timestamp_millis(millis)
}

fn status_name(status: ConnectorStatus) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{status:?}"))
}

/// The answer to a failed runs-table call: 503 when retrying helps, 500 otherwise.
fn store_failure(e: StoreError) -> ApiError {
    match e {
        StoreError::Aws(aws) if aws.retryable => {
            tracing::warn!(error = %aws, "transient runs table failure");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "a backing service is busy; retry in a few seconds",
            )
        }
        other => {
            tracing::error!(error = %other, "runs table call failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "the request failed on our side; it is logged, and retrying later is safe",
            )
        }
    }
}

/// What a run whose message never reached the export queue records.
fn not_queued(aws: &AwsCallError) -> RunError {
    RunError {
        reason: "not_queued".into(),
        message: "the run could not be handed to the export workers (the export queue refused it); nothing was read or written".into(),
        remediation: "nothing to change on your side: start the run again in a few minutes".into(),
        aws_error_code: aws.effective_code().map(str::to_owned),
    }
}

fn run_response(status: StatusCode, run: &Run) -> Response<Body> {
    json_response(status, &RunView::from(run))
}

impl<S: ConnectorStore, K: SecretStore, V: Validate, R: RunStore, Q: RunQueue> App<S, K, V, R, Q> {
    /// The tenant's connector (404 for another tenant's, as every route).
    async fn connector(&self, tenant: &str, id: &str) -> Result<Connector, ApiError> {
        Ok(self.service.get(tenant, id).await?)
    }

    /// `POST /connectors/{id}/runs`: checks, records the run `queued`, enqueues it; 202.
    pub(super) async fn start_run(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Response<Body>, ApiError> {
        let connector = self.connector(tenant, id).await?;
        if connector.direction() != Direction::Export {
            return Err(ApiError::field(
                StatusCode::CONFLICT,
                "not_an_export",
                "direction",
                "is ingest: only export connectors have runs (an ingest connector loads each file as it arrives)",
            ));
        }
        if connector.status != ConnectorStatus::Active {
            let status = status_name(connector.status);
            return Err(ApiError::field(
                StatusCode::CONFLICT,
                "connector_not_active",
                "status",
                &format!(
                    "is {status}, must be active: validate it first (POST /connectors/{id}/validate) and start the run once validation passes"
                ),
            ));
        }
        let now = Utc::now();
        if let Some(open) = self.open_run(id, now).await? {
            let rule = format!(
                "run {} is {} (requested {}); wait until it finishes (GET {}) or, if it never does, until {}",
                open.run_id,
                if open.status == RunStatus::Running {
                    "running"
                } else {
                    "queued"
                },
                open.requested_at.to_rfc3339(),
                run_path(id, &open.run_id),
                (open.requested_at + LOST_RUN_AFTER).to_rfc3339(),
            );
            return Err(
                ApiError::field(StatusCode::CONFLICT, "run_in_progress", "runs", &rule)
                    .with_details("run_id", json!(open.run_id)),
            );
        }

        let mut run = Run::queued(tenant, id, new_run_id(), RunTrigger::Api, now);
        self.runs.create(&run).await.map_err(store_failure)?;
        let message = RunMessage::start(&run);
        if let Err(aws) = self.queue.enqueue(&message).await {
            tracing::error!(run_id = %run.run_id, error = %aws, "the export queue refused a run");
            run.status = RunStatus::Failed;
            run.finished_at = Some(Utc::now());
            run.error = Some(not_queued(&aws));
            if let Err(e) = self.runs.update(&run).await {
                // It stays `queued`, and stops blocking new runs once taken as lost.
                tracing::error!(run_id = %run.run_id, error = %e, "could not record the unqueued run as failed");
            }
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                format!(
                    "the run could not be queued and is recorded as failed ({}); start it again in a few minutes",
                    run.run_id
                ),
            )
            .with_details("run_id", json!(run.run_id)));
        }
        let mut response = run_response(StatusCode::ACCEPTED, &run);
        if let Ok(location) = HeaderValue::from_str(&run_path(id, &run.run_id)) {
            response.headers_mut().insert(header::LOCATION, location);
        }
        Ok(response)
    }

    /// The newest run still `queued` or `running` and requested within [`LOST_RUN_AFTER`].
    async fn open_run(
        &self,
        connector_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Run>, ApiError> {
        let cutoff = now - LOST_RUN_AFTER;
        let mut after: Option<String> = None;
        let mut read = 0;
        loop {
            let page = self
                .runs
                .list(connector_id, OPEN_RUN_SCAN_PAGE, after.as_deref())
                .await
                .map_err(store_failure)?;
            for run in page.items {
                // A run is requested before its id is made, so once ids are older than the
                // cutoff every run from here on was requested before it too.
                if run_id_created_at(&run.run_id).is_some_and(|made| made < cutoff) {
                    return Ok(None);
                }
                if !run.status.is_finished() && run.requested_at >= cutoff {
                    return Ok(Some(run));
                }
                read += 1;
            }
            match page.next {
                Some(next) if read < OPEN_RUN_SCAN_LIMIT => after = Some(next),
                _ => return Ok(None),
            }
        }
    }

    /// `GET /connectors/{id}/runs`: newest first.
    pub(super) async fn list_runs(
        &self,
        tenant: &str,
        id: &str,
        limit: u32,
        after: Option<&str>,
    ) -> Result<Response<Body>, ApiError> {
        self.connector(tenant, id).await?;
        let page = self
            .runs
            .list(id, limit, after)
            .await
            .map_err(store_failure)?;
        let items: Vec<RunView> = page
            .items
            .iter()
            .filter(|run| run.tenant_id == tenant)
            .map(RunView::from)
            .collect();
        let next_token = page
            .next
            .map(|run_id| super::URL_SAFE_NO_PAD.encode(run_id));
        Ok(json_response(
            StatusCode::OK,
            &json!({"items": items, "next_token": next_token}),
        ))
    }

    /// `GET /connectors/{id}/runs/{run_id}`.
    pub(super) async fn get_run(
        &self,
        tenant: &str,
        id: &str,
        run_id: &str,
    ) -> Result<Response<Body>, ApiError> {
        self.connector(tenant, id).await?;
        let run = self
            .runs
            .get(id, run_id)
            .await
            .map_err(store_failure)?
            .filter(|run| run.tenant_id == tenant)
            .ok_or_else(run_not_found)?;
        let tasks = self.runs.tasks(id, run_id).await.map_err(store_failure)?;
        Ok(json_response(
            StatusCode::OK,
            &RunView::with_tasks(&run, &tasks),
        ))
    }

    /// `POST /connectors/{id}/runs/{run_id}/retry`: a failed run once more, with its plan and
    /// so its keys; files it wrote stay written, the others are written again; 202.
    pub(super) async fn retry_run(
        &self,
        tenant: &str,
        id: &str,
        run_id: &str,
    ) -> Result<Response<Body>, ApiError> {
        let connector = self.connector(tenant, id).await?;
        if connector.status != ConnectorStatus::Active {
            let status = status_name(connector.status);
            return Err(ApiError::field(
                StatusCode::CONFLICT,
                "connector_not_active",
                "status",
                &format!(
                    "is {status}, must be active: validate it first (POST /connectors/{id}/validate) and retry once validation passes"
                ),
            ));
        }
        let mut run = self
            .runs
            .get(id, run_id)
            .await
            .map_err(store_failure)?
            .filter(|run| run.tenant_id == tenant)
            .ok_or_else(run_not_found)?;
        if run.status != RunStatus::Failed {
            let status = serde_json::to_value(run.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            return Err(ApiError::field(
                StatusCode::CONFLICT,
                "run_not_failed",
                "status",
                &format!("is {status}: only a failed run can be retried"),
            ));
        }
        if let Some(plan) = &run.plan {
            let watermarks = self.runs.watermarks(id).await.map_err(store_failure)?;
            if plan
                .tables
                .iter()
                .any(|t| watermarks.get(&t.table).copied() != t.after_seq)
            {
                return Err(ApiError::field(
                    StatusCode::CONFLICT,
                    "watermark_moved",
                    "plan",
                    &format!(
                        "a later run already exported these rows; start a new run (POST /connectors/{id}/runs) for what is new"
                    ),
                ));
            }
        }
        if let Some(open) = self.open_run(id, Utc::now()).await? {
            return Err(ApiError::field(
                StatusCode::CONFLICT,
                "run_in_progress",
                "runs",
                &format!(
                    "run {} is not finished; retry once it is (GET {})",
                    open.run_id,
                    run_path(id, &open.run_id)
                ),
            )
            .with_details("run_id", json!(open.run_id)));
        }
        let failed = run.clone();
        run.status = RunStatus::Queued;
        run.error = None;
        run.finished_at = None;
        self.runs.update(&run).await.map_err(store_failure)?;
        if let Err(aws) = self.queue.enqueue(&RunMessage::start(&run)).await {
            tracing::error!(run_id = %run.run_id, error = %aws, "the export queue refused a retry");
            if let Err(e) = self.runs.update(&failed).await {
                tracing::error!(run_id = %run.run_id, error = %e, "could not restore the failed run");
            }
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the retry could not be queued; the run stays failed, retry again in a few minutes",
            ));
        }
        Ok(run_response(StatusCode::ACCEPTED, &run))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_tell_when_they_were_made() {
        let before = Utc::now() - Duration::milliseconds(1);
        let made = run_id_created_at(&new_run_id()).unwrap();
        assert!(made >= before && made <= Utc::now() + Duration::milliseconds(1));
        assert_eq!(
            run_id_created_at("run_019ab3c4d5e67f808192a3b4c5d6e7f8")
                .unwrap()
                .to_rfc3339(),
            "2025-11-24T02:50:12.838+00:00"
        );
        for bad in [
            "run_",
            "run_019ab3",
            "con_019ab3c4d5e67f808192a3b4c5d6e7f8",
            "run_zz9ab3c4d5e6",
        ] {
            assert_eq!(run_id_created_at(bad), None, "{bad}");
        }
    }
}
