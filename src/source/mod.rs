//! Reading base images: scratch, OCI layouts, docker-archives (and registries).
//!
//! A source resolves a reference to one single-platform [`Image`] for the
//! function's architecture; an index is resolved to its matching child.

mod base;
mod docker_archive;
mod oci_layout;
pub mod registry;
mod scratch;

use std::path::PathBuf;

pub use base::{
    LayerFacts, LayerVerification, assemble_base, assemble_base_with, cached_layer_facts, layer_facts,
    select_platform, verify_read,
};
pub use docker_archive::DockerArchiveSource;
pub use oci_layout::OciLayoutSource;
pub use registry::RegistrySource;
pub use scratch::ScratchSource;

use crate::cache::Cache;
use crate::image::{Architecture, Digest, DocumentError, Image};
use crate::reference::{ImageRef, ImageRefError, ImageTarget};
use crate::report::Reporter;

/// Settings that apply to reading the base image.
#[derive(Debug, Clone, Default)]
pub struct SourceOptions {
    /// Accept a registry base without a digest (the build is then not reproducible).
    pub allow_unpinned: bool,
    pub registry: crate::registry::RegistryOptions,
}

/// Parses a base reference as written in lambda-img.toml into its source:
/// `scratch`, `oci:PATH[:TAG][@sha256:...]`, `docker-archive:PATH`, or a
/// registry reference (`[registry/]repository[:tag]@sha256:...`, optionally
/// prefixed `registry:` or `docker://`); see [`ImageRef`].
pub fn open(reference: &str, options: &SourceOptions) -> Result<Box<dyn ImageSource>, SourceError> {
    open_ref(&ImageRef::parse(reference)?, options)
}

/// The source of a parsed reference. A registry reference must be pinned by
/// digest unless `options` allow otherwise.
pub fn open_ref(reference: &ImageRef, options: &SourceOptions) -> Result<Box<dyn ImageSource>, SourceError> {
    let parsed = match reference.target() {
        ImageTarget::Scratch => return Ok(Box::new(ScratchSource::new())),
        ImageTarget::Oci { path, tag, digest } => {
            return Ok(Box::new(OciLayoutSource::new(reference, path, tag, digest)));
        }
        ImageTarget::DockerArchive { path, digest } => {
            return Ok(Box::new(DockerArchiveSource::new(reference, path, digest)));
        }
        ImageTarget::Registry(parsed) => parsed,
    };
    if !parsed.is_pinned() && !options.allow_unpinned {
        // Say which digest to pin when the registry can tell us; the build
        // stops either way, so a lookup failure only shortens the message.
        let lookup =
            crate::registry::mirror::route(&options.registry.mirrors, parsed).map_or(parsed.clone(), |r| r.0);
        let digest = crate::registry::resolve_digest(&lookup, &options.registry, &crate::report::Silent).ok();
        return Err(SourceError::Unpinned {
            reference: reference.to_string(),
            digest,
        });
    }
    Ok(Box::new(RegistrySource::new(
        parsed.clone(),
        options.registry.clone(),
    )))
}

/// What every image source can do.
pub trait ImageSource {
    /// The reference as the user wrote it, for messages.
    fn describe(&self) -> String;

    /// The media type of what the reference names before any platform is
    /// picked (an index, a manifest list or a manifest), where the medium has
    /// such a thing. `check` uses it: Lambda refuses a tag that names an index.
    fn top_media_type(&self, _reporter: &dyn Reporter) -> Result<Option<String>, SourceError> {
        Ok(None)
    }

    /// Reads the image for `arch`, verifying every digest it is given.
    fn resolve(
        &self,
        arch: Architecture,
        cache: &Cache,
        reporter: &dyn Reporter,
    ) -> Result<Image, SourceError> {
        self.resolve_with(arch, cache, reporter, LayerVerification::Now)
    }

    /// [`ImageSource::resolve`], with the layer blobs' verification as `verification` says
    /// (`check` verifies them on its own read of every layer).
    fn resolve_with(
        &self,
        arch: Architecture,
        cache: &Cache,
        reporter: &dyn Reporter,
        verification: LayerVerification,
    ) -> Result<Image, SourceError>;

    /// The uncompressed digests of the image's layers for `arch` (what the
    /// `[system]` layer's key names the base by), for `plan`. Local sources
    /// read the image; a registry sends the manifest and the config only.
    fn diff_ids(
        &self,
        arch: Architecture,
        cache: &Cache,
        reporter: &dyn Reporter,
    ) -> Result<Vec<Digest>, SourceError> {
        let image = self.resolve(arch, cache, reporter)?;
        Ok(image.layers().iter().map(|l| l.diff_id.clone()).collect())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "{what} has digest {actual}, but {expected} was expected: the content does not match its reference"
    )]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{what} is {actual} bytes, but its descriptor says {expected}")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },
    #[error(
        "layer {layer} of {source_ref} uncompresses to {actual}, but the image config lists diff_id {expected}"
    )]
    DiffIdMismatch {
        source_ref: String,
        layer: Digest,
        expected: Digest,
        actual: Digest,
    },
    #[error(transparent)]
    Document(#[from] DocumentError),
    #[error("{source_ref} has no image for linux/{arch} (it has: {available}); pick a base built for {arch}")]
    NoPlatform {
        source_ref: String,
        arch: Architecture,
        available: String,
    },
    #[error("layer {layer} of {source_ref} has media type {media_type}, which lambda-img cannot read")]
    UnsupportedLayer {
        source_ref: String,
        layer: Digest,
        media_type: String,
    },
    #[error("{source_ref}: {message}")]
    Invalid { source_ref: String, message: String },
    #[error("{source_ref} has no tag `{tag}` (tags: {available}); use one of those tags")]
    MissingTag {
        source_ref: String,
        tag: String,
        available: String,
    },
    #[error("{source_ref} holds {count} images ({available}); {hint}")]
    AmbiguousImage {
        source_ref: String,
        count: usize,
        available: String,
        hint: String,
    },
    #[error("{path} is not {expected}: {reason}")]
    NotAnImage {
        path: PathBuf,
        expected: &'static str,
        reason: String,
    },
    #[error(transparent)]
    Reference(#[from] ImageRefError),
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    /// The base's registry (or its mirror) did not answer; says what to do.
    #[error(transparent)]
    BaseUnreachable(Box<crate::registry::mirror::BaseUnreachable>),
    #[error(
        "base {reference} is not pinned by digest, so builds are not reproducible; {}",
        match digest {
            Some(d) => format!("pin it as {reference}@{d} (or run `lambda-img pin`), or pass --allow-unpinned"),
            None => "run `lambda-img pin` to write its digest into lambda-img.toml, or pass --allow-unpinned".to_string(),
        }
    )]
    Unpinned {
        reference: String,
        digest: Option<Digest>,
    },
}

impl From<crate::cache::CacheIoError> for SourceError {
    fn from(e: crate::cache::CacheIoError) -> SourceError {
        SourceError::Io {
            path: e.path,
            source: e.source,
        }
    }
}
