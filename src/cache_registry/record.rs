//! A cache record as an OCI artifact: an image manifest whose `artifactType`
//! says what it is, whose layers are the record's blobs (so the registry
//! keeps them, and a pull verifies them by digest like any layer) and whose
//! annotations carry the rest of the record. Its config is the OCI empty
//! descriptor (`{}`), so the whole record is one manifest GET.
//!
//! ```text
//! tag  <bucket>-<key>                      layers-v1-3fa4…, deps-v1-9c01…
//! annotations  org.lambda-img.cache.format  "1"
//!              org.lambda-img.cache.bucket  layers-v1
//!              org.lambda-img.cache.key     3fa4…
//!              org.lambda-img.cache.installer  pip 24.0   (dependency sets)
//!              org.lambda-img.cache.extra  [{"name":…,"sha256":…}]  (dependency sets)
//! each layer   org.lambda-img.cache.name, .diff-id, .uncompressed-size
//! ```
//!
//! A document record (the SBOM of an image, `sbom-documents-v1-<key>`) has
//! the same annotations but no installer, and one layer: the document's
//! blob with its own media type and no annotations. It is verified by its
//! digest alone (it is not a tar to inflate).
//!
//! `extra` was added without a new format version: a reader that does not
//! know it ignores it and gets what it got before, and a record without it
//! reads as one of an entry that keeps nothing beside its layers (for a
//! dependency set: no known wheel hashes, as in a local record made before
//! they were kept). A new version would have made every machine of a fleet
//! upgraded one by one refuse the others' records.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cache::{SharedLayer, SharedRecord};
use crate::image::{Descriptor, Digest, OCI_LAYER_GZIP, OCI_MANIFEST};

/// Bumped when a record's meaning changes; a record of another version is
/// not used (and said so), the layer is built instead.
pub const RECORD_FORMAT: &str = "1";
pub const ARTIFACT_TYPE: &str = "application/vnd.lambda-img.cache.v1";
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// The OCI empty blob, the config of every record.
pub const EMPTY_BLOB: &[u8] = b"{}";

const FORMAT: &str = "org.lambda-img.cache.format";
const BUCKET: &str = "org.lambda-img.cache.bucket";
const KEY: &str = "org.lambda-img.cache.key";
const INSTALLER: &str = "org.lambda-img.cache.installer";
const EXTRA: &str = "org.lambda-img.cache.extra";
const NAME: &str = "org.lambda-img.cache.name";
const DIFF_ID: &str = "org.lambda-img.cache.diff-id";
const UNCOMPRESSED: &str = "org.lambda-img.cache.uncompressed-size";

/// The tag a record is stored under; `None` for a key that cannot be one
/// (keys are hex digests, so this only guards against misuse).
pub fn tag(bucket: &str, key: &str) -> Option<String> {
    let tag = format!("{bucket}-{key}");
    let valid = tag.len() <= 128
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        && tag.starts_with(|c: char| c.is_ascii_alphanumeric());
    valid.then_some(tag)
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArtifactManifest {
    schema_version: u32,
    media_type: String,
    #[serde(default)]
    artifact_type: Option<String>,
    config: Descriptor,
    layers: Vec<Descriptor>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// The manifest bytes of `record` stored as `bucket`/`key`.
pub fn encode(bucket: &str, key: &str, record: &SharedRecord) -> Vec<u8> {
    let mut annotations = header(bucket, key);
    if let Some(installer) = &record.installer {
        annotations.insert(INSTALLER.to_string(), installer.clone());
    }
    if let Some(extra) = &record.extra {
        annotations.insert(EXTRA.to_string(), extra.clone());
    }
    let layers = record
        .layers
        .iter()
        .map(|l| {
            let mut d = Descriptor::new(OCI_LAYER_GZIP, l.digest.clone(), l.size);
            d.annotations = Some(BTreeMap::from([
                (NAME.to_string(), l.name.clone()),
                (DIFF_ID.to_string(), l.diff_id.to_string()),
                (UNCOMPRESSED.to_string(), l.uncompressed_size.to_string()),
            ]));
            d
        })
        .collect();
    artifact(layers, annotations)
}

/// The manifest bytes of a document record: `document` stored as `bucket`/`key`.
pub fn encode_document(bucket: &str, key: &str, document: &Descriptor) -> Vec<u8> {
    let layer = Descriptor::new(&document.media_type, document.digest.clone(), document.size);
    artifact(vec![layer], header(bucket, key))
}

fn header(bucket: &str, key: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (FORMAT.to_string(), RECORD_FORMAT.to_string()),
        (BUCKET.to_string(), bucket.to_string()),
        (KEY.to_string(), key.to_string()),
    ])
}

