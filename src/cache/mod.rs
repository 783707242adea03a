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

mod ownership;
pub mod prune;
mod second_level;

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
    #[error("refusing to use cache directory {path}: {problem}; {fix}")]
    Unsafe {
        path: PathBuf,
        problem: String,
        fix: String,
    },
}

pub use ownership::current_uid;
pub use second_level::{SecondLevel, SharedLayer, SharedRecord};

/// Blobs this process committed (their bytes hashed on the way in), with the
/// file's identity right after: see [`unchanged_since_commit`].
static WRITTEN: std::sync::Mutex<std::collections::BTreeMap<PathBuf, (Digest, Stamp)>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// What identifies a file's content without reading it, within one process:
/// any write or chmod moves its ctime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
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

/// Whether `path` is a blob this process committed as `digest` and nothing
/// has touched since, so its bytes need no second read to be trusted (a
/// layer just built is then linked into an output without hashing it again).
/// File times move in clock ticks, so a write in the very tick of the commit
/// would go unseen; nothing writes cache blobs in place (every writer renames
/// a new file in), so this only has to catch damage done later.
pub fn unchanged_since_commit(path: &Path, digest: &Digest) -> bool {
    let written = WRITTEN.lock().unwrap_or_else(|e| e.into_inner());
    match (written.get(path), fs::metadata(path)) {
        (Some((d, stamp)), Ok(meta)) => d == digest && *stamp == Stamp::of(&meta),
        _ => false,
    }
}

/// A blob being written into the cache, its bytes handed to the disk as they
/// come: the commit's fsync then waits only for the last few MiB instead of
/// the whole blob (on a 93 MB layer that wait was 0.07 to 0.2 s at the end of
/// every cold build).
pub struct BlobFile {
    tmp: NamedTempFile,
    written: u64,
    handed_over: u64,
}

/// How much is written before writeback of it starts.
const WRITEBACK_STEP: u64 = 8 << 20;

impl BlobFile {
    pub fn new(tmp: NamedTempFile) -> BlobFile {
        BlobFile {
            tmp,
            written: 0,
            handed_over: 0,
        }
    }

    /// The temp file, for [`Cache::commit_blob`].
    pub fn into_temp(self) -> NamedTempFile {
        self.tmp
    }
}

impl Write for BlobFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.tmp.write(buf)?;
        self.written += n as u64;
        if self.written - self.handed_over >= WRITEBACK_STEP {
            start_writeback(
                self.tmp.as_file(),
                self.handed_over,
                self.written - self.handed_over,
            );
            self.handed_over = self.written;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tmp.flush()
    }
}

/// Asks the kernel to start writing a range of `file` to disk, without
/// waiting. Only a head start for the fsync that follows, so its result is
/// not needed.
#[cfg(target_os = "linux")]
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: sync_file_range only reads its integer arguments; the fd is
    // open for as long as `file` is borrowed.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File, _offset: u64, _len: u64) {}

/// The blob directories of the caches this process opened (resolved).
static OPENED: std::sync::Mutex<std::collections::BTreeSet<PathBuf>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// Whether `path` is a blob of a cache this process opened, as a regular file
/// (not a symlink) readable by all (as [`Cache::commit_blob`] leaves them): what
/// an output may hard-link without sharing anyone else's inode or changing a mode.
pub fn is_own_blob(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = fs::symlink_metadata(path) else {
        return false;
    };
    if !meta.file_type().is_file() || meta.permissions().mode() & 0o7777 != 0o644 {
        return false;
    }
    let Some(dir) = path.parent().and_then(|d| fs::canonicalize(d).ok()) else {
        return false;
    };
    OPENED.lock().unwrap_or_else(|e| e.into_inner()).contains(&dir)
}

