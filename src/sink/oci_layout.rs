//! `oci:DIR[:TAG]`: adds the image to an OCI image layout directory.
//!
//! Blobs go in first (each through a temp file and a rename), then index.json is
//! replaced in one rename: until that rename the layout still shows its previous
//! contents, and a failure leaves no partial file behind.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use super::{ImageSink, SinkError, SinkReport};
use crate::image::{BlobLocation, Descriptor, Digest, Document, HashingWriter, Image, Layer, OCI_INDEX};
use crate::image::{MediaFamily, parse_document, write_index};
use crate::reference::{OutputKind, OutputRef, OutputTarget};
use crate::report::Reporter;

pub(super) const REF_NAME: &str = "org.opencontainers.image.ref.name";
const LAYOUT_MARKER: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// An OCI layout directory and the tag to write the image under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciLayoutSink {
    pub dir: PathBuf,
    pub tag: String,
    /// Remove blobs the new index.json does not reach (see [`super::layout_gc`]).
    pub gc: bool,
    /// The cache the layers were built into: its blobs are hard-linked into
    /// the layout (one it committed and nothing touched since without reading
    /// it again); without a cache every blob is copied.
    pub cache: Option<crate::cache::Cache>,
}

impl OciLayoutSink {
    /// Parses what follows `oci:`: `DIR[:TAG]`, the tag defaulting to `latest`.
    pub fn parse(s: &str) -> Result<OciLayoutSink, SinkError> {
        match OutputRef::of_kind(OutputKind::Oci, s)?.target() {
            OutputTarget::Oci { dir, tag } => Ok(OciLayoutSink::new(dir, tag)),
            other => unreachable!("an oci: output parses as an OCI layout, not {other:?}"),
        }
    }

    /// The sink of a parsed `oci:` output (garbage-collecting).
    pub(super) fn new(dir: &Path, tag: &str) -> Self {
        OciLayoutSink {
            dir: dir.to_path_buf(),
            tag: tag.to_string(),
            gc: true,
            cache: None,
        }
    }

    fn io_err(&self, path: &Path) -> impl Fn(io::Error) -> SinkError {
        let path = path.to_path_buf();
        move |source| SinkError::Io {
            path: path.clone(),
            source,
        }
    }

