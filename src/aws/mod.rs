//! The only place that talks to AWS's APIs: ECR sign-in and repositories,
//! Lambda's function code, versions and aliases. Built on the official AWS
//! SDK for Rust, so credentials come from AWS's own chain (environment,
//! profiles with `credential_process`, `role_arn` + `source_profile`, SSO,
//! web identity, container and instance metadata) and `AWS_ENDPOINT_URL` is
//! honoured exactly as the AWS CLI does.
//!
//! The SDK is async; its tokio runtime lives inside [`AwsSession`] and every
//! call here blocks, so nothing outside this module sees tokio or the SDK's
//! types. Errors carry AWS's error code and message, never a credential.

mod ecr;
mod host;
mod lambda;
mod session;
mod signin;

pub use ecr::{EcrToken, RepositoryOptions};
pub use host::{EcrHost, parse_ecr_host};
pub use lambda::{AliasChange, FunctionInfo, UpdateRequest};
pub use session::AwsSession;
pub use signin::{ACCEPT_EXPIRED_ENV, EcrSignIn};

#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error(
        "no AWS region: pass --region, set AWS_REGION, or set `region` in ~/.aws/config for the profile in use"
    )]
    NoRegion,
    #[error(
        "no AWS credentials: {detail}. Set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE (~/.aws/credentials, credential_process, role_arn, SSO), or AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN"
    )]
    NoCredentials { detail: String },
    /// AWS answered with an error (code and message as AWS wrote them).
    #[error("AWS {service} {operation} failed: {code}: {message}")]
    Api {
        service: &'static str,
        operation: &'static str,
        code: String,
        message: String,
    },
    /// The request did not get an answer (network, DNS, timeout).
    #[error("AWS {service} {operation} could not be sent: {message}")]
    Transport {
        service: &'static str,
        operation: &'static str,
        message: String,
    },
    #[error("AWS {service} {operation} answered without {what}")]
    Incomplete {
        service: &'static str,
        operation: &'static str,
        what: &'static str,
    },
    #[error("cannot start the AWS client: {0}")]
    Runtime(std::io::Error),
}

impl AwsError {
    /// AWS's error code (`ResourceNotFoundException`, ...), when AWS answered.
    pub fn code(&self) -> Option<&str> {
        match self {
            AwsError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}
