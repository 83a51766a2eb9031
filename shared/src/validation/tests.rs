//! Every check's pass and fail paths through the fakes: no server, and the refusals an
//! emulator cannot produce (SlowDown, KMS, a hang, a bucket in another region).

use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::credentials::TokenSource;
use crate::domain::connector::platform::OwnResources;
use crate::domain::connector::spec::{AccessKeyPair, SecretString};
use crate::domain::setup::checks::{BucketSettings, CheckStatus, ValidationStatus};
use crate::domain::testing::{EXTERNAL_ID, stored_connector};
use crate::error::AwsCallError;
use crate::fakes::MemorySecretStore;
use crate::fakes::storage::{Fault, MemoryStorage, Op};
use crate::fakes::sts::{FakeRole, MemorySts, sts_error};

const PRINCIPAL: &str = "arn:aws:iam::123456789012:role/connector-access";
const ROLE: &str = "arn:aws:iam::111111111111:role/customer";
const BUCKET: &str = "acme-data";
const CHECKS: &str = ".connector-check/";

type FakeValidator = Validator<MemorySts, MemorySecretStore, MemoryStorage>;

fn trusting_role() -> FakeRole {
    FakeRole {
        trusted: vec![PRINCIPAL.into()],
        external_id: Some(EXTERNAL_ID.into()),
        web_identity_token: None,
    }
}

/// The function runs as the principal (no chaining), the customer's role trusts it with the
/// external ID, and the bucket is in us-east-1.
fn sts() -> MemorySts {
    MemorySts::new(PRINCIPAL).with_role(ROLE, trusting_role())
}

fn storage() -> MemoryStorage {
    MemoryStorage::new().with_bucket(BUCKET, "us-east-1")
}

fn validator(sts: &MemorySts, storage: &MemoryStorage) -> FakeValidator {
    validator_with(
        sts,
        storage,
        MemorySecretStore::default(),
        TokenSource::None,
    )
}

fn validator_with(
    sts: &MemorySts,
    storage: &MemoryStorage,
    secrets: MemorySecretStore,
    tokens: TokenSource,
) -> FakeValidator {
    let own = OwnResources::new(["platform-lake".to_owned()], Some("123456789012".into()));
    let broker = CredentialBroker::new(sts.clone(), secrets, PRINCIPAL.into(), tokens, own);
    Validator::new(Arc::new(broker), storage.clone(), Duration::ZERO)
}

fn connector(direction: &str, auth: Value, extra: Value) -> Connector {
    let mut body = json!({
        "name": "c", "direction": direction, "bucket": BUCKET, "region": "us-east-1",
        "prefix": if direction == "ingest" { "in/" } else { "exports/" }, "auth": auth,
    });
    if direction == "ingest" {
        body["ingest"] = json!({"table": "orders"});
    }
    for (k, v) in extra.as_object().expect("object") {
        body[k] = v.clone();
    }
    stored_connector(body)
}

fn role_export() -> Connector {
    connector(
        "export",
        json!({"mode": "role", "role_arn": ROLE}),
        json!({}),
    )
}

fn role_ingest(extra: Value) -> Connector {
    connector("ingest", json!({"mode": "role", "role_arn": ROLE}), extra)
}

fn status(report: &ValidationReport, id: CheckId) -> CheckStatus {
    report.check(id).expect("every check reports").status
}

fn text(report: &ValidationReport, id: CheckId) -> String {
    let r = report.check(id).expect("every check reports");
    format!("{} | {}", r.message, r.remediation.as_deref().unwrap_or(""))
}

/// Every check after `gate` is a skip saying `why`.
fn skipped_after(report: &ValidationReport, gate: CheckId, why: &str) {
    for id in gate.after() {
        let r = report.check(id).unwrap();
        assert_eq!(r.status, CheckStatus::Skip, "{id}: {r:?}");
        assert!(r.message.contains(why), "{id}: {}", r.message);
    }
}

fn test_objects_left(storage: &MemoryStorage) -> Vec<String> {
    storage
        .keys(BUCKET)
        .into_iter()
        .filter(|k| k.contains(CHECKS))
        .collect()
}

