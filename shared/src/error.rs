//! Errors that keep what AWS said: service, operation, error code, HTTP status, retryability.

use std::error::Error as StdError;
use std::fmt;

#[cfg(feature = "sdk")]
use aws_smithy_runtime_api::client::result::SdkError;
#[cfg(feature = "sdk")]
use aws_smithy_types::error::display::DisplayErrorContext;
#[cfg(feature = "sdk")]
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// One failed AWS call, with the code the caller must act on (never flattened to a string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsCallError {
    pub service: &'static str,
    pub operation: &'static str,
    /// AWS error code (`AccessDenied`, `NoSuchBucket`, …). Some emulators answer denials with a
    /// body the SDK cannot parse, so `http_status` is kept as well.
    pub code: Option<String>,
    pub message: String,
    pub http_status: Option<u16>,
    pub retryable: bool,
}

/// Codes we retry beyond the SDK's own lists (`aws_runtime::retries::classifiers`'
/// `THROTTLING_ERRORS` and `TRANSIENT_ERRORS`, which already hold DynamoDB's
/// `TransactionInProgressException`).
#[cfg(feature = "sdk")]
const OUR_RETRYABLE_CODES: &[&str] = &[
    // A plain write that met a claims transaction on the same item: safe to retry.
    "TransactionConflictException",
    // Listed by the SDK today; kept so the claims transactions stay retryable if it moves.
    "TransactionInProgressException",
    // Server faults usually come with a 5xx status, but S3 can send them inside an HTTP 200
    // (CopyObject, CompleteMultipartUpload), where only the code tells.
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
];

/// Codes of the SDK's throttling list that mean a quota for the services we call (Secrets
/// Manager's number of secrets, say): waiting does not help, so they are not retried.
#[cfg(feature = "sdk")]
const QUOTA_CODES: &[&str] = &["LimitExceededException"];

/// Throttling or transient by the SDK's lists, or one of [`OUR_RETRYABLE_CODES`]; never a quota.
#[cfg(feature = "sdk")]
fn is_retryable_code(code: &str) -> bool {
    use aws_runtime::retries::classifiers::{THROTTLING_ERRORS, TRANSIENT_ERRORS};
    !QUOTA_CODES.contains(&code)
        && [THROTTLING_ERRORS, TRANSIENT_ERRORS, OUR_RETRYABLE_CODES]
            .iter()
            .any(|codes| codes.contains(&code))
}

impl AwsCallError {
    #[cfg(feature = "sdk")]
    pub fn from_sdk<E, R>(
        service: &'static str,
        operation: &'static str,
        err: &SdkError<E, R>,
    ) -> Self
    where
        E: ProvideErrorMetadata + StdError + 'static,
        R: HttpStatus + std::fmt::Debug + 'static,
    {
        let (code, message, http_status) = match err {
            SdkError::ServiceError(service_err) => (
                service_err.err().code().map(str::to_owned),
                service_err
                    .err()
                    .message()
                    .map(str::to_owned)
                    .unwrap_or_else(|| service_err.err().to_string()),
                Some(service_err.raw().status_code()),
            ),
            other => (
                None,
                transport_message(other),
                other.raw_response().map(HttpStatus::status_code),
            ),
        };
        let transport = matches!(
            err,
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
        );
        let retryable = transport
            || http_status.is_some_and(|s| s >= 500 || s == 429)
            || code.as_deref().is_some_and(is_retryable_code);
        Self {
            service,
            operation,
            code,
            message,
            http_status,
            retryable,
        }
    }

    /// The code, or a code derived from the HTTP status when the body could not be parsed.
    pub fn effective_code(&self) -> Option<&str> {
        self.code.as_deref().or(match self.http_status {
            Some(403) => Some("AccessDenied"),
            Some(404) => Some("NotFound"),
            Some(301) => Some("PermanentRedirect"),
            _ => None,
        })
    }

    pub fn is_access_denied(&self) -> bool {
        matches!(
            self.code.as_deref(),
            Some("AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation" | "Forbidden")
        ) || (self.code.is_none() && self.http_status == Some(403))
    }

    pub fn is_not_found(&self) -> bool {
        matches!(
            self.code.as_deref(),
            Some("NoSuchKey" | "NoSuchBucket" | "NotFound" | "ResourceNotFoundException")
        ) || (self.code.is_none() && self.http_status == Some(404))
    }
}

impl fmt::Display for AwsCallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} failed ({}",
            self.service,
            self.operation,
            self.effective_code().unwrap_or("no error code")
        )?;
        if let Some(status) = self.http_status {
            write!(f, ", HTTP {status}")?;
        }
        write!(f, "): {}", self.message)
    }
}

impl StdError for AwsCallError {}

