use std::io::Read;
use std::process::Command;

use flate2::read::GzDecoder;

use super::*;
use crate::gzip::test_noise as noise;

/// Compressible but not trivial data: words from a small pseudo-random generator.
fn sample(len: usize) -> Vec<u8> {
    let words: [&[u8]; 8] = [
        b"lambda ",
        b"layer ",
        b"gzip ",
        b"\x00\x01\x02",
        b"tar ",
        b"block\n",
        b"x",
        b"digest ",
    ];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        if state.is_multiple_of(5) {
            out.push((state >> 32) as u8);
        } else {
            out.extend_from_slice(words[(state % 8) as usize]);
        }
    }
    out.truncate(len);
    out
}

fn gz(data: &[u8], threads: usize, level: u32) -> (Vec<u8>, GzipSummary) {
    let noop = |_: &Block| {};
    parallel_gzip(level, threads, Vec::new(), Path::new("mem"), &noop, |sink| {
        // Mix small writes and direct fills, as the tar writer does.
        let (a, b) = data.split_at(data.len() / 3);
        for chunk in a.chunks(1000) {
            sink.write_all(chunk).unwrap();
        }
        let n = sink.fill_from(&mut &b[..], b.len() as u64 + 10).unwrap();
        assert_eq!(n, b.len() as u64);
        Ok::<(), GzipError>(())
    })
    .unwrap()
}

/// The same member built serially with a fresh compressor per block.
fn reference(data: &[u8], level: u32) -> Vec<u8> {
    let mut out = gzip_header(level).to_vec();
    let mut block = Vec::new();
    for (i, chunk) in data.chunks(BLOCK_SIZE).enumerate() {
        let from = (i * BLOCK_SIZE).saturating_sub(DICT_SIZE);
        let stream = &data[from..i * BLOCK_SIZE + chunk.len()];
        deflate_block(Compression::new(level), stream, i * BLOCK_SIZE - from, &mut block).unwrap();
        out.extend_from_slice(&block);
    }
    out.extend_from_slice(&FINAL_BLOCK);
    out.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

#[test]
fn output_does_not_depend_on_thread_count() {
    let data = sample(BLOCK_SIZE * 9 + 12_345);
    let (one, s1) = gz(&data, 1, 6);
    let (two, s2) = gz(&data, 2, 6);
    let (four, s4) = gz(&data, 4, 6);
    assert_eq!(one, two);
    assert_eq!(one, four);
    assert_eq!(s1, s2);
    assert_eq!(s1, s4);
    assert_eq!(
        one,
        reference(&data, 6),
        "workers reuse compressors; a fresh one must give the same bytes"
    );
    assert!(one.len() < data.len() / 2, "the data should compress");
}

#[test]
fn decoders_accept_the_member_and_digests_are_of_the_bytes() {
    for len in [0, 1, BLOCK_SIZE, 3 * BLOCK_SIZE, 3 * BLOCK_SIZE + 7] {
        let data = sample(len);
        let (bytes, s) = gz(&data, 3, 6);
        let mut back = Vec::new();
        GzDecoder::new(&bytes[..]).read_to_end(&mut back).unwrap();
        assert_eq!(back, data, "len {len}");
        assert_eq!(s.compressed_digest, Digest::of(&bytes));
        assert_eq!(s.compressed_size, bytes.len() as u64);
        assert_eq!(s.uncompressed_digest, Digest::of(&data));
        assert_eq!(s.uncompressed_size, len as u64);
    }
}

#[test]
fn levels_change_bytes_and_header() {
    let data = sample(BLOCK_SIZE * 2);
    let (l1, _) = gz(&data, 2, 1);
    let (l9, _) = gz(&data, 2, 9);
    assert_ne!(l1, l9);
    assert_eq!(l1[8], 4);
    assert_eq!(l9[8], 2);
    let noop = |_: &Block| {};
    let err = parallel_gzip(0, 1, Vec::new(), Path::new("mem"), &noop, |_| {
        Ok::<(), GzipError>(())
    })
    .unwrap_err();
    assert!(err.to_string().contains("level 0"), "{err}");
}

#[test]
fn system_gzip_accepts_the_member() {
    if Command::new("gzip").arg("--version").output().is_err() {
        assert!(std::env::var("CI").is_err(), "gzip must be installed under CI");
        eprintln!("!!! SKIPPING: gzip is not installed; this test proves nothing here !!!");
        return;
    }
    let data = sample(BLOCK_SIZE * 5 + 99);
    let (bytes, _) = gz(&data, 2, 6);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("x.gz");
    std::fs::write(&file, &bytes).unwrap();
    let t = Command::new("gzip").arg("-t").arg(&file).output().unwrap();
    assert!(
        t.status.success(),
        "gzip -t: {}",
        String::from_utf8_lossy(&t.stderr)
    );
    let out = Command::new("gunzip").arg("-c").arg(&file).output().unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, data);
}

