//! AWS STS: the [`SecurityTokenService`] port. Calls signed with other credentials than the
//! function's get a client of their own (cheap: it shares the SDK configuration).

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_sts::Client;

use crate::error::AwsCallError;
use crate::ports::{AssumeRole, SecurityTokenService};

#[derive(Clone)]
pub struct StsTokens {
    sdk: SdkConfig,
    client: Client,
}

impl StsTokens {
    pub fn new(sdk: &SdkConfig) -> Self {
        Self {
            sdk: sdk.clone(),
            client: Client::new(sdk),
        }
    }

    fn client_as(&self, caller: Option<&Credentials>) -> Client {
        match caller {
            None => self.client.clone(),
            Some(credentials) => Client::from_conf(
                aws_sdk_sts::config::Builder::from(&self.sdk)
                    .credentials_provider(credentials.clone())
                    .build(),
            ),
        }
    }
}

impl SecurityTokenService for StsTokens {
    async fn assume_role(
        &self,
        caller: Option<&Credentials>,
        request: &AssumeRole,
    ) -> Result<Credentials, AwsCallError> {
        let out = self
            .client_as(caller)
            .assume_role()
            .role_arn(&request.role_arn)
            .role_session_name(&request.session_name)
            .set_external_id(request.external_id.clone())
            .set_source_identity(request.source_identity.clone())
            .duration_seconds(request.duration_seconds)
            .set_policy(request.policy.clone())
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("sts", "AssumeRole", &e))?;
        session_credentials(out.credentials, "AssumeRole", "connector-role")
    }

    async fn assume_role_with_web_identity(
        &self,
        request: &AssumeRole,
        token: &str,
    ) -> Result<Credentials, AwsCallError> {
        let out = self
            .client
            .assume_role_with_web_identity()
            .role_arn(&request.role_arn)
            .role_session_name(&request.session_name)
            .web_identity_token(token)
            .duration_seconds(request.duration_seconds)
            .set_policy(request.policy.clone())
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("sts", "AssumeRoleWithWebIdentity", &e))?;
        session_credentials(
            out.credentials,
            "AssumeRoleWithWebIdentity",
            "connector-web-identity",
        )
    }

    async fn caller_arn(&self, caller: Option<&Credentials>) -> Result<String, AwsCallError> {
        let out = self
            .client_as(caller)
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("sts", "GetCallerIdentity", &e))?;
        Ok(out.arn.unwrap_or_default())
    }

    async fn own_credentials(&self) -> Result<Credentials, AwsCallError> {
        let provider = self
            .sdk
            .credentials_provider()
            .ok_or_else(|| AwsCallError {
                service: "sts",
                operation: "own credentials",
                code: None,
                message: "the function has no credentials".into(),
                http_status: None,
                retryable: false,
            })?;
        provider
            .provide_credentials()
            .await
            .map_err(|e| AwsCallError {
                service: "sts",
                operation: "own credentials",
                code: None,
                message: e.to_string(),
                http_status: None,
                retryable: true,
            })
    }
}

fn session_credentials(
    credentials: Option<aws_sdk_sts::types::Credentials>,
    operation: &'static str,
    source: &'static str,
) -> Result<Credentials, AwsCallError> {
    let c = credentials.ok_or_else(|| AwsCallError {
        service: "sts",
        operation,
        code: None,
        message: "STS returned no credentials".into(),
        http_status: None,
        retryable: true,
    })?;
    let expiry = std::time::SystemTime::try_from(c.expiration).ok();
    Ok(Credentials::new(
        c.access_key_id,
        c.secret_access_key,
        Some(c.session_token),
        expiry,
        source,
    ))
}