#[tokio::test]
async fn an_export_set_up_as_instructed_passes_and_leaves_nothing_behind() {
    let (sts, storage) = (sts(), storage());
    let report = validator(&sts, &storage).validate(&role_export()).await;
    assert_eq!(report.status, ValidationStatus::Active, "{report:#?}");
    let expected = [
        (CheckId::Config, CheckStatus::Pass),
        (CheckId::Credentials, CheckStatus::Pass),
        (CheckId::ExternalIdEnforced, CheckStatus::Pass),
        (CheckId::BucketExists, CheckStatus::Pass),
        (CheckId::BucketRegion, CheckStatus::Pass),
        (CheckId::List, CheckStatus::Pass),
        (CheckId::Write, CheckStatus::Pass),
        (CheckId::Multipart, CheckStatus::Pass),
        (CheckId::Read, CheckStatus::Pass),
        (CheckId::Delete, CheckStatus::Pass),
        (CheckId::SourceRead, CheckStatus::Skip),
        (CheckId::Move, CheckStatus::Skip),
        (CheckId::ChallengeFile, CheckStatus::Skip),
        (CheckId::BucketSettings, CheckStatus::Pass),
    ];
    for (id, want) in expected {
        assert_eq!(status(&report, id), want, "{id}: {}", text(&report, id));
    }
    assert_eq!(report.bucket_region.as_deref(), Some("us-east-1"));
    assert!(text(&report, CheckId::Write).contains("x-amz-server-side-encryption: AES256"));
    assert_eq!(test_objects_left(&storage), Vec::<String>::new());
    assert!(storage.bucket(BUCKET).unwrap().uploads.is_empty());
    // Every write was sent with the export's encryption and no ACL (the role's account owns it).
    let writes: Vec<_> = storage
        .calls()
        .into_iter()
        .filter(|c| matches!(c.op, Op::Put | Op::CreateUpload))
        .collect();
    assert_eq!(
        writes.len(),
        3,
        "one put, two multipart uploads: {writes:?}"
    );
    for call in writes {
        let options = call.options.clone().expect("a write logs its headers");
        let encryption = options.encryption.expect("SSE on every write");
        assert_eq!(encryption.sse, crate::domain::connector::SseMode::Aes256);
        assert!(!options.bucket_owner_full_control, "{call:?}");
    }
    // The run's calls were all made, under the prefix, as the customer's role session.
    let calls = storage.calls();
    for op in [
        Op::Put,
        Op::Get,
        Op::CreateUpload,
        Op::UploadPart,
        Op::ListParts,
        Op::CompleteUpload,
        Op::AbortUpload,
        Op::Delete,
    ] {
        let call = calls.iter().find(|c| c.op == op).expect("called");
        assert!(
            call.key.starts_with("exports/.connector-check/"),
            "{call:?}"
        );
        assert!(call.access_key_id.starts_with("ASIAFAKE"), "{call:?}");
    }
    // The session was the connector's, with the external ID and a session policy.
    let assumed = sts.requests();
    let session = assumed
        .iter()
        .find(|r| r.external_id.as_deref() == Some(EXTERNAL_ID))
        .unwrap();
    assert_eq!(session.session_name, "connector-con_1");
    assert_eq!(session.source_identity.as_deref(), Some("con_1"));
    assert!(session.policy.as_deref().unwrap().contains("acme-data"));
}

#[tokio::test]
async fn an_ingest_reads_a_file_and_moves_a_copy_into_each_folder() {
    let (sts, storage) = (sts(), storage());
    storage.put_object(BUCKET, "in/orders 1+2 données.csv", b"id\n1\n");
    let c = role_ingest(
        json!({"ingest": {"table": "orders", "success_dir": "done/", "failed_dir": "bad/"}}),
    );
    let report = validator(&sts, &storage).validate(&c).await;
    assert_eq!(report.status, ValidationStatus::Active, "{report:#?}");
    assert_eq!(status(&report, CheckId::Multipart), CheckStatus::Skip);
    assert!(
        text(&report, CheckId::SourceRead)
            .contains("read the first byte of in/orders 1+2 données.csv"),
        "{}",
        text(&report, CheckId::SourceRead)
    );
    assert!(text(&report, CheckId::Move).contains("done/ and bad/"));
    let copies: Vec<_> = storage
        .calls()
        .into_iter()
        .filter(|c| c.op == Op::Copy)
        .map(|c| c.key)
        .collect();
    assert_eq!(copies.len(), 2);
    assert!(
        copies[0].starts_with("done/.connector-check/")
            && copies[1].starts_with("bad/.connector-check/")
    );
    // The customer's file is untouched; no test object stays.
    assert_eq!(
        storage.keys(BUCKET),
        vec!["in/orders 1+2 données.csv".to_owned()]
    );
}

#[tokio::test]
async fn an_ingest_without_folders_or_files_skips_the_move_and_passes_the_read() {
    let (sts, storage) = (sts(), storage());
    let report = validator(&sts, &storage)
        .validate(&role_ingest(json!({})))
        .await;
    assert_eq!(report.status, ValidationStatus::Active, "{report:#?}");
    assert!(text(&report, CheckId::SourceRead).contains("no files in s3://acme-data/in/ yet"));
    assert_eq!(status(&report, CheckId::Move), CheckStatus::Skip);
    assert!(text(&report, CheckId::Move).contains("good files are deleted"));
}

