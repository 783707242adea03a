//! What a layer is made of: the plan's output and the layer writer's input.

use std::path::PathBuf;

use crate::image::MediaFamily;

/// The time stamp written on every entry when SOURCE_DATE_EPOCH is not set:
/// 1980-01-01T00:00:00Z. Non-zero because some tools treat mtime 0 as "unset".
pub const DEFAULT_MTIME: u64 = 315_532_800;

pub use crate::gzip::DEFAULT_GZIP_LEVEL;

/// One layer to build, in image order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSpec {
    /// The layer's name in reports and history (`code`, a `[[layer]]` name, ...).
    pub name: String,
    /// Files and directories that go into the layer, in the order given; when two
    /// inputs write the same image path the later one wins.
    pub inputs: Vec<LayerInput>,
}

/// A file or directory on disk and where its contents go in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInput {
    /// Absolute path of a file or directory on disk.
    pub source: PathBuf,
    /// Absolute path in the image. A directory's contents go below it; a file is
    /// written at this path, or inside it when it ends with `/`.
    pub destination: String,
    /// Globs relative to `source` (a directory): only matching files are taken.
    /// Empty means everything.
    pub include: Vec<String>,
    /// Globs relative to `source` that are left out (after `include`).
    pub exclude: Vec<String>,
    /// A `.dockerignore`-syntax file whose patterns apply relative to `source`.
    pub ignore_file: Option<PathBuf>,
    /// A mode forced on regular files (e.g. 0o755 for a bootstrap). Directories
    /// are always 0755; other files 0644, or 0755 when any execute bit is set.
    pub file_mode: Option<u32>,
}

impl LayerInput {
    /// An input that takes everything below `source` to `destination`.
    pub fn all(source: impl Into<PathBuf>, destination: impl Into<String>) -> Self {
        LayerInput {
            source: source.into(),
            destination: destination.into(),
            include: Vec::new(),
            exclude: Vec::new(),
            ignore_file: None,
            file_mode: None,
        }
    }
}

/// Settings that change a layer's bytes; all of them are part of its cache key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSettings {
    /// Media type family of the produced layer descriptor.
    pub family: MediaFamily,
    /// The mtime written on every entry (SOURCE_DATE_EPOCH or [`DEFAULT_MTIME`]).
    pub mtime: u64,
    /// gzip level, 1..=9.
    pub gzip_level: u32,
    /// Compression threads. The output bytes never depend on this.
    pub threads: usize,
}

impl Default for LayerSettings {
    fn default() -> Self {
        LayerSettings {
            family: MediaFamily::Oci,
            mtime: DEFAULT_MTIME,
            gzip_level: DEFAULT_GZIP_LEVEL,
            threads: crate::gzip::default_threads(),
        }
    }
}
