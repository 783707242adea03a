//! `lambda-img pin`: resolve the base image's tag to a digest and write
//! `repo:tag@sha256:...` back into lambda-img.toml, keeping every comment,
//! key order and spacing (toml_edit edits the one value in place).

use std::path::{Path, PathBuf};

use crate::image::{Architecture, Digest, Document, IndexView, parse_document};
use crate::reference::{ImageRef, ImageRefError, ReferenceError};
use crate::registry::{Client, Reference, RegistryError, RegistryOptions, mirror};
use crate::report::Reporter;
use crate::source::{SourceError, select_platform};

#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{path} is not valid TOML: {message}")]
    Toml { path: PathBuf, message: String },
    #[error("{path} has no `[base] image = \"...\"` string to pin")]
    NoBaseImage { path: PathBuf },
    #[error("{path}: base image {value:?} is not a registry reference; only registry bases are pinned")]
    NotRegistry { path: PathBuf, value: String },
    #[error("{path}: base image {value:?} has a digest and no tag: there is no tag to resolve again")]
    NoTag { path: PathBuf, value: String },
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Source(#[from] SourceError),
}

/// What `pin_base` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinOutcome {
    /// The base value before and after (with any prefix the user wrote).
    pub before: String,
    pub after: String,
    /// The digest the tag resolved to (the index's, for a multi-platform base).
    pub digest: Digest,
    /// False when the file already held this digest (it is then not rewritten).
    pub changed: bool,
}

/// Resolves `[base] image` of the manifest at `manifest_path` and writes the
/// digest into it (atomically). An index must have a child for `arch`.
pub fn pin_base(
    manifest_path: &Path,
    arch: Architecture,
    options: &RegistryOptions,
    reporter: &dyn Reporter,
) -> Result<PinOutcome, PinError> {
    let text = std::fs::read_to_string(manifest_path).map_err(|source| PinError::Read {
        path: manifest_path.to_path_buf(),
        source,
    })?;
    let before = base_image(&text, manifest_path)?;
    let Some((base, reference)) = registry_base(&before).map_err(RegistryError::from)? else {
        return Err(PinError::NotRegistry {
            path: manifest_path.to_path_buf(),
            value: before,
        });
    };
    let Some(tag) = reference.tag.clone() else {
        if reference.digest.is_some() {
            return Err(PinError::NoTag {
                path: manifest_path.to_path_buf(),
                value: before,
            });
        }
        return Err(PinError::Registry(RegistryError::Reference(
            crate::registry::ReferenceError {
                input: before,
                reason: "it names no tag; write the tag to pin (e.g. :3.12)".into(),
            },
        )));
    };
    let resolved = resolve_tag(&reference, &tag, options, reporter)?;
    resolved.check_platform(arch, &reference.to_string())?;
    let digest = resolved.digest;
    let after = base.pinned_to(&digest).expect("a registry base");
    if after == before {
        return Ok(PinOutcome {
            before,
            after,
            digest,
            changed: false,
        });
    }
    let new_text = rewrite_base_image(&text, &after, manifest_path)?;
    write_atomic(manifest_path, new_text.as_bytes())?;
    Ok(PinOutcome {
        before,
        after,
        digest,
        changed: true,
    })
}

/// What a base tag names now: the digest `pin` writes (the index's, for a
/// multi-platform base) and the index itself, to check the function's platform.
#[derive(Debug, Clone)]
pub struct ResolvedTag {
    pub digest: Digest,
    pub index: Option<IndexView>,
}

impl ResolvedTag {
    /// An index must have a child for `arch`; a single manifest is taken as it is.
    pub fn check_platform(&self, arch: Architecture, source_ref: &str) -> Result<(), PinError> {
        if let Some(index) = &self.index {
            select_platform(index, arch, source_ref)?;
        }
        Ok(())
    }
}

