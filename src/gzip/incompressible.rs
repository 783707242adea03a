//! Spotting the parts of a block that deflate cannot shrink.
//!
//! Already-compressed or random bytes (wheels' bundled archives, jars, images,
//! stripped sections of native libraries) cost zlib its slowest path: it
//! searches for matches at every position, finds none, and in the end writes
//! them stored anyway. On a dependency tree that is a third random bytes this
//! was half of the build's CPU. So each block is judged in segments of
//! [`SEGMENT`] bytes (a file's random part rarely fills whole blocks: its
//! first and last blocks share bytes with its neighbours), and a segment is
//! written stored straight away when
//!
//! - its byte histogram is nearly flat (order-0 entropy close to 8 bits), so
//!   Huffman coding of literals has almost nothing to gain, and
//! - a quick match search over the block and the 32 KiB window before it finds
//!   (almost) no repeated 4-byte sequence in it, so LZ77 has nothing to gain.
//!
//! The decision depends only on the block's bytes and its dictionary, never
//! on the thread that makes it, so the output stays the same for any thread
//! count. A segment that passes both tests deflates to within about 1.5% of
//! its size at best; zlib itself stores such data at every level.

// Every constant here decides layer bytes: change one, and bump
// `gzip::GZIP_FORMAT_VERSION`, `layer::cache_key::LAYER_FORMAT_VERSION` and
// the golden digest with them.

/// The unit of the stored-or-deflated decision inside a block.
pub const SEGMENT: usize = 16 * 1024;
/// Below this order-0 entropy (bits per byte) a segment is left to deflate.
/// Uniformly random segments measure about 7.98 (from 8 Ki samples).
const MIN_ENTROPY_BITS: f64 = 7.95;
/// A segment with more than this share of its bytes inside repeats is left
/// to deflate (1 / 128, under 0.8%).
const MAX_MATCHED_SHIFT: u32 = 7;
/// Too short for a flat histogram to mean anything.
const MIN_SEGMENT: usize = 4096;
/// Repeats shorter than deflate can use profitably are not counted.
const MIN_MATCH: usize = 4;
/// deflate's window: a repeat further back than this cannot be coded.
const WINDOW: usize = 32 * 1024;
/// One position in 2^ANCHOR_BITS is an anchor.
const ANCHOR_BITS: u32 = 4;
/// Anchor slots: more than a window's worth of anchors, so old ones last.
const HASH_BITS: u32 = 12;

/// For each [`SEGMENT`] of the block `stream[start..]` (the last one may be
/// shorter), the bytes before it being its history: whether it is not worth
/// deflating.
pub fn incompressible_segments(stream: &[u8], start: usize) -> Vec<bool> {
    let data = &stream[start..];
    let flat: Vec<bool> = data
        .chunks(SEGMENT)
        .map(|s| s.len() >= MIN_SEGMENT && entropy_bits(s) >= MIN_ENTROPY_BITS)
        .collect();
    if !flat.contains(&true) {
        return flat;
    }
    let matched = matched_bytes(stream, start);
    flat.iter()
        .zip(data.chunks(SEGMENT))
        .zip(matched)
        .map(|((&flat, s), m)| flat && m <= s.len() >> MAX_MATCHED_SHIFT)
        .collect()
}

/// Order-0 entropy of `data` in bits per byte, estimated from every other
/// byte: half the work, and the 8 Ki samples of a random segment still put
/// it near 7.98, clear of the threshold. A segment whose even and odd bytes
/// differ in kind only reaches the match search, which finds its repeats.
fn entropy_bits(data: &[u8]) -> f64 {
    // Four tables break the dependency between neighbouring increments of
    // the same counter (a run of equal bytes), which otherwise stalls.
    let mut counts = [[0u32; 256]; 4];
    let mut octets = data.chunks_exact(8);
    for q in &mut octets {
        counts[0][q[0] as usize] += 1;
        counts[1][q[2] as usize] += 1;
        counts[2][q[4] as usize] += 1;
        counts[3][q[6] as usize] += 1;
    }
    for &b in octets.remainder().iter().step_by(2) {
        counts[0][b as usize] += 1;
    }
    let n = f64::from(counts.iter().flatten().sum::<u32>());
    let mut sum = 0.0;
    for byte in 0..256 {
        let c = counts.iter().map(|t| t[byte]).sum::<u32>();
        if c > 0 {
            let c = f64::from(c);
            sum += c * c.log2();
        }
    }
    n.log2() - sum / n
}