fn artifact(layers: Vec<Descriptor>, annotations: BTreeMap<String, String>) -> Vec<u8> {
    let manifest = ArtifactManifest {
        schema_version: 2,
        media_type: OCI_MANIFEST.to_string(),
        artifact_type: Some(ARTIFACT_TYPE.to_string()),
        config: empty_descriptor(),
        layers,
        annotations,
    };
    serde_json::to_vec(&manifest).expect("a record serialises")
}

pub fn empty_descriptor() -> Descriptor {
    Descriptor::new(EMPTY_MEDIA_TYPE, Digest::of(EMPTY_BLOB), EMPTY_BLOB.len() as u64)
}

/// Why a stored record was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordFault {
    #[error("it is a record of format version {found}, this lambda-img reads version {RECORD_FORMAT}")]
    OtherFormat { found: String },
    #[error("it is not a lambda-img cache record: {0}")]
    Malformed(String),
}

/// The record in manifest `bytes`, checked to be the one stored as `bucket`/`key`.
pub fn decode(bytes: &[u8], bucket: &str, key: &str) -> Result<SharedRecord, RecordFault> {
    let bad = |why: &str| RecordFault::Malformed(why.to_string());
    let m = checked(bytes, bucket, key)?;
    let layers = m
        .layers
        .iter()
        .map(|d| {
            let a = d.annotations.clone().unwrap_or_default();
            let get = |k: &str| {
                a.get(k)
                    .ok_or_else(|| bad(&format!("layer {} has no {k}", d.digest)))
            };
            Ok(SharedLayer {
                name: get(NAME)?.clone(),
                digest: d.digest.clone(),
                size: d.size,
                diff_id: get(DIFF_ID)?
                    .parse()
                    .map_err(|_| bad(&format!("layer {} has an invalid diff-id", d.digest)))?,
                uncompressed_size: get(UNCOMPRESSED)?
                    .parse()
                    .map_err(|_| bad(&format!("layer {} has an invalid uncompressed size", d.digest)))?,
            })
        })
        .collect::<Result<Vec<_>, RecordFault>>()?;
    Ok(SharedRecord {
        installer: m.annotations.get(INSTALLER).cloned(),
        layers,
        extra: m.annotations.get(EXTRA).cloned(),
    })
}

/// The document a document record in manifest `bytes` names, checked to be
/// the one stored as `bucket`/`key`.
pub fn decode_document(bytes: &[u8], bucket: &str, key: &str) -> Result<Descriptor, RecordFault> {
    let m = checked(bytes, bucket, key)?;
    match <[Descriptor; 1]>::try_from(m.layers) {
        Ok([document]) => Ok(document),
        Err(_) => Err(RecordFault::Malformed(
            "a document record names exactly one blob".into(),
        )),
    }
}

