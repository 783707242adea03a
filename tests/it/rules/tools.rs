//! Images written by real tools (umoci, skopeo), read from disk the way a
//! user's image would be, then checked.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use lambda_img::cache::Cache;
use lambda_img::image::{Digest, MediaFamily, OCI_INDEX, OCI_MANIFEST};
use lambda_img::rules::{CheckContext, Finding, NodeKind, Severity, check_image, flatten, index_finding};

use super::fixture::{APP_PY, TarLayer, aws_like};
use super::layout::{Read, read_dir, read_oci, write_oci};
use crate::support::{require_tool, run_ok};

fn ctx() -> CheckContext {
    CheckContext {
        runtime: Some("python3.12".into()),
        ..CheckContext::default()
    }
}

fn ids(findings: &[Finding]) -> Vec<&'static str> {
    findings.iter().map(|f| f.rule_id).collect()
}

fn write(path: &Path, content: &[u8], mode: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn image_of(read: Read) -> lambda_img::image::Image {
    match read {
        Read::Image(i) => *i,
        Read::Index(mt) => panic!("expected an image, got an index {mt}"),
    }
}

/// A function image made with umoci: rootfs inserted at `/`, config set.
fn umoci_function(work: &Path) -> std::path::PathBuf {
    let layout = work.join("layout");
    let root = work.join("root");
    write(&root.join("var/task/app.py"), APP_PY, 0o644);
    write(
        &root.join("lambda-entrypoint.sh"),
        b"#!/bin/sh\nexec python3 -m awslambdaric \"$@\"\n",
        0o755,
    );
    // The script's interpreter (LI045 otherwise): an x86_64 ELF stand-in.
    write(&root.join("bin/sh"), &super::fixture::elf(62), 0o755);
    run_ok(Command::new("umoci").arg("init").arg("--layout").arg(&layout));
    let image = format!("{}:fn", layout.display());
    run_ok(Command::new("umoci").args(["new", "--image", &image]));
    run_ok(
        Command::new("umoci")
            .args(["insert", "--image", &image])
            .arg(&root)
            .arg("/"),
    );
    run_ok(Command::new("umoci").args([
        "config",
        "--image",
        &image,
        "--config.entrypoint",
        "/lambda-entrypoint.sh",
        "--config.cmd",
        "app.lambda_handler",
        "--config.workingdir",
        "/var/task",
    ]));
    layout
}

#[test]
fn umoci_image_is_clean_then_an_insert_below_var_task_breaks_lambdas_unpacker() {
    if !require_tool("umoci") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let cache = Cache::open(work.path().join("cache")).unwrap();
    let layout = umoci_function(work.path());
    let image = image_of(read_oci(&layout, "fn", &cache));
    let findings = check_image(&image, &ctx()).unwrap();
    assert!(findings.is_empty(), "{findings:#?}");

    // `umoci insert DIR /var/task` writes var/task/ without var/: the layer
    // Lambda's unpacker refuses. A private file under it, and a handler
    // module that does not define the function, are found too.
    let extra = work.path().join("extra");
    write(&extra.join("settings.json"), b"{}", 0o600);
    write(&extra.join("other.py"), b"def main(e, c):\n    pass\n", 0o644);
    let tag = format!("{}:fn", layout.display());
    run_ok(
        Command::new("umoci")
            .args(["insert", "--image", &tag])
            .arg(&extra)
            .arg("/var/task"),
    );
    let image = image_of(read_oci(&layout, "fn", &cache));
    let handler = CheckContext {
        handler: Some("other.handler".into()),
        ..ctx()
    };
    let findings = check_image(&image, &handler).unwrap();
    let mut got = ids(&findings);
    got.sort();
    assert_eq!(got, ["LI041", "LI050", "LI060"], "{findings:#?}");
    let orphan = &findings.iter().find(|f| f.rule_id == "LI041").unwrap().message;
    assert!(
        orphan.starts_with("layer 2 ") && orphan.contains("/var/task (no /var/ before it)"),
        "{orphan}"
    );
}

#[test]
fn skopeo_copies_to_oci_and_docker_v2s2_are_checked_alike() {
    if !require_tool("umoci") || !require_tool("skopeo") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let cache = Cache::open(work.path().join("cache")).unwrap();
    let layout = umoci_function(work.path());
    let src = format!("oci:{}:fn", layout.display());
    let copy = work.path().join("copy");
    run_ok(Command::new("skopeo").args(["copy", &src, &format!("oci:{}:fn", copy.display())]));
    let oci = image_of(read_oci(&copy, "fn", &cache));
    assert_eq!(oci.family(), MediaFamily::Oci);
    assert!(check_image(&oci, &ctx()).unwrap().is_empty());

    let docker_dir = work.path().join("docker");
    run_ok(Command::new("skopeo").args([
        "copy",
        "--format",
        "v2s2",
        &src,
        &format!("dir:{}", docker_dir.display()),
    ]));
    let docker = read_dir(&docker_dir, &cache);
    assert_eq!(docker.family(), MediaFamily::Docker);
    let findings = check_image(&docker, &ctx()).unwrap();
    assert!(findings.is_empty(), "{findings:#?}");
    // Same layers byte for byte, a different manifest.
    assert_eq!(
        docker.layers()[0].descriptor.digest,
        oci.layers()[0].descriptor.digest
    );
    assert_ne!(docker.manifest_digest(), oci.manifest_digest());
}

#[test]
fn an_index_copied_by_skopeo_gives_the_index_finding() {
    if !require_tool("umoci") || !require_tool("skopeo") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let cache = Cache::open(work.path().join("cache")).unwrap();
    let layout = umoci_function(work.path());
    // Wrap the function's manifest in a one-entry index tagged `multi`,
    // the shape BuildKit's provenance default gives a tag.
    let index_path = layout.join("index.json");
    let mut top: serde_json::Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let mut child = top["manifests"][0].clone();
    child["annotations"] = serde_json::Value::Null;
    child.as_object_mut().unwrap().remove("annotations");
    child["platform"] = serde_json::json!({"architecture": "amd64", "os": "linux"});
    assert_eq!(child["mediaType"], OCI_MANIFEST);
    let inner = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [child]
    }))
    .unwrap();
    let digest = Digest::of(&inner);
    std::fs::write(layout.join("blobs/sha256").join(digest.hex()), &inner).unwrap();
    top["manifests"].as_array_mut().unwrap().push(serde_json::json!({
        "mediaType": OCI_INDEX, "digest": digest.to_string(), "size": inner.len(),
        "annotations": {"org.opencontainers.image.ref.name": "multi"}
    }));
    std::fs::write(&index_path, serde_json::to_vec(&top).unwrap()).unwrap();

    let copy = work.path().join("copy");
    let dest = format!("oci:{}:multi", copy.display());
    run_ok(Command::new("skopeo").args(["copy", "--all", &format!("oci:{}:multi", layout.display()), &dest]));
    let raw = run_ok(Command::new("skopeo").args(["inspect", "--raw", &dest]));
    assert!(String::from_utf8_lossy(&raw.stdout).contains(OCI_INDEX));
    match read_oci(&copy, "multi", &cache) {
        Read::Index(media_type) => {
            let f = index_finding(&dest, &media_type);
            assert_eq!((f.rule_id, f.severity), ("LI001", Severity::Error));
            assert!(f.message.contains(&dest) && f.message.contains(OCI_INDEX), "{f}");
        }
        Read::Image(_) => panic!("skopeo --all should have copied an index"),
    }
}

