//! Validation: a preflight of every call a run will make, with the connector's own credentials
//! (docs/architecture.md, "Validation"). Each check reports pass/fail/warn/skip with the AWS
//! error code and what to change.
//!
//! This module decides which check runs, in which order, and what a failed gate skips; the
//! checks themselves are in `identity` (config, credentials, the confused-deputy probe) and
//! `probes` (the bucket, over the storage port); `clean_up` removes the test objects, which
//! live under `<prefix>.connector-check/`, whatever failed in between.

mod clean_up;
mod identity;
mod probes;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_credential_types::provider::SharedCredentialsProvider;
use chrono::Utc;

use crate::credentials::CredentialBroker;
use crate::domain::connector::Connector;
use crate::domain::setup::checks::{
    self, CHECK_DIR, CheckId, CheckResult, CheckStatus, ValidationReport,
};
use crate::ports::{CustomerStorage, SecretStore, SecurityTokenService};

use probes::CheckRun;

/// What the connector service needs of validation (a fake in its tests).
/// What a run reports when the connector's credentials are refused: the same message and
/// remediation as validation's `credentials` check.
pub fn credentials_failure_for_run(
    c: &Connector,
    e: &crate::credentials::CredentialError,
) -> crate::domain::setup::checks::CheckResult {
    identity::credentials_failure(c, e, 1, Duration::ZERO)
}

pub trait Validate: Send + Sync {
    fn validate(&self, c: &Connector) -> impl Future<Output = ValidationReport> + Send;
}

pub struct Validator<T, K, S> {
    broker: Arc<CredentialBroker<T, K>>,
    storage: S,
    /// How long a refused AssumeRole is retried (IAM propagation). API Gateway gives a request
    /// 30 s, so this stays below that with room for the other checks.
    credentials_retry: Duration,
}

/// A check's outcome when its precondition failed.
const NEEDS_CREDENTIALS: &str = "skipped: the credentials check failed";
const NEEDS_BUCKET: &str = "skipped: the bucket could not be reached";
const NEEDS_OWNERSHIP: &str =
    "skipped: upload the challenge file first, so we know you control this bucket";
/// Nothing touches a bucket through a role that does not check our external ID: anyone who
/// learns the role's ARN could otherwise make us act on it (confused deputy).
const NEEDS_EXTERNAL_ID: &str = "skipped: the role must refuse a wrong external ID (external_id_enforced) before anything touches the bucket";
/// Longest wait for one check's calls: the whole validation must answer within API Gateway's
/// 30 s, after the credentials check's retries.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

