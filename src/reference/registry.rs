//! Image references: `[registry/]repository[:tag][@sha256:...]`, with Docker's
//! defaults (`docker.io`, `library/`).

use std::fmt;
use std::str::FromStr;

use crate::image::Digest;

/// The registry name Docker uses when a reference names none.
pub const DOCKER_HUB: &str = "docker.io";
/// Where Docker Hub's registry API actually lives.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// A parsed, validated image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// `docker.io`, `public.ecr.aws`, `127.0.0.1:5000`, ...
    pub registry: String,
    /// `library/python`, `lambda/python`, ...
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference {input:?}: {reason}")]
pub struct ReferenceError {
    pub input: String,
    pub reason: String,
}

impl Reference {
    pub fn parse(input: &str) -> Result<Reference, ReferenceError> {
        let fail = |reason: String| ReferenceError {
            input: input.to_string(),
            reason,
        };
        if input.is_empty() {
            return Err(fail("it is empty".into()));
        }
        if input.chars().any(|c| c.is_whitespace()) {
            return Err(fail("it contains whitespace".into()));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, d)) => {
                let digest = d.parse::<Digest>().map_err(|_| {
                    fail(format!(
                        "the digest {d:?} is not sha256: followed by 64 lowercase hex digits"
                    ))
                })?;
                (rest, Some(digest))
            }
            None => (input, None),
        };
        // The tag is after the last ':' that follows the last '/' (a ':' before
        // it belongs to a registry port).
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag {
            validate_tag(tag).map_err(fail)?;
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, remainder))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), remainder.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let registry = match registry.as_str() {
            "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_string(),
            _ => registry,
        };
        validate_registry(&registry).map_err(fail)?;
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        validate_repository(&repository).map_err(fail)?;
        Ok(Reference {
            registry,
            repository,
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// The host (and port) the registry API is reached at.
    pub fn api_host(&self) -> &str {
        api_host(&self.registry)
    }

    /// `registry/repository`, as recorded for cross-repository mounts.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// What to ask the registry for: the digest when pinned, else the tag, else `latest`.
    pub fn manifest_ref(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }

    pub fn is_pinned(&self) -> bool {
        self.digest.is_some()
    }

    /// The same reference pinned to `digest` (the tag is kept for readers).
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            digest: Some(digest),
            ..self.clone()
        }
    }
}

/// The API host of a registry name (Docker Hub's API lives elsewhere).
pub fn api_host(registry: &str) -> &str {
    if registry == DOCKER_HUB {
        DOCKER_HUB_API
    } else {
        registry
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

fn validate_tag(tag: &str) -> Result<(), String> {
    let ok_first = tag
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    if tag.is_empty() {
        return Err("the tag after ':' is empty".into());
    }
    if tag.len() > 128 {
        return Err(format!(
            "the tag is {} characters long; at most 128 are allowed",
            tag.len()
        ));
    }
    if !ok_first
        || !tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    {
        return Err(format!(
            "the tag {tag:?} may only contain letters, digits, '_', '.' and '-', and must not start with '.' or '-'"
        ));
    }
    Ok(())
}

fn validate_registry(registry: &str) -> Result<(), String> {
    let (host, port) = match registry.rsplit_once(':') {
        // An IPv6 literal in brackets may itself contain ':'.
        Some((h, p)) if !p.contains(']') => (h, Some(p)),
        _ => (registry, None),
    };
    if let Some(port) = port
        && (port.is_empty() || port.parse::<u16>().is_err())
    {
        return Err(format!(
            "the registry port {port:?} is not a number from 0 to 65535"
        ));
    }
    let bracketed = host.starts_with('[') && host.ends_with(']');
    let ok = !host.is_empty()
        && (bracketed
            || host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-'));
    if !ok {
        return Err(format!("the registry host {host:?} is not a valid host name"));
    }
    Ok(())
}

fn validate_repository(repository: &str) -> Result<(), String> {
    if repository.is_empty() {
        return Err("the repository name is empty".into());
    }
    if repository.len() > 255 {
        return Err("the repository name is longer than 255 characters".into());
    }
    for component in repository.split('/') {
        if component.is_empty() {
            return Err(format!(
                "the repository {repository:?} has an empty path component"
            ));
        }
        if component.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(format!(
                "the repository {repository:?} contains uppercase letters; repository names must be lowercase"
            ));
        }
        let chars_ok = component
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
        let ends_ok = component.starts_with(|c: char| c.is_ascii_alphanumeric())
            && component.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !chars_ok || !ends_ok {
            return Err(format!(
                "the repository component {component:?} may only contain lowercase letters, digits and single '.', '_' or '-' separators"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Reference {
        Reference::parse(s).unwrap()
    }

    #[test]
    fn docker_defaults() {
        let x = r("python");
        assert_eq!(
            (x.registry.as_str(), x.repository.as_str()),
            ("docker.io", "library/python")
        );
        assert_eq!(x.tag, None);
        assert_eq!(x.manifest_ref(), "latest");
        assert_eq!(x.api_host(), "registry-1.docker.io");
        let x = r("user/app:1.0");
        assert_eq!(x.repository, "user/app");
        assert_eq!(x.tag.as_deref(), Some("1.0"));
        assert_eq!(
            r("index.docker.io/python:3").to_string(),
            "docker.io/library/python:3"
        );
    }

    #[test]
    fn registries_ports_tags_and_digests() {
        let d = Digest::of(b"x");
        let x = r(&format!("public.ecr.aws/lambda/python:3.12@{d}"));
        assert_eq!(x.registry, "public.ecr.aws");
        assert_eq!(x.repository, "lambda/python");
        assert_eq!(x.tag.as_deref(), Some("3.12"));
        assert_eq!(x.digest.as_ref(), Some(&d));
        assert_eq!(x.manifest_ref(), d.to_string());
        let x = r("127.0.0.1:5000/repo");
        assert_eq!(x.registry, "127.0.0.1:5000");
        assert_eq!(x.repository, "repo");
        assert_eq!(x.tag, None);
        let x = r("localhost/a/b:t");
        assert_eq!((x.registry.as_str(), x.repository.as_str()), ("localhost", "a/b"));
        assert_eq!(r("[::1]:5000/r:t").registry, "[::1]:5000");
        let s = format!("127.0.0.1:5000/repo:tag@{d}");
        assert_eq!(r(&s).to_string(), s);
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let e = |s: &str| Reference::parse(s).unwrap_err().reason;
        assert!(e("").contains("empty"));
        assert!(e("Python").contains("uppercase"));
        assert!(e("repo:").contains("tag after ':' is empty"));
        assert!(e("repo:-x").contains("must not start"));
        assert!(e("repo@sha256:abc").contains("64 lowercase hex"));
        assert!(e("repo@md5:abc").contains("digest"));
        assert!(e("host:99999/repo").contains("port"));
        assert!(e("a//b").contains("empty path component"));
        assert!(e("a/b_/c").contains("component"));
        assert!(e("has space").contains("whitespace"));
    }
}