/// Removes the cache blob at `path`, found not to hold the bytes its name
/// promises, and every record that names it, so the next build fetches or
/// rebuilds it instead of failing on the same entry again. Returns whether
/// `path` was a cache blob (anything else is left alone).
pub fn evict_corrupt_blob(path: &Path) -> bool {
    let Some(hex) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    let algo = path.parent();
    let bucket = algo.and_then(Path::parent);
    let is_blob = algo.and_then(Path::file_name).is_some_and(|n| n == "sha256")
        && bucket.and_then(Path::file_name).is_some_and(|n| n == "blobs-v1");
    let Some(root) = bucket.and_then(Path::parent).filter(|_| is_blob) else {
        return false;
    };
    let _ = fs::remove_file(path);
    let Ok(buckets) = fs::read_dir(root) else {
        return true;
    };
    for bucket in buckets.flatten() {
        let name = bucket.file_name().to_string_lossy().into_owned();
        if name.starts_with("blobs-") || !name.contains("-v") {
            continue;
        }
        let Ok(records) = fs::read_dir(bucket.path()) else {
            continue;
        };
        for record in records.flatten() {
            let p = record.path();
            let small = record
                .metadata()
                .is_ok_and(|m| m.is_file() && m.len() <= MAX_RECORD);
            if small && fs::read(&p).is_ok_and(|b| contains(&b, hex.as_bytes())) {
                let _ = fs::remove_file(&p);
            }
        }
    }
    true
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Records above this are not read (our biggest, a file-stat index of a large
/// tree, stays far below); a bigger one is treated as a miss.
pub const MAX_RECORD: u64 = 64 << 20;

/// How old a temp file must be before it may be judged abandoned.
const TEMP_LOCK_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// A handle on the cache directory.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
    /// Looked up after this cache misses, fed after a build (`--cache-registry`).
    second_level: Option<std::sync::Arc<dyn SecondLevel>>,
}

/// Holds an advisory lock until dropped.
#[derive(Debug)]
pub struct CacheLock {
    _file: File,
}

impl Cache {
    /// `$LAMBDA_IMG_CACHE`, else `$XDG_CACHE_HOME/lambda-img`, else
    /// `~/.cache/lambda-img`, else a per-user `$TMPDIR/lambda-img-$UID`.
    pub fn default_root() -> PathBuf {
        if let Some(dir) = std::env::var_os("LAMBDA_IMG_CACHE").filter(|v| !v.is_empty()) {
            return PathBuf::from(dir);
        }
        if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
            return PathBuf::from(dir).join("lambda-img");
        }
        match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => PathBuf::from(home).join(".cache").join("lambda-img"),
            None => ownership::per_user_temp_root(),
        }
    }

    /// Opens (creating when needed, mode 0700) the cache at `root`, after
    /// checking nobody but the current user can write it, and removes temp
    /// files that killed builds left behind.
    pub fn open(root: impl Into<PathBuf>) -> Result<Cache, CacheError> {
        let root = root.into();
        // The shared temp fallback is where a planted link or directory would be.
        let follow_root = root != ownership::per_user_temp_root();
        // The root is checked before anything is created inside it.
        if fs::symlink_metadata(&root).is_ok() {
            ownership::check_private_dir(&root, follow_root)?;
        }
        for sub in ["blobs-v1/sha256", "tmp", "locks"] {
            let p = root.join(sub);
            ownership::create_private_dir(&p).map_err(|source| CacheError::Io {
                path: p.clone(),
                source,
            })?;
        }
        ownership::check_cache_tree(&root, follow_root)?;
        if let Ok(real) = fs::canonicalize(root.join("blobs-v1/sha256")) {
            OPENED.lock().unwrap_or_else(|e| e.into_inner()).insert(real);
        }
        let cache = Cache {
            root,
            second_level: None,
        };
        cache.remove_stale_temp_files();
        Ok(cache)
    }

    /// Removes `tmp/w-*` files no live process holds: every writer keeps a
    /// shared lock on its temp file from creation (see [`Cache::temp_file`]),
    /// so one that can be locked exclusively belongs to a build that died.
    /// Files younger than a moment are left alone: their writer may not
    /// have taken its lock yet.
    fn remove_stale_temp_files(&self) {
        let Ok(entries) = fs::read_dir(self.root.join("tmp")) else {
            return;
        };
        let young = std::time::SystemTime::now() - TEMP_LOCK_GRACE;
        for entry in entries.flatten() {
            if !entry.file_name().to_string_lossy().starts_with("w-") {
                continue;
            }
            let path = entry.path();
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            if !meta.is_file() || meta.modified().is_ok_and(|m| m > young) {
                continue;
            }
            let Ok(file) = File::open(&path) else { continue };
            if file.try_lock().is_ok() {
                let _ = fs::remove_file(&path);
            }
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// This cache with `level` behind it: layer and dependency lookups that
    /// miss here ask it, and what is built here is given to it.
    pub fn with_second_level(&self, level: std::sync::Arc<dyn SecondLevel>) -> Cache {
        Cache {
            root: self.root.clone(),
            second_level: Some(level),
        }
    }

    /// This cache without its second level (for intermediate layers nobody
    /// else will ask for, such as the pieces of a dependency set).
    pub fn local_only(&self) -> Cache {
        Cache {
            root: self.root.clone(),
            second_level: None,
        }
    }

    pub fn second_level(&self) -> Option<&dyn SecondLevel> {
        self.second_level.as_deref()
    }

    /// Where the blob with this digest lives (whether or not it is there yet).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs-v1/sha256").join(digest.hex())
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// A new temp file inside the cache (same filesystem, so it can be renamed into place).
    /// It is held under a shared lock while open, so the next build can tell
    /// it from one a killed build left behind.
    pub fn temp_file(&self) -> io::Result<NamedTempFile> {
        let tmp = tempfile::Builder::new()
            .prefix("w-")
            .tempfile_in(self.root.join("tmp"))?;
        tmp.as_file().lock_shared()?;
        Ok(tmp)
    }

    /// Moves a completely written temp file into place as the blob `digest`.
    /// The caller has verified the digest. When another build got there first
    /// the existing entry is kept (same digest, same bytes).
    /// Blobs are 0644 inside the private cache directory, so an output can
    /// hard-link one without changing its mode.
    pub fn commit_blob(&self, tmp: NamedTempFile, digest: &Digest) -> io::Result<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        let dest = self.blob_path(digest);
        tmp.as_file().set_permissions(fs::Permissions::from_mode(0o644))?;
        tmp.as_file().sync_data()?;
        tmp.persist(&dest).map_err(|e| e.error)?;
        if let Ok(meta) = fs::metadata(&dest) {
            let mut written = WRITTEN.lock().unwrap_or_else(|e| e.into_inner());
            written.insert(dest.clone(), (digest.clone(), Stamp::of(&meta)));
        }
        Ok(dest)
    }

    fn record_path(&self, bucket: &str, key: &str) -> PathBuf {
        self.root.join(bucket).join(format!("{key}.json"))
    }

    /// Reads a JSON record; a missing or unreadable record is `None` (a cache
    /// miss, never an error: the caller rebuilds it).
    pub fn get_record<T: DeserializeOwned>(&self, bucket: &str, key: &str) -> Option<T> {
        let file = File::open(self.record_path(bucket, key)).ok()?;
        if !file.metadata().ok()?.is_file() {
            return None;
        }
        let mut bytes = Vec::new();
        io::Read::read_to_end(&mut io::Read::take(file, MAX_RECORD + 1), &mut bytes).ok()?;
        if bytes.len() as u64 > MAX_RECORD {
            return None;
        }
        serde_json::from_slice(&bytes).ok()
    }

    /// Writes a JSON record atomically.
    pub fn put_record<T: Serialize>(&self, bucket: &str, key: &str, value: &T) -> io::Result<()> {
        let dir = self.root.join(bucket);
        ownership::create_private_dir(&dir)?;
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

    #[test]
    fn a_committed_blob_is_trusted_until_anything_touches_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let commit = |bytes: &[u8]| {
            let mut tmp = cache.temp_file().unwrap();
            tmp.write_all(bytes).unwrap();
            let d = Digest::of(bytes);
            (cache.commit_blob(tmp, &d).unwrap(), d)
        };
        let (p, d) = commit(b"layer one");
        assert!(unchanged_since_commit(&p, &d));
        assert!(!unchanged_since_commit(&p, &Digest::of(b"another")));
        // Same length, different bytes. File times move in clock ticks (a few
        // ms): a write within the commit's own tick would go unseen, which is
        // why this only guards against later changes.
        std::thread::sleep(std::time::Duration::from_millis(30));
        fs::write(&p, b"layer 1!!").unwrap();
        assert!(!unchanged_since_commit(&p, &d));

        let (p, d) = commit(b"layer two");
        std::thread::sleep(std::time::Duration::from_millis(30));
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(!unchanged_since_commit(&p, &d), "a chmod moves ctime");
        // Never committed by this process.
        let other = dir.path().join("elsewhere");
        fs::write(&other, b"layer two").unwrap();
        assert!(!unchanged_since_commit(&other, &d));
    }
}
