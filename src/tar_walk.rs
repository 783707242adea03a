//! Streaming one layer blob's tar entries: gzip decoding on the fly, one entry
//! at a time, nothing unpacked to disk. Shared by the rules, `inspect`, `sbom`
//! and `repair`.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use crate::image::{BlobLocation, Compression, Digest, Layer, MediaKind, classify};
pub use crate::read_ahead::StreamDigests;
use crate::read_ahead::read_inflated;

/// Why a layer blob could not be walked.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    #[error(
        "cannot read layer {layer} of the image ({path}): {source}; the blob may be truncated or corrupt, fetch it again"
    )]
    Layer {
        layer: Digest,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(
        "layer {layer} has media type {media_type}, which lambda-img cannot decompress; recompress it with gzip"
    )]
    Unreadable { layer: Digest, media_type: String },
}

/// What a tar entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    HardLink,
    /// Devices, fifos: present in the filesystem but not checked.
    Special,
    /// Headers that are not filesystem entries (pax global headers).
    Meta,
}

/// One tar entry's header facts, with the path normalised: no leading `/` or
/// `./`, no trailing `/`, the root directory is `""`.
#[derive(Debug, Clone)]
pub struct TarEntry {
    pub path: String,
    pub kind: EntryKind,
    pub mode: u32,
    pub uid: u64,
    pub size: u64,
    /// Target of a symlink or hard link, as written.
    pub link: Option<String>,
    /// The name as written is absolute or has a `..` component: an unpacker
    /// that trusts it writes outside the root (LI042).
    pub escapes_root: bool,
}

/// What one pass over a layer saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalkStats {
    /// Bytes of uncompressed tar read.
    pub uncompressed_bytes: u64,
    pub entries: u64,
}

/// Normalises a tar path (see [`TarEntry::path`]).
pub fn normalize(raw: &str) -> String {
    raw.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether a tar entry name as written is absolute or climbs with `..`.
pub fn escapes_root(raw: &str) -> bool {
    raw.starts_with('/') || raw.split('/').any(|c| c == "..")
}

/// The proper ancestors of a normalised path, nearest first (`a/b/c`: `a/b`, `a`).
pub fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.rmatch_indices('/').map(move |(i, _)| &path[..i])
}

/// The parent of a normalised path (`""` for top-level entries).
pub fn parent(path: &str) -> &str {
    path.rfind('/').map(|i| &path[..i]).unwrap_or("")
}

struct Counting<R> {
    inner: R,
    count: u64,
    eof: bool,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        self.eof |= n == 0 && !buf.is_empty();
        Ok(n)
    }
}

/// Only forward from where the stream is (how the tar reader skips content);
/// `inner` gives positions from its own start, as the count does. A skip the
/// stream ends inside stops short: the next read finds the end, as a read of
/// that content would have.
impl<R: Read + Seek> Seek for Counting<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.count = self.inner.seek(pos)?;
        Ok(self.count)
    }
}

/// Streams every entry of `layer` to `visit`, which may read the entry's
/// content (only what it needs: the rest is skipped by the tar reader).
/// Layers that are not gzip or plain tar give [`WalkError::Unreadable`].
/// The blob is read and inflated on a second thread (see `read_ahead`).
pub fn walk_layer(
    layer: &Layer,
    visit: impl FnMut(&TarEntry, &mut dyn Read) -> io::Result<()>,
) -> Result<WalkStats, WalkError> {
    walk_layer_as(layer, false, visit).map(|(stats, _)| stats)
}

/// [`walk_layer`], hashing the blob and its uncompressed stream on the way (to
/// their ends): one read of the layer both checks its digests and walks it.
pub fn walk_layer_hashed(
    layer: &Layer,
    visit: impl FnMut(&TarEntry, &mut dyn Read) -> io::Result<()>,
) -> Result<(WalkStats, StreamDigests), WalkError> {
    let (stats, digests) = walk_layer_as(layer, true, visit)?;
    Ok((stats, digests.expect("a hashed read returns its digests")))
}

