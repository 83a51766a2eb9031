//! Validation: a preflight of every call a run will make, with the connector's own credentials
//! (docs/architecture.md, "Validation"). Each check reports pass/fail/warn/skip with the AWS
//! error code and what to change; objects it writes live under `<prefix>.connector-check/` and
//! are removed at the end, whatever failed in between.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_credential_types::Credentials;
use aws_sdk_s3::Client as S3Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketVersioningStatus, CompletedMultipartUpload, CompletedPart, ObjectCannedAcl,
    ObjectOwnership, Payer, ServerSideEncryption,
};
use chrono::Utc;

use crate::credentials::{
    CredentialBroker, CredentialError, SessionPurpose, with_propagation_retries,
};
use crate::domain::checks::{
    self, BucketSettings, CHECK_DIR, CheckResult, CheckStatus, ValidationReport,
    missing_permission, objects_arn,
};
use crate::domain::connector::{Auth, AuthMode, Connector, Direction, SseMode};
use crate::domain::platform::OwnResources;
use crate::domain::spec;
use crate::error::{AwsCallError, unparsed_ok_body};

pub struct Validator {
    broker: Arc<CredentialBroker>,
    /// How long a refused AssumeRole is retried (IAM propagation). API Gateway gives a request
    /// 30 s, so this stays below that with room for the other checks.
    credentials_retry: Duration,
}

/// A check's outcome when its precondition failed.
const NEEDS_CREDENTIALS: &str = "skipped: the credentials check failed";
const NEEDS_BUCKET: &str = "skipped: the bucket could not be reached";
const NEEDS_OWNERSHIP: &str =
    "skipped: upload the challenge file first, so we know you control this bucket";
/// Nothing touches a bucket through a role that does not check our external ID: anyone who
/// learns the role's ARN could otherwise make us act on it (confused deputy).
const NEEDS_EXTERNAL_ID: &str = "skipped: the role must refuse a wrong external ID (external_id_enforced) before anything touches the bucket";
/// Longest wait for one check's calls: the whole validation must answer within API Gateway's
/// 30 s, after the credentials check's retries.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

impl Validator {
    pub fn new(broker: Arc<CredentialBroker>, credentials_retry: Duration) -> Self {
        Self {
            broker,
            credentials_retry,
        }
    }

