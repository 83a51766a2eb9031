//! A validation's outcome as stored on the connector and returned by the API: which check
//! passed, failed, warned or was skipped, and why. The decisions behind each result are in
//! `crate::setup::checks`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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
