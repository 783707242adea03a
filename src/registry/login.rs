//! `lambda-img login`: verify credentials against the registry, then store
//! them where docker would (`config.json` `auths`).

use std::path::PathBuf;

use super::credentials::{self, CredentialStore, Credentials, docker_config_dir};
use super::{Client, Reference, RegistryError, RegistryOptions};

/// What `login` needs. `Debug` never shows the password.
#[derive(Debug, Clone)]
pub struct LoginOptions {
    /// `host[:port]`, `docker.io`, or a reference whose registry is meant.
    pub registry: String,
    pub credentials: Credentials,
    /// Where `config.json` is written; `None` means `$DOCKER_CONFIG` or `~/.docker`.
    pub docker_config_dir: Option<PathBuf>,
    pub registry_options: RegistryOptions,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginOutcome {
    /// The registry as stored (`docker.io`, `host:port`).
    pub registry: String,
    /// Where the credentials now are: `config.json` `auths`, or the credential
    /// helper that config.json names for this registry (as docker does).
    pub stored_in: CredentialStore,
}

/// Verifies the credentials with `GET /v2/` (through the registry's bearer or
/// basic challenge), then stores them. Nothing is stored when they are refused.
pub fn login(options: &LoginOptions) -> Result<LoginOutcome, RegistryError> {
    let registry = normalise_registry(&options.registry)?;
    let client = Client::with_credentials(
        &registry,
        &options.registry_options,
        Some(options.credentials.clone()),
    );
    client.ping()?;
    let dir = options
        .docker_config_dir
        .clone()
        .or_else(docker_config_dir)
        .ok_or_else(|| RegistryError::Credentials {
            message: "neither DOCKER_CONFIG nor HOME is set: nowhere to store the credentials".into(),
        })?;
    let stored_in = credentials::store_like_docker(
        &registry,
        &options.credentials,
        &dir,
        options.registry_options.helper_path.as_deref(),
    )?;
    Ok(LoginOutcome { registry, stored_in })
}

/// The registry host `login` stores credentials for, as it names it
/// (`https://index.docker.io/v1/` → `docker.io`; `host:port/x` → `host:port`).
pub fn login_host(input: &str) -> Result<String, RegistryError> {
    normalise_registry(input)
}

/// `https://index.docker.io/v1/` → `docker.io`; `host:port/x` → `host:port`.
fn normalise_registry(input: &str) -> Result<String, RegistryError> {
    let s = input
        .strip_prefix("https://")
        .or_else(|| input.strip_prefix("http://"))
        .unwrap_or(input);
    let host = s.split('/').next().unwrap_or(s);
    let host = match host {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => return Ok("docker.io".into()),
        h => h,
    };
    // Reuse the reference rules to validate the host.
    let r = Reference::parse(&format!("{host}/x"))?;
    if r.registry == "docker.io" {
        return Err(RegistryError::Credentials {
            message: format!(
                "{input:?} does not name a registry host (e.g. registry.example.com or host:5000)"
            ),
        });
    }
    Ok(r.registry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_names_normalise() {
        assert_eq!(
            normalise_registry("https://index.docker.io/v1/").unwrap(),
            "docker.io"
        );
        assert_eq!(normalise_registry("127.0.0.1:5000").unwrap(), "127.0.0.1:5000");
        assert_eq!(
            normalise_registry("http://localhost:5000/v2/").unwrap(),
            "localhost:5000"
        );
        assert!(normalise_registry("notahost").is_err());
        let o = LoginOptions {
            registry: "r".into(),
            credentials: Credentials::new("u", "s3cret"),
            docker_config_dir: None,
            registry_options: RegistryOptions::default(),
        };
        assert!(!format!("{o:?}").contains("s3cret"));
    }
}
