//! One AWS session: a private current-thread tokio runtime, the SDK's shared
//! config (credential chain, region, endpoint overrides) and the blocking
//! wrappers every call goes through.

use std::future::Future;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_lambda::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use super::AwsError;

/// Credentials, region and endpoints as the AWS CLI would find them, plus the
/// runtime that drives the SDK. Cheap to share: clients are made per call.
pub struct AwsSession {
    runtime: tokio::runtime::Runtime,
    config: SdkConfig,
}

impl std::fmt::Debug for AwsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsSession")
            .field("region", &self.config.region().map(|r| r.as_ref().to_string()))
            .finish_non_exhaustive()
    }
}

impl AwsSession {
    /// Loads the standard configuration; `region` overrides the chain's
    /// (`AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region`).
    /// Credentials are resolved lazily, by the first call that needs them.
    pub fn load(region: Option<&str>) -> Result<AwsSession, AwsError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(AwsError::Runtime)?;
        // rustls with ring: the SDK's default client pulls aws-lc, a long C
        // build; ring is already in the tree through ureq.
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http);
        if let Some(r) = region {
            loader = loader.region(Region::new(r.to_string()));
        }
        let config = runtime.block_on(loader.load());
        Ok(AwsSession { runtime, config })
    }

    /// The region calls use when none is given.
    pub fn default_region(&self) -> Option<String> {
        self.config.region().map(|r| r.as_ref().to_string())
    }

    /// `region`, else the session's; an error naming the ways to set one.
    pub(crate) fn region_or_default(&self, region: Option<&str>) -> Result<String, AwsError> {
        region
            .map(str::to_string)
            .or_else(|| self.default_region())
            .ok_or(AwsError::NoRegion)
    }

    pub(crate) fn config(&self) -> &SdkConfig {
        &self.config
    }

    /// Runs one SDK future to completion on the private runtime.
    pub(crate) fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }
}

/// Maps an SDK error to ours: AWS's code and message for a service error; for
/// a failure before an answer, the error chain (which names the credential
/// provider that failed, never a secret it holds).
pub(crate) fn sdk_error<E, R>(service: &'static str, operation: &'static str, err: SdkError<E, R>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match err {
        SdkError::ServiceError(ctx) => {
            let e = ctx.err();
            AwsError::Api {
                service,
                operation,
                code: e.code().unwrap_or("UnknownError").to_string(),
                message: e.message().unwrap_or("no message").to_string(),
            }
        }
        other => {
            let message = DisplayErrorContext(&other).to_string();
            let lower = message.to_lowercase();
            if lower.contains("credentials")
                && (lower.contains("no providers")
                    || lower.contains("not loaded")
                    || lower.contains("failed to load"))
            {
                AwsError::NoCredentials {
                    detail: trim_chain(&message),
                }
            } else {
                AwsError::Transport {
                    service,
                    operation,
                    message: trim_chain(&message),
                }
            }
        }
    }
}

/// The SDK's error chain can run to several hundred characters of nested
/// context; keep it to one readable line.
fn trim_chain(message: &str) -> String {
    let one_line = message.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 600 {
        let cut: String = one_line.chars().take(600).collect();
        format!("{cut}…")
    } else {
        one_line
    }
}
