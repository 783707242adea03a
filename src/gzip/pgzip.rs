//! Deterministic parallel gzip (the pigz method).
//!
//! The uncompressed stream is cut into fixed blocks. Each block is compressed
//! on its own as raw deflate, primed with the 32 KiB before it as a preset
//! dictionary, and ended with a sync flush so the pieces join byte-aligned.
//! A final empty block, a fixed gzip header and a trailer with the combined
//! CRC-32 and size complete the member. Every block's bytes depend only on its
//! data, its dictionary and the level, so the output is the same whether one
//! thread or many did the work.
//!
//! Memory stays bounded: a fixed pool of (input, output) buffer pairs
//! circulates producer → workers → writer → producer, so at most
//! `pool` blocks are ever in flight, whatever the stream's length.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use flate2::{Compress, Compression, FlushCompress};
use sha2::{Digest as _, Sha256};

use super::GzipError;
use super::incompressible::{SEGMENT, incompressible_segments};
use crate::image::Digest;

/// Bytes of uncompressed stream per independently compressed block. Part of
/// the layer cache key: changing it changes every layer's bytes.
pub const BLOCK_SIZE: usize = 128 * 1024;
/// deflate's window: how much history primes each block.
const DICT_SIZE: usize = 32 * 1024;
/// A final (BFINAL=1) fixed-Huffman block holding only end-of-block.
const FINAL_BLOCK: [u8; 2] = [0x03, 0x00];

/// Digest and size of the compressed and of the uncompressed stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GzipSummary {
    pub compressed_digest: Digest,
    pub compressed_size: u64,
    pub uncompressed_digest: Digest,
    pub uncompressed_size: u64,
}

/// The fixed 10-byte gzip header: no name, mtime 0, OS "unknown" (255);
/// XFL follows zlib's rule (2 = best, 4 = fastest).
pub fn gzip_header(level: u32) -> [u8; 10] {
    let xfl = match level {
        9 => 2,
        0 | 1 => 4,
        _ => 0,
    };
    [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 0xff]
}

/// Compresses one block into `out` (cleared first): raw deflate primed with
/// `dict`, ended with a sync flush.
///
/// Parts deflate cannot shrink are written stored at once instead of after a
/// full, fruitless match search (see `incompressible`). A block is compressed
/// as runs of alike segments, each ended with a sync flush so the next starts
/// byte-aligned, each deflated run primed with the 32 KiB before it: the
/// pigz method again, inside the block. (Switching the level of one stream
/// instead fails: flate2's zlib-rs `set_level` has no output buffer for the
/// flush it needs.)
///
/// Each run gets a new compressor. zlib-rs's `reset()` (flate2 1.1.11,
/// zlib-rs backend) leaves state behind that changes the next block's bytes
/// on some inputs (executables, in our tests), so a reused compressor made a
/// block's bytes depend on which block its thread compressed before. A new
/// compressor costs a few hundred KiB of zeroed memory per 128 KiB block.
pub fn deflate_block(
    level: Compression,
    dict: &[u8],
    data: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), GzipError> {
    out.clear();
    // Room for the worst case up front: zlib emits a second sync marker when a
    // flush ends exactly at the end of the output space, so a buffer that is
    // ever too small would make the bytes depend on its (recycled) capacity.
    out.reserve(deflate_bound(data.len()));
    let stored = incompressible_segments(dict, data);
    let mut history = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let seg = at / SEGMENT;
        let kind = stored[seg];
        let run = stored[seg..].iter().take_while(|&&k| k == kind).count();
        let end = data.len().min((seg + run) * SEGMENT);
        let (run_level, window) = if kind {
            (Compression::none(), &[][..])
        } else if at == 0 {
            (level, dict)
        } else if at >= DICT_SIZE {
            (level, &data[at - DICT_SIZE..at])
        } else {
            history.clear();
            history.extend_from_slice(&dict[dict.len().saturating_sub(DICT_SIZE - at)..]);
            history.extend_from_slice(&data[..at]);
            (level, &history[..])
        };
        deflate_run(run_level, window, &data[at..end], out)?;
        at = end;
    }
    if out.capacity() - out.len() < 8 {
        return Err(GzipError::Compress {
            message: format!(
                "deflate did not finish a {}-byte block within its bound; this is a bug",
                data.len()
            ),
        });
    }
    Ok(())
}

