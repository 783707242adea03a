//! Just enough of the zip format to read small entries out of a jar held in
//! memory: the central directory, then each wanted entry, stored or deflated.
//! Anything unexpected is `None`: a jar we cannot read lists no coordinates.

use std::io::Read;

use flate2::read::DeflateDecoder;

const END_OF_DIRECTORY: u32 = 0x0605_4b50;
const DIRECTORY_ENTRY: u32 = 0x0201_4b50;
const LOCAL_HEADER: u32 = 0x0403_4b50;

fn u16_at(b: &[u8], at: usize) -> Option<usize> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?) as usize)
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The entries of the zip in `bytes` whose names `wanted` accepts, with
/// their contents (at most `limit` bytes each), in directory order.
pub fn entries(bytes: &[u8], wanted: impl Fn(&str) -> bool, limit: usize) -> Option<Vec<(String, Vec<u8>)>> {
    // The end record is the last 22 bytes plus a comment of up to 64 KiB.
    let earliest = bytes.len().saturating_sub(22 + 0xFFFF);
    let end = (earliest..=bytes.len().checked_sub(22)?)
        .rev()
        .find(|&i| u32_at(bytes, i) == Some(END_OF_DIRECTORY))?;
    let count = u16_at(bytes, end + 10)?;
    let mut at = u32_at(bytes, end + 16)? as usize;
    let mut out = Vec::new();
    for _ in 0..count {
        if u32_at(bytes, at)? != DIRECTORY_ENTRY {
            return None;
        }
        let method = u16_at(bytes, at + 10)?;
        let compressed = u32_at(bytes, at + 20)? as usize;
        let name_len = u16_at(bytes, at + 28)?;
        let extra_len = u16_at(bytes, at + 30)?;
        let comment_len = u16_at(bytes, at + 32)?;
        let local = u32_at(bytes, at + 42)? as usize;
        let name = String::from_utf8_lossy(bytes.get(at + 46..at + 46 + name_len)?).into_owned();
        at += 46 + name_len + extra_len + comment_len;
        if !wanted(&name) {
            continue;
        }
        if u32_at(bytes, local)? != LOCAL_HEADER {
            return None;
        }
        let start = local + 30 + u16_at(bytes, local + 26)? + u16_at(bytes, local + 28)?;
        let raw = bytes.get(start..start.checked_add(compressed)?)?;
        let data = match method {
            0 => raw[..raw.len().min(limit)].to_vec(),
            8 => {
                let mut data = Vec::new();
                DeflateDecoder::new(raw)
                    .take(limit as u64)
                    .read_to_end(&mut data)
                    .ok()?;
                data
            }
            _ => continue,
        };
        out.push((name, data));
    }
    Some(out)
}
