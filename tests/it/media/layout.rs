//! OCI layouts: our sink checked by skopeo and umoci, our source on hand-made indexes.

use std::collections::BTreeMap;
use std::fs;

use lambda_img::image::{Architecture, Descriptor, Digest, MediaFamily, OCI_INDEX, write_index};
use lambda_img::report::Silent;
use lambda_img::sink::{ImageSink, OciLayoutSink, SinkError};
use lambda_img::source::{ImageSource, OciLayoutSource, ScratchSource, SourceError};

use super::{Env, diff_ids, gzip_layer, image_with, sample_image, skopeo, temp_files};
use crate::support::registry::with_layer_facts;
use crate::support::{require_tool, run_ok};

const X86: Architecture = Architecture::X86_64;

#[test]
fn oci_sink_output_reads_back_in_skopeo_umoci_and_our_source() {
    if !require_tool("skopeo") || !require_tool("umoci") {
        return;
    }
    let env = Env::new();
    let image = sample_image(&env, X86, MediaFamily::Oci);
    let dir = env.path("layout");
    let spec = format!("{}:v1", dir.display());
    let report = OciLayoutSink::parse(&spec)
        .unwrap()
        .write(&image, &Silent)
        .unwrap();
    let expected = format!("oci:{spec}@{}", image.manifest_digest());
    assert_eq!(report.reference.as_deref(), Some(expected.as_str()));

    // skopeo sees exactly our manifest bytes, and our config bytes.
    let raw = run_ok(skopeo().args(["inspect", "--raw", &format!("oci:{spec}")]));
    assert_eq!(raw.stdout, image.manifest());
    let config = run_ok(skopeo().args(["inspect", "--config", "--raw", &format!("oci:{spec}")]));
    assert_eq!(config.stdout, image.config());

    // umoci unpacks both layers.
    let bundle = env.path("bundle");
    run_ok(std::process::Command::new("umoci").args(["unpack", "--image", &spec, bundle.to_str().unwrap()]));
    assert_eq!(
        fs::read(bundle.join("rootfs/app/hello")).unwrap(),
        b"#!/bin/sh\necho hello\n"
    );
    assert_eq!(
        fs::read_to_string(bundle.join("rootfs/app/data/greeting.txt")).unwrap(),
        "hi from x86_64\n"
    );

    // Our own source reads the same image back, verified.
    let back = OciLayoutSource::parse(&spec)
        .unwrap()
        .resolve(X86, &env.cache, &Silent)
        .unwrap();
    assert_eq!(back.manifest_digest(), image.manifest_digest());
    assert_eq!(back.manifest(), image.manifest());
    assert_eq!(back.config_descriptor().digest, image.config_descriptor().digest);
    assert_eq!(diff_ids(&back), diff_ids(&image));
    assert_eq!(back.family(), MediaFamily::Oci);
    assert_eq!(back.uncompressed_size(), image.uncompressed_size());
    assert!(temp_files(&dir).is_empty());
}

#[test]
fn oci_sink_keeps_other_tags_replaces_its_own_and_is_byte_deterministic() {
    let env = Env::new();
    let dir = env.path("layout");
    let a = sample_image(&env, X86, MediaFamily::Oci);
    let scratch = ScratchSource::new().resolve(X86, &env.cache, &Silent).unwrap();
    let write = |tag: &str, image| {
        OciLayoutSink::parse(&format!("{}:{tag}", dir.display()))
            .unwrap()
            .write(image, &Silent)
            .unwrap()
    };
    write("v1", &a);
    write("v2", &scratch);
    let first = fs::read(dir.join("index.json")).unwrap();
    write("v2", &scratch);
    assert_eq!(
        fs::read(dir.join("index.json")).unwrap(),
        first,
        "rewriting a tag changes nothing"
    );

    // Re-pointing v1 replaces its entry in place; v2 is kept.
    write("v1", &scratch);
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    let tag = |i: usize| {
        entries[i]["annotations"]["org.opencontainers.image.ref.name"]
            .as_str()
            .unwrap()
    };
    assert_eq!((tag(0), tag(1)), ("v1", "v2"));
    assert_eq!(entries[0]["digest"], scratch.manifest_digest().to_string());

    // The default tag is `latest`, and the layout marker is the standard one.
    OciLayoutSink::parse(dir.to_str().unwrap())
        .unwrap()
        .write(&a, &Silent)
        .unwrap();
    let read = |s: &str| {
        OciLayoutSource::parse(s)
            .unwrap()
            .resolve(X86, &env.cache, &Silent)
    };
    assert_eq!(
        read(&format!("{}:latest", dir.display()))
            .unwrap()
            .manifest_digest(),
        a.manifest_digest()
    );
    assert_eq!(
        fs::read(dir.join("oci-layout")).unwrap(),
        br#"{"imageLayoutVersion":"1.0.0"}"#
    );

    // Two writes of the same image to fresh layouts give identical trees.
    let other = env.path("other");
    OciLayoutSink::parse(other.to_str().unwrap())
        .unwrap()
        .write(&a, &Silent)
        .unwrap();
    let again = env.path("again");
    OciLayoutSink::parse(again.to_str().unwrap())
        .unwrap()
        .write(&a, &Silent)
        .unwrap();
    assert_eq!(
        fs::read(other.join("index.json")).unwrap(),
        fs::read(again.join("index.json")).unwrap()
    );
}