    pub async fn validate(&self, c: &Connector) -> ValidationReport {
        let mut checks = Vec::new();
        let config = timed("config", async {
            config_check(c, self.broker.own_resources())
        })
        .await;
        let config_ok = config.status != CheckStatus::Fail;
        checks.push(config);
        if !config_ok {
            return ValidationReport::from_checks(checks, Utc::now(), None);
        }

        let (credentials, result) = self.credentials_check(c).await;
        checks.push(result);
        let Some(credentials) = credentials else {
            for id in &checks::CHECK_IDS[2..] {
                checks.push(CheckResult::skip(id, NEEDS_CREDENTIALS));
            }
            return ValidationReport::from_checks(checks, Utc::now(), None);
        };

        let s3 = crate::aws::connector_s3_client(self.broker.base_config(), credentials, &c.region);
        // Our principal is trusted by every customer's bucket policy, so a bucket_policy
        // connector touches nothing before its creator proves they control the bucket.
        let ownership = if checks::challenge_required(c) {
            let probe = CheckRun::new(s3.clone(), c);
            Some(timed("challenge_file", probe.challenge_file()).await)
        } else {
            None
        };
        if let Some(challenge) = ownership.as_ref().filter(|r| r.status != CheckStatus::Pass) {
            checks.push(challenge.clone());
            for id in checks::CHECK_IDS[2..]
                .iter()
                .filter(|id| **id != "challenge_file")
            {
                checks.push(CheckResult::skip(id, NEEDS_OWNERSHIP));
            }
            return ValidationReport::from_checks(checks, Utc::now(), None);
        }
        // The confused-deputy gate comes before any call on the bucket, never beside one.
        let probe = bounded("external_id_enforced", self.external_id_check(c), |t| t).await;
        let trusted = probe.status != CheckStatus::Fail;
        checks.push(probe);
        if !trusted {
            // Only role connectors run the probe, and they need no challenge file.
            for id in &checks::CHECK_IDS[3..] {
                checks.push(CheckResult::skip(id, NEEDS_EXTERNAL_ID));
            }
            return ValidationReport::from_checks(checks, Utc::now(), None);
        }
        let (bucket_results, bucket_region, reachable) =
            bounded("bucket_exists", bucket_checks(&s3, c), |timeout| {
                (vec![timeout], None, false)
            })
            .await;
        checks.extend(bucket_results);
        if !reachable {
            for id in &checks::CHECK_IDS[5..] {
                checks.push(CheckResult::skip(id, NEEDS_BUCKET));
            }
            return ValidationReport::from_checks(checks, Utc::now(), bucket_region);
        }

        let run = CheckRun::new(s3, c);
        let (list, objects, multipart, source, challenge, settings) = tokio::join!(
            timed("list", run.list()),
            run.object_round_trip(),
            timed("multipart", run.multipart()),
            timed("source_read", run.source_read()),
            async {
                match ownership {
                    Some(proven) => proven,
                    None => timed("challenge_file", run.challenge_file()).await,
                }
            },
            timed("bucket_settings", run.bucket_settings()),
        );
        checks.extend([list, multipart, source, challenge, settings]);
        checks.extend(objects);
        let leftover = match tokio::time::timeout(CHECK_TIMEOUT, run.clean_up()).await {
            Ok(leftover) => leftover,
            Err(_) => Some(format!(
                "; removing the test objects timed out: delete s3://{}/{}{CHECK_DIR} by hand",
                c.bucket, c.prefix
            )),
        };
        if let Some(leftover) = leftover
            && let Some(delete) = checks.iter_mut().find(|r| r.id == "delete")
        {
            delete.message.push_str(&leftover);
        }
        ValidationReport::from_checks(checks, Utc::now(), bucket_region)
    }

    async fn credentials_check(&self, c: &Connector) -> (Option<Credentials>, CheckResult) {
        const ID: &str = "credentials";
        let started = Instant::now();
        let (result, tries) = with_propagation_retries(self.credentials_retry, || async {
            let credentials = self.broker.obtain(c, SessionPurpose::Validation).await?;
            // An access key pair is only known to work once STS accepts it, and must not be
            // one of the platform's own account.
            if c.auth.mode() == AuthMode::AccessKey {
                self.broker.check_key_account(&credentials).await?;
            }
            Ok(credentials)
        })
        .await;
        let mut check = match &result {
            Ok(_) => CheckResult::pass(ID, credentials_success(c)),
            Err(e) => credentials_failure(c, e, tries, self.credentials_retry),
        };
        check.duration_ms = elapsed_ms(started);
        (result.ok(), check)
    }

