//! Customers' access keys in Secrets Manager. The value is JSON with the key pair; nothing of it
//! is ever logged.

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::types::Tag;
use serde::{Deserialize, Serialize};

use crate::domain::connector::spec::{AccessKeyPair, SecretString};
use crate::error::{AwsCallError, SecretError};
use crate::ports::SecretStore;

#[derive(Clone)]
pub struct SecretsManagerStore {
    client: Client,
}

impl SecretsManagerStore {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

#[derive(Serialize, Deserialize)]
struct StoredKeys {
    access_key_id: String,
    secret_access_key: String,
}

fn encode(keys: &AccessKeyPair) -> String {
    serde_json::to_string(&StoredKeys {
        access_key_id: keys.access_key_id.clone(),
        secret_access_key: keys.secret_access_key.expose().to_owned(),
    })
    .expect("two strings always serialize")
}

impl SecretStore for SecretsManagerStore {
    async fn create(
        &self,
        name: &str,
        keys: &AccessKeyPair,
        tenant_id: &str,
    ) -> Result<String, SecretError> {
        let out = self
            .client
            .create_secret()
            .name(name)
            .description("Customer S3 access key for a connector")
            .secret_string(encode(keys))
            .tags(Tag::builder().key("tenant_id").value(tenant_id).build())
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("secretsmanager", "CreateSecret", &e))?;
        out.arn.ok_or(SecretError::Corrupt)
    }

    async fn update(&self, arn: &str, keys: &AccessKeyPair) -> Result<(), SecretError> {
        self.client
            .put_secret_value()
            .secret_id(arn)
            .secret_string(encode(keys))
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("secretsmanager", "PutSecretValue", &e))?;
        Ok(())
    }

    async fn get(&self, arn: &str) -> Result<AccessKeyPair, SecretError> {
        let result = self.client.get_secret_value().secret_id(arn).send().await;
        let out = match result {
            Ok(out) => out,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                return Err(SecretError::NotFound);
            }
            Err(e) => {
                return Err(AwsCallError::from_sdk("secretsmanager", "GetSecretValue", &e).into());
            }
        };
        let stored: StoredKeys = out
            .secret_string
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .ok_or(SecretError::Corrupt)?;
        Ok(AccessKeyPair {
            access_key_id: stored.access_key_id,
            secret_access_key: SecretString::new(stored.secret_access_key),
        })
    }

    async fn delete(&self, arn: &str) -> Result<(), SecretError> {
        let result = self
            .client
            .delete_secret()
            .secret_id(arn)
            .force_delete_without_recovery(true)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(AwsCallError::from_sdk("secretsmanager", "DeleteSecret", &e).into()),
        }
    }
}
