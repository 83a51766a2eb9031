use super::*;
use crate::domain::testing::stored_connector;
use crate::error::AwsCallError;
use std::sync::atomic::{AtomicU32, Ordering};

fn connector(prefix: &str) -> Connector {
    Connector {
        connector_id: "con_0193aaaabbbbccccddddeeeeffff0000".into(),
        ..stored_connector(serde_json::json!({
            "name": "c", "direction": "export", "bucket": "acme-data", "region": "us-east-1",
            "prefix": prefix, "auth": {"mode": "role", "role_arn": "arn:aws:iam::111111111111:role/r"},
        }))
    }
}

#[test]
fn recognises_the_principal_and_its_sessions() {
    let role = "arn:aws:iam::123456789012:role/s3-connector-access";
    let cases = [
        (role, role, true),
        (
            "arn:aws:sts::123456789012:assumed-role/s3-connector-access/fn",
            role,
            true,
        ),
        (
            "arn:aws:sts::123456789012:assumed-role/connector-api-role/fn",
            role,
            false,
        ),
        (
            "arn:aws:sts::999999999999:assumed-role/s3-connector-access/fn",
            role,
            false,
        ),
        (
            "arn:aws:iam::123456789012:user/local-admin",
            "arn:aws:iam::123456789012:user/local-admin",
            true,
        ),
        ("arn:aws:iam::123456789012:user/local-admin", role, false),
        (
            "arn:aws:sts::123456789012:assumed-role/s3-connector-access/fn",
            "arn:aws:iam::123456789012:role/team/s3-connector-access",
            true,
        ),
    ];
    for (caller, principal, expected) in cases {
        assert_eq!(
            is_same_principal(caller, principal),
            expected,
            "{caller} vs {principal}"
        );
    }
}

#[test]
fn sessions_carry_the_connector_id_within_sts_limits() {
    let c = connector("exports");
    let name = session_name(&c);
    assert_eq!(name, "connector-con_0193aaaabbbbccccddddeeeeffff0000");
    assert!(name.len() <= 64);
    assert!(
        name.chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "+=,.@_-".contains(ch))
    );
}

#[test]
fn session_policy_narrows_to_bucket_and_prefix() {
    let c = connector("exports");
    let policy: serde_json::Value = serde_json::from_str(&session_policy(&c, &none())).unwrap();
    let text = policy.to_string();
    assert!(text.contains("arn:aws:s3:::acme-data/exports/*"), "{text}");
    assert!(!text.contains("\"s3:*\""), "{text}");
    assert!(!text.contains("Sid"), "compact: {text}");
    assert!(session_policy(&c, &none()).len() <= MAX_SESSION_POLICY_CHARS);

    // A prefix too long for STS's limit falls back to the bucket, never to everything.
    let long = connector(&"deep/".repeat(180));
    let policy: serde_json::Value = serde_json::from_str(&session_policy(&long, &none())).unwrap();
    assert_eq!(
        policy["Statement"][0]["Resource"],
        serde_json::json!(["arn:aws:s3:::acme-data", "arn:aws:s3:::acme-data/*"])
    );
    let actions = policy["Statement"][0]["Action"].as_array().unwrap();
    assert!(actions.contains(&serde_json::json!("s3:PutObject")));
    assert!(
        !policy.to_string().contains("s3:*"),
        "still only the connector's actions"
    );
    assert!(session_policy(&long, &none()).len() <= MAX_SESSION_POLICY_CHARS);
}

fn none() -> OwnResources {
    OwnResources::default()
}

#[test]
fn session_policies_deny_every_bucket_of_our_account() {
    let own = OwnResources::new(["lake".to_owned()], Some("999999999999".into()));
    for c in [connector("exports"), connector(&"deep/".repeat(180))] {
        let policy: serde_json::Value = serde_json::from_str(&session_policy(&c, &own)).unwrap();
        let statements = policy["Statement"].as_array().unwrap();
        let deny = statements.last().unwrap();
        assert_eq!(deny["Effect"], "Deny", "{policy}");
        assert_eq!(deny["Action"], "s3:*");
        assert_eq!(
            deny["Condition"]["StringEquals"]["s3:ResourceAccount"],
            "999999999999"
        );
        assert!(session_policy(&c, &own).len() <= MAX_SESSION_POLICY_CHARS);
        assert!(
            !session_policy(&c, &own).contains(' '),
            "no spaces: STS signing"
        );
    }
    let without: serde_json::Value =
        serde_json::from_str(&session_policy(&connector("exports"), &none())).unwrap();
    assert!(!without.to_string().contains("Deny"));
}

