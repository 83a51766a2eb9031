//! Narrow traits the application logic depends on; adapters implement them per AWS service.

use std::collections::BTreeMap;
use std::future::Future;

use crate::domain::connector::Connector;
use crate::domain::spec::AccessKeyPair;
use crate::error::{SecretError, StoreError};

/// One page of a listing; `next` is the last key of the page when more may follow.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// The prefixes one tenant's connectors hold on one bucket (connector id → prefix), read
/// consistently. Writes that add, move or drop a prefix carry the version they read, so two
/// concurrent creates or updates on the same bucket cannot both pass the overlap check: the
/// second one's write fails with `StoreError::Contended` and is retried against the new claims.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketClaims {
    /// `None` while no claims record exists for the bucket.
    pub version: Option<u64>,
    pub prefixes: BTreeMap<String, String>,
}

/// A new state of one bucket's claims, written only if they are still at `expected`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimsWrite {
    pub bucket: String,
    pub expected: Option<u64>,
    pub prefixes: BTreeMap<String, String>,
}

pub trait ConnectorStore: Send + Sync {
    fn get(
        &self,
        tenant_id: &str,
        connector_id: &str,
    ) -> impl Future<Output = Result<Option<Connector>, StoreError>> + Send;

    /// Connectors of a tenant in id order, starting after `after`.
    fn list(
        &self,
        tenant_id: &str,
        limit: u32,
        after: Option<&str>,
    ) -> impl Future<Output = Result<Page<Connector>, StoreError>> + Send;

    /// Every connector on a bucket, any tenant (ingest routing, overlap checks).
    fn list_by_bucket(
        &self,
        bucket: &str,
    ) -> impl Future<Output = Result<Vec<Connector>, StoreError>> + Send;

    /// Keys (tenant, connector id) of connectors in one `by-due` shard whose next run is at or
    /// before `until_epoch`, earliest first.
    fn due(
        &self,
        shard: &str,
        until_epoch: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<(String, String)>, StoreError>> + Send;

    /// The tenant's claims on `bucket` (consistent read).
    fn bucket_claims(
        &self,
        tenant_id: &str,
        bucket: &str,
    ) -> impl Future<Output = Result<BucketClaims, StoreError>> + Send;

    /// Writes a new connector and its bucket's claims in one transaction. Fails with
    /// `AlreadyExists` rather than overwrite, and with `Contended` when the claims changed.
    fn create(
        &self,
        connector: &Connector,
        claims: &ClaimsWrite,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Writes `connector` only if the stored version is still `expected_version`, together
    /// with `claims` (none when bucket and prefix are unchanged; two when it moves bucket).
    /// With claims, any failed condition is `Contended`: the caller re-reads and decides.
    fn replace(
        &self,
        connector: &Connector,
        expected_version: u64,
        claims: &[ClaimsWrite],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes only if the stored version is still `expected_version`, releasing the
    /// connector's claim in the same transaction when one is given.
    fn delete(
        &self,
        tenant_id: &str,
        connector_id: &str,
        expected_version: u64,
        claims: Option<&ClaimsWrite>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Where customers' access keys live (never in the connectors table).
pub trait SecretStore: Send + Sync {
    /// Creates the secret `name` and returns its ARN.
    fn create(
        &self,
        name: &str,
        keys: &AccessKeyPair,
        tenant_id: &str,
    ) -> impl Future<Output = Result<String, SecretError>> + Send;

    fn update(
        &self,
        arn: &str,
        keys: &AccessKeyPair,
    ) -> impl Future<Output = Result<(), SecretError>> + Send;

    fn get(&self, arn: &str) -> impl Future<Output = Result<AccessKeyPair, SecretError>> + Send;

    /// Deletes at once (no recovery window); a secret already gone is not an error.
    fn delete(&self, arn: &str) -> impl Future<Output = Result<(), SecretError>> + Send;
}