#[test]
fn oci_source_errors_name_the_tags_and_the_digests() {
    let env = Env::new();
    let dir = env.path("base");
    let a = sample_image(&env, X86, MediaFamily::Oci);
    let scratch = ScratchSource::new().resolve(X86, &env.cache, &Silent).unwrap();
    for (tag, image) in [("latest", &a), ("dev", &scratch)] {
        OciLayoutSink::parse(&format!("{}:{tag}", dir.display()))
            .unwrap()
            .write(image, &Silent)
            .unwrap();
    }
    let read = |s: String| {
        OciLayoutSource::parse(&s)
            .unwrap()
            .resolve(X86, &env.cache, &Silent)
    };

    let err = read(format!("{}:prod", dir.display())).unwrap_err();
    assert!(matches!(err, SourceError::MissingTag { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!(
            "oci:{}:prod has no tag `prod` (tags: latest, dev)",
            dir.display()
        )),
        "{msg}"
    );

    let err = read(dir.display().to_string()).unwrap_err();
    assert!(
        matches!(err, SourceError::AmbiguousImage { count: 2, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("tags: latest, dev"), "{err}");

    // Pinned by digest: the right one passes, a wrong one is a DigestMismatch.
    let ok = read(format!("{}:latest@{}", dir.display(), a.manifest_digest())).unwrap();
    assert_eq!(ok.manifest_digest(), a.manifest_digest());
    let ok = read(format!("{}@{}", dir.display(), scratch.manifest_digest())).unwrap();
    assert_eq!(ok.manifest_digest(), scratch.manifest_digest());
    let err = read(format!("{}:latest@{}", dir.display(), scratch.manifest_digest())).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "tag `latest` in OCI layout {} has digest",
            dir.display()
        )),
        "{msg}"
    );
    match err {
        SourceError::DigestMismatch { expected, actual, .. } => {
            assert_eq!(
                (expected, actual),
                (scratch.manifest_digest().clone(), a.manifest_digest().clone())
            );
        }
        other => panic!("expected DigestMismatch, got {other:?}"),
    }

    // A blob whose bytes changed is caught by its digest.
    let config = dir.join("blobs/sha256").join(a.config_descriptor().digest.hex());
    let mut bytes = fs::read(&config).unwrap();
    bytes[0] = b' ';
    fs::write(&config, bytes).unwrap();
    let err = read(format!("{}:latest", dir.display())).unwrap_err();
    assert!(matches!(err, SourceError::DigestMismatch { .. }), "{err:?}");

    // Not a layout at all.
    let err = read(env.path("cache").display().to_string()).unwrap_err();
    assert!(matches!(err, SourceError::NotAnImage { .. }), "{err:?}");
    assert!(err.to_string().contains("no `oci-layout` file"), "{err}");
}

/// Writes an index blob into `dir` and tags it in index.json (by hand, as a
/// multi-platform base from a registry would be laid out).
fn tag_index(
    dir: &std::path::Path,
    tag: &str,
    children: &[(&lambda_img::image::Image, Architecture)],
) -> Vec<u8> {
    let manifests: Vec<Descriptor> = children
        .iter()
        .map(|(image, arch)| Descriptor {
            platform: Some(arch.platform()),
            ..image.manifest_descriptor()
        })
        .collect();
    let index = write_index(&manifests);
    let digest = Digest::of(&index);
    fs::write(dir.join("blobs/sha256").join(digest.hex()), &index).unwrap();
    let top: serde_json::Value = serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    let mut entries: Vec<Descriptor> = serde_json::from_value(top["manifests"].clone()).unwrap();
    entries.push(Descriptor {
        annotations: Some(BTreeMap::from([(
            "org.opencontainers.image.ref.name".to_string(),
            tag.to_string(),
        )])),
        ..Descriptor::new(OCI_INDEX, digest, index.len() as u64)
    });
    fs::write(dir.join("index.json"), write_index(&entries)).unwrap();
    index
}

