use super::*;
use crate::connector::{Auth, Flow};
use crate::testing::stored_connector;

fn platform() -> PlatformIdentity {
    PlatformIdentity {
        principal_arn: "arn:aws:iam::123456789012:role/connector-access".into(),
        web_identity_provider: "oidc.connectors.example.com".into(),
        web_identity_audience: "sts.amazonaws.com".into(),
        ingest_queue_arn: "arn:aws:sqs:us-east-1:123456789012:ingest".into(),
    }
}

fn connector(direction: &str, auth: Value) -> Connector {
    let mut body = json!({
        "name": "c", "direction": direction, "bucket": "acme-data", "region": "us-east-1",
        "prefix": "exports/", "auth": auth,
    });
    if direction == "ingest" {
        body["prefix"] = json!("incoming/");
        body["ingest"] =
            json!({"table": "orders", "success_dir": "done/", "failed_dir": "failed/"});
    }
    stored_connector(body)
}

/// Structural IAM checks: version, statements with Effect/Action/Resource, known action names.
fn assert_valid_policy(policy: &Value, context: &str) {
    assert_eq!(policy["Version"], "2012-10-17", "{context}");
    let statements = policy["Statement"].as_array().expect("Statement array");
    assert!(!statements.is_empty(), "{context}");
    let mut sids = std::collections::HashSet::new();
    for s in statements {
        assert_eq!(s["Effect"], "Allow", "{context}: {s}");
        let actions: Vec<&str> = match &s["Action"] {
            Value::String(a) => vec![a.as_str()],
            Value::Array(a) => a.iter().map(|v| v.as_str().unwrap()).collect(),
            other => panic!("{context}: Action {other}"),
        };
        for a in actions {
            let (service, name) = a.split_once(':').expect("service:Action");
            let allowed: &[&str] = if s.get("Principal").is_some() {
                // Resource policies (bucket and trust policies) cannot grant KMS.
                &["s3", "sts"]
            } else {
                &["s3", "sts", "kms"]
            };
            assert!(allowed.contains(&service), "{context}: {a}");
            assert!(
                name.chars().next().unwrap().is_ascii_uppercase(),
                "{context}: {a}"
            );
            assert!(!name.contains('*'), "{context}: no wildcard actions: {a}");
        }
        if let Some(sid) = s["Sid"].as_str() {
            assert!(
                sid.chars().all(|c| c.is_ascii_alphanumeric()),
                "{context}: Sid {sid}"
            );
            assert!(
                sids.insert(sid.to_owned()),
                "{context}: duplicate Sid {sid}"
            );
        }
    }
}

