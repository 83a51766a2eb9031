//! The runs routes: start an export run now, list a connector's runs, read one.

use base64::Engine as _;
use chrono::Utc;
use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Response};
use serde_json::json;
pub use shared::adapters::runs::is_run_id;
use shared::adapters::runs::new_run_id;
use shared::domain::connector::{Connector, ConnectorStatus, Direction};
use shared::domain::export::run::{Run, RunError, RunMessage, RunStatus, RunTrigger};
use shared::error::{AwsCallError, StoreError};
use shared::ports::{
    ClaimOutcome, ConnectorStore, IngestLedger, RunClaims, RunQueue, RunStore, SecretStore,
};
use shared::validation::Validate;

use super::{ApiError, App, json_response};
use crate::views::runs::{RunView, run_path};

pub fn run_not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "run not found")
}

fn status_name(status: ConnectorStatus) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{status:?}"))
}

/// The answer to a failed runs-table call: 503 when retrying helps, 500 otherwise.
pub(super) fn store_failure(e: StoreError) -> ApiError {
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

impl<
    S: ConnectorStore,
    K: SecretStore,
    V: Validate,
    R: RunStore + RunClaims,
    Q: RunQueue,
    F: IngestLedger,
> App<S, K, V, R, Q, F>
{
    /// The tenant's connector (404 for another tenant's, as every route).
    pub(super) async fn connector(&self, tenant: &str, id: &str) -> Result<Connector, ApiError> {
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
        let mut run = Run::queued(tenant, id, new_run_id(), RunTrigger::Api, Utc::now());
        self.claim(&run).await?;
        let message = RunMessage::start(&run);
        if let Err(aws) = self.queue.enqueue(&message).await {
            tracing::error!(run_id = %run.run_id, error = %aws, "the export queue refused a run");
            run.status = RunStatus::Failed;
            run.finished_at = Some(Utc::now());
            run.error = Some(not_queued(&aws));
            self.record_unqueued(&run).await;
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

    /// Claims `run` (recorded `queued` with its connector's and tenant's in-flight markers):
    /// 409 naming the unfinished run, or the tenant's cap, when it may not start now.
    async fn claim(&self, run: &Run) -> Result<(), ApiError> {
        let id = &run.connector_id;
        match self
            .runs
            .claim(run, self.tenant_run_cap)
            .await
            .map_err(store_failure)?
        {
            ClaimOutcome::Claimed => Ok(()),
            ClaimOutcome::InFlight { run_id } => {
                let open = self.runs.get(id, &run_id).await.map_err(store_failure)?;
                let state = open.as_ref().map_or("unfinished".to_owned(), |open| {
                    format!(
                        "{} (requested {})",
                        if open.status == RunStatus::Running {
                            "running"
                        } else {
                            "queued"
                        },
                        open.requested_at.to_rfc3339()
                    )
                });
                let rule = format!(
                    "run {run_id} is {state}; wait until it finishes (GET {}). One run of a connector at a time, scheduled or not",
                    run_path(id, &run_id),
                );
                Err(
                    ApiError::field(StatusCode::CONFLICT, "run_in_progress", "runs", &rule)
                        .with_details("run_id", json!(run_id)),
                )
            }
            ClaimOutcome::TenantAtCap { cap } => Err(ApiError::field(
                StatusCode::CONFLICT,
                "tenant_run_cap",
                "runs",
                &format!(
                    "your connectors already have {cap} runs unfinished, the most at once; start this one when one of them finishes"
                ),
            )),
            ClaimOutcome::RunChanged => Err(ApiError::field(
                StatusCode::CONFLICT,
                "run_not_failed",
                "status",
                "changed meanwhile: another retry of this run was accepted",
            )),
            ClaimOutcome::SlotTaken { run_id } => {
                // Only scheduled runs claim a slot.
                tracing::error!(%run_id, "a run without a slot was refused its slot");
                Err(store_failure(StoreError::Contended))
            }
        }
    }

    /// A claimed run whose message never reached the queue: recorded `failed` and its markers
    /// released, so it blocks nothing.
    async fn record_unqueued(&self, run: &Run) {
        if let Err(e) = self.runs.update(run).await {
            tracing::error!(run_id = %run.run_id, error = %e, "could not record the unqueued run");
        }
        if let Err(e) = self.runs.release(run).await {
            // Its markers lapse after their lease.
            tracing::error!(run_id = %run.run_id, error = %e, "could not release the unqueued run's markers");
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
        let failed = run.clone();
        run.status = RunStatus::Queued;
        run.error = None;
        run.finished_at = None;
        // Written only while it is still failed, with its markers.
        self.claim(&run).await?;
        if let Err(aws) = self.queue.enqueue(&RunMessage::start(&run)).await {
            tracing::error!(run_id = %run.run_id, error = %aws, "the export queue refused a retry");
            self.record_unqueued(&failed).await;
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the retry could not be queued; the run stays failed, retry again in a few minutes",
            ));
        }
        Ok(run_response(StatusCode::ACCEPTED, &run))
    }
}