    /// Creates the layout when missing and locks it; returns the entries of
    /// its index.json and the lock, held until the new index.json is in place
    /// so that two builds writing different tags do not lose one.
    pub(super) fn prepare(&self) -> Result<(Vec<Descriptor>, File), SinkError> {
        let not = |reason: &str| SinkError::NotALayout {
            path: self.dir.clone(),
            reason: reason.to_string(),
        };
        let marker = self.dir.join("oci-layout");
        let index_path = self.dir.join("index.json");
        if self.dir.exists() && !self.dir.is_dir() {
            return Err(not("it is not a directory"));
        }
        let created = !self.dir.exists();
        fs::create_dir_all(&self.dir).map_err(self.io_err(&self.dir))?;
        // An advisory lock on the directory itself: nothing is added to the layout.
        let lock = File::open(&self.dir).map_err(self.io_err(&self.dir))?;
        lock.lock().map_err(self.io_err(&self.dir))?;
        let mut entries = Vec::new();
        if marker.is_file() {
            let text = crate::bounded_read::read_capped(&marker, crate::bounded_read::MAX_JSON, "oci-layout")
                .map_err(|e| not(&format!("its oci-layout file cannot be read: {e}")))?;
            let version = serde_json::from_slice::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("imageLayoutVersion")?.as_str().map(str::to_string));
            if !version.as_deref().is_some_and(|v| v.starts_with("1.0.")) {
                return Err(not("its oci-layout file does not say imageLayoutVersion 1.0.x"));
            }
            if index_path.exists() {
                let bytes = crate::bounded_read::read_capped(
                    &index_path,
                    crate::bounded_read::MAX_JSON,
                    "index.json",
                )
                .map_err(|e| not(&format!("its index.json cannot be read: {e}")))?;
                match parse_document(&bytes, Some(OCI_INDEX), &index_path.display().to_string()) {
                    Ok(Document::Index(index)) => entries = index.manifests,
                    Ok(Document::Manifest(_)) => return Err(not("its index.json is a manifest")),
                    Err(e) => return Err(not(&format!("its index.json is unreadable: {e}"))),
                }
            }
        } else if !created
            && fs::read_dir(&self.dir)
                .map_err(self.io_err(&self.dir))?
                .next()
                .is_some()
        {
            return Err(not("it is not empty and has no oci-layout file"));
        }
        let blobs = self.dir.join("blobs").join("sha256");
        fs::create_dir_all(&blobs).map_err(self.io_err(&blobs))?;
        if !marker.is_file() {
            self.write_atomically(&marker, |w| w.write_all(LAYOUT_MARKER))?;
        }
        Ok((entries, lock))
    }

    /// Writes `path` through a temp file in the same directory and a rename.
    pub(super) fn write_atomically(
        &self,
        path: &Path,
        fill: impl FnOnce(&mut File) -> io::Result<()>,
    ) -> Result<(), SinkError> {
        let mut tmp = temp_beside(path).map_err(self.io_err(path))?;
        fill(tmp.as_file_mut()).map_err(self.io_err(path))?;
        persist(tmp, path).map_err(self.io_err(path))
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("blobs").join("sha256").join(digest.hex())
    }

    /// A blob already in the layout with the right size is kept as it is.
    fn has_blob(&self, digest: &Digest, size: u64) -> bool {
        fs::metadata(self.blob_path(digest)).is_ok_and(|m| m.is_file() && m.len() == size)
    }

    pub(super) fn put_bytes(&self, bytes: &[u8], digest: &Digest) -> Result<(), SinkError> {
        if !self.has_blob(digest, bytes.len() as u64) {
            self.write_atomically(&self.blob_path(digest), |f| f.write_all(bytes))?;
        }
        Ok(())
    }

    fn put_layer(&self, layer: &Layer) -> Result<(), SinkError> {
        let d = &layer.descriptor;
        if self.has_blob(&d.digest, d.size) {
            return Ok(());
        }
        let dest = self.blob_path(&d.digest);
        if self.link_layer(layer, &dest)? {
            return Ok(());
        }
        let mut tmp = temp_beside(&dest).map_err(self.io_err(&dest))?;
        let mut out = BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
        copy_verified(layer, &mut out)?;
        out.flush().map_err(self.io_err(&dest))?;
        drop(out);
        persist(tmp, &dest).map_err(self.io_err(&dest))
    }
}

impl OciLayoutSink {
    /// Hard-links the layer's blob into the layout when the cache and the
    /// layout share a filesystem: no copy and no second fsync of a blob that
    /// can be gigabytes. Blobs are content-addressed and nobody writes them in
    /// place (we, skopeo and umoci all write a new file and rename), so sharing
    /// the inode is safe. The blob is read once to verify its digest, so a
    /// damaged cache entry is never linked, unless the build's cache value
    /// ([`Self::cache`]) committed it and nothing has touched it since (a
    /// layer this build just compressed and hashed). Returns false when no link can
    /// be made (another filesystem, a filesystem without hard links); the
    /// caller then copies.
    ///
    /// Only blobs of the cache the sink was given are linked, and only regular files
    /// already world-readable: an input layout's blob (another owner's inode,
    /// perhaps deliberately 0600) or a symlink is copied instead, and a linked
    /// inode's mode is never changed.
    fn link_layer(&self, layer: &Layer, dest: &Path) -> Result<bool, SinkError> {
        let BlobLocation::File(blob) = &layer.location;
        let Some(cache) = self.cache.as_ref().filter(|c| c.is_own_blob(blob)) else {
            return Ok(false);
        };
        let vouched = cache.unchanged_since_commit(blob, &layer.descriptor.digest);
        if !vouched {
            copy_verified(layer, &mut io::sink())?;
        }
        let dir = dest.parent().unwrap_or(Path::new("."));
        let name = format!(".{}.tmp-", layer.descriptor.digest.hex());
        let linked = tempfile::Builder::new()
            .prefix(&name)
            .make_in(dir, |path| fs::hard_link(blob, path));
        let Ok(link) = linked else {
            return Ok(false);
        };
        link.persist(dest)
            .map_err(|e| e.error)
            .map_err(self.io_err(dest))?;
        Ok(true)
    }
}

