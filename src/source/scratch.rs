//! `scratch`: an empty image (no layers) for the function's architecture.

use serde::Serialize;

use super::{ImageSource, LayerVerification, SourceError};
use crate::cache::Cache;
use crate::image::{Architecture, Digest, Image, MediaFamily};
use crate::report::Reporter;

/// An image with no layers and a minimal OCI config written by us. The same
/// architecture and `created` value always give the same bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScratchSource {
    /// An RFC 3339 time written as the config's `created`; none by default so
    /// the image does not depend on when it was built.
    pub created: Option<String>,
}

impl ScratchSource {
    pub fn new() -> Self {
        ScratchSource::default()
    }

    pub fn with_created(created: impl Into<String>) -> Self {
        ScratchSource {
            created: Some(created.into()),
        }
    }

    /// The exact config bytes for `arch`. Field order is the order written.
    pub fn config_bytes(&self, arch: Architecture) -> Vec<u8> {
        #[derive(Serialize)]
        struct Rootfs {
            #[serde(rename = "type")]
            kind: &'static str,
            diff_ids: [Digest; 0],
        }
        #[derive(Serialize)]
        struct Empty {}
        #[derive(Serialize)]
        struct Config<'a> {
            architecture: &'static str,
            os: &'static str,
            config: Empty,
            rootfs: Rootfs,
            history: [Empty; 0],
            #[serde(skip_serializing_if = "Option::is_none")]
            created: Option<&'a str>,
        }
        let config = Config {
            architecture: arch.oci_name(),
            os: "linux",
            config: Empty {},
            rootfs: Rootfs {
                kind: "layers",
                diff_ids: [],
            },
            history: [],
            created: self.created.as_deref(),
        };
        serde_json::to_vec(&config).expect("a scratch config always serialises")
    }
}

impl ImageSource for ScratchSource {
    fn describe(&self) -> String {
        "scratch".to_string()
    }

    fn resolve_with(
        &self,
        arch: Architecture,
        _cache: &Cache,
        _reporter: &dyn Reporter,
        _verification: LayerVerification,
    ) -> Result<Image, SourceError> {
        let family = MediaFamily::Oci;
        let config = self.config_bytes(arch);
        Ok(Image::new(family, config, Vec::new(), None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Silent;

    #[test]
    fn scratch_config_has_fixed_bytes() {
        let s = ScratchSource::new();
        assert_eq!(
            String::from_utf8(s.config_bytes(Architecture::Arm64)).unwrap(),
            r#"{"architecture":"arm64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[]},"history":[]}"#
        );
        let dated = ScratchSource::with_created("2024-01-01T00:00:00Z");
        assert!(
            String::from_utf8(dated.config_bytes(Architecture::X86_64))
                .unwrap()
                .ends_with(r#""history":[],"created":"2024-01-01T00:00:00Z"}"#)
        );
    }

    #[test]
    fn scratch_image_is_deterministic_and_empty() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let a = ScratchSource::new()
            .resolve(Architecture::X86_64, &cache, &Silent)
            .unwrap();
        let b = ScratchSource::new()
            .resolve(Architecture::X86_64, &cache, &Silent)
            .unwrap();
        assert_eq!(a.manifest(), b.manifest());
        assert_eq!(a.manifest_digest(), &Digest::of(a.manifest()));
        assert!(a.layers().is_empty());
        let c = ScratchSource::new()
            .resolve(Architecture::Arm64, &cache, &Silent)
            .unwrap();
        assert_ne!(a.manifest_digest(), c.manifest_digest());
    }
}
