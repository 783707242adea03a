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
