//! Validation results and the decisions behind them: pure, so every rule (what counts as a
//! failure, what the customer must change) is tested without AWS.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::connector::{AuthMode, Connector, Direction};
use super::rules;

/// Every check, in the order it runs and is reported. The snake_case names are stable: clients
/// key on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckId {
    Config,
    Credentials,
    ExternalIdEnforced,
    BucketExists,
    BucketRegion,
    List,
    Write,
    Multipart,
    Read,
    Delete,
    SourceRead,
    Move,
    ChallengeFile,
    BucketSettings,
}

impl CheckId {
    /// All checks in report order.
    pub const ALL: [CheckId; 14] = [
        CheckId::Config,
        CheckId::Credentials,
        CheckId::ExternalIdEnforced,
        CheckId::BucketExists,
        CheckId::BucketRegion,
        CheckId::List,
        CheckId::Write,
        CheckId::Multipart,
        CheckId::Read,
        CheckId::Delete,
        CheckId::SourceRead,
        CheckId::Move,
        CheckId::ChallengeFile,
        CheckId::BucketSettings,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CheckId::Config => "config",
            CheckId::Credentials => "credentials",
            CheckId::ExternalIdEnforced => "external_id_enforced",
            CheckId::BucketExists => "bucket_exists",
            CheckId::BucketRegion => "bucket_region",
            CheckId::List => "list",
            CheckId::Write => "write",
            CheckId::Multipart => "multipart",
            CheckId::Read => "read",
            CheckId::Delete => "delete",
            CheckId::SourceRead => "source_read",
            CheckId::Move => "move",
            CheckId::ChallengeFile => "challenge_file",
            CheckId::BucketSettings => "bucket_settings",
        }
    }

    /// The checks after this one, in report order (what a failed gate skips).
    pub fn after(self) -> impl Iterator<Item = CheckId> {
        CheckId::ALL.into_iter().filter(move |id| *id > self)
    }
}

impl std::fmt::Display for CheckId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Folder (under the connector's prefix) of the objects validation writes and removes.
/// `Connector::is_service_object` recognises it, so ingest can skip test objects.
pub const CHECK_DIR: &str = ".connector-check/";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Pass,
    Fail,
    Warn,
    Skip,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    pub id: CheckId,
    pub status: CheckStatus,
    pub duration_ms: u64,
    pub aws_error_code: Option<String>,
    pub message: String,
    pub remediation: Option<String>,
}

impl CheckResult {
    pub fn new(id: CheckId, status: CheckStatus, message: impl Into<String>) -> Self {
        Self {
            id,
            status,
            duration_ms: 0,
            aws_error_code: None,
            message: message.into(),
            remediation: None,
        }
    }

    pub fn pass(id: CheckId, message: impl Into<String>) -> Self {
        Self::new(id, CheckStatus::Pass, message)
    }

    pub fn skip(id: CheckId, reason: impl Into<String>) -> Self {
        Self::new(id, CheckStatus::Skip, reason)
    }

    pub fn fail(id: CheckId, message: impl Into<String>, remediation: impl Into<String>) -> Self {
        Self {
            remediation: Some(remediation.into()),
            ..Self::new(id, CheckStatus::Fail, message)
        }
    }

    pub fn warn(id: CheckId, message: impl Into<String>, remediation: impl Into<String>) -> Self {
        Self {
            remediation: Some(remediation.into()),
            ..Self::new(id, CheckStatus::Warn, message)
        }
    }

