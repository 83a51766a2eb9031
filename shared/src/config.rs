//! Settings read once per cold start from the environment (every variable is declared in
//! template.yaml and mirrored in `.local-stack/env` for local runs).

use crate::domain::connector::platform::OwnResources;
use crate::domain::setup::PlatformIdentity;

#[derive(Debug, thiserror::Error)]
#[error("environment variable {name} {problem}")]
pub struct ConfigError {
    pub name: &'static str,
    pub problem: &'static str,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub connectors_table: String,
    pub runs_table: String,
    pub ingest_ledger_table: String,
    pub lake_catalog_table: String,
    pub lake_bucket: String,
    /// The export queue: a message starts a run in `scheduled-export`.
    pub export_queue_url: String,
    /// The ingest queue: bucket notifications, and the files the poll finds, for `s3-ingest`.
    pub ingest_queue_url: String,
    /// Secrets Manager name prefix for customers' access keys, e.g. `stack/connectors/`.
    pub secrets_prefix: String,
    /// JWT claim that carries the tenant id.
    pub tenant_claim: String,
    pub platform: PlatformIdentity,
    /// The lake, every bucket in `PLATFORM_BUCKETS` and the account in `PLATFORM_ACCOUNT_ID`:
    /// refused as connector targets.
    pub own: OwnResources,
    /// Our identity provider's token source for `web_identity` connectors: a program run with
    /// the connector id, or a file path with `{connector_id}` in it.
    pub web_identity_token_command: Option<String>,
    pub web_identity_token_file: Option<String>,
    /// How long validation retries a refused AssumeRole (IAM propagation).
    pub credentials_retry_seconds: u64,
    /// Unfinished export runs one tenant may have at once (scheduled and manual alike).
    pub tenant_run_cap: u32,
}