/// Appends `data` to `out` as raw deflate primed with `window` and ended with
/// a sync flush, from a new compressor.
fn deflate_run(level: Compression, window: &[u8], data: &[u8], out: &mut Vec<u8>) -> Result<(), GzipError> {
    let fail = |e: flate2::CompressError| GzipError::Compress {
        message: e.to_string(),
    };
    let mut c = Compress::new(level, false);
    if !window.is_empty() {
        c.set_dictionary(window).map_err(fail)?;
    }
    c.compress_vec(data, out, FlushCompress::Sync).map_err(fail)?;
    if c.total_in() as usize != data.len() {
        return Err(GzipError::Compress {
            message: format!(
                "deflate did not finish a {}-byte run within its bound; this is a bug",
                data.len()
            ),
        });
    }
    Ok(())
}

/// An upper bound on raw deflate output for `len` input bytes plus a sync
/// flush: stored blocks cost 5 bytes per 16 KiB at worst; the margin covers
/// the flush markers and bit buffers of its runs (at most one per segment)
/// with room to spare.
fn deflate_bound(len: usize) -> usize {
    len + (len >> 11) + (len >> 14) + 64 + 16 * (len / SEGMENT + 1)
}

fn check_level(level: u32) -> Result<Compression, GzipError> {
    if (1..=9).contains(&level) {
        Ok(Compression::new(level))
    } else {
        Err(GzipError::Compress {
            message: format!("gzip level {level} is out of range: use 1 to 9"),
        })
    }
}

type Pair = (Vec<u8>, Vec<u8>);

struct Job {
    seq: u64,
    /// `[dictionary | data]` up to `end`; bytes past it are left over.
    input: Vec<u8>,
    dict_len: usize,
    end: usize,
    out: Vec<u8>,
}

impl Job {
    fn dict_and_data(&self) -> (&[u8], &[u8]) {
        self.input[..self.end].split_at(self.dict_len)
    }
}

struct Done {
    job: Job,
    crc: crc32fast::Hasher,
}

/// Where the producer writes the uncompressed stream; cuts it into blocks.
pub struct BlockSink<'a> {
    pool: &'a Receiver<Pair>,
    jobs: Option<SyncSender<Job>>,
    /// The input buffer being filled, kept at its full length (so a read
    /// into it needs no zeroing first): `filled` bytes of it are the stream.
    current: Option<(Vec<u8>, Vec<u8>)>,
    filled: usize,
    dict_len: usize,
    dict: Vec<u8>,
    seq: u64,
    block_size: usize,
}

