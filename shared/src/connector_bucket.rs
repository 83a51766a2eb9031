//! A connector's bucket as its runs (export and ingest) open it, and what a refused call on it
//! means for the customer: one place, so both directions word a denial alike.

use std::sync::Arc;

use aws_credential_types::provider::SharedCredentialsProvider;

use crate::credentials::{ConnectorCredentials, CredentialBroker, SessionPurpose};
use crate::domain::connector::Connector;
use crate::domain::export::run::RunError;
use crate::domain::setup::checks::{missing_permission, objects_arn};
use crate::error::AwsCallError;
use crate::ports::{CustomerStorage, SecretStore, SecurityTokenService};

/// Why a connector's bucket could not be used.
#[derive(Debug)]
pub enum BucketRefusal {
    /// Passing (a throttle, a 5xx): try again later.
    Retry(AwsCallError),
    /// The customer must act: what happened and what to do.
    Refused(RunError),
}

/// The customer's bucket with the connector's credentials, renewed as they near expiry. The
/// credentials are obtained once up front, so a refusal is reported with its remediation
/// here, not as an opaque credentials error on the first S3 call.
pub async fn open_bucket<T, K, S>(
    broker: &Arc<CredentialBroker<T, K>>,
    storage: &S,
    connector: &Connector,
) -> Result<S::Store, BucketRefusal>
where
    T: SecurityTokenService + 'static,
    K: SecretStore + 'static,
    S: CustomerStorage,
{
    if let Err(e) = broker.obtain(connector, SessionPurpose::Run).await {
        if let Some(aws) = e.aws().filter(|a| a.retryable) {
            return Err(BucketRefusal::Retry(aws.clone()));
        }
        let check = crate::validation::credentials_failure_for_run(connector, &e);
        return Err(BucketRefusal::Refused(RunError {
            reason: "credentials".into(),
            message: check.message,
            remediation: check.remediation.unwrap_or_default(),
            aws_error_code: check.aws_error_code,
        }));
    }
    let provider = ConnectorCredentials::new(
        broker.clone(),
        Arc::new(connector.clone()),
        SessionPurpose::Run,
    );
    Ok(storage.open(
        SharedCredentialsProvider::new(provider),
        &connector.bucket,
        &connector.region,
    ))
}

/// A refused or failed call on the customer's bucket: a denial names the missing `action` on
/// the objects under `prefix`, a KMS refusal the key; a throttle that outlasted the retries is
/// tried again later. `doing` says what the call was for ("writing <key>").
pub fn bucket_refusal(
    connector: &Connector,
    e: AwsCallError,
    action: &str,
    prefix: &str,
    doing: &str,
) -> BucketRefusal {
    if e.retryable {
        return BucketRefusal::Retry(e);
    }
    let code = e.effective_code().map(str::to_owned);
    let (reason, message, remediation) = if e.is_access_denied() {
        (
            "access_denied",
            format!("{doing} was denied"),
            missing_permission(connector, action, &objects_arn(connector, prefix)),
        )
    } else if code.as_deref().is_some_and(|c| c.starts_with("KMS")) {
        let key = if connector.export_options().is_some() {
            "export.encryption.kms_key_id"
        } else {
            "the KMS key the objects are encrypted with"
        };
        (
            "kms",
            format!("{doing} failed on the KMS key: {}", e.message),
            format!(
                "the role needs kms:GenerateDataKey and kms:Decrypt on {key}, and the key policy must allow it"
            ),
        )
    } else if code.as_deref() == Some("NoSuchBucket") {
        (
            "bucket_missing",
            format!("{doing}: the bucket {} no longer exists", connector.bucket),
            "create the bucket again or PATCH the connector's bucket, then validate".to_owned(),
        )
    } else {
        (
            "bucket_error",
            format!("{doing} failed: {e}"),
            "try again; if it persists, contact support with the connector id".to_owned(),
        )
    };
    BucketRefusal::Refused(RunError {
        reason: reason.to_owned(),
        message,
        remediation,
        aws_error_code: code,
    })
}
