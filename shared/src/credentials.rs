//! Short-lived credentials for one connector, obtained per invocation (docs/architecture.md,
//! "Credentials, per auth mode"):
//! `role` — AssumeRole with our ExternalId, a session named after the connector and a session
//! policy narrowing it to the connector's bucket and prefix; `web_identity` — AssumeRoleWith-
//! WebIdentity with a token from our identity provider; `access_key` — the pair from Secrets
//! Manager, read at use; `bucket_policy` — our own principal.
//!
//! Nothing here is cached across invocations or connectors. An S3 client built with
//! [`ConnectorCredentials`] asks for fresh credentials whenever the SDK's identity cache finds
//! them near expiry, so a long run renews its session before it lapses.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{self, ProvideCredentials, future};
use serde_json::json;
use tokio::sync::OnceCell;

use crate::domain::connector::platform::{OwnResources, arn_account};
use crate::domain::connector::{Auth, Connector};
use crate::domain::setup;
use crate::error::{AwsCallError, SecretError};
use crate::ports::{AssumeRole, SecretStore, SecurityTokenService};

/// Operation name of every step that obtains our own principal's credentials (the function's
/// identity, or the hop from it to the principal), so a failure there is reported as ours,
/// never as the customer's trust policy.
pub const PLATFORM_ASSUME_ROLE: &str = "AssumeRole (platform principal)";

/// STS's ceiling for a session policy (packed); past it we fall back to a bucket-wide policy.
const MAX_SESSION_POLICY_CHARS: usize = 2048;

/// How long the session should last, fitted to the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionPurpose {
    /// A validation takes seconds: STS's minimum.
    Validation,
    /// An export or ingest run: one hour, the ceiling for chained role sessions; longer runs
    /// renew before expiry.
    Run,
}

impl SessionPurpose {
    pub fn duration_seconds(self) -> i32 {
        match self {
            SessionPurpose::Validation => 900,
            SessionPurpose::Run => 3600,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error(transparent)]
    Aws(#[from] AwsCallError),
    #[error(
        "the connector's access key is not in Secrets Manager any more; enter the key pair again"
    )]
    SecretMissing,
    #[error("the connector's stored access key cannot be read; enter the key pair again")]
    SecretCorrupt,
    #[error("no web identity token: {0}")]
    Token(String),
    /// The role accepted a wrong external ID: anyone who knows its ARN could make us act on the
    /// bucket (confused deputy), so no session is handed out.
    #[error(
        "the role {role_arn} accepts a wrong external ID; add the condition sts:ExternalId = \"{external_id}\" to its trust policy before it can be used"
    )]
    ExternalIdNotEnforced {
        role_arn: String,
        external_id: String,
    },
    /// Credentials of the platform's own account (an access key of ours, say).
    #[error("{0}")]
    OwnAccount(String),
}

impl From<SecretError> for CredentialError {
    fn from(e: SecretError) -> Self {
        match e {
            SecretError::NotFound => CredentialError::SecretMissing,
            SecretError::Corrupt => CredentialError::SecretCorrupt,
            SecretError::Aws(aws) => CredentialError::Aws(aws),
        }
    }
}

impl CredentialError {
    pub fn aws(&self) -> Option<&AwsCallError> {
        match self {
            CredentialError::Aws(aws) => Some(aws),
            _ => None,
        }
    }
}

/// Where `web_identity` tokens come from. The customer's trust policy pins the token's `sub` to
/// one connector, so every source yields a token for the given connector.
#[derive(Debug, Clone)]
pub enum TokenSource {
    /// A file per connector, kept fresh by our identity provider's agent (as
    /// `AWS_WEB_IDENTITY_TOKEN_FILE` works): `{connector_id}` in the path is replaced.
    File(String),
    /// A program of our identity provider, run with the connector id as its only argument;
    /// it prints the token on stdout.
    Command(std::path::PathBuf),
    None,
}

impl TokenSource {
    /// From `WEB_IDENTITY_TOKEN_COMMAND` (preferred) or `WEB_IDENTITY_TOKEN_FILE`.
    pub fn from_settings(command: Option<&str>, file: Option<&str>) -> Self {
        match (command, file) {
            (Some(command), _) => TokenSource::Command(command.into()),
            (None, Some(file)) => TokenSource::File(file.to_owned()),
            (None, None) => TokenSource::None,
        }
    }

