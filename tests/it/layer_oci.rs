//! A built layer, wrapped in a minimal OCI layout, is read by real tools:
//! skopeo verifies every digest on copy, umoci unpacks it to a root filesystem.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;

use lambda_img::cache::Cache;
use lambda_img::image::{BlobLocation, Descriptor, Digest, Layer, MediaFamily, write_index, write_manifest};
use lambda_img::layer::{LayerInput, LayerSettings, LayerSpec, build_layer};
use lambda_img::report::Silent;

use crate::support::{require_tool, run_ok};

fn project(dir: &Path) {
    let long_dir = "d".repeat(90);
    let long_file = format!("{}.py", "f".repeat(120));
    let files = [
        ("app.py".to_string(), "print('hi')\n"),
        ("pkg/mod.py".to_string(), "X = 1\n"),
        (format!("{long_dir}/{long_file}"), "long\n"),
        ("bin/run".to_string(), "#!/bin/sh\necho run\n"),
    ];
    for (rel, body) in &files {
        let p = dir.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, body).unwrap();
    }
    fs::set_permissions(dir.join("bin/run"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::create_dir_all(dir.join("lib")).unwrap();
    fs::write(dir.join("lib/native.so"), native_like()).unwrap();
    fs::hard_link(dir.join("app.py"), dir.join("pkg/same.py")).unwrap();
    symlink("../pkg/mod.py", dir.join("bin/mod.py")).unwrap();
    symlink(format!("{}/{}", long_dir, "x".repeat(120)), dir.join("longlink")).unwrap();
}

/// Text, then 200 KB of pseudo-random bytes, then text: the layer holds
/// segments written stored beside deflated runs, inside one block and across
/// blocks.
fn native_like() -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut bytes = b"ELF-ish header text ".repeat(300);
    bytes.extend((0..200_000).map(|_| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 32) as u8
    }));
    bytes.extend(b"symbol table text ".repeat(3000));
    bytes
}

/// Writes an OCI layout holding one image made of `layer`; returns its path.
fn layout(dir: &Path, layer: &Layer) {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let BlobLocation::File(src) = &layer.location;
    fs::copy(src, blobs.join(layer.descriptor.digest.hex())).unwrap();
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
        layer.diff_id
    );
    let cfg = Descriptor::new(
        MediaFamily::Oci.config(),
        Digest::of(config.as_bytes()),
        config.len() as u64,
    );
    fs::write(blobs.join(cfg.digest.hex()), &config).unwrap();
    let manifest = write_manifest(
        MediaFamily::Oci,
        &cfg,
        std::slice::from_ref(&layer.descriptor),
        None,
    );
    let mdigest = Digest::of(&manifest);
    fs::write(blobs.join(mdigest.hex()), &manifest).unwrap();
    let mut m = Descriptor::new(MediaFamily::Oci.manifest(), mdigest, manifest.len() as u64);
    m.annotations = Some(BTreeMap::from([(
        "org.opencontainers.image.ref.name".to_string(),
        "latest".to_string(),
    )]));
    fs::write(dir.join("index.json"), write_index(&[m])).unwrap();
}