fn actions_on(policy: &Value, resource: &str) -> Vec<String> {
    let mut out = Vec::new();
    for s in policy["Statement"].as_array().unwrap() {
        let resources: Vec<&str> = match &s["Resource"] {
            Value::String(r) => vec![r.as_str()],
            Value::Array(r) => r.iter().map(|v| v.as_str().unwrap()).collect(),
            _ => vec![],
        };
        if resources.contains(&resource) {
            for a in s["Action"].as_array().unwrap() {
                out.push(a.as_str().unwrap().to_owned());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn each_mode_gets_what_it_must_paste() {
    let role = json!({"mode": "role", "role_arn": "arn:aws:iam::111111111111:role/r"});
    let web = json!({"mode": "web_identity", "role_arn": "arn:aws:iam::111111111111:role/r"});
    let keys = json!({"mode": "access_key", "access_key_id": "AKIAEXAMPLEEXAMPLE12", "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"});
    let bucket_policy = json!({"mode": "bucket_policy"});
    // (direction, auth, has permission policy, has trust policy, has bucket policy, challenge required)
    let cases = [
        ("export", &role, true, true, false, false),
        ("export", &web, true, true, false, false),
        ("export", &keys, true, false, false, false),
        ("export", &bucket_policy, false, false, true, true),
        ("ingest", &role, true, true, false, false),
        ("ingest", &bucket_policy, false, false, true, true),
    ];
    for (direction, auth, permission, trust, bucket, challenge) in cases {
        let c = connector(direction, auth.clone());
        let out = instructions(&c, &platform());
        let context = format!("{direction} {}", auth["mode"]);
        assert_eq!(out.permission_policy.is_some(), permission, "{context}");
        assert_eq!(out.trust_policy.is_some(), trust, "{context}");
        assert_eq!(out.bucket_policy.is_some(), bucket, "{context}");
        assert_eq!(out.challenge_file.required, challenge, "{context}");
        assert_eq!(
            out.challenge_file.key,
            "exports/connector-challenge-abc.txt".replace("exports/", &c.prefix)
        );
        assert_eq!(
            out.event_notification.is_some(),
            direction == "ingest",
            "{context}"
        );
        for policy in [
            &out.permission_policy,
            &out.trust_policy,
            &out.bucket_policy,
        ]
        .into_iter()
        .flatten()
        {
            assert_valid_policy(policy, &context);
        }
        let text = serde_json::to_string(&out).unwrap();
        assert!(
            !text.contains("EXAMPLEKEY") && !text.contains("secretsmanager"),
            "{context}: no secret or secret ARN"
        );
        assert!(
            out.steps
                .last()
                .unwrap()
                .contains("/connectors/con_1/validate"),
            "{context}"
        );
    }
}

#[test]
fn export_permissions_are_scoped_to_bucket_and_prefix() {
    let c = connector(
        "export",
        json!({"mode": "role", "role_arn": "arn:aws:iam::111111111111:role/r"}),
    );
    let policy = policy(s3_statements(&c, None));
    assert_eq!(
        actions_on(&policy, "arn:aws:s3:::acme-data/exports/*"),
        vec![
            "s3:AbortMultipartUpload",
            "s3:DeleteObject",
            "s3:GetObject",
            "s3:ListMultipartUploadParts",
            "s3:PutObject"
        ]
    );
    assert_eq!(
        actions_on(&policy, "arn:aws:s3:::acme-data"),
        vec![
            "s3:GetBucketLocation",
            "s3:GetBucketObjectLockConfiguration",
            "s3:GetBucketOwnershipControls",
            "s3:GetBucketRequestPayment",
            "s3:GetBucketVersioning",
            "s3:ListBucket",
        ]
    );
    let list = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == "ConnectorList")
        .unwrap();
    assert_eq!(
        list["Condition"]["StringLike"]["s3:prefix"],
        json!(["exports/*"])
    );
    let text = policy.to_string();
    assert!(!text.contains("\"*\""), "no resource wildcard: {text}");
}

#[test]
fn ingest_permissions_cover_moves_but_write_nowhere_else_in_the_source() {
    let c = connector(
        "ingest",
        json!({"mode": "role", "role_arn": "arn:aws:iam::111111111111:role/r"}),
    );
    let policy = policy(s3_statements(&c, None));
    assert_eq!(
        actions_on(&policy, "arn:aws:s3:::acme-data/incoming/*"),
        vec!["s3:DeleteObject", "s3:GetObject"]
    );
    let done = actions_on(&policy, "arn:aws:s3:::acme-data/done/*");
    for needed in ["s3:PutObject", "s3:GetObject", "s3:DeleteObject"] {
        assert!(
            done.contains(&needed.to_owned()),
            "success dir needs {needed}: {done:?}"
        );
    }
    assert!(
        actions_on(
            &policy,
            "arn:aws:s3:::acme-data/incoming/.connector-check/*"
        )
        .contains(&"s3:PutObject".to_owned())
    );
    let list = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == "ConnectorList")
        .unwrap();
    assert_eq!(
        list["Condition"]["StringLike"]["s3:prefix"],
        json!(["incoming/*", "done/*", "failed/*"])
    );
}

#[test]
fn trust_policies_pin_our_principal_and_the_connector() {
    let c = connector(
        "export",
        json!({"mode": "role", "role_arn": "arn:aws:iam::111111111111:role/r"}),
    );
    let trust = role_trust_policy(&c, &platform());
    let s = &trust["Statement"][0];
    assert_eq!(
        s["Principal"]["AWS"],
        "arn:aws:iam::123456789012:role/connector-access"
    );
    assert_eq!(
        s["Condition"]["StringEquals"]["sts:ExternalId"],
        c.external_id.as_str()
    );
    assert_eq!(
        s["Action"],
        json!(["sts:AssumeRole", "sts:SetSourceIdentity"])
    );

    let c = connector(
        "export",
        json!({"mode": "web_identity", "role_arn": "arn:aws:iam::111111111111:role/r"}),
    );
    let trust = web_identity_trust_policy(&c, &platform());
    let s = &trust["Statement"][0];
    assert_eq!(
        s["Principal"]["Federated"],
        "arn:aws:iam::111111111111:oidc-provider/oidc.connectors.example.com"
    );
    assert_eq!(
        s["Condition"]["StringEquals"]["oidc.connectors.example.com:sub"],
        "connector:con_1"
    );
    assert_eq!(
        s["Condition"]["StringEquals"]["oidc.connectors.example.com:aud"],
        "sts.amazonaws.com"
    );
}

#[test]
fn bucket_policy_names_our_principal_and_allows_the_acl_header() {
    let c = connector("export", json!({"mode": "bucket_policy"}));
    let out = instructions(&c, &platform());
    let policy = out.bucket_policy.unwrap();
    for s in policy["Statement"].as_array().unwrap() {
        assert_eq!(
            s["Principal"]["AWS"],
            "arn:aws:iam::123456789012:role/connector-access"
        );
    }
    assert!(
        actions_on(&policy, "arn:aws:s3:::acme-data/exports/*")
            .contains(&"s3:PutObjectAcl".to_owned())
    );
}

#[test]
fn kms_encryption_adds_key_permissions() {
    let mut c = connector(
        "export",
        json!({"mode": "role", "role_arn": "arn:aws:iam::111111111111:role/r"}),
    );
    let key = "arn:aws:kms:us-east-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let Flow::Export {
        options: export, ..
    } = &mut c.flow
    else {
        panic!("an export connector")
    };
    export.encryption.sse = crate::connector::SseMode::AwsKms;
    export.encryption.kms_key_id = Some(key.into());
    let policy = policy(s3_statements(&c, None));
    assert_eq!(
        actions_on(&policy, key),
        vec!["kms:Decrypt", "kms:GenerateDataKey"]
    );
}

#[test]
fn notifications_are_offered_only_for_buckets_in_the_queues_region() {
    let mut c = connector(
        "ingest",
        json!({"mode": "role", "role_arn": "arn:aws:iam::111111111111:role/r"}),
    );
    assert!(instructions(&c, &platform()).event_notification.is_some());
    c.region = "eu-west-1".into();
    let out = instructions(&c, &platform());
    assert!(out.event_notification.is_none());
    assert!(
        out.steps
            .iter()
            .any(|s| s.contains("periodic poll") && s.contains("eu-west-1"))
    );
}

#[test]
fn kms_grants_go_to_identity_policies_and_name_key_arns_only() {
    let mut c = connector(
        "export",
        json!({"mode": "role", "role_arn": "arn:aws:iam::111111111111:role/r"}),
    );
    let Flow::Export {
        options: export, ..
    } = &mut c.flow
    else {
        panic!("an export connector")
    };
    export.encryption.sse = crate::connector::SseMode::AwsKms;
    export.encryption.kms_key_id = Some("arn:aws:kms:us-east-1:111111111111:alias/exports".into());
    let policy = policy(s3_statements(&c, None));
    assert_eq!(
        actions_on(&policy, "arn:aws:kms:us-east-1:*:key/*"),
        vec!["kms:Decrypt", "kms:GenerateDataKey"],
        "an alias ARN authorizes nothing: fall back to keys of the region"
    );

    c.auth = Auth::BucketPolicy;
    let out = instructions(&c, &platform());
    let bucket_policy = out.bucket_policy.unwrap();
    assert_valid_policy(&bucket_policy, "bucket policy with KMS");
    assert!(!bucket_policy.to_string().contains("kms:"));
    assert!(out.steps.iter().any(|s| s.contains("key policy")));
}

#[test]
fn gov_cloud_uses_its_partition() {
    let mut c = connector(
        "export",
        json!({"mode": "role", "role_arn": "arn:aws-us-gov:iam::111111111111:role/r"}),
    );
    c.region = "us-gov-west-1".into();
    let text = policy(s3_statements(&c, None)).to_string();
    assert!(text.contains("arn:aws-us-gov:s3:::acme-data"), "{text}");
}
