//! The distribution protocol (OCI distribution spec / Docker registry API v2)
//! on a small synchronous client (references are parsed in `crate::reference`): auth (docker config, helpers,
//! bearer tokens, basic), retries, verified blob downloads and one-request
//! uploads. It moves bytes; what to push is decided by the sink.
//!
//! Built on `ureq` (sync, rustls) rather than an async client: no tokio, far
//! fewer crates, and a few hundred lines of protocol we control (one-request
//! uploads for ECR, exact manifest bytes, mount fallback).

mod auth;
mod blobs;
mod client;
pub mod credentials;
mod diagnostics;
pub mod known_blobs;
mod login;
mod manifests;
pub mod mirror;
pub mod referrers;
mod retry;
mod scoped;

use std::path::PathBuf;
use std::time::Duration;

pub use crate::reference::{Reference, ReferenceError};
pub use blobs::{BlobAction, BlobBytes, fetch_blob_to_cache};
pub use client::Client;
pub use credentials::{CredentialStore, Credentials};
pub use diagnostics::{AuthRefusal, Diagnostic, Diagnostics};
pub use login::{LoginOptions, LoginOutcome, login, login_host};
pub use manifests::{FetchedManifest, MANIFEST_ACCEPT, resolve_digest};
pub use mirror::RegistryMirror;
pub use retry::RetryPolicy;
pub use scoped::ScopedCredentials;
/// HTTP status codes, as registry errors carry them.
pub use ureq::http::StatusCode;

use crate::image::Digest;

/// How to talk to registries; shared by pulls, pushes, login and pin.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Registries (`host` or `host:port`) reached over plain HTTP. Loopback
    /// hosts (127.0.0.0/8, localhost, [::1]) always are.
    pub insecure: Vec<String>,
    pub retry: RetryPolicy,
    /// Explicit credentials (`--username` + `--password-stdin`), used instead
    /// of Docker's config for the one host they are scoped to (the command's
    /// target); every other registry authenticates as without them.
    pub credentials: Option<ScopedCredentials>,
    /// Where `config.json` lives; `None` means `$DOCKER_CONFIG` or `~/.docker`.
    pub docker_config_dir: Option<PathBuf>,
    /// The search path for `docker-credential-*` helpers; `None` means `$PATH`.
    pub helper_path: Option<std::ffi::OsString>,
    /// Connect and idle timeout of one request: no answer, or no byte of a
    /// body, for this long cuts the attempt. Also the window over which a
    /// body must keep `min_rate`.
    pub timeout: Duration,
    /// The bound on one request with all its retries (`--registry-timeout`):
    /// no new attempt starts once this has passed. A transfer that keeps
    /// `min_rate` is never cut by it, however long it takes.
    pub deadline: Duration,
    /// Bytes per second a body must average over each `timeout` window;
    /// a trickle below it is cut and retried like a broken connection.
    pub min_rate: u64,
    /// Layers downloaded at once.
    pub parallel_downloads: usize,
    /// `--registry-mirror` rules: where base images of a registry are fetched from.
    pub mirrors: Vec<RegistryMirror>,
    /// Asked when neither `credentials` nor Docker's config has anything for
    /// a registry: the run's ECR sign-in (`aws::EcrSignIn`, set by the CLI).
    pub fallback: Option<std::sync::Arc<dyn credentials::FallbackCredentials>>,
    /// `-v`: an error from an unreachable or failing registry names the
    /// request that failed (method and URL, without the query string, which
    /// may carry upload state).
    pub show_requests: bool,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            insecure: Vec::new(),
            retry: RetryPolicy::default(),
            credentials: None,
            docker_config_dir: None,
            helper_path: None,
            timeout: DEFAULT_REGISTRY_TIMEOUT / 4,
            deadline: DEFAULT_REGISTRY_TIMEOUT,
            min_rate: 10 * 1024,
            parallel_downloads: 4,
            mirrors: Vec::new(),
            fallback: None,
            show_requests: false,
        }
    }
}

/// `--registry-timeout`'s default: a stalled or trickling registry fails
/// within about this long (four attempts of a quarter of it each).
pub const DEFAULT_REGISTRY_TIMEOUT: Duration = Duration::from_secs(120);

impl RegistryOptions {
    /// Sets the bound from `--registry-timeout SECONDS`: the idle timeout
    /// and rate window are a quarter of it, so a stall is tried about four times.
    pub fn with_registry_timeout(mut self, total: Duration) -> Self {
        self.deadline = total;
        self.timeout = (total / 4).max(Duration::from_secs(1));
        self
    }
}

