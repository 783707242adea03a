//! Byte-level mutations of seed inputs, driven by a small seeded generator
//! so a run can be replayed from its seed.

/// xorshift64*: fast, seedable, good enough to pick mutations.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Fragments that tend to break parsers of JSON, TOML, tar names and globs.
const TOKENS: &[&[u8]] = &[
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"\\",
    b"\\u0000",
    b"\\ud800",
    b"null",
    b"true",
    b"-1",
    b"0",
    b"1e999",
    b"18446744073709551616",
    b"-9223372036854775809",
    b"\"sha256:\"",
    b"\"size\":",
    b"\"mediaType\":",
    b"\"manifests\":[",
    b"\"layers\":[",
    b"../",
    b"/",
    b"//",
    b"**",
    b"*",
    b"?",
    b"[",
    b"!",
    b"\n",
    b"\r\n",
    b"=",
    b"[[layer]]",
    b"[base]",
    b"'''",
    b"\"\"\"",
    b"#",
    b"\0",
    b"\xff\xfe",
    b"\xc3\x28",
    b"ustar\0",
];

/// One to four mutations of `base` (sometimes spliced with `other`).
pub fn mutate(base: &[u8], other: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = base.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = out.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                out[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                out[i] = rng.next() as u8;
            }
            2 => {
                let i = rng.below(len + 1);
                let t = TOKENS[rng.below(TOKENS.len())];
                out.splice(i..i, t.iter().copied());
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(64));
                out.drain(i..i + n);
            }
            4 if len > 0 => {
                // Repeat a slice: deep nesting and long runs.
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(32));
                let piece: Vec<u8> = out[i..i + n].to_vec();
                let times = 1 + rng.below(64);
                for _ in 0..times {
                    out.splice(i..i, piece.iter().copied());
                }
            }
            5 if len > 0 => out.truncate(rng.below(len)),
            6 if !other.is_empty() => {
                let cut = rng.below(out.len() + 1);
                let from = rng.below(other.len());
                out.truncate(cut);
                out.extend_from_slice(&other[from..]);
            }
            7 => {
                let i = rng.below(len + 1);
                let n = rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                out.splice(i..i, bytes);
            }
            _ if len > 1 => {
                // Swap two bytes: keeps lengths, moves structure.
                let (a, b) = (rng.below(len), rng.below(len));
                out.swap(a, b);
            }
            _ => {}
        }
    }
    // Keep inputs small enough that each execution stays quick.
    out.truncate(1 << 20);
    out
}
