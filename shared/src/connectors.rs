//! Connector lifecycle (create, read, list, update, delete, setup) over the store and secret
//! ports. Transport-agnostic: the API handler maps its results to HTTP.

use chrono::Utc;
use serde_json::Value;

use crate::domain::connector::field::FieldError;
use crate::domain::connector::platform::OwnResources;
use crate::domain::connector::rules;
use crate::domain::connector::schedule::Schedule;
use crate::domain::connector::spec::{self, AccessKeyPair, AuthSpec, ConnectorSpec};
use crate::domain::connector::{Auth, Connector, ConnectorStatus, Direction, Parsed};
use crate::domain::setup::checks::{ValidationReport, ValidationStatus};
use crate::domain::setup::{self, PlatformIdentity, SetupInstructions};
use crate::error::{SecretError, StoreError};
use crate::ports::{BucketClaims, ClaimsWrite, ConnectorStore, Page, SecretStore};
use crate::validation::Validate;

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
    /// Concurrent changes on the same bucket kept winning; safe to retry.
    #[error("the bucket's connectors are being changed concurrently; retry")]
    Busy,
    /// The connector was edited while it was being validated; the result was not stored.
    #[error("connector changed during validation: it is at version {current}")]
    ChangedDuringValidation { current: u64 },
    /// The caller's `If-Match` no longer matches the stored version.
    #[error("connector changed since it was read: current version is {current}")]
    VersionMismatch { current: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secret(#[from] SecretError),
}

/// How often a create, update or delete re-reads a bucket's claims after losing a race for them.
const CLAIM_ATTEMPTS: usize = 5;

pub struct ConnectorService<S, K> {
    store: S,
    secrets: K,
    secrets_prefix: String,
    platform: PlatformIdentity,
    own: OwnResources,
}

impl<S: ConnectorStore, K: SecretStore> ConnectorService<S, K> {
    pub fn new(
        store: S,
        secrets: K,
        secrets_prefix: String,
        platform: PlatformIdentity,
        own: OwnResources,
    ) -> Self {
        Self {
            store,
            secrets,
            secrets_prefix,
            platform,
            own,
        }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn secrets(&self) -> &K {
        &self.secrets
    }

    pub async fn create(&self, tenant_id: &str, body: Value) -> Result<Connector, ServiceError> {
        let spec = spec::parse_create(body).map_err(ServiceError::Invalid)?;
        self.refuse_own_resources(&spec)?;
        // Checked before a secret is written; the write below is conditioned on these claims.
        let claims = self.claims(tenant_id, &spec.bucket).await?;
        let checked = self
            .ensure_no_overlap(tenant_id, None, &spec, claims)
            .await?;

        let now = Utc::now();
        let connector_id = format!("con_{}", uuid::Uuid::now_v7().simple());
        let auth = self
            .resolve_auth(tenant_id, &connector_id, &spec.auth, None)
            .await?;
        let mut connector = Connector {
            tenant_id: tenant_id.to_owned(),
            connector_id,
            name: spec.name.clone(),
            bucket: spec.bucket.clone(),
            region: spec.region.clone(),
            prefix: spec.prefix.clone(),
            auth,
            external_id: rules::generate_external_id(),
            challenge_file: format!("connector-challenge-{}.txt", rules::generate_token(32)),
            next_run_at: next_run(spec.flow.schedule()),
            flow: spec.flow.clone(),
            status: ConnectorStatus::PendingValidation,
            validation: None,
            due_shard: None,
            due_at: None,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        connector.refresh_due_index();
        let written = self.create_claiming(&connector, &spec, checked).await;
        if written.is_err() {
            self.discard_secret(connector.auth.secret_arn()).await;
        }
        written.map(|()| connector)
    }

    /// Writes the connector with its claim on the bucket (`checked`: the claims already read and
    /// found free of overlap), re-reading and re-checking whenever a concurrent change to the
    /// bucket's claims won the race.
    async fn create_claiming(
        &self,
        connector: &Connector,
        spec: &ConnectorSpec,
        checked: BucketClaims,
    ) -> Result<(), ServiceError> {
        let mut checked = Some(checked);
        for _ in 0..CLAIM_ATTEMPTS {
            let mut claims = match checked.take() {
                Some(claims) => claims,
                None => {
                    let claims = self.claims(&connector.tenant_id, &spec.bucket).await?;
                    self.ensure_no_overlap(&connector.tenant_id, None, spec, claims)
                        .await?
                }
            };
            claims
                .prefixes
                .insert(connector.connector_id.clone(), spec.prefix.clone());
            let write = claims_write(&spec.bucket, claims);
            match self.store.create(connector, &write).await {
                Err(StoreError::Contended) => contention_pause().await,
                other => return Ok(other?),
            }
        }
        Err(ServiceError::Busy)
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
        self.refuse_own_resources(&spec)?;
        // A move is checked before a secret is written; its write is conditioned on these claims.
        let moves = if spec.bucket != current.bucket || spec.prefix != current.prefix {
            let claims = self.claims(tenant_id, &spec.bucket).await?;
            Some(
                self.ensure_no_overlap(tenant_id, Some(connector_id), &spec, claims)
                    .await?,
            )
        } else {
            None
        };

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
        if spec.flow.schedule().map(Parsed::text) != current.schedule().map(Parsed::text) {
            updated.next_run_at = next_run(spec.flow.schedule());
        }
        updated.name = spec.name.clone();
        updated.bucket = spec.bucket.clone();
        updated.region = spec.region.clone();
        updated.prefix = spec.prefix.clone();
        updated.auth = auth;
        updated.flow = spec.flow.clone();
        if material_change {
            updated.status = ConnectorStatus::PendingValidation;
        }
        updated.version = current.version + 1;
        updated.updated_at = Utc::now();
        updated.refresh_due_index();

        let written = if let Some(checked) = moves {
            self.replace_claiming(&current, &updated, &spec, checked)
                .await
        } else {
            match self.store.replace(&updated, current.version, &[]).await {
                Err(StoreError::VersionConflict { .. }) => {
                    Err(self.mismatch(tenant_id, connector_id).await)
                }
                other => other.map_err(ServiceError::from),
            }
        };
        if let Err(e) = written {
            if updated.auth != current.auth {
                self.discard_secret(updated.auth.secret_arn()).await;
            }
            return Err(e);
        }
        if updated.auth.secret_arn() != current.auth.secret_arn() {
            self.discard_secret(current.auth.secret_arn()).await;
        }
        Ok(updated)
    }

    /// Writes an update that moves the connector to another bucket or prefix, together with the
    /// claims it leaves and takes (`checked`: the target's claims already found free of
    /// overlap); a lost race re-reads both and re-checks the overlap.
    async fn replace_claiming(
        &self,
        current: &Connector,
        updated: &Connector,
        spec: &ConnectorSpec,
        checked: BucketClaims,
    ) -> Result<(), ServiceError> {
        let (tenant_id, id) = (current.tenant_id.as_str(), current.connector_id.as_str());
        let mut checked = Some(checked);
        for _ in 0..CLAIM_ATTEMPTS {
            let mut taken = match checked.take() {
                Some(claims) => claims,
                None => {
                    let claims = self.claims(tenant_id, &spec.bucket).await?;
                    self.ensure_no_overlap(tenant_id, Some(id), spec, claims)
                        .await?
                }
            };
            taken.prefixes.insert(id.to_owned(), spec.prefix.clone());
            let mut writes = vec![claims_write(&spec.bucket, taken)];
            if current.bucket != spec.bucket {
                let mut left = self.claims(tenant_id, &current.bucket).await?;
                if left.prefixes.remove(id).is_some() {
                    writes.push(claims_write(&current.bucket, left));
                }
            }
            match self.store.replace(updated, current.version, &writes).await {
                Ok(()) => return Ok(()),
                Err(StoreError::Contended) => {
                    // Our own item may be what changed: then this edit has lost.
                    let now = self.get(tenant_id, id).await?;
                    if now.version != current.version {
                        return Err(ServiceError::VersionMismatch {
                            current: now.version,
                        });
                    }
                    contention_pause().await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::Busy)
    }

    /// Deletes the connector (releasing its claim on the bucket), then its stored secret. The
    /// conditional delete decides: a request that loses a race (412) changes nothing, and the
    /// secret is removed only once the item that names it is gone. A secret that then cannot be
    /// removed is logged by ARN for an operator (it is tagged with its tenant), never in use.
    pub async fn delete(
        &self,
        tenant_id: &str,
        connector_id: &str,
        expected_version: Option<u64>,
    ) -> Result<(), ServiceError> {
        for _ in 0..CLAIM_ATTEMPTS {
            let current = self.get(tenant_id, connector_id).await?;
            if let Some(expected) = expected_version
                && expected != current.version
            {
                return Err(ServiceError::VersionMismatch {
                    current: current.version,
                });
            }
            let mut claims = self.store.bucket_claims(tenant_id, &current.bucket).await?;
            let release = claims
                .prefixes
                .remove(connector_id)
                .map(|_| claims_write(&current.bucket, claims));
            match self
                .store
                .delete(tenant_id, connector_id, current.version, release.as_ref())
                .await
            {
                Ok(()) => {
                    self.discard_secret(current.auth.secret_arn()).await;
                    return Ok(());
                }
                // Re-read: a concurrent edit (→ 412 above) or a concurrent claim change (retry).
                Err(StoreError::Contended) => {}
                // Without If-Match the caller asked for whatever version is current.
                Err(StoreError::VersionConflict { .. }) if expected_version.is_none() => {}
                Err(StoreError::VersionConflict { .. }) => {
                    return Err(self.mismatch(tenant_id, connector_id).await);
                }
                Err(e) => return Err(e.into()),
            }
            contention_pause().await;
        }
        Err(ServiceError::Busy)
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
        validator: &impl Validate,
    ) -> Result<(ValidationReport, Connector), ServiceError> {
        let current = self.get(tenant_id, connector_id).await?;
        let report = validator.validate(&current).await;
        let mut updated = current.clone();
        updated.status = match report.status {
            ValidationStatus::Active => ConnectorStatus::Active,
            ValidationStatus::Failed => ConnectorStatus::Failed,
        };
        updated.validation = Some(report.clone());
        let now = Utc::now();
        if updated.next_run_at.is_none_or(|at| at < now) {
            updated.next_run_at = next_run(updated.schedule());
        }
        updated.version = current.version + 1;
        updated.updated_at = now;
        updated.refresh_due_index();
        match self.store.replace(&updated, current.version, &[]).await {
            Ok(()) => Ok((report, updated)),
            // Edited while validating: the result may not hold for the new settings.
            Err(StoreError::VersionConflict { .. }) => {
                match self.mismatch(tenant_id, connector_id).await {
                    ServiceError::VersionMismatch { current } => {
                        Err(ServiceError::ChangedDuringValidation { current })
                    }
                    other => Err(other),
                }
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

    /// The tenant's claims on a bucket. A bucket whose connectors predate claims has no record
    /// yet: it is seeded from the `by-bucket` index, and the first write creates it.
    async fn claims(&self, tenant_id: &str, bucket: &str) -> Result<BucketClaims, ServiceError> {
        let claims = self.store.bucket_claims(tenant_id, bucket).await?;
        if claims.version.is_some() {
            return Ok(claims);
        }
        let prefixes = self
            .store
            .list_by_bucket(bucket)
            .await?
            .into_iter()
            .filter(|c| c.tenant_id == tenant_id)
            .map(|c| (c.connector_id, c.prefix))
            .collect();
        Ok(BucketClaims {
            version: None,
            prefixes,
        })
    }

    /// 409 when another connector of the tenant holds an overlapping prefix of the bucket.
    /// Returns the claims without `self_id` and without stale entries (a claim whose connector
    /// is gone or has moved, left by a write that failed halfway), ready to be written back.
    async fn ensure_no_overlap(
        &self,
        tenant_id: &str,
        self_id: Option<&str>,
        spec: &ConnectorSpec,
        mut claims: BucketClaims,
    ) -> Result<BucketClaims, ServiceError> {
        if let Some(id) = self_id {
            claims.prefixes.remove(id);
        }
        let clashing: Vec<String> = claims
            .prefixes
            .iter()
            .filter(|(_, prefix)| rules::prefixes_overlap(prefix, &spec.prefix))
            .map(|(id, _)| id.clone())
            .collect();
        for other_id in clashing {
            let other = self.store.get(tenant_id, &other_id).await?;
            match other {
                Some(other)
                    if other.bucket == spec.bucket
                        && rules::prefixes_overlap(&other.prefix, &spec.prefix) =>
                {
                    return Err(ServiceError::Overlap {
                        other_connector_id: other.connector_id.clone(),
                        message: format!(
                            "prefix {:?} overlaps connector {} ({:?}, {}) on s3://{}/{}: one would read or overwrite the other's files; choose a separate prefix",
                            spec.prefix,
                            other.connector_id,
                            other.name,
                            direction_word(other.direction()),
                            other.bucket,
                            other.prefix
                        ),
                    });
                }
                // Still on this bucket under a prefix that does not clash: keep its true claim.
                Some(other) if other.bucket == spec.bucket => {
                    claims.prefixes.insert(other_id, other.prefix);
                }
                _ => {
                    claims.prefixes.remove(&other_id);
                }
            }
        }
        Ok(claims)
    }

    /// 400 for a connector on the platform's own bucket or a role in the platform's account.
    fn refuse_own_resources(&self, spec: &ConnectorSpec) -> Result<(), ServiceError> {
        let role_arn = match &spec.auth {
            AuthSpec::Role { role_arn } | AuthSpec::WebIdentity { role_arn } => {
                Some(role_arn.as_str())
            }
            _ => None,
        };
        let refusals = self.own.refusals(&spec.bucket, role_arn);
        if refusals.is_empty() {
            Ok(())
        } else {
            Err(ServiceError::Invalid(refusals))
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

/// A short random pause before re-reading claims that a concurrent write changed, so writers
/// that collided do not collide again in lockstep.
async fn contention_pause() {
    let millis = rand::random_range(10..60);
    tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
}

fn claims_write(bucket: &str, claims: BucketClaims) -> ClaimsWrite {
    ClaimsWrite {
        bucket: bucket.to_owned(),
        expected: claims.version,
        prefixes: claims.prefixes,
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

/// The next run of a schedule; none for ingest or while the stored schedule is stale.
fn next_run(schedule: Option<&Parsed<Schedule>>) -> Option<chrono::DateTime<Utc>> {
    schedule?.valid()?.next_after(Utc::now())
}

fn encryption_changed(current: &Connector, spec: &ConnectorSpec) -> bool {
    current.export_options().map(|e| &e.encryption)
        != spec.flow.export_options().map(|e| &e.encryption)
}

fn move_dirs_changed(current: &Connector, spec: &ConnectorSpec) -> bool {
    let dirs = |i: Option<&crate::domain::connector::IngestOptions>| {
        i.map(|i| (i.success_dir.clone(), i.failed_dir.clone()))
    };
    dirs(current.ingest_options()) != dirs(spec.flow.ingest_options())
}

fn direction_word(direction: Direction) -> &'static str {
    match direction {
        Direction::Export => "export",
        Direction::Ingest => "ingest",
    }
}

#[cfg(test)]
mod service_tests;

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