/// A producer's own error type, passed through the compressor unchanged.
#[derive(Debug)]
enum ProducerError {
    Failed,
    #[allow(dead_code)] // only the conversion is used
    Gzip(GzipError),
}

impl From<GzipError> for ProducerError {
    fn from(e: GzipError) -> Self {
        ProducerError::Gzip(e)
    }
}

#[test]
fn a_failing_producer_fails_the_whole_run() {
    let noop = |_: &Block| {};
    let err = parallel_gzip(6, 2, Vec::new(), Path::new("mem"), &noop, |sink| {
        sink.write_all(&sample(BLOCK_SIZE * 3)).unwrap();
        Err(ProducerError::Failed)
    })
    .unwrap_err();
    assert!(matches!(err, ProducerError::Failed), "{err:?}");
}

/// Regression: zlib adds a second sync marker when a flush ends exactly at
/// the end of the output space, so a block's bytes once depended on the
/// capacity of the recycled output buffer, and parallel builds under load
/// gave different digests. Any starting capacity must give the same bytes.
#[test]
fn block_bytes_do_not_depend_on_output_capacity() {
    for data in [sample(BLOCK_SIZE), sample(5000), vec![7u8; BLOCK_SIZE]] {
        let dict = sample(DICT_SIZE + 17);
        let stream = [&dict[17..], &data[..]].concat();
        let level = Compression::new(6);
        let mut expected = Vec::new();
        deflate_block(level, &stream, DICT_SIZE, &mut expected).unwrap();
        for extra in 0..12 {
            for capacity in [expected.len().saturating_sub(6) + extra, extra] {
                let mut out = Vec::with_capacity(capacity);
                deflate_block(level, &stream, DICT_SIZE, &mut out).unwrap();
                assert_eq!(out, expected, "capacity {capacity}");
            }
        }
    }
}

/// Under contention the writer returns buffers to the pool in varying
/// order; repeated runs must still give one digest.
#[test]
fn repeated_parallel_runs_give_one_digest() {
    let data = sample(BLOCK_SIZE * 9 + 123);
    let (first, _) = gz(&data, 4, 6);
    for _ in 0..8 {
        assert_eq!(gz(&data, 4, 6).0, first);
    }
    assert_eq!(first, reference(&data, 6), "same as the serial reference");
}

/// Regression: a compressor reused after `reset()` gave different bytes for
/// some blocks than a new one, so layers differed between runs depending on
/// which thread took which block. Executable code triggers it; the test
/// binary itself is one at hand. One thread makes the old reuse certain.
#[test]
fn blocks_do_not_depend_on_what_a_thread_compressed_before() {
    let mut data = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    data.truncate(4 << 20);
    assert_eq!(gz(&data, 1, 6).0, reference(&data, 6));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(12))]

    /// Any data, any cut into writes, any thread count: the member decodes to
    /// the data and its bytes equal the serial reference (fixed blocks).
    #[test]
    fn any_stream_round_trips_identically(
        seed in 0u64..1_000_000,
        len in 0usize..(BLOCK_SIZE * 3),
        threads in 1usize..5,
        chunk in 1usize..70_000,
    ) {
        let mut data = sample(len);
        for (i, b) in data.iter_mut().enumerate().step_by(97) {
            *b ^= (seed >> (i % 48)) as u8;
        }
        let noop = |_: &Block| {};
        let bytes = parallel_gzip(6, threads, Vec::new(), Path::new("mem"), &noop, |sink| {
            for c in data.chunks(chunk) {
                sink.write_all(c).unwrap();
            }
            Ok::<(), GzipError>(())
        })
        .unwrap()
        .0;
        proptest::prop_assert_eq!(&bytes, &reference(&data, 6));
        let mut back = Vec::new();
        GzDecoder::new(&bytes[..]).read_to_end(&mut back).unwrap();
        proptest::prop_assert_eq!(back, data);
    }
}