/// The image with OCI media types, when it has Docker ones: a new manifest
/// naming the same config bytes and layer blobs. Tools reading a layout (skopeo,
/// umoci) skip index.json entries that are not OCI manifests or indexes.
pub fn as_oci(image: &Image) -> Option<Image> {
    (image.family() != MediaFamily::Oci).then(|| image.with_family(MediaFamily::Oci))
}

/// A hidden temp file next to `path`, removed on drop unless persisted.
pub(crate) fn temp_beside(path: &Path) -> io::Result<NamedTempFile> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    tempfile::Builder::new()
        .prefix(&format!(".{name}.tmp-"))
        .tempfile_in(dir)
}

/// Syncs, makes world-readable (temp files start 0600) and renames into place.
pub(crate) fn persist(tmp: NamedTempFile, dest: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    tmp.as_file().sync_data()?;
    tmp.as_file().set_permissions(fs::Permissions::from_mode(0o644))?;
    tmp.persist(dest).map_err(|e| e.error)?;
    Ok(())
}

/// Streams a layer's blob into `out`, checking its size and digest on the way.
pub(crate) fn copy_verified(layer: &Layer, out: &mut impl Write) -> Result<(), SinkError> {
    let BlobLocation::File(path) = &layer.location;
    let d = &layer.descriptor;
    let read_err = |source| SinkError::ReadBlob {
        path: path.clone(),
        source,
    };
    let file = crate::bounded_read::open_regular(path).map_err(read_err)?;
    let mut hashing = HashingWriter::new(out);
    // One byte past the size, so a longer file is noticed rather than cut.
    let mut reader = BufReader::with_capacity(1 << 20, file).take(d.size + 1);
    io::copy(&mut reader, &mut hashing).map_err(|source| SinkError::Io {
        path: path.clone(),
        source,
    })?;
    let (_, (digest, size)) = hashing.finish();
    if (size != d.size || digest != d.digest) && crate::cache::evict_corrupt_blob(path) {
        return Err(SinkError::CorruptCacheBlob {
            path: path.clone(),
            expected: d.digest.clone(),
        });
    }
    if size != d.size {
        return Err(SinkError::BlobMismatch {
            path: path.clone(),
            what: "size",
            expected: d.size.to_string(),
            actual: if size > d.size {
                format!("more than {}", d.size)
            } else {
                size.to_string()
            },
        });
    }
    if digest != d.digest {
        return Err(SinkError::digest_mismatch(path.clone(), &d.digest, &digest));
    }
    Ok(())
}

/// Checks every layer's file is there with the right size before anything is written.
pub(crate) fn check_layer_files(image: &Image) -> Result<(), SinkError> {
    for layer in image.layers() {
        let BlobLocation::File(path) = &layer.location;
        let meta = fs::metadata(path).map_err(|source| SinkError::ReadBlob {
            path: path.clone(),
            source,
        })?;
        if meta.len() != layer.descriptor.size {
            if crate::cache::evict_corrupt_blob(path) {
                return Err(SinkError::CorruptCacheBlob {
                    path: path.clone(),
                    expected: layer.descriptor.digest.clone(),
                });
            }
            return Err(SinkError::BlobMismatch {
                path: path.clone(),
                what: "size",
                expected: layer.descriptor.size.to_string(),
                actual: meta.len().to_string(),
            });
        }
    }
    Ok(())
}