/// Default of `TENANT_RUN_CAP`.
pub const DEFAULT_TENANT_RUN_CAP: u32 = 5;

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads through `lookup` so tests can supply variables without touching the process env.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let required = |name: &'static str| {
            lookup(name)
                .filter(|v| !v.trim().is_empty())
                .ok_or(ConfigError {
                    name,
                    problem: "is not set",
                })
        };
        let optional = |name: &str, default: &str| {
            lookup(name)
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        Ok(Self {
            connectors_table: required("CONNECTORS_TABLE")?,
            runs_table: required("RUNS_TABLE")?,
            ingest_ledger_table: required("INGEST_LEDGER_TABLE")?,
            lake_catalog_table: required("LAKE_CATALOG_TABLE")?,
            lake_bucket: required("LAKE_BUCKET")?,
            export_queue_url: required("EXPORT_QUEUE_URL")?,
            ingest_queue_url: required("INGEST_QUEUE_URL")?,
            secrets_prefix: required("SECRETS_PREFIX")?,
            tenant_claim: optional("TENANT_CLAIM", "tenant_id"),
            platform: PlatformIdentity {
                principal_arn: required("CONNECTOR_PRINCIPAL_ARN")?,
                web_identity_provider: optional(
                    "WEB_IDENTITY_PROVIDER",
                    "oidc.connectors.example.com",
                ),
                web_identity_audience: optional("WEB_IDENTITY_AUDIENCE", "sts.amazonaws.com"),
                ingest_queue_arn: required("INGEST_QUEUE_ARN")?,
            },
            own: OwnResources::new(
                std::iter::once(required("LAKE_BUCKET")?).chain(
                    lookup("PLATFORM_BUCKETS")
                        .unwrap_or_default()
                        .split(',')
                        .map(str::to_owned)
                        .collect::<Vec<_>>(),
                ),
                lookup("PLATFORM_ACCOUNT_ID"),
            ),
            web_identity_token_command: lookup("WEB_IDENTITY_TOKEN_COMMAND")
                .filter(|v| !v.trim().is_empty()),
            web_identity_token_file: lookup("WEB_IDENTITY_TOKEN_FILE")
                .filter(|v| !v.trim().is_empty()),
            credentials_retry_seconds: match lookup("VALIDATION_CREDENTIALS_RETRY_SECONDS") {
                None => 15,
                Some(v) => v.trim().parse().map_err(|_| ConfigError {
                    name: "VALIDATION_CREDENTIALS_RETRY_SECONDS",
                    problem: "must be a whole number of seconds",
                })?,
            },
            tenant_run_cap: match lookup("TENANT_RUN_CAP") {
                None => DEFAULT_TENANT_RUN_CAP,
                Some(v) => v
                    .trim()
                    .parse()
                    .ok()
                    .filter(|cap| *cap >= 1)
                    .ok_or(ConfigError {
                        name: "TENANT_RUN_CAP",
                        problem: "must be a whole number of runs, at least 1",
                    })?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn full() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("CONNECTORS_TABLE", "c"),
            ("RUNS_TABLE", "r"),
            ("INGEST_LEDGER_TABLE", "l"),
            ("LAKE_CATALOG_TABLE", "k"),
            ("LAKE_BUCKET", "b"),
            ("SECRETS_PREFIX", "s/"),
            (
                "CONNECTOR_PRINCIPAL_ARN",
                "arn:aws:iam::123456789012:role/p",
            ),
            ("INGEST_QUEUE_ARN", "arn:aws:sqs:us-east-1:123456789012:q"),
            (
                "EXPORT_QUEUE_URL",
                "https://sqs.us-east-1.amazonaws.com/123456789012/export",
            ),
            (
                "INGEST_QUEUE_URL",
                "https://sqs.us-east-1.amazonaws.com/123456789012/ingest",
            ),
        ])
    }

    #[test]
    fn defaults_and_missing_variables() {
        let env = full();
        let s = Settings::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(s.tenant_claim, "tenant_id");
        assert_eq!(s.platform.web_identity_audience, "sts.amazonaws.com");
        assert_eq!(s.credentials_retry_seconds, 15);
        assert_eq!(s.tenant_run_cap, DEFAULT_TENANT_RUN_CAP);
        assert_eq!(s.web_identity_token_file, None);
        assert!(s.own.is_own_bucket("b"), "the lake is always our own");
        assert_eq!(s.own.account_id(), None);

        let mut env = full();
        env.insert("PLATFORM_BUCKETS", "artifacts, logs,");
        env.insert("PLATFORM_ACCOUNT_ID", "999999999999");
        let s = Settings::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap();
        for own in ["b", "artifacts", "logs"] {
            assert!(s.own.is_own_bucket(own), "{own}");
        }
        assert!(!s.own.is_own_bucket(""));
        assert_eq!(s.own.account_id(), Some("999999999999"));

        assert_eq!(
            s.export_queue_url,
            "https://sqs.us-east-1.amazonaws.com/123456789012/export"
        );
        for missing in [
            "CONNECTORS_TABLE",
            "SECRETS_PREFIX",
            "INGEST_QUEUE_ARN",
            "EXPORT_QUEUE_URL",
            "INGEST_QUEUE_URL",
        ] {
            let mut env = full();
            env.insert(missing, " ");
            let err = Settings::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap_err();
            assert_eq!(err.name, missing);
        }
    }

    #[test]
    fn the_tenant_run_cap_is_a_whole_number_of_at_least_one() {
        for (value, expected) in [
            ("3", Some(3)),
            (" 12 ", Some(12)),
            ("0", None),
            ("-1", None),
            ("two", None),
        ] {
            let mut env = full();
            env.insert("TENANT_RUN_CAP", value);
            let got = Settings::from_lookup(|k| env.get(k).map(|v| v.to_string()));
            match expected {
                Some(cap) => assert_eq!(got.unwrap().tenant_run_cap, cap, "{value}"),
                None => assert_eq!(got.unwrap_err().name, "TENANT_RUN_CAP", "{value}"),
            }
        }
    }
}
