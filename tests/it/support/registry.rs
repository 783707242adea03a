//! A real Distribution registry (`docker-registry serve`) on a free loopback
//! port with its own storage, optionally behind htpasswd Basic auth. Stopped
//! (by PID) when dropped, even when the test fails.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lambda_img::cache::Cache;
use lambda_img::image::{
    Architecture, BlobLocation, Descriptor, Digest, Image, Layer, LayerOrigin, MediaFamily, write_manifest,
};
use lambda_img::registry::{BlobAction, RegistryOptions, RetryPolicy};
use lambda_img::report::Silent;
use lambda_img::sink::{ImageSink, RegistrySink, SinkError, SinkReport};
use lambda_img::source::{ImageSource, RegistrySource, SourceError};

use super::{require_tool, run_ok};

pub struct TestRegistry {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl TestRegistry {
    /// An anonymous registry; `None` when `docker-registry` is missing (skipped locally).
    pub fn start() -> Option<TestRegistry> {
        Self::start_inner(None)
    }

    /// A registry demanding Basic auth for `user`/`pass`.
    pub fn start_basic(user: &str, pass: &str) -> Option<TestRegistry> {
        Self::start_inner(Some((user, pass)))
    }

    fn start_inner(basic: Option<(&str, &str)>) -> Option<TestRegistry> {
        if !require_tool("docker-registry") || (basic.is_some() && !require_tool("htpasswd")) {
            return None;
        }
        // The port is free when probed; another process could take it before the
        // registry binds, so a failed start is tried again on a new port.
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let port = free_port();
            let mut config = format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: lambda-img-test-secret\n",
                dir.path().join("data").display()
            );
            if let Some((user, pass)) = basic {
                let out = run_ok(Command::new("htpasswd").args(["-Bbn", user, pass]));
                let file = dir.path().join("htpasswd");
                std::fs::write(&file, &out.stdout).unwrap();
                config.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: lambda-img-test\n    path: {}\n",
                    file.display()
                ));
            }
            let config_path = dir.path().join("config.yml");
            std::fs::write(&config_path, config).unwrap();
            let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
            let child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("cannot start docker-registry");
            let mut reg = TestRegistry { child, port, dir };
            if reg.wait_ready() {
                return Some(reg);
            }
            // Drop kills it; try another port.
            let _ = reg.child.kill();
        }
        panic!("docker-registry did not become ready on any of 5 ports");
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Some(status) = http_status(self.port, "/v2/")
                && (status == 200 || status == 401)
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The status of `GET path` on 127.0.0.1:port, or `None` if nothing answers.
pub fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    let line = String::from_utf8_lossy(&buf[..n]);
    line.split_whitespace().nth(1)?.parse().ok()
}

// ---- images and calls shared by the registry tests ----

/// Options for tests: quick retries, and no Docker config from the machine.
pub fn opts() -> RegistryOptions {
    RegistryOptions {
        retry: RetryPolicy::quick(),
        docker_config_dir: Some(PathBuf::from("/nonexistent/lambda-img-test-docker-config")),
        timeout: Duration::from_secs(10),
        ..RegistryOptions::default()
    }
}

pub fn opts_with_config(dir: &Path) -> RegistryOptions {
    RegistryOptions {
        docker_config_dir: Some(dir.to_path_buf()),
        ..opts()
    }
}

/// A gzip layer holding `files`: (compressed bytes, diff_id, uncompressed size).
pub fn gz_layer(files: &[(&str, &[u8])]) -> (Vec<u8>, Digest, u64) {
    gz_layer_at(files, 6)
}

/// As `gz_layer`, at gzip `level` (1 keeps big test layers quick in debug builds).
pub fn gz_layer_at(files: &[(&str, &[u8])], level: u32) -> (Vec<u8>, Digest, u64) {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_path(name).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        h.set_mtime(315_532_800);
        h.set_cksum();
        tar.append(&h, *data).unwrap();
    }
    let raw = tar.into_inner().unwrap();
    let mut gz = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::new(level));
    gz.write_all(&raw).unwrap();
    (gz.finish().unwrap(), Digest::of(&raw), raw.len() as u64)
}

pub fn commit(cache: &Cache, bytes: &[u8]) -> PathBuf {
    let mut tmp = cache.temp_file().unwrap();
    tmp.write_all(bytes).unwrap();
    cache.commit_blob(tmp, &Digest::of(bytes)).unwrap()
}

pub fn built_layer(cache: &Cache, name: &str, files: &[(&str, &[u8])]) -> Layer {
    built_layer_at(cache, name, files, 6)
}

/// As `built_layer`, at gzip `level`.
pub fn built_layer_at(cache: &Cache, name: &str, files: &[(&str, &[u8])], level: u32) -> Layer {
    let (gz, diff_id, size) = gz_layer_at(files, level);
    let path = commit(cache, &gz);
    Layer {
        descriptor: Descriptor::new(MediaFamily::Oci.layer_gzip(), Digest::of(&gz), gz.len() as u64),
        diff_id,
        uncompressed_size: size,
        location: BlobLocation::File(path),
        origin: LayerOrigin::Built {
            name: name.into(),
            source: "test".into(),
            cached: false,
            from_cache_registry: false,
        },
    }
}

/// An image from `layers`, with a config whose architecture is `arch`.
pub fn image_of(layers: Vec<Layer>, arch: &str, config_media_type: &str) -> Image {
    let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id.to_string()).collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": {"Entrypoint": ["/hello"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let config_descriptor = Descriptor::new(config_media_type, Digest::of(&config), config.len() as u64);
    let descs: Vec<Descriptor> = layers.iter().map(|l| l.descriptor.clone()).collect();
    let manifest = write_manifest(MediaFamily::Oci, &config_descriptor, &descs, None);
    Image::from_manifest(MediaFamily::Oci, manifest, config, config_descriptor, layers)
}

/// `image` with `edit` applied to its layers' facts (not the manifest's
/// bytes): a layer file gone, a size the rules must catch.
pub fn with_layer_facts(image: &Image, edit: impl FnOnce(&mut Vec<Layer>)) -> Image {
    let mut layers = image.layers().to_vec();
    edit(&mut layers);
    Image::from_manifest(
        image.family(),
        image.manifest().to_vec(),
        image.config().to_vec(),
        image.config_descriptor().clone(),
        layers,
    )
}

/// A two-layer image; `code` varies the second layer.
pub fn test_image(cache: &Cache, arch: &str, code: &[u8]) -> Image {
    let base = built_layer(cache, "base", &[("etc/base.txt", b"base layer\n")]);
    let code = built_layer(cache, "code", &[("var/task/app.py", code)]);
    image_of(vec![base, code], arch, MediaFamily::Oci.config())
}

pub fn push(
    host: &str,
    reference: &str,
    image: &Image,
    options: RegistryOptions,
) -> Result<SinkReport, SinkError> {
    RegistrySink::parse(&format!("{host}/{reference}"), options)
        .unwrap()
        .write(image, &Silent)
}

pub fn pull(
    reference: &str,
    arch: Architecture,
    cache: &Cache,
    options: RegistryOptions,
) -> Result<Image, SourceError> {
    RegistrySource::parse(reference, options)
        .unwrap()
        .resolve(arch, cache, &Silent)
}

pub fn actions(report: &SinkReport) -> Vec<(&'static str, BlobAction)> {
    report
        .blobs
        .as_ref()
        .unwrap()
        .iter()
        .map(|b| (b.kind, b.action))
        .collect()
}

pub fn new_cache() -> (tempfile::TempDir, Cache) {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path().join("cache")).unwrap();
    (dir, cache)
}
