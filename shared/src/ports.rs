//! Narrow traits the application logic depends on; adapters implement them per AWS service.

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

    /// Fails with `AlreadyExists` rather than overwrite.
    fn create(&self, connector: &Connector) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Writes `connector` only if the stored version is still `expected_version`.
    fn replace(
        &self,
        connector: &Connector,
        expected_version: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes only if the stored version is still `expected_version`.
    fn delete(
        &self,
        tenant_id: &str,
        connector_id: &str,
        expected_version: u64,
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
