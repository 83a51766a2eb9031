//! An in-memory STS behind [`SecurityTokenService`]: roles with trust policies (who may assume
//! them, which external ID they demand), IAM users' access keys, sessions that expire, a log of
//! every AssumeRole, and injected refusals.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;

use crate::error::AwsCallError;
use crate::ports::{AssumeRole, SecurityTokenService};

/// A role's trust policy, as far as STS decides on it.
#[derive(Debug, Clone, Default)]
pub struct FakeRole {
    /// Principal ARNs allowed to call AssumeRole (a session of a role counts as the role).
    pub trusted: Vec<String>,
    /// `Some`: the `sts:ExternalId` condition; `None`: any external ID, or none, is accepted.
    pub external_id: Option<String>,
    /// The web identity token AssumeRoleWithWebIdentity must present.
    pub web_identity_token: Option<String>,
}

struct Refusal {
    matches: Box<dyn Fn(&AssumeRole) -> bool + Send>,
    error: AwsCallError,
}

#[derive(Default)]
struct State {
    /// The function's own identity.
    own_arn: String,
    roles: BTreeMap<String, FakeRole>,
    /// Access key id → the ARN it authenticates as.
    identities: BTreeMap<String, String>,
    /// Refusals still to answer, each for the first request it matches.
    refusals: Vec<Refusal>,
    requests: Vec<AssumeRole>,
    /// How long issued sessions last; shorter than asked lets a test see renewal.
    session_lifetime: Option<Duration>,
    next: u64,
}

/// Cloning shares the state.
#[derive(Clone)]
pub struct MemorySts {
    state: Arc<Mutex<State>>,
}

pub const OWN_ACCESS_KEY: &str = "AKIAFUNCTION0000";

impl MemorySts {
    /// An STS where the function runs as `own_arn`.
    pub fn new(own_arn: &str) -> Self {
        let mut state = State {
            own_arn: own_arn.to_owned(),
            ..State::default()
        };
        state
            .identities
            .insert(OWN_ACCESS_KEY.to_owned(), own_arn.to_owned());
        Self {
            state: Arc::new(Mutex::new(state)),
        }
    }

    pub fn with_role(self, arn: &str, role: FakeRole) -> Self {
        self.lock().roles.insert(arn.to_owned(), role);
        self
    }

    /// An IAM user's access key, for `access_key` connectors.
    pub fn with_user_key(self, access_key_id: &str, user_arn: &str) -> Self {
        self.lock()
            .identities
            .insert(access_key_id.to_owned(), user_arn.to_owned());
        self
    }

    /// Sessions issued from now on last `lifetime`, whatever was asked.
    pub fn with_session_lifetime(self, lifetime: Duration) -> Self {
        self.lock().session_lifetime = Some(lifetime);
        self
    }

    /// The next AssumeRole of `role_arn` answers `error`.
    pub fn refuse_next(&self, role_arn: &str, error: AwsCallError) {
        let role_arn = role_arn.to_owned();
        self.refuse_next_where(move |r| r.role_arn == role_arn, error);
    }

    /// The next AssumeRole that `matches` answers `error`.
    pub fn refuse_next_where(
        &self,
        matches: impl Fn(&AssumeRole) -> bool + Send + 'static,
        error: AwsCallError,
    ) {
        self.lock().refusals.push(Refusal {
            matches: Box::new(matches),
            error,
        });
    }

    /// Every AssumeRole(-WithWebIdentity) request so far, in order.
    pub fn requests(&self) -> Vec<AssumeRole> {
        self.lock().requests.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("not poisoned")
    }

    fn issue(state: &mut State, arn: String, seconds: i32, source: &'static str) -> Credentials {
        state.next += 1;
        let key = format!("ASIAFAKE{:08}", state.next);
        let lifetime = state
            .session_lifetime
            .unwrap_or(Duration::from_secs(u64::try_from(seconds).unwrap_or(0)));
        state.identities.insert(key.clone(), arn);
        Credentials::new(
            key,
            "fake-secret",
            Some("fake-session-token".into()),
            Some(SystemTime::now() + lifetime),
            source,
        )
    }

