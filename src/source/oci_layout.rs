//! `oci:PATH[:TAG][@sha256:...]`: a base image read from an OCI image layout directory.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{ImageSource, LayerVerification, SourceError, assemble_base_with, select_platform};
use crate::cache::Cache;
use crate::image::{
    Architecture, Descriptor, Digest, Document, Image, IndexView, ManifestView, OCI_INDEX, parse_document,
};
use crate::reference::{ImageRef, ImageTarget};
use crate::report::Reporter;

/// The annotation an OCI layout's index.json uses to name a tag.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Manifests, indexes and configs are small; anything bigger is refused rather
/// than loaded into memory (layers are streamed and never pass through here).
const MAX_DOCUMENT: u64 = 32 << 20;

/// How deep indexes may nest below index.json before we give up.
const MAX_INDEX_DEPTH: usize = 4;

/// How many indexes one resolution may read in all: a crafted layout can make
/// a DAG of indexes that share children, which a plain walk re-reads
/// exponentially often; each is read at most once and this bounds the total.
const MAX_INDEXES: usize = 64;

/// Indexes already searched (for a platform they turned out not to have) in
/// one resolution, and how many were read.
#[derive(Default)]
struct IndexWalk {
    searched: std::collections::HashSet<Digest>,
    read: usize,
}

/// An image in an OCI layout directory, named by tag and/or pinned by digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciLayoutSource {
    /// The reference as the user wrote it (`oci:...`), for messages.
    reference: String,
    pub path: PathBuf,
    pub tag: Option<String>,
    /// The digest the chosen index.json entry (manifest or index) must have.
    pub digest: Option<Digest>,
}

impl OciLayoutSource {
    /// Parses what follows `oci:`: `PATH[:TAG][@sha256:<hex>]`.
    pub fn parse(s: &str) -> Result<OciLayoutSource, SourceError> {
        let reference = ImageRef::oci(s)?;
        match reference.target() {
            ImageTarget::Oci { path, tag, digest } => Ok(OciLayoutSource::new(&reference, path, tag, digest)),
            other => unreachable!("an oci: reference parses as an OCI layout, not {other:?}"),
        }
    }

    /// The source of a parsed `oci:` reference.
    pub fn new(reference: &ImageRef, path: &Path, tag: &Option<String>, digest: &Option<Digest>) -> Self {
        OciLayoutSource {
            reference: reference.to_string(),
            path: path.to_path_buf(),
            tag: tag.clone(),
            digest: digest.clone(),
        }
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.path
            .join("blobs")
            .join(digest.algorithm())
            .join(digest.hex())
    }

