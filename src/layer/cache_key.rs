//! The layer cache key, and the per-layer stat index that lets a rebuild of
//! unchanged files skip reading them.
//!
//! The key is the sha256 of a canonical encoding of everything that decides
//! the layer's bytes: format version, mtime, gzip level, block
//! size, and for each entry in order its image path, type, mode, size,
//! symlink target and content sha256. Two trees with the same key produce the
//! same blob, wherever they live on disk.
//!
//! The stat index (`layer-stat-v3/<spec identity>.bin`) lists each file of
//! a layer, in image-path order, with the (size, mtime, ctime, inode, device)
//! it had when hashed and the content hash then. A file whose stat still
//! matches is not read again. It is a compact binary file read and written in
//! one streaming pass beside the (equally sorted) selection, so a tree of
//! half a million files costs no per-file memory beyond the selection's own.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest as _, Sha256};

use super::select::{Entry, EntryKind, FileStat, Selection};
use super::{LayerError, LayerSettings, LayerSpec};
use crate::cache::{Cache, CacheBucket};
use crate::gzip::BLOCK_SIZE;

/// Bumped whenever the bytes written for the same inputs change (tar layout,
/// compressor framing): old cache entries then simply stop matching.
/// 3: incompressible 16 KiB segments are written stored (`gzip::incompressible`).
pub const LAYER_FORMAT_VERSION: u32 = 3;
pub const STAT_BUCKET: CacheBucket = CacheBucket::LayerStat;
/// First bytes of a stat index file.
const STAT_MAGIC: &[u8; 8] = b"listat3\n";

/// A file modified this soon after it was hashed could keep the same
/// timestamps (their granularity is the kernel's clock tick), so such files
/// are not remembered.
const RACY_WINDOW_NS: i64 = 100_000_000;

/// A file's content hash, for cache keys only: BLAKE3, which hashes a tree of
/// small files about three times as fast as SHA-256 here (a cold build reads
/// every file for it before compressing anything). It never leaves the cache:
/// registries and image configs see only the SHA-256 digests of blobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentHash([u8; 32]);