#[test]
fn built_layer_unpacks_with_umoci_and_copies_with_skopeo() {
    if !require_tool("umoci") || !require_tool("skopeo") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    project(&src);
    let cache = Cache::open(tmp.path().join("cache")).unwrap();
    let spec = LayerSpec {
        name: "code".into(),
        inputs: vec![LayerInput::all(&src, "/var/task")],
    };
    let layer = build_layer(&spec, &LayerSettings::default(), &cache, &Silent).unwrap();
    let oci = tmp.path().join("oci");
    layout(&oci, &layer);

    // skopeo checks each blob against its digest while copying.
    let copy = tmp.path().join("copy");
    run_ok(
        Command::new("skopeo")
            .arg("copy")
            .arg(format!("oci:{}:latest", oci.display()))
            .arg(format!("dir:{}", copy.display())),
    );
    assert!(copy.join(layer.descriptor.digest.hex()).is_file());

    let bundle = tmp.path().join("bundle");
    run_ok(
        Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:latest", oci.display()))
            .arg(&bundle),
    );
    let task = bundle.join("rootfs/var/task");
    assert_eq!(fs::read_to_string(task.join("app.py")).unwrap(), "print('hi')\n");
    // Stored segments and deflated runs decode to the exact bytes (umoci's Go
    // gzip reader); the random part cannot shrink, the text around it did.
    assert_eq!(fs::read(task.join("lib/native.so")).unwrap(), native_like());
    assert!(layer.descriptor.size > 200_000, "{}", layer.descriptor.size);
    assert!(
        layer.descriptor.size < 200_000 + 20_000,
        "{}",
        layer.descriptor.size
    );
    // The hard-linked pair arrives as two independent regular files.
    let (a, b) = (
        fs::metadata(task.join("app.py")).unwrap(),
        fs::metadata(task.join("pkg/same.py")).unwrap(),
    );
    assert_eq!(
        fs::read_to_string(task.join("pkg/same.py")).unwrap(),
        "print('hi')\n"
    );
    assert_ne!(a.ino(), b.ino());
    assert_eq!(a.mode() & 0o7777, 0o644);
    assert_eq!(fs::metadata(task.join("bin/run")).unwrap().mode() & 0o7777, 0o755);
    assert_eq!(fs::metadata(task.join("pkg")).unwrap().mode() & 0o7777, 0o755);
    assert_eq!(
        fs::read_link(task.join("bin/mod.py")).unwrap().to_str(),
        Some("../pkg/mod.py")
    );
    let long = task.join("d".repeat(90)).join(format!("{}.py", "f".repeat(120)));
    assert_eq!(
        fs::read_to_string(long).unwrap(),
        "long\n",
        "GNU long names are read"
    );
    let long_target = fs::read_link(task.join("longlink")).unwrap();
    assert!(
        long_target.to_str().unwrap().ends_with(&"x".repeat(120)),
        "GNU long link names are read"
    );
    assert_eq!(a.mtime(), lambda_img::layer::DEFAULT_MTIME as i64);
}

/// An OCI layout output on the cache's filesystem gets each layer as a hard
/// link to the cache's blob (no copy of a blob that can be gigabytes), world
/// readable; each blob is verified first, so a damaged cache entry fails the
/// write instead of landing in the output.
#[test]
fn layout_outputs_link_cache_blobs_and_refuse_a_damaged_one() {
    use lambda_img::sink::{self, SinkOptions};

    let (_cache_dir, cache) = crate::support::registry::new_cache();
    let image = crate::support::registry::test_image(&cache, "amd64", b"print(1)\n");
    let out = tempfile::tempdir().unwrap();
    let layout = out.path().join("image");
    // Only the blobs of the cache a sink is given are linked.
    let options = SinkOptions {
        cache: Some(cache.clone()),
        ..SinkOptions::default()
    };
    let sink = sink::open(&format!("oci:{}", layout.display()), &options).unwrap();
    sink.write(&image, &Silent).unwrap();
    for layer in image.layers() {
        let BlobLocation::File(cached) = &layer.location;
        let copy = layout.join("blobs/sha256").join(layer.descriptor.digest.hex());
        let (a, b) = (fs::metadata(cached).unwrap(), fs::metadata(&copy).unwrap());
        assert_eq!(
            (a.dev(), a.ino()),
            (b.dev(), b.ino()),
            "{} was copied, not linked",
            copy.display()
        );
        assert_eq!(b.permissions().mode() & 0o777, 0o644);
    }

    let damaged = crate::support::registry::test_image(&cache, "amd64", b"print(2)\n");
    let code = damaged.layers().last().unwrap();
    let BlobLocation::File(blob) = &code.location;
    let size = fs::metadata(blob).unwrap().len() as usize;
    fs::write(blob, vec![b'x'; size]).unwrap();
    let code_hex = code.descriptor.digest.hex().to_string();
    let other = out.path().join("other");
    // The cache opened again: its blobs are its own, but nothing it committed
    // vouches for one, so each is read and verified before it is linked.
    let reopened = SinkOptions {
        cache: Some(lambda_img::cache::Cache::open(cache.root()).unwrap()),
        ..SinkOptions::default()
    };
    let sink = sink::open(&format!("oci:{}", other.display()), &reopened).unwrap();
    let err = sink.write(&damaged, &Silent).unwrap_err().to_string();
    assert!(err.contains("digest"), "{err}");
    assert!(!other.join("blobs/sha256").join(code_hex).exists());
    assert!(
        !other.join("index.json").exists(),
        "a failed write must not name the image"
    );
}