/// Asks the registry what `tag` of `reference`'s repository names now.
pub fn resolve_tag(
    reference: &Reference,
    tag: &str,
    options: &RegistryOptions,
    reporter: &dyn Reporter,
) -> Result<ResolvedTag, PinError> {
    // Through a `--registry-mirror` when one covers the registry: the tag is
    // resolved there and the canonical name is written with its digest.
    let routed = mirror::route(&options.mirrors, reference).map(|(r, _)| r);
    let fetch = routed.as_ref().unwrap_or(reference);
    match &routed {
        Some(r) => reporter.step(&format!(
            "resolving {}:{tag} from the mirror {}",
            reference.name(),
            r.registry
        )),
        None => reporter.step(&format!("resolving {}:{tag}", reference.name())),
    }
    let fetched = Client::new(&fetch.registry, options, reporter)
        .and_then(|client| client.get_manifest(&fetch.repository, tag))
        .map_err(|e| {
            let detail = |d: &str| reporter.detail(d);
            match mirror::explain(e, reference, routed.as_ref(), &options.insecure, &detail) {
                Ok(other) => PinError::Registry(other),
                Err(unreachable) => PinError::Source(SourceError::BaseUnreachable(unreachable)),
            }
        })?;
    let what = format!("the manifest of {}:{tag}", reference.name());
    let index = match parse_document(&fetched.bytes, fetched.media_type.as_deref(), &what)
        .map_err(SourceError::from)?
    {
        Document::Index(index) => Some(index),
        Document::Manifest(_) => None,
    };
    Ok(ResolvedTag {
        digest: fetched.digest,
        index,
    })
}

/// `[base] image` parsed when it names a registry image; `None` for a local
/// one (scratch, `oci:`, `docker-archive:`, also when its path is malformed),
/// which has nothing to pin.
pub(crate) fn registry_base(value: &str) -> Result<Option<(ImageRef, Reference)>, ReferenceError> {
    match ImageRef::parse(value) {
        Ok(base) => Ok(base.registry().cloned().map(|reference| (base, reference))),
        Err(ImageRefError::Registry(e)) => Err(e),
        Err(_) => Ok(None),
    }
}

pub(crate) fn base_image(text: &str, path: &Path) -> Result<String, PinError> {
    let doc: toml_edit::DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| PinError::Toml {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    doc.get("base")
        .and_then(|b| b.get("image"))
        .and_then(|i| i.as_str())
        .map(str::to_string)
        .ok_or_else(|| PinError::NoBaseImage {
            path: path.to_path_buf(),
        })
}

/// Replaces the `[base] image` string in `text` with `new_value`, keeping the
/// value's surrounding whitespace and comments and everything else in the file.
pub fn rewrite_base_image(text: &str, new_value: &str, path: &Path) -> Result<String, PinError> {
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| PinError::Toml {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let value = doc
        .get_mut("base")
        .and_then(|b| b.get_mut("image"))
        .and_then(|i| i.as_value_mut())
        .filter(|v| v.is_str())
        .ok_or_else(|| PinError::NoBaseImage {
            path: path.to_path_buf(),
        })?;
    let decor = value.decor().clone();
    *value = toml_edit::Value::from(new_value);
    *value.decor_mut() = decor;
    Ok(doc.to_string())
}

pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PinError> {
    crate::atomic_file::write(path, bytes, crate::atomic_file::Mode::KeepExisting).map_err(|source| {
        PinError::Write {
            path: path.to_path_buf(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite_keeps_comments_order_and_spacing() {
        let text = "# my function\n[function]\nname = \"f\"   # the name\n\n[base]\n# pinned below\nimage   =   \"public.ecr.aws/lambda/python:3.12\"   # base\narch = \"x86_64\"\n\n[[layer]]\nname = \"deps\"\n";
        let d = Digest::of(b"x");
        let new = format!("public.ecr.aws/lambda/python:3.12@{d}");
        let out = rewrite_base_image(text, &new, Path::new("t.toml")).unwrap();
        let expected = text.replace("\"public.ecr.aws/lambda/python:3.12\"", &format!("\"{new}\""));
        assert_eq!(out, expected);
    }

    #[test]
    fn inline_table_and_missing_key() {
        let text = "base = { image = \"python:3\" }\n";
        let out = rewrite_base_image(text, "python:3@x", Path::new("t")).unwrap();
        assert_eq!(out, "base = { image = \"python:3@x\" }\n");
        assert!(matches!(
            rewrite_base_image("[base]\n", "x", Path::new("t")),
            Err(PinError::NoBaseImage { .. })
        ));
        let base = |s: &str| registry_base(s).unwrap().map(|(b, _)| b.to_string());
        assert_eq!(base("registry:python:3").as_deref(), Some("registry:python:3"));
        for local in ["scratch", "oci:base", "oci:", "docker-archive:img.tar"] {
            assert_eq!(base(local), None, "{local}");
        }
        assert!(registry_base("Python:3").is_err());
        // No such prefix: the source reads it as a registry name, so pin does too.
        assert_eq!(base("oci-layout:dir").as_deref(), Some("oci-layout:dir"));
    }
}
