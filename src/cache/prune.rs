//! `lambda-img cache`: how much the cache holds, and pruning it.
//!
//! Blob age is the file's mtime; a cache hit refreshes it (see
//! `registry::fetch_blob_to_cache`), so "older than" means "not used since".
//! A blob is deleted under its `blob-<hex>` lock so a build fetching it at the
//! same moment is not disturbed.
//!
//! Every prune also removes the buckets of other format versions
//! (`layers-v0`, see [`super::bucket::is_outdated`]): nothing reads them.
//! Root filesystems `run` materialized (`rootfs-v1/<key>/` with its
//! `<key>.dirs.json`) go with `--all`, or when not used for `--older-than`
//! (a use refreshes the sidecar's mtime). A tree is first renamed into `tmp/`,
//! so a reader sees it whole or not at all, and deleted there.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::bucket::is_outdated;
use super::{Cache, CacheBucket};
use crate::image::Digest;
use crate::report::Reporter;

/// What the cache holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CacheUsage {
    pub root: PathBuf,
    pub blobs: u64,
    pub blob_bytes: u64,
    pub records: u64,
    pub record_bytes: u64,
    pub temp_files: u64,
    pub temp_bytes: u64,
    /// Materialized root filesystems (`rootfs-v1`), files shared between
    /// snapshots (hard links) counted once.
    pub rootfs_snapshots: u64,
    pub rootfs_bytes: u64,
    /// Buckets of other format versions, which the next prune removes.
    pub old_buckets: u64,
    pub old_bucket_bytes: u64,
    pub total_bytes: u64,
}

