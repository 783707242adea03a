//! Push benchmark: our push of a fresh image to an empty registry and our
//! re-push after a one-file code change, beside `skopeo copy` of the same image
//! (from an OCI layout) to another empty registry in the same run. Prints the
//! ratios; asserts what a re-push sends (timings are too noisy to assert on a
//! shared machine).

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use lambda_img::cache::Cache;
use lambda_img::image::{
    BlobLocation, Descriptor, Digest, Image, Layer, LayerOrigin, MediaFamily, write_index, write_manifest,
};
use lambda_img::registry::{BlobAction, RegistryOptions, RetryPolicy};
use lambda_img::report::Silent;
use lambda_img::sink::{ImageSink, RegistrySink};

use crate::support::registry::TestRegistry;
use crate::support::{require_tool, run_ok};

/// Incompressible bytes (xorshift), so the layer size is the transfer size.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn layer(cache: &Cache, name: &str, path: &str, data: &[u8]) -> Layer {
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_path(path).unwrap();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(315_532_800);
    h.set_cksum();
    tar.append(&h, data).unwrap();
    let raw = tar.into_inner().unwrap();
    // Level 1 keeps the debug-build test quick; the bytes are noise anyway.
    let mut gz = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::new(1));
    gz.write_all(&raw).unwrap();
    let gz = gz.finish().unwrap();
    let mut tmp = cache.temp_file().unwrap();
    tmp.write_all(&gz).unwrap();
    let digest = Digest::of(&gz);
    let file = cache.commit_blob(tmp, &digest).unwrap();
    Layer {
        descriptor: Descriptor::new(MediaFamily::Oci.layer_gzip(), digest, gz.len() as u64),
        diff_id: Digest::of(&raw),
        uncompressed_size: raw.len() as u64,
        location: BlobLocation::File(file),
        origin: LayerOrigin::Built {
            name: name.into(),
            source: "bench".into(),
            cached: false,
        },
    }
}

fn image(layers: Vec<Layer>) -> Image {
    let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id.to_string()).collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let config_descriptor = Descriptor::new(
        MediaFamily::Oci.config(),
        Digest::of(&config),
        config.len() as u64,
    );
    let descs: Vec<Descriptor> = layers.iter().map(|l| l.descriptor.clone()).collect();
    let manifest = write_manifest(MediaFamily::Oci, &config_descriptor, &descs, None);
    Image {
        family: MediaFamily::Oci,
        manifest_digest: Digest::of(&manifest),
        manifest,
        config,
        config_descriptor,
        layers,
    }
}

/// Writes `image` as an OCI layout tagged `bench`, for skopeo.
fn write_layout(dir: &Path, image: &Image) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    for l in &image.layers {
        let BlobLocation::File(p) = &l.location;
        std::fs::copy(p, blobs.join(l.descriptor.digest.hex())).unwrap();
    }
    std::fs::write(blobs.join(image.config_descriptor.digest.hex()), &image.config).unwrap();
    std::fs::write(blobs.join(image.manifest_digest.hex()), &image.manifest).unwrap();
    let mut d = image.manifest_descriptor();
    d.annotations = Some(
        [(
            "org.opencontainers.image.ref.name".to_string(),
            "bench".to_string(),
        )]
        .into(),
    );
    std::fs::write(dir.join("index.json"), write_index(&[d])).unwrap();
}

#[test]
fn push_and_repush_beside_skopeo_copy() {
    let Some(ours) = TestRegistry::start() else { return };
    let Some(theirs) = TestRegistry::start() else {
        return;
    };
    if !require_tool("skopeo") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path().join("cache")).unwrap();
    let deps = layer(&cache, "deps", "opt/deps.bin", &noise(24 << 20, 7));
    let v1 = image(vec![
        deps.clone(),
        layer(&cache, "code", "var/task/app.py", b"v = 1\n"),
    ]);
    let v2 = image(vec![deps, layer(&cache, "code", "var/task/app.py", b"v = 2\n")]);
    let options = RegistryOptions {
        retry: RetryPolicy::quick(),
        docker_config_dir: Some(dir.path().join("no-docker-config")),
        ..RegistryOptions::default()
    };
    let sink = RegistrySink::parse(&format!("{}/bench/app:latest", ours.host()), options).unwrap();

    let t = Instant::now();
    let first = sink.write(&v1, &Silent).unwrap();
    let fresh = t.elapsed();
    let t = Instant::now();
    let second = sink.write(&v2, &Silent).unwrap();
    let repush = t.elapsed();

    let layout = dir.path().join("layout");
    write_layout(&layout, &v1);
    let t = Instant::now();
    run_ok(Command::new("skopeo").args([
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        &format!("oci:{}:bench", layout.display()),
        &format!("docker://{}/bench/app:latest", theirs.host()),
    ]));
    let skopeo = t.elapsed();
    // skopeo copied our exact manifest: same digest on both registries.
    let raw = run_ok(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/bench/app:latest", theirs.host()),
    ]));
    assert_eq!(Digest::of(&raw.stdout), v1.manifest_digest);

    let actions: Vec<_> = second.blobs.unwrap().iter().map(|b| (b.kind, b.action)).collect();
    assert_eq!(
        actions,
        vec![
            ("layer", BlobAction::Skipped),
            ("layer", BlobAction::Uploaded),
            ("config", BlobAction::Uploaded)
        ],
        "a re-push uploads only the code layer, the config and the manifest"
    );
    assert!(
        first
            .blobs
            .unwrap()
            .iter()
            .all(|b| b.action == BlobAction::Uploaded)
    );
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    eprintln!(
        "push benchmark (24 MiB deps layer): lambda-img fresh push {:.0} ms, skopeo copy {:.0} ms (ratio {:.2}); re-push after a code change {:.0} ms ({:.2} of the fresh push)",
        ms(fresh),
        ms(skopeo),
        ms(fresh) / ms(skopeo),
        ms(repush),
        ms(repush) / ms(fresh)
    );
}
