//! Connector lifecycle (create, read, list, update, delete, setup) over the store and secret
//! ports. Transport-agnostic: the API handler maps its results to HTTP.

use chrono::Utc;
use serde_json::Value;

use crate::domain::checks::{ValidationReport, ValidationStatus};
use crate::domain::connector::{Auth, Connector, ConnectorStatus, Direction};
use crate::domain::field::FieldError;
use crate::domain::rules;
use crate::domain::schedule::Schedule;
use crate::domain::setup::{self, PlatformIdentity, SetupInstructions};
use crate::domain::spec::{self, AccessKeyPair, AuthSpec, ConnectorSpec};
use crate::error::{SecretError, StoreError};
use crate::ports::{ConnectorStore, Page, SecretStore};
use crate::validation::Validator;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("invalid connector")]
    Invalid(Vec<FieldError>),
    #[error("connector not found")]
    NotFound,
    /// Another connector of the tenant reads or writes an overlapping part of the bucket.
    #[error("{message}")]
    Overlap {
        other_connector_id: String,
        message: String,
    },
    /// The caller's `If-Match` no longer matches the stored version.
    #[error("connector changed since it was read: current version is {current}")]
    VersionMismatch { current: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secret(#[from] SecretError),
}

pub struct ConnectorService<S, K> {
    store: S,
    secrets: K,
    secrets_prefix: String,
    platform: PlatformIdentity,
}

impl<S: ConnectorStore, K: SecretStore> ConnectorService<S, K> {
    pub fn new(store: S, secrets: K, secrets_prefix: String, platform: PlatformIdentity) -> Self {
        Self {
            store,
            secrets,
            secrets_prefix,
            platform,
        }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub async fn create(&self, tenant_id: &str, body: Value) -> Result<Connector, ServiceError> {
        let spec = spec::parse_create(body).map_err(ServiceError::Invalid)?;
        self.ensure_no_overlap(tenant_id, None, &spec).await?;

        let now = Utc::now();
        let connector_id = format!("con_{}", uuid::Uuid::now_v7().simple());
        let auth = self
            .resolve_auth(tenant_id, &connector_id, &spec.auth, None)
            .await?;
        let mut connector = Connector {
            tenant_id: tenant_id.to_owned(),
            connector_id,
            name: spec.name,
            direction: spec.direction,
            bucket: spec.bucket,
            region: spec.region,
            prefix: spec.prefix,
            auth,
            external_id: rules::generate_external_id(),
            challenge_file: format!("connector-challenge-{}.txt", rules::generate_token(32)),
            next_run_at: next_run(spec.schedule.as_deref()),
            schedule: spec.schedule,
            export: spec.export,
            ingest: spec.ingest,
            status: ConnectorStatus::PendingValidation,
            validation: None,
            due_shard: None,
            due_at: None,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        connector.refresh_due_index();
        if let Err(e) = self.store.create(&connector).await {
            self.discard_secret(connector.auth.secret_arn()).await;
            return Err(e.into());
        }
        Ok(connector)
    }

    pub async fn get(
        &self,
        tenant_id: &str,
        connector_id: &str,
    ) -> Result<Connector, ServiceError> {
        self.store
            .get(tenant_id, connector_id)
            .await?
            .ok_or(ServiceError::NotFound)
    }

    pub async fn list(
        &self,
        tenant_id: &str,
        limit: u32,
        after: Option<&str>,
    ) -> Result<Page<Connector>, ServiceError> {
        Ok(self.store.list(tenant_id, limit, after).await?)
    }

    /// Applies a JSON merge patch if the connector is still at `expected_version`.
    pub async fn update(
        &self,
        tenant_id: &str,
        connector_id: &str,
        expected_version: u64,
        patch: Value,
    ) -> Result<Connector, ServiceError> {
        let current = self.get(tenant_id, connector_id).await?;
        if current.version != expected_version {
            return Err(ServiceError::VersionMismatch {
                current: current.version,
            });
        }
        let spec = spec::parse_patch(&current, patch).map_err(ServiceError::Invalid)?;
        if spec.bucket != current.bucket || spec.prefix != current.prefix {
            self.ensure_no_overlap(tenant_id, Some(connector_id), &spec)
                .await?;
        }

        // New keys go to a new secret, so the stored item and its secret change together: if the
        // conditional write fails, the old secret is untouched and the new one is discarded.
        let auth = self
            .resolve_auth(tenant_id, connector_id, &spec.auth, Some(&current.auth))
            .await?;
        let mut updated = current.clone();
        let material_change = spec.bucket != current.bucket
            || spec.region != current.region
            || spec.prefix != current.prefix
            || auth != current.auth
            || encryption_changed(&current, &spec)
            || move_dirs_changed(&current, &spec);
        if spec.schedule != current.schedule {
            updated.next_run_at = next_run(spec.schedule.as_deref());
        }
        updated.name = spec.name;
        updated.bucket = spec.bucket;
        updated.region = spec.region;
        updated.prefix = spec.prefix;
        updated.auth = auth;
        updated.schedule = spec.schedule;
        updated.export = spec.export;
        updated.ingest = spec.ingest;
        if material_change {
            updated.status = ConnectorStatus::PendingValidation;
        }
        updated.version = current.version + 1;
        updated.updated_at = Utc::now();
        updated.refresh_due_index();

        if let Err(e) = self.store.replace(&updated, current.version).await {
            if updated.auth != current.auth {
                self.discard_secret(updated.auth.secret_arn()).await;
            }
            return Err(match e {
                StoreError::VersionConflict { .. } => self.mismatch(tenant_id, connector_id).await,
                other => other.into(),
            });
        }
        if updated.auth.secret_arn() != current.auth.secret_arn() {
            self.discard_secret(current.auth.secret_arn()).await;
        }
        Ok(updated)
    }

    /// Deletes the connector and its stored secret. The secret goes first: a failure in
    /// between leaves a connector that can be deleted again, never an orphaned key pair.
    pub async fn delete(
        &self,
        tenant_id: &str,
        connector_id: &str,
        expected_version: Option<u64>,
    ) -> Result<(), ServiceError> {
        let current = self.get(tenant_id, connector_id).await?;
        if let Some(expected) = expected_version
            && expected != current.version
        {
            return Err(ServiceError::VersionMismatch {
                current: current.version,
            });
        }
        if let Some(arn) = current.auth.secret_arn() {
            self.secrets.delete(arn).await?;
        }
        match self
            .store
            .delete(tenant_id, connector_id, current.version)
            .await
        {
            Ok(()) => Ok(()),
            Err(StoreError::VersionConflict { .. }) => {
                Err(self.mismatch(tenant_id, connector_id).await)
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn setup(
        &self,
        tenant_id: &str,
        connector_id: &str,
    ) -> Result<SetupInstructions, ServiceError> {
        let connector = self.get(tenant_id, connector_id).await?;
        Ok(setup::instructions(&connector, &self.platform))
    }

    /// Runs every check with the connector's own credentials and records the result: only a
    /// passing validation makes a connector active (and schedulable).
    pub async fn validate(
        &self,
        tenant_id: &str,
        connector_id: &str,
        validator: &Validator,
    ) -> Result<(ValidationReport, Connector), ServiceError> {
        let current = self.get(tenant_id, connector_id).await?;
        let report = validator.validate(&current).await;
        let mut updated = current.clone();
        updated.status = match report.status {
            ValidationStatus::Active => ConnectorStatus::Active,
            ValidationStatus::Failed => ConnectorStatus::Failed,
        };
        updated.validation = Some(serde_json::to_value(&report).expect("report serializes"));
        let now = Utc::now();
        if updated.next_run_at.is_none_or(|at| at < now) {
            updated.next_run_at = next_run(updated.schedule.as_deref());
        }
        updated.version = current.version + 1;
        updated.updated_at = now;
        updated.refresh_due_index();
        match self.store.replace(&updated, current.version).await {
            Ok(()) => Ok((report, updated)),
            // Edited while validating: the result may not hold for the new settings.
            Err(StoreError::VersionConflict { .. }) => {
                Err(self.mismatch(tenant_id, connector_id).await)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A 412 with the version that is stored now, or a 404 when the connector is gone.
    async fn mismatch(&self, tenant_id: &str, connector_id: &str) -> ServiceError {
        match self.store.get(tenant_id, connector_id).await {
            Ok(Some(c)) => ServiceError::VersionMismatch { current: c.version },
            Ok(None) => ServiceError::NotFound,
            Err(e) => e.into(),
        }
    }

    async fn ensure_no_overlap(
        &self,
        tenant_id: &str,
        self_id: Option<&str>,
        spec: &ConnectorSpec,
    ) -> Result<(), ServiceError> {
        let others = self.store.list_by_bucket(&spec.bucket).await?;
        let clash = others.iter().find(|other| {
            other.tenant_id == tenant_id
                && Some(other.connector_id.as_str()) != self_id
                && rules::prefixes_overlap(&other.prefix, &spec.prefix)
        });
        match clash {
            None => Ok(()),
            Some(other) => Err(ServiceError::Overlap {
                other_connector_id: other.connector_id.clone(),
                message: format!(
                    "prefix {:?} overlaps connector {} ({:?}, {}) on s3://{}/{}: one would read or overwrite the other's files; choose a separate prefix",
                    spec.prefix,
                    other.connector_id,
                    other.name,
                    direction_word(other.direction),
                    other.bucket,
                    other.prefix
                ),
            }),
        }
    }

    /// The stored form of an auth spec; new access keys are written to a new secret.
    async fn resolve_auth(
        &self,
        tenant_id: &str,
        connector_id: &str,
        spec: &AuthSpec,
        current: Option<&Auth>,
    ) -> Result<Auth, ServiceError> {
        Ok(match spec {
            AuthSpec::Role { role_arn } => Auth::Role {
                role_arn: role_arn.clone(),
            },
            AuthSpec::WebIdentity { role_arn } => Auth::WebIdentity {
                role_arn: role_arn.clone(),
            },
            AuthSpec::BucketPolicy => Auth::BucketPolicy,
            AuthSpec::AccessKey(Some(keys)) => {
                self.store_keys(tenant_id, connector_id, keys).await?
            }
            AuthSpec::AccessKey(None) => match current {
                Some(kept @ Auth::AccessKey { .. }) => kept.clone(),
                _ => {
                    return Err(ServiceError::Invalid(vec![FieldError::new(
                        "auth.access_key_id",
                        "is required",
                    )]));
                }
            },
        })
    }

    async fn store_keys(
        &self,
        tenant_id: &str,
        connector_id: &str,
        keys: &AccessKeyPair,
    ) -> Result<Auth, ServiceError> {
        let name = format!(
            "{}{}/{connector_id}/{}",
            self.secrets_prefix,
            secret_name_part(tenant_id),
            rules::generate_token(8)
        );
        let secret_arn = self.secrets.create(&name, keys, tenant_id).await?;
        Ok(Auth::AccessKey {
            secret_arn,
            access_key_id_hint: keys.hint(),
        })
    }

    /// Best effort: a secret that could not be removed is logged by ARN (never its value) so
    /// an operator can remove it.
    async fn discard_secret(&self, arn: Option<&str>) {
        let Some(arn) = arn else { return };
        if let Err(e) = self.secrets.delete(arn).await {
            tracing::error!(secret_arn = arn, error = %e, "could not delete an unused secret; delete it by hand");
        }
    }
}

/// Secrets Manager names allow letters, digits and `/_+=.@-`; tenant ids may hold more (`:`).
/// The connector id that follows keeps the name unique.
fn secret_name_part(tenant_id: &str) -> String {
    tenant_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "/_+=.@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

fn next_run(schedule: Option<&str>) -> Option<chrono::DateTime<Utc>> {
    Schedule::parse(schedule?).ok()?.next_after(Utc::now())
}

fn encryption_changed(current: &Connector, spec: &ConnectorSpec) -> bool {
    current.export.as_ref().map(|e| &e.encryption) != spec.export.as_ref().map(|e| &e.encryption)
}

fn move_dirs_changed(current: &Connector, spec: &ConnectorSpec) -> bool {
    let dirs = |i: Option<&crate::domain::connector::IngestOptions>| {
        i.map(|i| (i.success_dir.clone(), i.failed_dir.clone()))
    };
    dirs(current.ingest.as_ref()) != dirs(spec.ingest.as_ref())
}

fn direction_word(direction: Direction) -> &'static str {
    match direction {
        Direction::Export => "export",
        Direction::Ingest => "ingest",
    }
}

#[cfg(test)]
mod tests {
    use super::secret_name_part;

    #[test]
    fn secret_names_hold_only_allowed_characters() {
        let cases = [
            ("acme", "acme"),
            ("org:42", "org-42"),
            ("a.b@c-d_e", "a.b@c-d_e"),
        ];
        for (tenant, expected) in cases {
            assert_eq!(secret_name_part(tenant), expected, "{tenant}");
        }
    }
}
