//! The layer cache key, and the per-layer stat index that lets a rebuild of
//! unchanged files skip reading them.
//!
//! The key is the sha256 of a canonical encoding of everything that decides
//! the layer's bytes: format version, mtime, gzip level, block
//! size, and for each entry in order its image path, type, mode, size,
//! symlink target and content sha256. Two trees with the same key produce the
//! same blob, wherever they live on disk.
//!
//! The stat index (`layer-stat-v1/<spec identity>.json`) maps each file of a
//! layer to the (size, mtime, ctime, inode, device) it had when hashed and the
//! content sha256 then. A file whose stat still matches is not read again.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::select::{Entry, EntryKind, FileStat};
use super::{LayerError, LayerSettings, LayerSpec};
use crate::cache::{Cache, CacheBucket};
use crate::gzip::BLOCK_SIZE;

/// Bumped whenever the bytes written for the same inputs change (tar layout,
/// compressor framing): old cache entries then simply stop matching.
/// 3: incompressible 16 KiB segments are written stored (`gzip::incompressible`).
pub const LAYER_FORMAT_VERSION: u32 = 3;
pub const STAT_BUCKET: CacheBucket = CacheBucket::LayerStat;

/// A file modified this soon after it was hashed could keep the same
/// timestamps (their granularity is the kernel's clock tick), so such files
/// are not remembered.
const RACY_WINDOW_NS: i64 = 100_000_000;

#[derive(Debug, Default, Serialize, Deserialize)]
struct StatIndex {
    /// image path → what was hashed
    files: BTreeMap<String, StatRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StatRecord {
    source: String,
    stat: FileStat,
    blake3: ContentHash,
}

/// A file's content hash, for cache keys only: BLAKE3, which hashes a tree of
/// small files about three times as fast as SHA-256 here (a cold build reads
/// every file for it before compressing anything). It never leaves the cache:
/// registries and image configs see only the SHA-256 digests of blobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContentHash(String);

impl ContentHash {
    pub fn hex(&self) -> &str {
        &self.0
    }
}

/// A stable name for a layer spec (its name and inputs), used to find its stat index.
pub fn spec_identity(spec: &LayerSpec) -> String {
    let mut h = Sha256::new();
    field(&mut h, b"lambda-img layer spec v1");
    field(&mut h, spec.name.as_bytes());
    for i in &spec.inputs {
        field(&mut h, i.source.as_os_str().as_encoded_bytes());
        field(&mut h, i.destination.as_bytes());
        field(&mut h, i.include.join("\0").as_bytes());
        field(&mut h, i.exclude.join("\0").as_bytes());
        let ignore = i.ignore_file.as_ref().map(|p| p.as_os_str().as_encoded_bytes());
        field(&mut h, ignore.unwrap_or(b"-"));
        field(&mut h, format!("{:?}", i.file_mode).as_bytes());
    }
    hex::encode(h.finalize())
}

/// Length-prefixed, so no two different field lists encode the same.
fn field(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

/// The cache key of a layer made of `entries` (with `digests[i]` the content
/// digest of `entries[i]` when it is a file).
pub fn layer_key(entries: &[Entry], digests: &[Option<ContentHash>], settings: &LayerSettings) -> String {
    let mut h = Sha256::new();
    field(&mut h, b"lambda-img layer");
    field(&mut h, &LAYER_FORMAT_VERSION.to_le_bytes());
    // No media family: it names the blob's media type, not its bytes, so an
    // image whose new base moved from Docker to OCI types reuses its layers.
    field(&mut h, &settings.mtime.to_le_bytes());
    field(&mut h, &settings.gzip_level.to_le_bytes());
    field(&mut h, &(BLOCK_SIZE as u64).to_le_bytes());
    for (e, d) in entries.iter().zip(digests) {
        field(&mut h, e.path.as_bytes());
        let (ty, size, target): (&[u8], u64, &str) = match &e.kind {
            EntryKind::Dir => (b"d", 0, ""),
            EntryKind::File { stat, .. } => (b"f", stat.size, ""),
            EntryKind::Symlink { target } => (b"l", 0, target),
        };
        field(&mut h, ty);
        field(&mut h, &e.mode.to_le_bytes());
        field(&mut h, &size.to_le_bytes());
        field(&mut h, target.as_bytes());
        field(&mut h, d.as_ref().map_or("", |d| d.hex()).as_bytes());
    }
    hex::encode(h.finalize())
}

/// Content digests of the file entries (`None` for others), from the stat
/// index where the stat still matches, else by reading the file (on up to
/// `threads` threads). Updates the index. Returns the digests and how many
/// files had to be read.
pub fn content_digests(
    entries: &[Entry],
    cache: &Cache,
    spec_id: &str,
    threads: usize,
) -> Result<(Vec<Option<ContentHash>>, usize), LayerError> {
    let started_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    let old: StatIndex = cache.get_record(STAT_BUCKET, spec_id).unwrap_or_default();
    let mut digests: Vec<Option<ContentHash>> = vec![None; entries.len()];
    let mut misses = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if let EntryKind::File { source, stat } = &e.kind {
            match old.files.get(&e.path) {
                Some(r) if r.stat == *stat && r.source == source.to_string_lossy() => {
                    digests[i] = Some(r.blake3.clone())
                }
                _ => misses.push(i),
            }
        }
    }
    let hashed = hash_files(entries, &misses, threads)?;
    let read = hashed.len();
    for (i, d) in hashed {
        digests[i] = Some(d);
    }

    let mut new = StatIndex::default();
    for (e, d) in entries.iter().zip(&digests) {
        if let (EntryKind::File { source, stat }, Some(d)) = (&e.kind, d) {
            let racy = stat.mtime_ns.max(stat.ctime_ns) > started_ns - RACY_WINDOW_NS;
            if !racy {
                let rec = StatRecord {
                    source: source.to_string_lossy().into_owned(),
                    stat: *stat,
                    blake3: d.clone(),
                };
                new.files.insert(e.path.clone(), rec);
            }
        }
    }
    if new.files != old.files {
        // The index only saves work: failing to write it must not fail the build.
        let _ = cache.put_record(STAT_BUCKET, spec_id, &new);
    }
    Ok((digests, read))
}

/// Forgets a spec's stat index (a staging tree about to be deleted).
pub fn forget_stat_index(cache: &Cache, spec: &LayerSpec) {
    cache.remove_record(STAT_BUCKET, &spec_identity(spec));
}

fn hash_files(
    entries: &[Entry],
    which: &[usize],
    threads: usize,
) -> Result<Vec<(usize, ContentHash)>, LayerError> {
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::with_capacity(which.len()));
    let first_error = Mutex::new(None);
    let workers = threads.max(1).min(which.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                let mut buf = vec![0u8; 256 * 1024];
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&i) = which.get(k) else { return };
                    let EntryKind::File { source, .. } = &entries[i].kind else {
                        continue;
                    };
                    match hash_file(source, &mut buf) {
                        Ok(d) => results.lock().unwrap().push((i, d)),
                        Err(e) => {
                            first_error
                                .lock()
                                .unwrap()
                                .get_or_insert(LayerError::from_io(source.clone(), e));
                            next.store(which.len(), Ordering::Relaxed);
                            return;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().unwrap() {
        return Err(e);
    }
    Ok(results.into_inner().unwrap())
}

fn hash_file(path: &std::path::Path, buf: &mut [u8]) -> io::Result<ContentHash> {
    let mut f = File::open(path)?;
    let mut h = blake3::Hasher::new();
    loop {
        match f.read(buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
    }
    Ok(ContentHash(h.finalize().to_hex().to_string()))
}