fn denied() -> CredentialError {
    CredentialError::Aws(AwsCallError {
        service: "sts",
        operation: "AssumeRole",
        code: Some("AccessDenied".into()),
        message: "not authorized".into(),
        http_status: Some(403),
        retryable: false,
    })
}

#[tokio::test]
async fn refused_assumptions_are_retried_until_they_work_or_the_budget_ends() {
    // Works on the third try.
    let calls = AtomicU32::new(0);
    let (result, tries) = with_propagation_retries(Duration::from_secs(10), || async {
        if calls.fetch_add(1, Ordering::SeqCst) < 2 {
            Err(denied())
        } else {
            Ok(7)
        }
    })
    .await;
    assert_eq!(result.unwrap(), 7);
    assert_eq!(tries, 3);

    // Never works: stops within the budget.
    let started = Instant::now();
    let (result, tries) = with_propagation_retries(Duration::from_millis(1600), || async {
        Err::<(), _>(denied())
    })
    .await;
    assert!(result.is_err());
    assert!(tries >= 2, "retried: {tries}");
    assert!(started.elapsed() < Duration::from_millis(1700));

    // A missing secret is not a propagation delay: no retry.
    let (result, tries) = with_propagation_retries(Duration::from_secs(10), || async {
        Err::<(), _>(CredentialError::SecretMissing)
    })
    .await;
    assert!(matches!(result, Err(CredentialError::SecretMissing)));
    assert_eq!(tries, 1);
}

