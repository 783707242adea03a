//! Writing built images: OCI layouts, docker-archives (and registries).
//! Each sink writes atomically: a failure leaves the previous output untouched.

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
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("{0}")]
    Message(String),
}
