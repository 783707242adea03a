//! `oci:DIR[:TAG] | docker-archive:FILE[:REPO[:TAG]] | registry:REF`: where a
//! build writes an image.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::image_ref::split_path_tag;
use super::registry::{Reference, ReferenceError};

/// An output, as written by the user (kept for reports) and parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputRef {
    text: String,
    target: OutputTarget,
}

/// What an [`OutputRef`] names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputTarget {
    /// An OCI layout directory and the tag to write (`latest` when none is given).
    Oci { dir: PathBuf, tag: String },
    /// A `docker save` tar, optionally naming the image `REPO:TAG` (`:latest` added).
    DockerArchive { file: PathBuf, repo_tag: Option<String> },
    /// A registry repository and optional tag (never a digest: that is the image's own).
    Registry(Reference),
}

/// Why an output does not parse; the message names it and what to write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputRefError {
    #[error("invalid output {output}: {message}")]
    Invalid { output: String, message: String },
    #[error(transparent)]
    Registry(#[from] ReferenceError),
}

/// The kind of an output, from its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    Oci,
    DockerArchive,
    Registry,
}

impl OutputKind {
    pub const ALL: [OutputKind; 3] = [OutputKind::Oci, OutputKind::DockerArchive, OutputKind::Registry];

    /// The prefix that names this kind (`oci:`, `docker-archive:`, `registry:`).
    pub fn prefix(self) -> &'static str {
        match self {
            OutputKind::Oci => "oci:",
            OutputKind::DockerArchive => "docker-archive:",
            OutputKind::Registry => "registry:",
        }
    }

    /// The kind `text` names and what follows its prefix.
    pub fn split(text: &str) -> Result<(OutputKind, &str), OutputRefError> {
        OutputKind::ALL
            .into_iter()
            .find_map(|kind| Some((kind, text.strip_prefix(kind.prefix())?)))
            .ok_or_else(|| OutputRefError::Invalid {
                output: text.to_string(),
                message: "expected oci:DIR[:TAG], docker-archive:FILE[:REPO:TAG] or registry:REF".into(),
            })
    }
}

impl OutputRef {
    pub fn parse(text: &str) -> Result<OutputRef, OutputRefError> {
        let (kind, rest) = OutputKind::split(text)?;
        OutputRef::of_kind(kind, rest)
    }

    /// Parses what follows the prefix of an output of `kind`.
    pub fn of_kind(kind: OutputKind, rest: &str) -> Result<OutputRef, OutputRefError> {
        let text = format!("{}{rest}", kind.prefix());
        let invalid = |message: String| OutputRefError::Invalid {
            output: text.clone(),
            message,
        };
        let target = match kind {
            OutputKind::Oci => {
                let (dir, tag) = split_path_tag(rest);
                if dir.is_empty() {
                    return Err(invalid("the directory is empty; write oci:DIR[:TAG]".into()));
                }
                let tag = tag.unwrap_or("latest");
                if tag.is_empty() || tag.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(invalid(
                        "the tag must be non-empty with no spaces; write oci:DIR:TAG".into(),
                    ));
                }
                OutputTarget::Oci {
                    dir: PathBuf::from(dir),
                    tag: tag.to_string(),
                }
            }
            OutputKind::DockerArchive => {
                let (file, reference) = match rest.split_once(':') {
                    Some((f, r)) => (f, Some(r)),
                    None => (rest, None),
                };
                if file.is_empty() {
                    return Err(invalid(
                        "the file name is empty; write docker-archive:FILE[:REPO:TAG]".into(),
                    ));
                }
                OutputTarget::DockerArchive {
                    file: PathBuf::from(file),
                    repo_tag: reference.map(normalize_repo_tag).transpose().map_err(invalid)?,
                }
            }
            OutputKind::Registry => {
                OutputTarget::Registry(OutputRef::push_destination(Reference::parse(rest)?)?)
            }
        };
        Ok(OutputRef { text, target })
    }

    /// The OCI layout output `dir` with `tag`, written out in full (`oci:DIR:TAG`).
    pub fn oci(dir: &Path, tag: &str) -> OutputRef {
        OutputRef {
            text: format!("{}{}:{tag}", OutputKind::Oci.prefix(), dir.display()),
            target: OutputTarget::Oci {
                dir: dir.to_path_buf(),
                tag: tag.to_string(),
            },
        }
    }

    /// The docker-archive output `file`, naming the image `repo_tag` when given
    /// (`docker-archive:FILE[:REPO:TAG]`; `repo_tag` as the parser leaves it).
    pub fn docker_archive(file: &Path, repo_tag: Option<&str>) -> OutputRef {
        let prefix = OutputKind::DockerArchive.prefix();
        OutputRef {
            text: match repo_tag {
                Some(r) => format!("{prefix}{}:{r}", file.display()),
                None => format!("{prefix}{}", file.display()),
            },
            target: OutputTarget::DockerArchive {
                file: file.to_path_buf(),
                repo_tag: repo_tag.map(str::to_string),
            },
        }
    }

    /// The push to `reference` (`registry:REF`).
    pub fn registry(reference: &Reference) -> OutputRef {
        OutputRef {
            text: format!("{}{reference}", OutputKind::Registry.prefix()),
            target: OutputTarget::Registry(reference.clone()),
        }
    }

    pub fn kind(&self) -> OutputKind {
        match self.target {
            OutputTarget::Oci { .. } => OutputKind::Oci,
            OutputTarget::DockerArchive { .. } => OutputKind::DockerArchive,
            OutputTarget::Registry(_) => OutputKind::Registry,
        }
    }

    /// The output as the user wrote it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn target(&self) -> &OutputTarget {
        &self.target
    }

    /// True for `registry:` outputs (pushes, what Lambda can deploy).
    pub fn is_registry(&self) -> bool {
        matches!(self.target, OutputTarget::Registry(_))
    }

    /// `reference` as a push destination: a repository and optionally a tag,
    /// never a digest (the digest is the image's own).
    pub fn push_destination(reference: Reference) -> Result<Reference, ReferenceError> {
        if reference.digest.is_some() {
            return Err(ReferenceError {
                input: reference.to_string(),
                reason: "a push destination names a repository and optionally a tag, not a digest".into(),
            });
        }
        Ok(reference)
    }

    /// The directory or file a local output writes.
    pub fn local_path(&self) -> Option<&Path> {
        match &self.target {
            OutputTarget::Oci { dir, .. } => Some(dir),
            OutputTarget::DockerArchive { file, .. } => Some(file),
            OutputTarget::Registry(_) => None,
        }
    }
}