/// Paths with kind and mode, as `umoci unpack` left them on disk.
fn unpacked(rootfs: &Path) -> BTreeMap<String, (char, u32)> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(rootfs).min_depth(1) {
        let e = e.unwrap();
        let meta = e.path().symlink_metadata().unwrap();
        let kind = if meta.is_dir() {
            'd'
        } else if meta.file_type().is_symlink() {
            'l'
        } else {
            'f'
        };
        let rel = e
            .path()
            .strip_prefix(rootfs)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let mode = if kind == 'l' {
            0
        } else {
            meta.permissions().mode() & 0o7777
        };
        out.insert(rel, (kind, mode));
    }
    out
}

#[test]
fn flattened_view_matches_what_umoci_unpacks() {
    if !require_tool("umoci") {
        return;
    }
    // Whiteouts, an opaque directory, a directory replaced by a file and
    // a re-moded directory, over the AWS-shaped base.
    let mut builder = aws_like()
        .layer(
            TarLayer::new()
                .file("opt/a/keep", 0o644, b"1")
                .file("opt/a/drop", 0o644, b"2")
                .file("opt/b/inner/x", 0o644, b"3")
                .file("opt/c/y", 0o644, b"4"),
        )
        .layer(
            TarLayer::new()
                .dir("opt/a", 0o755)
                .raw_file("opt/a/.wh.drop", 0o644, b"")
                .raw_file("opt/b", 0o644, b"now a file")
                .dir("opt/c", 0o711)
                .raw_file("opt/c/.wh..wh..opq", 0o644, b"")
                .raw_file("opt/c/z", 0o600, b"5"),
        );
    let image = builder.build();
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    write_oci(&image, &layout, "t");
    let bundle = work.path().join("bundle");
    run_ok(
        Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:t", layout.display()))
            .arg(&bundle),
    );
    let on_disk = unpacked(&bundle.join("rootfs"));
    let view = flatten(&image).unwrap();
    let ours: BTreeMap<String, (char, u32)> = view
        .iter()
        .map(|(p, n)| {
            let kind = match n.kind {
                NodeKind::Dir => 'd',
                NodeKind::Symlink => 'l',
                _ => 'f',
            };
            let mode = if kind == 'l' { 0 } else { n.mode & 0o7777 };
            (p.to_string(), (kind, mode))
        })
        .collect();
    assert_eq!(ours, on_disk);
    assert!(ours.contains_key("opt/a/keep") && !ours.contains_key("opt/a/drop"));
    assert_eq!(ours["opt/b"].0, 'f');
    assert!(!ours.contains_key("opt/c/y") && ours.contains_key("opt/c/z"));
    // And the rules see the same tree: /opt/c/z is private, /opt/c is 0711,
    // and /opt/b, a directory below, became a file without a whiteout.
    let findings = check_image(&image, &ctx()).unwrap();
    let mut got = ids(&findings);
    got.sort();
    assert_eq!(got, ["LI043", "LI050", "LI051"], "{findings:#?}");
}

#[test]
fn a_corrupt_layer_is_an_error_naming_the_layer() {
    let mut builder = aws_like();
    let image = builder.build();
    let lambda_img::image::BlobLocation::File(path) = &image.layers()[3].location;
    let mut bytes = std::fs::read(path).unwrap();
    let mid = bytes.len() / 2;
    bytes.truncate(mid);
    std::fs::write(path, bytes).unwrap();
    let err = check_image(&image, &ctx()).unwrap_err().to_string();
    assert!(
        err.contains(&image.layers()[3].descriptor.digest.to_string()),
        "{err}"
    );
    assert!(err.contains("fetch it again"), "{err}");
}
