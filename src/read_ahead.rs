//! A layer blob read on a second thread: the file read, its sha256 and the gzip
//! inflation run there, and the uncompressed stream reaches the reading thread
//! in fixed blocks. A tar walker's parsing, rules and (when asked) the
//! uncompressed stream's sha256 then run beside the inflation instead of after
//! it: one big layer uses both cores.
//!
//! Memory stays bounded: [`IN_FLIGHT`] blocks circulate between the two
//! threads (reader → walker → reader), whatever the blob's size.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use flate2::read::MultiGzDecoder;
use sha2::{Digest as _, Sha256};

use crate::image::Digest;

/// Bytes of uncompressed stream per block handed over.
const BLOCK: usize = 256 * 1024;
/// Blocks in circulation per stream: enough that neither thread waits on a
/// short stall of the other, few enough that memory is a megabyte.
const IN_FLIGHT: usize = 4;

/// The sha256 and size of a blob as stored and of the stream it inflates to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamDigests {
    pub compressed: Digest,
    pub compressed_size: u64,
    pub uncompressed: Digest,
    pub uncompressed_size: u64,
}

/// A block of the uncompressed stream and how many of its bytes are data.
type Filled = io::Result<(Vec<u8>, usize)>;

/// Runs `consume` on the uncompressed stream of `file` (gzip when `gzip`, else
/// read as it is), inflated on a second thread. With `hash`, both streams are
/// hashed to their ends (the rest of the stream is read if `consume` stops
/// early) and their digests returned.
pub fn read_inflated<T>(
    file: File,
    gzip: bool,
    hash: bool,
    consume: impl FnOnce(&mut dyn Read) -> io::Result<T>,
) -> io::Result<(T, Option<StreamDigests>)> {
    std::thread::scope(|s| {
        let (full_tx, full_rx) = sync_channel::<Filled>(IN_FLIGHT);
        let (empty_tx, empty_rx) = sync_channel::<Vec<u8>>(IN_FLIGHT);
        for _ in 0..IN_FLIGHT {
            empty_tx
                .send(vec![0; BLOCK])
                .expect("the pool channel holds every block");
        }
        let producer = s.spawn(move || produce(file, gzip, hash, full_tx, empty_rx));
        let mut blocks = Blocks {
            full: full_rx,
            empty: empty_tx,
            current: Vec::new(),
            len: 0,
            pos: 0,
            hasher: hash.then(Sha256::new),
            count: 0,
            done: false,
        };
        let consumed = consume(&mut blocks);
        let drained = match (&consumed, hash) {
            (Ok(_), true) => io::copy(&mut blocks, &mut io::sink()).map(|_| ()),
            _ => Ok(()),
        };
        let uncompressed = blocks
            .hasher
            .take()
            .map(|h| (Digest::from_sha256(h.finalize().as_slice()), blocks.count));
        // Dropping the receiver stops a producer still reading (consume stopped early).
        drop(blocks);
        let compressed = producer.join().expect("layer read-ahead thread panicked");
        let value = consumed?;
        drained?;
        let digests = match (compressed, uncompressed) {
            (Some((compressed, compressed_size)), Some((inflated, inflated_size))) => Some(StreamDigests {
                compressed,
                compressed_size,
                // A plain tar is its own uncompressed stream.
                uncompressed: inflated,
                uncompressed_size: inflated_size,
            }),
            _ => None,
        };
        Ok((value, digests))
    })
}

/// The reading thread: fills blocks from the pool and sends them on; a read
/// error is sent as the last item. Returns the blob's digest and size when it
/// hashed it to the end.
fn produce(
    file: File,
    gzip: bool,
    hash: bool,
    full: SyncSender<Filled>,
    empty: Receiver<Vec<u8>>,
) -> Option<(Digest, u64)> {
    let mut outer = Hashing {
        inner: BufReader::with_capacity(1 << 16, file),
        hasher: hash.then(Sha256::new),
        count: 0,
    };
    {
        let mut stream: Box<dyn Read + '_> = if gzip {
            Box::new(MultiGzDecoder::new(&mut outer))
        } else {
            Box::new(&mut outer)
        };
        loop {
            // The walker gone (it stopped early or failed): stop reading.
            let mut block = empty.recv().ok()?;
            match fill(&mut stream, &mut block) {
                Ok(0) => break,
                Ok(n) => {
                    full.send(Ok((block, n))).ok()?;
                    if n < BLOCK {
                        break;
                    }
                }
                Err(e) => {
                    let _ = full.send(Err(e));
                    return None;
                }
            }
        }
    }
    outer.hasher.as_ref()?;
    // Anything after the gzip members counts in the blob's digest too.
    if let Err(e) = io::copy(&mut outer, &mut io::sink()) {
        let _ = full.send(Err(e));
        return None;
    }
    let hasher = outer.hasher.take()?;
    Some((Digest::from_sha256(hasher.finalize().as_slice()), outer.count))
}

