//! Local image sources and sinks (scratch, OCI layout, docker-archive), used
//! through the library and checked with skopeo, umoci and podman.

mod archive;
mod layout;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use flate2::{Compression, GzBuilder};
use lambda_img::cache::Cache;
use lambda_img::image::{
    Architecture, BlobLocation, Descriptor, Digest, Image, Layer, LayerOrigin, MediaFamily,
};
use lambda_img::report::Silent;
use lambda_img::source::{ImageSource, ScratchSource};
use serde_json::json;

/// A test's private directory and cache.
struct Env {
    dir: tempfile::TempDir,
    cache: Cache,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path().join("cache")).unwrap();
        Env { dir, cache }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
}

/// An uncompressed layer tar with `files` (path, contents) below their parent dirs.
fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut dirs = std::collections::BTreeSet::new();
    for (path, data) in files {
        let mut parent = Path::new(path).parent();
        let mut chain = Vec::new();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            chain.push(p.to_path_buf());
            parent = p.parent();
        }
        for d in chain.into_iter().rev() {
            if dirs.insert(d.clone()) {
                let mut h = header(0, 0o755);
                h.set_entry_type(tar::EntryType::Directory);
                tar.append_data(&mut h, format!("{}/", d.display()), std::io::empty())
                    .unwrap();
            }
        }
        let mut h = header(data.len() as u64, 0o755);
        tar.append_data(&mut h, path, *data).unwrap();
    }
    tar.into_inner().unwrap()
}

fn header(size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(315_532_800);
    h
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = GzBuilder::new().write(Vec::new(), Compression::new(6));
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// A gzip layer written to a file under the test's directory.
fn gzip_layer(env: &Env, family: MediaFamily, files: &[(&str, &[u8])]) -> Layer {
    let tar = layer_tar(files);
    let gz = gzip(&tar);
    let digest = Digest::of(&gz);
    let path = env.path(&format!("layer-{}.tar.gz", digest.short()));
    std::fs::write(&path, &gz).unwrap();
    Layer {
        descriptor: Descriptor::new(family.layer_gzip(), digest, gz.len() as u64),
        diff_id: Digest::of(&tar),
        uncompressed_size: tar.len() as u64,
        location: BlobLocation::File(path),
        origin: LayerOrigin::Built {
            name: "test".into(),
            source: "test".into(),
            cached: false,
            from_cache_registry: false,
        },
    }
}

/// Scratch plus `layers`, with an edited config (the manifest written by `Image::new`).
fn image_with(env: &Env, arch: Architecture, family: MediaFamily, layers: Vec<Layer>) -> Image {
    let base = ScratchSource::new().resolve(arch, &env.cache, &Silent).unwrap();
    let mut config = base.config_json().unwrap();
    config["config"] = json!({"Env": ["PATH=/usr/bin:/bin"], "Entrypoint": ["/app/hello"]});
    config["rootfs"]["diff_ids"] = json!(layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>());
    config["history"] = json!(
        layers
            .iter()
            .map(|_| json!({"created_by": "media test"}))
            .collect::<Vec<_>>()
    );
    let config = serde_json::to_vec(&config).unwrap();
    Image::new(family, config, layers, None)
}

/// The two-layer image most tests use: /app/hello and /app/data/greeting.txt.
fn sample_image(env: &Env, arch: Architecture, family: MediaFamily) -> Image {
    let l1 = gzip_layer(env, family, &[("app/hello", b"#!/bin/sh\necho hello\n")]);
    let l2 = gzip_layer(
        env,
        family,
        &[("app/data/greeting.txt", format!("hi from {arch}\n").as_bytes())],
    );
    image_with(env, arch, family, vec![l1, l2])
}

fn diff_ids(image: &Image) -> Vec<Digest> {
    image.layers().iter().map(|l| l.diff_id.clone()).collect()
}

fn skopeo() -> Command {
    let mut c = Command::new("skopeo");
    c.arg("--insecure-policy");
    c
}

/// Every file below `dir` whose name marks it as one of our temp files.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .map(|e| e.path().to_path_buf())
        .collect()
}
