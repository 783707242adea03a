//! What decides a layer's bytes besides its files: for keys of things built
//! from layers (a dependency set's record) that must change when the layers
//! written for the same inputs would.

use super::LayerSettings;
use super::cache_key::LAYER_FORMAT_VERSION;

/// The layer writer's format and the settings that change its output bytes
/// (never the thread count or the media family, which do not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerFormat {
    /// Bumped whenever the bytes written for the same inputs change.
    pub version: u32,
    /// The mtime written on every entry.
    pub mtime: u64,
    pub gzip_level: u32,
    /// Bytes per independently compressed gzip block.
    pub block_size: u64,
}

impl LayerSettings {
    /// See [`LayerFormat`].
    pub fn format(&self) -> LayerFormat {
        LayerFormat {
            version: LAYER_FORMAT_VERSION,
            mtime: self.mtime,
            gzip_level: self.gzip_level,
            block_size: crate::gzip::BLOCK_SIZE as u64,
        }
    }
}