impl OciLayoutSink {
    /// Removes the blobs `entries` (the new index.json) no longer reach. Run
    /// under the layout lock: no other build of ours is adding blobs.
    pub(super) fn collect_garbage(&self, entries: &[Descriptor], reporter: &dyn Reporter) {
        match super::layout_gc::collect(&self.dir, entries) {
            Ok(n) if n > 0 => reporter.detail(&format!(
                "{}: removed {n} blob(s) no image in index.json uses",
                self.describe()
            )),
            Ok(_) => {}
            Err(why) => reporter.warn(&format!(
                "{}: unreferenced blobs were kept ({why})",
                self.describe()
            )),
        }
    }
}

impl ImageSink for OciLayoutSink {
    fn output(&self) -> OutputRef {
        OutputRef::oci(&self.dir, &self.tag)
    }

    fn local_path(&self) -> Option<PathBuf> {
        Some(self.dir.clone())
    }

    fn attach_referrer(
        &self,
        image: &Image,
        artifact: super::referrer::Artifact<'_>,
        reporter: &dyn Reporter,
    ) -> Result<Option<super::referrer::ReferrerReport>, SinkError> {
        super::referrer::add_to_layout(self, image, artifact, reporter).map(Some)
    }

    fn write(&self, image: &Image, reporter: &dyn Reporter) -> Result<SinkReport, SinkError> {
        reporter.step(&format!("writing {}", self.describe()));
        let converted = as_oci(image);
        if let Some(oci) = &converted {
            // The build warned once for all outputs; this is the detail.
            reporter.detail(&format!(
                "{}: the image uses Docker media types; the layout gets an OCI manifest {} \
                 (same config and layers) instead of {}, since skopeo and umoci skip Docker manifests in a layout",
                self.describe(),
                oci.manifest_digest(),
                image.manifest_digest()
            ));
        }
        let image = converted.as_ref().unwrap_or(image);
        check_layer_files(image)?;
        let (mut entries, _lock) = self.prepare()?;
        self.put_bytes(image.config(), &image.config_descriptor().digest)?;
        for layer in image.layers() {
            self.put_layer(layer)?;
        }
        // The manifest goes last: once it is there, everything it names is too.
        self.put_bytes(image.manifest(), image.manifest_digest())?;

        let mut ours = image.manifest_descriptor();
        ours.annotations = Some(BTreeMap::from([(REF_NAME.to_string(), self.tag.clone())]));
        let same_tag =
            |d: &Descriptor| d.annotations.as_ref().and_then(|a| a.get(REF_NAME)) == Some(&self.tag);
        match entries.iter().position(same_tag) {
            Some(i) => {
                entries[i] = ours;
                // A tag names one image: drop any further entries that claimed it.
                let mut seen = 0;
                entries.retain(|d| {
                    !same_tag(d) || {
                        seen += 1;
                        seen == 1
                    }
                });
            }
            None => entries.push(ours),
        }
        let index = write_index(&entries);
        self.write_atomically(&self.dir.join("index.json"), |f| f.write_all(&index))?;
        if self.gc {
            self.collect_garbage(&entries, reporter);
        }
        reporter.detail(&format!(
            "{} now names {}",
            self.describe(),
            image.manifest_digest()
        ));
        Ok(SinkReport {
            reference: Some(format!("{}@{}", self.output(), image.manifest_digest())),
            output: self.output(),
            blobs: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_defaults_the_tag() {
        let s = OciLayoutSink::parse("./out").unwrap();
        assert_eq!((s.dir.to_str().unwrap(), s.tag.as_str()), ("./out", "latest"));
        let s = OciLayoutSink::parse("/tmp/a:b/out:v2").unwrap();
        assert_eq!((s.dir.to_str().unwrap(), s.tag.as_str()), ("/tmp/a:b/out", "v2"));
        assert!(OciLayoutSink::parse("out:").is_err());
        assert!(OciLayoutSink::parse(":x").is_err());
    }
}
