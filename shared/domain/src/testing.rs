//! Fixtures shared by the domain's unit tests.

use chrono::TimeZone;
use serde_json::Value;

use crate::connector::spec::{AuthSpec, parse_create};
use crate::connector::{Auth, Connector, ConnectorStatus, ExportOptions};

pub const EXTERNAL_ID: &str = "ExternalIdForThisConnector0123456789abcdefABCDEF";

/// An active export connector (`con_1` of tenant `acme`, name "Acme Shop", prefix `exports/`,
/// role auth) with `export` as its export settings.
pub fn export_connector(export: Value) -> Connector {
    let mut connector = stored_connector(serde_json::json!({
        "name": "Acme Shop",
        "direction": "export",
        "bucket": "acme-exports",
        "region": "us-east-1",
        "prefix": "exports",
        "auth": {"mode": "role", "role_arn": "arn:aws:iam::111111111111:role/acme-export"},
        "export": export,
    }));
    connector.status = ConnectorStatus::Active;
    connector
}

/// The export settings the parser fills in for an empty `export` object (csv, gzip, …).
pub fn export_options() -> ExportOptions {
    export_connector(serde_json::json!({}))
        .export_options()
        .cloned()
        .expect("an export connector")
}

/// The connector the service would store for this create body: tenant `acme`, id `con_1`,
/// version 1, pending validation, fixed external ID and challenge file.
pub fn stored_connector(body: Value) -> Connector {
    let spec = parse_create(body).expect("fixture bodies are valid");
    let when = chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    Connector {
        tenant_id: "acme".into(),
        connector_id: "con_1".into(),
        name: spec.name,
        bucket: spec.bucket,
        region: spec.region,
        prefix: spec.prefix,
        auth: match spec.auth {
            AuthSpec::Role { role_arn } => Auth::Role { role_arn },
            AuthSpec::WebIdentity { role_arn } => Auth::WebIdentity { role_arn },
            AuthSpec::AccessKey(keys) => Auth::AccessKey {
                secret_arn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:s".into(),
                access_key_id_hint: keys.map(|k| k.hint()).unwrap_or_default(),
            },
            AuthSpec::BucketPolicy => Auth::BucketPolicy,
        },
        external_id: EXTERNAL_ID.into(),
        challenge_file: "connector-challenge-abc.txt".into(),
        flow: spec.flow,
        status: ConnectorStatus::PendingValidation,
        validation: None,
        next_run_at: None,
        due_shard: None,
        due_at: None,
        version: 1,
        created_at: when,
        updated_at: when,
    }
}

/// A real OpenPGP public key (ed25519 primary, cv25519 encryption subkey, no expiry, made with
/// gpg 2.2) for bodies that set `export.pgp_public_key`.
pub const PGP_PUBLIC_KEY: &str = include_str!("testdata/pgp_public_key.asc");

/// The secret half of [`PGP_PUBLIC_KEY`], unprotected: for tests that decrypt an export.
pub const PGP_SECRET_KEY: &str = include_str!("testdata/pgp_secret_key.asc");

/// An active ingest connector (`con_1` of tenant `acme`, bucket `acme-drops`, prefix
/// `incoming/`, role auth) with `ingest` as its ingest settings.
pub fn ingest_connector(ingest: Value) -> Connector {
    let mut connector = stored_connector(serde_json::json!({
        "name": "Acme Drops",
        "direction": "ingest",
        "bucket": "acme-drops",
        "region": "us-east-1",
        "prefix": "incoming/",
        "auth": {"mode": "role", "role_arn": "arn:aws:iam::111111111111:role/acme-ingest"},
        "ingest": ingest,
    }));
    connector.status = ConnectorStatus::Active;
    connector
}
