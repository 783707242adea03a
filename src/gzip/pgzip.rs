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
//! Memory stays bounded: a fixed pool of input and of output buffers
//! circulates producer → workers → writer → producer (an input by way of
//! whoever reads the block after the writer), so at most `pool` blocks are
//! ever in flight, whatever the stream's length.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, Weak};

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

/// Compresses one block into `out` (cleared first): raw deflate of
/// `stream[dict_len..]`, primed with the `dict_len` bytes before it as a
/// preset dictionary, ended with a sync flush. Dictionary and block arrive
/// side by side, as the pipeline's buffers hold them, so neither the
/// estimate below nor a run's window needs a copy of them.
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
    stream: &[u8],
    dict_len: usize,
    out: &mut Vec<u8>,
) -> Result<(), GzipError> {
    let data = &stream[dict_len..];
    out.clear();
    // Room for the worst case up front: zlib emits a second sync marker when a
    // flush ends exactly at the end of the output space, so a buffer that is
    // ever too small would make the bytes depend on its (recycled) capacity.
    out.reserve(deflate_bound(data.len()));
    let stored = incompressible_segments(stream, dict_len);
    let mut at = 0;
    while at < data.len() {
        let seg = at / SEGMENT;
        let kind = stored[seg];
        let run = stored[seg..].iter().take_while(|&&k| k == kind).count();
        let end = data.len().min((seg + run) * SEGMENT);
        // A deflated run is primed with the 32 KiB before it, the
        // dictionary's tail among them while it starts less than a window
        // into the block.
        let (run_level, window) = if kind {
            (Compression::none(), &[][..])
        } else {
            (
                level,
                &stream[(dict_len + at).saturating_sub(DICT_SIZE)..dict_len + at],
            )
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

/// One block of the uncompressed stream as the writer hands it on: the
/// pipeline's own input buffer, shared rather than copied (a scan beside the
/// compression reads every block; copying them cost a memcpy of the whole
/// stream and an allocation per block). The buffer goes back to the pool
/// when the last clone is dropped, so a holder that keeps blocks holds back
/// the producer, as a full channel would.
#[derive(Clone)]
pub struct Block(Arc<Shared>);

struct Shared {
    input: Vec<u8>,
    data: std::ops::Range<usize>,
    /// Where the buffer returns: the pool of input buffers, while the
    /// writer lives (none for a block made from bytes of its own). Weak: a
    /// block a scan keeps must not keep the pool open after the writer
    /// stopped, or a producer waiting on the pool would never learn.
    home: Option<Weak<SyncSender<Vec<u8>>>>,
}

impl Block {
    /// A block of bytes of its own, outside any pipeline (for tests and for
    /// streams that do not come from [`parallel_gzip`]).
    pub fn from_vec(bytes: Vec<u8>) -> Block {
        let data = 0..bytes.len();
        Block(Arc::new(Shared {
            input: bytes,
            data,
            home: None,
        }))
    }
}

impl std::ops::Deref for Block {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0.input[self.0.data.clone()]
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The pool has room for every buffer, so this never waits.
        if let Some(home) = self.home.as_ref().and_then(Weak::upgrade) {
            let _ = home.send(std::mem::take(&mut self.input));
        }
    }
}

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
    /// Input buffers, back from the writer or from the last holder of a
    /// [`Block`], and output buffers, back from the writer.
    inputs: &'a Receiver<Vec<u8>>,
    outs: &'a Receiver<Vec<u8>>,
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
    /// The current input buffer, taking fresh buffers from the pool when needed.
    fn buffer(&mut self) -> io::Result<&mut Vec<u8>> {
        if self.current.is_none() {
            let mut input = self.inputs.recv().map_err(|_| closed())?;
            let out = self.outs.recv().map_err(|_| closed())?;
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
    on_block: &(dyn Fn(&Block) + Sync),
    produce: impl FnOnce(&mut BlockSink) -> Result<(), E>,
) -> Result<(W, GzipSummary), E> {
    let compression = check_level(level).map_err(E::from)?;
    let workers = threads.max(1);
    // Blocks are written in order, so one slow block (text, at level 6)
    // holds every buffer the other workers fill meanwhile (stored random
    // data goes ten times as fast): with too few, they wait on it. At 2 GB
    // of mixed files, 40 buffers for two workers (12 MB) built in 6.0-6.1 s
    // where 12 took 6.7-6.8 s; more gained nothing.
    // A scan beside the compression holds a few of them too (its channel's
    // blocks and the one it reads), whatever the number of workers.
    let pool_size = workers * 16 + 8;
    let (inputs_tx, inputs_rx) = sync_channel::<Vec<u8>>(pool_size);
    let (outs_tx, outs_rx) = sync_channel::<Vec<u8>>(pool_size);
    for _ in 0..pool_size {
        let room = "the pool has room for every buffer";
        inputs_tx
            .send(Vec::with_capacity(DICT_SIZE + BLOCK_SIZE))
            .expect(room);
        outs_tx
            .send(Vec::with_capacity(BLOCK_SIZE + BLOCK_SIZE / 8 + 1024))
            .expect(room);
    }
    let pool = Pool {
        inputs: Arc::new(inputs_tx),
        outs: outs_tx,
    };
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
        let writer = s.spawn(move || write_member(level, done_rx, pool, out, out_path, on_block));

        let mut sink = BlockSink {
            inputs: &inputs_rx,
            outs: &outs_rx,
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
        drop((inputs_rx, outs_rx));
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
        let mut crc = crc32fast::Hasher::new();
        crc.update(job.dict_and_data().1);
        let result = deflate_block(level, &job.input[..job.end], job.dict_len, &mut out).map(|()| {
            job.out = out;
            Done { job, crc }
        });
        if done.send(result).is_err() {
            return;
        }
    }
}

/// Where the writer returns buffers: outputs straight away, inputs through
/// the [`Block`]s it hands on.
struct Pool {
    inputs: Arc<SyncSender<Vec<u8>>>,
    outs: SyncSender<Vec<u8>>,
}

fn write_member<W: Write>(
    level: u32,
    done: Receiver<Result<Done, GzipError>>,
    pool: Pool,
    mut out: W,
    out_path: &Path,
    on_block: &(dyn Fn(&Block) + Sync),
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
            let _ = pool.outs.send(d.job.out);
            on_block(&Block(Arc::new(Shared {
                data: d.job.dict_len..d.job.end,
                input: d.job.input,
                home: Some(Arc::downgrade(&pool.inputs)),
            })));
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
