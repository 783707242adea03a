//! OCI layout outputs touch only what they own: blobs are hard-linked only
//! from lambda-img's cache (never from an input layout, never through a
//! symlink, never with a chmod of the linked inode), and blobs the new
//! index.json no longer reaches are removed (unless --no-gc); skopeo and
//! umoci read the layout afterwards.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::crafted::*;
use crate::support::oci::index_entry;
use crate::support::project::Project;
use crate::support::{require_tool, run_ok, write_files};

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// A base layout at `dir` tagged `base`; returns the manifest digest.
fn base_layout(dir: &Path) -> String {
    let mut entry = image_in_layout(
        dir,
        &[
            // The entrypoint's interpreter is in the image (LI045).
            ("bin/", b""),
            ("bin/sh", b"a stand-in shell"),
            ("var/", b""),
            ("var/task/", b""),
            ("var/task/app", b"#!/bin/sh\necho base\n"),
        ],
    );
    entry["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": "base"});
    let digest = entry["digest"].as_str().unwrap().to_string();
    write_index(dir, vec![entry]);
    digest
}

fn app(base: &Path, digest: &str) -> Project {
    Project::new(
        &format!(
            "[function]\nname = \"app\"\nruntime = \"provided.al2023\"\n\n[base]\nimage = \"oci:{}:base@{digest}\"\n\n[code]\nsources = [\"src\"]\n",
            base.display()
        ),
        &[("src/handler.sh", "echo one\n")],
    )
}

/// Every blob of `tag`'s image: manifest, config, layers.
fn blobs_of(out: &Path, tag: &str) -> BTreeSet<String> {
    let entry = index_entry(out, tag);
    let m = entry["digest"].as_str().unwrap().to_string();
    let manifest: Value = serde_json::from_slice(&fs::read(blob(out, &m)).unwrap()).unwrap();
    let mut set = BTreeSet::from([m, manifest["config"]["digest"].as_str().unwrap().to_string()]);
    for l in manifest["layers"].as_array().unwrap() {
        set.insert(l["digest"].as_str().unwrap().to_string());
    }
    set
}

fn blob(dir: &Path, digest: &str) -> std::path::PathBuf {
    dir.join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").unwrap())
}

fn blob_count(out: &Path) -> usize {
    fs::read_dir(out.join("blobs/sha256")).unwrap().count()
}

fn base_layer(base: &Path, digest: &str) -> String {
    let manifest: Value = serde_json::from_slice(&fs::read(blob(base, digest)).unwrap()).unwrap();
    manifest["layers"][0]["digest"].as_str().unwrap().to_string()
}

#[test]
fn input_layout_blobs_are_copied_never_linked_or_chmodded() {
    let dirs = tempfile::tempdir().unwrap();
    let base = dirs.path().join("base");
    let digest = base_layout(&base);
    let layer = base_layer(&base, &digest);
    let input_blob = blob(&base, &layer);
    fs::set_permissions(&input_blob, fs::Permissions::from_mode(0o600)).unwrap();
    let p = app(&base, &digest);

    let out = dirs.path().join("out1");
    p.build_ok(&["--output", &format!("oci:{}", out.display())]);
    assert_eq!(mode(&input_blob), 0o600, "the input layout's blob keeps its mode");
    let written = blob(&out, &layer);
    assert_ne!(
        fs::metadata(&written).unwrap().ino(),
        fs::metadata(&input_blob).unwrap().ino()
    );
    assert_eq!(mode(&written), 0o644);

    // A symlinked blob pointing outside the layout: read, copied, the target untouched.
    let outside = dirs.path().join("outside-secret");
    fs::rename(&input_blob, &outside).unwrap();
    std::os::unix::fs::symlink(&outside, &input_blob).unwrap();
    let out = dirs.path().join("out2");
    p.build_ok(&["--output", &format!("oci:{}", out.display())]);
    assert_eq!(mode(&outside), 0o600, "the file behind the link keeps its mode");
    let written = blob(&out, &layer);
    assert!(fs::symlink_metadata(&written).unwrap().file_type().is_file());
    assert_ne!(
        fs::metadata(&written).unwrap().ino(),
        fs::metadata(&outside).unwrap().ino()
    );

    // Our own cache's blob (the code layer) is linked, its mode unchanged.
    let code = blobs_of(&out, "latest")
        .into_iter()
        .find(|d| *d != layer && p.cache.path().join("blobs-v1/sha256").join(&d[7..]).exists())
        .expect("the code layer is in the cache");
    let cached = p.cache.path().join("blobs-v1/sha256").join(&code[7..]);
    assert_eq!(
        fs::metadata(&cached).unwrap().ino(),
        fs::metadata(blob(&out, &code)).unwrap().ino()
    );
    assert_eq!(mode(&cached), 0o644);
}

#[test]
fn repeated_builds_into_a_layout_leave_only_referenced_blobs() {
    if !require_tool("skopeo") || !require_tool("umoci") {
        return;
    }
    let dirs = tempfile::tempdir().unwrap();
    let base = dirs.path().join("base");
    let digest = base_layout(&base);
    let p = app(&base, &digest);
    let out = dirs.path().join("out");
    let oci = |tag: &str| format!("oci:{}:{tag}", out.display());
    // Image blobs only: the SBOM referrers' gc is sbom_referrer's test.

    p.build_ok(&["--no-sbom", "--output", &oci("keep")]);
    let kept = blobs_of(&out, "keep");
    for round in 0..4 {
        write_files(p.path(), &[("src/handler.sh", &format!("echo round {round}\n"))]);
        p.build_ok(&["--no-sbom", "--output", &oci("latest")]);
    }
    let live: BTreeSet<String> = blobs_of(&out, "latest").union(&kept).cloned().collect();
    assert_eq!(blob_count(&out), live.len(), "only blobs of the two tags remain");
    for d in &live {
        assert!(blob(&out, d).is_file(), "{d} is kept");
    }

    // --no-gc keeps the replaced image's blobs.
    write_files(p.path(), &[("src/handler.sh", "echo kept\n")]);
    p.build_ok(&["--no-sbom", "--no-gc", "--output", &oci("latest")]);
    assert!(blob_count(&out) > blobs_of(&out, "latest").union(&kept).count());

    // A gc'd layout is still whole for real tools.
    write_files(p.path(), &[("src/handler.sh", "echo last\n")]);
    p.build_ok(&["--no-sbom", "--output", &oci("latest")]);
    for tag in ["latest", "keep"] {
        let raw = run_ok(Command::new("skopeo").args(["inspect", "--raw", &oci(tag)]));
        assert_eq!(
            lambda_img::image::Digest::of(&raw.stdout).to_string(),
            index_entry(&out, tag)["digest"].as_str().unwrap()
        );
    }
    let bundle = dirs.path().join("bundle");
    run_ok(Command::new("umoci").args([
        "unpack",
        "--image",
        &format!("{}:latest", out.display()),
        bundle.to_str().unwrap(),
    ]));
    assert_eq!(
        fs::read_to_string(bundle.join("rootfs/var/task/handler.sh")).unwrap(),
        "echo last\n"
    );
}