    pub async fn token(&self, connector_id: &str) -> Result<String, CredentialError> {
        let token = match self {
            TokenSource::File(template) => {
                let path = template.replace("{connector_id}", connector_id);
                tokio::fs::read_to_string(&path)
                    .await
                    .map_err(|e| CredentialError::Token(format!("{path}: {e}")))?
            }
            TokenSource::Command(program) => {
                let out = tokio::process::Command::new(program)
                    .arg(connector_id)
                    .kill_on_drop(true)
                    .output()
                    .await
                    .map_err(|e| CredentialError::Token(format!("{}: {e}", program.display())))?;
                if !out.status.success() {
                    // stderr may be diagnostic, but never echo stdout: it could hold a token.
                    return Err(CredentialError::Token(format!(
                        "{} exited with {}",
                        program.display(),
                        out.status
                    )));
                }
                String::from_utf8(out.stdout).map_err(|_| {
                    CredentialError::Token(format!(
                        "{} printed a non-UTF-8 token",
                        program.display()
                    ))
                })?
            }
            TokenSource::None => {
                return Err(CredentialError::Token(
                    "neither WEB_IDENTITY_TOKEN_COMMAND nor WEB_IDENTITY_TOKEN_FILE is configured"
                        .into(),
                ));
            }
        };
        let token = token.trim().to_owned();
        if token.is_empty() {
            return Err(CredentialError::Token(
                "the token source gave an empty token".into(),
            ));
        }
        Ok(token)
    }
}

/// Obtains connector credentials through STS and the secret store. Built once per cold start;
/// holds no customer credentials.
pub struct CredentialBroker<T, K> {
    sts: T,
    secrets: K,
    principal_arn: String,
    tokens: TokenSource,
    own: OwnResources,
    /// Decided on first use: whether the function must assume the principal first (role
    /// chaining, in AWS) or already runs as it (locally).
    must_chain: OnceCell<bool>,
}

impl<T: SecurityTokenService, K: SecretStore> CredentialBroker<T, K> {
    pub fn new(
        sts: T,
        secrets: K,
        principal_arn: String,
        tokens: TokenSource,
        own: OwnResources,
    ) -> Self {
        Self {
            sts,
            secrets,
            principal_arn,
            tokens,
            own,
            must_chain: OnceCell::new(),
        }
    }

    /// The platform's own buckets and account, which no connector session may reach.
    pub fn own_resources(&self) -> &OwnResources {
        &self.own
    }