    fn who(state: &State, caller: Option<&Credentials>) -> Result<String, AwsCallError> {
        match caller {
            None => Ok(state.own_arn.clone()),
            Some(c) => state
                .identities
                .get(c.access_key_id())
                .cloned()
                .ok_or_else(|| {
                    sts_error(
                        "GetCallerIdentity",
                        "InvalidClientTokenId",
                        403,
                        "The security token included in the request is invalid.",
                    )
                }),
        }
    }
}

pub fn sts_error(operation: &'static str, code: &str, status: u16, message: &str) -> AwsCallError {
    AwsCallError {
        service: "sts",
        operation,
        code: Some(code.to_owned()),
        message: message.to_owned(),
        http_status: Some(status),
        retryable: false,
    }
}

fn denied(operation: &'static str, caller: &str, role: &str) -> AwsCallError {
    sts_error(
        operation,
        "AccessDenied",
        403,
        &format!(
            "User: {caller} is not authorized to perform: sts:{operation} on resource: {role}"
        ),
    )
}

/// `arn:aws:sts::A:assumed-role/NAME/S` acts as `arn:aws:iam::A:role/NAME`.
fn acting_principal(arn: &str) -> String {
    match arn.split_once(":assumed-role/") {
        Some((prefix, rest)) => {
            let name = rest.split('/').next().unwrap_or(rest);
            format!("{}:role/{name}", prefix.replacen(":sts:", ":iam:", 1))
        }
        None => arn.to_owned(),
    }
}

fn session_arn(role_arn: &str, session_name: &str) -> String {
    let (prefix, name) = role_arn.split_once(":role/").unwrap_or((role_arn, ""));
    let name = name.rsplit('/').next().unwrap_or(name);
    format!(
        "{}:assumed-role/{name}/{session_name}",
        prefix.replacen(":iam:", ":sts:", 1)
    )
}

impl SecurityTokenService for MemorySts {
    async fn assume_role(
        &self,
        caller: Option<&Credentials>,
        request: &AssumeRole,
    ) -> Result<Credentials, AwsCallError> {
        let mut state = self.lock();
        state.requests.push(request.clone());
        let caller_arn = Self::who(&state, caller)?;
        if let Some(at) = state.refusals.iter().position(|r| (r.matches)(request)) {
            return Err(state.refusals.remove(at).error);
        }
        let acting = acting_principal(&caller_arn);
        let allowed = state.roles.get(&request.role_arn).is_some_and(|role| {
            role.trusted.contains(&acting)
                && role
                    .external_id
                    .as_ref()
                    .is_none_or(|id| request.external_id.as_ref() == Some(id))
        });
        if !allowed {
            return Err(denied("AssumeRole", &caller_arn, &request.role_arn));
        }
        let arn = session_arn(&request.role_arn, &request.session_name);
        Ok(Self::issue(
            &mut state,
            arn,
            request.duration_seconds,
            "fake-assume-role",
        ))
    }

    async fn assume_role_with_web_identity(
        &self,
        request: &AssumeRole,
        token: &str,
    ) -> Result<Credentials, AwsCallError> {
        let mut state = self.lock();
        state.requests.push(request.clone());
        let allowed = state
            .roles
            .get(&request.role_arn)
            .and_then(|r| r.web_identity_token.as_deref())
            == Some(token);
        if !allowed {
            return Err(denied(
                "AssumeRoleWithWebIdentity",
                "a web identity",
                &request.role_arn,
            ));
        }
        let arn = session_arn(&request.role_arn, &request.session_name);
        Ok(Self::issue(
            &mut state,
            arn,
            request.duration_seconds,
            "fake-web-identity",
        ))
    }

    async fn caller_arn(&self, caller: Option<&Credentials>) -> Result<String, AwsCallError> {
        Self::who(&self.lock(), caller)
    }

    async fn own_credentials(&self) -> Result<Credentials, AwsCallError> {
        Ok(Credentials::new(
            OWN_ACCESS_KEY,
            "fake-secret",
            None,
            None,
            "fake-own",
        ))
    }
}
