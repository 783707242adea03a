//! Turning a base image's manifest, config and blobs into a verified [`Image`].
//! Shared by every source: platform selection from an index, config digest
//! checks, and the once-per-blob diff_id verification.

use std::io::{self, BufReader};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use serde::{Deserialize, Serialize};

use super::SourceError;
use crate::cache::{Cache, CacheBucket};
use crate::image::{
    Architecture, BlobLocation, Compression, Descriptor, Digest, HashingReader, Image, IndexView, Layer,
    LayerOrigin, ManifestView, MediaFamily, MediaKind, classify,
};

/// Facts about a compressed layer blob that take one full read to learn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerFacts {
    pub diff_id: Digest,
    pub uncompressed_size: u64,
}

const FACTS_BUCKET: CacheBucket = CacheBucket::LayerFacts;

/// How [`assemble_base_with`] learns each layer's diff_id and uncompressed size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerVerification {
    /// Read every layer blob not yet verified (once per blob, then cached).
    Now,
    /// The caller reads every layer anyway (`check`) and verifies it on that
    /// read with [`verify_read`]; until then a layer not yet verified carries
    /// the config's diff_id and an uncompressed size of 0. Its size against
    /// its descriptor is still checked here.
    ByCaller,
}

/// The facts of a blob verified before, if the cache has them.
pub fn cached_layer_facts(descriptor: &Descriptor, cache: &Cache) -> Option<LayerFacts> {
    cache.get_record::<LayerFacts>(FACTS_BUCKET, descriptor.digest.hex())
}

/// Judges a read of the layer blob at `blob` (the caller's own, see
/// [`LayerVerification::ByCaller`]) as [`layer_facts`] judges its read: the
/// blob's digest against its descriptor, then the diff_id against the config's
/// `expected` one. Verified facts are cached.
pub fn verify_read(
    blob: &Path,
    descriptor: &Descriptor,
    expected: &Digest,
    read: &crate::tar_walk::StreamDigests,
    cache: &Cache,
    source_ref: &str,
) -> Result<LayerFacts, SourceError> {
    // For a plain tar the two digests are one; either way the blob's is compared.
    if read.compressed != descriptor.digest {
        return Err(SourceError::DigestMismatch {
            what: format!("layer blob {} of {source_ref}", blob.display()),
            expected: descriptor.digest.clone(),
            actual: read.compressed.clone(),
        });
    }
    let facts = LayerFacts {
        diff_id: read.uncompressed.clone(),
        uncompressed_size: read.uncompressed_size,
    };
    // As in layer_facts: the facts are the blob's, whatever the config says.
    let _ = cache.put_record(FACTS_BUCKET, descriptor.digest.hex(), &facts);
    if &facts.diff_id != expected {
        return Err(SourceError::DiffIdMismatch {
            source_ref: source_ref.to_string(),
            layer: descriptor.digest.clone(),
            expected: expected.clone(),
            actual: facts.diff_id,
        });
    }
    Ok(facts)
}

/// Picks the child of an index for `arch` (linux). Errors list what the index has.
pub fn select_platform(
    index: &IndexView,
    arch: Architecture,
    source_ref: &str,
) -> Result<Descriptor, SourceError> {
    let found = index
        .manifests
        .iter()
        .filter(|d| matches!(classify(&d.media_type), MediaKind::Manifest(_)))
        .find(|d| d.platform.as_ref().is_some_and(|p| arch.matches(p)));
    match found {
        Some(d) => Ok(d.clone()),
        None => {
            let available: Vec<String> = index
                .manifests
                .iter()
                .filter_map(|d| d.platform.as_ref())
                .map(|p| match &p.variant {
                    Some(v) => format!("{}/{}/{}", p.os, p.architecture, v),
                    None => format!("{}/{}", p.os, p.architecture),
                })
                .collect();
            Err(SourceError::NoPlatform {
                source_ref: source_ref.to_string(),
                arch,
                available: if available.is_empty() {
                    "no platforms".into()
                } else {
                    available.join(", ")
                },
            })
        }
    }
}

