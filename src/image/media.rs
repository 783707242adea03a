//! Media types of the two manifest families Lambda accepts, and what each string means.

use serde::{Deserialize, Serialize};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const OCI_LAYER_NONDIST_GZIP: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_LAYER_FOREIGN_GZIP: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
/// Not a registered Docker type, but written by some tools for uncompressed layers
/// under a Docker manifest; Lambda rejects it at deploy time.
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// Which family of media types an image uses. One manifest never mixes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaFamily {
    Oci,
    Docker,
}

impl MediaFamily {
    pub fn manifest(self) -> &'static str {
        match self {
            MediaFamily::Oci => OCI_MANIFEST,
            MediaFamily::Docker => DOCKER_MANIFEST,
        }
    }
    pub fn config(self) -> &'static str {
        match self {
            MediaFamily::Oci => OCI_CONFIG,
            MediaFamily::Docker => DOCKER_CONFIG,
        }
    }
    pub fn layer_gzip(self) -> &'static str {
        match self {
            MediaFamily::Oci => OCI_LAYER_GZIP,
            MediaFamily::Docker => DOCKER_LAYER_GZIP,
        }
    }
    pub fn index(self) -> &'static str {
        match self {
            MediaFamily::Oci => OCI_INDEX,
            MediaFamily::Docker => DOCKER_MANIFEST_LIST,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            MediaFamily::Oci => "oci",
            MediaFamily::Docker => "docker",
        }
    }
}

/// What a media type string denotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Manifest(MediaFamily),
    Index(MediaFamily),
    Config(MediaFamily),
    Layer {
        family: MediaFamily,
        compression: Compression,
    },
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

pub fn classify(media_type: &str) -> MediaKind {
    use MediaFamily::*;
    match media_type {
        OCI_MANIFEST => MediaKind::Manifest(Oci),
        OCI_INDEX => MediaKind::Index(Oci),
        OCI_CONFIG => MediaKind::Config(Oci),
        OCI_LAYER_GZIP | OCI_LAYER_NONDIST_GZIP => MediaKind::Layer {
            family: Oci,
            compression: Compression::Gzip,
        },
        OCI_LAYER_TAR | "application/vnd.oci.image.layer.nondistributable.v1.tar" => MediaKind::Layer {
            family: Oci,
            compression: Compression::None,
        },
        OCI_LAYER_ZSTD | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => MediaKind::Layer {
            family: Oci,
            compression: Compression::Zstd,
        },
        DOCKER_MANIFEST => MediaKind::Manifest(Docker),
        DOCKER_MANIFEST_LIST => MediaKind::Index(Docker),
        DOCKER_CONFIG => MediaKind::Config(Docker),
        DOCKER_LAYER_GZIP | DOCKER_LAYER_FOREIGN_GZIP => MediaKind::Layer {
            family: Docker,
            compression: Compression::Gzip,
        },
        DOCKER_LAYER_TAR => MediaKind::Layer {
            family: Docker,
            compression: Compression::None,
        },
        "application/vnd.docker.image.rootfs.diff.tar.zstd" => MediaKind::Layer {
            family: Docker,
            compression: Compression::Zstd,
        },
        _ => MediaKind::Unknown,
    }
}

/// The media type a layer takes when an image moves to `family`, if it has one there.
pub fn convert_layer_media_type(media_type: &str, family: MediaFamily) -> Option<&'static str> {
    match classify(media_type) {
        MediaKind::Layer {
            compression: Compression::Gzip,
            ..
        } => Some(family.layer_gzip()),
        MediaKind::Layer {
            compression: Compression::None,
            ..
        } => Some(match family {
            MediaFamily::Oci => OCI_LAYER_TAR,
            MediaFamily::Docker => DOCKER_LAYER_TAR,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_round_trip_through_classify() {
        for f in [MediaFamily::Oci, MediaFamily::Docker] {
            assert_eq!(classify(f.manifest()), MediaKind::Manifest(f));
            assert_eq!(classify(f.index()), MediaKind::Index(f));
            assert_eq!(classify(f.config()), MediaKind::Config(f));
            assert_eq!(
                classify(f.layer_gzip()),
                MediaKind::Layer {
                    family: f,
                    compression: Compression::Gzip
                }
            );
        }
        assert_eq!(classify("text/plain"), MediaKind::Unknown);
    }
}
