//! The content-addressed cache shared by every build on the machine.
//!
//! Layout under the cache root (each bucket name carries its format version,
//! so a future change of format starts a new bucket instead of misreading one):
//!
//! ```text
//! blobs-v1/sha256/<hex>      exact blob bytes, named by their digest
//! <bucket>-v<N>/<key>.json   small JSON records (layer index, layer facts, ...)
//! tmp/                       files being written; renamed into place when complete
//! locks/<name>.lock          advisory locks for work that must not run twice at once
//! ```
//!
//! Every write goes to `tmp/` first and is renamed into place, so a reader sees
//! a whole entry or none, and a crash leaves at most a stray temp file.

pub mod prune;

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tempfile::NamedTempFile;

use crate::image::Digest;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cannot use cache directory {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// A handle on the cache directory.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

/// Holds an advisory lock until dropped.
#[derive(Debug)]
pub struct CacheLock {
    _file: File,
}

impl Cache {
    /// `$LAMBDA_IMG_CACHE`, else `$XDG_CACHE_HOME/lambda-img`, else `~/.cache/lambda-img`.
    pub fn default_root() -> PathBuf {
        if let Some(dir) = std::env::var_os("LAMBDA_IMG_CACHE").filter(|v| !v.is_empty()) {
            return PathBuf::from(dir);
        }
        if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
            return PathBuf::from(dir).join("lambda-img");
        }
        match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => PathBuf::from(home).join(".cache").join("lambda-img"),
            None => std::env::temp_dir().join("lambda-img-cache"),
        }
    }

    /// Opens (creating when needed) the cache at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Cache, CacheError> {
        let root = root.into();
        for sub in ["blobs-v1/sha256", "tmp", "locks"] {
            let p = root.join(sub);
            fs::create_dir_all(&p).map_err(|source| CacheError::Io {
                path: p.clone(),
                source,
            })?;
        }
        Ok(Cache { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with this digest lives (whether or not it is there yet).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs-v1/sha256").join(digest.hex())
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// A new temp file inside the cache (same filesystem, so it can be renamed into place).
    pub fn temp_file(&self) -> io::Result<NamedTempFile> {
        tempfile::Builder::new()
            .prefix("w-")
            .tempfile_in(self.root.join("tmp"))
    }

    /// Moves a completely written temp file into place as the blob `digest`.
    /// The caller has verified the digest. When another build got there first
    /// the existing entry is kept (same digest, same bytes).
    pub fn commit_blob(&self, tmp: NamedTempFile, digest: &Digest) -> io::Result<PathBuf> {
        let dest = self.blob_path(digest);
        tmp.as_file().sync_data()?;
        tmp.persist(&dest).map_err(|e| e.error)?;
        Ok(dest)
    }

    fn record_path(&self, bucket: &str, key: &str) -> PathBuf {
        self.root.join(bucket).join(format!("{key}.json"))
    }

    /// Reads a JSON record; a missing or unreadable record is `None` (a cache
    /// miss, never an error: the caller rebuilds it).
    pub fn get_record<T: DeserializeOwned>(&self, bucket: &str, key: &str) -> Option<T> {
        let bytes = fs::read(self.record_path(bucket, key)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Writes a JSON record atomically.
    pub fn put_record<T: Serialize>(&self, bucket: &str, key: &str, value: &T) -> io::Result<()> {
        let dir = self.root.join(bucket);
        fs::create_dir_all(&dir)?;
        let mut tmp = self.temp_file()?;
        // One write of the whole record: serde_json writes in small pieces,
        // which unbuffered costs a syscall each (200 ms for a 5k-file index).
        tmp.write_all(&serde_json::to_vec(value)?)?;
        tmp.flush()?;
        tmp.persist(self.record_path(bucket, key)).map_err(|e| e.error)?;
        Ok(())
    }

    /// Removes a record (for example one found to point at a missing blob).
    pub fn remove_record(&self, bucket: &str, key: &str) {
        let _ = fs::remove_file(self.record_path(bucket, key));
    }

    /// Takes an exclusive advisory lock named `name`, waiting for other
    /// processes that hold it. Used so that two builds sharing the cache do not
    /// do the same expensive work (compress a layer, download a blob) at once.
    pub fn lock(&self, name: &str) -> io::Result<CacheLock> {
        let path = self.root.join("locks").join(format!("{name}.lock"));
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        file.lock()?;
        Ok(CacheLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_commit_and_records_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let mut tmp = cache.temp_file().unwrap();
        tmp.write_all(b"abc").unwrap();
        let d = Digest::of(b"abc");
        let p = cache.commit_blob(tmp, &d).unwrap();
        assert_eq!(fs::read(p).unwrap(), b"abc");
        assert!(cache.has_blob(&d));
        cache.put_record("t-v1", "k", &vec![1, 2]).unwrap();
        assert_eq!(cache.get_record::<Vec<i32>>("t-v1", "k"), Some(vec![1, 2]));
        assert_eq!(cache.get_record::<Vec<i32>>("t-v1", "missing"), None);
        let _l = cache.lock("x").unwrap();
    }
}