/// What went wrong on a call that got no service error: the SDK's kind of failure ("dispatch
/// failure", "response error", …), then its cause through the SDK's `DisplayErrorContext`
/// (the cause's chain and detail). The cause, not the `SdkError` itself: the latter's detail
/// would print the raw response, body included, which may hold a secret or a customer's data.
#[cfg(feature = "sdk")]
fn transport_message<E, R>(err: &SdkError<E, R>) -> String
where
    E: StdError + 'static,
    R: fmt::Debug,
{
    match err.source() {
        Some(cause) => format!("{err}: {}", DisplayErrorContext(cause)),
        None => err.to_string(),
    }
}

/// The raw HTTP response type the SDK was built with: its status and body.
#[cfg(feature = "sdk")]
pub trait HttpStatus {
    fn status_code(&self) -> u16;
    fn body_text(&self) -> String;
}

#[cfg(feature = "sdk")]
impl HttpStatus for aws_smithy_runtime_api::http::Response {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }

    fn body_text(&self) -> String {
        self.body()
            .bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default()
    }
}

/// The body of a response sent with HTTP 200 that the SDK could not parse (seen with emulators):
/// the request was authorized, and the raw XML still answers simple questions.
#[cfg(feature = "sdk")]
pub fn unparsed_ok_body<E, R: HttpStatus>(err: &SdkError<E, R>) -> Option<String> {
    let raw = err.raw_response()?;
    (raw.status_code() == 200).then(|| raw.body_text())
}

/// Errors of the connector store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("an item with this key already exists")]
    AlreadyExists,
    /// The item changed (or vanished) since it was read.
    #[error("the item's version is not {expected}")]
    VersionConflict { expected: u64 },
    /// A transaction's condition failed: another write got there first; re-read and retry.
    #[error("a concurrent change got there first")]
    Contended,
    #[error("stored item cannot be read: {0}")]
    Corrupt(String),
    /// Refused before the write: DynamoDB would reject the item for its size.
    #[error("{what} would be a {bytes}-byte item; DynamoDB stores at most {limit} bytes per item")]
    TooLarge {
        what: String,
        bytes: usize,
        limit: usize,
    },
    #[error(transparent)]
    Aws(#[from] AwsCallError),
}

/// Errors of the secret store.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret not found")]
    NotFound,
    #[error("stored secret cannot be read")]
    Corrupt,
    #[error(transparent)]
    Aws(#[from] AwsCallError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(code: Option<&str>, status: Option<u16>) -> AwsCallError {
        AwsCallError {
            service: "s3",
            operation: "PutObject",
            code: code.map(str::to_owned),
            message: "m".into(),
            http_status: status,
            retryable: false,
        }
    }

    #[test]
    fn classifies_denials_and_missing_by_code_or_status() {
        let cases = [
            (Some("AccessDenied"), Some(403), true, false, "AccessDenied"),
            (None, Some(403), true, false, "AccessDenied"),
            (Some("NoSuchBucket"), Some(404), false, true, "NoSuchBucket"),
            (None, Some(404), false, true, "NotFound"),
            (Some("SlowDown"), Some(503), false, false, "SlowDown"),
        ];
        for (code, status, denied, missing, effective) in cases {
            let e = err(code, status);
            assert_eq!(e.is_access_denied(), denied, "{code:?} {status:?}");
            assert_eq!(e.is_not_found(), missing, "{code:?} {status:?}");
            assert_eq!(e.effective_code(), Some(effective));
        }
        assert_eq!(
            err(Some("AccessDenied"), Some(403)).to_string(),
            "s3 PutObject failed (AccessDenied, HTTP 403): m"
        );
    }

    #[cfg(feature = "sdk")]
    #[test]
    fn retryable_codes_are_the_sdks_and_ours() {
        let cases = [
            ("ThrottlingException", true),
            ("ProvisionedThroughputExceededException", true),
            ("SlowDown", true),
            ("RequestTimeout", true),
            ("RequestTimeoutException", true),
            ("TransactionInProgressException", true),
            ("TransactionConflictException", true),
            ("InternalError", true),
            ("ServiceUnavailable", true),
            ("LimitExceededException", false),
            ("AccessDenied", false),
            ("ConditionalCheckFailedException", false),
            ("NoSuchBucket", false),
        ];
        for (code, retryable) in cases {
            assert_eq!(is_retryable_code(code), retryable, "{code}");
        }
    }

    #[cfg(feature = "sdk")]
    #[test]
    fn transport_failures_keep_their_cause_and_are_retryable() {
        use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
        use aws_smithy_types::error::metadata::ErrorMetadata;

        #[derive(Debug)]
        struct NoService(ErrorMetadata);
        impl fmt::Display for NoService {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("no service error")
            }
        }
        impl StdError for NoService {}
        impl ProvideErrorMetadata for NoService {
            fn meta(&self) -> &ErrorMetadata {
                &self.0
            }
        }

        let sdk: SdkError<NoService, HttpResponse> = SdkError::timeout_error("no answer in 5 s");
        let e = AwsCallError::from_sdk("s3", "GetObject", &sdk);
        assert!(e.retryable);
        assert_eq!(e.code, None);
        assert!(
            e.message
                .starts_with("request has timed out: no answer in 5 s"),
            "{}",
            e.message
        );
    }
}
