//! `lambda-img cache`: how much the cache holds, and pruning it.
//!
//! Blob age is the file's mtime; a cache hit refreshes it (see
//! `registry::fetch_blob_to_cache`), so "older than" means "not used since".
//! A blob is deleted under its `blob-<hex>` lock so a build fetching it at the
//! same moment is not disturbed.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::Cache;
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
    pub total_bytes: u64,
}

#[derive(Debug, Clone, Default)]
pub struct PruneOptions {
    /// Remove everything (blobs, records, temp files).
    pub all: bool,
    /// Remove blobs not used for this long.
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
    for (path, size) in records(cache)? {
        let _ = path;
        u.records += 1;
        u.record_bytes += size;
    }
    for (_, size, _) in files_in(&cache.root().join("tmp"))? {
        u.temp_files += 1;
        u.temp_bytes += size;
    }
    u.total_bytes = u.blob_bytes + u.record_bytes + u.temp_bytes;
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
    Ok(report)
}

/// (path, digest, size, mtime) of every blob.
fn blobs(cache: &Cache) -> io::Result<Vec<(PathBuf, Digest, u64, SystemTime)>> {
    let dir = cache.root().join("blobs-v1/sha256");
    Ok(files_in(&dir)?
        .into_iter()
        .filter_map(|(path, size, mtime)| {
            let digest = Digest::from_hex(path.file_name()?.to_str()?).ok()?;
            Some((path, digest, size, mtime))
        })
        .collect())
}

/// Every JSON record in the `<bucket>-vN` directories.
fn records(cache: &Cache) -> io::Result<Vec<(PathBuf, u64)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(cache.root())? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !entry.file_type()?.is_dir() || name.starts_with("blobs-") || name == "tmp" || name == "locks" {
            continue;
        }
        for (path, size, _) in files_in(&entry.path())? {
            out.push((path, size));
        }
    }
    Ok(out)
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
        cache
            .put_record(super::super::CacheBucket::LayerFacts, "k", &1)
            .unwrap();
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
}
