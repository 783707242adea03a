//! One AWS session: a private current-thread tokio runtime, the SDK's shared
//! config (credential chain, region, endpoint overrides) and the blocking
//! wrappers every call goes through.

use std::future::Future;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_lambda::config::http::HttpResponse;
use aws_sdk_lambda::error::{ProvideErrorMetadata, SdkError};

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
    pub fn region_or_default(&self, region: Option<&str>) -> Result<String, AwsError> {
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
pub(crate) fn sdk_error<E>(
    service: &'static str,
    operation: &'static str,
    err: SdkError<E, HttpResponse>,
) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match err {
        SdkError::ServiceError(ctx) => {
            let e = ctx.err();
            let raw = ctx.raw();
            let status = raw.status().as_u16();
            // An answer the service's protocol cannot parse (a proxy's, or
            // the query-protocol XML some front ends send): its `<Code>`.
            let body = raw
                .body()
                .bytes()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            let code = e
                .code()
                .map(str::to_string)
                .or_else(|| xml_field(&body, "Code"))
                .unwrap_or_else(|| match status {
                    401 | 403 => "AccessDenied".to_string(),
                    s => format!("HTTP{s}"),
                });
            let message = e
                .message()
                .map(str::to_string)
                .or_else(|| xml_field(&body, "Message"))
                .unwrap_or_else(|| format!("HTTP status {status}"));
            AwsError::Api {
                service,
                operation,
                code,
                message,
            }
        }
        other => {
            let message = error_chain(&other);
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

/// Each error's own words down the `source()` chain, joined with `: `
/// (the SDK's `DisplayErrorContext` appends a Debug dump of raw responses).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![err.to_string()];
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// `<name>value</name>` from an XML error body.
fn xml_field(body: &str, name: &str) -> Option<String> {
    let start = body.find(&format!("<{name}>"))? + name.len() + 2;
    let end = body[start..].find(&format!("</{name}>"))? + start;
    let value = body[start..end].trim();
    (!value.is_empty()).then(|| value.to_string())
}

/// The SDK's error chain can run to several hundred characters of nested
/// context; keep it to one readable line.
fn trim_chain(message: &str) -> String {
    let mut one_line = message.split_whitespace().collect::<Vec<_>>().join(" ");
    // A failed `credential_process` has its stderr quoted: it may hold a secret.
    if let Some(at) = one_line.find("Stderr:") {
        one_line.truncate(at);
        one_line.push_str("(its stderr is not shown: it may hold a secret)");
    }
    if one_line.chars().count() > 600 {
        let cut: String = one_line.chars().take(600).collect();
        format!("{cut}…")
    } else {
        one_line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_process_stderr_is_not_repeated() {
        let text = trim_chain(
            "failed to load credentials: external process exited with code 1. Stderr: token=hunter2\n (ProviderError)",
        );
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("exited with code 1"), "{text}");
    }
}