/// Checks `REPO[:TAG]` loosely (the loaders check the rest) and adds `:latest`.
fn normalize_repo_tag(r: &str) -> Result<String, String> {
    if r.is_empty() || r.chars().any(|c| c.is_whitespace() || c.is_control() || c == '@') {
        return Err(format!(
            "`{r}` is not a REPO:TAG reference (no spaces, no @digest)"
        ));
    }
    let last = r.rsplit('/').next().unwrap_or(r);
    let (repo, tag) = match last.rsplit_once(':') {
        Some(_) => r.rsplit_once(':').expect("has a colon"),
        None => (r, "latest"),
    };
    if repo.is_empty() || tag.is_empty() || repo.ends_with('/') {
        return Err(format!("`{r}` is not a REPO:TAG reference"));
    }
    let path = repo.split_once('/').map_or(repo, |(host, rest)| {
        if host.contains('.') || host.contains(':') || host == "localhost" {
            rest
        } else {
            repo
        }
    });
    if path.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(format!(
            "repository `{repo}` has upper-case letters; image names are lower case"
        ));
    }
    Ok(format!("{repo}:{tag}"))
}

impl FromStr for OutputRef {
    type Err = OutputRefError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OutputRef::parse(s)
    }
}

impl fmt::Display for OutputRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// As the text (reports and printed settings carry outputs as written).
impl serde::Serialize for OutputRef {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(s: &str) -> Result<OutputTarget, OutputRefError> {
        OutputRef::parse(s).map(|o| o.target)
    }

    #[test]
    fn oci_outputs_default_the_tag() {
        assert_eq!(
            target("oci:./out").unwrap(),
            OutputTarget::Oci {
                dir: "./out".into(),
                tag: "latest".into()
            }
        );
        assert_eq!(
            target("oci:/tmp/a:b/out:v2").unwrap(),
            OutputTarget::Oci {
                dir: "/tmp/a:b/out".into(),
                tag: "v2".into()
            }
        );
        assert!(target("oci:out:").is_err());
        assert!(target("oci::x").is_err());
    }

    #[test]
    fn docker_archive_outputs_split_at_the_first_colon() {
        let repo_tag = |s: &str| match target(s).unwrap() {
            OutputTarget::DockerArchive { repo_tag, .. } => repo_tag,
            other => panic!("{other:?}"),
        };
        assert_eq!(repo_tag("docker-archive:out/img.tar"), None);
        assert_eq!(
            repo_tag("docker-archive:img.tar:localhost:5000/fn/app:v1").as_deref(),
            Some("localhost:5000/fn/app:v1")
        );
        assert_eq!(
            repo_tag("docker-archive:img.tar:localhost:5000/app").as_deref(),
            Some("localhost:5000/app:latest")
        );
        assert_eq!(
            repo_tag("docker-archive:img.tar:app").as_deref(),
            Some("app:latest")
        );
        for bad in [
            "docker-archive:img.tar:App:v1",
            "docker-archive:img.tar:",
            "docker-archive::app:v1",
        ] {
            assert!(target(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn registry_outputs_carry_no_digest_and_other_forms_say_what_to_write() {
        let d = crate::image::Digest::of(b"x");
        let out = OutputRef::parse("registry:127.0.0.1:5000/app:1").unwrap();
        assert!(out.is_registry());
        assert_eq!(out.to_string(), "registry:127.0.0.1:5000/app:1");
        let err = target(&format!("registry:127.0.0.1:5000/app@{d}")).unwrap_err();
        assert!(err.to_string().contains("not a digest"), "{err}");
        for written in [
            OutputRef::oci(Path::new("/tmp/a:b/out"), "v2"),
            OutputRef::docker_archive(Path::new("img.tar"), Some("localhost:5000/app:latest")),
            OutputRef::docker_archive(Path::new("img.tar"), None),
            out.clone(),
            OutputRef::registry(&Reference::parse("127.0.0.1:5000/app:1").unwrap()),
        ] {
            let back = OutputRef::parse(written.as_str()).unwrap();
            assert_eq!(back.target(), written.target(), "{written}");
            assert_eq!(back.kind(), written.kind(), "{written}");
        }
        let err = target("out.tar").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid output out.tar: expected oci:DIR[:TAG], docker-archive:FILE[:REPO:TAG] or registry:REF"
        );
    }
}
