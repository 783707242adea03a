//! Layers written by the build: file selection, deterministic tar, gzip, digests.
//!
//! [`build_layer`] turns a [`LayerSpec`] into a gzip blob in the cache:
//! `select` walks the inputs, `cache_key` hashes contents (skipping files the
//! stat index already knows) into a cache key, and on a miss `tar_writer`
//! streams a deterministic tar through `gzip`'s parallel gzip.

mod build;
pub mod cache_key;
mod error;
mod format;
pub mod ignore;
pub mod select;
mod spec;
pub mod tar_writer;
mod walk;

pub use build::{
    KeyedSelection, LayerRecord, build_layer, build_layer_observed, build_selected, keyed, keyed_selection,
};
pub use cache_key::forget_stat_index;
pub use error::LayerError;
pub use format::LayerFormat;
pub use ignore::DockerIgnore;
pub use select::FileStat;
pub use spec::{DEFAULT_GZIP_LEVEL, DEFAULT_MTIME, LayerInput, LayerSettings, LayerSpec};
