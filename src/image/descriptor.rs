//! Content descriptors and platforms, serialised with a fixed key order.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Digest;

/// An OCI/Docker content descriptor. Field order here is the order written.
/// `annotations` is a `BTreeMap` so its keys are always sorted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    /// An artifact manifest's type (image-spec 1.1: index entries of
    /// artifacts carry it); kept when an index is read and written back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

impl Descriptor {
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Self {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            artifact_type: None,
            platform: None,
            annotations: None,
        }
    }
}

/// A platform as written in an index (`os`, `architecture`, optional `variant`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default, rename = "os.version", skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
}

/// A Lambda function architecture, as named in Lambda's API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Architecture {
    #[serde(rename = "x86_64")]
    X86_64,
    #[serde(rename = "arm64")]
    Arm64,
}

impl Architecture {
    /// The GOARCH-style name used in image configs and index platforms.
    pub fn oci_name(self) -> &'static str {
        match self {
            Architecture::X86_64 => "amd64",
            Architecture::Arm64 => "arm64",
        }
    }

    /// The name Lambda's API uses.
    pub fn lambda_name(self) -> &'static str {
        match self {
            Architecture::X86_64 => "x86_64",
            Architecture::Arm64 => "arm64",
        }
    }

    pub fn platform(self) -> Platform {
        Platform {
            architecture: self.oci_name().to_string(),
            os: "linux".to_string(),
            variant: match self {
                Architecture::X86_64 => None,
                Architecture::Arm64 => Some("v8".to_string()),
            },
            os_version: None,
        }
    }

    /// Whether an index entry's platform is this architecture on linux.
    /// arm64 entries may carry variant `v8` or none.
    pub fn matches(self, p: &Platform) -> bool {
        p.os == "linux"
            && p.architecture == self.oci_name()
            && match self {
                Architecture::X86_64 => p.variant.is_none(),
                Architecture::Arm64 => matches!(p.variant.as_deref(), None | Some("v8")),
            }
    }

    /// The ELF `e_machine` value of binaries for this architecture.
    pub fn elf_machine(self) -> u16 {
        match self {
            Architecture::X86_64 => 62,
            Architecture::Arm64 => 183,
        }
    }

    pub fn parse(name: &str) -> Option<Architecture> {
        match name {
            "x86_64" | "amd64" => Some(Architecture::X86_64),
            "arm64" | "aarch64" => Some(Architecture::Arm64),
            _ => None,
        }
    }
}

impl std::fmt::Display for Architecture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.lambda_name())
    }
}
