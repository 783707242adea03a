//! `scratch | oci:PATH[:TAG][@sha256:...] | docker-archive:PATH[@sha256:...]
//! | [registry:|docker://][registry/]repository[:tag][@sha256:...]`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::registry::{Reference, ReferenceError};
use crate::image::Digest;
use crate::image::base_record::BaseRecord;

/// An image to read, as written by the user (kept for messages) and parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    text: String,
    target: ImageTarget,
}

/// What an [`ImageRef`] names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageTarget {
    /// The empty image.
    Scratch,
    /// An image in an OCI layout directory, by tag and/or pinned by digest
    /// (of the index.json entry: a manifest or an index).
    Oci {
        path: PathBuf,
        tag: Option<String>,
        digest: Option<Digest>,
    },
    /// An image in a `docker save` tar; the digest is its config's (image ID).
    DockerArchive { path: PathBuf, digest: Option<Digest> },
    /// An image in a registry.
    Registry(Reference),
}

/// Why a reference does not parse; the message names the reference and what to write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageRefError {
    /// `oci:` or `docker-archive:` with nothing (or only `:TAG`/`@DIGEST`) after it.
    #[error("{reference}: the {} path is empty; write {}", what(prefix), form(prefix))]
    EmptyPath { reference: String, prefix: &'static str },
    #[error("{reference}: the tag after `:` is empty; write oci:PATH:TAG or leave out the `:`")]
    EmptyTag { reference: String },
    #[error("{reference}: {message}; write the digest as @sha256:<64 hex digits>")]
    BadDigest { reference: String, message: String },
    #[error(transparent)]
    Registry(#[from] ReferenceError),
}

const OCI: &str = "oci:";
const DOCKER_ARCHIVE: &str = "docker-archive:";

fn what(prefix: &str) -> &'static str {
    if prefix == OCI { "layout" } else { "archive" }
}

fn form(prefix: &str) -> &'static str {
    if prefix == OCI {
        "oci:PATH[:TAG]"
    } else {
        "docker-archive:FILE"
    }
}

impl ImageRefError {
    /// The reference as written, for errors that wrap this one.
    pub fn reference(&self) -> &str {
        match self {
            ImageRefError::EmptyPath { reference, .. }
            | ImageRefError::EmptyTag { reference }
            | ImageRefError::BadDigest { reference, .. } => reference,
            ImageRefError::Registry(e) => &e.input,
        }
    }

    /// What is wrong, without the reference (the message after `REF: `).
    pub fn detail(&self) -> String {
        let full = self.to_string();
        match self {
            ImageRefError::Registry(_) => full,
            _ => full[self.reference().len() + 2..].to_string(),
        }
    }
}

/// Splits `PATH[:TAG]` the way skopeo does for `oci:`: the tag is what follows
/// the last `:`, when that contains no `/` (so `./a:b/c` is all path).
pub fn split_path_tag(s: &str) -> (&str, Option<&str>) {
    match s.rfind(':') {
        Some(i) if !s[i + 1..].contains('/') => (&s[..i], Some(&s[i + 1..])),
        _ => (s, None),
    }
}

/// Splits a trailing `@sha256:<hex>` off a local reference.
fn split_digest<'a>(reference: &str, s: &'a str) -> Result<(&'a str, Option<Digest>), ImageRefError> {
    match s.rfind('@') {
        Some(i) if s[i + 1..].starts_with("sha256:") => {
            let digest = s[i + 1..]
                .parse::<Digest>()
                .map_err(|e| ImageRefError::BadDigest {
                    reference: reference.to_string(),
                    message: e.to_string(),
                })?;
            Ok((&s[..i], Some(digest)))
        }
        _ => Ok((s, None)),
    }
}

impl ImageRef {
    pub fn parse(text: &str) -> Result<ImageRef, ImageRefError> {
        let target = parse_target(text)?;
        Ok(ImageRef {
            text: text.to_string(),
            target,
        })
    }

    /// Parses what follows `oci:` (`PATH[:TAG][@sha256:...]`).
    pub fn oci(rest: &str) -> Result<ImageRef, ImageRefError> {
        ImageRef::parse(&format!("{OCI}{rest}"))
    }

    /// Parses what follows `docker-archive:` (`PATH[@sha256:...]`).
    pub fn docker_archive(rest: &str) -> Result<ImageRef, ImageRefError> {
        ImageRef::parse(&format!("{DOCKER_ARCHIVE}{rest}"))
    }

