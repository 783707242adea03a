//! Which base an image was built on, recorded in the image itself with the
//! OCI keys `org.opencontainers.image.base.name` and `.base.digest`: as
//! manifest annotations for OCI images, and as config labels for Docker V2.2
//! images, whose manifests have no annotations. `inspect` shows the record and
//! `check` compares its digest with what the tag names now (LI091).
//!
//! Only registry bases are recorded: `scratch` has no base, and the path of a
//! local OCI layout or archive would make the digest depend on the machine.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Digest, Image, ManifestView};
use crate::registry::Reference;

pub const BASE_NAME: &str = "org.opencontainers.image.base.name";
pub const BASE_DIGEST: &str = "org.opencontainers.image.base.digest";

/// The base an image records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BaseRecord {
    /// `registry/repository[:tag]`, without the digest.
    pub name: String,
    /// The digest the base was pinned at (what its tag named then); `None`
    /// for a base built unpinned, whose tag's digest was never written down.
    pub digest: Option<Digest>,
}

impl BaseRecord {
    /// The record for a base written as `reference` in lambda-img.toml, or
    /// `None` when it is not a registry reference (scratch, `oci:`, `docker-archive:`).
    pub fn for_base(reference: &str) -> Option<BaseRecord> {
        if reference == "scratch" || reference.starts_with("oci:") || reference.starts_with("docker-archive:")
        {
            return None;
        }
        let name = reference
            .strip_prefix("registry:")
            .or_else(|| reference.strip_prefix("docker://"))
            .unwrap_or(reference);
        let parsed = Reference::parse(name).ok()?;
        let name = match &parsed.tag {
            Some(tag) => format!("{}:{tag}", parsed.name()),
            None => parsed.name(),
        };
        Some(BaseRecord {
            name,
            digest: parsed.digest,
        })
    }

    /// The keys and values to write.
    pub fn entries(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::from([(BASE_NAME.to_string(), self.name.clone())]);
        if let Some(d) = &self.digest {
            out.insert(BASE_DIGEST.to_string(), d.to_string());
        }
        out
    }

    /// Reads the record from the manifest's annotations, else the config's
    /// labels: a Docker image written to an OCI layout gets an OCI manifest
    /// but keeps its config, and so its labels.
    pub fn read(image: &Image) -> Option<BaseRecord> {
        let annotations = serde_json::from_slice::<ManifestView>(&image.manifest)
            .ok()
            .and_then(|m| m.annotations)
            .filter(|a| a.contains_key(BASE_NAME));
        let entries = match annotations {
            Some(a) => a,
            None => {
                let config: serde_json::Value = serde_json::from_slice(&image.config).ok()?;
                let labels = config.get("config")?.get("Labels")?.as_object()?;
                labels
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            }
        };
        let name = entries.get(BASE_NAME)?.clone();
        let digest = entries.get(BASE_DIGEST).and_then(|d| d.parse().ok());
        Some(BaseRecord { name, digest })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_bases_are_recorded_and_local_ones_are_not() {
        let d = Digest::of(b"base");
        let r = BaseRecord::for_base(&format!("registry:python:3.12@{d}")).unwrap();
        assert_eq!(r.name, "docker.io/library/python:3.12");
        assert_eq!(r.digest, Some(d.clone()));
        assert_eq!(r.entries()[BASE_DIGEST], d.to_string());
        let unpinned = BaseRecord::for_base("127.0.0.1:5000/lambda/base:1").unwrap();
        assert_eq!(unpinned.name, "127.0.0.1:5000/lambda/base:1");
        assert_eq!(unpinned.entries().len(), 1, "no digest to record");
        for local in ["scratch", "oci:out:1", "docker-archive:x.tar"] {
            assert_eq!(BaseRecord::for_base(local), None, "{local}");
        }
    }
}
