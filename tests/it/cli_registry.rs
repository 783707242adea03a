//! The registry through the command line, as users drive it: push a base,
//! refuse an unpinned base, `pin`, build and push an app on it (base layers
//! mounted, not re-uploaded), re-push after a code change, `check` and
//! `inspect` of the pushed image.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::project::{Project, scratch_manifest};
use crate::support::registry::TestRegistry;
use crate::support::{require_tool, run_ok, stderr, stdout};

/// A project whose commands see no Docker config from the machine.
fn project(manifest: &str, files: &[(&str, &str)], docker_config: &Path) -> Project {
    let p = Project::new(manifest, files);
    std::fs::create_dir_all(docker_config).unwrap();
    p
}

fn cmd(p: &Project, docker_config: &Path, args: &[&str]) -> Command {
    let mut c = p.cmd(args);
    c.env("DOCKER_CONFIG", docker_config);
    c
}

fn blob_actions(report: &Value) -> Vec<(String, String)> {
    report["outputs"][0]["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["kind"].as_str().unwrap().to_string(),
                b["action"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn push_pin_build_and_repush_through_the_cli() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    if !require_tool("busybox") || !require_tool("skopeo") {
        return;
    }
    let host = registry.host();
    let docker_config = tempfile::tempdir().unwrap();
    let dc = docker_config.path();

    // A base image, pushed by lambda-img itself.
    let base = project(&scratch_manifest(""), &[("data/x.txt", "x\n")], dc);
    base.copy_in(Path::new("/bin/busybox"), "busybox");
    let out = run_ok(&mut cmd(
        &base,
        dc,
        &["build", "--output", &format!("registry:{host}/lambda/base:1")],
    ));
    let pushed = stdout(&out).trim().to_string();
    assert!(
        pushed.starts_with(&format!("{host}/lambda/base:1@sha256:")),
        "stdout is REF@digest: {pushed}"
    );

    // An app on the unpinned tag is refused, with the digest to pin.
    let manifest = format!(
        "[function]\nname = \"app\"\nruntime = \"provided.al2023\"\n\n[base]\n# the base everyone shares\nimage = \"{host}/lambda/base:1\"  # pinned by lambda-img pin\n\n[code]\nsources = [\"src\"]\n"
    );
    let app = project(&manifest, &[("src/handler.sh", "echo one\n")], dc);
    let out = crate::support::run_fail(&mut cmd(&app, dc, &["build"]));
    let digest = pushed.split('@').nth(1).unwrap();
    assert!(
        stderr(&out).contains("not pinned") && stderr(&out).contains(digest),
        "{}",
        stderr(&out)
    );

    // --allow-unpinned builds it anyway (not reproducible, but sometimes wanted).
    run_ok(&mut cmd(&app, dc, &["build", "--allow-unpinned"]));

    // `pin` writes the digest and keeps the comments.
    run_ok(&mut cmd(&app, dc, &["pin"]));
    let text = std::fs::read_to_string(app.join("lambda-img.toml")).unwrap();
    assert!(
        text.contains(&format!(
            "image = \"{host}/lambda/base:1@{digest}\"  # pinned by lambda-img pin"
        )),
        "{text}"
    );
    assert!(text.contains("# the base everyone shares"));

    // Build and push: the base layer is mounted from the base repository.
    let target = format!("registry:{host}/lambda/app:1");
    let out = run_ok(&mut cmd(&app, dc, &["build", "--json", "--output", &target]));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let actions = blob_actions(&report);
    assert_eq!(
        actions[0],
        ("layer".to_string(), "mounted".to_string()),
        "{actions:?}"
    );
    assert_eq!(
        actions[1],
        ("layer".to_string(), "uploaded".to_string()),
        "{actions:?}"
    );
    let raw = run_ok(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{host}/lambda/app:1"),
    ]));
    assert_eq!(
        format!("sha256:{}", sha256_hex(&raw.stdout)),
        report["digest"].as_str().unwrap(),
        "the registry holds exactly the manifest bytes we hashed"
    );

    // A code change re-uploads only the code layer and the config.
    std::fs::write(app.join("src/handler.sh"), "echo two\n").unwrap();
    let out = run_ok(&mut cmd(&app, dc, &["build", "--json", "--output", &target]));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let uploaded: Vec<_> = blob_actions(&report)
        .into_iter()
        .filter(|(_, a)| a == "uploaded")
        .collect();
    assert_eq!(
        uploaded,
        [
            ("layer".to_string(), "uploaded".to_string()),
            ("config".to_string(), "uploaded".to_string())
        ]
    );

    // check and inspect read the pushed image like any other source.
    let out = run_ok(&mut cmd(
        &app,
        dc,
        &["check", "--json", &format!("{host}/lambda/app:1")],
    ));
    let check: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(check["manifest_digest"], report["digest"]);
    let out = run_ok(&mut cmd(
        &app,
        dc,
        &["inspect", "--json", &format!("{host}/lambda/app:1")],
    ));
    let inspect: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(inspect["layers"].as_array().unwrap().len(), 2);
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// `--format docker` writes a Docker V2.2 manifest with Docker media types
/// only (never mixed), and the registry keeps exactly those bytes.
#[test]
fn docker_format_push_has_only_docker_media_types() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    if !require_tool("busybox") || !require_tool("skopeo") {
        return;
    }
    let host = registry.host();
    let docker_config = tempfile::tempdir().unwrap();
    let p = project(&scratch_manifest(""), &[("x.txt", "x\n")], docker_config.path());
    p.copy_in(Path::new("/bin/busybox"), "busybox");
    let out = run_ok(&mut cmd(
        &p,
        docker_config.path(),
        &[
            "build",
            "--format",
            "docker",
            "--json",
            "--output",
            &format!("registry:{host}/fmt/app:1"),
        ],
    ));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let raw = run_ok(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{host}/fmt/app:1"),
    ]));
    assert_eq!(
        format!("sha256:{}", sha256_hex(&raw.stdout)),
        report["digest"].as_str().unwrap()
    );
    let m: Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(
        m["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.docker.container.image.v1+json"
    );
    for layer in m["layers"].as_array().unwrap() {
        assert_eq!(
            layer["mediaType"],
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
        );
    }
}
