//! Images made by hand for the rule tests: tar layers written entry by entry
//! (bad ones included on purpose), gzipped, stored as blobs in a temp dir.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;

use flate2::{Compression as Level, GzBuilder};
use lambda_img::image::{
    BlobLocation, Descriptor, Digest, Image, Layer, LayerOrigin, MediaFamily, OCI_LAYER_TAR,
};
use serde_json::{Value, json};

/// An ELF header (64-bit little-endian) for `machine`, padded to 64 bytes.
pub fn elf(machine: u16) -> Vec<u8> {
    let mut h = vec![0u8; 64];
    h[..4].copy_from_slice(b"\x7fELF");
    h[4] = 2; // 64-bit
    h[5] = 1; // little-endian
    h[6] = 1;
    h[16] = 2; // ET_EXEC
    h[18..20].copy_from_slice(&machine.to_le_bytes());
    h
}

/// A tar layer written in memory (test layers are small).
pub struct TarLayer {
    builder: tar::Builder<Vec<u8>>,
    dirs: BTreeSet<String>,
}

impl Default for TarLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl TarLayer {
    pub fn new() -> TarLayer {
        TarLayer {
            builder: tar::Builder::new(Vec::new()),
            dirs: BTreeSet::new(),
        }
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(size);
        h
    }

    /// A directory entry, exactly as given (no parents added).
    pub fn raw_dir(mut self, path: &str, mode: u32) -> Self {
        let mut h = Self::header(tar::EntryType::Directory, mode, 0);
        self.builder
            .append_data(&mut h, format!("{path}/"), &[][..])
            .unwrap();
        self.dirs.insert(path.to_string());
        self
    }

    /// Adds the missing ancestors of `path` as 0755 directories.
    fn parents(mut self, path: &str) -> Self {
        let parts: Vec<&str> = path.split('/').collect();
        for i in 1..parts.len() {
            let dir = parts[..i].join("/");
            if !self.dirs.contains(&dir) {
                self = self.raw_dir(&dir, 0o755);
            }
        }
        self
    }

    pub fn dir(self, path: &str, mode: u32) -> Self {
        self.parents(path).raw_dir(path, mode)
    }

    /// A regular file, exactly as given (no parents added).
    pub fn raw_file(mut self, path: &str, mode: u32, content: &[u8]) -> Self {
        let mut h = Self::header(tar::EntryType::Regular, mode, content.len() as u64);
        self.builder.append_data(&mut h, path, content).unwrap();
        self
    }

    pub fn file(self, path: &str, mode: u32, content: &[u8]) -> Self {
        self.parents(path).raw_file(path, mode, content)
    }

    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        self = self.parents(path);
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0);
        self.builder.append_link(&mut h, path, target).unwrap();
        self
    }

    pub fn hardlink(mut self, path: &str, target: &str) -> Self {
        self = self.parents(path);
        let mut h = Self::header(tar::EntryType::Link, 0o644, 0);
        self.builder.append_link(&mut h, path, target).unwrap();
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.builder.into_inner().unwrap()
    }
}

/// An image under construction: layers (tar bytes + media type) and a config.
pub struct ImageBuilder {
    pub dir: tempfile::TempDir,
    pub family: MediaFamily,
    pub layers: Vec<(Vec<u8>, String)>,
    pub config: Value,
}

impl ImageBuilder {
    pub fn new(family: MediaFamily) -> ImageBuilder {
        ImageBuilder {
            dir: tempfile::tempdir().unwrap(),
            family,
            layers: Vec::new(),
            config: json!({"architecture": "amd64", "os": "linux", "config": {}}),
        }
    }

    pub fn layer(mut self, tar: TarLayer) -> Self {
        let mt = self.family.layer_gzip().to_string();
        self.layers.push((tar.finish(), mt));
        self
    }

    pub fn layer_as(mut self, tar: TarLayer, media_type: &str) -> Self {
        self.layers.push((tar.finish(), media_type.to_string()));
        self
    }

    /// Sets the config value at a JSON pointer (the parent must exist).
    pub fn set(mut self, pointer: &str, value: Value) -> Self {
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let parent = self
            .config
            .pointer_mut(parent)
            .unwrap_or_else(|| panic!("no {parent}"));
        parent[key] = value;
        self
    }