/// A test error sidecar is written beside the source files exactly when a run may put one
/// there: unless both folders are set, some file (a bad one, or a good one with accepted bad
/// rows) is decided in place.
#[tokio::test]
async fn an_ingest_writes_a_test_sidecar_beside_its_sources_unless_every_file_moves() {
    let cases = [
        (json!({}), true),
        (json!({"success_dir": "done/"}), true),
        (json!({"failed_dir": "bad/"}), true),
        (json!({"success_dir": "done/", "failed_dir": "bad/"}), false),
    ];
    for (folders, beside) in cases {
        let (sts, storage) = (sts(), storage());
        let mut ingest = json!({"table": "orders"});
        for (k, v) in folders.as_object().unwrap() {
            ingest[k] = v.clone();
        }
        let report = validator(&sts, &storage)
            .validate(&role_ingest(json!({"ingest": ingest})))
            .await;
        assert_eq!(
            report.status,
            ValidationStatus::Active,
            "{folders}: {report:#?}"
        );
        let sidecars: Vec<String> = storage
            .calls()
            .into_iter()
            .filter(|c| c.op == Op::Put && c.key.ends_with(".errors.jsonl"))
            .map(|c| c.key)
            .collect();
        assert_eq!(
            sidecars.len(),
            usize::from(beside),
            "{folders}: {sidecars:?}"
        );
        for key in &sidecars {
            assert!(key.starts_with("in/.connector-check-"), "{key}");
            assert!(
                text(&report, CheckId::Write)
                    .contains(&format!("test error sidecar s3://acme-data/{key}")),
                "{}",
                text(&report, CheckId::Write)
            );
        }
        assert!(
            storage.keys(BUCKET).is_empty(),
            "{folders}: {:?}",
            storage.keys(BUCKET)
        );
    }
}

/// A policy without the sidecar grant fails the write check naming it; the test object was
/// written, so read and delete still run and nothing stays behind.
#[tokio::test]
async fn a_sidecar_we_may_not_write_fails_the_write_naming_the_suffix_grant() {
    let (sts, storage) = (sts(), storage());
    storage.fail(Op::Put, "in/.connector-check-", Fault::AccessDenied);
    let report = validator(&sts, &storage)
        .validate(&role_ingest(json!({})))
        .await;
    assert_eq!(status(&report, CheckId::Write), CheckStatus::Fail);
    let t = text(&report, CheckId::Write);
    assert!(
        t.contains("writing a test error sidecar beside the source files was denied"),
        "{t}"
    );
    assert!(
        t.contains("lacks s3:PutObject on arn:aws:s3:::acme-data/in/*.errors.jsonl"),
        "{t}"
    );
    assert_eq!(status(&report, CheckId::Read), CheckStatus::Pass);
    assert_eq!(status(&report, CheckId::Delete), CheckStatus::Pass);
    assert_eq!(report.status, ValidationStatus::Failed);
    assert!(
        storage.keys(BUCKET).is_empty(),
        "{:?}",
        storage.keys(BUCKET)
    );
}

#[tokio::test]
async fn settings_naming_the_platforms_lake_fail_config_and_touch_nothing() {
    let (sts, storage) = (sts(), storage());
    let mut c = role_export();
    c.bucket = "platform-lake".into();
    let report = validator(&sts, &storage).validate(&c).await;
    assert_eq!(report.status, ValidationStatus::Failed);
    assert_eq!(status(&report, CheckId::Config), CheckStatus::Fail);
    assert!(
        text(&report, CheckId::Config).contains("bucket"),
        "{}",
        text(&report, CheckId::Config)
    );
    skipped_after(&report, CheckId::Config, "not run");
    assert!(sts.requests().is_empty());
    assert!(storage.calls().is_empty());
}

#[tokio::test]
async fn a_role_that_does_not_trust_us_fails_credentials_with_the_trust_policy_to_set() {
    let storage = storage();
    let sts = MemorySts::new(PRINCIPAL).with_role(
        ROLE,
        FakeRole {
            trusted: vec!["arn:aws:iam::999999999999:role/someone-else".into()],
            ..trusting_role()
        },
    );
    let report = validator(&sts, &storage).validate(&role_export()).await;
    assert_eq!(status(&report, CheckId::Credentials), CheckStatus::Fail);
    let r = report.check(CheckId::Credentials).unwrap();
    assert_eq!(r.aws_error_code.as_deref(), Some("AccessDenied"));
    assert!(r.message.contains(ROLE));
    assert!(
        text(&report, CheckId::Credentials)
            .contains(&format!("sts:ExternalId = \"{EXTERNAL_ID}\""))
    );
    skipped_after(
        &report,
        CheckId::Credentials,
        "the credentials check failed",
    );
    assert!(storage.calls().is_empty());
}