    /// The confused-deputy probe: AssumeRole with a wrong ExternalId. `Ok(true)` when the role
    /// accepted it (unsafe), `Ok(false)` when it was refused; any other failure leaves it
    /// unproven, which callers must treat as unsafe.
    pub async fn accepts_wrong_external_id(
        &self,
        connector: &Connector,
        role_arn: &str,
    ) -> Result<bool, AwsCallError> {
        let wrong = format!(
            "wrong-{}",
            crate::domain::connector::rules::generate_token(16)
        );
        match self
            .assume_customer_role(connector, role_arn, &wrong, SessionPurpose::Validation)
            .await
        {
            Ok(_) => Ok(true),
            // Only the customer role's refusal counts: a denial of our own principal hop
            // proves nothing about the role.
            Err(e) if e.is_access_denied() && e.operation != PLATFORM_ASSUME_ROLE => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Fails an access key of the platform's own account (found with GetCallerIdentity).
    pub async fn check_key_account(
        &self,
        credentials: &Credentials,
    ) -> Result<(), CredentialError> {
        let caller = self.caller_arn(credentials).await?;
        match arn_account(&caller).and_then(|account| self.own.credentials_refusal(account)) {
            Some(refusal) => Err(CredentialError::OwnAccount(refusal)),
            None => Ok(()),
        }
    }

    /// Credentials for the connector, for `purpose`.
    pub async fn obtain(
        &self,
        connector: &Connector,
        purpose: SessionPurpose,
    ) -> Result<Credentials, CredentialError> {
        match &connector.auth {
            Auth::Role { role_arn } => {
                // Every run re-proves the trust policy: a role that stopped checking the
                // external ID since validation gets no session (nothing touches the bucket).
                if purpose == SessionPurpose::Run
                    && self.accepts_wrong_external_id(connector, role_arn).await?
                {
                    return Err(CredentialError::ExternalIdNotEnforced {
                        role_arn: role_arn.clone(),
                        external_id: connector.external_id.clone(),
                    });
                }
                Ok(self
                    .assume_customer_role(connector, role_arn, &connector.external_id, purpose)
                    .await?)
            }
            Auth::WebIdentity { role_arn } => {
                let token = self.tokens.token(&connector.connector_id).await?;
                let request = AssumeRole {
                    role_arn: role_arn.clone(),
                    session_name: session_name(connector),
                    external_id: None,
                    source_identity: None,
                    duration_seconds: purpose.duration_seconds(),
                    policy: Some(session_policy(connector, &self.own)),
                };
                Ok(self
                    .sts
                    .assume_role_with_web_identity(&request, &token)
                    .await?)
            }
            Auth::AccessKey { secret_arn, .. } => {
                let keys = self.secrets.get(secret_arn).await?;
                let credentials = Credentials::new(
                    keys.access_key_id,
                    keys.secret_access_key.expose(),
                    None,
                    None,
                    "connector-access-key",
                );
                // A key pair carries no session policy, so whose it is is checked instead.
                if purpose == SessionPurpose::Run {
                    self.check_key_account(&credentials).await?;
                }
                Ok(credentials)
            }
            Auth::BucketPolicy => Ok(self.principal_credentials(Some(connector)).await?),
        }
    }

    /// AssumeRole into the customer's role as our principal. Public for the confused-deputy
    /// probe, which calls it with a wrong ExternalId on purpose.
    pub async fn assume_customer_role(
        &self,
        connector: &Connector,
        role_arn: &str,
        external_id: &str,
        purpose: SessionPurpose,
    ) -> Result<Credentials, AwsCallError> {
        let principal = self.principal_caller().await?;
        let request = AssumeRole {
            role_arn: role_arn.to_owned(),
            session_name: session_name(connector),
            external_id: Some(external_id.to_owned()),
            source_identity: Some(connector.connector_id.clone()),
            duration_seconds: purpose.duration_seconds(),
            policy: Some(session_policy(connector, &self.own)),
        };
        self.sts.assume_role(principal.as_ref(), &request).await
    }

    /// Who the given credentials are (STS GetCallerIdentity needs no permission).
    pub async fn caller_arn(&self, credentials: &Credentials) -> Result<String, AwsCallError> {
        self.sts.caller_arn(Some(credentials)).await
    }

    /// Our principal's credentials; for a `bucket_policy` connector (`scope`), narrowed by its
    /// session policy to that connector's bucket and prefix.
    async fn principal_credentials(
        &self,
        scope: Option<&Connector>,
    ) -> Result<Credentials, AwsCallError> {
        let ours = if self.must_chain().await? {
            let request = AssumeRole {
                role_arn: self.principal_arn.clone(),
                session_name: scope.map_or_else(|| "connector-platform".to_owned(), session_name),
                external_id: None,
                source_identity: None,
                duration_seconds: 3600,
                policy: scope.map(|c| session_policy(c, &self.own)),
            };
            self.sts.assume_role(None, &request).await
        } else {
            // Already the principal (locally): the function's own credentials.
            self.sts.own_credentials().await
        };
        // Whatever failed here is ours to fix, never the customer's trust policy.
        ours.map_err(|e| AwsCallError {
            operation: PLATFORM_ASSUME_ROLE,
            ..e
        })
    }

    /// The credentials that sign calls as our principal: `None` when the function already is
    /// the principal.
    async fn principal_caller(&self) -> Result<Option<Credentials>, AwsCallError> {
        if !self.must_chain().await? {
            return Ok(None);
        }
        Ok(Some(self.principal_credentials(None).await?))
    }

    /// True when the function runs as another identity than the principal customers trust (in
    /// AWS: its execution role), so the principal must be assumed first.
    async fn must_chain(&self) -> Result<bool, AwsCallError> {
        let must_chain = self
            .must_chain
            .get_or_try_init(|| async {
                let caller = self.sts.caller_arn(None).await?;
                Ok::<_, AwsCallError>(!is_same_principal(&caller, &self.principal_arn))
            })
            .await?;
        Ok(*must_chain)
    }
}

/// The caller is the principal when it is the principal itself (a user or role ARN) or a
/// session of the principal role (`arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION`).
pub fn is_same_principal(caller_arn: &str, principal_arn: &str) -> bool {
    if caller_arn == principal_arn {
        return true;
    }
    let Some((prefix, role_path)) = principal_arn.split_once(":role/") else {
        return false;
    };
    let role_name = role_path.rsplit('/').next().unwrap_or(role_path);
    let session_prefix = format!(
        "{}:assumed-role/{role_name}/",
        prefix.replacen(":iam:", ":sts:", 1)
    );
    caller_arn.starts_with(&session_prefix)
}

/// Shown in the customer's CloudTrail next to every call: which connector acted.
pub fn session_name(connector: &Connector) -> String {
    let mut name = format!("connector-{}", connector.connector_id);
    name.truncate(64);
    name
}

/// The connector's own permissions as an inline session policy, so the session can do no more
/// than this connector needs even when the customer's role is broader.
/// It also denies every bucket of the platform's own account.
pub fn session_policy(connector: &Connector, own: &OwnResources) -> String {
    // STS takes session policies in a limited character range (up to U+00FF), and emulators
    // mis-sign anything non-ASCII: a character outside ASCII is sent as a JSON `\uXXXX` escape,
    // which IAM reads back as that exact character (never as a wildcard).
    ascii_escaped(&session_policy_text(connector, own))
}

/// The JSON text with every non-ASCII character as `\uXXXX` (UTF-16, surrogate pairs above
/// U+FFFF). serde_json writes non-ASCII only inside strings, where the escape means the same.
fn ascii_escaped(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

fn session_policy_text(connector: &Connector, own: &OwnResources) -> String {
    let statements = setup::s3_statements(connector, None);
    let deny = own.deny_statement();
    let compact: Vec<_> = statements
        .iter()
        .cloned()
        .map(|mut s| {
            s.as_object_mut().map(|m| m.remove("Sid"));
            s
        })
        .chain(deny.clone())
        .collect();
    let policy = json!({"Version": "2012-10-17", "Statement": compact}).to_string();
    if policy.len() <= MAX_SESSION_POLICY_CHARS {
        return policy;
    }
    // Very long prefixes or folder lists: the same actions, on the whole bucket.
    let partition = crate::domain::connector::rules::partition_for_region(&connector.region);
    let bucket = format!("arn:{partition}:s3:::{}", connector.bucket);
    let mut s3_actions: Vec<String> = Vec::new();
    let mut other = Vec::new();
    for statement in statements {
        let actions: Vec<String> = statement["Action"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if actions.iter().all(|a| a.starts_with("s3:")) {
            for action in actions {
                if !s3_actions.contains(&action) {
                    s3_actions.push(action);
                }
            }
        } else {
            other.push(
                json!({"Effect": "Allow", "Action": actions, "Resource": statement["Resource"]}),
            );
        }
    }
    let mut all = vec![
        json!({"Effect": "Allow", "Action": s3_actions, "Resource": [bucket.clone(), format!("{bucket}/*")]}),
    ];
    all.extend(other);
    all.extend(deny);
    json!({"Version": "2012-10-17", "Statement": all}).to_string()
}

/// A credentials provider for one connector's S3 client: the SDK calls it again when the
/// session nears expiry, so long runs renew instead of failing midway.
pub struct ConnectorCredentials<T, K> {
    broker: Arc<CredentialBroker<T, K>>,
    connector: Arc<Connector>,
    purpose: SessionPurpose,
}

impl<T, K> Clone for ConnectorCredentials<T, K> {
    fn clone(&self) -> Self {
        Self {
            broker: self.broker.clone(),
            connector: self.connector.clone(),
            purpose: self.purpose,
        }
    }
}

impl<T, K> std::fmt::Debug for ConnectorCredentials<T, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectorCredentials")
            .field("connector", &self.connector.connector_id)
            .finish()
    }
}

impl<T, K> ConnectorCredentials<T, K> {
    pub fn new(
        broker: Arc<CredentialBroker<T, K>>,
        connector: Arc<Connector>,
        purpose: SessionPurpose,
    ) -> Self {
        Self {
            broker,
            connector,
            purpose,
        }
    }
}

impl<T, K> ProvideCredentials for ConnectorCredentials<T, K>
where
    T: SecurityTokenService + 'static,
    K: SecretStore + 'static,
{
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            self.broker
                .obtain(&self.connector, self.purpose)
                .await
                .map_err(provider::error::CredentialsError::provider_error)
        })
    }
}

