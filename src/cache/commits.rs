//! The blobs one cache value committed, so their bytes need no second read.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::image::Digest;

/// Blobs committed through one [`super::Cache`] value (and its clones), each
/// with the file's identity right after the commit. Another value opened on
/// the same directory starts empty: it trusts nothing it did not hash itself.
#[derive(Debug, Clone, Default)]
pub(super) struct Commits(Arc<Mutex<BTreeMap<PathBuf, (Digest, Stamp)>>>);

impl Commits {
    /// Remembers that `path` was just committed as `digest`.
    pub(super) fn record(&self, path: &Path, digest: &Digest) {
        if let Ok(meta) = fs::metadata(path) {
            let mut written = self.0.lock().unwrap_or_else(|e| e.into_inner());
            written.insert(path.to_path_buf(), (digest.clone(), Stamp::of(&meta)));
        }
    }

    /// Whether `path` was committed as `digest` and nothing touched it since.
    pub(super) fn unchanged(&self, path: &Path, digest: &Digest) -> bool {
        let written = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match (written.get(path), fs::metadata(path)) {
            (Some((d, stamp)), Ok(meta)) => d == digest && *stamp == Stamp::of(&meta),
            _ => false,
        }
    }
}

/// What identifies a file's content without reading it, within one process:
/// any write or chmod moves its ctime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Stamp {
    fn of(meta: &fs::Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
        }
    }
}