/// Whether `registry` (host[:port]) is spoken to over plain HTTP.
pub fn is_plain_http(registry: &str, insecure: &[String]) -> bool {
    if insecure.iter().any(|h| h == registry) {
        return true;
    }
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        registry.rsplit_once(':').map(|(h, _)| h).unwrap_or(registry)
    };
    if insecure.iter().any(|h| h == host) {
        return true;
    }
    host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("cannot resolve registry host {registry}: check the name (and your network/DNS)")]
    HostNotFound { registry: String },
    #[error(
        "registry {registry} did not answer for {what} after {attempts} attempt(s): {message}; if it is slow rather than down, raise --registry-timeout SECONDS (LAMBDA_IMG_REGISTRY_TIMEOUT)"
    )]
    Unreachable {
        registry: String,
        what: String,
        attempts: u32,
        message: String,
    },
    #[error(
        "registry {registry} answered {} for {what} after {attempts} attempt(s){diagnostics}",
        status.as_u16()
    )]
    Status {
        registry: String,
        what: String,
        status: StatusCode,
        attempts: u32,
        diagnostics: Diagnostics,
    },
    #[error(
        "registry {registry} refused access to {what}{reason}: check the credentials (`lambda-img login {registry}`, Docker's config.json) and that the repository exists"
    )]
    Unauthorized {
        registry: String,
        what: String,
        reason: AuthRefusal,
    },
    #[error(
        "registry {registry} redirected {what} to another host, {other}, which asked for credentials (401): credentials for {registry} are sent only to {registry} and the token server it names, never to another host; if {other} is part of that registry, push to it by its own name, or fix the registry's Location/redirect configuration"
    )]
    ForeignAuth {
        registry: String,
        other: String,
        what: String,
    },
    #[error("registry {registry} has no {what}{diagnostics}")]
    NotFound {
        registry: String,
        what: String,
        diagnostics: Diagnostics,
    },
    #[error(
        "{what} from registry {registry} has digest {actual}, but {expected} was expected: the content was refused and not cached"
    )]
    DigestMismatch {
        registry: String,
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error(
        "{what} from registry {registry} is larger than the {expected} bytes its descriptor says: refused"
    )]
    TooLarge {
        registry: String,
        what: String,
        expected: u64,
    },
    #[error(
        "{what} from registry {registry} is larger than {limit} bytes, the limit for a manifest or index: refused rather than read into memory"
    )]
    DocumentTooLarge {
        registry: String,
        what: String,
        limit: u64,
    },
    #[error("registry {registry}: {message}")]
    Protocol { registry: String, message: String },
    #[error("credentials: {message}")]
    Credentials { message: String },
    #[error("credential helper {helper}: {message}")]
    Helper { helper: String, message: String },
    #[error("cannot use {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

impl RegistryError {
    /// The HTTP status of an answer other than a refusal of access or a
    /// missing object (those have variants of their own).
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            RegistryError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// What the registry's error document said, when it answered with one.
    pub fn diagnostics(&self) -> Option<&Diagnostics> {
        match self {
            RegistryError::Status { diagnostics, .. } | RegistryError::NotFound { diagnostics, .. } => {
                Some(diagnostics)
            }
            RegistryError::Unauthorized {
                reason: AuthRefusal::Refused(diagnostics),
                ..
            } => Some(diagnostics),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_debug_shows_no_secret() {
        let options = RegistryOptions {
            credentials: Some(ScopedCredentials::new(
                "reg:5000",
                Credentials::new("bob", "hunter2-pw"),
            )),
            ..RegistryOptions::default()
        };
        let text = format!("{options:?}");
        assert!(text.contains("reg:5000") && text.contains("bob"), "{text}");
        assert!(!text.contains("hunter2-pw"), "{text}");
    }

    #[test]
    fn plain_http_only_for_loopback_and_named_hosts() {
        assert!(is_plain_http("127.0.0.1:5000", &[]));
        assert!(is_plain_http("127.3.2.1", &[]));
        assert!(is_plain_http("localhost:80", &[]));
        assert!(is_plain_http("[::1]:5000", &[]));
        assert!(!is_plain_http("10.0.0.1:5000", &[]));
        assert!(!is_plain_http("public.ecr.aws", &[]));
        assert!(is_plain_http("reg.lan:5000", &["reg.lan".into()]));
        assert!(is_plain_http("reg.lan:5000", &["reg.lan:5000".into()]));
    }
}
