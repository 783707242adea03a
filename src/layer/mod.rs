//! Layers written by the build: file selection, deterministic tar, gzip, digests.

mod spec;

pub use spec::{DEFAULT_GZIP_LEVEL, DEFAULT_MTIME, LayerInput, LayerSettings, LayerSpec};