#[test]
fn oci_source_picks_the_platform_from_an_index() {
    let env = Env::new();
    let dir = env.path("multi");
    let amd = sample_image(&env, X86, MediaFamily::Oci);
    let arm = sample_image(&env, Architecture::Arm64, MediaFamily::Oci);
    for (tag, image) in [("amd", &amd), ("arm", &arm)] {
        OciLayoutSink::parse(&format!("{}:{tag}", dir.display()))
            .unwrap()
            .write(image, &Silent)
            .unwrap();
    }
    let index = tag_index(&dir, "multi", &[(&amd, X86), (&arm, Architecture::Arm64)]);
    tag_index(&dir, "amd-only", &[(&amd, X86)]);
    // The nested case: an index whose only child is the multi-arch index.
    let nested = Descriptor::new(OCI_INDEX, Digest::of(&index), index.len() as u64);
    let outer = write_index(&[nested]);
    fs::write(dir.join("blobs/sha256").join(Digest::of(&outer).hex()), &outer).unwrap();
    let mut top: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    top["manifests"].as_array_mut().unwrap().push(serde_json::json!({
        "mediaType": OCI_INDEX, "digest": Digest::of(&outer), "size": outer.len(),
        "annotations": {"org.opencontainers.image.ref.name": "nested"}
    }));
    fs::write(dir.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();

    let read = |tag: &str, arch| {
        OciLayoutSource::parse(&format!("{}:{tag}", dir.display()))
            .unwrap()
            .resolve(arch, &env.cache, &Silent)
    };
    assert_eq!(
        read("multi", X86).unwrap().manifest_digest(),
        amd.manifest_digest()
    );
    assert_eq!(
        read("multi", Architecture::Arm64).unwrap().manifest_digest(),
        arm.manifest_digest()
    );
    assert_eq!(
        read("nested", Architecture::Arm64).unwrap().manifest_digest(),
        arm.manifest_digest()
    );
    // Pinning the index by its digest is allowed: the child is still picked by arch.
    let pinned = OciLayoutSource::parse(&format!("{}:multi@{}", dir.display(), Digest::of(&index))).unwrap();
    assert_eq!(
        pinned
            .resolve(X86, &env.cache, &Silent)
            .unwrap()
            .manifest_digest(),
        amd.manifest_digest()
    );

    let err = read("amd-only", Architecture::Arm64).unwrap_err();
    match &err {
        SourceError::NoPlatform { available, arch, .. } => {
            assert_eq!(*arch, Architecture::Arm64);
            assert_eq!(available, "linux/amd64");
        }
        other => panic!("expected NoPlatform, got {other:?}"),
    }

    // skopeo agrees the hand-made layout is valid and picks the same child.
    if require_tool("skopeo") {
        let raw = run_ok(skopeo().args(["inspect", "--raw", &format!("oci:{}:multi", dir.display())]));
        assert_eq!(raw.stdout, index);
        // skopeo picks the same child for arm64 as we do.
        let copy = env.path("arm-copy");
        run_ok(skopeo().args([
            "--override-arch",
            "arm64",
            "copy",
            &format!("oci:{}:multi", dir.display()),
            &format!("oci:{}:x", copy.display()),
        ]));
        let copied = OciLayoutSource::parse(&format!("{}:x", copy.display())).unwrap();
        let copied = copied.resolve(Architecture::Arm64, &env.cache, &Silent).unwrap();
        assert_eq!(copied.config_descriptor().digest, arm.config_descriptor().digest);
        assert_eq!(diff_ids(&copied), diff_ids(&arm));
    }
}

#[test]
fn oci_sink_refuses_a_directory_that_is_not_a_layout() {
    let env = Env::new();
    let dir = env.path("stuff");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("notes.txt"), "mine").unwrap();
    let image = ScratchSource::new().resolve(X86, &env.cache, &Silent).unwrap();
    let err = OciLayoutSink::parse(dir.to_str().unwrap())
        .unwrap()
        .write(&image, &Silent)
        .unwrap_err();
    assert!(matches!(err, SinkError::NotALayout { .. }), "{err:?}");
    assert!(err.to_string().contains("not an OCI image layout"), "{err}");
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "nothing was added");

    // An empty directory is fine: it becomes a layout.
    let empty = env.path("empty");
    fs::create_dir_all(&empty).unwrap();
    OciLayoutSink::parse(empty.to_str().unwrap())
        .unwrap()
        .write(&image, &Silent)
        .unwrap();
    assert!(empty.join("oci-layout").is_file());
}

