//! Hand-made (hostile) inputs: OCI layouts and docker-archives written byte
//! by byte here, so a test can shape them the way an attacker would.

use std::io::Write;
use std::path::Path;

use serde_json::{Value, json};

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

pub fn sha256_hex(bytes: &[u8]) -> String {
    lambda_img::image::Digest::of(bytes).hex().to_string()
}

/// Writes `bytes` as a blob of the layout at `dir`; returns `sha256:<hex>`.
pub fn put_blob(dir: &Path, bytes: &[u8]) -> String {
    let hex = sha256_hex(bytes);
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::write(blobs.join(&hex), bytes).unwrap();
    format!("sha256:{hex}")
}

pub fn descriptor(media_type: &str, bytes: &[u8], digest: &str) -> Value {
    json!({"mediaType": media_type, "digest": digest, "size": bytes.len()})
}

/// An uncompressed tar holding `files` (entry name, contents); names are
/// written raw, so `../x` or `/x` stay as given; a name ending in `/` is a directory.
pub fn raw_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in files {
        let mut h = tar::Header::new_ustar();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(315_532_800);
        h.set_entry_type(if name.ends_with('/') {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        });
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::new(6));
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// A one-layer linux/amd64 image in the layout at `dir` (blobs only); returns
/// the manifest descriptor (with its platform).
pub fn image_in_layout(dir: &Path, files: &[(&str, &[u8])]) -> Value {
    let tar = raw_tar(files);
    let layer = gzip(&tar);
    let layer_digest = put_blob(dir, &layer);
    let diff_id = format!("sha256:{}", sha256_hex(&tar));
    let mut d = one_layer_manifest(
        dir,
        json!({"Entrypoint": ["/var/task/app"]}),
        &layer,
        &layer_digest,
        &diff_id,
    );
    d["platform"] = json!({"architecture": "amd64", "os": "linux"});
    d
}

/// Writes the linux/amd64 config (`config` as its `config` object) and the
/// OCI manifest of one gzip layer (already a blob in `dir`) into the layout
/// at `dir`; returns the manifest's descriptor.
pub fn one_layer_manifest(
    dir: &Path,
    config: Value,
    layer: &[u8],
    layer_digest: &str,
    diff_id: &str,
) -> Value {
    one_layer_manifest_for("amd64", dir, config, layer, layer_digest, diff_id)
}

/// [`one_layer_manifest`] of an image for `architecture` (`amd64`, `arm64`).
pub fn one_layer_manifest_for(
    architecture: &str,
    dir: &Path,
    config: Value,
    layer: &[u8],
    layer_digest: &str,
    diff_id: &str,
) -> Value {
    let config = serde_json::to_vec(&json!({
        "architecture": architecture,
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }))
    .unwrap();
    let config_digest = put_blob(dir, &config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.oci.image.config.v1+json", &config, &config_digest),
        "layers": [descriptor("application/vnd.oci.image.layer.v1.tar+gzip", layer, layer_digest)],
    }))
    .unwrap();
    let digest = put_blob(dir, &manifest);
    descriptor(OCI_MANIFEST, &manifest, &digest)
}

/// Writes `oci-layout` and an index.json listing `manifests`.
pub fn write_index(dir: &Path, manifests: Vec<Value>) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
    // It may be a FIFO a test made earlier: writing to one would block.
    let _ = std::fs::remove_file(dir.join("index.json"));
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

/// A nested index blob listing `children`; `n` keeps siblings distinct.
pub fn index_blob(dir: &Path, children: &[Value], n: usize) -> Value {
    let bytes = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": children,
        "annotations": {"n": n.to_string()},
    }))
    .unwrap();
    let digest = put_blob(dir, &bytes);
    descriptor(OCI_INDEX, &bytes, &digest)
}

/// Makes a FIFO at `path`.
pub fn mkfifo(path: &Path) {
    let _ = std::fs::remove_file(path);
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(
        unsafe { libc::mkfifo(c.as_ptr(), 0o600) },
        0,
        "mkfifo {}",
        path.display()
    );
}

/// A docker-archive (docker save) tar: `members` (name, bytes) as given.
pub fn docker_archive(path: &Path, members: &[(&str, &[u8])]) {
    let mut tar = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, data) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(315_532_800);
        h.set_cksum();
        tar.append_data(&mut h, name, *data).unwrap();
    }
    tar.finish().unwrap();
}

/// `n` bytes that gzip cannot shrink (a fixed xorshift stream).
pub fn noise(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