#[tokio::test]
async fn tokens_are_per_connector_from_a_file_or_a_command() {
    let dir = std::env::temp_dir().join(format!("tokens-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("con_a.jwt"), "token-for-a\n").unwrap();
    let file = TokenSource::File(format!("{}/{{connector_id}}.jwt", dir.display()));
    assert_eq!(file.token("con_a").await.unwrap(), "token-for-a");
    assert!(matches!(
        file.token("con_b").await,
        Err(CredentialError::Token(_))
    ));

    // The command gets the connector id and prints the token.
    let command = TokenSource::Command("/bin/echo".into());
    assert_eq!(command.token("con_a").await.unwrap(), "con_a");
    let failing = TokenSource::Command("/bin/false".into());
    assert!(
        matches!(failing.token("con_a").await, Err(CredentialError::Token(m)) if m.contains("exited"))
    );
    let none = TokenSource::from_settings(None, None);
    assert!(
        matches!(none.token("con_a").await, Err(CredentialError::Token(m)) if m.contains("WEB_IDENTITY_TOKEN_COMMAND"))
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn session_policies_stay_ascii_with_unicode_prefixes_and_mean_the_same() {
    let c = connector("données/日本/📦");
    let policy = session_policy(&c, &none());
    assert!(policy.is_ascii(), "{policy}");
    assert!(
        !policy.contains('?'),
        "no wildcard stands in for a character: {policy}"
    );
    assert!(
        policy.contains("donn\\u00e9es/\\u65e5\\u672c/\\ud83d\\udce6/*"),
        "{policy}"
    );
    let parsed: serde_json::Value = serde_json::from_str(&policy).expect("still JSON");
    assert!(
        parsed
            .to_string()
            .contains("arn:aws:s3:::acme-data/données/日本/📦/*"),
        "IAM reads the exact prefix back: {parsed}"
    );
}

mod over_fake_sts {
    use super::*;
    use crate::domain::testing::EXTERNAL_ID;
    use crate::fakes::MemorySecretStore;
    use crate::fakes::sts::{FakeRole, MemorySts, sts_error};

    const PRINCIPAL: &str = "arn:aws:iam::123456789012:role/connector-access";
    const ROLE: &str = "arn:aws:iam::111111111111:role/r";
    /// In AWS the function runs as its execution role and hops to the principal first.
    const EXECUTION: &str = "arn:aws:sts::123456789012:assumed-role/connector-api-role/fn";

    fn broker(sts: &MemorySts) -> CredentialBroker<MemorySts, MemorySecretStore> {
        CredentialBroker::new(
            sts.clone(),
            MemorySecretStore::default(),
            PRINCIPAL.into(),
            TokenSource::None,
            OwnResources::default(),
        )
    }

    fn sts(external_id: Option<&str>) -> MemorySts {
        MemorySts::new(EXECUTION)
            .with_role(
                PRINCIPAL,
                FakeRole {
                    trusted: vec!["arn:aws:iam::123456789012:role/connector-api-role".into()],
                    ..FakeRole::default()
                },
            )
            .with_role(
                ROLE,
                FakeRole {
                    trusted: vec![PRINCIPAL.into()],
                    external_id: external_id.map(str::to_owned),
                    web_identity_token: None,
                },
            )
    }

    #[tokio::test]
    async fn the_probe_tells_a_refusing_role_from_an_accepting_one() {
        let c = connector("exports/");
        assert!(
            !broker(&sts(Some(EXTERNAL_ID)))
                .accepts_wrong_external_id(&c, ROLE)
                .await
                .unwrap()
        );
        assert!(
            broker(&sts(None))
                .accepts_wrong_external_id(&c, ROLE)
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn a_denied_principal_hop_proves_nothing_about_the_role() {
        let sts = sts(Some(EXTERNAL_ID));
        sts.refuse_next(
            PRINCIPAL,
            sts_error("AssumeRole", "AccessDenied", 403, "no"),
        );
        let probe = broker(&sts)
            .accepts_wrong_external_id(&connector("exports/"), ROLE)
            .await;
        let e = probe.expect_err("unproven, not refused");
        assert_eq!(e.operation, PLATFORM_ASSUME_ROLE);
        // The role itself was never asked.
        assert!(sts.requests().iter().all(|r| r.role_arn == PRINCIPAL));
    }

    #[tokio::test]
    async fn a_run_gets_no_session_from_a_role_that_ignores_the_external_id() {
        let c = connector("exports/");
        let run = broker(&sts(None)).obtain(&c, SessionPurpose::Run).await;
        assert!(
            matches!(run, Err(CredentialError::ExternalIdNotEnforced { .. })),
            "{run:?}"
        );
        let ok = broker(&sts(Some(EXTERNAL_ID)))
            .obtain(&c, SessionPurpose::Run)
            .await
            .unwrap();
        assert!(ok.session_token().is_some());
    }

    #[tokio::test]
    async fn sessions_are_chained_through_the_principal_with_the_connectors_policy() {
        let sts = sts(Some(EXTERNAL_ID));
        broker(&sts)
            .obtain(&connector("exports/"), SessionPurpose::Validation)
            .await
            .unwrap();
        let requests = sts.requests();
        let roles: Vec<&str> = requests.iter().map(|r| r.role_arn.as_str()).collect();
        assert_eq!(roles, [PRINCIPAL, ROLE]);
        let customer = &requests[1];
        assert_eq!(customer.external_id.as_deref(), Some(EXTERNAL_ID));
        assert_eq!(customer.duration_seconds, 900);
        assert!(
            customer
                .policy
                .as_deref()
                .unwrap()
                .contains("acme-data/exports/")
        );
    }

    #[tokio::test]
    async fn a_bucket_policy_session_is_our_principal_narrowed_to_the_connector() {
        let sts = sts(Some(EXTERNAL_ID));
        let c = Connector {
            auth: Auth::BucketPolicy,
            ..connector("exports/")
        };
        let session = broker(&sts).obtain(&c, SessionPurpose::Run).await.unwrap();
        assert!(session.session_token().is_some());
        let requests = sts.requests();
        assert_eq!(requests.len(), 1, "{requests:?}");
        assert_eq!(requests[0].role_arn, PRINCIPAL);
        assert_eq!(requests[0].session_name, session_name(&c));
        let policy = requests[0]
            .policy
            .as_deref()
            .expect("narrowed by a session policy");
        assert!(
            policy.contains("arn:aws:s3:::acme-data/exports/"),
            "{policy}"
        );
    }
}