    /// The reference as the user wrote it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn target(&self) -> &ImageTarget {
        &self.target
    }

    pub fn is_scratch(&self) -> bool {
        self.target == ImageTarget::Scratch
    }

    /// The directory or file of a local image (`oci:`, `docker-archive:`).
    pub fn local_path(&self) -> Option<&Path> {
        match &self.target {
            ImageTarget::Oci { path, .. } | ImageTarget::DockerArchive { path, .. } => Some(path),
            ImageTarget::Scratch | ImageTarget::Registry(_) => None,
        }
    }

    /// The registry name, for registry images.
    pub fn registry(&self) -> Option<&Reference> {
        match &self.target {
            ImageTarget::Registry(reference) => Some(reference),
            _ => None,
        }
    }

    /// The reference as written, pinned to `digest` (what `pin` writes back):
    /// the prefix and the name stay as the user wrote them (`python:3.12`,
    /// not `docker.io/library/python:3.12`), any old digest is replaced.
    /// `None` for local images, which are not pinned.
    pub fn pinned_to(&self, digest: &Digest) -> Option<String> {
        self.registry()?;
        let name = self.text.split('@').next().unwrap_or(&self.text);
        Some(format!("{name}@{digest}"))
    }

    /// A local image's relative path made absolute against `dir` (the text as
    /// well: the tag and digest after the path stay as written); every other
    /// reference as it is.
    pub fn relative_to(&self, dir: &Path) -> ImageRef {
        let (prefix, path) = match &self.target {
            ImageTarget::Oci { path, .. } => (OCI, path),
            ImageTarget::DockerArchive { path, .. } => (DOCKER_ARCHIVE, path),
            ImageTarget::Scratch | ImageTarget::Registry(_) => return self.clone(),
        };
        if path.is_absolute() {
            return self.clone();
        }
        // The parser takes the path as written from the start of the text
        // after the prefix, so what follows it is the tag and digest.
        let tail = &self.text[prefix.len() + path.as_os_str().len()..];
        // components() drops the `.` of `oci:./base`.
        let absolute: PathBuf = dir.join(path).components().collect();
        let text = format!("{prefix}{}{tail}", absolute.display());
        let mut target = self.target.clone();
        if let ImageTarget::Oci { path, .. } | ImageTarget::DockerArchive { path, .. } = &mut target {
            *path = absolute;
        }
        ImageRef { text, target }
    }

    /// The base record (`org.opencontainers.image.base.*`) for an image built
    /// on this one: registry images have one, local ones do not.
    pub fn base_record(&self) -> Option<BaseRecord> {
        let ImageTarget::Registry(parsed) = &self.target else {
            return None;
        };
        let name = match &parsed.tag {
            Some(tag) => format!("{}:{tag}", parsed.name()),
            None => parsed.name(),
        };
        Some(BaseRecord {
            name,
            digest: parsed.digest.clone(),
        })
    }
}

fn parse_target(text: &str) -> Result<ImageTarget, ImageRefError> {
    if text == "scratch" {
        return Ok(ImageTarget::Scratch);
    }
    for prefix in [OCI, DOCKER_ARCHIVE] {
        let Some(rest) = text.strip_prefix(prefix) else {
            continue;
        };
        let empty = || ImageRefError::EmptyPath {
            reference: text.to_string(),
            prefix,
        };
        if rest.is_empty() || rest.starts_with([':', '@']) {
            return Err(empty());
        }
        let (rest, digest) = split_digest(text, rest)?;
        if prefix == DOCKER_ARCHIVE {
            return Ok(ImageTarget::DockerArchive {
                path: PathBuf::from(rest),
                digest,
            });
        }
        let (path, tag) = split_path_tag(rest);
        if path.is_empty() {
            return Err(empty());
        }
        if tag == Some("") {
            return Err(ImageRefError::EmptyTag {
                reference: text.to_string(),
            });
        }
        return Ok(ImageTarget::Oci {
            path: PathBuf::from(path),
            tag: tag.map(str::to_string),
            digest,
        });
    }
    let name = text
        .strip_prefix("registry:")
        .or_else(|| text.strip_prefix("docker://"))
        .unwrap_or(text);
    Ok(ImageTarget::Registry(Reference::parse(name)?))
}

impl FromStr for ImageRef {
    type Err = ImageRefError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImageRef::parse(s)
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(s: &str) -> ImageTarget {
        ImageRef::parse(s).unwrap().target
    }

    #[test]
    fn every_kind_parses_into_its_target() {
        let d = Digest::of(b"x");
        assert_eq!(target("scratch"), ImageTarget::Scratch);
        assert_eq!(
            target(&format!("oci:./a:b/base:v1@{d}")),
            ImageTarget::Oci {
                path: "./a:b/base".into(),
                tag: Some("v1".into()),
                digest: Some(d.clone()),
            }
        );
        assert_eq!(
            target("oci:/tmp/a:b/c"),
            ImageTarget::Oci {
                path: "/tmp/a:b/c".into(),
                tag: None,
                digest: None,
            }
        );
        assert_eq!(
            target(&format!("docker-archive:img.tar@{d}")),
            ImageTarget::DockerArchive {
                path: "img.tar".into(),
                digest: Some(d.clone()),
            }
        );
        for written in ["python:3.12", "registry:python:3.12", "docker://python:3.12"] {
            let ImageTarget::Registry(r) = target(written) else {
                panic!("{written} is a registry reference");
            };
            assert_eq!(r.to_string(), "docker.io/library/python:3.12");
        }
        let r = ImageRef::parse("registry:python:3.12").unwrap();
        assert_eq!(r.to_string(), "registry:python:3.12", "kept as written");
    }