impl<T, K, S> Validator<T, K, S>
where
    T: SecurityTokenService,
    K: SecretStore,
    S: CustomerStorage,
{
    pub fn new(
        broker: Arc<CredentialBroker<T, K>>,
        storage: S,
        credentials_retry: Duration,
    ) -> Self {
        Self {
            broker,
            storage,
            credentials_retry,
        }
    }

    pub async fn validate(&self, c: &Connector) -> ValidationReport {
        let mut checks = Vec::new();
        let config = timed(CheckId::Config, async {
            identity::config_check(c, self.broker.own_resources())
        })
        .await;
        let config_ok = config.status != CheckStatus::Fail;
        checks.push(config);
        if !config_ok {
            return ValidationReport::from_checks(checks, Utc::now(), None);
        }

        let (credentials, result) =
            identity::credentials_check(&self.broker, c, self.credentials_retry).await;
        checks.push(result);
        let Some(credentials) = credentials else {
            skip_after(&mut checks, CheckId::Credentials, NEEDS_CREDENTIALS);
            return ValidationReport::from_checks(checks, Utc::now(), None);
        };

        let store = self.storage.open(
            SharedCredentialsProvider::new(credentials),
            &c.bucket,
            &c.region,
        );
        let run = CheckRun::new(&store, c);
        // Our principal is trusted by every customer's bucket policy, so a bucket_policy
        // connector touches nothing before its creator proves they control the bucket.
        let ownership = if checks::challenge_required(c) {
            Some(timed(CheckId::ChallengeFile, run.challenge_file()).await)
        } else {
            None
        };
        if let Some(challenge) = ownership.as_ref().filter(|r| r.status != CheckStatus::Pass) {
            checks.push(challenge.clone());
            skip_after(&mut checks, CheckId::Credentials, NEEDS_OWNERSHIP);
            return ValidationReport::from_checks(checks, Utc::now(), None);
        }
        // The confused-deputy gate comes before any call on the bucket, never beside one.
        let probe = bounded(
            CheckId::ExternalIdEnforced,
            identity::external_id_check(&self.broker, c),
            |t| t,
        )
        .await;
        let trusted = probe.status != CheckStatus::Fail;
        checks.push(probe);
        if !trusted {
            // Only role connectors run the probe, and they need no challenge file.
            skip_after(&mut checks, CheckId::ExternalIdEnforced, NEEDS_EXTERNAL_ID);
            return ValidationReport::from_checks(checks, Utc::now(), None);
        }
        let (bucket_results, bucket_region, reachable) =
            bounded(CheckId::BucketExists, run.bucket_checks(), |timeout| {
                (vec![timeout], None, false)
            })
            .await;
        checks.extend(bucket_results);
        if !reachable {
            skip_after(&mut checks, CheckId::BucketRegion, NEEDS_BUCKET);
            return ValidationReport::from_checks(checks, Utc::now(), bucket_region);
        }

        let (list, objects, multipart, source, challenge, settings) = tokio::join!(
            timed(CheckId::List, run.list()),
            run.object_round_trip(),
            timed(CheckId::Multipart, run.multipart()),
            timed(CheckId::SourceRead, run.source_read()),
            async {
                match ownership {
                    Some(proven) => proven,
                    None => timed(CheckId::ChallengeFile, run.challenge_file()).await,
                }
            },
            timed(CheckId::BucketSettings, run.bucket_settings()),
        );
        checks.extend([list, multipart, source, challenge, settings]);
        checks.extend(objects);
        let leftover = match tokio::time::timeout(CHECK_TIMEOUT, run.clean_up()).await {
            Ok(leftover) => leftover,
            Err(_) => Some(format!(
                "; removing the test objects timed out: delete s3://{}/{}{CHECK_DIR} by hand",
                c.bucket, c.prefix
            )),
        };
        if let Some(leftover) = leftover
            && let Some(delete) = checks.iter_mut().find(|r| r.id == CheckId::Delete)
        {
            delete.message.push_str(&leftover);
        }
        ValidationReport::from_checks(checks, Utc::now(), bucket_region)
    }
}

impl<T, K, S> Validate for Validator<T, K, S>
where
    T: SecurityTokenService,
    K: SecretStore,
    S: CustomerStorage,
{
    fn validate(&self, c: &Connector) -> impl Future<Output = ValidationReport> + Send {
        Validator::validate(self, c)
    }
}

/// Every check after `gate` that has not reported is skipped, saying why.
fn skip_after(checks: &mut Vec<CheckResult>, gate: CheckId, why: &str) {
    for id in gate.after() {
        if !checks.iter().any(|r| r.id == id) {
            checks.push(CheckResult::skip(id, why));
        }
    }
}

async fn timed(id: CheckId, check: impl Future<Output = CheckResult>) -> CheckResult {
    let started = Instant::now();
    let mut result = bounded(id, check, |timeout| timeout).await;
    debug_assert_eq!(result.id, id);
    result.duration_ms = elapsed_ms(started);
    result
}

/// Runs `work` for at most CHECK_TIMEOUT; past it, `on_timeout` turns a failed `id` check into
/// the work's output type.
async fn bounded<O>(
    id: CheckId,
    work: impl Future<Output = O>,
    on_timeout: impl FnOnce(CheckResult) -> O,
) -> O {
    match tokio::time::timeout(CHECK_TIMEOUT, work).await {
        Ok(out) => out,
        Err(_) => on_timeout(CheckResult::fail(
            id,
            format!("S3 did not answer within {} s", CHECK_TIMEOUT.as_secs()),
            "validate again; if it keeps timing out, check the bucket's region and any VPC endpoint policy",
        )),
    }
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}
