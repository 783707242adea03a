//! rpm's header blob, as its databases store one per installed package: a
//! preamble of two big-endian u32s (index entry count, data store size),
//! that many 16-byte index entries (tag, type, offset into the data store,
//! count), then the data store. Only the tags a package list needs are read;
//! every offset and length is checked against the blob before it is used.

use super::RpmPackage;

pub const NAME: u32 = 1000;
pub const VERSION: u32 = 1001;
pub const RELEASE: u32 = 1002;
pub const EPOCH: u32 = 1003;
pub const LICENSE: u32 = 1014;
pub const ARCH: u32 = 1022;
pub const SOURCERPM: u32 = 1044;

const TYPE_INT32: u32 = 4;
const TYPE_STRING: u32 = 6;
const TYPE_STRING_ARRAY: u32 = 8;
const TYPE_I18NSTRING: u32 = 9;

/// rpm refuses headers with more index entries or data than this (its
/// `hdrchkTags`/`hdrchkData` limits: the top byte of either count set).
const LIMIT: u32 = 0x00ff_ffff;

/// One index entry.
#[derive(Debug, Clone, Copy)]
struct Entry {
    tag: u32,
    kind: u32,
    offset: u32,
    count: u32,
}

/// A parsed header: its index and data store, both within the blob.
struct Header<'a> {
    entries: Vec<Entry>,
    data: &'a [u8],
}

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

