//! Registry mirrors (`--registry-mirror FROM=TO[/PREFIX]`): a reference to a
//! registry FROM is fetched from TO instead, under the same repository path
//! (or under PREFIX/), by the same tag or digest. This is how an ECR
//! pull-through cache or a company mirror is used without renaming the base
//! in lambda-img.toml: the manifest, messages and reports keep the canonical
//! name; only the requests go elsewhere.
//!
//! No fallback to FROM when the mirror fails: a mirror is named because FROM
//! is out of reach (an offline network), and a silent second attempt would
//! only add a long timeout to the error. Digests make a mirror safe to trust:
//! everything fetched by digest is verified against the canonical reference.

use std::fmt;
use std::str::FromStr;

use super::{Reference, RegistryError, is_plain_http};
use crate::reference::registry::{DOCKER_HUB, DOCKER_HUB_API};

/// One `FROM=TO[/PREFIX]` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryMirror {
    /// The canonical registry host, e.g. `public.ecr.aws`.
    pub from: String,
    /// The mirror's host[:port].
    pub to: String,
    /// A path put before the repository on the mirror (`ecr-public` for an
    /// ECR pull-through cache rule), without slashes at either end.
    pub prefix: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid registry mirror {input:?}: {reason}; write FROM=TO[/PREFIX], e.g. public.ecr.aws=123456789012.dkr.ecr.eu-west-1.amazonaws.com/ecr-public"
)]
pub struct MirrorParseError {
    pub input: String,
    pub reason: String,
}

impl FromStr for RegistryMirror {
    type Err = MirrorParseError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let fail = |reason: &str| MirrorParseError {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        let (from, to) = input
            .trim()
            .split_once('=')
            .ok_or_else(|| fail("there is no `=`"))?;
        let from = canonical_host(from.trim());
        if from.is_empty() || from.contains('/') || from.contains(char::is_whitespace) {
            return Err(fail(
                "FROM must be a registry host such as public.ecr.aws, with no path",
            ));
        }
        let to = to.trim().trim_end_matches('/');
        let to = to
            .strip_prefix("https://")
            .or_else(|| to.strip_prefix("http://"))
            .unwrap_or(to);
        let (host, prefix) = match to.split_once('/') {
            Some((h, p)) => (h, Some(p.trim_matches('/').to_string()).filter(|p| !p.is_empty())),
            None => (to, None),
        };
        if host.is_empty() || host.contains(char::is_whitespace) || host.contains(['@', '?', '#']) {
            return Err(fail(
                "TO must be a registry host[:port], optionally followed by /PREFIX",
            ));
        }
        if let Some(p) = &prefix
            && !p.split('/').all(valid_path_component)
        {
            return Err(fail(
                "PREFIX must be repository path components (lowercase letters, digits, . _ -)",
            ));
        }
        Ok(RegistryMirror {
            from,
            to: host.to_string(),
            prefix,
        })
    }
}

impl fmt::Display for RegistryMirror {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.from, self.to)?;
        if let Some(p) = &self.prefix {
            write!(f, "/{p}")?;
        }
        Ok(())
    }
}

/// Docker Hub is written several ways; references normalise to `docker.io`.
fn canonical_host(host: &str) -> String {
    match host {
        "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_string(),
        h => h.to_string(),
    }
}

fn valid_path_component(c: &str) -> bool {
    !c.is_empty()
        && c.chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || matches!(ch, '.' | '_' | '-'))
}

/// Where `reference` is fetched from: the first mirror whose FROM is its
/// registry, rewritten (same tag and digest), else `None` (fetch it as named).
pub fn route(mirrors: &[RegistryMirror], reference: &Reference) -> Option<(Reference, RegistryMirror)> {
    let mirror = mirrors.iter().find(|m| m.from == reference.registry)?;
    let repository = match &mirror.prefix {
        Some(p) => format!("{p}/{}", reference.repository),
        None => reference.repository.clone(),
    };
    let routed = Reference {
        registry: mirror.to.clone(),
        repository,
        tag: reference.tag.clone(),
        digest: reference.digest.clone(),
    };
    Some((routed, mirror.clone()))
}

