//! The build report as one JSON value: what `build --json` prints and what
//! `build --metadata-file PATH` writes (as jib's `jib-image.json` and buildx's
//! `--metadata-file` do), so a deploy step reads the digest from a file
//! rather than from a log. The one place the report is assembled: other
//! commands (deploy) reuse [`build_report`].
//!
//! The value is [`BuildReport`] (field order kept) plus `base`, `platform`
//! and `pushed` (`REPO@sha256:…` per registry output), and a `digest` on
//! every output.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::json::BuildReport;
use crate::image::{Digest, Image};
use crate::repair::RepairedLayer;
use crate::rules::Finding;
use crate::sink::SinkReport;

/// What a build report is made of: a build's outcome, field by field.
pub struct BuildFacts<'a> {
    pub image: &'a Image,
    /// The base as lambda-img.toml names it (canonical, even through a mirror).
    pub base: &'a str,
    pub outputs: &'a [SinkReport],
    /// The manifest digest each output holds, in `outputs` order.
    pub output_digests: &'a [Digest],
    pub repaired: &'a [RepairedLayer],
    /// Base layers pulled in this run: not `cached`.
    pub fetched_base_layers: &'a [Digest],
    pub findings: &'a [Finding],
    /// `[system]`: the packages its layer installed, from the manager's database.
    pub system_packages: &'a [crate::system::InstalledPackage],
}

/// The report of a build.
pub fn build_report(facts: &BuildFacts) -> Value {
    let BuildFacts {
        image,
        base,
        outputs,
        output_digests,
        repaired,
        fetched_base_layers,
        findings,
        system_packages,
    } = *facts;
    let mut report = BuildReport::new(image, outputs, output_digests, findings);
    report.repaired_base_layers = repaired;
    for layer in &mut report.layers {
        if fetched_base_layers.contains(layer.digest) {
            layer.cached = false;
        }
    }
    let mut value = serde_json::to_value(&report).expect("the report serialises");
    if let Some(list) = value.get_mut("outputs").and_then(Value::as_array_mut) {
        for (output, sink) in list.iter_mut().filter_map(Value::as_object_mut).zip(outputs) {
            output
                .entry("digest")
                .or_insert_with(|| output_digest(image, sink));
        }
    }
    let pushed: Vec<String> = crate::sink::pushed_references(outputs)
        .into_iter()
        .map(by_digest)
        .collect();
    let object = value.as_object_mut().expect("the report is an object");
    object.insert("base".into(), base_value(base));
    object.insert("platform".into(), platform_value(image));
    object.insert("pushed".into(), json!(pushed));
    if !system_packages.is_empty() {
        object.insert("system_packages".into(), json!(system_packages));
    }
    value
}

/// `REPO@sha256:…` for `REPO:TAG@sha256:…`: what Lambda deploys, and what
/// no later push to the tag can change.
fn by_digest(reference: &str) -> String {
    let Some((name, digest)) = reference.rsplit_once('@') else {
        return reference.to_string();
    };
    let path_start = name.rfind('/').map_or(0, |i| i + 1);
    let repo = match name[path_start..].rfind(':') {
        Some(colon) => &name[..path_start + colon],
        None => name,
    };
    format!("{repo}@{digest}")
}

/// The manifest digest an output holds: the one its reference names (an OCI
/// layout of a Docker-typed image holds a converted OCI manifest), `null` for
/// a docker-archive (which stores no manifest), else the image's.
fn output_digest(image: &Image, sink: &SinkReport) -> Value {
    if let Some((_, digest)) = sink.reference.as_deref().and_then(|r| r.rsplit_once('@'))
        && digest.starts_with("sha256:")
    {
        return Value::String(digest.to_string());
    }
    if let crate::reference::OutputTarget::DockerArchive { .. } = sink.output.target() {
        return Value::Null;
    }
    Value::String(image.manifest_digest().to_string())
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
    let mut text = serde_json::to_vec_pretty(report).expect("a JSON value serialises");
    text.push(b'\n');
    crate::atomic_file::write(path, &text, crate::atomic_file::Mode::Fixed(0o644)).map_err(|source| {
        MetadataWriteError {
            path: path.to_path_buf(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushed_references_name_the_digest_without_the_tag() {
        assert_eq!(
            by_digest("127.0.0.1:5000/app:v1@sha256:ab"),
            "127.0.0.1:5000/app@sha256:ab"
        );
        assert_eq!(
            by_digest("127.0.0.1:5000/app@sha256:ab"),
            "127.0.0.1:5000/app@sha256:ab"
        );
        assert_eq!(by_digest("reg/a/b:c"), "reg/a/b:c");
    }

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