/// How many bytes of each [`SEGMENT`] of `data` lie inside repeats of at
/// least `MIN_MATCH` bytes within deflate's window (`dict` counts as history).
///
/// Only anchor positions are looked up: those whose 4 bytes hash into one
/// sixteenth of the hash space. Anchors depend on content, not position, so
/// both copies of a repeat have the same ones, and a repeat of 32 bytes or
/// more almost surely holds one; a found repeat is then extended both ways.
/// The search misses some short repeats, which deflate gains little from
/// anyway on data this flat. Looking up every position cost 4 to 10 ns a byte
/// (a table that outgrows the L1 cache); anchors cost about one.
fn matched_bytes(stream: &[u8], start: usize) -> Vec<usize> {
    // At most a window of history can hold a match.
    let stream = &stream[start.saturating_sub(WINDOW)..];
    let start = start.min(WINDOW);
    let mut matched = vec![0; (stream.len() - start).div_ceil(SEGMENT)];
    for_each_repeat(stream, start, |from, to| {
        // Bytes [from, to) of the block: credit each segment its share.
        let mut at = from;
        while at < to {
            let seg = at / SEGMENT;
            let end = to.min((seg + 1) * SEGMENT);
            matched[seg] += end - at;
            at = end;
        }
    });
    matched
}

/// Calls `found(from, to)` with each repeat found in `stream[start..]`, as a
/// range of positions counted from `start`, in order and without overlaps.
fn for_each_repeat(stream: &[u8], start: usize, mut found: impl FnMut(usize, usize)) {
    // Slot value: position + 1, so 0 means empty.
    let mut table = [0u32; 1 << HASH_BITS];
    // Bytes before this are inside a repeat already reported.
    let mut floor = 0;
    // Anchors are found a run of positions at a time without branching (the
    // anchor test is a coin flip the branch predictor cannot learn), then
    // visited one by one.
    let mut anchors = [0u32; 4096];
    let positions = stream.len().saturating_sub(MIN_MATCH - 1);
    let mut run = 0;
    while run < positions {
        let end = (run + anchors.len()).min(positions);
        let mut found_anchors = 0;
        for (i, word) in stream[run..end + MIN_MATCH - 1].windows(MIN_MATCH).enumerate() {
            anchors[found_anchors] = (run + i) as u32;
            let h = mix(u32::from_le_bytes(word.try_into().expect("four bytes")));
            found_anchors += usize::from(h >> (32 - ANCHOR_BITS) == 0);
        }
        for &i in &anchors[..found_anchors] {
            let i = i as usize;
            if i < floor {
                continue;
            }
            let word = &stream[i..i + MIN_MATCH];
            let h = mix(u32::from_le_bytes(word.try_into().expect("four bytes")));
            let s = ((h >> (32 - ANCHOR_BITS - HASH_BITS)) as usize) & ((1 << HASH_BITS) - 1);
            let candidate = std::mem::replace(&mut table[s], (i + 1) as u32) as usize;
            if candidate == 0 || i < start || i - (candidate - 1) > WINDOW {
                continue;
            }
            let c = candidate - 1;
            let ahead = common_prefix(&stream[c..], &stream[i..]);
            if ahead < MIN_MATCH {
                continue;
            }
            let behind = stream[floor.max(start)..i]
                .iter()
                .rev()
                .zip(stream[..c].iter().rev())
                .take_while(|(x, y)| x == y)
                .count();
            found(i - behind - start, i + ahead - start);
            floor = i + ahead;
        }
        run = end;
    }
}

