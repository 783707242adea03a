//! `lambda-img check` through the command line: findings, exit status and
//! the index rule on images made by other tools and by hand.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::project::{Project, scratch_manifest};
use crate::support::{require_tool, run_ok, stdout};

#[test]
fn check_reports_umoci_layers_without_parent_directories() {
    if !require_tool("umoci") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let content = dir.path().join("content");
    std::fs::create_dir_all(&content).unwrap();
    std::fs::write(content.join("app.py"), "def handler(e, c):\n    return 1\n").unwrap();
    run_ok(Command::new("umoci").args(["init", "--layout", layout.to_str().unwrap()]));
    run_ok(Command::new("umoci").args(["new", "--image", &format!("{}:t", layout.display())]));
    run_ok(Command::new("umoci").args([
        "insert",
        "--image",
        &format!("{}:t", layout.display()),
        content.to_str().unwrap(),
        "/var/task",
    ]));
    let cache = tempfile::tempdir().unwrap();
    let out = crate::support::run_fail(
        crate::support::lambda_img(cache.path()).args(["check", &format!("oci:{}:t", layout.display())]),
    );
    assert_eq!(out.status.code(), Some(1), "errors give exit status 1");
    let text = stdout(&out);
    assert!(
        text.contains("LI041"),
        "missing parent directory reported: {text}"
    );
}