    async fn external_id_check(&self, c: &Connector) -> CheckResult {
        const ID: &str = "external_id_enforced";
        let started = Instant::now();
        let Auth::Role { role_arn } = &c.auth else {
            return CheckResult::skip(ID, "applies to role connectors only");
        };
        let outcome = self.broker.accepts_wrong_external_id(c, role_arn).await;
        let mut check = match outcome {
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
}

/// The stored settings still pass today's rules, and name none of the platform's own resources.
fn config_check(c: &Connector, own: &OwnResources) -> CheckResult {
    let mut fields = spec::parse_patch(c, serde_json::json!({}))
        .err()
        .unwrap_or_default();
    fields.extend(own.refusals(&c.bucket, c.auth.role_arn()));
    if fields.is_empty() {
        return CheckResult::pass("config", "the connector's settings are valid");
    }
    CheckResult::fail(
        "config",
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

fn credentials_failure(
    c: &Connector,
    e: &CredentialError,
    tries: u32,
    budget: Duration,
) -> CheckResult {
    const ID: &str = "credentials";
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
    if e.aws()
        .is_some_and(|a| a.operation == crate::credentials::PLATFORM_ASSUME_ROLE)
    {
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

/// Does the bucket exist, can we reach it, and in which region is it? HeadBucket first (S3
/// names the region in `x-amz-bucket-region` even when it refuses: 301, 400, 403); a refused
/// HeadBucket is expected with our policy, whose s3:ListBucket is conditioned on the prefix, so
/// GetBucketLocation (granted unconditionally) settles existence and region.
/// Returns the checks, the region S3 reported, and whether later checks can run.
async fn bucket_checks(s3: &S3Client, c: &Connector) -> (Vec<CheckResult>, Option<String>, bool) {
    let started = Instant::now();
    let missing = || {
        CheckResult::fail(
            "bucket_exists",
            format!("there is no bucket named {}", c.bucket),
            "check the bucket name, or create the bucket",
        )
    };
    let (exists, region) = match s3.head_bucket().bucket(&c.bucket).send().await {
        Ok(out) => (
            CheckResult::pass(
                "bucket_exists",
                format!("{} exists and is reachable", c.bucket),
            ),
            out.bucket_region().map(str::to_owned),
        ),
        Err(err) => {
            let header_region = err
                .raw_response()
                .and_then(|r| r.headers().get("x-amz-bucket-region"))
                .map(str::to_owned);
            let head = AwsCallError::from_sdk("s3", "HeadBucket", &err);
            if head.http_status == Some(404) {
                (missing().with_code(Some("NoSuchBucket")), header_region)
            } else {
                match s3.get_bucket_location().bucket(&c.bucket).send().await {
                    Ok(out) => {
                        let located = match out.location_constraint().map(|l| l.as_str()) {
                            None | Some("") => "us-east-1".to_owned(),
                            Some("EU") => "eu-west-1".to_owned(),
                            Some(other) => other.to_owned(),
                        };
                        (
                            CheckResult::pass("bucket_exists", format!("{} exists", c.bucket)),
                            header_region.or(Some(located)),
                        )
                    }
                    Err(err) => {
                        let e = AwsCallError::from_sdk("s3", "GetBucketLocation", &err);
                        let check = if e.is_not_found() {
                            missing()
                        } else if header_region.is_some() && e.is_access_denied() {
                            CheckResult::warn(
                                "bucket_exists",
                                format!("{} exists, but its location could not be read", c.bucket),
                                missing_permission(
                                    c,
                                    "s3:GetBucketLocation",
                                    &checks::bucket_arn(c),
                                ),
                            )
                        } else if e.is_access_denied() {
                            CheckResult::fail(
                                "bucket_exists",
                                format!("access to {} was denied", c.bucket),
                                missing_permission(
                                    c,
                                    "s3:GetBucketLocation",
                                    &checks::bucket_arn(c),
                                ),
                            )
                        } else {
                            CheckResult::fail(
                                "bucket_exists",
                                format!("S3 answered: {e}"),
                                "validate again; if it persists, check the bucket name and region",
                            )
                        };
                        (check.with_code(e.effective_code()), header_region)
                    }
                }
            }
        }
    };
    let mut exists = exists;
    exists.duration_ms = elapsed_ms(started);
    let reachable_so_far = exists.status != CheckStatus::Fail;
    let region_result = if reachable_so_far {
        checks::region_check(c, region.as_deref())
    } else {
        CheckResult::skip("bucket_region", NEEDS_BUCKET)
    };
    let reachable = reachable_so_far && region_result.status != CheckStatus::Fail;
    (vec![exists, region_result], region, reachable)
}

/// The data-path checks of one validation, sharing the test objects they create.
struct CheckRun<'a> {
    s3: S3Client,
    c: &'a Connector,
    token: String,
    /// Test objects written and not yet removed (cleaned up at the end, whatever happened).
    leftovers: Mutex<Vec<String>>,
}

const TEST_BODY: &[u8] = b"connector validation test object: safe to delete\n";

impl<'a> CheckRun<'a> {
    fn new(s3: S3Client, c: &'a Connector) -> Self {
        Self {
            s3,
            c,
            token: uuid::Uuid::new_v4().simple().to_string(),
            leftovers: Mutex::new(Vec::new()),
        }
    }

    fn test_key(&self, dir: &str, suffix: &str) -> String {
        format!("{dir}{CHECK_DIR}{}{suffix}", self.token)
    }

    fn remember(&self, key: &str) {
        self.leftovers
            .lock()
            .expect("not poisoned")
            .push(key.to_owned());
    }

    fn forget(&self, key: &str) {
        self.leftovers
            .lock()
            .expect("not poisoned")
            .retain(|k| k != key);
    }

    fn sse(&self) -> Option<(ServerSideEncryption, Option<String>)> {
        let export = self.c.export_options()?;
        Some(match export.encryption.sse {
            SseMode::Aes256 => (ServerSideEncryption::Aes256, None),
            SseMode::AwsKms => (
                ServerSideEncryption::AwsKms,
                export.encryption.kms_key_id.clone(),
            ),
        })
    }

    /// Objects written in bucket_policy mode belong to the bucket owner.
    fn acl(&self) -> Option<ObjectCannedAcl> {
        (self.c.auth.mode() == AuthMode::BucketPolicy)
            .then_some(ObjectCannedAcl::BucketOwnerFullControl)
    }

    fn denied(
        &self,
        id: &str,
        e: &AwsCallError,
        action: &str,
        resource: &str,
        doing: &str,
    ) -> CheckResult {
        let result = if e.is_access_denied() {
            let mut remediation = missing_permission(self.c, action, resource);
            if action == "s3:PutObject" && self.c.auth.mode() != AuthMode::BucketPolicy {
                remediation.push_str("; if it has it, the bucket policy may demand other encryption headers: set export.encryption to match");
            }
            CheckResult::fail(id, format!("{doing} was denied"), remediation)
        } else if e.code.as_deref().is_some_and(|c| c.starts_with("KMS")) {
            CheckResult::fail(
                id,
                format!("{doing} failed on the KMS key: {}", e.message),
                "the role needs kms:GenerateDataKey and kms:Decrypt on the key, and the key policy must allow it",
            )
        } else {
            CheckResult::fail(
                id,
                format!("{doing} failed: {e}"),
                "validate again; if it persists, contact support with this message",
            )
        };
        result.with_code(e.effective_code())
    }

    async fn list(&self) -> CheckResult {
        let out = self
            .s3
            .list_objects_v2()
            .bucket(&self.c.bucket)
            .prefix(&self.c.prefix)
            .max_keys(1)
            .send()
            .await;
        match out {
            Ok(_) => CheckResult::pass(
                "list",
                format!("listed s3://{}/{}", self.c.bucket, self.c.prefix),
            ),
            Err(err) => {
                let e = AwsCallError::from_sdk("s3", "ListObjectsV2", &err);
                let mut r = self.denied(
                    "list",
                    &e,
                    "s3:ListBucket",
                    &checks::bucket_arn(self.c),
                    "listing the prefix",
                );
                if e.is_access_denied()
                    && !self.c.prefix.is_empty()
                    && let Some(rem) = r.remediation.as_mut()
                {
                    rem.push_str(&format!(
                        " (with the condition s3:prefix like \"{}*\")",
                        self.c.prefix
                    ));
                }
                r
            }
        }
    }

    /// write → read → move (ingest) → delete, on one test object.
    async fn object_round_trip(&self) -> Vec<CheckResult> {
        let key = self.test_key(&self.c.prefix, "");
        let write = timed("write", self.write(&key)).await;
        if write.status == CheckStatus::Fail {
            let why = "skipped: the write check failed";
            return vec![
                write,
                CheckResult::skip("read", why),
                CheckResult::skip("move", why),
                CheckResult::skip("delete", why),
            ];
        }
        let read = timed("read", self.read(&key)).await;
        let moved = timed("move", self.move_check(&key)).await;
        let delete = timed("delete", self.delete(&key)).await;
        vec![write, read, moved, delete]
    }

    async fn write(&self, key: &str) -> CheckResult {
        let mut request = self
            .s3
            .put_object()
            .bucket(&self.c.bucket)
            .key(key)
            .body(ByteStream::from_static(TEST_BODY))
            .set_acl(self.acl());
        let mut headers = Vec::new();
        if let Some((sse, kms_key)) = self.sse() {
            headers.push(format!("x-amz-server-side-encryption: {}", sse.as_str()));
            request = request
                .server_side_encryption(sse)
                .set_ssekms_key_id(kms_key);
        }
        if self.acl().is_some() {
            headers.push("x-amz-acl: bucket-owner-full-control".into());
        }
        match request.send().await {
            Ok(_) => {
                self.remember(key);
                let with = if headers.is_empty() {
                    String::new()
                } else {
                    format!(" with {}", headers.join(", "))
                };
                CheckResult::pass("write", format!("wrote s3://{}/{key}{with}", self.c.bucket))
            }
            Err(err) => {
                let e = AwsCallError::from_sdk("s3", "PutObject", &err);
                self.denied(
                    "write",
                    &e,
                    "s3:PutObject",
                    &objects_arn(self.c, &self.c.prefix),
                    "writing a test object",
                )
            }
        }
    }

    async fn read(&self, key: &str) -> CheckResult {
        let out = self
            .s3
            .get_object()
            .bucket(&self.c.bucket)
            .key(key)
            .send()
            .await;
        match out {
            Ok(out) => match out.body.collect().await.map(|b| b.into_bytes()) {
                Ok(bytes) if bytes.as_ref() == TEST_BODY => {
                    CheckResult::pass("read", "read the test object back, byte for byte")
                }
                Ok(_) => CheckResult::fail(
                    "read",
                    "the object read back differs from what was written",
                    "something rewrites objects under the prefix (a Lambda trigger or replication?); exclude the .connector-check/ folder",
                ),
                Err(e) => CheckResult::fail(
                    "read",
                    format!("reading the test object broke off: {e}"),
                    "validate again",
                ),
            },
            Err(err) => {
                let e = AwsCallError::from_sdk("s3", "GetObject", &err);
                self.denied(
                    "read",
                    &e,
                    "s3:GetObject",
                    &objects_arn(self.c, &self.c.prefix),
                    "reading the test object",
                )
            }
        }
    }

    async fn delete(&self, key: &str) -> CheckResult {
        match self.delete_object(key).await {
            Ok(()) => CheckResult::pass("delete", "deleted the test object"),
            Err(e) => self.denied(
                "delete",
                &e,
                "s3:DeleteObject",
                &objects_arn(self.c, &self.c.prefix),
                "deleting the test object",
            ),
        }
    }

    async fn delete_object(&self, key: &str) -> Result<(), AwsCallError> {
        self.s3
            .delete_object()
            .bucket(&self.c.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("s3", "DeleteObject", &e))?;
        self.forget(key);
        Ok(())
    }

    /// Create, upload a part, list parts, complete; and create + abort a second upload: the
    /// calls an export's multipart upload makes.
    async fn multipart(&self) -> CheckResult {
        if self.c.direction() != Direction::Export {
            // Ingest uploads nothing; its large moves (multipart copies) are the move check's.
            return CheckResult::skip(
                "multipart",
                "ingest does not upload; large moves are covered by the move check",
            );
        }
        let key = self.test_key(&self.c.prefix, "-multipart");
        let resource = objects_arn(self.c, &self.c.prefix);
        match self.multipart_upload(&key).await {
            Ok(()) => {}
            Err((action, e)) => {
                return self.denied("multipart", &e, action, &resource, "a multipart upload");
            }
        }
        CheckResult::pass(
            "multipart",
            "created, uploaded, listed, completed and aborted multipart uploads",
        )
    }

    async fn multipart_upload(&self, key: &str) -> Result<(), (&'static str, AwsCallError)> {
        let upload_id = self.create_upload(key).await?;
        if let Err(e) = self.upload_one_part(key, &upload_id).await {
            self.abort(key, &upload_id).await.ok();
            return Err(e);
        }
        self.remember(key);

        let second_key = self.test_key(&self.c.prefix, "-aborted");
        let second_id = self.create_upload(&second_key).await?;
        self.abort(&second_key, &second_id)
            .await
            .map_err(|e| ("s3:AbortMultipartUpload", e))
    }

    /// CreateMultipartUpload with the connector's SSE/KMS and ACL headers; the upload id.
    async fn create_upload(&self, key: &str) -> Result<String, (&'static str, AwsCallError)> {
        let mut request = self
            .s3
            .create_multipart_upload()
            .bucket(&self.c.bucket)
            .key(key)
            .set_acl(self.acl());
        if let Some((sse, kms_key)) = self.sse() {
            request = request
                .server_side_encryption(sse)
                .set_ssekms_key_id(kms_key);
        }
        let out = request.send().await.map_err(|e| {
            (
                "s3:PutObject",
                AwsCallError::from_sdk("s3", "CreateMultipartUpload", &e),
            )
        })?;
        Ok(out.upload_id.unwrap_or_default())
    }

    /// UploadPart, ListParts and CompleteMultipartUpload of a one-part upload.
    async fn upload_one_part(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<(), (&'static str, AwsCallError)> {
        let part = self
            .s3
            .upload_part()
            .bucket(&self.c.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(1)
            .body(ByteStream::from_static(TEST_BODY))
            .send()
            .await
            .map_err(|e| {
                (
                    "s3:PutObject",
                    AwsCallError::from_sdk("s3", "UploadPart", &e),
                )
            })?;
        let listed = self
            .s3
            .list_parts()
            .bucket(&self.c.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await;
        // A 200 the SDK cannot parse (seen with emulators) still proves the permission.
        if let Err(e) = listed
            && unparsed_ok_body(&e).is_none()
        {
            return Err((
                "s3:ListMultipartUploadParts",
                AwsCallError::from_sdk("s3", "ListParts", &e),
            ));
        }
        let completed = CompletedMultipartUpload::builder()
            .parts(
                CompletedPart::builder()
                    .part_number(1)
                    .set_e_tag(part.e_tag)
                    .build(),
            )
            .build();
        self.s3
            .complete_multipart_upload()
            .bucket(&self.c.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(completed)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                (
                    "s3:PutObject",
                    AwsCallError::from_sdk("s3", "CompleteMultipartUpload", &e),
                )
            })
    }

    async fn abort(&self, key: &str, upload_id: &str) -> Result<(), AwsCallError> {
        self.s3
            .abort_multipart_upload()
            .bucket(&self.c.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| AwsCallError::from_sdk("s3", "AbortMultipartUpload", &e))
    }

    /// Ingest: read one of the customer's files, if any, as a run would.
    async fn source_read(&self) -> CheckResult {
        if self.c.direction() != Direction::Ingest {
            return CheckResult::skip("source_read", "applies to ingest connectors only");
        }
        let listed = self
            .s3
            .list_objects_v2()
            .bucket(&self.c.bucket)
            .prefix(&self.c.prefix)
            .max_keys(50)
            .send()
            .await;
        let listed = match listed {
            Ok(l) => l,
            Err(err) => {
                let e = AwsCallError::from_sdk("s3", "ListObjectsV2", &err);
                return self.denied(
                    "source_read",
                    &e,
                    "s3:ListBucket",
                    &checks::bucket_arn(self.c),
                    "listing the source folder",
                );
            }
        };
        let check_dir = format!("{}{CHECK_DIR}", self.c.prefix);
        let first = listed
            .contents()
            .iter()
            .filter_map(|o| o.key())
            .find(|k| !k.starts_with(&check_dir) && !k.ends_with('/'));
        let Some(key) = first else {
            return CheckResult::pass(
                "source_read",
                format!("no files in s3://{}/{} yet", self.c.bucket, self.c.prefix),
            );
        };
        match self
            .s3
            .get_object()
            .bucket(&self.c.bucket)
            .key(key)
            .range("bytes=0-0")
            .send()
            .await
        {
            Ok(_) => CheckResult::pass("source_read", format!("read the first byte of {key}")),
            Err(err) => {
                let e = AwsCallError::from_sdk("s3", "GetObject", &err);
                self.denied(
                    "source_read",
                    &e,
                    "s3:GetObject",
                    &objects_arn(self.c, &self.c.prefix),
                    &format!("reading {key}"),
                )
            }
        }
    }

    /// Ingest: copy the test object into the success and failed folders, then delete the
    /// copies — the moves a run makes.
    async fn move_check(&self, source_key: &str) -> CheckResult {
        let Some(ingest) = self.c.ingest_options() else {
            return CheckResult::skip("move", "applies to ingest connectors only");
        };
        let dirs = ingest.move_dirs();
        if dirs.is_empty() {
            return CheckResult::skip(
                "move",
                "no success or failed folder: good files are deleted after ingest (the delete check covers it) and bad files stay",
            );
        }
        let mut done = Vec::new();
        for dir in dirs {
            let target = self.test_key(dir, "");
            let copy = self
                .s3
                .copy_object()
                .bucket(&self.c.bucket)
                .key(&target)
                .copy_source(copy_source(&self.c.bucket, source_key))
                .set_acl(self.acl())
                .send()
                .await;
            if let Err(err) = copy {
                let e = AwsCallError::from_sdk("s3", "CopyObject", &err);
                return self.denied(
                    "move",
                    &e,
                    "s3:PutObject",
                    &objects_arn(self.c, dir),
                    &format!("copying a file into {dir}"),
                );
            }
            self.remember(&target);
            if let Err(e) = self.delete_object(&target).await {
                return self.denied(
                    "move",
                    &e,
                    "s3:DeleteObject",
                    &objects_arn(self.c, dir),
                    &format!("removing the test copy from {dir}"),
                );
            }
            done.push(dir);
        }
        CheckResult::pass(
            "move",
            format!(
                "copied a test file into {} and removed it",
                done.join(" and ")
            ),
        )
    }

    async fn challenge_file(&self) -> CheckResult {
        if !checks::challenge_required(self.c) {
            return CheckResult::skip(
                "challenge_file",
                "only bucket_policy connectors prove ownership with a challenge file",
            );
        }
        let key = self.c.challenge_key();
        match self
            .s3
            .head_object()
            .bucket(&self.c.bucket)
            .key(&key)
            .send()
            .await
        {
            Ok(_) => CheckResult::pass(
                "challenge_file",
                format!("found s3://{}/{key}", self.c.bucket),
            ),
            Err(err) => {
                let e = AwsCallError::from_sdk("s3", "HeadObject", &err);
                if e.http_status == Some(404) {
                    CheckResult::fail(
                        "challenge_file",
                        format!("s3://{}/{key} does not exist", self.c.bucket),
                        format!("upload an empty object named {:?} to s3://{}/{} and keep it there: it proves you control the bucket", self.c.challenge_file, self.c.bucket, self.c.prefix),
                    )
                    .with_code(e.effective_code())
                } else {
                    self.denied(
                        "challenge_file",
                        &e,
                        "s3:GetObject",
                        &objects_arn(self.c, &self.c.prefix),
                        "reading the challenge file",
                    )
                }
            }
        }
    }

    async fn bucket_settings(&self) -> CheckResult {
        let bucket = &self.c.bucket;
        let (versioning, lock, payment, ownership) = tokio::join!(
            self.s3.get_bucket_versioning().bucket(bucket).send(),
            self.s3
                .get_object_lock_configuration()
                .bucket(bucket)
                .send(),
            self.s3.get_bucket_request_payment().bucket(bucket).send(),
            self.s3
                .get_bucket_ownership_controls()
                .bucket(bucket)
                .send(),
        );
        let not_configured = |code: Option<&str>| {
            matches!(
                code,
                Some("ObjectLockConfigurationNotFoundError" | "OwnershipControlsNotFoundError")
            )
        };
        let settings = BucketSettings {
            versioning: match versioning {
                Ok(v) => Some(matches!(
                    v.status(),
                    Some(BucketVersioningStatus::Enabled | BucketVersioningStatus::Suspended)
                )),
                Err(e) => unparsed_ok_body(&e).map(|body| body.contains("<Status>")),
            },
            object_lock: match lock {
                Ok(l) => Some(
                    l.object_lock_configuration()
                        .is_some_and(|c| c.object_lock_enabled().is_some()),
                ),
                Err(e)
                    if not_configured(
                        AwsCallError::from_sdk("s3", "GetObjectLockConfiguration", &e)
                            .code
                            .as_deref(),
                    ) =>
                {
                    Some(false)
                }
                Err(_) => None,
            },
            requester_pays: match payment {
                Ok(p) => Some(p.payer() == Some(&Payer::Requester)),
                Err(e) => {
                    unparsed_ok_body(&e).map(|body| body.contains("<Payer>Requester</Payer>"))
                }
            },
            owner_enforced: match ownership {
                Ok(o) => Some(o.ownership_controls().is_some_and(|c| {
                    c.rules()
                        .iter()
                        .any(|r| r.object_ownership() == &ObjectOwnership::BucketOwnerEnforced)
                })),
                Err(e)
                    if not_configured(
                        AwsCallError::from_sdk("s3", "GetBucketOwnershipControls", &e)
                            .code
                            .as_deref(),
                    ) =>
                {
                    Some(false)
                }
                Err(_) => None,
            },
        };
        checks::bucket_settings_check(self.c, &settings)
    }

    /// Removes test objects a failed check left behind; says which remain when it cannot.
    async fn clean_up(&self) -> Option<String> {
        let keys: Vec<String> = self.leftovers.lock().expect("not poisoned").clone();
        let mut remaining = Vec::new();
        for key in keys {
            if self.delete_object(&key).await.is_err() {
                remaining.push(format!("s3://{}/{key}", self.c.bucket));
            }
        }
        (!remaining.is_empty()).then(|| {
            format!(
                "; these test objects could not be removed, delete them by hand: {}",
                remaining.join(", ")
            )
        })
    }
}

/// `CopySource` is `bucket/key` with the key URL-encoded (spaces, `+`, Unicode).
fn copy_source(bucket: &str, key: &str) -> String {
    let mut encoded = String::with_capacity(key.len());
    for byte in key.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                encoded.push(byte as char)
            }
            other => encoded.push_str(&format!("%{other:02X}")),
        }
    }
    format!("{bucket}/{encoded}")
}

async fn timed(id: &str, check: impl Future<Output = CheckResult>) -> CheckResult {
    let started = Instant::now();
    let mut result = bounded(id, check, |timeout| timeout).await;
    debug_assert_eq!(result.id, id);
    result.duration_ms = elapsed_ms(started);
    result
}

/// Runs `work` for at most CHECK_TIMEOUT; past it, `on_timeout` turns a failed `id` check into
/// the work's output type.
async fn bounded<T>(
    id: &str,
    work: impl Future<Output = T>,
    on_timeout: impl FnOnce(CheckResult) -> T,
) -> T {
    match tokio::time::timeout(CHECK_TIMEOUT, work).await {
        Ok(out) => out,
        Err(_) => on_timeout(CheckResult::fail(
            id,
            format!("S3 did not answer within {} s", CHECK_TIMEOUT.as_secs()),
            "validate again; if it keeps timing out, check the bucket's region and any VPC endpoint policy",
        )),
    }
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_source_encodes_keys_users_write() {
        let cases = [
            ("a/b.csv", "bkt/a/b.csv"),
            ("a b+c.csv", "bkt/a%20b%2Bc.csv"),
            ("données/日.csv", "bkt/donn%C3%A9es/%E6%97%A5.csv"),
            ("x%2By", "bkt/x%252By"),
        ];
        for (key, expected) in cases {
            assert_eq!(copy_source("bkt", key), expected, "{key}");
        }
    }
}