/// The record manifest in `bytes` when it is a lambda-img record of this
/// format stored as `bucket`/`key` and names a blob.
fn checked(bytes: &[u8], bucket: &str, key: &str) -> Result<ArtifactManifest, RecordFault> {
    let bad = |why: &str| RecordFault::Malformed(why.to_string());
    let m: ArtifactManifest = serde_json::from_slice(bytes)
        .map_err(|e| RecordFault::Malformed(format!("unreadable manifest: {e}")))?;
    if m.artifact_type.as_deref() != Some(ARTIFACT_TYPE) {
        return Err(bad("its artifactType is not application/vnd.lambda-img.cache.v1"));
    }
    match m.annotations.get(FORMAT) {
        Some(f) if f == RECORD_FORMAT => {}
        Some(f) => return Err(RecordFault::OtherFormat { found: f.clone() }),
        None => return Err(bad("it has no format annotation")),
    }
    if m.annotations.get(BUCKET).map(String::as_str) != Some(bucket)
        || m.annotations.get(KEY).map(String::as_str) != Some(key)
    {
        return Err(bad("it is stored under another record's tag"));
    }
    if m.layers.is_empty() {
        return Err(bad("it names no layer"));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> SharedRecord {
        SharedRecord {
            installer: Some("pip 24.0".into()),
            layers: vec![
                SharedLayer {
                    name: "dependencies-1".into(),
                    digest: Digest::of(b"one"),
                    size: 3,
                    diff_id: Digest::of(b"one tar"),
                    uncompressed_size: 1024,
                },
                SharedLayer {
                    name: "dependencies-2".into(),
                    digest: Digest::of(b"two"),
                    size: 3,
                    diff_id: Digest::of(b"two tar"),
                    uncompressed_size: 2048,
                },
            ],
            extra: Some(r#"[{"name":"markupsafe","version":"3.0.2","sha256":"ab"}]"#.into()),
        }
    }

    #[test]
    fn a_record_round_trips_through_its_manifest() {
        let bytes = encode("deps-v1", "ab12", &record());
        assert_eq!(decode(&bytes, "deps-v1", "ab12").unwrap(), record());
        let m: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(m["artifactType"], ARTIFACT_TYPE);
        assert_eq!(m["config"]["digest"], Digest::of(b"{}").to_string());
        assert_eq!(m["layers"][1]["digest"], Digest::of(b"two").to_string());
        // The same record, the same bytes: a second push is a no-op.
        assert_eq!(bytes, encode("deps-v1", "ab12", &record()));
        // A record written before `extra` was shared reads as one without it.
        let older = SharedRecord {
            extra: None,
            ..record()
        };
        let text = String::from_utf8(bytes).unwrap();
        let start = text.find(",\"org.lambda-img.cache.extra\"").unwrap();
        let end = start + text[start..].find("}]\"").unwrap() + 3;
        let without = format!("{}{}", &text[..start], &text[end..]);
        assert_eq!(decode(without.as_bytes(), "deps-v1", "ab12").unwrap(), older);
    }

    #[test]
    fn a_document_record_names_one_blob_of_its_own_media_type() {
        let doc = Descriptor::new("application/spdx+json", Digest::of(b"{}\n"), 3);
        let bytes = encode_document("sbom-documents-v1", "ab12", &doc);
        assert_eq!(decode_document(&bytes, "sbom-documents-v1", "ab12").unwrap(), doc);
        assert!(matches!(
            decode_document(&bytes, "sbom-documents-v1", "cd34"),
            Err(RecordFault::Malformed(_))
        ));
        let two = encode("sbom-documents-v1", "ab12", &record());
        assert!(matches!(
            decode_document(&two, "sbom-documents-v1", "ab12"),
            Err(RecordFault::Malformed(_))
        ));
    }

    #[test]
    fn records_of_another_format_key_or_shape_are_refused() {
        let bytes = encode("layers-v1", "ab12", &record());
        assert!(matches!(
            decode(&bytes, "layers-v1", "cd34"),
            Err(RecordFault::Malformed(_))
        ));
        assert!(matches!(
            decode(&bytes, "deps-v1", "ab12"),
            Err(RecordFault::Malformed(_))
        ));
        let text = String::from_utf8(bytes.clone()).unwrap();
        let v2 = text.replace(
            "\"org.lambda-img.cache.format\":\"1\"",
            "\"org.lambda-img.cache.format\":\"2\"",
        );
        assert_eq!(
            decode(v2.as_bytes(), "layers-v1", "ab12"),
            Err(RecordFault::OtherFormat { found: "2".into() })
        );
        let no_diff_id = text.replace("org.lambda-img.cache.diff-id", "x");
        assert!(matches!(
            decode(no_diff_id.as_bytes(), "layers-v1", "ab12"),
            Err(RecordFault::Malformed(_))
        ));
        let bad_diff_id = text.replace(&Digest::of(b"one tar").to_string(), "sha256:zz");
        assert!(matches!(
            decode(bad_diff_id.as_bytes(), "layers-v1", "ab12"),
            Err(RecordFault::Malformed(_))
        ));
        let image = text.replace(ARTIFACT_TYPE, "application/vnd.example");
        assert!(matches!(
            decode(image.as_bytes(), "layers-v1", "ab12"),
            Err(RecordFault::Malformed(_))
        ));
        assert!(matches!(
            decode(b"{\"schemaVersion\":", "layers-v1", "ab12"),
            Err(RecordFault::Malformed(_))
        ));
    }

    #[test]
    fn tags_are_valid_registry_tags() {
        let key = "0123456789abcdef".repeat(4);
        assert_eq!(tag("layers-v1", &key).unwrap(), format!("layers-v1-{key}"));
        assert!(tag("layers-v1", "a/b").is_none());
        assert!(tag("layers-v1", &"a".repeat(130)).is_none());
    }
}