    fn blob(&self, bytes: &[u8]) -> (Digest, PathBuf) {
        let d = Digest::of(bytes);
        let p = self.dir.path().join(d.hex());
        std::fs::write(&p, bytes).unwrap();
        (d, p)
    }

    /// Writes the blobs and returns the image. The blobs live in the builder's
    /// temp dir: keep the builder alive while the image's layers are read.
    pub fn build(&mut self) -> Image {
        let mut layers = Vec::new();
        for (tar, media_type) in &self.layers {
            let compressed = if media_type == OCI_LAYER_TAR || media_type.ends_with(".tar") {
                tar.clone()
            } else {
                let mut gz = GzBuilder::new().write(Vec::new(), Level::new(6));
                gz.write_all(tar).unwrap();
                gz.finish().unwrap()
            };
            let (digest, path) = self.blob(&compressed);
            layers.push(Layer {
                descriptor: Descriptor::new(media_type.clone(), digest, compressed.len() as u64),
                diff_id: Digest::of(tar),
                uncompressed_size: tar.len() as u64,
                location: BlobLocation::File(path),
                origin: LayerOrigin::Built {
                    name: "test".into(),
                    source: "fixture".into(),
                    cached: false,
                    from_cache_registry: false,
                },
            });
        }
        let mut config = self.config.clone();
        let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id.to_string()).collect();
        config["rootfs"] = json!({"type": "layers", "diff_ids": diff_ids});
        let config_bytes = serde_json::to_vec(&config).unwrap();
        self.blob(&config_bytes);
        Image::new(self.family, config_bytes, layers, None)
    }
}

pub const APP_PY: &[u8] =
    b"import json\n\n\ndef lambda_handler(event, context):\n    return {\"statusCode\": 200}\n";

/// The base-OS layer of an AWS-shaped image: root dir, /bin -> usr/bin, an
/// x86_64 ELF, /lambda-entrypoint.sh (a script), /etc/motd (whited out later).
pub fn base_os_layer() -> TarLayer {
    TarLayer::new()
        .raw_dir(".", 0o755)
        .file("usr/bin/python3.12", 0o755, &elf(62))
        .file("usr/bin/sh", 0o755, &elf(62))
        .symlink("bin", "usr/bin")
        .file("etc/os-release", 0o644, b"NAME=\"Amazon Linux\"\n")
        .file("etc/motd", 0o644, b"hello\n")
        .file(
            "lambda-entrypoint.sh",
            0o755,
            b"#!/bin/sh\nexec /usr/local/bin/aws-lambda-rie \"$@\"\n",
        )
        .dir("tmp", 0o1777)
}

/// An image shaped like public.ecr.aws/lambda/python:3.12 plus a function:
/// ENTRYPOINT /lambda-entrypoint.sh, the handler in CMD, `"history": null`,
/// several layers, a whiteout, /var/task/app.py defining the handler.
pub fn aws_like() -> ImageBuilder {
    ImageBuilder::new(MediaFamily::Oci)
        .layer(base_os_layer())
        .layer(
            TarLayer::new()
                .file("var/runtime/bootstrap.py", 0o644, b"import awslambdaric\n")
                .file("var/runtime/bootstrap", 0o755, &elf(62))
                .file("var/lang/bin/python3", 0o755, &elf(62))
                .dir("opt", 0o755),
        )
        .layer(TarLayer::new().dir("etc", 0o755).raw_file("etc/.wh.motd", 0o644, b""))
        .layer(TarLayer::new().file("var/task/app.py", 0o644, APP_PY).dir("var/task/pkg", 0o755))
        .set(
            "/config",
            json!({
                "Entrypoint": ["/lambda-entrypoint.sh"],
                "Cmd": ["app.lambda_handler"],
                "WorkingDir": "/var/task",
                "Env": [
                    "LANG=en_US.UTF-8",
                    "TZ=:/etc/localtime",
                    "PATH=/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin",
                    "LD_LIBRARY_PATH=/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib",
                    "LAMBDA_TASK_ROOT=/var/task",
                    "LAMBDA_RUNTIME_DIR=/var/runtime"
                ]
            }),
        )
        .set_history_null()
}

impl ImageBuilder {
    pub fn set_history_null(mut self) -> Self {
        self.config["history"] = Value::Null;
        self
    }
}
