//! The platform's own resources, which no connector may reach: our buckets (the lake first) and
//! our AWS account. A connector on one of them would let a tenant read or overwrite platform
//! data with the platform's credentials (docs/architecture.md, "Own resources").

use crate::connector::field::FieldError;

#[derive(Debug, Clone, Default)]
pub struct OwnResources {
    buckets: Vec<String>,
    account_id: Option<String>,
}

const OWN_BUCKET_RULE: &str =
    "is one of the platform's own buckets; name a bucket in your own AWS account";

impl OwnResources {
    /// `buckets`: the lake and any other bucket of the deployment; `account_id`: the AWS
    /// account the platform runs in (none when unknown).
    pub fn new(buckets: impl IntoIterator<Item = String>, account_id: Option<String>) -> Self {
        Self {
            buckets: buckets
                .into_iter()
                .map(|b| b.trim().to_ascii_lowercase())
                .filter(|b| !b.is_empty())
                .collect(),
            account_id: account_id.filter(|a| !a.trim().is_empty()),
        }
    }

    pub fn account_id(&self) -> Option<&str> {
        self.account_id.as_deref()
    }

    pub fn is_own_bucket(&self, bucket: &str) -> bool {
        self.buckets.iter().any(|b| b == bucket)
    }

    pub fn is_own_account(&self, account: &str) -> bool {
        self.account_id.as_deref() == Some(account)
    }

    /// Field errors for a connector that names our bucket, or a role in our account: refused at
    /// create, update and validation, whatever the auth mode.
    pub fn refusals(&self, bucket: &str, role_arn: Option<&str>) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.is_own_bucket(bucket) {
            errors.push(FieldError::new("bucket", OWN_BUCKET_RULE));
        }
        if let Some(account) = role_arn.and_then(crate::connector::rules::role_arn_account)
            && self.is_own_account(account)
        {
            errors.push(FieldError::new(
                "auth.role_arn",
                format!(
                    "is a role in the platform's own AWS account ({account}); name a role in your account"
                ),
            ));
        }
        errors
    }

    /// Why credentials of `account` must not be used (an access key of our own account).
    pub fn credentials_refusal(&self, account: &str) -> Option<String> {
        self.is_own_account(account).then(|| {
            format!(
                "the credentials belong to the platform's own AWS account ({account}), not yours"
            )
        })
    }

    /// An IAM statement for every connector session policy: nothing in a bucket of our account,
    /// whatever the customer's role allows (`s3:ResourceAccount` is the bucket owner's account).
    pub fn deny_statement(&self) -> Option<serde_json::Value> {
        let account = self.account_id.as_deref()?;
        Some(serde_json::json!({
            "Effect": "Deny",
            "Action": "s3:*",
            "Resource": "*",
            "Condition": {"StringEquals": {"s3:ResourceAccount": account}}
        }))
    }
}

/// The account id of an STS caller ARN (`arn:aws:sts::123456789012:assumed-role/…`,
/// `arn:aws:iam::123456789012:user/…`).
pub fn arn_account(arn: &str) -> Option<&str> {
    let account = arn.split(':').nth(4)?;
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())).then_some(account)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own() -> OwnResources {
        OwnResources::new(
            ["platform-lake".to_owned(), " ".to_owned()],
            Some("999999999999".into()),
        )
    }

    #[test]
    fn refuses_our_buckets_and_roles_of_our_account() {
        // (bucket, role ARN, fields refused)
        let cases: &[(&str, Option<&str>, &[&str])] = &[
            ("acme-exports", None, &[]),
            (
                "acme-exports",
                Some("arn:aws:iam::111111111111:role/r"),
                &[],
            ),
            ("platform-lake", None, &["bucket"]),
            (
                "platform-lake",
                Some("arn:aws:iam::111111111111:role/r"),
                &["bucket"],
            ),
            (
                "acme-exports",
                Some("arn:aws:iam::999999999999:role/r"),
                &["auth.role_arn"],
            ),
            (
                "platform-lake",
                Some("arn:aws:iam::999999999999:role/path/r"),
                &["bucket", "auth.role_arn"],
            ),
            ("platform-lake-2", None, &[]),
            ("", None, &[]),
        ];
        for (bucket, role, want) in cases {
            let got: Vec<String> = own()
                .refusals(bucket, *role)
                .into_iter()
                .map(|e| e.field)
                .collect();
            assert_eq!(got, *want, "{bucket} {role:?}");
        }
        assert!(
            own().refusals("platform-lake", None)[0]
                .rule
                .contains("platform's own buckets")
        );
    }

    #[test]
    fn an_unknown_account_refuses_by_name_only() {
        let own = OwnResources::new(["lake".to_owned()], Some(" ".into()));
        assert_eq!(own.account_id(), None);
        assert!(
            own.refusals("x", Some("arn:aws:iam::999999999999:role/r"))
                .is_empty()
        );
        assert_eq!(own.refusals("lake", None).len(), 1);
        assert!(own.deny_statement().is_none());
        assert!(own.credentials_refusal("999999999999").is_none());
    }

    #[test]
    fn credentials_and_session_policy_deny_our_account() {
        assert!(own().credentials_refusal("111111111111").is_none());
        assert!(
            own()
                .credentials_refusal("999999999999")
                .unwrap()
                .contains("platform's own AWS account")
        );
        let deny = own().deny_statement().unwrap();
        assert_eq!(deny["Effect"], "Deny");
        assert_eq!(
            deny["Condition"]["StringEquals"]["s3:ResourceAccount"],
            "999999999999"
        );
    }

    #[test]
    fn accounts_of_caller_arns() {
        let cases = [
            ("arn:aws:iam::123456789012:user/bob", Some("123456789012")),
            (
                "arn:aws:sts::123456789012:assumed-role/r/s",
                Some("123456789012"),
            ),
            ("arn:aws-cn:iam::123456789012:root", Some("123456789012")),
            ("arn:aws:iam::12345:user/bob", None),
            ("not an arn", None),
            ("", None),
        ];
        for (arn, want) in cases {
            assert_eq!(arn_account(arn), want, "{arn}");
        }
    }
}
