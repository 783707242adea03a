//! Deterministic parallel gzip: the one compressor of every layer blob we
//! write, whether the layer writer's tar streams or a docker-archive base's
//! uncompressed layers.
//!
//! `pgzip` is the compressor (pigz's method, bytes independent of the thread
//! count), `incompressible` spots the segments it writes stored, and
//! `into_cache` runs it into a cache temp file and commits the blob. Layers
//! above use it; it knows nothing of tar, layers or images beyond digests.

mod error;
mod incompressible;
mod into_cache;
pub mod pgzip;

pub use error::GzipError;
pub use into_cache::{compress_into_cache, compress_to_blob};
pub use pgzip::{BLOCK_SIZE, Block, BlockSink, GzipSummary, parallel_gzip};

/// Bumped whenever the compressed bytes written for the same stream change
/// (block framing, stored segments, ...). Equal to the layer format version it
/// was split from, so cache records keyed by it stay valid; bump
/// `layer::cache_key::LAYER_FORMAT_VERSION` with it.
pub const GZIP_FORMAT_VERSION: u32 = 3;

/// gzip level of our layers; part of the layer cache key. zlib-rs's level 4
/// (lazy matching, short chains): on the benchmark tree and on a real
/// numpy/pandas/scipy install its layers are smaller than umoci's, and 0.1%
/// (benchmark tree) to 2.3% (wheels) larger than level 6's for much less CPU
/// (BENCHMARKS.md). Level 3 is faster still but 1% larger than umoci's on the
/// wheels. `--gzip-level 6`
/// or 9 trade build time for push size.
pub const DEFAULT_GZIP_LEVEL: u32 = 4;

/// Compression threads when nobody says: one per core. The output bytes
/// never depend on this.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

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
