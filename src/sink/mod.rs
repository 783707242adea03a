//! Writing built images: OCI layouts, docker-archives (and registries).
//! Each sink writes atomically: a failure leaves the previous output untouched.

pub mod attached;
mod docker_archive;
mod layout_gc;
mod oci_layout;
pub mod referrer;
pub mod registry;

use std::path::PathBuf;

pub use docker_archive::DockerArchiveSink;
pub use oci_layout::{OciLayoutSink, as_oci};
pub use registry::RegistrySink;

use crate::image::{Digest, Image};
use crate::reference::{OutputRef, OutputRefError, OutputTarget};
use crate::report::Reporter;

/// Settings that apply to every output of a run.
#[derive(Debug, Clone, Default)]
pub struct SinkOptions {
    pub registry: crate::registry::RegistryOptions,
    /// `--no-gc`: an OCI layout output keeps blobs its index no longer reaches.
    pub keep_unreferenced: bool,
    /// The cache the image was built into (see [`OciLayoutSink::cache`]).
    pub cache: Option<crate::cache::Cache>,
}

/// Parses an output as written on the command line into its sink.
pub fn open(output: &str, options: &SinkOptions) -> Result<Box<dyn ImageSink>, SinkError> {
    open_ref(&OutputRef::parse(output)?, options)
}

/// The sink of a parsed output.
pub fn open_ref(output: &OutputRef, options: &SinkOptions) -> Result<Box<dyn ImageSink>, SinkError> {
    Ok(match output.target() {
        OutputTarget::Oci { dir, tag } => Box::new(OciLayoutSink {
            gc: !options.keep_unreferenced,
            cache: options.cache.clone(),
            ..OciLayoutSink::new(dir, tag)
        }),
        OutputTarget::DockerArchive { file, repo_tag } => Box::new(DockerArchiveSink {
            file: file.clone(),
            repo_tag: repo_tag.clone(),
        }),
        OutputTarget::Registry(reference) => {
            Box::new(RegistrySink::new(reference.clone(), options.registry.clone())?)
        }
    })
}

/// What every output can do.
pub trait ImageSink {
    /// The output this sink writes, written out in full (`oci:DIR:TAG`).
    fn output(&self) -> OutputRef;

    /// The output, for messages.
    fn describe(&self) -> String {
        self.output().to_string()
    }

    /// Writes `image`; returns what was written for the report.
    fn write(&self, image: &Image, reporter: &dyn Reporter) -> Result<SinkReport, SinkError>;

    /// The file or directory this sink writes, when it is local: the build
    /// keeps it out of the layers when it lies inside a source directory.
    fn local_path(&self) -> Option<std::path::PathBuf> {
        None
    }

    /// Attaches `artifact` (an SBOM) to the image this sink wrote, as an OCI
    /// 1.1 referrer; `None` when the output cannot hold one (docker-archive).
    fn attach_referrer(
        &self,
        _image: &Image,
        _artifact: referrer::Artifact<'_>,
        _reporter: &dyn Reporter,
    ) -> Result<Option<referrer::ReferrerReport>, SinkError> {
        Ok(None)
    }
}

/// What a sink did, for the JSON report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SinkReport {
    /// The output written (as text in the report).
    pub output: OutputRef,
    /// A reference naming the written image (`REF@sha256:...` for registries).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Per blob, what a registry push did with it (uploaded, mounted, skipped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blobs: Option<Vec<BlobReport>>,
}

impl SinkReport {
    /// `REPO@sha256:...` when this output is a registry push (what Lambda
    /// deploys); `None` for local outputs.
    pub fn pushed_reference(&self) -> Option<&str> {
        match self.output.is_registry() {
            true => self.reference.as_deref(),
            false => None,
        }
    }
}

/// The pushed references of `outputs`, in output order.
pub fn pushed_references(outputs: &[SinkReport]) -> Vec<&str> {
    outputs.iter().filter_map(SinkReport::pushed_reference).collect()
}

/// What a registry push did with one blob, for `--json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BlobReport {
    pub digest: crate::image::Digest,
    pub size: u64,
    /// `layer` or `config`.
    pub kind: &'static str,
    pub action: crate::registry::BlobAction,
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot write {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot read blob {path} of the image ({source}); if it was removed from the cache, build again")]
    ReadBlob { path: PathBuf, source: std::io::Error },
    #[error(
        "blob {path} has {what} {actual}, but the image lists {expected}: it changed after the build; build again (and clear the cache if this repeats)"
    )]
    BlobMismatch {
        path: PathBuf,
        what: &'static str,
        expected: String,
        actual: String,
    },
    #[error(
        "cached blob {path} does not match its digest {expected} (damaged on disk): it was removed from the cache with the records naming it; build again to rebuild or fetch it"
    )]
    CorruptCacheBlob { path: PathBuf, expected: Digest },
    #[error(
        "{path} exists but is not an OCI image layout ({reason}); write to a new or empty directory, or to an existing layout"
    )]
    NotALayout { path: PathBuf, reason: String },
    #[error("invalid output {output}: {message}")]
    InvalidOutput { output: String, message: String },
    #[error(transparent)]
    Output(#[from] OutputRefError),
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
}

impl SinkError {
    fn digest_mismatch(path: PathBuf, expected: &Digest, actual: &Digest) -> SinkError {
        SinkError::BlobMismatch {
            path,
            what: "digest",
            expected: expected.to_string(),
            actual: actual.to_string(),
        }
    }
}
