//! Layers written by the build: file selection, deterministic tar, gzip, digests.
//!
//! [`build_layer`] turns a [`LayerSpec`] into a gzip blob in the cache:
//! `select` walks the inputs, `cache_key` hashes contents (skipping files the
//! stat index already knows) into a cache key, and on a miss `tar_writer`
//! streams a deterministic tar through `pgzip`'s parallel gzip.

mod build;
pub mod cache_key;
mod error;
pub mod ignore;
mod incompressible;
pub mod pgzip;
pub mod select;
mod spec;
pub mod tar_writer;

pub use build::{
    KeyedSelection, LayerRecord, build_layer, build_layer_observed, compress_into_cache, keyed_selection,
};
pub use error::LayerError;
pub use ignore::DockerIgnore;
pub use spec::{DEFAULT_GZIP_LEVEL, DEFAULT_MTIME, LayerInput, LayerSettings, LayerSpec};

/// Pseudo-random bytes for tests (xorshift64): no repeats, a flat histogram.
#[cfg(test)]
pub(crate) fn test_noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect()
}
