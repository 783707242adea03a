//! The build report as one JSON value: what `build --json` prints and what
//! `build --metadata-file PATH` writes (as jib's `jib-image.json` and buildx's
//! `--metadata-file` do), so a deploy step reads the digest from a file
//! rather than from a log. The one place the report is assembled: other
//! commands (deploy) reuse [`build_report`].
//!
//! The value is [`BuildReport`] (field order kept) plus `base`, `platform`
//! and `pushed`, and a `digest` on every output.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::json::BuildReport;
use crate::image::Image;
use crate::rules::Finding;
use crate::sink::SinkReport;

/// The report of a build of `image` from `base` (as lambda-img.toml names it)
/// written to `outputs`.
pub fn build_report(image: &Image, base: &str, outputs: &[SinkReport], findings: &[Finding]) -> Value {
    let report = BuildReport::new(image, outputs, findings);
    let mut value = serde_json::to_value(&report).expect("the report serialises");
    let digest = image.manifest_digest.to_string();
    if let Some(list) = value.get_mut("outputs").and_then(Value::as_array_mut) {
        for output in list.iter_mut().filter_map(Value::as_object_mut) {
            output
                .entry("digest")
                .or_insert_with(|| Value::String(digest.clone()));
        }
    }
    let pushed: Vec<&str> = outputs
        .iter()
        .filter(|o| o.output.starts_with("registry:"))
        .filter_map(|o| o.reference.as_deref())
        .collect();
    let object = value.as_object_mut().expect("the report is an object");
    object.insert("base".into(), base_value(base));
    object.insert("platform".into(), platform_value(image));
    object.insert("pushed".into(), json!(pushed));
    value
}

/// `{ "name": ..., "digest": ... }`: the base's name without its digest, and
/// the digest it is pinned to (`null` when unpinned, or scratch).
fn base_value(base: &str) -> Value {
    match base.rsplit_once('@') {
        Some((name, digest)) if digest.starts_with("sha256:") => json!({ "name": name, "digest": digest }),
        _ => json!({ "name": base, "digest": Value::Null }),
    }
}

/// `{ "os": ..., "architecture": ... [, "variant": ...] }` from the config.
fn platform_value(image: &Image) -> Value {
    let config = image.config_json().unwrap_or(Value::Null);
    let mut platform = Map::new();
    for key in ["os", "architecture", "variant"] {
        if let Some(v) = config.get(key).filter(|v| v.is_string()) {
            platform.insert(key.into(), v.clone());
        }
    }
    Value::Object(platform)
}

#[derive(Debug, thiserror::Error)]
#[error("cannot write the metadata file {path}: {source}")]
pub struct MetadataWriteError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Writes `report` to `path` atomically (a temporary file beside it, renamed
/// into place): a reader sees the previous file or the whole new one.
pub fn write_metadata_file(path: &Path, report: &Value) -> Result<(), MetadataWriteError> {
    use std::io::Write;
    let err = |source| MetadataWriteError {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".lambda-img-metadata.")
        .tempfile_in(dir)
        .map_err(err)?;
    let mut text = serde_json::to_vec_pretty(report).map_err(|e| err(e.into()))?;
    text.push(b'\n');
    tmp.write_all(&text).map_err(err)?;
    tmp.as_file()
        .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_name_and_digest_are_split() {
        let d = crate::image::Digest::of(b"x");
        assert_eq!(
            base_value(&format!("public.ecr.aws/lambda/python:3.12@{d}")),
            json!({ "name": "public.ecr.aws/lambda/python:3.12", "digest": d.to_string() })
        );
        assert_eq!(
            base_value("scratch"),
            json!({ "name": "scratch", "digest": null })
        );
    }

    #[test]
    fn the_file_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.json");
        std::fs::write(&path, "old").unwrap();
        write_metadata_file(&path, &json!({ "digest": "sha256:1" })).unwrap();
        let back: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(back["digest"], "sha256:1");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
        let missing = dir.path().join("no/such/dir/meta.json");
        let e = write_metadata_file(&missing, &json!({})).unwrap_err();
        assert!(e.to_string().contains("no/such/dir/meta.json"), "{e}");
    }
}
