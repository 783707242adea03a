//! What can go wrong while compressing: the compressor itself, or writing its output.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum GzipError {
    #[error("cannot write to the layer cache at {path}: {source}")]
    Cache { path: PathBuf, source: io::Error },

    #[error("cannot read {what}: {source}")]
    Read { what: String, source: io::Error },

    #[error("gzip compression failed: {message}")]
    Compress { message: String },
}
