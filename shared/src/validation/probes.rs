//! One probe per bucket check, over the storage port: each makes the calls a run will make and
//! turns S3's answer into a result that names the missing permission.

use std::time::Instant;

use super::clean_up::TestObjects;
use super::{NEEDS_BUCKET, elapsed_ms, timed};
use crate::domain::connector::{AuthMode, Connector, Direction, SseMode};
use crate::domain::ingest::file::{SIDECAR_SUFFIX, ingestible};
use crate::domain::setup::checks::{
    self, CHECK_DIR, CheckId, CheckResult, CheckStatus, missing_permission, objects_arn,
};
use crate::error::AwsCallError;
use crate::ports::{Body, ObjectStore, WriteOptions};

pub(super) const TEST_BODY: &[u8] = b"connector validation test object: safe to delete\n";

/// The bucket checks of one validation, sharing the test objects they create.
pub(super) struct CheckRun<'a, B> {
    store: &'a B,
    c: &'a Connector,
    token: String,
    written: TestObjects,
}

impl<'a, B: ObjectStore> CheckRun<'a, B> {
    pub(super) fn new(store: &'a B, c: &'a Connector) -> Self {
        Self {
            store,
            c,
            token: uuid::Uuid::new_v4().simple().to_string(),
            written: TestObjects::default(),
        }
    }

    fn test_key(&self, dir: &str, suffix: &str) -> String {
        format!("{dir}{CHECK_DIR}{}{suffix}", self.token)
    }

    /// The headers a run's writes carry: the export's SSE, and the bucket-owner ACL in
    /// bucket_policy mode (objects written there must belong to the bucket owner).
    fn write_options(&self) -> WriteOptions {
        WriteOptions {
            encryption: self.c.export_options().map(|e| e.encryption.clone()),
            bucket_owner_full_control: self.c.auth.mode() == AuthMode::BucketPolicy,
            content_type: None,
            metadata: Default::default(),
        }
    }

