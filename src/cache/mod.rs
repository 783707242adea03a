//! The content-addressed cache shared by every build on the machine.
//!
//! Layout under the cache root (each bucket name carries its format version,
//! so a future change of format starts a new bucket instead of misreading one):
//!
//! ```text
//! CACHEDIR.TAG               marks the directory as a cache (https://bford.info/cachedir/)
//! blobs-v1/sha256/<hex>      exact blob bytes, named by their digest
//! <bucket>-v<N>/<key>.json   small JSON records (layer index, layer facts, ...)
//! rootfs-v1/<key>/           root filesystems `run` materialized (see `rootfs`)
//! tmp/                       files being written; renamed into place when complete
//! locks/<name>.lock          advisory locks for work that must not run twice at once
//! ```
//!
//! Every write goes to `tmp/` first and is renamed into place, so a reader sees
//! a whole entry or none, and a crash leaves at most a stray temp file.
//!
//! The API, for modules that keep something here:
//!
//! - [`CacheBucket`] names every bucket and its version once; records are
//!   read and written by bucket ([`Cache::get_record`], [`Cache::put_record`],
//!   [`Cache::remove_record`]), never by a directory name spelled out.
//!   A new kind of entry is a new variant; a change of an entry's format is a
//!   new version in [`CacheBucket::dir_name`], and `cache prune` then removes
//!   the old version's directory ([`bucket::is_outdated`]).
//! - [`Cache::get_or_build`]`(bucket, key, build)` is the one way to make an
//!   entry that is expensive to build: lookup → lock `<bucket>-<key>` →
//!   re-check → `build` → commit the record. The entry type implements
//!   [`CacheEntry`] (the blobs it names; an entry whose blob is gone is a
//!   miss), the caller's error type implements `From<`[`CacheIoError`]`>`,
//!   and the result says whether it was a hit, built meanwhile by another
//!   process, or built by this call ([`Found`]). [`Cache::entry`] is the
//!   lookup alone.
//! - Blobs are written through [`Cache::temp_file`] (or [`BlobFile`]) and
//!   [`Cache::commit_blob`]; a cache value remembers what it committed, so
//!   [`Cache::unchanged_since_commit`] can vouch for a blob without reading it.
//! - [`Cache::open`] checks ownership (see `ownership.rs`) before use.

pub mod bucket;
mod commits;
mod entry;
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

pub use bucket::CacheBucket;
pub use entry::{CacheEntry, CacheIoError, Found};
pub use ownership::current_uid;
pub use second_level::{Inflated, SecondLevel, SharedLayer, SharedRecord};

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
        && bucket
            .and_then(Path::file_name)
            .is_some_and(|n| n == CacheBucket::Blobs.dir_name());
    let Some(root) = bucket.and_then(Path::parent).filter(|_| is_blob) else {
        return false;
    };
    let _ = fs::remove_file(path);
    let Ok(buckets) = fs::read_dir(root) else {
        return true;
    };
    for bucket in buckets.flatten() {
        let name = bucket.file_name().to_string_lossy().into_owned();
        if !CacheBucket::from_dir_name(&name).is_some_and(CacheBucket::holds_records) {
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

/// Where blobs live: `blobs-v1/sha256/`.
fn blob_dir(root: &Path) -> PathBuf {
    root.join(CacheBucket::Blobs).join("sha256")
}

/// Removes the directory tree at `path`, making its directories writable
/// first: a root filesystem keeps an image's read-only directories (0555),
/// whose entries could not be unlinked otherwise. Links are not followed.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    fn open_up(dir: &Path) {
        use std::os::unix::fs::PermissionsExt;
        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
        for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                open_up(&entry.path());
            }
        }
    }
    open_up(path);
    fs::remove_dir_all(path)
}