/// Retries `attempt` while it is refused, for up to `budget`: IAM changes (a role created or a
/// trust policy edited seconds ago) take a while to reach STS.
pub async fn with_propagation_retries<T, F, Fut>(
    budget: Duration,
    mut attempt: F,
) -> (Result<T, CredentialError>, u32)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, CredentialError>>,
{
    let started = Instant::now();
    let mut delay = Duration::from_millis(500);
    let mut tries = 0;
    loop {
        tries += 1;
        let result = attempt().await;
        let retry = match &result {
            Ok(_) => false,
            Err(CredentialError::Aws(e)) => e.is_access_denied() || e.retryable,
            Err(_) => false,
        };
        if !retry || started.elapsed() + delay > budget {
            return (result, tries);
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// The broker the functions use: AWS STS and Secrets Manager, our principal, token source and
/// own resources from the settings (built once per cold start).
#[cfg(all(feature = "sts", feature = "secrets-manager"))]
pub fn aws_broker(
    sdk: &aws_config::SdkConfig,
    settings: &crate::config::Settings,
) -> CredentialBroker<
    crate::adapters::sts::StsTokens,
    crate::adapters::secrets_manager::SecretsManagerStore,
> {
    CredentialBroker::new(
        crate::adapters::sts::StsTokens::new(sdk),
        crate::adapters::secrets_manager::SecretsManagerStore::new(crate::aws::secrets_client(sdk)),
        settings.platform.principal_arn.clone(),
        TokenSource::from_settings(
            settings.web_identity_token_command.as_deref(),
            settings.web_identity_token_file.as_deref(),
        ),
        settings.own.clone(),
    )
}

#[cfg(test)]
mod tests;