    fn denied(
        &self,
        id: CheckId,
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

    /// Does the bucket exist, can we reach it, and in which region is it? HeadBucket first (S3
    /// names the region even when it refuses); a refused HeadBucket is expected with our policy,
    /// whose s3:ListBucket is conditioned on the prefix, so GetBucketLocation (granted
    /// unconditionally) settles existence and region.
    /// Returns the two checks, the region S3 reported, and whether later checks can run.
    pub(super) async fn bucket_checks(&self) -> (Vec<CheckResult>, Option<String>, bool) {
        const ID: CheckId = CheckId::BucketExists;
        let c = self.c;
        let started = Instant::now();
        let missing = || {
            CheckResult::fail(
                ID,
                format!("there is no bucket named {}", c.bucket),
                "check the bucket name, or create the bucket",
            )
        };
        let (mut exists, region) = match self.store.head_bucket().await {
            Ok(region) => (
                CheckResult::pass(ID, format!("{} exists and is reachable", c.bucket)),
                region,
            ),
            Err(head) if head.error.http_status == Some(404) => {
                (missing().with_code(Some("NoSuchBucket")), head.region)
            }
            Err(head) => match self.store.bucket_location().await {
                Ok(located) => (
                    CheckResult::pass(ID, format!("{} exists", c.bucket)),
                    head.region.or(Some(located)),
                ),
                Err(e) => {
                    let location =
                        missing_permission(c, "s3:GetBucketLocation", &checks::bucket_arn(c));
                    let check = if e.is_not_found() {
                        missing()
                    } else if head.region.is_some() && e.is_access_denied() {
                        CheckResult::warn(
                            ID,
                            format!("{} exists, but its location could not be read", c.bucket),
                            location,
                        )
                    } else if e.is_access_denied() {
                        CheckResult::fail(
                            ID,
                            format!("access to {} was denied", c.bucket),
                            location,
                        )
                    } else {
                        CheckResult::fail(
                            ID,
                            format!("S3 answered: {e}"),
                            "validate again; if it persists, check the bucket name and region",
                        )
                    };
                    (check.with_code(e.effective_code()), head.region)
                }
            },
        };
        exists.duration_ms = elapsed_ms(started);
        let reachable_so_far = exists.status != CheckStatus::Fail;
        let region_result = if reachable_so_far {
            checks::region_check(c, region.as_deref())
        } else {
            CheckResult::skip(CheckId::BucketRegion, NEEDS_BUCKET)
        };
        let reachable = reachable_so_far && region_result.status != CheckStatus::Fail;
        (vec![exists, region_result], region, reachable)
    }

    pub(super) async fn list(&self) -> CheckResult {
        match self.store.list(&self.c.prefix, 1, None).await {
            Ok(_) => CheckResult::pass(
                CheckId::List,
                format!("listed s3://{}/{}", self.c.bucket, self.c.prefix),
            ),
            Err(e) => {
                let mut r = self.denied(
                    CheckId::List,
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
    pub(super) async fn object_round_trip(&self) -> Vec<CheckResult> {
        let key = self.test_key(&self.c.prefix, "");
        let write = timed(CheckId::Write, self.write(&key)).await;
        // A denied sidecar fails the write check, but the test object is there to go on with.
        if write.status == CheckStatus::Fail && !self.written.holds(&key) {
            let why = "skipped: the write check failed";
            return vec![
                write,
                CheckResult::skip(CheckId::Read, why),
                CheckResult::skip(CheckId::Move, why),
                CheckResult::skip(CheckId::Delete, why),
            ];
        }
        let read = timed(CheckId::Read, self.read(&key)).await;
        let moved = timed(CheckId::Move, self.move_check(&key)).await;
        let delete = timed(CheckId::Delete, self.delete(&key)).await;
        vec![write, read, moved, delete]
    }

    async fn write(&self, key: &str) -> CheckResult {
        let options = self.write_options();
        let mut headers = Vec::new();
        if let Some(encryption) = &options.encryption {
            let sse = match encryption.sse {
                SseMode::Aes256 => "AES256",
                SseMode::AwsKms => "aws:kms",
            };
            headers.push(format!("x-amz-server-side-encryption: {sse}"));
        }
        if options.bucket_owner_full_control {
            headers.push("x-amz-acl: bucket-owner-full-control".into());
        }
        match self.store.put(key, Body::new(TEST_BODY), &options).await {
            Ok(_) => {
                self.written.remember(key);
                let with = if headers.is_empty() {
                    String::new()
                } else {
                    format!(" with {}", headers.join(", "))
                };
                let written = CheckResult::pass(
                    CheckId::Write,
                    format!("wrote s3://{}/{key}{with}", self.c.bucket),
                );
                self.write_sidecar(written).await
            }
            Err(e) => self.denied(
                CheckId::Write,
                &e,
                "s3:PutObject",
                &objects_arn(self.c, &self.c.prefix),
                "writing a test object",
            ),
        }
    }

    /// Ingest: a test error sidecar beside the source files too, where a run writes the
    /// sidecar of a file that is deleted or stays. The setup policy grants that write for the
    /// `.errors.jsonl` suffix alone, so the test object under the check folder does not prove it.
    async fn write_sidecar(&self, written: CheckResult) -> CheckResult {
        let Some(ingest) = self.c.ingest_options() else {
            return written;
        };
        // With both folders set every file is moved (`domain::ingest::file::placement`), and
        // its sidecar goes beside it in a folder the move check covers.
        if ingest.success_dir.is_some() && ingest.failed_dir.is_some() {
            return written;
        }
        let check_name = CHECK_DIR.trim_end_matches('/');
        let key = format!(
            "{}{check_name}-{}{SIDECAR_SUFFIX}",
            self.c.prefix, self.token
        );
        match self
            .store
            .put(&key, Body::new(TEST_BODY), &self.write_options())
            .await
        {
            Ok(_) => {
                self.written.remember(&key);
                CheckResult::pass(
                    CheckId::Write,
                    format!(
                        "{} and a test error sidecar s3://{}/{key}",
                        written.message, self.c.bucket
                    ),
                )
            }
            Err(e) => self.denied(
                CheckId::Write,
                &e,
                "s3:PutObject",
                &format!("{}{SIDECAR_SUFFIX}", objects_arn(self.c, &self.c.prefix)),
                "writing a test error sidecar beside the source files",
            ),
        }
    }

    async fn read(&self, key: &str) -> CheckResult {
        match self.store.get(key, None).await {
            Ok(bytes) if bytes == TEST_BODY => {
                CheckResult::pass(CheckId::Read, "read the test object back, byte for byte")
            }
            Ok(_) => CheckResult::fail(
                CheckId::Read,
                "the object read back differs from what was written",
                "something rewrites objects under the prefix (a Lambda trigger or replication?); exclude the .connector-check/ folder",
            ),
            Err(e) => self.denied(
                CheckId::Read,
                &e,
                "s3:GetObject",
                &objects_arn(self.c, &self.c.prefix),
                "reading the test object",
            ),
        }
    }

    async fn delete(&self, key: &str) -> CheckResult {
        match self.delete_object(key).await {
            Ok(()) => CheckResult::pass(CheckId::Delete, "deleted the test object"),
            Err(e) => self.denied(
                CheckId::Delete,
                &e,
                "s3:DeleteObject",
                &objects_arn(self.c, &self.c.prefix),
                "deleting the test object",
            ),
        }
    }

    async fn delete_object(&self, key: &str) -> Result<(), AwsCallError> {
        self.store.delete(key).await?;
        self.written.forget(key);
        Ok(())
    }

    /// Create, upload a part, list parts, complete; and create + abort a second upload: the
    /// calls an export's multipart upload makes.
    pub(super) async fn multipart(&self) -> CheckResult {
        const ID: CheckId = CheckId::Multipart;
        if self.c.direction() != Direction::Export {
            // Ingest uploads nothing; its large moves (multipart copies) are the move check's.
            return CheckResult::skip(
                ID,
                "ingest does not upload; large moves are covered by the move check",
            );
        }
        let key = self.test_key(&self.c.prefix, "-multipart");
        let resource = objects_arn(self.c, &self.c.prefix);
        if let Err((action, e)) = self.multipart_upload(&key).await {
            return self.denied(ID, &e, action, &resource, "a multipart upload");
        }
        CheckResult::pass(
            ID,
            "created, uploaded, listed, completed and aborted multipart uploads",
        )
    }

    /// Each failure names the IAM action that grants the call.
    async fn multipart_upload(&self, key: &str) -> Result<(), (&'static str, AwsCallError)> {
        let options = self.write_options();
        let put = |e| ("s3:PutObject", e);
        let upload_id = self.store.create_upload(key, &options).await.map_err(put)?;
        if let Err(e) = self.complete_one_part(key, &upload_id).await {
            self.store.abort_upload(key, &upload_id).await.ok();
            return Err(e);
        }
        self.written.remember(key);

        let second_key = self.test_key(&self.c.prefix, "-aborted");
        let second_id = self
            .store
            .create_upload(&second_key, &options)
            .await
            .map_err(put)?;
        self.store
            .abort_upload(&second_key, &second_id)
            .await
            .map_err(|e| ("s3:AbortMultipartUpload", e))
    }

    /// UploadPart, ListParts and CompleteMultipartUpload of a one-part upload.
    async fn complete_one_part(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<(), (&'static str, AwsCallError)> {
        let part = self
            .store
            .upload_part(key, upload_id, 1, Body::new(TEST_BODY))
            .await
            .map_err(|e| ("s3:PutObject", e))?;
        self.store
            .list_parts(key, upload_id)
            .await
            .map_err(|e| ("s3:ListMultipartUploadParts", e))?;
        self.store
            .complete_upload(key, upload_id, &[part])
            .await
            .map_err(|e| ("s3:PutObject", e))
    }

    /// Ingest: read one of the customer's files, if any, as a run would.
    pub(super) async fn source_read(&self) -> CheckResult {
        const ID: CheckId = CheckId::SourceRead;
        if self.c.direction() != Direction::Ingest {
            return CheckResult::skip(ID, "applies to ingest connectors only");
        }
        let listed = match self.store.list(&self.c.prefix, 50, None).await {
            Ok(l) => l,
            Err(e) => {
                return self.denied(
                    ID,
                    &e,
                    "s3:ListBucket",
                    &checks::bucket_arn(self.c),
                    "listing the source folder",
                );
            }
        };
        // The customer's first file a run would load, with a byte to read: not our own objects
        // (test objects and sidecars, the challenge file), not a folder marker, not a file in
        // a move folder, not an empty file (it has no byte 0).
        let first = listed
            .objects
            .iter()
            .filter(|o| ingestible(self.c, &o.key).is_ok() && o.size > 0)
            .map(|o| o.key.as_str())
            .next();
        let Some(key) = first else {
            return CheckResult::pass(
                ID,
                format!("no files in s3://{}/{} yet", self.c.bucket, self.c.prefix),
            );
        };
        match self.store.get(key, Some((0, 0))).await {
            Ok(_) => CheckResult::pass(ID, format!("read the first byte of {key}")),
            Err(e) => self.denied(
                ID,
                &e,
                "s3:GetObject",
                &objects_arn(self.c, &self.c.prefix),
                &format!("reading {key}"),
            ),
        }
    }

    /// Ingest: copy the test object into the success and failed folders, then delete the
    /// copies — the moves a run makes.
    async fn move_check(&self, source_key: &str) -> CheckResult {
        const ID: CheckId = CheckId::Move;
        let Some(ingest) = self.c.ingest_options() else {
            return CheckResult::skip(ID, "applies to ingest connectors only");
        };
        let dirs = ingest.move_dirs();
        if dirs.is_empty() {
            return CheckResult::skip(
                ID,
                "no success or failed folder: good files are deleted after ingest (the delete check covers it) and bad files stay",
            );
        }
        let options = self.write_options();
        let mut done = Vec::new();
        for dir in dirs {
            let target = self.test_key(dir, "");
            if let Err(e) = self.store.copy(source_key, &target, &options).await {
                return self.denied(
                    ID,
                    &e,
                    "s3:PutObject",
                    &objects_arn(self.c, dir),
                    &format!("copying a file into {dir}"),
                );
            }
            self.written.remember(&target);
            if let Err(e) = self.delete_object(&target).await {
                return self.denied(
                    ID,
                    &e,
                    "s3:DeleteObject",
                    &objects_arn(self.c, dir),
                    &format!("removing the test copy from {dir}"),
                );
            }
            done.push(dir);
        }
        CheckResult::pass(
            ID,
            format!(
                "copied a test file into {} and removed it",
                done.join(" and ")
            ),
        )
    }

    pub(super) async fn challenge_file(&self) -> CheckResult {
        const ID: CheckId = CheckId::ChallengeFile;
        if !checks::challenge_required(self.c) {
            return CheckResult::skip(
                ID,
                "only bucket_policy connectors prove ownership with a challenge file",
            );
        }
        let key = self.c.challenge_key();
        match self.store.head_object(&key).await {
            Ok(_) => CheckResult::pass(ID, format!("found s3://{}/{key}", self.c.bucket)),
            Err(e) if e.http_status == Some(404) => CheckResult::fail(
                ID,
                format!("s3://{}/{key} does not exist", self.c.bucket),
                format!(
                    "upload an empty object named {:?} to s3://{}/{} and keep it there: it proves you control the bucket",
                    self.c.challenge_file, self.c.bucket, self.c.prefix
                ),
            )
            .with_code(e.effective_code()),
            Err(e) => self.denied(
                ID,
                &e,
                "s3:GetObject",
                &objects_arn(self.c, &self.c.prefix),
                "reading the challenge file",
            ),
        }
    }

    pub(super) async fn bucket_settings(&self) -> CheckResult {
        checks::bucket_settings_check(self.c, &self.store.settings().await)
    }

    /// Removes the test objects a failed check left behind.
    pub(super) async fn clean_up(&self) -> Option<String> {
        self.written.remove_all(self.store).await
    }
}
