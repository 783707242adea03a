//! Streaming one layer blob's tar entries: gzip decoding on the fly, one entry
//! at a time, nothing unpacked to disk. Shared by the rules, `inspect`, `sbom`
//! and `repair`.

use std::fs::File;
use std::io::{self, Read};

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

/// [`walk_layer`] over an uncompressed tar stream.
pub fn walk_tar(
    reader: impl Read,
    mut visit: impl FnMut(&TarEntry, &mut dyn Read) -> io::Result<()>,
) -> io::Result<WalkStats> {
    let mut archive = tar::Archive::new(Counting {
        inner: reader,
        count: 0,
        eof: false,
    });
    let mut stats = WalkStats::default();
    // Where the last entry's content ends in the tar stream.
    let mut content_end = 0u64;
    let mut failure = None;
    for entry in archive.entries()? {
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
    let mut rest = archive.into_inner();
    if let Some(e) = failure {
        // Some writers (umoci 0.4) end the stream right after the last
        // entry's content, without padding or end-of-archive blocks. Every
        // byte of content was read, so nothing is lost; anything else is a
        // broken layer.
        if !(rest.eof && rest.count >= content_end) {
            return Err(e);
        }
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
mod tests {
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
}
