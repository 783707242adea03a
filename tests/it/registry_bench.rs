//! Push benchmark: our push of a fresh image to an empty registry and our
//! re-push after a one-file code change, beside `skopeo copy` of the same image
//! (from an OCI layout) to another empty registry in the same run. Prints the
//! ratios; asserts what a re-push sends (timings are too noisy to assert on a
//! shared machine).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use lambda_img::cache::Cache;
use lambda_img::image::{BlobLocation, Digest, Image, Layer, MediaFamily, write_index};
use lambda_img::registry::{BlobAction, RegistryOptions, RetryPolicy};
use lambda_img::report::Silent;
use lambda_img::sink::{ImageSink, RegistrySink};

use crate::support::registry::{TestRegistry, built_layer_at, image_of};
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

// Level 1 keeps the debug-build test quick; the bytes are noise anyway.
fn layer(cache: &Cache, name: &str, path: &str, data: &[u8]) -> Layer {
    built_layer_at(cache, name, &[(path, data)], 1)
}

fn image(layers: Vec<Layer>) -> Image {
    image_of(layers, "amd64", MediaFamily::Oci.config())
}

/// Writes `image` as an OCI layout tagged `bench`, for skopeo.
fn write_layout(dir: &Path, image: &Image) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    for l in image.layers() {
        let BlobLocation::File(p) = &l.location;
        std::fs::copy(p, blobs.join(l.descriptor.digest.hex())).unwrap();
    }
    std::fs::write(blobs.join(image.config_descriptor().digest.hex()), image.config()).unwrap();
    std::fs::write(blobs.join(image.manifest_digest().hex()), image.manifest()).unwrap();
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
    assert_eq!(&Digest::of(&raw.stdout), v1.manifest_digest());

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