fn walk_layer_as(
    layer: &Layer,
    hash: bool,
    visit: impl FnMut(&TarEntry, &mut dyn Read) -> io::Result<()>,
) -> Result<(WalkStats, Option<StreamDigests>), WalkError> {
    let BlobLocation::File(path) = &layer.location;
    let fail = |source| WalkError::Layer {
        layer: layer.descriptor.digest.clone(),
        path: path.clone(),
        source,
    };
    let compression = match classify(&layer.descriptor.media_type) {
        MediaKind::Layer { compression, .. } if compression != Compression::Zstd => compression,
        _ => {
            return Err(WalkError::Unreadable {
                layer: layer.descriptor.digest.clone(),
                media_type: layer.descriptor.media_type.clone(),
            });
        }
    };
    let file = File::open(path).map_err(fail)?;
    read_inflated(file, compression == Compression::Gzip, hash, |reader| {
        walk_tar(reader, visit)
    })
    .map_err(fail)
}

/// [`walk_layer`] over an uncompressed tar stream (what `visit` leaves of an
/// entry is read and dropped).
pub fn walk_tar(
    reader: impl Read,
    visit: impl FnMut(&TarEntry, &mut dyn Read) -> io::Result<()>,
) -> io::Result<WalkStats> {
    walk_tar_skipping(SkipByReading::new(reader), visit)
}

/// [`walk_tar`] over a stream that can skip forward (`SeekFrom::Current`
/// only): what `visit` leaves of an entry is passed over, not copied out.
/// The build's own scans read a few hundred bytes of each file of a layer
/// as it is compressed; copying the rest through a buffer to skip it was
/// 2 GB of copying per scan at 2 GB.
pub fn walk_tar_skipping(
    reader: impl Read + Seek,
    visit: impl FnMut(&TarEntry, &mut dyn Read) -> io::Result<()>,
) -> io::Result<WalkStats> {
    let mut archive = tar::Archive::new(Counting {
        inner: reader,
        count: 0,
        eof: false,
    });
    let walked = visit_entries(archive.entries_with_seek()?, visit)?;
    finish(archive.into_inner(), walked)
}

/// A stream that cannot seek, made to skip forward by reading and dropping
/// what it passes over: for [`walk_tar_skipping`]'s callers whose stream is
/// an inflater or a pipe.
pub struct SkipByReading<R> {
    inner: R,
    pos: u64,
}

impl<R: Read> SkipByReading<R> {
    pub fn new(inner: R) -> SkipByReading<R> {
        SkipByReading { inner, pos: 0 }
    }
}

impl<R: Read> Read for SkipByReading<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Read> Seek for SkipByReading<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let n = match to {
            SeekFrom::Current(n) => u64::try_from(n).ok(),
            _ => None,
        }
        .ok_or_else(|| io::Error::new(io::ErrorKind::Unsupported, "this stream only skips forward"))?;
        // Short at the end of the stream: the next read says so.
        self.pos += io::copy(&mut (&mut self.inner).take(n), &mut io::sink())?;
        Ok(self.pos)
    }
}

/// What walking the entries left: the stats so far, where the last entry's
/// content ends in the tar stream, and the tar reader's error if it stopped.
struct Walked {
    stats: WalkStats,
    content_end: u64,
    failure: Option<io::Error>,
}

fn visit_entries<R: Read>(
    entries: tar::Entries<'_, R>,
    mut visit: impl FnMut(&TarEntry, &mut dyn Read) -> io::Result<()>,
) -> io::Result<Walked> {
    let mut stats = WalkStats::default();
    // Where the last entry's content ends in the tar stream.
    let mut content_end = 0u64;
    let mut failure = None;
    for entry in entries {
        let mut entry = match entry {
            Ok(e) => e,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        content_end = entry.raw_file_position() + entry.size();
        let header = entry.header();
        let kind = match header.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                EntryKind::File
            }
            tar::EntryType::Directory => EntryKind::Dir,
            tar::EntryType::Symlink => EntryKind::Symlink,
            tar::EntryType::Link => EntryKind::HardLink,
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => EntryKind::Meta,
            _ => EntryKind::Special,
        };
        let mode = header.mode()?;
        let uid = header.uid()?;
        let size = entry.size();
        let link = match kind {
            EntryKind::Symlink | EntryKind::HardLink => entry
                .link_name_bytes()
                .map(|b| String::from_utf8_lossy(&b).into_owned()),
            _ => None,
        };
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let info = TarEntry {
            path: normalize(&raw),
            kind,
            mode,
            uid,
            size,
            link,
            escapes_root: escapes_root(&raw),
        };
        stats.entries += 1;
        visit(&info, &mut entry)?;
    }
    Ok(Walked {
        stats,
        content_end,
        failure,
    })
}