#[tokio::test]
async fn our_own_principal_hop_failing_is_reported_as_ours() {
    let storage = storage();
    // In AWS the function runs as its execution role and must assume the principal first.
    let sts = MemorySts::new("arn:aws:sts::123456789012:assumed-role/connector-api-role/fn")
        .with_role(ROLE, trusting_role());
    let report = validator(&sts, &storage).validate(&role_export()).await;
    let r = report.check(CheckId::Credentials).unwrap();
    assert_eq!(r.status, CheckStatus::Fail);
    assert!(
        r.message
            .contains("our service could not assume its own principal"),
        "{r:?}"
    );
    assert!(r.remediation.as_deref().unwrap().contains("on our side"));
    assert!(storage.calls().is_empty());
}

#[tokio::test]
async fn a_role_accepting_a_wrong_external_id_touches_nothing() {
    let storage = storage();
    let sts = MemorySts::new(PRINCIPAL).with_role(
        ROLE,
        FakeRole {
            external_id: None,
            ..trusting_role()
        },
    );
    let report = validator(&sts, &storage).validate(&role_export()).await;
    assert_eq!(report.status, ValidationStatus::Failed);
    assert_eq!(status(&report, CheckId::Credentials), CheckStatus::Pass);
    assert_eq!(
        status(&report, CheckId::ExternalIdEnforced),
        CheckStatus::Fail
    );
    assert!(text(&report, CheckId::ExternalIdEnforced).contains(EXTERNAL_ID));
    skipped_after(
        &report,
        CheckId::ExternalIdEnforced,
        "must refuse a wrong external ID",
    );
    assert!(storage.calls().is_empty(), "{:?}", storage.calls());
}

#[tokio::test]
async fn an_unproven_external_id_probe_fails_rather_than_guess() {
    let storage = storage();
    let sts = sts();
    sts.refuse_next_where(
        |r| r.role_arn == ROLE && r.external_id.as_deref() != Some(EXTERNAL_ID),
        AwsCallError {
            retryable: true,
            ..sts_error("AssumeRole", "Throttling", 400, "Rate exceeded")
        },
    );
    let report = validator(&sts, &storage).validate(&role_export()).await;
    let r = report.check(CheckId::ExternalIdEnforced).unwrap();
    assert_eq!(r.status, CheckStatus::Fail);
    assert!(
        r.message.contains("could not probe the trust policy"),
        "{r:?}"
    );
    assert_eq!(r.aws_error_code.as_deref(), Some("Throttling"));
    assert!(storage.calls().is_empty());
}

#[tokio::test]
async fn a_missing_bucket_fails_and_skips_what_needs_it() {
    let sts = sts();
    let storage = MemoryStorage::new();
    let report = validator(&sts, &storage).validate(&role_export()).await;
    let r = report.check(CheckId::BucketExists).unwrap();
    assert_eq!(r.status, CheckStatus::Fail);
    assert!(r.message.contains("there is no bucket named acme-data"));
    assert_eq!(r.aws_error_code.as_deref(), Some("NoSuchBucket"));
    assert_eq!(status(&report, CheckId::BucketRegion), CheckStatus::Skip);
    skipped_after(
        &report,
        CheckId::BucketRegion,
        "the bucket could not be reached",
    );
}

#[tokio::test]
async fn a_refused_head_bucket_falls_back_to_the_location() {
    let cases = [
        // (location answer, expected status, phrase)
        (None, CheckStatus::Pass, "acme-data exists"),
        (
            Some(Fault::AccessDenied),
            CheckStatus::Warn,
            "s3:GetBucketLocation",
        ),
        (Some(Fault::SlowDown), CheckStatus::Fail, "S3 answered"),
    ];
    for (location, want, phrase) in cases {
        let (sts, storage) = (sts(), storage());
        storage.fail(Op::HeadBucket, "", Fault::AccessDenied);
        if let Some(fault) = location.clone() {
            storage.fail(Op::BucketLocation, "", fault);
        }
        let report = validator(&sts, &storage).validate(&role_export()).await;
        assert_eq!(status(&report, CheckId::BucketExists), want, "{location:?}");
        assert!(
            text(&report, CheckId::BucketExists).contains(phrase),
            "{location:?}: {}",
            text(&report, CheckId::BucketExists)
        );
    }
}