/// A registry base that could not be fetched because its registry (or the
/// mirror standing in for it) did not answer; says what to do instead.
#[derive(Debug, thiserror::Error)]
#[error("cannot fetch base {canonical}{}: {cause}\n{}", via_text(.via), hint(.canonical, .via))]
pub struct BaseUnreachable {
    /// The reference as lambda-img.toml names it.
    pub canonical: String,
    /// The mirrored reference the requests went to, when a mirror was used.
    pub via: Option<String>,
    /// Not a `#[source]`: the message already says it, and the hint must come
    /// last; `registry_error()` gives it to code that classifies errors.
    pub cause: RegistryError,
}

impl BaseUnreachable {
    pub fn registry_error(&self) -> &RegistryError {
        &self.cause
    }
}

fn via_text(via: &Option<String>) -> String {
    via.as_ref()
        .map(|v| format!(" (through the mirror, as {v})"))
        .unwrap_or_default()
}

fn hint(canonical: &str, via: &Option<String>) -> String {
    let host = canonical.split('/').next().unwrap_or(canonical);
    let mut lines = Vec::new();
    if via.is_some() {
        lines.push(
            "check that the mirror is up and holds this repository (an ECR pull-through cache fills on the first pull where it can reach the upstream)"
                .to_string(),
        );
    } else {
        lines.push(format!(
            "fetch it through a mirror that holds it: --registry-mirror {host}=MIRROR[/PREFIX] (or LAMBDA_IMG_REGISTRY_MIRRORS), e.g. an ECR pull-through cache"
        ));
    }
    lines.push(format!(
        "or copy it once where the registry is reachable and build from the copy: skopeo copy docker://{canonical} oci:base-image:base, then [base] image = \"oci:base-image:base\" (a docker-archive:FILE works too)"
    ));
    lines.push("-v names the request that failed".to_string());
    format!("what to do:\n  - {}", lines.join("\n  - "))
}

/// Whether `error` means the registry did not answer at all (no name, no
/// connection, a timeout, a server error), as opposed to a refusal.
pub fn is_unreachable(error: &RegistryError) -> bool {
    match error {
        RegistryError::HostNotFound { .. } | RegistryError::Unreachable { .. } => true,
        RegistryError::Status { status, .. } => status.is_server_error(),
        _ => false,
    }
}

/// Wraps an unreachable-registry error for the base `canonical` (fetched as
/// `routed`) in [`BaseUnreachable`]; other errors pass through. With `-v`,
/// `detail` receives the request that failed.
pub fn explain(
    error: RegistryError,
    canonical: &Reference,
    routed: Option<&Reference>,
    insecure: &[String],
    detail: &dyn Fn(&str),
) -> Result<RegistryError, Box<BaseUnreachable>> {
    if !is_unreachable(&error) {
        return Ok(error);
    }
    let target = routed.unwrap_or(canonical);
    detail(&failed_request(&error, target, insecure));
    Err(Box::new(BaseUnreachable {
        canonical: canonical.to_string(),
        via: routed.map(Reference::to_string),
        cause: error,
    }))
}

