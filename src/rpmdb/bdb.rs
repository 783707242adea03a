//! rpm's Berkeley DB backend (rpm before 4.16; Amazon Linux 2, RHEL 7/8):
//! `Packages` is a Berkeley DB hash database whose keys are package numbers
//! and whose data are header blobs. Read-only and without libdb: the
//! metadata page gives the page size and byte order; every hash page's
//! key/data pairs are visited (the bucket structure does not matter to a
//! full listing), data too big for a page followed along its overflow pages.

use super::{LIMIT, RpmPackage, RpmdbError, header};

const HASH_MAGIC: u32 = 0x0006_1561;
/// Page types (Berkeley DB's `db_page.h`).
const P_HASH_UNSORTED: u8 = 2;
const P_OVERFLOW: u8 = 7;
const P_HASHMETA: u8 = 8;
const P_HASH: u8 = 13;
/// Item types on a hash page.
const H_KEYDATA: u8 = 1;
const H_OFFPAGE: u8 = 3;
/// The header every page starts with: lsn, pgno, prev, next, entries,
/// hf_offset, level, type.
const PAGE_HEADER: usize = 26;

/// One page number and its bytes, with the file's byte order.
struct Pages<'a> {
    bytes: &'a [u8],
    size: usize,
    big_endian: bool,
}

impl<'a> Pages<'a> {
    fn count(&self) -> usize {
        self.bytes.len() / self.size
    }

    fn page(&self, n: u32) -> Result<&'a [u8], String> {
        let at = n as usize * self.size;
        self.bytes
            .get(at..at + self.size)
            .ok_or_else(|| format!("page {n} is past the end of the file ({} pages)", self.count()))
    }

    fn u16(&self, b: &[u8], at: usize) -> Result<u16, String> {
        let v = b.get(at..at + 2).ok_or("a field past the page's end")?;
        let v = [v[0], v[1]];
        Ok(if self.big_endian {
            u16::from_be_bytes(v)
        } else {
            u16::from_le_bytes(v)
        })
    }

    fn u32(&self, b: &[u8], at: usize) -> Result<u32, String> {
        let v = b.get(at..at + 4).ok_or("a field past the page's end")?;
        let v = [v[0], v[1], v[2], v[3]];
        Ok(if self.big_endian {
            u32::from_be_bytes(v)
        } else {
            u32::from_le_bytes(v)
        })
    }

    /// The items of hash page `page`: (offset, length) of each, in index order.
    fn items(&self, n: u32, page: &[u8]) -> Result<Vec<(usize, usize)>, String> {
        let entries = self.u16(page, 20)? as usize;
        let mut items = Vec::with_capacity(entries);
        let mut end = self.size;
        for i in 0..entries {
            let at = self.u16(page, PAGE_HEADER + 2 * i)? as usize;
            // Items are stacked down from the page's end: each ends where the previous begins.
            if at < PAGE_HEADER + 2 * entries || at >= end {
                return Err(format!("page {n}: item {i} at offset {at} is outside its space"));
            }
            items.push((at, end - at));
            end = at;
        }
        Ok(items)
    }

    /// The bytes of an item: on the page, or (`H_OFFPAGE`) along its overflow pages.
    fn item(&self, n: u32, page: &[u8], (at, len): (usize, usize)) -> Result<Vec<u8>, String> {
        match page[at] {
            H_KEYDATA => Ok(page[at + 1..at + len].to_vec()),
            H_OFFPAGE => {
                let first = self.u32(page, at + 4)?;
                let total = self.u32(page, at + 8)? as u64;
                if total > LIMIT {
                    return Err(format!("page {n}: an item of {total} bytes"));
                }
                self.overflow(first, total as usize)
            }
            other => Err(format!(
                "page {n}: item type {other} (duplicates) is not what rpm's Packages holds"
            )),
        }
    }

    /// `total` bytes along the chain of overflow pages starting at `first`.
    fn overflow(&self, first: u32, total: usize) -> Result<Vec<u8>, String> {
        // The item's length is the file's word: reserve no more than the file holds.
        let mut out = Vec::with_capacity(total.min(self.bytes.len()));
        let mut n = first;
        // A chain visits each page at most once; more steps mean a loop.
        for _ in 0..self.count() {
            let page = self.page(n)?;
            if page[25] != P_OVERFLOW {
                return Err(format!(
                    "page {n}: type {} where an overflow page was expected",
                    page[25]
                ));
            }
            let len = self.u16(page, 22)? as usize;
            let data = page
                .get(PAGE_HEADER..PAGE_HEADER + len)
                .ok_or_else(|| format!("page {n}: overflow length {len} is longer than the page"))?;
            out.extend_from_slice(data);
            let next = self.u32(page, 16)?;
            if out.len() >= total || next == 0 {
                break;
            }
            n = next;
        }
        if out.len() != total {
            return Err(format!(
                "an overflow chain from page {first} holds {} bytes, not the {total} its item says",
                out.len()
            ));
        }
        Ok(out)
    }
}