#[tokio::test]
async fn a_bucket_in_another_region_says_which_and_stops() {
    let sts = sts();
    let storage = MemoryStorage::new().with_bucket(BUCKET, "eu-west-1");
    let report = validator(&sts, &storage).validate(&role_export()).await;
    assert_eq!(status(&report, CheckId::BucketRegion), CheckStatus::Fail);
    assert!(text(&report, CheckId::BucketRegion).contains("PATCH {\"region\": \"eu-west-1\"}"));
    assert_eq!(report.bucket_region.as_deref(), Some("eu-west-1"));
    skipped_after(
        &report,
        CheckId::BucketRegion,
        "the bucket could not be reached",
    );
    assert!(!storage.calls().iter().any(|c| c.op.writes()));
}

#[tokio::test]
async fn a_denied_listing_names_the_action_and_the_prefix_condition() {
    let (sts, storage) = (sts(), storage());
    storage.fail(Op::List, "exports/", Fault::AccessDenied);
    let report = validator(&sts, &storage).validate(&role_export()).await;
    assert_eq!(status(&report, CheckId::List), CheckStatus::Fail);
    let t = text(&report, CheckId::List);
    assert!(
        t.contains("lacks s3:ListBucket on arn:aws:s3:::acme-data"),
        "{t}"
    );
    assert!(t.contains("s3:prefix like \"exports/*\""), "{t}");
    assert!(t.contains(&format!("the role's policy ({ROLE})")), "{t}");
}

#[tokio::test]
async fn a_refused_write_skips_read_move_and_delete() {
    let cases = [
        (
            Fault::AccessDenied,
            "AccessDenied",
            "lacks s3:PutObject on arn:aws:s3:::acme-data/exports/*",
        ),
        (Fault::SlowDown, "SlowDown", "validate again"),
        (
            Fault::KmsDenied,
            "KMS.AccessDeniedException",
            "kms:GenerateDataKey",
        ),
    ];
    for (fault, code, phrase) in cases {
        let (sts, storage) = (sts(), storage());
        storage.fail(Op::Put, "exports/", fault);
        let report = validator(&sts, &storage).validate(&role_export()).await;
        let r = report.check(CheckId::Write).unwrap();
        assert_eq!(r.status, CheckStatus::Fail, "{code}");
        assert_eq!(r.aws_error_code.as_deref(), Some(code));
        assert!(
            text(&report, CheckId::Write).contains(phrase),
            "{code}: {}",
            text(&report, CheckId::Write)
        );
        for id in [CheckId::Read, CheckId::Move, CheckId::Delete] {
            assert_eq!(status(&report, id), CheckStatus::Skip, "{code} {id}");
            assert!(text(&report, id).contains("the write check failed"));
        }
        assert_eq!(report.status, ValidationStatus::Failed);
    }
}

#[tokio::test]
async fn a_denied_read_names_get_object() {
    let (sts, storage) = (sts(), storage());
    storage.fail(Op::Get, "exports/.connector-check/", Fault::AccessDenied);
    let report = validator(&sts, &storage).validate(&role_export()).await;
    assert_eq!(status(&report, CheckId::Read), CheckStatus::Fail);
    assert!(text(&report, CheckId::Read).contains("lacks s3:GetObject"));
    // The other checks still ran, and the test object was still removed.
    assert_eq!(status(&report, CheckId::Delete), CheckStatus::Pass);
    assert!(test_objects_left(&storage).is_empty());
}

#[tokio::test]
async fn a_failed_multipart_upload_names_the_action_and_aborts() {
    let cases = [
        (Op::CreateUpload, "s3:PutObject"),
        (Op::UploadPart, "s3:PutObject"),
        (Op::ListParts, "s3:ListMultipartUploadParts"),
        (Op::CompleteUpload, "s3:PutObject"),
        (Op::AbortUpload, "s3:AbortMultipartUpload"),
    ];
    for (op, action) in cases {
        let (sts, storage) = (sts(), storage());
        storage.fail_times(op, "exports/", Fault::AccessDenied, 1);
        let report = validator(&sts, &storage).validate(&role_export()).await;
        assert_eq!(
            status(&report, CheckId::Multipart),
            CheckStatus::Fail,
            "{op:?}"
        );
        let t = text(&report, CheckId::Multipart);
        assert!(t.contains(&format!("lacks {action}")), "{op:?}: {t}");
        if op != Op::AbortUpload {
            assert!(
                storage.bucket(BUCKET).unwrap().uploads.is_empty(),
                "{op:?}: an upload was left open"
            );
        }
    }
}

