//! What can go wrong while building a layer; every variant names the file or
//! pattern at fault so the message alone says what to fix.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("layer source {path} does not exist: check the path in lambda-img.toml")]
    MissingSource { path: PathBuf },

    #[error(
        "{path} would be written as /{image_path}, but a name starting with `.wh.` is a whiteout \
         marker: every unpacker (umoci, containerd, Lambda) deletes the lower layers' file of that \
         name instead of storing it. Rename it or exclude it"
    )]
    WhiteoutName { path: PathBuf, image_path: String },

    #[error(
        "symlink {link} points to {target}, which climbs above the image root: \
         make it a link that stays inside the image, or exclude it"
    )]
    SymlinkAboveRoot { link: PathBuf, target: PathBuf },

    #[error("{path} is a {kind}, which cannot go into an image layer: exclude it")]
    UnsupportedFileType { path: PathBuf, kind: &'static str },

    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: io::Error },

    #[error(
        "cannot read {path}: permission denied; make it readable by this user (chmod u+r, or a+rX for a directory) or exclude it"
    )]
    PermissionDenied { path: PathBuf },

    #[error("invalid pattern {pattern:?} in {file}: {reason}")]
    BadPattern {
        pattern: String,
        /// Where the pattern came from: an ignore file's path, or `include`/`exclude` of an input.
        file: String,
        reason: String,
    },

    #[error("invalid layer destination {destination:?}: {reason}")]
    BadDestination { destination: String, reason: String },

    #[error("{path} has a name that is not valid UTF-8: rename it or exclude it")]
    NonUtf8Path { path: PathBuf },

    #[error(
        "the layer's image paths and link targets add up to more than 4 GiB of names: split it into several layers"
    )]
    TooManyNames,

    #[error("{path} changed while the layer was being written: run the build again")]
    FileChanged { path: PathBuf },

    #[error("cannot write to the layer cache at {path}: {source}")]
    Cache { path: PathBuf, source: io::Error },

    #[error("gzip compression failed: {message}")]
    Compress { message: String },

    #[error(transparent)]
    Gzip(#[from] crate::gzip::GzipError),
}

impl LayerError {
    /// An I/O error on `path`; a permission error says what to do.
    pub(crate) fn from_io(path: PathBuf, source: io::Error) -> LayerError {
        if source.kind() == io::ErrorKind::PermissionDenied {
            LayerError::PermissionDenied { path }
        } else {
            LayerError::Io { path, source }
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> LayerError {
        let path = path.into();
        move |source| LayerError::from_io(path, source)
    }
}