/// Reads (once per blob, then from the cache) the diff_id and uncompressed size
/// of a layer blob, checking the blob's own digest and size on the way.
pub fn layer_facts(
    blob: &Path,
    descriptor: &Descriptor,
    cache: &Cache,
    source_ref: &str,
) -> Result<LayerFacts, SourceError> {
    let io_err = |source| SourceError::Io {
        path: blob.to_path_buf(),
        source,
    };
    blob_size_matches(blob, descriptor, source_ref)?;
    if let Some(facts) = cached_layer_facts(descriptor, cache) {
        return Ok(facts);
    }
    let compression = match classify(&descriptor.media_type) {
        MediaKind::Layer { compression, .. } => compression,
        _ => {
            return Err(SourceError::UnsupportedLayer {
                source_ref: source_ref.to_string(),
                layer: descriptor.digest.clone(),
                media_type: descriptor.media_type.clone(),
            });
        }
    };
    let mut outer = HashingReader::new(BufReader::with_capacity(
        1 << 20,
        crate::bounded_read::open_regular(blob).map_err(io_err)?,
    ));
    let (diff_id, uncompressed_size) = match compression {
        Compression::Gzip => {
            let mut inner = HashingReader::new(MultiGzDecoder::new(&mut outer));
            io::copy(&mut inner, &mut io::sink()).map_err(io_err)?;
            inner.finish()
        }
        // Uncompressed: the blob digest is the diff_id.
        Compression::None => {
            io::copy(&mut outer, &mut io::sink()).map_err(io_err)?;
            let (d, n) = outer.finish();
            outer = HashingReader::new(BufReader::new(
                crate::bounded_read::open_regular(blob).map_err(io_err)?,
            ));
            (d, n)
        }
        Compression::Zstd => {
            return Err(SourceError::UnsupportedLayer {
                source_ref: source_ref.to_string(),
                layer: descriptor.digest.clone(),
                media_type: descriptor.media_type.clone(),
            });
        }
    };
    if compression == Compression::Gzip {
        // Drain anything after the gzip members so the blob digest covers every byte.
        io::copy(&mut outer, &mut io::sink()).map_err(io_err)?;
        let (blob_digest, _) = outer.finish();
        if blob_digest != descriptor.digest {
            return Err(SourceError::DigestMismatch {
                what: format!("layer blob {} of {source_ref}", blob.display()),
                expected: descriptor.digest.clone(),
                actual: blob_digest,
            });
        }
    } else if diff_id != descriptor.digest {
        return Err(SourceError::DigestMismatch {
            what: format!("layer blob {} of {source_ref}", blob.display()),
            expected: descriptor.digest.clone(),
            actual: diff_id,
        });
    }
    let facts = LayerFacts {
        diff_id,
        uncompressed_size,
    };
    // A failed record write only costs a re-read next time.
    let _ = cache.put_record(FACTS_BUCKET, descriptor.digest.hex(), &facts);
    Ok(facts)
}

/// The blob's size on disk against its descriptor's (a stat, no read).
fn blob_size_matches(blob: &Path, descriptor: &Descriptor, source_ref: &str) -> Result<(), SourceError> {
    let actual_size = std::fs::metadata(blob)
        .map_err(|source| SourceError::Io {
            path: blob.to_path_buf(),
            source,
        })?
        .len();
    if actual_size != descriptor.size {
        return Err(SourceError::SizeMismatch {
            what: format!("layer {} of {source_ref}", descriptor.digest),
            expected: descriptor.size,
            actual: actual_size,
        });
    }
    Ok(())
}

/// Where a source keeps the blobs it read.
pub type BlobLocator<'a> = dyn Fn(&Descriptor) -> Result<PathBuf, SourceError> + 'a;

