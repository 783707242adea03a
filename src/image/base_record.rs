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
