//! Reading base images: scratch, OCI layouts, docker-archives (and registries).
//!
//! A source resolves a reference to one single-platform [`Image`] for the
//! function's architecture; an index is resolved to its matching child.

use crate::cache::Cache;
use crate::image::{Architecture, Image};
use crate::report::Reporter;

/// What every image source can do.
pub trait ImageSource {
    /// The reference as the user wrote it, for messages.
    fn describe(&self) -> String;

    /// Reads the image for `arch`, verifying every digest it is given.
    fn resolve(
        &self,
        arch: Architecture,
        cache: &Cache,
        reporter: &dyn Reporter,
    ) -> Result<Image, SourceError>;
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{0}")]
    Message(String),
}
