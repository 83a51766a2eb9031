use super::*;
use crate::testing::{EXTERNAL_ID, stored_connector};
use chrono::TimeZone;
use chrono::Utc;
use serde_json::json;

fn connector(direction: &str, auth: serde_json::Value) -> Connector {
    let mut body = json!({
        "name": "c", "direction": direction, "bucket": "acme-data", "region": "us-east-1",
        "prefix": "exports/", "auth": auth,
    });
    if direction == "ingest" {
        body["ingest"] = json!({"table": "orders"});
    }
    stored_connector(body)
}

fn role() -> Connector {
    connector(
        "export",
        json!({"mode": "role", "role_arn": "arn:aws:iam::111111111111:role/r"}),
    )
}

#[test]
fn report_orders_checks_fills_gaps_and_only_fails_on_fail() {
    let when = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let cases: Vec<(Vec<CheckResult>, ValidationStatus)> = vec![
        (
            vec![
                CheckResult::pass(CheckId::Write, "ok"),
                CheckResult::pass(CheckId::Config, "ok"),
            ],
            ValidationStatus::Active,
        ),
        (
            vec![CheckResult::warn(
                CheckId::BucketSettings,
                "versioning",
                "x",
            )],
            ValidationStatus::Active,
        ),
        (
            vec![CheckResult::skip(CheckId::Move, "n/a")],
            ValidationStatus::Active,
        ),
        (
            vec![
                CheckResult::pass(CheckId::Config, "ok"),
                CheckResult::fail(CheckId::Delete, "denied", "grant"),
            ],
            ValidationStatus::Failed,
        ),
    ];
    for (checks, expected) in cases {
        let report = ValidationReport::from_checks(checks.clone(), when, None);
        assert_eq!(report.status, expected, "{checks:?}");
        let ids: Vec<CheckId> = report.checks.iter().map(|c| c.id).collect();
        assert_eq!(ids, CheckId::ALL, "every check reported once, in order");
    }
}

#[test]
fn missing_permissions_name_the_action_resource_and_who_must_grant_it() {
    let cases = [
        (
            role(),
            "the role's policy (arn:aws:iam::111111111111:role/r) lacks s3:DeleteObject on arn:aws:s3:::acme-data/exports/*",
        ),
        (
            connector(
                "export",
                json!({"mode": "access_key", "access_key_id": "AKIAEXAMPLEEXAMPLE12", "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}),
            ),
            "the policy of the IAM user whose access key (AKIA…LE12) this connector holds lacks s3:DeleteObject",
        ),
        (
            connector("export", json!({"mode": "bucket_policy"})),
            "the bucket policy of acme-data lacks s3:DeleteObject",
        ),
    ];
    for (c, expected) in cases {
        let text = missing_permission(&c, "s3:DeleteObject", &objects_arn(&c, &c.prefix));
        assert!(text.starts_with(expected), "{text}");
        assert!(text.contains("/connectors/con_1/setup"), "{text}");
    }
}

#[test]
fn external_id_probe_fails_when_a_wrong_id_is_accepted() {
    let c = role();
    let accepted = external_id_probe(&c, true);
    assert_eq!(accepted.status, CheckStatus::Fail);
    assert!(
        accepted
            .remediation
            .unwrap()
            .contains(&format!("\"sts:ExternalId\": \"{EXTERNAL_ID}\""))
    );
    assert_eq!(external_id_probe(&c, false).status, CheckStatus::Pass);
}

#[test]
fn region_mismatch_names_the_right_region() {
    let c = role();
    let cases = [
        (Some("us-east-1"), CheckStatus::Pass, None),
        (
            Some("eu-west-1"),
            CheckStatus::Fail,
            Some("set the connector's region to eu-west-1"),
        ),
        (
            None,
            CheckStatus::Warn,
            Some("make sure acme-data is in us-east-1"),
        ),
    ];
    for (actual, status, remediation) in cases {
        let r = region_check(&c, actual);
        assert_eq!(r.status, status, "{actual:?}");
        match remediation {
            Some(text) => assert!(r.remediation.unwrap().starts_with(text)),
            None => assert!(r.remediation.is_none()),
        }
    }
}

#[test]
fn bucket_settings_warn_on_what_gets_in_the_way() {
    let clean = BucketSettings {
        versioning: Some(false),
        object_lock: Some(false),
        requester_pays: Some(false),
        owner_enforced: Some(false),
    };
    let ingest = connector(
        "ingest",
        json!({"mode": "role", "role_arn": "arn:aws:iam::111111111111:role/r"}),
    );
    let bucket_policy = connector("export", json!({"mode": "bucket_policy"}));
    let cases: Vec<(&Connector, BucketSettings, CheckStatus, &[&str])> = vec![
        (&ingest, clean.clone(), CheckStatus::Pass, &[]),
        (
            &ingest,
            BucketSettings {
                versioning: Some(true),
                ..clean.clone()
            },
            CheckStatus::Warn,
            &["delete markers"],
        ),
        (
            &ingest,
            BucketSettings {
                object_lock: Some(true),
                ..clean.clone()
            },
            CheckStatus::Warn,
            &["moving or deleting ingested files will fail"],
        ),
        (
            &ingest,
            BucketSettings {
                requester_pays: Some(true),
                ..clean.clone()
            },
            CheckStatus::Warn,
            &["requester pays"],
        ),
        (
            &bucket_policy,
            BucketSettings {
                owner_enforced: Some(true),
                ..clean.clone()
            },
            CheckStatus::Warn,
            &["BucketOwnerEnforced"],
        ),
        (
            &ingest,
            BucketSettings {
                owner_enforced: Some(true),
                ..clean.clone()
            },
            CheckStatus::Pass,
            &[],
        ),
        (
            &ingest,
            BucketSettings {
                versioning: None,
                ..clean.clone()
            },
            CheckStatus::Warn,
            &["could not read", "s3:GetBucketVersioning"],
        ),
    ];
    for (c, settings, status, phrases) in cases {
        let r = bucket_settings_check(c, &settings);
        assert_eq!(r.status, status, "{settings:?}: {r:?}");
        for phrase in phrases {
            assert!(
                r.message.contains(phrase)
                    || r.remediation.as_deref().unwrap_or("").contains(phrase),
                "{phrase}: {r:?}"
            );
        }
    }
}

#[test]
fn only_bucket_policy_connectors_need_the_challenge_file() {
    assert!(challenge_required(&connector(
        "export",
        json!({"mode": "bucket_policy"})
    )));
    assert!(!challenge_required(&role()));
}

#[test]
fn check_ids_keep_the_names_clients_key_on() {
    // The wire names are a contract: a rename here breaks clients and stored reports.
    let names: Vec<String> = CheckId::ALL
        .iter()
        .map(|id| {
            serde_json::to_value(id)
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        names,
        [
            "config",
            "credentials",
            "external_id_enforced",
            "bucket_exists",
            "bucket_region",
            "list",
            "write",
            "multipart",
            "read",
            "delete",
            "source_read",
            "move",
            "challenge_file",
            "bucket_settings",
        ]
    );
    for id in CheckId::ALL {
        assert_eq!(id.as_str(), serde_json::to_value(id).unwrap());
        assert_eq!(id.to_string(), id.as_str());
    }
    let after: Vec<CheckId> = CheckId::BucketRegion.after().collect();
    assert_eq!(after.first(), Some(&CheckId::List));
    assert_eq!(after.len(), 9);
    assert_eq!(CheckId::BucketSettings.after().count(), 0);
}
