//! One module per live system. Each reads the part of live state a plan file
//! names (`observe`) and performs single, repeat-safe writes (`apply`).
//!
//! Providers fill in the types of [`crate::state`] and take plain values; they
//! know nothing of plans or ops.

pub mod aws;
pub mod ec2;
pub mod local_server;
pub mod os_user;
pub mod poll;
pub mod postgres;
pub mod rds;
pub mod route53;
pub mod s3;
pub mod storage;
pub mod tls;

use crate::settings::Settings;
use std::fmt;

/// The handles every reader and writer of live systems needs: the AWS clients
/// (one per service and region, shared by a fleet) and the libpq environment.
pub struct Systems {
    pub aws: aws::AwsClients,
    pub pg: crate::settings::PgEnv,
    /// Clusters of a fleet worked on at once ([`Settings::parallelism`]).
    pub parallelism: usize,
}

impl Systems {
    pub fn new(settings: &Settings) -> Self {
        Systems {
            aws: aws::AwsClients::new(settings.aws.clone()),
            pg: settings.pg.clone(),
            parallelism: settings.parallelism,
        }
    }
}

/// Runs the futures at most `limit` at a time (a fleet's clusters, buckets,
/// parameter groups); the results keep their order.
pub async fn bounded<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
    limit: usize,
) -> Vec<F::Output> {
    use futures_util::stream::StreamExt;
    futures_util::stream::iter(futures)
        .buffered(limit.max(1))
        .collect()
        .await
}

/// A failure talking to a live system, naming the system and, where the user can
/// act on it, a hint.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ProviderError {
    /// What was being talked to, e.g. `postgres.primary (db.internal:5432)`.
    pub system: String,
    pub message: String,
    pub hint: Option<String>,
    /// The server could not be reached at all (refused, timed out, no route):
    /// it may be down. An answer that refuses (authentication, TLS, a missing
    /// database) is not this: the server is there and the configuration is wrong.
    pub unreachable: bool,
    /// The system's own code for the failure, to decide on it by code rather
    /// than by text: the AWS error code (`NoSuchBucket`, `SlowDown`) or the
    /// PostgreSQL SQLSTATE (`42704`).
    pub code: Option<String>,
}

impl ProviderError {
    pub fn new(system: impl Into<String>, message: impl Into<String>) -> Self {
        ProviderError {
            system: system.into(),
            message: message.into(),
            hint: None,
            unreachable: false,
            code: None,
        }
    }
    /// Records the system's code for the failure.
    pub fn with_code(mut self, code: Option<&str>) -> Self {
        self.code = code.map(str::to_string);
        self
    }
    /// Whether the system answered with this code.
    pub fn has_code(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
    /// Marks the failure as the server not being reachable at all.
    pub fn unreachable(mut self) -> Self {
        self.unreachable = true;
        self
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.system, self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// The error and its causes on one line, without the SDK's debug dump of the response.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// AWS error codes that mean the credentials are wrong or expired: the user
/// fixes them in their environment, not in the plan file.
const CREDENTIAL_CODES: &[&str] = &[
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "AuthFailure",
];

const CREDENTIALS_HINT: &str = "check the AWS credentials: AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, SSO login, ...";

/// Whether the request never left because no credentials could be loaded
/// (the SDK's credentials provider failed).
fn no_credentials(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(err);
    while let Some(s) = source {
        if s.downcast_ref::<aws_credential_types::provider::error::CredentialsError>()
            .is_some()
        {
            return true;
        }
        source = s.source();
    }
    false
}

/// An AWS SDK error as a [`ProviderError`]: the service's code and message when
/// it sent one, the error chain otherwise, and a hint where one fits.
/// Every AWS SDK crate re-exports the same `SdkError` and `ProvideErrorMetadata`.
pub fn aws_error<E>(what: &str, system: &str, err: &aws_sdk_s3::error::SdkError<E>) -> ProviderError
where
    E: std::error::Error + aws_sdk_s3::error::ProvideErrorMetadata + 'static,
{
    use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
    let detail = match (err.code(), err.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_string(),
        _ => error_chain(err),
    };
    let e = ProviderError::new(system, format!("{what}: {detail}")).with_code(err.code());
    let throttled = err.code().is_some_and(|c| {
        [
            "SlowDown",
            "Throttling",
            "ThrottlingException",
            "RequestLimitExceeded",
            "TooManyRequestsException",
            "PriorRequestNotComplete",
        ]
        .contains(&c)
    });
    if throttled {
        return e.hint("AWS throttled the request and pgdr retried it with backoff until its attempts ran out (AWS_MAX_ATTEMPTS, default 5); run again later, or spread the work out");
    }
    if err.code().is_some_and(|c| CREDENTIAL_CODES.contains(&c)) || no_credentials(err) {
        return e.hint(CREDENTIALS_HINT);
    }
    match err {
        // No answer at all (refused, reset, timed out): every retry failed the same way.
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => e.unreachable().hint(
            "AWS did not answer (pgdr retried with backoff); check network access to AWS, or AWS_ENDPOINT_URL",
        ),
        _ => e,
    }
}
