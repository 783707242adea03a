//! Image values: digests, descriptors, media types, manifests and configs.
//!
//! An [`Image`] is a read-only value (go-containerregistry style): sources
//! produce one, the build returns a new one, sinks write one. Manifest and
//! config are held as the exact bytes whose digests they carry.

pub mod base_record;
pub mod config;
mod descriptor;
mod digest;
mod document;
mod media;

use std::path::PathBuf;

pub use descriptor::{Architecture, Descriptor, Platform};
pub use digest::{Digest, DigestParseError, HashingReader, HashingWriter};
pub use document::{
    Document, DocumentError, IndexView, ManifestView, parse_document, write_index, write_manifest,
};
pub use media::*;

/// Where the exact bytes of a blob can be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobLocation {
    /// A file holding exactly the blob's bytes (a cache entry, an OCI layout blob).
    File(PathBuf),
}

/// Where a layer came from, for reports and for cross-repository mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerOrigin {
    /// Reused byte for byte from the base image.
    Base {
        /// The base reference as the user wrote it.
        source: String,
        /// `registry/repository` where the blob is known to exist, when the base
        /// came from a registry: a push to the same registry may mount it.
        mount_from: Option<String>,
    },
    /// Written by this build.
    Built {
        /// The layer's name in the manifest (`code`, a `[[layer]]` name, ...).
        name: String,
        /// What it was built from, for the report.
        source: String,
        /// True when the compressed blob came from the layer cache.
        cached: bool,
        /// True when it came from the cache registry in this run (then
        /// `cached` is true as well: nothing was compressed here).
        from_cache_registry: bool,
    },
}

/// One layer of an image, with the facts every sink and rule needs.
#[derive(Debug, Clone)]
pub struct Layer {
    /// The compressed blob as the manifest lists it.
    pub descriptor: Descriptor,
    /// The digest of the uncompressed tar (the config's rootfs.diff_ids entry).
    pub diff_id: Digest,
    /// The size of the uncompressed tar, counted for Lambda's 10 GiB limit.
    pub uncompressed_size: u64,
    pub location: BlobLocation,
    pub origin: LayerOrigin,
}

/// A single-platform image: manifest and config as exact bytes, plus its layers.
#[derive(Debug, Clone)]
pub struct Image {
    pub family: MediaFamily,
    /// The exact manifest bytes; `manifest_digest` is their sha256.
    pub manifest: Vec<u8>,
    pub manifest_digest: Digest,
    /// The exact config bytes; `config_descriptor.digest` is their sha256.
    pub config: Vec<u8>,
    pub config_descriptor: Descriptor,
    pub layers: Vec<Layer>,
}

impl Image {
    /// The manifest's own descriptor (for an index or a layout's index.json).
    pub fn manifest_descriptor(&self) -> Descriptor {
        Descriptor::new(
            self.family.manifest(),
            self.manifest_digest.clone(),
            self.manifest.len() as u64,
        )
    }

    /// Total size of the uncompressed layer tars.
    pub fn uncompressed_size(&self) -> u64 {
        self.layers.iter().map(|l| l.uncompressed_size).sum()
    }

    /// The config parsed as JSON (keeps unknown fields and key order).
    pub fn config_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_slice(&self.config)
    }
}