/// Marks a directory as a cache for backup and archiving tools
/// (<https://bford.info/cachedir/>); `discover` skips such directories too.
pub const CACHEDIR_TAG: &str = "CACHEDIR.TAG";
const CACHEDIR_TAG_TEXT: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
    # This file is a cache directory tag created by lambda-img.\n\
    # For information about cache directory tags see https://bford.info/cachedir/\n";

/// How old a temp file must be before it may be judged abandoned.
const TEMP_LOCK_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// A handle on the cache directory. Clones share one [`Cache::unchanged_since_commit`] memory.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
    commits: commits::Commits,
    /// The blob directory as resolved when the cache was opened: what
    /// [`Cache::is_own_blob`] compares a blob's directory with.
    resolved_blobs: Option<PathBuf>,
    /// Asked when an entry is missing here, given what is built here
    /// (`--cache-registry`); see [`Cache::get_or_build_if`].
    second_level: Option<std::sync::Arc<dyn SecondLevel>>,
}

impl PartialEq for Cache {
    fn eq(&self, other: &Cache) -> bool {
        self.root == other.root
    }
}

impl Eq for Cache {}

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
        for p in [blob_dir(&root), root.join("tmp"), root.join("locks")] {
            ownership::create_private_dir(&p).map_err(|source| CacheError::Io {
                path: p.clone(),
                source,
            })?;
        }
        ownership::check_cache_tree(&root, follow_root)?;
        let cache = Cache {
            resolved_blobs: fs::canonicalize(blob_dir(&root)).ok(),
            root,
            commits: Default::default(),
            second_level: None,
        };
        cache.tag_directory();
        cache.remove_stale_temp_files();
        Ok(cache)
    }

    /// Writes `CACHEDIR.TAG` when the root has none, whole or not at all
    /// (a temp file moved in without replacing one another build put there).
    /// The tag only helps backup tools, so a failure to write it is ignored.
    fn tag_directory(&self) {
        let path = self.root.join(CACHEDIR_TAG);
        if fs::symlink_metadata(&path).is_ok() {
            return;
        }
        let Ok(mut tmp) = self.temp_file() else { return };
        if tmp.write_all(CACHEDIR_TAG_TEXT.as_bytes()).is_ok() {
            let _ = tmp.persist_noclobber(&path);
        }
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

    /// This cache with `level` behind it: entries that can be shared
    /// ([`CacheEntry::to_shared`]) and are missing here are asked of it, and
    /// those built here are given to it.
    pub fn with_second_level(&self, level: std::sync::Arc<dyn SecondLevel>) -> Cache {
        Cache {
            second_level: Some(level),
            ..self.clone()
        }
    }

    /// This cache without its second level (for intermediate entries nobody
    /// else will ask for, such as the pieces of a dependency set).
    pub fn local_only(&self) -> Cache {
        Cache {
            second_level: None,
            ..self.clone()
        }
    }

    pub fn second_level(&self) -> Option<&dyn SecondLevel> {
        self.second_level.as_deref()
    }

    /// The second level itself, to put in front of another (see [`Cache::with_second_level`]).
    pub fn second_level_handle(&self) -> Option<std::sync::Arc<dyn SecondLevel>> {
        self.second_level.clone()
    }

    /// Where the blob with this digest lives (whether or not it is there yet).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        blob_dir(&self.root).join(digest.hex())
    }

    /// Whether `path` is a blob of this cache, as a regular file (not a
    /// symlink) readable by all (as [`Cache::commit_blob`] leaves them): what
    /// an output may hard-link without sharing anyone else's inode or changing a mode.
    pub fn is_own_blob(&self, path: &Path) -> bool {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = fs::symlink_metadata(path) else {
            return false;
        };
        if !meta.file_type().is_file() || meta.permissions().mode() & 0o7777 != 0o644 {
            return false;
        }
        let dir = path.parent().and_then(|d| fs::canonicalize(d).ok());
        dir.is_some() && dir == self.resolved_blobs
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
        self.commits.record(&dest, digest);
        Ok(dest)
    }

    /// Whether `path` is a blob this cache value (or a clone) committed as
    /// `digest` and nothing has touched since, so its bytes need no second
    /// read to be trusted (a layer just built is then linked into an output
    /// without hashing it again). File times move in clock ticks, so a write
    /// in the very tick of the commit would go unseen; nothing writes cache
    /// blobs in place (every writer renames a new file in), so this only has
    /// to catch damage done later.
    pub fn unchanged_since_commit(&self, path: &Path, digest: &Digest) -> bool {
        self.commits.unchanged(path, digest)
    }

    /// The directory of `bucket`.
    pub fn bucket_dir(&self, bucket: CacheBucket) -> PathBuf {
        self.root.join(bucket)
    }

    /// Writes the file `name` of `bucket` atomically, through `write` (buffered):
    /// for entries kept in a format of their own, streamed rather than held
    /// whole (the layers' binary stat indexes).
    pub fn put_file(
        &self,
        bucket: CacheBucket,
        name: &str,
        write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> io::Result<()> {
        let dir = self.root.join(bucket);
        ownership::create_private_dir(&dir)?;
        // Buffered: serde_json writes in small pieces, which unbuffered cost
        // a syscall each.
        let mut out = io::BufWriter::with_capacity(1 << 16, self.temp_file()?);
        write(&mut out)?;
        let tmp = out.into_inner().map_err(|e| e.into_error())?;
        tmp.persist(dir.join(name)).map_err(|e| e.error)?;
        Ok(())
    }

    /// Where the JSON record `key` of `bucket` lives (whether or not it is there).
    pub fn record_path(&self, bucket: CacheBucket, key: &str) -> PathBuf {
        self.root.join(bucket).join(format!("{key}.json"))
    }

    /// Reads a JSON record; a missing or unreadable record is `None` (a cache
    /// miss, never an error: the caller rebuilds it).
    pub fn get_record<T: DeserializeOwned>(&self, bucket: CacheBucket, key: &str) -> Option<T> {
        let file = File::open(self.record_path(bucket, key)).ok()?;
        let meta = file.metadata().ok()?;
        if !meta.is_file() || meta.len() > MAX_RECORD {
            return None;
        }
        // Parsed as it is read: a big record (a layer scan of a large tree)
        // is not held as bytes and as values at once.
        let reader = io::BufReader::with_capacity(1 << 16, io::Read::take(file, MAX_RECORD));
        serde_json::from_reader(reader).ok()
    }

    /// Writes a JSON record atomically, streamed (a big record is never
    /// one big string).
    pub fn put_record<T: Serialize>(&self, bucket: CacheBucket, key: &str, value: &T) -> io::Result<()> {
        self.put_file(bucket, &format!("{key}.json"), |out| {
            serde_json::to_writer(out, value).map_err(io::Error::from)
        })
    }

    /// Removes a record (for example one found to point at a missing blob).
    pub fn remove_record(&self, bucket: CacheBucket, key: &str) {
        let _ = fs::remove_file(self.record_path(bucket, key));
    }

    /// Takes an exclusive advisory lock named `name`, waiting for other
    /// processes that hold it. Used so that two builds sharing the cache do not
    /// do the same expensive work (compress a layer, download a blob) at once.
    pub fn lock(&self, name: &str) -> io::Result<CacheLock> {
        let file = self.lock_file(name)?;
        file.lock()?;
        Ok(CacheLock { _file: file })
    }

    /// Takes the advisory lock `name` shared, waiting while a process holds
    /// it exclusively: many holders say "in use", and [`Cache::try_lock`]
    /// fails while any holds it.
    pub fn lock_shared(&self, name: &str) -> io::Result<CacheLock> {
        let file = self.lock_file(name)?;
        file.lock_shared()?;
        Ok(CacheLock { _file: file })
    }

    /// Takes the lock `name` exclusively when nobody holds it; `None` when
    /// another process (or another handle here) holds it, shared or not.
    pub fn try_lock(&self, name: &str) -> io::Result<Option<CacheLock>> {
        let file = self.lock_file(name)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(CacheLock { _file: file })),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(e),
        }
    }

    fn lock_file(&self, name: &str) -> io::Result<File> {
        let path = self.root.join("locks").join(format!("{name}.lock"));
        fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_owns_only_its_own_blobs() {
        let dirs = tempfile::tempdir().unwrap();
        let blob_of = |cache: &Cache, bytes: &[u8]| {
            let mut tmp = cache.temp_file().unwrap();
            tmp.write_all(bytes).unwrap();
            cache.commit_blob(tmp, &Digest::of(bytes)).unwrap()
        };
        let one = Cache::open(dirs.path().join("one")).unwrap();
        let two = Cache::open(dirs.path().join("two")).unwrap();
        let (a, b) = (blob_of(&one, b"a"), blob_of(&two, b"b"));
        assert!(one.is_own_blob(&a));
        assert!(
            !one.is_own_blob(&b),
            "both caches are open in this process, but b is two's"
        );
        assert!(two.is_own_blob(&b) && !two.is_own_blob(&a));
        assert!(
            Cache::open(one.root()).unwrap().is_own_blob(&a),
            "the same directory opened again"
        );
        let link = a.with_file_name("0".repeat(64));
        std::os::unix::fs::symlink(&a, &link).unwrap();
        assert!(!one.is_own_blob(&link), "a symlink among its blobs is not");
    }

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
        cache.put_record(CacheBucket::Checks, "k", &vec![1, 2]).unwrap();
        assert_eq!(
            cache.get_record::<Vec<i32>>(CacheBucket::Checks, "k"),
            Some(vec![1, 2])
        );
        assert_eq!(cache.get_record::<Vec<i32>>(CacheBucket::Checks, "missing"), None);
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
        assert!(cache.unchanged_since_commit(&p, &d));
        assert!(cache.clone().unchanged_since_commit(&p, &d), "clones share it");
        assert!(
            !Cache::open(dir.path()).unwrap().unchanged_since_commit(&p, &d),
            "another cache value did not commit it"
        );
        assert!(!cache.unchanged_since_commit(&p, &Digest::of(b"another")));
        // Same length, different bytes. File times move in clock ticks (a few
        // ms): a write within the commit's own tick would go unseen, which is
        // why this only guards against later changes.
        std::thread::sleep(std::time::Duration::from_millis(30));
        fs::write(&p, b"layer 1!!").unwrap();
        assert!(!cache.unchanged_since_commit(&p, &d));

        let (p, d) = commit(b"layer two");
        std::thread::sleep(std::time::Duration::from_millis(30));
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(!cache.unchanged_since_commit(&p, &d), "a chmod moves ctime");
        // Never committed by this process.
        let other = dir.path().join("elsewhere");
        fs::write(&other, b"layer two").unwrap();
        assert!(!cache.unchanged_since_commit(&other, &d));
    }

    #[test]
    fn the_root_is_tagged_once_as_a_cache_directory() {
        let dir = tempfile::tempdir().unwrap();
        let tag = dir.path().join(CACHEDIR_TAG);
        Cache::open(dir.path()).unwrap();
        let text = fs::read_to_string(&tag).unwrap();
        assert!(
            text.starts_with("Signature: 8a477f597d28d172789f06886806bc55"),
            "{text}"
        );
        // A second open neither rewrites nor replaces it.
        let before = fs::metadata(&tag).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(30));
        Cache::open(dir.path()).unwrap();
        let after = fs::metadata(&tag).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            (before.ino(), before.mtime_nsec()),
            (after.ino(), after.mtime_nsec())
        );
        assert_eq!(fs::read_to_string(&tag).unwrap(), text);
        assert_eq!(
            fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0,
            "no temp file left"
        );
    }
}