impl BlockSink<'_> {
    /// The current input buffer, taking a fresh pair from the pool when needed.
    fn buffer(&mut self) -> io::Result<&mut Vec<u8>> {
        if self.current.is_none() {
            let (mut input, out) = self.pool.recv().map_err(|_| closed())?;
            // Zeroed once per pooled buffer: after that it keeps its length.
            input.resize(DICT_SIZE + self.block_size, 0);
            input[..self.dict.len()].copy_from_slice(&self.dict);
            self.dict_len = self.dict.len();
            self.filled = self.dict_len;
            self.current = Some((input, out));
        }
        Ok(&mut self.current.as_mut().unwrap().0)
    }

    fn send(&mut self) -> io::Result<()> {
        let Some((input, out)) = self.current.take() else {
            return Ok(());
        };
        let end = self.filled;
        if end == self.dict_len {
            self.current = Some((input, out));
            return Ok(());
        }
        let tail = end.saturating_sub(DICT_SIZE).max(self.dict_len);
        self.dict.clear();
        self.dict.extend_from_slice(&input[tail..end]);
        let job = Job {
            seq: self.seq,
            input,
            dict_len: self.dict_len,
            end,
            out,
        };
        self.seq += 1;
        self.jobs
            .as_ref()
            .ok_or_else(closed)?
            .send(job)
            .map_err(|_| closed())
    }

    /// Copies up to `n` bytes from `reader` straight into blocks; returns how
    /// many were read (fewer only at end of input).
    pub fn fill_from(&mut self, reader: &mut impl Read, n: u64) -> io::Result<u64> {
        let mut copied = 0u64;
        while copied < n {
            // Take the buffer first: a fresh one sets `dict_len` for its block.
            self.buffer()?;
            let limit = self.dict_len + self.block_size;
            let len = self.filled;
            let want = ((limit - len) as u64).min(n - copied) as usize;
            let buf = self.buffer()?;
            let got = loop {
                match reader.read(&mut buf[len..len + want]) {
                    Ok(k) => break k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
            self.filled += got;
            copied += got as u64;
            if self.filled == limit {
                self.send()?;
            }
            if got == 0 {
                break;
            }
        }
        Ok(copied)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.send()?;
        self.jobs = None;
        Ok(())
    }
}

impl Write for BlockSink<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        // Take the buffer first: a fresh one sets `dict_len` for its block.
        self.buffer()?;
        let limit = self.dict_len + self.block_size;
        let len = self.filled;
        let n = (limit - len).min(data.len());
        self.buffer()?[len..len + n].copy_from_slice(&data[..n]);
        self.filled += n;
        if self.filled == limit {
            self.send()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "compression pipeline stopped")
}

/// Runs `produce` on this thread, writing the stream into a [`BlockSink`],
/// while `threads` workers compress and a writer thread writes the gzip
/// member to `out` (named `out_path` in errors). `on_block` sees each block
/// of the uncompressed stream, in order, as its compressed bytes are written
/// (for progress, or to read the stream a second way without a second pass).
pub fn parallel_gzip<W: Write + Send, E: From<GzipError>>(
    level: u32,
    threads: usize,
    out: W,
    out_path: &Path,
    on_block: &(dyn Fn(&[u8]) + Sync),
    produce: impl FnOnce(&mut BlockSink) -> Result<(), E>,
) -> Result<(W, GzipSummary), E> {
    let compression = check_level(level).map_err(E::from)?;
    let workers = threads.max(1);
    // Blocks are written in order, so one slow block (text, at level 6)
    // holds every buffer the other workers fill meanwhile (stored random
    // data goes ten times as fast): with too few, they wait on it. At 2 GB
    // of mixed files, 40 buffers for two workers (12 MB) built in 6.0-6.1 s
    // where 12 took 6.7-6.8 s; more gained nothing.
    let pool_size = workers * 16 + 8;
    let (pool_tx, pool_rx) = sync_channel::<Pair>(pool_size);
    for _ in 0..pool_size {
        let pair = (
            Vec::with_capacity(DICT_SIZE + BLOCK_SIZE),
            Vec::with_capacity(BLOCK_SIZE + BLOCK_SIZE / 8 + 1024),
        );
        pool_tx.send(pair).expect("pool has room for every pair");
    }
    let (job_tx, job_rx) = sync_channel::<Job>(pool_size);
    let (done_tx, done_rx) = sync_channel::<Result<Done, GzipError>>(pool_size);
    let job_rx = Mutex::new(job_rx);

    std::thread::scope(|s| {
        for _ in 0..workers {
            let done_tx = done_tx.clone();
            let job_rx = &job_rx;
            s.spawn(move || compress_worker(compression, job_rx, done_tx));
        }
        drop(done_tx);
        let writer = s.spawn(move || write_member(level, done_rx, pool_tx, out, out_path, on_block));

        let mut sink = BlockSink {
            pool: &pool_rx,
            jobs: Some(job_tx),
            current: None,
            filled: 0,
            dict_len: 0,
            dict: Vec::with_capacity(DICT_SIZE),
            seq: 0,
            block_size: BLOCK_SIZE,
        };
        let produced = produce(&mut sink).and_then(|()| {
            sink.finish().map_err(|e| {
                E::from(GzipError::Compress {
                    message: e.to_string(),
                })
            })
        });
        drop(sink);
        drop(pool_rx);
        let written = writer.join().expect("gzip writer thread panicked");
        match (produced, written) {
            // A writer failure makes the producer fail too; report the cause.
            (Err(_), Err(w)) => Err(w.into()),
            (Err(p), Ok(_)) => Err(p),
            (Ok(()), w) => w.map_err(E::from),
        }
    })
}