#[tokio::test]
async fn a_denied_delete_fails_and_lists_what_stays_behind() {
    let (sts, storage) = (sts(), storage());
    storage.fail(Op::Delete, "exports/.connector-check/", Fault::AccessDenied);
    let report = validator(&sts, &storage).validate(&role_export()).await;
    assert_eq!(status(&report, CheckId::Delete), CheckStatus::Fail);
    let r = report.check(CheckId::Delete).unwrap();
    assert!(
        r.remediation
            .as_deref()
            .unwrap()
            .contains("lacks s3:DeleteObject")
    );
    let left = test_objects_left(&storage);
    assert_eq!(
        left.len(),
        2,
        "the round-trip object and the multipart one: {left:?}"
    );
    for key in &left {
        assert!(
            r.message.contains(&format!("s3://acme-data/{key}")),
            "{}",
            r.message
        );
    }
    assert!(r.message.contains("delete them by hand"));
}

#[tokio::test]
async fn a_source_file_that_cannot_be_read_fails_source_read() {
    let (sts, storage) = (sts(), storage());
    storage.put_object(BUCKET, "in/orders.csv", b"id\n");
    storage.fail(Op::Get, "in/orders.csv", Fault::AccessDenied);
    let report = validator(&sts, &storage)
        .validate(&role_ingest(json!({})))
        .await;
    assert_eq!(status(&report, CheckId::SourceRead), CheckStatus::Fail);
    let t = text(&report, CheckId::SourceRead);
    assert!(t.contains("reading in/orders.csv was denied"), "{t}");
    assert!(
        t.contains("lacks s3:GetObject on arn:aws:s3:::acme-data/in/*"),
        "{t}"
    );
    // A denied listing fails it too, naming ListBucket.
    let (sts, storage) = (self::sts(), self::storage());
    storage.fail(Op::List, "in/", Fault::AccessDenied);
    let report = validator(&sts, &storage)
        .validate(&role_ingest(json!({})))
        .await;
    assert!(text(&report, CheckId::SourceRead).contains("lacks s3:ListBucket"));
}

#[tokio::test]
async fn a_move_into_a_folder_we_may_not_write_fails_naming_it() {
    let (sts, storage) = (sts(), storage());
    storage.fail(Op::Copy, "bad/", Fault::AccessDenied);
    let c = role_ingest(
        json!({"ingest": {"table": "orders", "success_dir": "done/", "failed_dir": "bad/"}}),
    );
    let report = validator(&sts, &storage).validate(&c).await;
    assert_eq!(status(&report, CheckId::Move), CheckStatus::Fail);
    let t = text(&report, CheckId::Move);
    assert!(t.contains("copying a file into bad/ was denied"), "{t}");
    assert!(t.contains("arn:aws:s3:::acme-data/bad/*"), "{t}");
    assert!(
        test_objects_left(&storage).is_empty(),
        "the copy into done/ was removed too"
    );
}

#[tokio::test]
async fn a_bucket_policy_connector_proves_ownership_before_anything_else() {
    let bucket_policy = || connector("export", json!({"mode": "bucket_policy"}), json!({}));
    let (sts, storage) = (sts(), storage());
    let report = validator(&sts, &storage).validate(&bucket_policy()).await;
    assert_eq!(status(&report, CheckId::ChallengeFile), CheckStatus::Fail);
    assert!(text(&report, CheckId::ChallengeFile).contains("connector-challenge-abc.txt"));
    for id in CheckId::Credentials
        .after()
        .filter(|id| *id != CheckId::ChallengeFile)
    {
        assert_eq!(status(&report, id), CheckStatus::Skip, "{id}");
        assert!(
            text(&report, id).contains("upload the challenge file first"),
            "{id}"
        );
    }
    let ops: Vec<Op> = storage.calls().iter().map(|c| c.op).collect();
    assert_eq!(
        ops,
        vec![Op::HeadObject],
        "nothing but the challenge file was looked at"
    );

    // With the file in place it passes, and writes carry the bucket-owner ACL.
    storage.put_object(BUCKET, "exports/connector-challenge-abc.txt", b"");
    let report = validator(&sts, &storage).validate(&bucket_policy()).await;
    assert_eq!(report.status, ValidationStatus::Active, "{report:#?}");
    assert_eq!(
        status(&report, CheckId::ExternalIdEnforced),
        CheckStatus::Skip
    );
    assert!(text(&report, CheckId::Write).contains("x-amz-acl: bucket-owner-full-control"));
    let acl_writes = storage
        .calls()
        .into_iter()
        .filter(|c| matches!(c.op, Op::Put | Op::CreateUpload))
        .inspect(|c| {
            assert!(
                c.options.as_ref().unwrap().bucket_owner_full_control,
                "{c:?}"
            )
        })
        .count();
    assert_eq!(acl_writes, 3);
}