fn finish<R: Read>(mut rest: Counting<R>, walked: Walked) -> io::Result<WalkStats> {
    let Walked {
        mut stats,
        content_end,
        failure,
    } = walked;
    if let Some(e) = failure {
        // Some writers (umoci 0.4) end the stream right after the last
        // entry's content, without padding or end-of-archive blocks. Every
        // byte of content was read, so nothing is lost; anything else is a
        // broken layer.
        if !(rest.eof && rest.count >= content_end) {
            return Err(e);
        }
    }
    // A skip over content the stream ended inside stops short (see
    // `Counting`), and the tar reader may take the end that follows for the
    // end of the archive: the count tells the truncation.
    if rest.count < content_end {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the tar stream ends inside its last entry's content",
        ));
    }
    // Read the end-of-archive padding too, so the count is the whole tar.
    io::copy(&mut rest, &mut io::sink())?;
    stats.uncompressed_bytes = rest.count;
    Ok(stats)
}

/// Reads up to `limit` bytes of an entry (the rest is left for the tar reader to skip).
pub fn read_head(reader: &mut dyn Read, limit: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(limit.min(64 * 1024));
    reader.take(limit as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn normalize_strips_dots_and_slashes() {
        assert_eq!(normalize("./var/task/"), "var/task");
        assert_eq!(normalize("/a//b/./c"), "a/b/c");
        assert_eq!(normalize("./"), "");
        assert_eq!(parent("var/task/app.py"), "var/task");
        assert_eq!(parent("var"), "");
        assert!(escapes_root("/etc/passwd") && escapes_root("../x") && escapes_root("a/../../b"));
        assert!(!escapes_root("./a/b") && !escapes_root("a..b/c") && !escapes_root("..a"));
    }

    /// A tar of files of many sizes (some over the tar reader's skip buffer),
    /// a directory and a link.
    pub(crate) fn sample_tar() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (i, size) in [0usize, 1, 511, 512, 513, 40_000, 300_000].iter().enumerate() {
            let data: Vec<u8> = (0..*size).map(|j| (j * 7 + i) as u8).collect();
            let mut h = tar::Header::new_ustar();
            h.set_size(*size as u64);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_cksum();
            b.append_data(&mut h, format!("var/task/f{i}"), &data[..])
                .unwrap();
        }
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        b.append_link(&mut h, "var/task/link", "f1").unwrap();
        b.into_inner().unwrap()
    }

    fn heads_of(
        walk: impl FnOnce(&mut dyn FnMut(&TarEntry, &mut dyn Read) -> io::Result<()>) -> io::Result<WalkStats>,
    ) -> (Vec<(String, Vec<u8>)>, WalkStats) {
        let mut seen = Vec::new();
        let stats = walk(&mut |e, content| {
            seen.push((e.path.clone(), read_head(content, 100)?));
            Ok(())
        })
        .unwrap();
        (seen, stats)
    }

    #[test]
    fn skipping_by_seeking_or_reading_walks_what_copying_walks() {
        let tar = sample_tar();
        let copied = heads_of(|v| walk_tar(&tar[..], v));
        assert_eq!(copied.0.len(), 8);
        assert_eq!(copied.1.uncompressed_bytes, tar.len() as u64);
        let sought = heads_of(|v| walk_tar_skipping(io::Cursor::new(&tar[..]), v));
        let read = heads_of(|v| walk_tar_skipping(SkipByReading::new(&tar[..]), v));
        assert_eq!(sought, copied);
        assert_eq!(read, copied);
    }

    #[test]
    fn a_stream_that_ends_inside_an_entry_is_an_error_either_way() {
        let tar = sample_tar();
        let cut = &tar[..tar.len() - 2048 - 512 - 100_000];
        assert!(walk_tar(cut, |_, _| Ok(())).is_err());
        assert!(walk_tar_skipping(SkipByReading::new(cut), |_, _| Ok(())).is_err());
    }
}