/// `GET https://HOST/v2/REPO/...` for the request an error names.
fn failed_request(error: &RegistryError, target: &Reference, insecure: &[String]) -> String {
    let scheme = if is_plain_http(&target.registry, insecure) {
        "http"
    } else {
        "https"
    };
    let host = if target.registry == DOCKER_HUB {
        DOCKER_HUB_API
    } else {
        target.registry.as_str()
    };
    let what = match error {
        RegistryError::Unreachable { what, .. } | RegistryError::Status { what, .. } => what.as_str(),
        _ => "",
    };
    // `what` reads "manifest REPO:REF" or "blob DIGEST in REPO"; name the URL.
    let path = if let Some(digest) = what
        .strip_prefix("blob ")
        .and_then(|rest| rest.split_whitespace().next())
    {
        format!("blobs/{digest}")
    } else {
        let reference = target
            .digest
            .as_ref()
            .map(ToString::to_string)
            .or_else(|| target.tag.clone())
            .unwrap_or_else(|| "latest".into());
        format!("manifests/{reference}")
    };
    let url = format!("{scheme}://{host}/v2/{}/{path}", target.repository);
    match error {
        RegistryError::HostNotFound { .. } => {
            format!("failed request: GET {url} (the host name did not resolve)")
        }
        other => format!("failed request: GET {url}: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mirror(s: &str) -> RegistryMirror {
        s.parse().unwrap()
    }

    #[test]
    fn parses_host_port_and_prefix() {
        assert_eq!(
            mirror("public.ecr.aws=127.0.0.1:5000"),
            RegistryMirror {
                from: "public.ecr.aws".into(),
                to: "127.0.0.1:5000".into(),
                prefix: None
            }
        );
        let m = mirror("public.ecr.aws=1.dkr.ecr.eu-west-1.amazonaws.com/ecr-public/");
        assert_eq!(m.prefix.as_deref(), Some("ecr-public"));
        assert_eq!(
            m.to_string(),
            "public.ecr.aws=1.dkr.ecr.eu-west-1.amazonaws.com/ecr-public"
        );
        assert_eq!(mirror("index.docker.io=mirror.lan").from, "docker.io");
        for bad in ["public.ecr.aws", "=x", "a/b=c", "a=", "a=h/UPPER", "a=h/x y"] {
            let err = bad.parse::<RegistryMirror>().unwrap_err().to_string();
            assert!(err.contains("FROM=TO[/PREFIX]"), "{bad}: {err}");
        }
    }

    #[test]
    fn routes_the_same_tag_and_digest_to_the_mirror() {
        let r = Reference::parse(&format!(
            "public.ecr.aws/lambda/python:3.12@{}",
            crate::image::Digest::of(b"x")
        ))
        .unwrap();
        let mirrors = [
            mirror("docker.io=hub.lan"),
            mirror("public.ecr.aws=reg.lan:5000/cache"),
        ];
        let (routed, used) = route(&mirrors, &r).unwrap();
        assert_eq!(used.to, "reg.lan:5000");
        assert_eq!(routed.registry, "reg.lan:5000");
        assert_eq!(routed.repository, "cache/lambda/python");
        assert_eq!((routed.tag, routed.digest), (r.tag.clone(), r.digest.clone()));
        let hub = Reference::parse("python:3.12").unwrap();
        assert_eq!(route(&mirrors, &hub).unwrap().0.repository, "library/python");
        assert!(route(&mirrors[..1], &r).is_none());
    }

    #[test]
    fn an_unreachable_base_says_what_to_do_and_names_the_request() {
        let canonical = Reference::parse("public.ecr.aws/lambda/nodejs:20").unwrap();
        let error = RegistryError::Unreachable {
            registry: "public.ecr.aws".into(),
            what: "manifest lambda/nodejs:20".into(),
            attempts: 3,
            message: "timed out".into(),
        };
        let seen = std::cell::RefCell::new(String::new());
        let wrapped = explain(error, &canonical, None, &[], &|d| seen.borrow_mut().push_str(d)).unwrap_err();
        let text = wrapped.to_string();
        for needle in [
            "--registry-mirror public.ecr.aws=",
            "skopeo copy docker://public.ecr.aws/lambda/nodejs:20 oci:",
            "docker-archive:",
            "-v",
        ] {
            assert!(text.contains(needle), "{needle} not in {text}");
        }
        assert!(
            seen.borrow().starts_with(
                "failed request: GET https://public.ecr.aws/v2/lambda/nodejs/manifests/20: registry public.ecr.aws did not answer for manifest lambda/nodejs:20 after 3 attempt(s): timed out"
            ),
            "{}",
            seen.borrow()
        );
        let refused = RegistryError::NotFound {
            registry: "r".into(),
            what: "w".into(),
            diagnostics: Default::default(),
        };
        assert!(
            explain(refused, &canonical, None, &[], &|_| {}).is_ok(),
            "a refusal passes through"
        );
    }
}
