//! Manifest and index documents: parsed for reading, written by us with a fixed key order.
//!
//! A manifest read from a source is kept as its exact bytes next to the parsed
//! view; its digest is always computed over those bytes, never over a re-serialisation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Descriptor, MediaFamily, MediaKind, classify};

/// The parsed view of an image manifest (OCI or Docker V2.2).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestView {
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default)]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// The parsed view of an OCI index or a Docker manifest list.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexView {
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

/// What a fetched top-level document turned out to be.
#[derive(Debug, Clone)]
pub enum Document {
    Manifest(Box<ManifestView>),
    Index(IndexView),
}

#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("{what} is not valid JSON: {source}")]
    Json { what: String, source: serde_json::Error },
    #[error("{what} has media type {media_type:?}, which is neither an image manifest nor an index")]
    UnknownMediaType { what: String, media_type: String },
    #[error("{what} has schemaVersion {version}; only version 2 manifests are supported")]
    SchemaVersion { what: String, version: u32 },
}

/// Parses a manifest or index. `declared` is the media type the transport
/// announced (Content-Type, index descriptor), used when the document has none.
pub fn parse_document(bytes: &[u8], declared: Option<&str>, what: &str) -> Result<Document, DocumentError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        #[serde(default)]
        media_type: Option<String>,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
        #[serde(default)]
        schema_version: Option<u32>,
    }
    let json = |source| DocumentError::Json {
        what: what.to_string(),
        source,
    };
    let probe: Probe = serde_json::from_slice(bytes).map_err(json)?;
    if let Some(v) = probe.schema_version
        && v != 2
    {
        return Err(DocumentError::SchemaVersion {
            what: what.to_string(),
            version: v,
        });
    }
    let media_type = probe.media_type.clone().or_else(|| declared.map(str::to_string));
    let is_index = match media_type.as_deref().map(classify) {
        Some(MediaKind::Index(_)) => true,
        Some(MediaKind::Manifest(_)) => false,
        // An OCI document may omit mediaType: the shape tells.
        _ if probe.manifests.is_some() => true,
        None => false,
        Some(_) => {
            return Err(DocumentError::UnknownMediaType {
                what: what.to_string(),
                media_type: media_type.unwrap_or_default(),
            });
        }
    };
    if is_index {
        Ok(Document::Index(serde_json::from_slice(bytes).map_err(json)?))
    } else {
        Ok(Document::Manifest(Box::new(
            serde_json::from_slice(bytes).map_err(json)?,
        )))
    }
}

impl ManifestView {
    /// The family this manifest belongs to: from its media type, else from its config's.
    pub fn family(&self) -> Option<MediaFamily> {
        let from = |mt: &str| match classify(mt) {
            MediaKind::Manifest(f) | MediaKind::Config(f) => Some(f),
            _ => None,
        };
        self.media_type
            .as_deref()
            .and_then(from)
            .or_else(|| from(&self.config.media_type))
    }
}

/// Writes the bytes of a single-platform image manifest with a fixed key order:
/// schemaVersion, mediaType, config, layers, annotations. No whitespace, so the
/// output is the same on every machine.
pub fn write_manifest(
    family: MediaFamily,
    config: &Descriptor,
    layers: &[Descriptor],
    annotations: Option<&BTreeMap<String, String>>,
) -> Vec<u8> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Out<'a> {
        schema_version: u32,
        media_type: &'a str,
        config: &'a Descriptor,
        layers: &'a [Descriptor],
        #[serde(skip_serializing_if = "Option::is_none")]
        annotations: Option<&'a BTreeMap<String, String>>,
    }
    // Docker V2.2 manifests have no annotations field.
    let annotations = match family {
        MediaFamily::Oci => annotations.filter(|a| !a.is_empty()),
        MediaFamily::Docker => None,
    };
    let out = Out {
        schema_version: 2,
        media_type: family.manifest(),
        config,
        layers,
        annotations,
    };
    serde_json::to_vec(&out).expect("a manifest always serialises")
}

/// Writes the bytes of an OCI index (used for `index.json` of an OCI layout).
pub fn write_index(manifests: &[Descriptor]) -> Vec<u8> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Out<'a> {
        schema_version: u32,
        media_type: &'a str,
        manifests: &'a [Descriptor],
    }
    let out = Out {
        schema_version: 2,
        media_type: super::OCI_INDEX,
        manifests,
    };
    serde_json::to_vec(&out).expect("an index always serialises")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Digest;

    #[test]
    fn written_manifest_parses_back_and_has_fixed_key_order() {
        let cfg = Descriptor::new(MediaFamily::Oci.config(), Digest::of(b"c"), 1);
        let l = Descriptor::new(MediaFamily::Oci.layer_gzip(), Digest::of(b"l"), 2);
        let bytes = write_manifest(MediaFamily::Oci, &cfg, &[l], None);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with(r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType""#));
        match parse_document(&bytes, None, "test").unwrap() {
            Document::Manifest(m) => {
                assert_eq!(m.layers.len(), 1);
                assert_eq!(m.family(), Some(MediaFamily::Oci));
            }
            Document::Index(_) => panic!("not an index"),
        }
    }

    #[test]
    fn index_without_media_type_is_recognised_by_shape() {
        let doc = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert!(matches!(
            parse_document(doc, None, "t").unwrap(),
            Document::Index(_)
        ));
    }
}
