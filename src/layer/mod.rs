//! Layers written by the build: file selection, deterministic tar, gzip, digests.

mod error;
pub mod ignore;
pub mod pgzip;
pub mod select;
pub mod tar_writer;
mod spec;

pub use error::LayerError;
pub use ignore::DockerIgnore;
pub use spec::{DEFAULT_GZIP_LEVEL, DEFAULT_MTIME, LayerInput, LayerSettings, LayerSpec};
