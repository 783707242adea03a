//! Explicit credentials (`--username` + `--password-stdin`) bound to the one
//! registry host they were given for. A password belongs to one registry:
//! a build that reads its base from one host and pushes to another must not
//! hand the push's password to the base's host (or to a cache registry or a
//! mirror elsewhere). The secret is reachable only through
//! [`ScopedCredentials::for_registry`], which answers for the bound host
//! alone, so no caller can send it anywhere else by mistake; every other
//! host gets what Docker's config, a credential helper or ECR sign-in give it.

use std::fmt;

use super::credentials::Credentials;
use crate::reference::registry::{DOCKER_HUB, DOCKER_HUB_API};

/// Credentials for exactly one registry host (`host` or `host:port`).
/// `Debug` shows the host and user name, never the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ScopedCredentials {
    host: String,
    credentials: Credentials,
}

impl ScopedCredentials {
    /// `credentials` for `host` (`127.0.0.1:5000`, `docker.io`, an ECR host).
    pub fn new(host: &str, credentials: Credentials) -> ScopedCredentials {
        ScopedCredentials {
            host: Self::canonical_host(host),
            credentials,
        }
    }

    /// The host the credentials belong to.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The user name (not secret: shown in messages and settings).
    pub fn username(&self) -> &str {
        &self.credentials.username
    }

    /// The credentials when `registry` is their host; `None` for any other
    /// host, which then authenticates as it would without them.
    pub fn for_registry(&self, registry: &str) -> Option<&Credentials> {
        (Self::canonical_host(registry) == self.host).then_some(&self.credentials)
    }

    /// The form two names of one registry share: host names are
    /// case-blind, and Docker Hub answers to several names.
    pub fn canonical_host(host: &str) -> String {
        let host = host.trim().to_ascii_lowercase();
        match host.as_str() {
            DOCKER_HUB_API | "index.docker.io" => DOCKER_HUB.to_string(),
            _ => host,
        }
    }
}

impl fmt::Debug for ScopedCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedCredentials")
            .field("host", &self.host)
            .field("username", &self.credentials.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_answer_only_for_their_own_host() {
        let scoped = ScopedCredentials::new("Reg.Example:5000", Credentials::new("bob", "pw-b"));
        assert_eq!(scoped.host(), "reg.example:5000");
        assert_eq!(
            scoped.for_registry("reg.example:5000"),
            Some(&Credentials::new("bob", "pw-b"))
        );
        assert_eq!(
            scoped
                .for_registry("REG.example:5000")
                .map(|c| c.username.as_str()),
            Some("bob")
        );
        // Another port is another registry, as is the bare host or a sub-domain.
        for other in [
            "reg.example:5001",
            "reg.example",
            "a.reg.example:5000",
            "127.0.0.1:5000",
            "",
        ] {
            assert_eq!(scoped.for_registry(other), None, "{other}");
        }
    }

    #[test]
    fn docker_hub_names_are_one_host() {
        let scoped = ScopedCredentials::new("index.docker.io", Credentials::new("u", "p"));
        assert_eq!(scoped.host(), "docker.io");
        assert!(scoped.for_registry("docker.io").is_some());
        assert!(scoped.for_registry("registry-1.docker.io").is_some());
        assert!(scoped.for_registry("public.ecr.aws").is_none());
    }

    #[test]
    fn debug_shows_the_host_and_user_never_the_secret() {
        let scoped = ScopedCredentials::new("r:1", Credentials::new("bob", "hunter2-secret"));
        let text = format!("{scoped:?}");
        assert!(text.contains("r:1") && text.contains("bob"), "{text}");
        assert!(!text.contains("hunter2-secret"), "{text}");
    }
}