    /// Reads a small blob (manifest, index, config) and checks its size and digest.
    fn read_document_blob(&self, d: &Descriptor, what: &str) -> Result<Vec<u8>, SourceError> {
        let path = self.blob_path(&d.digest);
        let bytes = read_limited(&path, Some(d.size), &format!("{what} of {}", self.reference))?;
        let actual = Digest::of(&bytes);
        if actual != d.digest {
            return Err(SourceError::DigestMismatch {
                what: format!("{what} {} of {}", path.display(), self.reference),
                expected: d.digest.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// The index.json entry the reference names.
    fn pick_entry(&self, index: &IndexView, arch: Architecture) -> Result<Descriptor, SourceError> {
        let tag_of = |d: &Descriptor| d.annotations.as_ref().and_then(|a| a.get(REF_NAME)).cloned();
        let mut tags: Vec<String> = index.manifests.iter().filter_map(tag_of).collect();
        tags.dedup();
        let listed = if tags.is_empty() {
            "none".to_string()
        } else {
            tags.join(", ")
        };
        let candidates: Vec<Descriptor> = match (&self.tag, &self.digest) {
            (Some(tag), _) => {
                let found: Vec<Descriptor> = index
                    .manifests
                    .iter()
                    .filter(|d| tag_of(d).as_deref() == Some(tag))
                    .cloned()
                    .collect();
                if found.is_empty() {
                    return Err(SourceError::MissingTag {
                        source_ref: self.reference.clone(),
                        tag: tag.clone(),
                        available: listed,
                    });
                }
                found
            }
            (None, Some(digest)) if index.manifests.len() > 1 => {
                let found: Vec<Descriptor> = index
                    .manifests
                    .iter()
                    .filter(|d| &d.digest == digest)
                    .cloned()
                    .collect();
                if found.is_empty() {
                    index.manifests.clone()
                } else {
                    found
                }
            }
            (None, _) => index.manifests.clone(),
        };
        match candidates.len() {
            0 => Err(SourceError::Invalid {
                source_ref: self.reference.clone(),
                message: "its index.json lists no images".into(),
            }),
            1 => Ok(candidates.into_iter().next().expect("one candidate")),
            // One tag on several per-platform manifests: pick like an index.
            _ if self.tag.is_some() => {
                let by_platform = IndexView {
                    schema_version: 2,
                    media_type: None,
                    manifests: candidates,
                };
                select_platform(&by_platform, arch, &self.reference)
            }
            n => Err(SourceError::AmbiguousImage {
                source_ref: self.reference.clone(),
                count: n,
                available: format!("tags: {listed}"),
                hint: format!(
                    "name one as oci:{}:TAG or pin it with @sha256:<digest>",
                    self.path.display()
                ),
            }),
        }
    }

    /// Reads the document `d` names; an index is resolved to its child for `arch`.
    fn resolve_manifest(
        &self,
        d: &Descriptor,
        arch: Architecture,
        depth: usize,
        walk: &mut IndexWalk,
    ) -> Result<(Vec<u8>, ManifestView), SourceError> {
        if is_index(d) {
            walk.read += 1;
            if walk.read > MAX_INDEXES {
                return Err(SourceError::Invalid {
                    source_ref: self.reference.clone(),
                    message: format!(
                        "it nests more than {MAX_INDEXES} indexes below index.json; refused (flatten it with `skopeo copy`)"
                    ),
                });
            }
        }
        let bytes = self.read_document_blob(d, "manifest")?;
        let what = format!("manifest {} of {}", d.digest, self.reference);
        match parse_document(&bytes, Some(&d.media_type), &what)? {
            Document::Manifest(m) => Ok((bytes, *m)),
            Document::Index(_) if depth >= MAX_INDEX_DEPTH => Err(SourceError::Invalid {
                source_ref: self.reference.clone(),
                message: format!("indexes nest more than {MAX_INDEX_DEPTH} deep below index.json"),
            }),
            Document::Index(index) => match select_platform(&index, arch, &self.reference) {
                Ok(child) => self.resolve_manifest(&child, arch, depth + 1, walk),
                Err(no_platform @ SourceError::NoPlatform { .. }) => {
                    // An index of indexes: look for the platform one level
                    // down, in each nested index once (one already searched
                    // in this walk did not have it).
                    for nested in index.manifests.iter().filter(|n| is_index(n)) {
                        if !walk.searched.insert(nested.digest.clone()) {
                            continue;
                        }
                        match self.resolve_manifest(nested, arch, depth + 1, walk) {
                            Err(SourceError::NoPlatform { .. }) => continue,
                            other => return other,
                        }
                    }
                    Err(no_platform)
                }
                Err(e) => Err(e),
            },
        }
    }
}

fn is_index(d: &Descriptor) -> bool {
    matches!(
        crate::image::classify(&d.media_type),
        crate::image::MediaKind::Index(_)
    )
}

/// Reads a small file whole; `expected_size` (when known) must match exactly.
pub(crate) fn read_limited(
    path: &Path,
    expected_size: Option<u64>,
    what: &str,
) -> Result<Vec<u8>, SourceError> {
    let io_err = |source| SourceError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = crate::bounded_read::open_regular(path).map_err(io_err)?;
    let size = file.metadata().map_err(io_err)?.len();
    if let Some(expected) = expected_size
        && expected != size
    {
        return Err(SourceError::SizeMismatch {
            what: format!("{what} ({})", path.display()),
            expected,
            actual: size,
        });
    }
    if size > MAX_DOCUMENT {
        return Err(SourceError::Invalid {
            source_ref: path.display().to_string(),
            message: format!("{what} is {size} bytes; documents over {MAX_DOCUMENT} bytes are refused"),
        });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(MAX_DOCUMENT).read_to_end(&mut bytes).map_err(io_err)?;
    Ok(bytes)
}

/// Checks that `path` is an OCI layout (an `oci-layout` file of version 1.0.x).
pub(crate) fn check_layout(path: &Path) -> Result<(), SourceError> {
    let not = |reason: String| SourceError::NotAnImage {
        path: path.to_path_buf(),
        expected: "an OCI image layout",
        reason,
    };
    if !path.is_dir() {
        return Err(not(
            "no such directory; create one with `skopeo copy ... oci:DIR:TAG`".into(),
        ));
    }
    let marker = path.join("oci-layout");
    if !marker.is_file() {
        return Err(not(
            "it has no `oci-layout` file; make a layout with `skopeo copy IMAGE oci:DIR:TAG`".into(),
        ));
    }
    let bytes = read_limited(&marker, None, "oci-layout")?;
    let version = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("imageLayoutVersion")?.as_str().map(str::to_string));
    match version {
        Some(v) if v == "1.0.0" || v.starts_with("1.0.") => Ok(()),
        Some(v) => Err(not(format!(
            "its imageLayoutVersion is {v:?}; only 1.0.x layouts can be read"
        ))),
        None => Err(not("its `oci-layout` file has no imageLayoutVersion".into())),
    }
}

impl ImageSource for OciLayoutSource {
    fn describe(&self) -> String {
        self.reference.clone()
    }

    fn top_media_type(&self, _reporter: &dyn Reporter) -> Result<Option<String>, SourceError> {
        check_layout(&self.path)?;
        let index_path = self.path.join("index.json");
        let index_bytes = read_limited(&index_path, None, "index.json")?;
        let what = format!("{} of {}", index_path.display(), self.reference);
        match parse_document(&index_bytes, Some(OCI_INDEX), &what)? {
            // Any architecture finds the tagged entry; its media type is what a tag names.
            Document::Index(index) => Ok(Some(self.pick_entry(&index, Architecture::X86_64)?.media_type)),
            Document::Manifest(_) => Ok(None),
        }
    }

    fn resolve_with(
        &self,
        arch: Architecture,
        cache: &Cache,
        reporter: &dyn Reporter,
        verification: LayerVerification,
    ) -> Result<Image, SourceError> {
        reporter.step(&format!("reading {}", self.reference));
        check_layout(&self.path)?;
        let index_path = self.path.join("index.json");
        let index_bytes = read_limited(&index_path, None, "index.json")?;
        let what = format!("{} of {}", index_path.display(), self.reference);
        let index = match parse_document(&index_bytes, Some(OCI_INDEX), &what)? {
            Document::Index(index) => index,
            Document::Manifest(_) => {
                return Err(SourceError::NotAnImage {
                    path: self.path.clone(),
                    expected: "an OCI image layout",
                    reason: "its index.json is a manifest, not an index".into(),
                });
            }
        };
        let entry = self.pick_entry(&index, arch)?;
        if let Some(expected) = &self.digest
            && &entry.digest != expected
        {
            return Err(SourceError::DigestMismatch {
                what: match &self.tag {
                    Some(tag) => format!("tag `{tag}` in OCI layout {}", self.path.display()),
                    None => format!("the image in OCI layout {}", self.path.display()),
                },
                expected: expected.clone(),
                actual: entry.digest,
            });
        }
        let (manifest_bytes, manifest) = self.resolve_manifest(&entry, arch, 0, &mut IndexWalk::default())?;
        let config = self.read_document_blob(&manifest.config, "config")?;
        let locate = |d: &Descriptor| Ok(self.blob_path(&d.digest));
        assemble_base_with(
            manifest_bytes,
            &manifest,
            config,
            &locate,
            &self.reference,
            None,
            cache,
            verification,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_splits_like_skopeo() {
        let d = format!("sha256:{}", "a".repeat(64));
        let s = OciLayoutSource::parse("./base").unwrap();
        assert_eq!((s.path.to_str().unwrap(), s.tag.as_deref()), ("./base", None));
        let s = OciLayoutSource::parse("./base:prod").unwrap();
        assert_eq!(
            (s.path.to_str().unwrap(), s.tag.as_deref()),
            ("./base", Some("prod"))
        );
        let s = OciLayoutSource::parse("/a:b/c").unwrap();
        assert_eq!((s.path.to_str().unwrap(), s.tag), ("/a:b/c", None));
        let s = OciLayoutSource::parse(&format!("/x/y:v1@{d}")).unwrap();
        assert_eq!(s.tag.as_deref(), Some("v1"));
        assert_eq!(s.digest.unwrap().to_string(), d);
        let s = OciLayoutSource::parse(&format!("/x/y@{d}")).unwrap();
        assert_eq!((s.path.to_str().unwrap(), s.tag), ("/x/y", None));
        let s = OciLayoutSource::parse("/x/y@z:t").unwrap();
        assert_eq!(
            (s.path.to_str().unwrap(), s.tag.as_deref()),
            ("/x/y@z", Some("t"))
        );
        assert!(OciLayoutSource::parse("/x@sha256:123").is_err());
        assert!(OciLayoutSource::parse(":tag").is_err());
        assert!(OciLayoutSource::parse("dir:").is_err());
    }
}