    #[test]
    fn errors_name_the_reference_and_what_to_write() {
        let e = |s: &str| ImageRef::parse(s).unwrap_err();
        for s in [
            "oci:",
            "oci::v1",
            "oci:@sha256:00",
            "docker-archive:",
            "docker-archive::x",
        ] {
            assert!(matches!(e(s), ImageRefError::EmptyPath { .. }), "{s}");
        }
        assert_eq!(
            e("oci:").to_string(),
            "oci:: the layout path is empty; write oci:PATH[:TAG]"
        );
        assert_eq!(
            e("docker-archive:").to_string(),
            "docker-archive:: the archive path is empty; write docker-archive:FILE"
        );
        assert!(matches!(e("oci:x:"), ImageRefError::EmptyTag { .. }));
        let bad = e("oci:x@sha256:abc");
        assert!(matches!(bad, ImageRefError::BadDigest { .. }), "{bad}");
        assert!(bad.to_string().starts_with("oci:x@sha256:abc: "), "{bad}");
        assert!(
            bad.detail()
                .ends_with("write the digest as @sha256:<64 hex digits>")
        );
        assert!(matches!(e("Python"), ImageRefError::Registry(_)));
    }

    #[test]
    fn pinning_keeps_the_name_as_written_and_replaces_the_digest() {
        let d = Digest::of(b"new");
        let pinned = |s: &str| ImageRef::parse(s).unwrap().pinned_to(&d);
        assert_eq!(pinned("python:3.12"), Some(format!("python:3.12@{d}")));
        assert_eq!(
            pinned(&format!("registry:python:3.12@{}", Digest::of(b"old"))),
            Some(format!("registry:python:3.12@{d}"))
        );
        assert_eq!(
            pinned("docker://python:3"),
            Some(format!("docker://python:3@{d}"))
        );
        for local in ["scratch", "oci:base:1", "docker-archive:img.tar"] {
            assert_eq!(pinned(local), None, "{local}");
        }
    }

    #[test]
    fn local_paths_are_made_absolute_with_the_rest_as_written() {
        let dir = Path::new("/p");
        let resolved = |s: &str| ImageRef::parse(s).unwrap().relative_to(dir);
        let d = Digest::of(b"x");
        for (written, absolute) in [
            ("oci:base", "oci:/p/base".to_string()),
            ("oci:./base:t", "oci:/p/base:t".to_string()),
            (&format!("oci:b@{d}"), format!("oci:/p/b@{d}")),
            ("oci:./a:b/base:v1", "oci:/p/a:b/base:v1".to_string()),
            ("docker-archive:img.tar", "docker-archive:/p/img.tar".to_string()),
            ("oci:/abs:t", "oci:/abs:t".to_string()),
            (
                "public.ecr.aws/lambda/python:3.12",
                "public.ecr.aws/lambda/python:3.12".to_string(),
            ),
            ("scratch", "scratch".to_string()),
        ] {
            let r = resolved(written);
            assert_eq!(r.as_str(), absolute, "{written}");
            assert_eq!(
                r,
                ImageRef::parse(&absolute).unwrap(),
                "{written}: the text parses as the value"
            );
        }
        assert_eq!(resolved("oci:./base:t").local_path(), Some(Path::new("/p/base")));
    }

    #[test]
    fn registry_bases_are_recorded_and_local_ones_are_not() {
        let record = |s: &str| ImageRef::parse(s).unwrap().base_record();
        let d = Digest::of(b"base");
        let r = record(&format!("registry:python:3.12@{d}")).unwrap();
        assert_eq!(r.name, "docker.io/library/python:3.12");
        assert_eq!(r.digest, Some(d.clone()));
        assert_eq!(r.entries()[crate::image::base_record::BASE_DIGEST], d.to_string());
        let unpinned = record("127.0.0.1:5000/lambda/base:1").unwrap();
        assert_eq!(unpinned.name, "127.0.0.1:5000/lambda/base:1");
        assert_eq!(unpinned.entries().len(), 1, "no digest to record");
        for local in ["scratch", "oci:out:1", "docker-archive:x.tar"] {
            assert_eq!(record(local), None, "{local}");
        }
    }
}
