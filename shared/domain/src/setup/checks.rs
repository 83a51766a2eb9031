//! Validation results and the decisions behind them: pure, so every rule (what counts as a
//! failure, what the customer must change) is tested without AWS.

use crate::connector::rules;
use crate::connector::{AuthMode, Connector, Direction};

pub use crate::connector::CHECK_DIR;
pub use crate::connector::report::{
    CheckId, CheckResult, CheckStatus, ValidationReport, ValidationStatus,
};

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
        crate::connector::Auth::AccessKey {
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
