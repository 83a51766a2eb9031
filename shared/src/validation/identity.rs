//! The checks before anything touches the bucket: the stored settings, the connector's
//! credentials, and the confused-deputy probe of a role's trust policy.

use std::time::{Duration, Instant};

use aws_credential_types::Credentials;

use super::elapsed_ms;
use crate::credentials::{
    CredentialBroker, CredentialError, PLATFORM_ASSUME_ROLE, SessionPurpose,
    with_propagation_retries,
};
use crate::domain::connector::platform::OwnResources;
use crate::domain::connector::spec;
use crate::domain::connector::{Auth, AuthMode, Connector};
use crate::domain::setup::checks::{self, CheckId, CheckResult};
use crate::error::AwsCallError;
use crate::ports::{SecretStore, SecurityTokenService};

/// The stored settings still pass today's rules, and name none of the platform's own resources.
pub(super) fn config_check(c: &Connector, own: &OwnResources) -> CheckResult {
    let mut fields = spec::parse_patch(c, serde_json::json!({}))
        .err()
        .unwrap_or_default();
    fields.extend(own.refusals(&c.bucket, c.auth.role_arn()));
    if fields.is_empty() {
        return CheckResult::pass(CheckId::Config, "the connector's settings are valid");
    }
    CheckResult::fail(
        CheckId::Config,
        format!(
            "invalid settings: {}",
            fields
                .iter()
                .map(|f| format!("{} {}", f.field, f.rule))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        "PATCH the connector to fix the fields listed",
    )
}

/// Obtains the connector's credentials as a run would (retrying while IAM propagates); an
/// access key must also be accepted by STS and not be the platform's own.
pub(super) async fn credentials_check<T, K>(
    broker: &CredentialBroker<T, K>,
    c: &Connector,
    retry_budget: Duration,
) -> (Option<Credentials>, CheckResult)
where
    T: SecurityTokenService,
    K: SecretStore,
{
    let started = Instant::now();
    let (result, tries) = with_propagation_retries(retry_budget, || async {
        let credentials = broker.obtain(c, SessionPurpose::Validation).await?;
        if c.auth.mode() == AuthMode::AccessKey {
            broker.check_key_account(&credentials).await?;
        }
        Ok(credentials)
    })
    .await;
    let mut check = match &result {
        Ok(_) => CheckResult::pass(CheckId::Credentials, credentials_success(c)),
        Err(e) => credentials_failure(c, e, tries, retry_budget),
    };
    check.duration_ms = elapsed_ms(started);
    (result.ok(), check)
}

/// AssumeRole with a wrong external ID must be refused; unproven counts as unsafe.
pub(super) async fn external_id_check<T, K>(
    broker: &CredentialBroker<T, K>,
    c: &Connector,
) -> CheckResult
where
    T: SecurityTokenService,
    K: SecretStore,
{
    const ID: CheckId = CheckId::ExternalIdEnforced;
    let started = Instant::now();
    let Auth::Role { role_arn } = &c.auth else {
        return CheckResult::skip(ID, "applies to role connectors only");
    };
    let mut check = match broker.accepts_wrong_external_id(c, role_arn).await {
        Ok(accepted) => checks::external_id_probe(c, accepted),
        // Unproven is not safe: the connector must not become active on a guess.
        Err(e) => CheckResult::fail(
            ID,
            format!("could not probe the trust policy: {e}"),
            "validate again in a minute",
        )
        .with_code(e.effective_code()),
    };
    check.duration_ms = elapsed_ms(started);
    check
}

fn credentials_success(c: &Connector) -> String {
    match &c.auth {
        Auth::Role { role_arn } => format!(
            "assumed {role_arn} with the external ID, session connector-{}",
            c.connector_id
        ),
        Auth::WebIdentity { role_arn } => format!("assumed {role_arn} with a web identity token"),
        Auth::AccessKey {
            access_key_id_hint, ..
        } => format!("the access key {access_key_id_hint} is active"),
        Auth::BucketPolicy => "using our own principal; the bucket policy decides".to_owned(),
    }
}

pub(super) fn credentials_failure(
    c: &Connector,
    e: &CredentialError,
    tries: u32,
    budget: Duration,
) -> CheckResult {
    const ID: CheckId = CheckId::Credentials;
    let code = e.aws().and_then(AwsCallError::effective_code);
    let retried = if tries > 1 {
        format!(
            " (tried {tries} times over {} s: a role created or changed seconds ago can take a minute to become assumable; validate again shortly)",
            budget.as_secs()
        )
    } else {
        String::new()
    };
    let denied = e.aws().is_some_and(AwsCallError::is_access_denied);
    if e.aws().is_some_and(|a| a.operation == PLATFORM_ASSUME_ROLE) {
        return CheckResult::fail(
            ID,
            format!("our service could not assume its own principal: {e}"),
            "this is on our side, not yours: contact support; nothing in your account needs to change",
        )
        .with_code(code);
    }
    if let CredentialError::OwnAccount(refusal) = e {
        return CheckResult::fail(
            ID,
            refusal.clone(),
            "create an access key for an IAM user in your own account and PATCH auth with it",
        );
    }
    let sts_refused = e.aws().is_some_and(|a| a.service == "sts");
    let (message, remediation) = match (&c.auth, denied) {
        (Auth::Role { role_arn }, true) => (
            format!("we could not assume {role_arn}{retried}"),
            format!(
                "the role's trust policy must allow our principal (see GET /connectors/{}/setup, trust_policy) with the condition sts:ExternalId = \"{}\", and allow sts:SetSourceIdentity; check the role ARN",
                c.connector_id, c.external_id
            ),
        ),
        (Auth::WebIdentity { role_arn }, true) => (
            format!("we could not assume {role_arn} with our web identity token{retried}"),
            "register our OIDC provider in your account and set the role's trust policy from GET /connectors/{id}/setup".replace("{id}", &c.connector_id),
        ),
        (Auth::AccessKey { access_key_id_hint, .. }, _) if sts_refused => (
            format!("AWS refused the access key {access_key_id_hint}{retried}"),
            "the key may be deleted, inactive or mistyped: create a new access key for the IAM user and PATCH auth with it".to_owned(),
        ),
        _ => (
            format!("{e}{retried}"),
            "check the connector's auth settings; if they are right, validate again in a minute".to_owned(),
        ),
    };
    CheckResult::fail(ID, message, remediation).with_code(code)
}