#[test]
fn incompressible_blocks_are_stored_and_the_member_stays_valid() {
    // Text, then random bytes over several blocks, then the same random bytes
    // again (repeats of a block far back: deflate cannot reach them either),
    // then text: blocks of both kinds, and joins between them.
    let random = noise(3 * BLOCK_SIZE + 5000, 3);
    let mut data = sample(BLOCK_SIZE + 100);
    data.extend_from_slice(&random);
    data.extend_from_slice(&random);
    data.extend_from_slice(&sample(BLOCK_SIZE / 2));
    let (one, _) = gz(&data, 1, 6);
    let (three, _) = gz(&data, 3, 6);
    assert_eq!(
        one, three,
        "the stored/deflated choice must not depend on threads"
    );
    assert_eq!(one, reference(&data, 6));

    let mut back = Vec::new();
    GzDecoder::new(&one[..]).read_to_end(&mut back).unwrap();
    assert_eq!(back, data);
    if Command::new("gzip").arg("--version").output().is_ok() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.gz");
        std::fs::write(&file, &one).unwrap();
        let out = Command::new("gunzip").arg("-c").arg(&file).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.stdout, data);
    } else {
        assert!(std::env::var("CI").is_err(), "gzip must be installed under CI");
        eprintln!("!!! SKIPPING the gunzip half: gzip is not installed !!!");
    }

    // All-random input: stored blocks cost 5 bytes per 64 KiB plus a sync
    // marker per block, never a deflate attempt's overhead.
    let (stored, _) = gz(&random, 2, 9);
    let framing: usize = random
        .chunks(BLOCK_SIZE)
        .map(|b| 5 * (b.len().div_ceil(65_535) + 1))
        .sum();
    let bound = random.len() + framing + 10 + FINAL_BLOCK.len() + 8;
    assert!(stored.len() <= bound, "{} > {bound}", stored.len());
}

#[test]
fn a_block_of_repeated_noise_is_deflated() {
    // Flat histogram, but one 1000-byte run repeated: must not be stored.
    let run = noise(1000, 5);
    let data: Vec<u8> = run.iter().copied().cycle().take(2 * BLOCK_SIZE).collect();
    let (bytes, _) = gz(&data, 2, 6);
    assert!(bytes.len() < data.len() / 20, "{} bytes", bytes.len());
}

/// Blocks handed on are the pipeline's own buffers, back in its pool only
/// once their last holder drops them: a reader on another thread, a few
/// blocks behind, sees the whole stream in order, and a stream of many
/// times the pool's blocks still runs through (a buffer that never came
/// back would stop it).
#[test]
fn blocks_read_on_another_thread_come_back_to_the_pool() {
    let data = sample(BLOCK_SIZE * 30 + 4321);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Block>(8);
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for block in rx {
            seen.extend_from_slice(&block);
        }
        seen
    });
    let hand_on = move |b: &Block| tx.send(b.clone()).unwrap();
    let hand_on = std::sync::Mutex::new(hand_on);
    let on_block = |b: &Block| (hand_on.lock().unwrap())(b);
    let (bytes, summary) = parallel_gzip(6, 1, Vec::new(), Path::new("mem"), &on_block, |sink| {
        sink.write_all(&data).map_err(|e| GzipError::Compress {
            message: e.to_string(),
        })
    })
    .unwrap();
    drop(hand_on);
    assert_eq!(reader.join().unwrap(), data);
    assert_eq!(bytes, reference(&data, 6));
    assert_eq!(summary.uncompressed_size, data.len() as u64);
}

/// An output that fails while a block is still held elsewhere: the run
/// fails, it does not wait forever for that block's buffer.
#[test]
fn a_held_block_does_not_stall_a_failed_run() {
    #[derive(Debug)]
    struct FailsAfter(usize);
    impl Write for FailsAfter {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if self.0 < b.len() {
                return Err(io::Error::other("disk full"));
            }
            self.0 -= b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let kept = std::sync::Mutex::new(Vec::<Block>::new());
    let keep = |b: &Block| kept.lock().unwrap().push(b.clone());
    let data = noise(BLOCK_SIZE * 200, 5);
    let err = parallel_gzip(
        6,
        2,
        FailsAfter(BLOCK_SIZE * 3),
        Path::new("out"),
        &keep,
        |sink| {
            sink.write_all(&data).map_err(|e| GzipError::Compress {
                message: e.to_string(),
            })
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("disk full"), "{err}");
    assert!(!kept.lock().unwrap().is_empty());
}
