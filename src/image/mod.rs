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

use std::collections::BTreeMap;
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
///
/// The fields are private and every value is made by [`Image::from_manifest`]
/// (exact bytes as read) or [`Image::new`] (a manifest written here), both of
/// which compute the manifest digest from the bytes they hold: a value whose
/// digest does not match its manifest cannot be made.
#[derive(Debug, Clone)]
pub struct Image {
    family: MediaFamily,
    /// The exact manifest bytes; `manifest_digest` is their sha256.
    manifest: Vec<u8>,
    manifest_digest: Digest,
    /// The exact config bytes, as `config_descriptor` names them.
    config: Vec<u8>,
    config_descriptor: Descriptor,
    layers: Vec<Layer>,
}

impl Image {
    /// An image whose manifest is `manifest`, byte for byte (as a source read
    /// it). `config_descriptor` is the manifest's own; the source has checked
    /// `config` against it and the layers against the config.
    pub fn from_manifest(
        family: MediaFamily,
        manifest: Vec<u8>,
        config: Vec<u8>,
        config_descriptor: Descriptor,
        layers: Vec<Layer>,
    ) -> Image {
        Image {
            family,
            manifest_digest: Digest::of(&manifest),
            manifest,
            config,
            config_descriptor,
            layers,
        }
    }

    /// A new image of `config` and `layers`: the config's descriptor and the
    /// manifest are written here (`annotations` only under OCI; Docker V2.2
    /// manifests have none).
    pub fn new(
        family: MediaFamily,
        config: Vec<u8>,
        layers: Vec<Layer>,
        annotations: Option<&BTreeMap<String, String>>,
    ) -> Image {
        let config_descriptor = Descriptor::new(family.config(), Digest::of(&config), config.len() as u64);
        Image::written(family, config, config_descriptor, layers, annotations)
    }

    fn written(
        family: MediaFamily,
        config: Vec<u8>,
        config_descriptor: Descriptor,
        layers: Vec<Layer>,
        annotations: Option<&BTreeMap<String, String>>,
    ) -> Image {
        let descriptors: Vec<Descriptor> = layers.iter().map(|l| l.descriptor.clone()).collect();
        let manifest = write_manifest(family, &config_descriptor, &descriptors, annotations);
        Image::from_manifest(family, manifest, config, config_descriptor, layers)
    }

    /// The same config bytes and layer blobs under `family`'s media types: a
    /// new manifest (without annotations) naming them, so a new digest. Only
    /// media type strings change; a layer type with no counterpart (not tar or
    /// gzip) is kept as it is. The same family gives the value unchanged.
    pub fn with_family(&self, family: MediaFamily) -> Image {
        if family == self.family {
            return self.clone();
        }
        let mut config_descriptor = self.config_descriptor.clone();
        config_descriptor.media_type = family.config().to_string();
        let mut layers = self.layers.clone();
        for layer in &mut layers {
            if let Some(mt) = convert_layer_media_type(&layer.descriptor.media_type, family) {
                layer.descriptor.media_type = mt.to_string();
            }
        }
        Image::written(family, self.config.clone(), config_descriptor, layers, None)
    }

    pub fn family(&self) -> MediaFamily {
        self.family
    }

    /// The exact manifest bytes.
    pub fn manifest(&self) -> &[u8] {
        &self.manifest
    }

    /// The sha256 of [`Image::manifest`].
    pub fn manifest_digest(&self) -> &Digest {
        &self.manifest_digest
    }

    /// The exact config bytes.
    pub fn config(&self) -> &[u8] {
        &self.config
    }

    pub fn config_descriptor(&self) -> &Descriptor {
        &self.config_descriptor
    }

    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// The config bytes and the layers, for a build that writes a new image on
    /// them (the manifest, which names them, is dropped).
    pub fn into_config_and_layers(self) -> (Vec<u8>, Vec<Layer>) {
        (self.config, self.layers)
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(family: MediaFamily) -> Layer {
        Layer {
            descriptor: Descriptor::new(family.layer_gzip(), Digest::of(b"blob"), 4),
            diff_id: Digest::of(b"tar"),
            uncompressed_size: 3,
            location: BlobLocation::File(PathBuf::from("/blob")),
            origin: LayerOrigin::Built {
                name: "code".into(),
                source: "src → /var/task".into(),
                cached: false,
                from_cache_registry: false,
            },
        }
    }

    #[test]
    fn every_constructor_names_the_manifest_by_the_digest_of_its_bytes() {
        let annotations = BTreeMap::from([("k".to_string(), "v".to_string())]);
        let new = Image::new(
            MediaFamily::Oci,
            b"{}".to_vec(),
            vec![layer(MediaFamily::Oci)],
            Some(&annotations),
        );
        assert_eq!(new.manifest_digest(), &Digest::of(new.manifest()));
        assert_eq!(new.config_descriptor().digest, Digest::of(b"{}"));
        assert!(String::from_utf8_lossy(new.manifest()).contains(r#""annotations":{"k":"v"}"#));
        let read = Image::from_manifest(
            MediaFamily::Oci,
            new.manifest().to_vec(),
            new.config().to_vec(),
            new.config_descriptor().clone(),
            new.layers().to_vec(),
        );
        assert_eq!(read.manifest_digest(), new.manifest_digest());
        assert_eq!(read.manifest_descriptor(), new.manifest_descriptor());
    }

    #[test]
    fn with_family_is_the_image_built_under_the_other_family() {
        let docker = Image::new(
            MediaFamily::Docker,
            b"{}".to_vec(),
            vec![layer(MediaFamily::Docker)],
            None,
        );
        let oci = docker.with_family(MediaFamily::Oci);
        let direct = Image::new(
            MediaFamily::Oci,
            b"{}".to_vec(),
            vec![layer(MediaFamily::Oci)],
            None,
        );
        assert_eq!(oci.family(), MediaFamily::Oci);
        assert_eq!(oci.manifest(), direct.manifest());
        assert_eq!(oci.manifest_digest(), &Digest::of(oci.manifest()));
        assert_ne!(oci.manifest_digest(), docker.manifest_digest());
        assert_eq!(oci.config(), docker.config(), "the config bytes are kept");
        let back = oci.with_family(MediaFamily::Docker);
        assert_eq!(back.manifest(), docker.manifest());
        let same = docker.with_family(MediaFamily::Docker);
        assert_eq!(same.manifest_digest(), docker.manifest_digest());
    }
}