/// A tag that names an index (what BuildKit's provenance attestations make of
/// a tag) is refused by Lambda even when the right child exists: `check`
/// says so, and still checks the child.
#[test]
fn check_refuses_a_tag_that_names_an_index() {
    if !require_tool("busybox") {
        return;
    }
    let p = Project::new(&scratch_manifest(""), &[("x.txt", "x\n")]);
    p.copy_in(Path::new("/bin/busybox"), "busybox");
    let layout = p.join("layout");
    p.build_ok(&["--output", &format!("oci:{}:single", layout.display())]);

    // Wrap the image in an index under a second tag, as `docker buildx` would.
    let index_path = layout.join("index.json");
    let mut index: Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let mut child = index["manifests"][0].clone();
    child.as_object_mut().unwrap().remove("annotations");
    child["platform"] = serde_json::json!({"architecture": "amd64", "os": "linux"});
    let wrapper = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [child],
    }))
    .unwrap();
    let hex = sha256_hex(&wrapper);
    std::fs::write(layout.join("blobs/sha256").join(&hex), &wrapper).unwrap();
    index["manifests"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": format!("sha256:{hex}"),
            "size": wrapper.len(),
            "annotations": {"org.opencontainers.image.ref.name": "multi"},
        }));
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();

    let single = run_ok(&mut p.cmd(&["check", &format!("oci:{}:single", layout.display())]));
    assert!(!stdout(&single).contains("LI001"), "{}", stdout(&single));
    let out = crate::support::run_fail(&mut p.cmd(&[
        "check",
        "--json",
        &format!("oci:{}:multi", layout.display()),
    ]));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["LI001"], "only the index is wrong: {report}");
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// `inspect --diff` names the layers two builds share and the ones that changed.
#[test]
fn inspect_diff_shows_the_changed_code_layer() {
    let manifest = "[function]\nname = \"f\"\nruntime = \"provided.al2023\"\n\n[base]\nimage = \"scratch\"\n\n[[layer]]\nname = \"assets\"\nsources = [\"assets\"]\ndestination = \"/opt/assets\"\n\n[code]\nsources = [\"src\"]\n\n[image]\nentrypoint = [\"/var/task/run.sh\"]\n";
    let p = Project::new(manifest, &[("assets/a.txt", "asset\n"), ("src/run.sh", "one\n")]);
    std::fs::set_permissions(
        p.join("src/run.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let layout = p.join("out");
    p.build_ok(&["--output", &format!("oci:{}:a", layout.display())]);
    std::fs::write(p.join("src/run.sh"), "two\n").unwrap();
    p.build_ok(&["--output", &format!("oci:{}:b", layout.display())]);

    let a = format!("oci:{}:a", layout.display());
    let b = format!("oci:{}:b", layout.display());
    let out = run_ok(&mut p.cmd(&["inspect", "--json", &a, "--diff", &b]));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let diff = &v["diff"];
    assert_eq!(
        diff["shared"].as_array().unwrap().len(),
        1,
        "the assets layer: {diff}"
    );
    assert_eq!(diff["only_a"].as_array().unwrap().len(), 1, "{diff}");
    assert_eq!(diff["only_b"].as_array().unwrap().len(), 1, "{diff}");
    let table = stdout(&run_ok(&mut p.cmd(&["inspect", &a, "--diff", &b])));
    assert!(!table.trim().is_empty());
}

/// `check` verifies a layer on the read that scans it (one inflation, not
/// two): a config that misstates the layer's diff_id is still refused, on the
/// first check and on a second one that finds the blob's facts cached.
#[test]
fn check_refuses_a_diff_id_the_layer_does_not_have_on_its_one_read() {
    use crate::support::crafted::{gzip, one_layer_manifest, put_blob, raw_tar, sha256_hex, write_index};
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let layer = gzip(&raw_tar(&[
        ("var/", b""),
        ("var/task/", b""),
        ("var/task/app", b"#!/bin/sh\n"),
    ]));
    let layer_digest = put_blob(&layout, &layer);
    let wrong = format!("sha256:{}", sha256_hex(b"some other tar"));
    let manifest = one_layer_manifest(
        &layout,
        serde_json::json!({"Entrypoint": ["/var/task/app"]}),
        &layer,
        &layer_digest,
        &wrong,
    );
    write_index(&layout, vec![manifest]);
    let cache = tempfile::tempdir().unwrap();
    for attempt in ["first", "cached"] {
        let out = crate::support::lambda_img(cache.path())
            .args(["check", &format!("oci:{}", layout.display())])
            .output()
            .unwrap();
        let err = crate::support::stderr(&out);
        assert!(!out.status.success(), "{attempt} check refused the image");
        assert!(
            err.contains("uncompresses to") && err.contains(&wrong) && err.contains(&layer_digest),
            "{attempt} check names the layer and both diff_ids: {err}"
        );
    }
}

/// A blob whose bytes are not what its digest says is refused with the
/// source's own error (as `build` would refuse it), whether the bytes still
/// inflate (the scan read them and the digests differ) or not (the walk
/// failed and the source's verification names the blob it cannot read).
#[test]
fn check_refuses_a_blob_that_is_not_what_its_digest_says() {
    use crate::support::crafted::{gzip, image_in_layout, raw_tar, write_index};
    for broken in ["other valid gzip", "corrupt gzip"] {
        let dir = tempfile::tempdir().unwrap();
        let layout = dir.path().join("layout");
        let files: &[(&str, &[u8])] = &[
            ("var/", b""),
            ("var/task/", b""),
            ("var/task/app", b"#!/bin/sh\necho a\n"),
        ];
        let manifest = image_in_layout(&layout, files);
        write_index(&layout, vec![manifest.clone()]);
        let manifest_bytes = std::fs::read(
            layout
                .join("blobs/sha256")
                .join(&manifest["digest"].as_str().unwrap()[7..]),
        )
        .unwrap();
        let view: Value = serde_json::from_slice(&manifest_bytes).unwrap();
        let layer_digest = view["layers"][0]["digest"].as_str().unwrap().to_string();
        let blob = layout.join("blobs/sha256").join(&layer_digest[7..]);
        let mut bytes = std::fs::read(&blob).unwrap();
        match broken {
            "other valid gzip" => {
                let other = gzip(&raw_tar(&[
                    ("var/", b""),
                    ("var/task/", b""),
                    ("var/task/app", b"#!/bin/sh\necho b\n"),
                ]));
                assert_eq!(
                    other.len(),
                    bytes.len(),
                    "same size, so only the digest tells them apart"
                );
                bytes = other;
            }
            _ => {
                let mid = bytes.len() / 2;
                bytes[mid] ^= 0xff;
                bytes[mid + 1] ^= 0xff;
            }
        }
        std::fs::write(&blob, &bytes).unwrap();
        let cache = tempfile::tempdir().unwrap();
        let out = crate::support::lambda_img(cache.path())
            .args(["check", &format!("oci:{}", layout.display())])
            .output()
            .unwrap();
        let err = crate::support::stderr(&out);
        assert!(!out.status.success(), "{broken}: refused");
        // The source's own words: a digest that differs, or a blob it cannot read.
        let said = match broken {
            "other valid gzip" => err.contains("does not match its reference") && err.contains(&layer_digest),
            _ => err.contains("cannot read") && err.contains(&layer_digest[7..]),
        };
        assert!(said, "{broken}: the blob named and what is wrong with it: {err}");
    }
}

/// The size limit counts the layers' real uncompressed sizes (learned on the
/// scan's own read of a umoci layer, then from the cache), not placeholders.
#[test]
fn check_counts_the_uncompressed_size_it_read_against_the_limit() {
    if !require_tool("umoci") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let content = dir.path().join("content");
    std::fs::create_dir_all(&content).unwrap();
    std::fs::write(content.join("app.py"), "x = 1\n".repeat(5000)).unwrap();
    let image = format!("{}:t", layout.display());
    run_ok(Command::new("umoci").args(["init", "--layout", layout.to_str().unwrap()]));
    run_ok(Command::new("umoci").args(["new", "--image", &image]));
    run_ok(Command::new("umoci").args([
        "insert",
        "--image",
        &image,
        content.to_str().unwrap(),
        "/var/task",
    ]));
    // The uncompressed size, counted by gzip itself.
    let index: Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let blobs = layout.join("blobs/sha256");
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(blobs.join(&index["manifests"][0]["digest"].as_str().unwrap()[7..])).unwrap(),
    )
    .unwrap();
    let layer = blobs.join(&manifest["layers"][0]["digest"].as_str().unwrap()[7..]);
    let unpacked = run_ok(Command::new("gzip").arg("-dc").arg(&layer));
    let total = unpacked.stdout.len();
    let cache = tempfile::tempdir().unwrap();
    for attempt in ["first", "cached"] {
        let out = crate::support::run_fail(crate::support::lambda_img(cache.path()).args([
            "check",
            "--max-uncompressed-size",
            "1000",
            &format!("oci:{image}"),
        ]));
        let text = stdout(&out);
        assert!(
            text.contains(&format!("({total} bytes), over the limit")),
            "{attempt} check counts the {total} bytes gzip counts: {text}"
        );
    }
}