#[tokio::test]
async fn a_bucket_policy_ingest_reads_a_customer_file_not_the_challenge_file() {
    let (sts, storage) = (sts(), storage());
    // The empty challenge file and an empty customer file sort first; neither has a byte 0.
    storage.put_object(BUCKET, "in/connector-challenge-abc.txt", b"");
    storage.put_object(BUCKET, "in/a-empty.csv", b"");
    storage.put_object(BUCKET, "in/orders.csv", b"id\n1\n");
    let c = connector("ingest", json!({"mode": "bucket_policy"}), json!({}));
    let report = validator(&sts, &storage).validate(&c).await;
    assert_eq!(report.status, ValidationStatus::Active, "{report:#?}");
    assert!(
        text(&report, CheckId::SourceRead).contains("read the first byte of in/orders.csv"),
        "{}",
        text(&report, CheckId::SourceRead)
    );
}

#[tokio::test]
async fn a_challenge_file_we_may_not_read_names_get_object() {
    let (sts, storage) = (sts(), storage());
    storage.fail(
        Op::HeadObject,
        "exports/connector-challenge-abc.txt",
        Fault::AccessDenied,
    );
    let c = connector("export", json!({"mode": "bucket_policy"}), json!({}));
    let report = validator(&sts, &storage).validate(&c).await;
    let r = report.check(CheckId::ChallengeFile).unwrap();
    assert_eq!(r.status, CheckStatus::Fail);
    assert_eq!(r.aws_error_code.as_deref(), Some("AccessDenied"));
    assert!(
        text(&report, CheckId::ChallengeFile)
            .contains("the bucket policy of acme-data lacks s3:GetObject"),
        "{}",
        text(&report, CheckId::ChallengeFile)
    );
    for id in CheckId::Credentials
        .after()
        .filter(|id| *id != CheckId::ChallengeFile)
    {
        assert_eq!(status(&report, id), CheckStatus::Skip, "{id}");
    }
}

#[tokio::test]
async fn a_bucket_that_does_not_name_its_region_warns() {
    let (sts, storage) = (sts(), storage());
    storage.hide_region(BUCKET);
    let report = validator(&sts, &storage).validate(&role_export()).await;
    assert_eq!(status(&report, CheckId::BucketRegion), CheckStatus::Warn);
    assert!(text(&report, CheckId::BucketRegion).contains("make sure acme-data is in us-east-1"));
    assert_eq!(report.status, ValidationStatus::Active);
}

#[tokio::test(start_paused = true)]
async fn a_refused_role_is_retried_while_iam_propagates_and_says_so() {
    let storage = storage();
    let sts = MemorySts::new(PRINCIPAL);
    let own = OwnResources::default();
    let broker = CredentialBroker::new(
        sts.clone(),
        MemorySecretStore::default(),
        PRINCIPAL.into(),
        TokenSource::None,
        own,
    );
    let validator = Validator::new(Arc::new(broker), storage.clone(), Duration::from_secs(4));
    let report = validator.validate(&role_export()).await;
    let t = text(&report, CheckId::Credentials);
    assert_eq!(status(&report, CheckId::Credentials), CheckStatus::Fail);
    assert!(t.contains("times over 4 s"), "{t}");
    let tries = sts.requests().len();
    assert!(
        (3..=5).contains(&tries),
        "backs off 0.5, 1, 2 s within the budget: {tries}"
    );
}