#[test]
fn a_failed_oci_write_leaves_the_previous_index_and_no_temp_files() {
    let env = Env::new();
    let dir = env.path("layout");
    let spec = format!("{}:v1", dir.display());
    let good = sample_image(&env, X86, MediaFamily::Oci);
    OciLayoutSink::parse(&spec)
        .unwrap()
        .write(&good, &Silent)
        .unwrap();
    let before = fs::read(dir.join("index.json")).unwrap();

    // A layer whose file is gone: refused before anything is written.
    let missing = image_with(
        &env,
        X86,
        MediaFamily::Oci,
        vec![gzip_layer(&env, MediaFamily::Oci, &[("x", b"1")])],
    );
    let missing = with_layer_facts(&missing, |layers| {
        layers[0].location = lambda_img::image::BlobLocation::File(env.path("no-such-blob"))
    });
    let err = OciLayoutSink::parse(&spec)
        .unwrap()
        .write(&missing, &Silent)
        .unwrap_err();
    assert!(matches!(err, SinkError::ReadBlob { .. }), "{err:?}");
    assert!(err.to_string().contains("no-such-blob"), "{err}");

    // A layer whose bytes changed after the build (same size): fails mid-copy.
    let changed = image_with(
        &env,
        X86,
        MediaFamily::Oci,
        vec![gzip_layer(&env, MediaFamily::Oci, &[("y", b"2")])],
    );
    let lambda_img::image::BlobLocation::File(path) = &changed.layers()[0].location;
    let mut bytes = fs::read(path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(path, bytes).unwrap();
    let err = OciLayoutSink::parse(&spec)
        .unwrap()
        .write(&changed, &Silent)
        .unwrap_err();
    assert!(
        matches!(err, SinkError::BlobMismatch { what: "digest", .. }),
        "{err:?}"
    );

    assert_eq!(fs::read(dir.join("index.json")).unwrap(), before);
    assert!(temp_files(&dir).is_empty(), "{:?}", temp_files(&dir));
    let blob = dir
        .join("blobs/sha256")
        .join(changed.layers()[0].descriptor.digest.hex());
    assert!(
        !blob.exists(),
        "a blob that failed its digest check must not be left in the layout"
    );
    assert!(
        !dir.join("blobs/sha256")
            .join(changed.manifest_digest().hex())
            .exists()
    );
    let back = OciLayoutSource::parse(&spec)
        .unwrap()
        .resolve(X86, &env.cache, &Silent)
        .unwrap();
    assert_eq!(back.manifest_digest(), good.manifest_digest());
}

#[test]
fn concurrent_writes_of_different_tags_keep_every_tag() {
    let env = Env::new();
    let dir = env.path("shared");
    let images: Vec<_> = (0..6)
        .map(|i| {
            let layer = gzip_layer(&env, MediaFamily::Oci, &[("n", format!("{i}").as_bytes())]);
            image_with(&env, X86, MediaFamily::Oci, vec![layer])
        })
        .collect();
    std::thread::scope(|s| {
        for (i, image) in images.iter().enumerate() {
            let spec = format!("{}:t{i}", dir.display());
            s.spawn(move || {
                OciLayoutSink::parse(&spec)
                    .unwrap()
                    .write(image, &Silent)
                    .unwrap()
            });
        }
    });
    for (i, image) in images.iter().enumerate() {
        let read = OciLayoutSource::parse(&format!("{}:t{i}", dir.display())).unwrap();
        assert_eq!(
            read.resolve(X86, &env.cache, &Silent).unwrap().manifest_digest(),
            image.manifest_digest()
        );
    }
    assert!(temp_files(&dir).is_empty());
}

#[test]
fn scratch_and_docker_family_images_unpack_with_umoci() {
    if !require_tool("umoci") || !require_tool("skopeo") {
        return;
    }
    let env = Env::new();
    let dir = env.path("layout");
    let scratch = ScratchSource::new()
        .resolve(Architecture::Arm64, &env.cache, &Silent)
        .unwrap();
    let docker = sample_image(&env, X86, MediaFamily::Docker);
    OciLayoutSink::parse(&format!("{}:scratch", dir.display()))
        .unwrap()
        .write(&scratch, &Silent)
        .unwrap();
    let report = OciLayoutSink::parse(&format!("{}:docker", dir.display()))
        .unwrap()
        .write(&docker, &Silent)
        .unwrap();
    let oci = lambda_img::sink::as_oci(&docker).unwrap();
    assert!(
        report
            .reference
            .unwrap()
            .ends_with(&oci.manifest_digest().to_string())
    );
    assert_eq!(oci.config(), docker.config());
    assert_eq!(
        oci.layers()[0].descriptor.digest,
        docker.layers()[0].descriptor.digest
    );

    let out = run_ok(skopeo().args(["inspect", &format!("oci:{}:scratch", dir.display())]));
    let inspect: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(inspect["Architecture"], "arm64");
    assert_eq!(inspect["Layers"], serde_json::json!([]));

    for tag in ["scratch", "docker"] {
        let bundle = env.path(&format!("bundle-{tag}"));
        run_ok(std::process::Command::new("umoci").args([
            "unpack",
            "--image",
            &format!("{}:{tag}", dir.display()),
            bundle.to_str().unwrap(),
        ]));
        assert!(bundle.join("rootfs").is_dir());
    }
    assert!(env.path("bundle-docker/rootfs/app/hello").is_file());
}