/// A cheap mix of a 4-byte word: xor-shift, then a multiplicative hash. The
/// multiply alone maps the words of a byte ramp (0 1 2 3, 1 2 3 4, ...) to an
/// arithmetic series whose top bits never select an anchor; the xor-shift
/// first breaks that series up (tests cover ramps of several periods).
fn mix(w: u32) -> u32 {
    (w ^ (w >> 15)).wrapping_mul(0x9E37_79B1)
}

/// Length of the common prefix of `a` and `b`, at most deflate's longest match.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take(258).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gzip::test_noise as random;

    fn stored(dict: &[u8], data: &[u8]) -> Vec<bool> {
        incompressible_segments(&[dict, data].concat(), dict.len())
    }

    #[test]
    fn random_bytes_are_stored() {
        let data = random(128 * 1024, 7);
        assert!(data.chunks(SEGMENT).all(|s| entropy_bits(s) > 7.97));
        assert_eq!(stored(&random(32 * 1024, 9), &data), vec![true; 8]);
    }

    #[test]
    fn a_flat_histogram_with_repeats_is_left_to_deflate() {
        // Every byte value about equally often, so entropy is 8 bits, but it
        // is one short run repeated: deflate shrinks it 100-fold.
        // (A 257-byte period, so the even bytes the estimate samples see all values.)
        let ramp: Vec<u8> = (0..=255u8).chain([0]).collect();
        let data: Vec<u8> = ramp.iter().copied().cycle().take(128 * 1024).collect();
        assert!(entropy_bits(&data) > 7.99);
        assert_eq!(stored(&[], &data), vec![false; 8]);
        // Structured runs of other periods: the match search must find
        // anchors in them (a plain multiplicative hash found none in ramps).
        for period in [256usize, 300, 509, 1000, 4093] {
            let run: Vec<u8> = (0..period).map(|i| (i * 7 + i / 256) as u8).collect();
            let data: Vec<u8> = run.iter().copied().cycle().take(128 * 1024).collect();
            let matched = matched_bytes(&data, 0);
            // Only the first period is new; the rest repeats it.
            assert!(
                matched.iter().all(|&m| m > SEGMENT * 3 / 4),
                "period {period}: {matched:?}"
            );
        }
    }

    #[test]
    fn repeats_of_the_dictionary_count() {
        // The block starts with the 32 KiB before it: random on its own, but
        // deflate codes those two segments as one long series of matches.
        let dict = random(32 * 1024, 3);
        let mut data = dict.clone();
        data.extend(random(96 * 1024, 5));
        assert_eq!(stored(&[], &data), vec![true; 8]);
        let mut expected = vec![false, false];
        expected.extend([true; 6]);
        assert_eq!(stored(&dict, &data), expected);
    }

    #[test]
    fn a_few_percent_of_planted_repeats_are_left_to_deflate() {
        let mut data = random(128 * 1024, 11);
        // 2% of the block copied from 1 KiB earlier, in 64-byte pieces.
        for k in 0..41 {
            let at = 2048 + k * 3000;
            data.copy_within(at - 1024..at - 1024 + 64, at);
        }
        assert_eq!(stored(&[], &data), vec![false; 8]);
    }

    #[test]
    fn only_the_random_part_of_a_mixed_block_is_stored() {
        // A text file ending 40 KiB into the block, then a random one.
        let mut data = b"def handler(event, context):\n    return event\n".repeat(900);
        data.truncate(40 * 1024);
        data.extend(random(88 * 1024, 13));
        // Segment 2 (32-48 KiB) is half text: left to deflate.
        assert_eq!(
            stored(&[], &data),
            vec![false, false, false, true, true, true, true, true]
        );
    }

    #[test]
    fn text_and_short_pieces_are_left_to_deflate() {
        let text = b"def handler(event, context):\n    return event\n".repeat(3000);
        assert!(stored(&[], &text).iter().all(|&s| !s));
        assert_eq!(stored(&[], &random(2000, 1)), vec![false]);
        // A short last segment is deflated, the full ones before it stored.
        assert_eq!(stored(&[], &random(SEGMENT + 1000, 2)), vec![true, false]);
    }
}