/// The packages of `bytes`, a `Packages` file; `path` names it in errors.
pub fn read(path: &str, bytes: &[u8]) -> Result<Vec<RpmPackage>, RpmdbError> {
    let bdb = |why: String| RpmdbError::Bdb {
        path: path.to_string(),
        why,
    };
    let pages = open(bytes).map_err(bdb)?;
    let mut out = Vec::new();
    for n in 1..pages.count() as u32 {
        let page = pages.page(n).map_err(bdb)?;
        // Pages never written (an empty bucket) are zeros; free pages have type 0.
        if !matches!(page[25], P_HASH | P_HASH_UNSORTED) {
            continue;
        }
        if pages.u32(page, 8).map_err(bdb)? != n {
            return Err(bdb(format!(
                "page {n} says it is page {}",
                pages.u32(page, 8).unwrap_or(0)
            )));
        }
        let items = pages.items(n, page).map_err(bdb)?;
        for pair in items.chunks(2) {
            let [key, data] = pair else {
                return Err(bdb(format!("page {n}: a key without its data")));
            };
            let key = pages.item(n, page, *key).map_err(bdb)?;
            // Package number 0 holds rpm's counter of the next number, not a header.
            if key.iter().all(|b| *b == 0) {
                continue;
            }
            let record = match key.as_slice() {
                [a, b, c, d] if pages.big_endian => u32::from_be_bytes([*a, *b, *c, *d]),
                [a, b, c, d] => u32::from_le_bytes([*a, *b, *c, *d]),
                _ => {
                    return Err(bdb(format!(
                        "page {n}: a key of {} bytes, not a package number",
                        key.len()
                    )));
                }
            };
            let blob = pages.item(n, page, *data).map_err(bdb)?;
            let package = header::parse(&blob).map_err(|why| RpmdbError::Header {
                path: path.to_string(),
                record: record as u64,
                why,
            })?;
            out.push((record, package));
        }
    }
    // rpm lists packages by number (install order); the pages hold them by hash.
    out.sort_by_key(|(record, _)| *record);
    Ok(out.into_iter().map(|(_, p)| p).collect())
}

/// The file's pages, after checking its metadata page.
fn open(bytes: &[u8]) -> Result<Pages<'_>, String> {
    let meta = bytes
        .get(..512)
        .ok_or_else(|| format!("{} bytes, shorter than a metadata page", bytes.len()))?;
    let magic = |b: &[u8]| [b[12], b[13], b[14], b[15]];
    let big_endian = if u32::from_le_bytes(magic(meta)) == HASH_MAGIC {
        false
    } else if u32::from_be_bytes(magic(meta)) == HASH_MAGIC {
        true
    } else {
        return Err("no Berkeley DB hash magic in its first page".to_string());
    };
    let probe = Pages {
        bytes,
        size: 512,
        big_endian,
    };
    let size = probe.u32(meta, 20)? as usize;
    if !size.is_power_of_two() || !(512..=65536).contains(&size) {
        return Err(format!("page size {size}, not a power of two from 512 to 65536"));
    }
    if meta[25] != P_HASHMETA {
        return Err(format!(
            "first page has type {}, not a hash metadata page",
            meta[25]
        ));
    }
    if meta[24] != 0 {
        return Err("the database is encrypted".to_string());
    }
    let last = probe.u32(meta, 32)? as u64;
    let expected = (last + 1) * size as u64;
    if (bytes.len() as u64) < expected || !bytes.len().is_multiple_of(size) {
        return Err(format!(
            "{} bytes, but its metadata page promises {} pages of {size} bytes ({expected} bytes): truncated",
            bytes.len(),
            last + 1
        ));
    }
    Ok(Pages {
        bytes,
        size,
        big_endian,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A metadata page for 512-byte little-endian pages.
    fn meta() -> Vec<u8> {
        let mut page = vec![0u8; 512];
        page[12..16].copy_from_slice(&HASH_MAGIC.to_le_bytes());
        page[16..20].copy_from_slice(&9u32.to_le_bytes());
        page[20..24].copy_from_slice(&512u32.to_le_bytes());
        page[25] = P_HASHMETA;
        page
    }

    #[test]
    fn what_is_not_a_hash_database_is_named() {
        let e = read("/var/lib/rpm/Packages", b"short").unwrap_err().to_string();
        assert!(e.contains("shorter than a metadata page"), "{e}");
        let e = read("/var/lib/rpm/Packages", &[0u8; 4096])
            .unwrap_err()
            .to_string();
        assert!(e.contains("no Berkeley DB hash magic"), "{e}");
        assert_eq!(read("/var/lib/rpm/Packages", &meta()).unwrap(), []);
    }

    proptest! {
        // Hash and overflow pages of any content after a valid metadata
        // page: an answer or an error, never a panic or a runaway allocation.
        #[test]
        fn arbitrary_pages_never_panic(
            pages in proptest::collection::vec(
                (prop_oneof![Just(P_HASH), Just(P_OVERFLOW), any::<u8>()],
                 proptest::collection::vec(any::<u8>(), 512)),
                0..6,
            ),
            entries in 0u16..8,
        ) {
            let mut file = meta();
            for (n, (kind, mut page)) in pages.into_iter().enumerate() {
                page[8..12].copy_from_slice(&(n as u32 + 1).to_le_bytes());
                page[20..22].copy_from_slice(&entries.to_le_bytes());
                page[25] = kind;
                file.extend_from_slice(&page);
            }
            let _ = read("/var/lib/rpm/Packages", &file);
        }
    }
}