impl ContentHash {
    pub fn hex(&self) -> String {
        hex::encode(self.0)
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
pub fn layer_key(entries: &Selection, digests: &[Option<ContentHash>], settings: &LayerSettings) -> String {
    let mut key = KeyHasher::new(settings);
    for (e, d) in entries.iter().zip(digests) {
        key.add(&e, d.as_ref());
    }
    key.finish()
}

/// [`layer_key`] made an entry at a time, in layer order (a build in a new
/// cache keys the layer as it writes it).
pub(super) struct KeyHasher {
    h: Sha256,
    hex_buf: [u8; 64],
}

impl KeyHasher {
    pub(super) fn new(settings: &LayerSettings) -> KeyHasher {
        let mut h = Sha256::new();
        field(&mut h, b"lambda-img layer");
        field(&mut h, &LAYER_FORMAT_VERSION.to_le_bytes());
        // No media family: it names the blob's media type, not its bytes, so an
        // image whose new base moved from Docker to OCI types reuses its layers.
        field(&mut h, &settings.mtime.to_le_bytes());
        field(&mut h, &settings.gzip_level.to_le_bytes());
        field(&mut h, &(BLOCK_SIZE as u64).to_le_bytes());
        KeyHasher { h, hex_buf: [0; 64] }
    }

    /// The next entry, with its content digest when it is a file.
    pub(super) fn add(&mut self, e: &Entry<'_>, digest: Option<&ContentHash>) {
        let h = &mut self.h;
        field(h, e.path.as_bytes());
        let (ty, size, target): (&[u8], u64, &str) = match e.kind {
            EntryKind::Dir => (b"d", 0, ""),
            EntryKind::File { stat, .. } => (b"f", stat.size, ""),
            EntryKind::Symlink { target } => (b"l", 0, target),
        };
        field(h, ty);
        field(h, &e.mode.to_le_bytes());
        field(h, &size.to_le_bytes());
        field(h, target.as_bytes());
        // The hex form, as the key has always hashed it.
        let hex: &[u8] = match digest {
            Some(d) => {
                hex::encode_to_slice(d.0, &mut self.hex_buf).expect("64 hex digits for 32 bytes");
                &self.hex_buf
            }
            None => b"",
        };
        field(h, hex);
    }

    pub(super) fn finish(self) -> String {
        hex::encode(self.h.finalize())
    }
}

/// Content digests of the file entries (`None` for others), from the stat
/// index where the stat still matches, else by reading the file (on up to
/// `threads` threads). Updates the index. Returns the digests and how many
/// files had to be read.
pub fn content_digests(
    entries: &Selection,
    cache: &Cache,
    spec_id: &str,
    threads: usize,
) -> Result<(Vec<Option<ContentHash>>, usize), LayerError> {
    let started_ns = now_ns();
    let path = stat_index_path(cache, spec_id);
    let mut old = File::open(&path)
        .ok()
        .and_then(|f| IndexReader::new(BufReader::with_capacity(1 << 16, f)));
    let mut digests: Vec<Option<ContentHash>> = vec![None; entries.len()];
    // Old records that matched no file, or a file whose stat moved: the
    // index on disk no longer says what it should.
    let mut stale = old.is_none();
    for (i, e) in entries.iter().enumerate() {
        let EntryKind::File { source, stat } = e.kind else {
            continue;
        };
        let found = match &mut old {
            Some(reader) => reader.seek(e.path, &mut stale),
            None => None,
        };
        if let Some(r) = found
            && r.stat == stat
            && r.input == source.input as u64
        {
            digests[i] = Some(r.hash);
        }
    }
    if let Some(reader) = &mut old {
        stale |= reader.has_more();
    }
    drop(old);
    let read = hash_missing(entries, &mut digests, threads)?;
    if stale || read > 0 {
        // The index only saves work: failing to write it must not fail the build.
        let _ = write_stat_index(cache, spec_id, entries, &digests, started_ns);
    }
    Ok((digests, read))
}

/// The clock, as the stat index compares it with files' time stamps.
pub(super) fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Runs `write`, which makes a layer of `spec_id`'s entries and calls the
/// callback it is given with each entry in layer order (and a file's content
/// hash, made from the read that put it in the layer); keys the layer and
/// writes its stat index from those calls as they come, so nothing per file
/// is held. Returns what `write` made and the key, or `None` when the index
/// could not even be started (nothing was made: the caller keys the usual
/// way, which reports the cache's trouble if it lasts).
pub(super) fn key_while_writing<T>(
    cache: &Cache,
    spec_id: &str,
    settings: &LayerSettings,
    write: impl FnOnce(&mut dyn FnMut(&Entry<'_>, Option<&ContentHash>)) -> Result<T, LayerError>,
) -> Result<Option<(T, String)>, LayerError> {
    let started_ns = now_ns();
    let mut key = KeyHasher::new(settings);
    let mut made = None;
    // The index only saves work: failing to write it must not fail the build.
    let _ = cache.put_file(STAT_BUCKET, &stat_index_name(spec_id), |out| {
        let mut index = IndexWriter::new(out, started_ns)?;
        let mut index_ok = true;
        let result = write(&mut |e, digest| {
            key.add(e, digest);
            if let Some(d) = digest
                && index_ok
            {
                index_ok = index.add(e, d).is_ok();
            }
        });
        let failed = result.is_err();
        made = Some(result);
        match (failed, index_ok) {
            (false, true) => Ok(()),
            // Nothing is kept of an index that is not whole.
            _ => Err(io::Error::other("the layer or its stat index was not written")),
        }
    });
    match made {
        None => Ok(None),
        Some(result) => Ok(Some((result?, key.finish()))),
    }
}

/// Reads through to `inner`, hashing what it reads: the content hash of a
/// file, whether it is read only to key the layer ([`content_digests`]) or
/// by the read that puts it into the layer.
pub(super) struct HashingReader<R> {
    inner: R,
    hasher: blake3::Hasher,
}

impl<R: Read> HashingReader<R> {
    pub(super) fn new(inner: R) -> HashingReader<R> {
        HashingReader {
            inner,
            hasher: blake3::Hasher::new(),
        }
    }

    pub(super) fn finish(&self) -> ContentHash {
        ContentHash(*self.hasher.finalize().as_bytes())
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Forgets a spec's stat index (a staging tree about to be deleted).
pub fn forget_stat_index(cache: &Cache, spec: &LayerSpec) {
    let _ = std::fs::remove_file(stat_index_path(cache, &spec_identity(spec)));
}

fn stat_index_path(cache: &Cache, spec_id: &str) -> PathBuf {
    cache.bucket_dir(STAT_BUCKET).join(stat_index_name(spec_id))
}

/// One file of the stat index.
struct IndexRecord {
    input: u64,
    stat: FileStat,
    hash: ContentHash,
}

/// Reads a stat index front to back. Each record: the length of the path
/// prefix it shares with the previous one and the rest of its path (varints
/// and bytes), then the input index (varint), the five stat numbers (8 bytes
/// each, little-endian) and the 32-byte hash. A damaged file just ends early.
struct IndexReader<R> {
    inner: R,
    path: Vec<u8>,
    /// The part of the next record's path it does not share with `path`.
    tail: Vec<u8>,
    current: Option<IndexRecord>,
}

impl<R: Read> IndexReader<R> {
    fn new(mut inner: R) -> Option<Self> {
        let mut magic = [0u8; 8];
        inner.read_exact(&mut magic).ok()?;
        if &magic != STAT_MAGIC {
            return None;
        }
        let mut reader = IndexReader {
            inner,
            path: Vec::new(),
            tail: Vec::new(),
            current: None,
        };
        reader.advance();
        Some(reader)
    }

    fn has_more(&self) -> bool {
        self.current.is_some()
    }

    /// Moves to the next record; at the end (or on damage) `current` is `None`.
    fn advance(&mut self) {
        self.current = self.read_record().ok();
    }

    fn read_record(&mut self) -> io::Result<IndexRecord> {
        let shared = read_varint(&mut self.inner)? as usize;
        let rest = read_varint(&mut self.inner)? as usize;
        if shared > self.path.len() || rest > 1 << 20 {
            return Err(io::ErrorKind::InvalidData.into());
        }
        self.tail.resize(rest, 0);
        self.inner.read_exact(&mut self.tail)?;
        // Paths must ascend: anything else is damage, and would break the
        // seek. Past the shared prefix, the new path's tail against the old
        // one's decides (no copy of the old path per record).
        if !self.path.is_empty() && self.tail.as_slice() <= &self.path[shared..] {
            return Err(io::ErrorKind::InvalidData.into());
        }
        self.path.truncate(shared);
        self.path.extend_from_slice(&self.tail);
        let input = read_varint(&mut self.inner)?;
        let mut fixed = [0u8; 40 + 32];
        self.inner.read_exact(&mut fixed)?;
        let num = |i: usize| u64::from_le_bytes(fixed[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        let stat = FileStat {
            size: num(0),
            mtime_ns: num(1) as i64,
            ctime_ns: num(2) as i64,
            ino: num(3),
            dev: num(4),
        };
        let hash = ContentHash(fixed[40..].try_into().expect("32 bytes"));
        Ok(IndexRecord { input, stat, hash })
    }

    /// The record for `path`, skipping (and noting as `stale`) records of
    /// paths before it that the selection no longer has. Calls come in
    /// ascending path order.
    fn seek(&mut self, path: &str, stale: &mut bool) -> Option<IndexRecord> {
        loop {
            self.current.as_ref()?;
            match self.path.as_slice().cmp(path.as_bytes()) {
                std::cmp::Ordering::Less => {
                    *stale = true;
                    self.advance();
                }
                std::cmp::Ordering::Equal => {
                    let found = self.current.take();
                    self.advance();
                    return found;
                }
                std::cmp::Ordering::Greater => {
                    *stale = true; // a new file: the index lacks it
                    return None;
                }
            }
        }
    }
}

fn read_varint(r: &mut impl Read) -> io::Result<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let mut b = [0u8];
        r.read_exact(&mut b)?;
        value |= u64::from(b[0] & 0x7f) << shift;
        if b[0] & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(io::ErrorKind::InvalidData.into())
}

fn write_varint<W: Write + ?Sized>(w: &mut W, mut value: u64) -> io::Result<()> {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            return w.write_all(&[byte]);
        }
        w.write_all(&[byte | 0x80])?;
    }
}

/// Writes the index of every hashed, non-racy file, atomically.
fn write_stat_index(
    cache: &Cache,
    spec_id: &str,
    entries: &Selection,
    digests: &[Option<ContentHash>],
    started_ns: i64,
) -> io::Result<()> {
    cache.put_file(STAT_BUCKET, &stat_index_name(spec_id), |out| {
        let mut index = IndexWriter::new(out, started_ns)?;
        for (e, d) in entries.iter().zip(digests) {
            if let Some(d) = d {
                index.add(&e, d)?;
            }
        }
        Ok(())
    })
}

fn stat_index_name(spec_id: &str) -> String {
    format!("{spec_id}.bin")
}

/// Writes a stat index a file at a time, in layer order (see [`IndexReader`]
/// for the format); files changed too recently to trust their stat are left out.
pub(super) struct IndexWriter<W> {
    out: W,
    started_ns: i64,
    previous: String,
}

impl<W: Write> IndexWriter<W> {
    pub(super) fn new(mut out: W, started_ns: i64) -> io::Result<IndexWriter<W>> {
        out.write_all(STAT_MAGIC)?;
        Ok(IndexWriter {
            out,
            started_ns,
            previous: String::new(),
        })
    }

    /// The next hashed file (other entries are not indexed).
    pub(super) fn add(&mut self, e: &Entry<'_>, digest: &ContentHash) -> io::Result<()> {
        let EntryKind::File { source, stat } = e.kind else {
            return Ok(());
        };
        if stat.mtime_ns.max(stat.ctime_ns) > self.started_ns - RACY_WINDOW_NS {
            return Ok(());
        }
        let out = &mut self.out;
        let shared = self
            .previous
            .bytes()
            .zip(e.path.bytes())
            .take_while(|(a, b)| a == b)
            .count();
        write_varint(out, shared as u64)?;
        write_varint(out, (e.path.len() - shared) as u64)?;
        out.write_all(&e.path.as_bytes()[shared..])?;
        write_varint(out, source.input as u64)?;
        for n in [
            stat.size,
            stat.mtime_ns as u64,
            stat.ctime_ns as u64,
            stat.ino,
            stat.dev,
        ] {
            out.write_all(&n.to_le_bytes())?;
        }
        out.write_all(&digest.0)?;
        self.previous.clear();
        self.previous.push_str(e.path);
        Ok(())
    }
}

/// Entries a hashing thread takes at a time: few enough that one big file
/// does not leave the other threads idle at the end, many enough that the
/// lock is rarely met.
const HASH_CHUNK: usize = 64;

/// Hashes every file entry whose digest is still `None`, in place, on up to
/// `threads` threads, and returns how many it read. The threads take runs of
/// neighbouring entries; nothing per file is kept besides the digest itself
/// (at half a million files, a list of misses and of results was 24 MB of a
/// cold build's peak).
fn hash_missing(
    entries: &Selection,
    digests: &mut [Option<ContentHash>],
    threads: usize,
) -> Result<usize, LayerError> {
    let missing = entries
        .iter()
        .zip(digests.iter())
        .filter(|(e, d)| matches!(e.kind, EntryKind::File { .. }) && d.is_none())
        .count();
    if missing == 0 {
        return Ok(0);
    }
    let chunks = Mutex::new(digests.chunks_mut(HASH_CHUNK).enumerate());
    let first_error = Mutex::new(None);
    let failed = AtomicBool::new(false);
    let workers = threads.max(1).min(missing);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                let mut buf = vec![0u8; 256 * 1024];
                while !failed.load(Ordering::Relaxed) {
                    let Some((k, chunk)) = chunks.lock().unwrap().next() else {
                        return;
                    };
                    for (offset, slot) in chunk.iter_mut().enumerate() {
                        let EntryKind::File { source, .. } = entries.get(k * HASH_CHUNK + offset).kind else {
                            continue;
                        };
                        if slot.is_some() {
                            continue;
                        }
                        let source = source.path();
                        match hash_file(&source, &mut buf) {
                            Ok(d) => *slot = Some(d),
                            Err(e) => {
                                first_error
                                    .lock()
                                    .unwrap()
                                    .get_or_insert(LayerError::from_io(source, e));
                                failed.store(true, Ordering::Relaxed);
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().unwrap() {
        return Err(e);
    }
    Ok(missing)
}

fn hash_file(path: &std::path::Path, buf: &mut [u8]) -> io::Result<ContentHash> {
    let mut file = HashingReader::new(File::open(path)?);
    loop {
        match file.read(buf) {
            Ok(0) => return Ok(file.finish()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
#[path = "cache_key_tests.rs"]
mod tests;