fn compress_worker(
    level: Compression,
    jobs: &Mutex<Receiver<Job>>,
    done: SyncSender<Result<Done, GzipError>>,
) {
    loop {
        let job = match jobs.lock().map(|rx| rx.recv()) {
            Ok(Ok(job)) => job,
            _ => return,
        };
        let mut job = job;
        let mut out = std::mem::take(&mut job.out);
        let (dict, data) = job.dict_and_data();
        let mut crc = crc32fast::Hasher::new();
        crc.update(data);
        let result = deflate_block(level, dict, data, &mut out).map(|()| {
            job.out = out;
            Done { job, crc }
        });
        if done.send(result).is_err() {
            return;
        }
    }
}

fn write_member<W: Write>(
    level: u32,
    done: Receiver<Result<Done, GzipError>>,
    pool: SyncSender<Pair>,
    mut out: W,
    out_path: &Path,
    on_block: &(dyn Fn(&[u8]) + Sync),
) -> Result<(W, GzipSummary), GzipError> {
    let werr = |source| GzipError::Cache {
        path: out_path.to_path_buf(),
        source,
    };
    let mut zsha = Sha256::new();
    let mut usha = Sha256::new();
    let mut crc = crc32fast::Hasher::new();
    let mut usize_total = 0u64;
    let mut zsize = 0u64;
    let mut emit = |bytes: &[u8], out: &mut W| -> Result<(), GzipError> {
        out.write_all(bytes).map_err(werr)?;
        zsha.update(bytes);
        zsize += bytes.len() as u64;
        Ok(())
    };
    emit(&gzip_header(level), &mut out)?;
    let mut waiting: BTreeMap<u64, Done> = BTreeMap::new();
    let mut next = 0u64;
    for result in done {
        let d = result?;
        waiting.insert(d.job.seq, d);
        while let Some(d) = waiting.remove(&next) {
            let (_, data) = d.job.dict_and_data();
            usha.update(data);
            usize_total += data.len() as u64;
            crc.combine(&d.crc);
            emit(&d.job.out, &mut out)?;
            on_block(data);
            let _ = pool.send((d.job.input, d.job.out));
            next += 1;
        }
    }
    if !waiting.is_empty() {
        return Err(GzipError::Compress {
            message: "a compressed block went missing (a compression thread stopped)".into(),
        });
    }
    emit(&FINAL_BLOCK, &mut out)?;
    let mut trailer = [0u8; 8];
    trailer[..4].copy_from_slice(&crc.finalize().to_le_bytes());
    trailer[4..].copy_from_slice(&(usize_total as u32).to_le_bytes());
    emit(&trailer, &mut out)?;
    out.flush().map_err(werr)?;
    Ok((
        out,
        GzipSummary {
            compressed_digest: Digest::from_sha256(zsha.finalize().as_slice()),
            compressed_size: zsize,
            uncompressed_digest: Digest::from_sha256(usha.finalize().as_slice()),
            uncompressed_size: usize_total,
        },
    ))
}

#[cfg(test)]
#[path = "pgzip_tests.rs"]
mod tests;