impl<'a> Header<'a> {
    fn parse(blob: &'a [u8]) -> Result<Header<'a>, String> {
        let (Some(il), Some(dl)) = (be32(blob, 0), be32(blob, 4)) else {
            return Err(format!(
                "{} bytes, shorter than a header's 8-byte preamble",
                blob.len()
            ));
        };
        if il == 0 || il > LIMIT {
            return Err(format!("{il} index entries (rpm allows 1 to {LIMIT})"));
        }
        if dl > LIMIT {
            return Err(format!("a data store of {dl} bytes (rpm allows up to {LIMIT})"));
        }
        let index_end = 8 + il as usize * 16;
        let data_end = index_end + dl as usize;
        if blob.len() < data_end {
            return Err(format!(
                "{} bytes, but its preamble promises {il} index entries and {dl} data bytes ({data_end} bytes): truncated",
                blob.len()
            ));
        }
        let entries = (0..il as usize)
            .map(|i| {
                let at = 8 + i * 16;
                let field = |n: usize| be32(blob, at + 4 * n).unwrap_or_default();
                Entry {
                    tag: field(0),
                    kind: field(1),
                    offset: field(2),
                    count: field(3),
                }
            })
            .collect();
        Ok(Header {
            entries,
            data: &blob[index_end..data_end],
        })
    }

    fn entry(&self, tag: u32) -> Option<&Entry> {
        self.entries.iter().find(|e| e.tag == tag)
    }

    /// A string tag's value (the first string of an array or of an i18n
    /// table); `None` when the tag is absent.
    fn string(&self, tag: u32) -> Result<Option<String>, String> {
        let Some(e) = self.entry(tag) else {
            return Ok(None);
        };
        if !matches!(e.kind, TYPE_STRING | TYPE_STRING_ARRAY | TYPE_I18NSTRING) || e.count == 0 {
            return Err(format!(
                "tag {tag} has type {} and count {}, not a string",
                e.kind, e.count
            ));
        }
        let rest = self
            .data
            .get(e.offset as usize..)
            .filter(|r| !r.is_empty())
            .ok_or_else(|| {
                format!(
                    "tag {tag}'s offset {} is outside the {}-byte data store",
                    e.offset,
                    self.data.len()
                )
            })?;
        let end = rest
            .iter()
            .position(|b| *b == 0)
            .ok_or_else(|| format!("tag {tag}'s string at offset {} is not terminated", e.offset))?;
        Ok(Some(String::from_utf8_lossy(&rest[..end]).into_owned()))
    }

    /// An INT32 tag's first value; `None` when the tag is absent.
    fn int32(&self, tag: u32) -> Result<Option<u32>, String> {
        let Some(e) = self.entry(tag) else {
            return Ok(None);
        };
        if e.kind != TYPE_INT32 || e.count == 0 {
            return Err(format!(
                "tag {tag} has type {} and count {}, not a 32-bit integer",
                e.kind, e.count
            ));
        }
        be32(self.data, e.offset as usize).map(Some).ok_or_else(|| {
            format!(
                "tag {tag}'s offset {} is outside the {}-byte data store",
                e.offset,
                self.data.len()
            )
        })
    }
}

/// The package a header blob describes. The error says what is wrong with
/// the blob; the caller names the file and the record.
pub fn parse(blob: &[u8]) -> Result<RpmPackage, String> {
    let h = Header::parse(blob)?;
    let required = |tag: u32, what: &str| h.string(tag)?.ok_or_else(|| format!("no {what} tag ({tag})"));
    Ok(RpmPackage {
        name: required(NAME, "NAME")?,
        epoch: h.int32(EPOCH)?,
        version: required(VERSION, "VERSION")?,
        release: required(RELEASE, "RELEASE")?,
        // gpg-pubkey pseudo-packages have no ARCH.
        arch: h.string(ARCH)?,
        license: h.string(LICENSE)?,
        source_rpm: h.string(SOURCERPM)?,
    })
}

/// A header blob holding `strings` (tag, value) and `ints` (tag, value), laid
/// out as rpm does (strings NUL-terminated, integers 4-byte aligned).
#[cfg(test)]
pub fn build(strings: &[(u32, &str)], ints: &[(u32, u32)]) -> Vec<u8> {
    let mut index = Vec::new();
    let mut data = Vec::new();
    for (tag, value) in ints {
        while data.len() % 4 != 0 {
            data.push(0);
        }
        index.push((*tag, TYPE_INT32, data.len() as u32, 1u32));
        data.extend_from_slice(&value.to_be_bytes());
    }
    for (tag, value) in strings {
        index.push((*tag, TYPE_STRING, data.len() as u32, 1));
        data.extend_from_slice(value.as_bytes());
        data.push(0);
    }
    let mut blob = Vec::new();
    blob.extend_from_slice(&(index.len() as u32).to_be_bytes());
    blob.extend_from_slice(&(data.len() as u32).to_be_bytes());
    for (tag, kind, offset, count) in index {
        for v in [tag, kind, offset, count] {
            blob.extend_from_slice(&v.to_be_bytes());
        }
    }
    blob.extend_from_slice(&data);
    blob
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Vec<u8> {
        build(
            &[
                (NAME, "bash"),
                (VERSION, "5.2.15"),
                (RELEASE, "1.amzn2023.0.2"),
                (ARCH, "x86_64"),
                (LICENSE, "GPLv3+"),
                (SOURCERPM, "bash-5.2.15-1.amzn2023.0.2.src.rpm"),
            ],
            &[(EPOCH, 2)],
        )
    }

    #[test]
    fn the_tags_a_package_list_needs_are_read() {
        let p = parse(&sample()).unwrap();
        assert_eq!(p.name, "bash");
        assert_eq!(p.epoch, Some(2));
        assert_eq!(p.evr(), "2:5.2.15-1.amzn2023.0.2");
        assert_eq!(p.arch.as_deref(), Some("x86_64"));
        assert_eq!(p.license.as_deref(), Some("GPLv3+"));
        assert_eq!(
            p.source_rpm.as_deref(),
            Some("bash-5.2.15-1.amzn2023.0.2.src.rpm")
        );
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let blob = sample();
        for len in 0..blob.len() {
            assert!(parse(&blob[..len]).is_err(), "a blob cut at {len} bytes parsed");
        }
    }

    #[test]
    fn a_missing_name_and_a_wrong_type_are_named() {
        let e = parse(&build(&[(VERSION, "1"), (RELEASE, "1")], &[])).unwrap_err();
        assert!(e.contains("no NAME tag"), "{e}");
        let e = parse(&build(
            &[(NAME, "x"), (VERSION, "1"), (RELEASE, "1")],
            &[(ARCH, 3)],
        ))
        .unwrap_err();
        assert!(e.contains("tag 1022 has type 4"), "{e}");
    }

    proptest! {
        // Any bytes, and a valid blob with any bytes overwritten: an answer
        // or an error, never a panic (the parser indexes only through `get`).
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn corrupted_blobs_never_panic(at in 0usize..200, value in any::<u8>(), cut in 0usize..400) {
            let mut blob = sample();
            let n = blob.len();
            blob[at % n] = value;
            blob.truncate(cut.min(n));
            let _ = parse(&blob);
        }
    }
}