#[derive(Debug, Clone, Default)]
pub struct PruneOptions {
    /// Remove everything (blobs, records, temp files).
    pub all: bool,
    /// Remove blobs and root filesystems not used for this long.
    pub older_than: Option<Duration>,
    /// Then remove the least recently used blobs until blobs take at most this.
    pub max_bytes: Option<u64>,
    /// Only report what would be removed.
    pub dry_run: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PruneReport {
    pub removed_blobs: u64,
    pub removed_records: u64,
    pub removed_temp_files: u64,
    pub removed_rootfs: u64,
    pub removed_old_buckets: u64,
    /// Root filesystems a running `run` uses, left in place.
    pub kept_rootfs_in_use: u64,
    /// Bytes of the files removed (a rootfs file shared with a snapshot that
    /// stays is counted, though its space is not freed).
    pub freed_bytes: u64,
    pub dry_run: bool,
}

/// Temp files older than this are left over from crashed builds.
const STALE_TEMP: Duration = Duration::from_secs(24 * 3600);

/// Counts blobs, records and temp files and their sizes.
pub fn usage(cache: &Cache) -> io::Result<CacheUsage> {
    let mut u = CacheUsage {
        root: cache.root().to_path_buf(),
        ..Default::default()
    };
    for (_, _, size, _) in blobs(cache)? {
        u.blobs += 1;
        u.blob_bytes += size;
    }
    for (_, size) in records(cache)? {
        u.records += 1;
        u.record_bytes += size;
    }
    for (_, size, _) in files_in(&cache.root().join("tmp"))? {
        u.temp_files += 1;
        u.temp_bytes += size;
    }
    let mut seen = Inodes::default();
    for snapshot in rootfs_snapshots(cache)? {
        u.rootfs_snapshots += 1;
        u.rootfs_bytes += snapshot.bytes(&mut seen);
    }
    for dir in old_buckets(cache)? {
        u.old_buckets += 1;
        u.old_bucket_bytes += tree_bytes(&dir, &mut seen);
    }
    u.total_bytes = u.blob_bytes + u.record_bytes + u.temp_bytes + u.rootfs_bytes + u.old_bucket_bytes;
    Ok(u)
}

/// Removes what `options` selects; stale temp files are always removed.
pub fn prune(cache: &Cache, options: &PruneOptions, reporter: &dyn Reporter) -> io::Result<PruneReport> {
    let now = SystemTime::now();
    let mut report = PruneReport {
        dry_run: options.dry_run,
        ..Default::default()
    };
    let mut remaining = blobs(cache)?;
    // Oldest first, so a size limit drops the least recently used.
    remaining.sort_by_key(|(_, _, _, mtime)| *mtime);
    let mut kept_bytes: u64 = remaining.iter().map(|(_, _, s, _)| s).sum();
    for (path, digest, size, mtime) in remaining {
        let age = now.duration_since(mtime).unwrap_or_default();
        let too_old = options.older_than.is_some_and(|limit| age >= limit);
        let over = options.max_bytes.is_some_and(|max| kept_bytes > max);
        if !(options.all || too_old || over) {
            continue;
        }
        if !options.dry_run {
            let _lock = cache.lock(&format!("blob-{}", digest.hex()))?;
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
        }
        reporter.detail(&format!("removed blob {digest} ({size} bytes)"));
        kept_bytes -= size;
        report.removed_blobs += 1;
        report.freed_bytes += size;
    }
    if options.all {
        for (path, size) in records(cache)? {
            if !options.dry_run {
                let _ = fs::remove_file(&path);
            }
            report.removed_records += 1;
            report.freed_bytes += size;
        }
    }
    let mut seen = Inodes::default();
    for snapshot in rootfs_snapshots(cache)? {
        let age = now.duration_since(snapshot.last_used).unwrap_or_default();
        if !(options.all || options.older_than.is_some_and(|limit| age >= limit)) {
            continue;
        }
        // A running `run` or `--serve` holds it: its sandbox's root must not vanish.
        let Some(_unused) = cache.try_lock(&snapshot_in_use_lock(&snapshot.key))? else {
            reporter.detail(&format!(
                "kept root filesystem {}: a running `lambda-img run` uses it",
                snapshot.key
            ));
            report.kept_rootfs_in_use += 1;
            continue;
        };
        let bytes = snapshot.bytes(&mut seen);
        if !options.dry_run {
            remove_snapshot(cache, &snapshot)?;
        }
        reporter.detail(&format!(
            "removed root filesystem {} ({bytes} bytes)",
            snapshot.key
        ));
        report.removed_rootfs += 1;
        report.freed_bytes += bytes;
    }
    for dir in old_buckets(cache)? {
        let bytes = tree_bytes(&dir, &mut seen);
        if !options.dry_run {
            remove_whole(cache, &dir)?;
        }
        reporter.detail(&format!(
            "removed {}, a bucket of another format version ({bytes} bytes)",
            dir.display()
        ));
        report.removed_old_buckets += 1;
        report.freed_bytes += bytes;
    }
    for (path, size, mtime) in files_in(&cache.root().join("tmp"))? {
        let stale = now.duration_since(mtime).unwrap_or_default() >= STALE_TEMP;
        if options.all && !stale {
            // A temp file younger than a day may belong to a running build.
            continue;
        }
        if stale {
            if !options.dry_run {
                let _ = fs::remove_file(&path);
            }
            report.removed_temp_files += 1;
            report.freed_bytes += size;
        }
    }
    // Work directories of killed installs and runs (and of a killed prune).
    for entry in fs::read_dir(cache.root().join("tmp"))?.flatten() {
        let path = entry.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        let age = meta
            .modified()
            .map(|m| now.duration_since(m).unwrap_or_default())
            .unwrap_or_default();
        if meta.is_dir() && age >= STALE_TEMP {
            let bytes = tree_bytes(&path, &mut seen);
            if !options.dry_run {
                let _ = super::remove_tree(&path);
            }
            report.removed_temp_files += 1;
            report.freed_bytes += bytes;
        }
    }
    Ok(report)
}

/// (path, digest, size, mtime) of every blob.
fn blobs(cache: &Cache) -> io::Result<Vec<(PathBuf, Digest, u64, SystemTime)>> {
    let dir = super::blob_dir(cache.root());
    Ok(files_in(&dir)?
        .into_iter()
        .filter_map(|(path, size, mtime)| {
            let digest = Digest::from_hex(path.file_name()?.to_str()?).ok()?;
            Some((path, digest, size, mtime))
        })
        .collect())
}

/// Every JSON record in the current record buckets.
fn records(cache: &Cache) -> io::Result<Vec<(PathBuf, u64)>> {
    let mut out = Vec::new();
    for bucket in CacheBucket::ALL.into_iter().filter(|b| b.holds_records()) {
        for (path, size, _) in files_in(&cache.bucket_dir(bucket))? {
            out.push((path, size));
        }
    }
    Ok(out)
}

/// The directories under the root that are buckets of other format versions.
fn old_buckets(cache: &Cache) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(cache.root())? {
        let entry = entry?;
        if entry.file_type()?.is_dir() && is_outdated(&entry.file_name().to_string_lossy()) {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// A materialized root filesystem: `rootfs-v1/<key>/` and its sidecar
/// `<key>.dirs.json` (either may be missing after a crash).
struct Snapshot {
    key: String,
    tree: PathBuf,
    sidecar: PathBuf,
    last_used: SystemTime,
}

impl Snapshot {
    fn bytes(&self, seen: &mut Inodes) -> u64 {
        tree_bytes(&self.tree, seen) + tree_bytes(&self.sidecar, seen)
    }
}

/// The snapshots in `rootfs-v1`, each last used when its sidecar (else its
/// tree) was last modified.
fn rootfs_snapshots(cache: &Cache) -> io::Result<Vec<Snapshot>> {
    let bucket = cache.bucket_dir(CacheBucket::Rootfs);
    let entries = match fs::read_dir(&bucket) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut keys = std::collections::BTreeSet::new();
    for entry in entries {
        let name = entry?.file_name().to_string_lossy().into_owned();
        keys.insert(name.strip_suffix(SIDECAR_SUFFIX).unwrap_or(&name).to_string());
    }
    Ok(keys
        .into_iter()
        .map(|key| {
            let tree = bucket.join(&key);
            let sidecar = bucket.join(format!("{key}{SIDECAR_SUFFIX}"));
            let mtime = |p: &Path| fs::symlink_metadata(p).and_then(|m| m.modified()).ok();
            let last_used = mtime(&sidecar)
                .or_else(|| mtime(&tree))
                .unwrap_or(SystemTime::UNIX_EPOCH);
            Snapshot {
                key,
                tree,
                sidecar,
                last_used,
            }
        })
        .collect())
}

/// What `rootfs` names a snapshot's directory-modes file after its tree.
const SIDECAR_SUFFIX: &str = ".dirs.json";

/// The lock a `run` holds shared while it uses the snapshot `key` (see
/// `rootfs::Rootfs::in_use`); prune removes only snapshots nobody holds.
pub fn snapshot_in_use_lock(key: &str) -> String {
    format!("rootfs-use-{key}")
}

/// Removes a snapshot under the lock `run` takes to make it, the tree
/// before its sidecar (a tree in place always has one).
fn remove_snapshot(cache: &Cache, snapshot: &Snapshot) -> io::Result<()> {
    let _lock = cache.lock(&format!("rootfs-{}", snapshot.key))?;
    if fs::symlink_metadata(&snapshot.tree).is_ok() {
        remove_whole(cache, &snapshot.tree)?;
    }
    match fs::remove_file(&snapshot.sidecar) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Moves `path` into `tmp/` (one rename: it vanishes whole) and deletes it there.
fn remove_whole(cache: &Cache, path: &Path) -> io::Result<()> {
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let away = cache
        .root()
        .join("tmp")
        .join(format!("prune-{}-{n}", std::process::id()));
    fs::rename(path, &away)?;
    if fs::symlink_metadata(&away)?.is_dir() {
        super::remove_tree(&away)
    } else {
        fs::remove_file(&away)
    }
}

/// Inodes already counted, so hard links count once.
type Inodes = std::collections::HashSet<(u64, u64)>;

/// The bytes of the regular files under `path` (or of `path` itself) not yet
/// in `seen`. Symbolic links are not followed.
fn tree_bytes(path: &Path, seen: &mut Inodes) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_dir() {
        let entries = fs::read_dir(path).into_iter().flatten().flatten();
        return entries.map(|e| tree_bytes(&e.path(), seen)).sum();
    }
    if meta.is_file() && seen.insert((meta.dev(), meta.ino())) {
        meta.len()
    } else {
        0
    }
}

fn files_in(dir: &Path) -> io::Result<Vec<(PathBuf, u64, SystemTime)>> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let meta = match entry.metadata() {
            Ok(m) if m.is_file() => m,
            _ => continue,
        };
        out.push((
            entry.path(),
            meta.len(),
            meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Silent;
    use std::io::Write;

    fn put(cache: &Cache, bytes: &[u8], age: Duration) -> Digest {
        let mut tmp = cache.temp_file().unwrap();
        tmp.write_all(bytes).unwrap();
        let d = Digest::of(bytes);
        let p = cache.commit_blob(tmp, &d).unwrap();
        let f = fs::File::options().write(true).open(p).unwrap();
        f.set_modified(SystemTime::now() - age).unwrap();
        d
    }

    #[test]
    fn usage_and_prune_by_age_size_and_all() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let old = put(&cache, &[1u8; 100], Duration::from_secs(10 * 86400));
        let mid = put(&cache, &[2u8; 50], Duration::from_secs(2 * 86400));
        let new = put(&cache, &[3u8; 10], Duration::ZERO);
        cache.put_record(CacheBucket::LayerFacts, "k", &1).unwrap();
        let u = usage(&cache).unwrap();
        assert_eq!((u.blobs, u.blob_bytes, u.records), (3, 160, 1));

        let dry = PruneOptions {
            older_than: Some(Duration::from_secs(5 * 86400)),
            dry_run: true,
            ..Default::default()
        };
        assert_eq!(prune(&cache, &dry, &Silent).unwrap().removed_blobs, 1);
        assert!(cache.has_blob(&old));

        let by_age = PruneOptions {
            dry_run: false,
            ..dry
        };
        let r = prune(&cache, &by_age, &Silent).unwrap();
        assert_eq!((r.removed_blobs, r.freed_bytes), (1, 100));
        assert!(!cache.has_blob(&old) && cache.has_blob(&mid));

        let by_size = PruneOptions {
            max_bytes: Some(20),
            ..Default::default()
        };
        prune(&cache, &by_size, &Silent).unwrap();
        assert!(
            !cache.has_blob(&mid) && cache.has_blob(&new),
            "least recently used goes first"
        );

        let all = PruneOptions {
            all: true,
            ..Default::default()
        };
        let r = prune(&cache, &all, &Silent).unwrap();
        assert_eq!((r.removed_blobs, r.removed_records), (1, 1));
        assert_eq!(usage(&cache).unwrap().total_bytes, 0);
    }

    /// A snapshot as `rootfs` leaves one: a tree with a read-only directory
    /// and its sidecar, last used `age` ago.
    fn snapshot(cache: &Cache, key: &str, age: Duration) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let tree = cache.bucket_dir(CacheBucket::Rootfs).join(key);
        fs::create_dir_all(tree.join("usr/bin")).unwrap();
        fs::write(tree.join("usr/bin/tool"), [7u8; 300]).unwrap();
        fs::set_permissions(tree.join("usr"), fs::Permissions::from_mode(0o555)).unwrap();
        let sidecar = tree.with_extension("dirs.json");
        fs::write(&sidecar, b"{}").unwrap();
        let f = fs::File::options().write(true).open(&sidecar).unwrap();
        f.set_modified(SystemTime::now() - age).unwrap();
        tree
    }

    #[test]
    fn old_version_buckets_and_unused_root_filesystems_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let root = dir.path();
        for old in ["layers-v0", "archive-gzip-v1"] {
            fs::create_dir_all(root.join(old)).unwrap();
            fs::write(root.join(old).join("k.json"), [0u8; 40]).unwrap();
        }
        fs::create_dir_all(root.join("not-a-bucket")).unwrap();
        cache.put_record(CacheBucket::Layers, "k", &1).unwrap();
        let used = snapshot(&cache, "aaaa", Duration::ZERO);
        let unused = snapshot(&cache, "bbbb", Duration::from_secs(40 * 86400));
        // Another link to a file of `used`: counted once.
        fs::hard_link(used.join("usr/bin/tool"), root.join("rootfs-v1/cccc-link")).unwrap();

        let u = usage(&cache).unwrap();
        assert_eq!(
            (u.records, u.old_buckets, u.old_bucket_bytes),
            (1, 2, 80),
            "{u:?}"
        );
        assert_eq!(u.rootfs_snapshots, 3, "{u:?}");
        assert_eq!(u.rootfs_bytes, 300 + 300 + 2 + 2, "{u:?}");

        let by_age = PruneOptions {
            older_than: Some(Duration::from_secs(30 * 86400)),
            ..Default::default()
        };
        let dry = prune(
            &cache,
            &PruneOptions {
                dry_run: true,
                ..by_age.clone()
            },
            &Silent,
        )
        .unwrap();
        assert_eq!((dry.removed_old_buckets, dry.removed_rootfs), (2, 1));
        assert!(root.join("layers-v0").exists() && unused.exists());

        let r = prune(&cache, &by_age, &Silent).unwrap();
        assert_eq!(
            (r.removed_old_buckets, r.removed_rootfs, r.removed_records),
            (2, 1, 0)
        );
        assert!(!root.join("layers-v0").exists() && !root.join("archive-gzip-v1").exists());
        assert!(!unused.exists() && !unused.with_extension("dirs.json").exists());
        assert!(
            used.join("usr/bin/tool").exists(),
            "a snapshot used recently stays"
        );
        assert!(root.join("not-a-bucket").exists(), "not ours to judge");
        assert_eq!(cache.get_record::<i32>(CacheBucket::Layers, "k"), Some(1));
        assert_eq!(
            fs::read_dir(root.join("tmp")).unwrap().count(),
            0,
            "nothing left in tmp/"
        );

        let all = PruneOptions {
            all: true,
            ..Default::default()
        };
        let r = prune(&cache, &all, &Silent).unwrap();
        assert_eq!(r.removed_rootfs, 2);
        assert_eq!(fs::read_dir(root.join("rootfs-v1")).unwrap().count(), 0);
        assert_eq!(usage(&cache).unwrap().total_bytes, 0);
    }
}