/// Builds a verified [`Image`] from a base's exact manifest bytes and config
/// bytes. Checks the config against its descriptor, and each layer's diff_id
/// against the config's `rootfs.diff_ids`.
/// The config's `rootfs.diff_ids`, which must be one per layer of the manifest.
pub fn config_diff_ids(
    config_bytes: &[u8],
    layers: usize,
    source_ref: &str,
) -> Result<Vec<Digest>, SourceError> {
    let invalid = |message: String| SourceError::Invalid {
        source_ref: source_ref.to_string(),
        message,
    };
    let config: serde_json::Value = serde_json::from_slice(config_bytes)
        .map_err(|e| invalid(format!("image config is not valid JSON: {e}")))?;
    let diff_ids: Vec<Digest> = match config.pointer("/rootfs/diff_ids") {
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|e| invalid(format!("image config rootfs.diff_ids is malformed: {e}")))?,
        None => Vec::new(),
    };
    if diff_ids.len() != layers {
        return Err(invalid(format!(
            "manifest lists {layers} layers but config rootfs.diff_ids has {}",
            diff_ids.len()
        )));
    }
    Ok(diff_ids)
}

pub fn assemble_base(
    manifest_bytes: Vec<u8>,
    manifest: &ManifestView,
    config_bytes: Vec<u8>,
    locate: &BlobLocator<'_>,
    source_ref: &str,
    mount_from: Option<String>,
    cache: &Cache,
) -> Result<Image, SourceError> {
    assemble_base_with(
        manifest_bytes,
        manifest,
        config_bytes,
        locate,
        source_ref,
        mount_from,
        cache,
        LayerVerification::Now,
    )
}

/// [`assemble_base`], verifying the layer blobs as `verification` says.
#[allow(clippy::too_many_arguments)]
pub fn assemble_base_with(
    manifest_bytes: Vec<u8>,
    manifest: &ManifestView,
    config_bytes: Vec<u8>,
    locate: &BlobLocator<'_>,
    source_ref: &str,
    mount_from: Option<String>,
    cache: &Cache,
    verification: LayerVerification,
) -> Result<Image, SourceError> {
    let family = manifest.family().unwrap_or(MediaFamily::Oci);
    let config_digest = Digest::of(&config_bytes);
    if config_digest != manifest.config.digest {
        return Err(SourceError::DigestMismatch {
            what: format!("the config of {source_ref}"),
            expected: manifest.config.digest.clone(),
            actual: config_digest,
        });
    }
    let diff_ids = config_diff_ids(&config_bytes, manifest.layers.len(), source_ref)?;
    let mut layers = Vec::with_capacity(manifest.layers.len());
    for (descriptor, expected) in manifest.layers.iter().zip(diff_ids) {
        let path = locate(descriptor)?;
        let facts = match verification {
            LayerVerification::Now => layer_facts(&path, descriptor, cache, source_ref)?,
            LayerVerification::ByCaller => match cached_layer_facts(descriptor, cache) {
                Some(facts) => facts,
                None => {
                    blob_size_matches(&path, descriptor, source_ref)?;
                    LayerFacts {
                        diff_id: expected.clone(),
                        uncompressed_size: 0,
                    }
                }
            },
        };
        if facts.diff_id != expected {
            return Err(SourceError::DiffIdMismatch {
                source_ref: source_ref.to_string(),
                layer: descriptor.digest.clone(),
                expected,
                actual: facts.diff_id,
            });
        }
        layers.push(Layer {
            descriptor: descriptor.clone(),
            diff_id: facts.diff_id,
            uncompressed_size: facts.uncompressed_size,
            location: BlobLocation::File(path),
            origin: LayerOrigin::Base {
                source: source_ref.to_string(),
                mount_from: mount_from.clone(),
            },
        });
    }
    Ok(Image::from_manifest(
        family,
        manifest_bytes,
        config_bytes,
        manifest.config.clone(),
        layers,
    ))
}