    pub fn with_code(mut self, code: Option<&str>) -> Self {
        self.aws_error_code = code.map(str::to_owned);
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValidationStatus {
    Active,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationReport {
    pub status: ValidationStatus,
    pub checks: Vec<CheckResult>,
    pub validated_at: DateTime<Utc>,
    /// The bucket's region as S3 reported it (pinned on the connector when it matches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_region: Option<String>,
}

impl ValidationReport {
    /// Orders the checks by `CheckId::ALL`, adds a `skip` for any check that did not report,
    /// and passes only when nothing failed (warnings do not block).
    pub fn from_checks(
        mut checks: Vec<CheckResult>,
        validated_at: DateTime<Utc>,
        bucket_region: Option<String>,
    ) -> Self {
        for id in CheckId::ALL {
            if !checks.iter().any(|c| c.id == id) {
                checks.push(CheckResult::skip(id, "not run"));
            }
        }
        checks.sort_by_key(|c| c.id);
        let failed = checks.iter().any(|c| c.status == CheckStatus::Fail);
        Self {
            status: if failed {
                ValidationStatus::Failed
            } else {
                ValidationStatus::Active
            },
            checks,
            validated_at,
            bucket_region,
        }
    }

    pub fn check(&self, id: CheckId) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.id == id)
    }
}

/// Whose policy grants the connector's permissions, in words the customer recognises.
pub fn grantee(c: &Connector) -> String {
    match (&c.auth.mode(), c.auth.role_arn()) {
        (AuthMode::Role | AuthMode::WebIdentity, Some(role)) => {
            format!("the role's policy ({role})")
        }
        (AuthMode::AccessKey, _) => format!(
            "the policy of the IAM user whose access key ({}) this connector holds",
            access_key_hint(c)
        ),
        _ => format!("the bucket policy of {}", c.bucket),
    }
}

fn access_key_hint(c: &Connector) -> &str {
    match &c.auth {
        super::connector::Auth::AccessKey {
            access_key_id_hint, ..
        } => access_key_id_hint,
        _ => "",
    }
}

/// "the role's policy (…) lacks s3:DeleteObject on arn:aws:s3:::bucket/prefix/*".
pub fn missing_permission(c: &Connector, action: &str, resource: &str) -> String {
    format!(
        "{} lacks {action} on {resource}; add it (GET /connectors/{}/setup has the full policy)",
        grantee(c),
        c.connector_id
    )
}

pub fn bucket_arn(c: &Connector) -> String {
    format!(
        "arn:{}:s3:::{}",
        rules::partition_for_region(&c.region),
        c.bucket
    )
}

/// ARN pattern of the objects under `prefix`.
pub fn objects_arn(c: &Connector, prefix: &str) -> String {
    format!("{}/{prefix}*", bucket_arn(c))
}

/// The confused-deputy probe: AssumeRole with a wrong ExternalId must be refused.
pub fn external_id_probe(c: &Connector, wrong_id_accepted: bool) -> CheckResult {
    const ID: CheckId = CheckId::ExternalIdEnforced;
    if wrong_id_accepted {
        CheckResult::fail(
            ID,
            "the role accepted a wrong external ID: anyone who learns its ARN could make our service act on your bucket (confused deputy)",
            format!(
                "add the condition {{\"StringEquals\": {{\"sts:ExternalId\": \"{}\"}}}} to the trust policy statement that names our principal",
                c.external_id
            ),
        )
    } else {
        CheckResult::pass(ID, "the role refuses a wrong external ID")
    }
}

/// Compares the bucket's actual region with the connector's.
pub fn region_check(c: &Connector, actual: Option<&str>) -> CheckResult {
    const ID: CheckId = CheckId::BucketRegion;
    match actual {
        None => CheckResult::warn(
            ID,
            "S3 did not report the bucket's region",
            format!("make sure {} is in {}", c.bucket, c.region),
        ),
        Some(actual) if actual == c.region => {
            CheckResult::pass(ID, format!("the bucket is in {actual}"))
        }
        Some(actual) => CheckResult::fail(
            ID,
            format!("the bucket is in {actual}, not {}", c.region),
            format!("set the connector's region to {actual} (PATCH {{\"region\": \"{actual}\"}})"),
        ),
    }
}

/// What the bucket's configuration means for this connector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketSettings {
    /// `Some(true)` when versioning is enabled or suspended; `None` when it could not be read.
    pub versioning: Option<bool>,
    pub object_lock: Option<bool>,
    pub requester_pays: Option<bool>,
    pub owner_enforced: Option<bool>,
}

pub fn bucket_settings_check(c: &Connector, s: &BucketSettings) -> CheckResult {
    const ID: CheckId = CheckId::BucketSettings;
    let mut findings = Vec::new();
    let mut remedies = Vec::new();
    let mut unread = Vec::new();
    match s.versioning {
        Some(true) => {
            findings.push("versioning is on: deleted and moved files leave delete markers and old versions that keep costing storage");
            remedies.push("add a lifecycle rule that expires noncurrent versions under the prefix");
        }
        None => unread.push("s3:GetBucketVersioning"),
        Some(false) => {}
    }
    match s.object_lock {
        Some(true) => {
            findings.push(match c.direction() {
                Direction::Ingest => "object lock is on: moving or deleting ingested files will fail while they are retained",
                Direction::Export => "object lock is on: exported files cannot be replaced or cleaned up while they are retained",
            });
            remedies.push(
                "use a bucket without object lock, or a default retention that allows deletes",
            );
        }
        None => unread.push("s3:GetBucketObjectLockConfiguration"),
        Some(false) => {}
    }
    match s.requester_pays {
        Some(true) => {
            findings.push("requester pays is on: every request must declare it will pay, and runs will be refused");
            remedies.push("turn off Requester Pays on the bucket");
        }
        None => unread.push("s3:GetBucketRequestPayment"),
        Some(false) => {}
    }
    match s.owner_enforced {
        Some(true) if c.auth.mode() == AuthMode::BucketPolicy => {
            findings.push("object ownership is BucketOwnerEnforced: ACLs are off, so your account owns our objects without the bucket-owner-full-control ACL (we still send it; S3 accepts it)");
        }
        None if c.auth.mode() == AuthMode::BucketPolicy => {
            unread.push("s3:GetBucketOwnershipControls")
        }
        _ => {}
    }
    if !unread.is_empty() {
        let message = format!(
            "could not read some bucket settings ({})",
            unread.join(", ")
        );
        return CheckResult::warn(
            ID,
            if findings.is_empty() {
                message
            } else {
                format!("{}; {message}", findings.join("; "))
            },
            format!(
                "grant {} on {} so validation can check them{}",
                unread.join(", "),
                bucket_arn(c),
                if remedies.is_empty() {
                    String::new()
                } else {
                    format!("; {}", remedies.join("; "))
                }
            ),
        );
    }
    if findings.is_empty() {
        return CheckResult::pass(
            ID,
            "no versioning, object lock or requester pays in the way",
        );
    }
    let mut result = CheckResult::warn(ID, findings.join("; "), remedies.join("; "));
    if remedies.is_empty() {
        result.remediation = None;
    }
    result
}

/// The challenge file must exist at the prefix for connectors that require one.
pub fn challenge_required(c: &Connector) -> bool {
    c.auth.mode() == AuthMode::BucketPolicy
}

#[cfg(test)]
mod tests;