#[tokio::test]
async fn bucket_settings_warn_without_failing() {
    let cases = [
        (
            BucketSettings {
                versioning: Some(true),
                object_lock: Some(false),
                requester_pays: Some(false),
                owner_enforced: Some(false),
            },
            "versioning is on",
        ),
        (
            BucketSettings::default(),
            "could not read some bucket settings (s3:GetBucketVersioning",
        ),
    ];
    for (settings, phrase) in cases {
        let (sts, storage) = (sts(), storage());
        storage.set_settings(BUCKET, settings.clone());
        let report = validator(&sts, &storage).validate(&role_export()).await;
        assert_eq!(
            status(&report, CheckId::BucketSettings),
            CheckStatus::Warn,
            "{settings:?}"
        );
        assert!(text(&report, CheckId::BucketSettings).contains(phrase));
        assert_eq!(
            report.status,
            ValidationStatus::Active,
            "warnings do not block"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_call_that_never_answers_fails_its_check_in_bounded_time() {
    let (sts, storage) = (sts(), storage());
    storage.fail(Op::List, "", Fault::Hang(Duration::from_secs(600)));
    let started = tokio::time::Instant::now();
    let report = validator(&sts, &storage).validate(&role_export()).await;
    assert_eq!(status(&report, CheckId::List), CheckStatus::Fail);
    assert!(text(&report, CheckId::List).contains("did not answer within 5 s"));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(status(&report, CheckId::Write), CheckStatus::Pass);
}

#[tokio::test]
async fn prefixes_with_spaces_plus_and_unicode_get_their_test_objects_removed() {
    let (sts, storage) = (sts(), storage());
    let prefix = "drop zone/données+%2B/";
    let file = format!("{prefix}ventes 1+1 日本.csv");
    storage.put_object(BUCKET, &file, b"id\n");
    let c = connector(
        "ingest",
        json!({"mode": "role", "role_arn": ROLE}),
        json!({"prefix": prefix, "ingest": {"table": "orders", "success_dir": "fait là/"}}),
    );
    let report = validator(&sts, &storage).validate(&c).await;
    assert_eq!(report.status, ValidationStatus::Active, "{report:#?}");
    let calls = storage.calls();
    let put = calls.iter().find(|c| c.op == Op::Put).unwrap();
    assert!(
        put.key
            .starts_with("drop zone/données+%2B/.connector-check/"),
        "{put:?}"
    );
    let copy = calls.iter().find(|c| c.op == Op::Copy).unwrap();
    assert!(
        copy.key.starts_with("fait là/.connector-check/"),
        "{copy:?}"
    );
    assert!(text(&report, CheckId::SourceRead).contains(&file));
    assert_eq!(
        storage.keys(BUCKET),
        vec![file],
        "only the customer's file is left"
    );
}

#[tokio::test]
async fn access_keys_pass_unless_missing_refused_or_ours() {
    let secret = || {
        let secrets = MemorySecretStore::default();
        let keys = AccessKeyPair {
            access_key_id: "AKIACUSTOMER00000001".into(),
            secret_access_key: SecretString::new("secret".into()),
        };
        (secrets, keys)
    };
    let c = connector(
        "export",
        json!({"mode": "access_key", "access_key_id": "AKIACUSTOMER00000001", "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}),
        json!({}),
    );
    let cases = [
        (
            "arn:aws:iam::111111111111:user/exporter",
            true,
            CheckStatus::Pass,
            "is active",
        ),
        (
            "arn:aws:iam::123456789012:user/ours",
            true,
            CheckStatus::Fail,
            "own account",
        ),
        ("", true, CheckStatus::Fail, "AWS refused the access key"),
        (
            "arn:aws:iam::111111111111:user/exporter",
            false,
            CheckStatus::Fail,
            "enter the key pair again",
        ),
    ];
    for (user, stored, want, phrase) in cases {
        let storage = storage();
        let mut sts = MemorySts::new(PRINCIPAL);
        if !user.is_empty() {
            sts = sts.with_user_key("AKIACUSTOMER00000001", user);
        }
        let (secrets, keys) = secret();
        if stored {
            crate::ports::SecretStore::create(&secrets, "s", &keys, "acme")
                .await
                .unwrap();
        }
        let report = validator_with(&sts, &storage, secrets, TokenSource::None)
            .validate(&c)
            .await;
        assert_eq!(
            status(&report, CheckId::Credentials),
            want,
            "{user} {stored}: {}",
            text(&report, CheckId::Credentials)
        );
        assert!(
            text(&report, CheckId::Credentials).contains(phrase),
            "{user} {stored}: {}",
            text(&report, CheckId::Credentials)
        );
        assert_eq!(storage.calls().is_empty(), want == CheckStatus::Fail);
    }
}

#[tokio::test]
async fn web_identity_needs_a_token_the_role_accepts() {
    let dir = std::env::temp_dir().join(format!("wi-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("con_1.jwt"), "token-for-con_1\n").unwrap();
    let file = TokenSource::File(format!("{}/{{connector_id}}.jwt", dir.display()));
    let c = connector(
        "export",
        json!({"mode": "web_identity", "role_arn": ROLE}),
        json!({}),
    );
    let role = FakeRole {
        web_identity_token: Some("token-for-con_1".into()),
        ..trusting_role()
    };
    let cases = [
        (
            file.clone(),
            Some("token-for-con_1"),
            CheckStatus::Pass,
            "with a web identity token",
        ),
        (
            file,
            Some("another"),
            CheckStatus::Fail,
            "register our OIDC provider",
        ),
        (
            TokenSource::None,
            Some("token-for-con_1"),
            CheckStatus::Fail,
            "neither WEB_IDENTITY_TOKEN_COMMAND",
        ),
    ];
    for (tokens, accepted, want, phrase) in cases {
        let storage = storage();
        let sts = MemorySts::new(PRINCIPAL).with_role(
            ROLE,
            FakeRole {
                web_identity_token: accepted.map(str::to_owned),
                ..role.clone()
            },
        );
        let report = validator_with(&sts, &storage, MemorySecretStore::default(), tokens)
            .validate(&c)
            .await;
        let t = text(&report, CheckId::Credentials);
        assert_eq!(status(&report, CheckId::Credentials), want, "{t}");
        assert!(t.contains(phrase), "{t}");
    }
    std::fs::remove_dir_all(dir).ok();
}
