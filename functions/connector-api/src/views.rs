//! What the API returns of a connector: its settings without secrets, plus links; `runs`: of
//! a run.

use chrono::{DateTime, Utc};
use serde::Serialize;
use shared::domain::connector::{
    Auth, Connector, ConnectorStatus, Direction, ExportOptions, IngestOptions,
};
use shared::domain::setup::checks::ValidationReport;

pub mod runs;

/// What the API shows of an auth block: never a secret, never the secret's ARN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum AuthView {
    Role { role_arn: String },
    WebIdentity { role_arn: String },
    AccessKey { access_key_id_hint: String },
    BucketPolicy,
}

impl From<&Auth> for AuthView {
    fn from(auth: &Auth) -> Self {
        match auth {
            Auth::Role { role_arn } => AuthView::Role {
                role_arn: role_arn.clone(),
            },
            Auth::WebIdentity { role_arn } => AuthView::WebIdentity {
                role_arn: role_arn.clone(),
            },
            Auth::AccessKey {
                access_key_id_hint, ..
            } => AuthView::AccessKey {
                access_key_id_hint: access_key_id_hint.clone(),
            },
            Auth::BucketPolicy => AuthView::BucketPolicy,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ConnectorLinks {
    #[serde(rename = "self")]
    pub self_: String,
    pub setup: String,
    pub validate: String,
}

/// The connector as the API returns it.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectorView {
    pub id: String,
    pub name: String,
    pub direction: Direction,
    pub bucket: String,
    pub region: String,
    pub prefix: String,
    pub auth: AuthView,
    pub external_id: String,
    pub challenge_file: String,
    /// The schedule as written (also when it breaks today's rules: validation says so).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_run_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub export: Option<ExportOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_examples: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingest: Option<IngestOptions>,
    pub status: ConnectorStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation: Option<ValidationReport>,
    pub version: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub links: ConnectorLinks,
}

impl From<&Connector> for ConnectorView {
    fn from(c: &Connector) -> Self {
        let base = format!("/connectors/{}", c.connector_id);
        ConnectorView {
            id: c.connector_id.clone(),
            name: c.name.clone(),
            direction: c.direction(),
            bucket: c.bucket.clone(),
            region: c.region.clone(),
            prefix: c.prefix.clone(),
            auth: AuthView::from(&c.auth),
            external_id: c.external_id.clone(),
            challenge_file: c.challenge_file.clone(),
            schedule: c.schedule().map(|s| s.text().to_owned()),
            next_run_at: c.next_run_at,
            export: c.export_options().cloned(),
            key_examples: c.key_examples(),
            ingest: c.ingest_options().cloned(),
            status: c.status,
            validation: c.validation.clone(),
            version: c.version,
            created_at: c.created_at,
            updated_at: c.updated_at,
            links: ConnectorLinks {
                setup: format!("{base}/setup"),
                validate: format!("{base}/validate"),
                self_: base,
            },
        }
    }
}

#[cfg(test)]
mod tests;