/// Reads into `block` until it is full or the stream ends.
fn fill(stream: &mut dyn Read, block: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < block.len() {
        match stream.read(&mut block[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A reader that hashes what passes through it when it has a hasher.
struct Hashing<R> {
    inner: R,
    hasher: Option<Sha256>,
    count: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        self.count += n as u64;
        Ok(n)
    }
}

/// The walker's side: the uncompressed stream as the producer's blocks, each
/// hashed as it arrives and given back to the pool once read.
struct Blocks {
    full: Receiver<Filled>,
    empty: SyncSender<Vec<u8>>,
    current: Vec<u8>,
    len: usize,
    pos: usize,
    hasher: Option<Sha256>,
    count: u64,
    done: bool,
}

impl Read for Blocks {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.len {
            if self.done || buf.is_empty() {
                return Ok(0);
            }
            if !self.current.is_empty() {
                // The pool has room for every block, so this never waits; a
                // finished producer has dropped its end, which is no error.
                let _ = self.empty.send(std::mem::take(&mut self.current));
            }
            match self.full.recv() {
                Ok(Ok((block, n))) => {
                    if let Some(h) = &mut self.hasher {
                        h.update(&block[..n]);
                    }
                    self.count += n as u64;
                    self.current = block;
                    self.len = n;
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                // The producer is done and every block was read.
                Err(_) => {
                    self.done = true;
                    self.len = 0;
                    self.pos = 0;
                    return Ok(0);
                }
            }
        }
        let n = buf.len().min(self.len - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn noise(len: usize) -> Vec<u8> {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 40) as u8 % 16
            })
            .collect()
    }

    fn gzip_file(data: &[u8]) -> (tempfile::NamedTempFile, Vec<u8>) {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(data).unwrap();
        let blob = gz.finish().unwrap();
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(&blob).unwrap();
        (file, blob)
    }

    #[test]
    fn hands_over_the_whole_stream_and_both_digests() {
        // Several blocks and a partial one.
        let data = noise(3 * BLOCK + 12_345);
        let (file, blob) = gzip_file(&data);
        let (read, digests) = read_inflated(file.reopen().unwrap(), true, true, |r| {
            let mut out = Vec::new();
            r.read_to_end(&mut out)?;
            Ok(out)
        })
        .unwrap();
        assert_eq!(read, data);
        let digests = digests.unwrap();
        assert_eq!(digests.compressed, Digest::of(&blob));
        assert_eq!(digests.compressed_size, blob.len() as u64);
        assert_eq!(digests.uncompressed, Digest::of(&data));
        assert_eq!(digests.uncompressed_size, data.len() as u64);
    }

    #[test]
    fn hashes_to_the_end_when_the_walker_stops_early() {
        let data = noise(5 * BLOCK);
        let (file, blob) = gzip_file(&data);
        let (head, digests) = read_inflated(file.reopen().unwrap(), true, true, |r| {
            let mut head = [0u8; 100];
            r.read_exact(&mut head)?;
            Ok(head)
        })
        .unwrap();
        assert_eq!(&head[..], &data[..100]);
        let digests = digests.unwrap();
        assert_eq!(digests.compressed, Digest::of(&blob));
        assert_eq!(digests.uncompressed, Digest::of(&data));
    }

    #[test]
    fn a_walker_that_stops_early_without_hashes_does_not_hang() {
        let data = noise(20 * BLOCK);
        let (file, _) = gzip_file(&data);
        let (first, digests) = read_inflated(file.reopen().unwrap(), true, false, |r| {
            let mut b = [0u8; 1];
            r.read_exact(&mut b)?;
            Ok(b[0])
        })
        .unwrap();
        assert_eq!(first, data[0]);
        assert!(digests.is_none());
    }

    #[test]
    fn a_plain_tar_is_its_own_uncompressed_stream() {
        let data = noise(BLOCK + 7);
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(&data).unwrap();
        let (_, digests) = read_inflated(file.reopen().unwrap(), false, true, |r| {
            io::copy(r, &mut io::sink())
        })
        .unwrap();
        let digests = digests.unwrap();
        assert_eq!(digests.compressed, Digest::of(&data));
        assert_eq!(digests.uncompressed, digests.compressed);
        assert_eq!(digests.uncompressed_size, data.len() as u64);
    }

    #[test]
    fn a_corrupt_blob_is_a_read_error() {
        let data = noise(2 * BLOCK);
        let (_, mut blob) = gzip_file(&data);
        let mid = blob.len() / 2;
        blob.truncate(mid);
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(&blob).unwrap();
        let result = read_inflated(file.reopen().unwrap(), true, true, |r| {
            io::copy(r, &mut io::sink())
        });
        assert!(result.is_err());
    }
}
