//! Writing built images: OCI layouts, docker-archives (and registries).
//! Each sink writes atomically: a failure leaves the previous output untouched.

pub mod registry;

pub use registry::RegistrySink;

use crate::image::Image;
use crate::report::Reporter;

/// What every output can do.
pub trait ImageSink {
    /// The output as the user wrote it, for messages.
    fn describe(&self) -> String;

    /// Writes `image`; returns what was written for the report.
    fn write(&self, image: &Image, reporter: &dyn Reporter) -> Result<SinkReport, SinkError>;
}

/// What a sink did, for the JSON report.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SinkReport {
    /// The output as the user wrote it.
    pub output: String,
    /// A reference naming the written image (`REF@sha256:...` for registries).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Per blob, what a registry push did with it (uploaded, mounted, skipped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blobs: Option<Vec<BlobReport>>,
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
    #[error("{0}")]
    Message(String),
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
}
