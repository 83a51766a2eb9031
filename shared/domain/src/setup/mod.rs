//! What a customer pastes into their AWS account for a connector: permission policy, trust
//! policy or bucket policy, challenge file, event notification. Pure: built from the connector
//! and our deployment's identity.

pub mod checks;

use serde::Serialize;
use serde_json::{Value, json};

use crate::connector::CHECK_DIR;
use crate::connector::rules;
use crate::connector::{AuthMode, Connector, Direction, SseMode};
use crate::ingest::file::SIDECAR_SUFFIX;

/// Our side of the trust relationship, from the deployment's configuration.
#[derive(Debug, Clone)]
pub struct PlatformIdentity {
    /// The role customers trust (`CONNECTOR_PRINCIPAL_ARN`).
    pub principal_arn: String,
    /// Host of our OIDC identity provider, for `web_identity` connectors.
    pub web_identity_provider: String,
    pub web_identity_audience: String,
    /// Queue that receives customers' S3 event notifications for ingest.
    pub ingest_queue_arn: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SetupInstructions {
    pub connector_id: String,
    pub auth_mode: AuthMode,
    pub direction: Direction,
    /// Numbered steps, in the order the customer should do them.
    pub steps: Vec<String>,
    /// Attach to the customer's role (role, web_identity) or IAM user (access_key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permission_policy: Option<Value>,
    /// The role's trust policy (role: our principal + ExternalId; web_identity: our OIDC provider).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trust_policy: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket_policy: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    pub challenge_file: ChallengeFile,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_notification: Option<Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChallengeFile {
    pub key: String,
    /// Whether validation requires the file for this connector.
    pub required: bool,
    pub instructions: String,
}

/// The connector's run-time S3 (and KMS) permissions, as policy statements on `principal`
/// (`None` for an identity policy; `Some` for a bucket policy).
pub fn s3_statements(c: &Connector, principal: Option<&Value>) -> Vec<Value> {
    let partition = rules::partition_for_region(&c.region);
    let bucket_arn = format!("arn:{partition}:s3:::{}", c.bucket);
    let under = |prefix: &str| format!("{bucket_arn}/{prefix}*");
    let mut object_statements = Vec::new();
    let mut listed_prefixes = vec![c.prefix.clone()];
    let acl = c.auth.mode() == AuthMode::BucketPolicy;
    match c.direction() {
        Direction::Export => {
            let mut actions = vec![
                "s3:PutObject",
                "s3:GetObject",
                "s3:DeleteObject",
                "s3:AbortMultipartUpload",
                "s3:ListMultipartUploadParts",
            ];
            if acl {
                // Objects are written with bucket-owner-full-control, which needs the ACL action.
                actions.push("s3:PutObjectAcl");
            }
            object_statements.push(("ConnectorObjects", actions, vec![under(&c.prefix)]));
        }
        Direction::Ingest => {
            let move_dirs = c
                .ingest_options()
                .map(|i| i.move_dirs())
                .unwrap_or_default();
            // Read and remove source files; the connector writes in the source only the test
            // object of validation (under CHECK_DIR) and error sidecars.
            object_statements.push((
                "ConnectorSourceFiles",
                vec!["s3:GetObject", "s3:DeleteObject"],
                vec![under(&c.prefix)],
            ));
            // Error sidecars of files that are deleted or stay in place sit beside them; the
            // grant is for that suffix only, so no customer file can be overwritten.
            let mut write_targets = vec![
                under(&format!("{}{CHECK_DIR}", c.prefix)),
                format!("{bucket_arn}/{}*{SIDECAR_SUFFIX}", c.prefix),
            ];
            write_targets.extend(move_dirs.iter().map(|d| under(d)));
            listed_prefixes.extend(move_dirs.iter().map(|d| d.to_string()));
            let mut actions = vec![
                "s3:PutObject",
                "s3:AbortMultipartUpload",
                "s3:ListMultipartUploadParts",
            ];
            if acl {
                actions.push("s3:PutObjectAcl");
            }
            object_statements.push(("ConnectorWrites", actions, write_targets));
            // Moves and validation clean-up also read and delete in the move folders.
            if !move_dirs.is_empty() {
                object_statements.push((
                    "ConnectorMoveTargets",
                    vec!["s3:GetObject", "s3:DeleteObject"],
                    move_dirs.iter().map(|d| under(d)).collect(),
                ));
            }
        }
    }

    let mut statements = Vec::new();
    for (sid, actions, resources) in object_statements {
        statements.push(statement(sid, principal, &actions, json!(resources), None));
    }
    let list_condition = if listed_prefixes.iter().any(|p| p.is_empty()) {
        None
    } else {
        let patterns: Vec<String> = listed_prefixes.iter().map(|p| format!("{p}*")).collect();
        Some(json!({"StringLike": {"s3:prefix": patterns}}))
    };
    statements.push(statement(
        "ConnectorList",
        principal,
        &["s3:ListBucket"],
        json!(bucket_arn),
        list_condition,
    ));
    statements.push(statement(
        "ConnectorBucketLocation",
        principal,
        &["s3:GetBucketLocation"],
        json!(bucket_arn),
        None,
    ));
    // Read-only bucket settings that validation checks (versioning, object lock, requester
    // pays, ownership) so it can warn before a run trips over them.
    statements.push(statement(
        "ConnectorBucketSettings",
        principal,
        &[
            "s3:GetBucketVersioning",
            "s3:GetBucketObjectLockConfiguration",
            "s3:GetBucketRequestPayment",
            "s3:GetBucketOwnershipControls",
        ],
        json!(bucket_arn),
        None,
    ));
    // KMS permissions belong in an identity policy (a bucket policy cannot grant them; in
    // bucket_policy mode the customer's key policy must allow our principal instead).
    if let Some(export) = c.export_options()
        && export.encryption.sse == SseMode::AwsKms
        && principal.is_none()
    {
        // KMS authorizes against the key ARN, never an alias ARN.
        let key = export
            .encryption
            .kms_key_id
            .as_deref()
            .filter(|k| k.starts_with("arn:") && k.contains(":key/"))
            .map(str::to_owned)
            .unwrap_or_else(|| format!("arn:{partition}:kms:{}:*:key/*", c.region));
        statements.push(statement(
            "ConnectorKms",
            principal,
            &["kms:GenerateDataKey", "kms:Decrypt"],
            json!(key),
            None,
        ));
    }
    statements
}

fn statement(
    sid: &str,
    principal: Option<&Value>,
    actions: &[&str],
    resource: Value,
    condition: Option<Value>,
) -> Value {
    let mut s = json!({
        "Sid": sid,
        "Effect": "Allow",
        "Action": actions,
        "Resource": resource,
    });
    let map = s.as_object_mut().expect("object literal");
    if let Some(p) = principal {
        map.insert("Principal".into(), p.clone());
    }
    if let Some(c) = condition {
        map.insert("Condition".into(), c);
    }
    s
}

fn policy(statements: Vec<Value>) -> Value {
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// The role trust policy for `role` mode: only our principal, only with this connector's
/// ExternalId (the confused-deputy guard). SourceIdentity is set on every session, so the trust
/// policy must allow `sts:SetSourceIdentity` too.
pub fn role_trust_policy(c: &Connector, platform: &PlatformIdentity) -> Value {
    policy(vec![json!({
        "Sid": "ConnectorAssumeRole",
        "Effect": "Allow",
        "Principal": {"AWS": platform.principal_arn},
        "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
        "Condition": {"StringEquals": {"sts:ExternalId": c.external_id}}
    })])
}

/// The role trust policy for `web_identity` mode: our OIDC provider, our audience, and a subject
/// naming this connector, so no other connector's token can assume the role.
pub fn web_identity_trust_policy(c: &Connector, platform: &PlatformIdentity) -> Value {
    let account = c
        .auth
        .role_arn()
        .and_then(rules::role_arn_account)
        .unwrap_or("CUSTOMER_ACCOUNT_ID");
    let partition = rules::partition_for_region(&c.region);
    let provider = &platform.web_identity_provider;
    policy(vec![json!({
        "Sid": "ConnectorWebIdentity",
        "Effect": "Allow",
        "Principal": {"Federated": format!("arn:{partition}:iam::{account}:oidc-provider/{provider}")},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {
            format!("{provider}:aud"): platform.web_identity_audience,
            format!("{provider}:sub"): web_identity_subject(c),
        }}
    })])
}

/// The `sub` claim our identity provider puts in this connector's tokens.
pub fn web_identity_subject(c: &Connector) -> String {
    format!("connector:{}", c.connector_id)
}

pub fn instructions(c: &Connector, platform: &PlatformIdentity) -> SetupInstructions {
    let mode = c.auth.mode();
    let challenge_required = mode == AuthMode::BucketPolicy;
    let challenge_file = ChallengeFile {
        key: c.challenge_key(),
        required: challenge_required,
        instructions: format!(
            "Upload an empty object named {:?} to s3://{}/{}: it proves you control the bucket. Keep it there; runs check it.",
            c.challenge_file, c.bucket, c.prefix
        ),
    };
    let role_arn = c.auth.role_arn().unwrap_or("the role");
    let mut steps = Vec::new();
    let mut out = SetupInstructions {
        connector_id: c.connector_id.clone(),
        auth_mode: mode,
        direction: c.direction(),
        steps: Vec::new(),
        permission_policy: None,
        trust_policy: None,
        bucket_policy: None,
        external_id: None,
        challenge_file,
        event_notification: None,
    };
    match mode {
        AuthMode::Role => {
            out.permission_policy = Some(policy(s3_statements(c, None)));
            out.trust_policy = Some(role_trust_policy(c, platform));
            out.external_id = Some(c.external_id.clone());
            steps.push(format!(
                "In IAM, open {role_arn} and add permission_policy as an inline policy."
            ));
            steps.push("Replace the role's trust policy with trust_policy (or merge its statement): it admits only our principal, and only with this connector's external ID.".to_owned());
        }
        AuthMode::WebIdentity => {
            out.permission_policy = Some(policy(s3_statements(c, None)));
            out.trust_policy = Some(web_identity_trust_policy(c, platform));
            steps.push(format!(
                "In IAM, add an OpenID Connect identity provider with URL https://{} and audience {}.",
                platform.web_identity_provider, platform.web_identity_audience
            ));
            steps.push(format!("Open {role_arn}, add permission_policy as an inline policy and set trust_policy as its trust policy."));
        }
        AuthMode::AccessKey => {
            out.permission_policy = Some(policy(s3_statements(c, None)));
            steps.push("Attach permission_policy to the IAM user whose access key this connector holds, and nothing broader.".to_owned());
        }
        AuthMode::BucketPolicy => {
            let principal = json!({"AWS": platform.principal_arn});
            out.bucket_policy = Some(policy(s3_statements(c, Some(&principal))));
            steps.push(format!(
                "Add the statements of bucket_policy to the bucket policy of {}.",
                c.bucket
            ));
            steps.push("Objects we write carry the bucket-owner-full-control ACL, so your account owns them.".to_owned());
            if c.export_options()
                .is_some_and(|e| e.encryption.sse == SseMode::AwsKms)
            {
                steps.push(format!(
                    "Allow {} kms:GenerateDataKey and kms:Decrypt in the key policy of the KMS key the exports use.",
                    platform.principal_arn
                ));
            }
        }
    }
    if challenge_required {
        steps.push(out.challenge_file.instructions.clone());
    }
    if c.direction() == Direction::Ingest {
        // S3 notifies only queues in the bucket's own region.
        let queue_region = platform
            .ingest_queue_arn
            .split(':')
            .nth(3)
            .unwrap_or_default();
        if queue_region == c.region {
            out.event_notification = Some(event_notification(c, platform));
            steps.push(format!(
                "Add the event notification in event_notification to {} so new files reach us within seconds (without it, files are picked up by the periodic poll).",
                c.bucket
            ));
        } else {
            steps.push(format!(
                "No event notification is needed: S3 can notify only a queue in the bucket's region ({}), and ours is in {queue_region}; new files are picked up by the periodic poll.",
                c.region
            ));
        }
    }
    steps.push(
        "Then validate the connector: POST /connectors/{id}/validate."
            .replace("{id}", &c.connector_id),
    );
    out.steps = steps
        .into_iter()
        .enumerate()
        .map(|(i, s)| format!("{}. {s}", i + 1))
        .collect();
    out
}

/// An S3 `NotificationConfiguration` sending object-created events under the prefix to our queue.
fn event_notification(c: &Connector, platform: &PlatformIdentity) -> Value {
    let mut queue = json!({
        "Id": format!("connector-{}", c.connector_id),
        "QueueArn": platform.ingest_queue_arn,
        "Events": ["s3:ObjectCreated:*"],
    });
    if !c.prefix.is_empty() {
        queue["Filter"] = json!({"Key": {"FilterRules": [{"Name": "prefix", "Value": c.prefix}]}});
    }
    json!({"QueueConfigurations": [queue]})
}

#[cfg(test)]
mod tests;
