//! The CodeBuild buildspecs, run for real: the pre_build and build commands of
//! the YAML file (read with PyYAML, as CodeBuild would run them: one bash
//! shell, in order) against a registry demanding Basic auth like ECR does.
//! `aws` is a stub printing the password; `lambda-img` is the test's binary.
//! The install phase (a download or `cargo install`) is the one part not run.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::init::base_repository;
use crate::support::registry::TestRegistry;
use crate::support::{bin, lambda_img, require_tool, run_ok, stand_in, stdout};

pub(crate) const PASSWORD: &str = "ecr-password-from-aws-cli";
const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// Whether python3 can read YAML; skips loudly (fails in CI) otherwise.
pub(crate) fn have_yaml() -> bool {
    if !require_tool("python3") {
        return false;
    }
    let ok = Command::new("python3")
        .args(["-c", "import yaml"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    crate::support::require(ok, "python3 cannot import yaml (python3-yaml)")
}

/// Runs `buildspec`'s pre_build and build commands in `cwd` with `env`;
/// returns the values of its `exported-variables` afterwards.
pub(crate) fn run_buildspec(
    buildspec: &Path,
    cwd: &Path,
    env: &[(&str, String)],
) -> BTreeMap<String, String> {
    let work = tempfile::tempdir().unwrap();
    // A stub `aws` that answers `ecr get-login-password` and logs `lambda
    // update-function-code` and `codebuild start-build-batch` calls to
    // $AWS_CALLS, and `lambda-img`.
    let stubs = work.path().join("bin");
    std::fs::create_dir(&stubs).unwrap();
    let aws = stubs.join("aws");
    std::fs::write(
        &aws,
        format!(
            "#!/bin/sh\nif [ \"$1 $2\" = \"lambda update-function-code\" ] || [ \"$1 $2\" = \"codebuild start-build-batch\" ]; then echo \"$*\" >> \"${{AWS_CALLS:-/dev/null}}\"; exit 0; fi\n[ \"$1 $2\" = \"ecr get-login-password\" ] || exit 9\necho {PASSWORD}\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&aws, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink(bin(), stubs.join("lambda-img")).unwrap();

    let script = work.path().join("buildspec.sh");
    let extract = format!(
        r#"
import sys, yaml, shlex
spec = yaml.safe_load(open({path:?}))
lines = ["set -e"]
for phase in ("pre_build", "build"):
    lines += spec["phases"][phase]["commands"]
for name in spec["env"]["exported-variables"]:
    lines.append("echo EXPORTED %s=\"${{%s}}\"" % (name, name))
open({script:?}, "w").write("\n".join(lines) + "\n")
"#,
        path = buildspec.display().to_string(),
        script = script.display().to_string(),
    );
    run_ok(Command::new("python3").args(["-c", &extract]));

    let path = format!(
        "{}:{}",
        stubs.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = crate::support::command("bash");
    cmd.arg(&script)
        .current_dir(cwd)
        .env("PATH", path)
        .env("DOCKER_CONFIG", work.path().join("docker"))
        .env("AWS_REGION", "eu-west-1")
        .env("CODEBUILD_RESOLVED_SOURCE_VERSION", COMMIT)
        .env("CODEBUILD_SOURCE_REPO_URL", "https://example.com/repo.git")
        .env_remove("SOURCE_DATE_EPOCH");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = run_ok(&mut cmd);
    stdout(&out)
        .lines()
        .filter_map(|l| l.strip_prefix("EXPORTED "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A repository checkout at `dir/repo` holding a copy of examples/monorepo
/// (without its outputs); returns it and the example's own directory.
pub(crate) fn monorepo_checkout(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let root = dir.join("repo");
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/monorepo");
    run_ok(Command::new("mkdir").arg("-p").arg(root.join("examples")));
    run_ok(
        Command::new("cp")
            .arg("-r")
            .arg(&from)
            .arg(root.join("examples/monorepo")),
    );
    let _ = std::fs::remove_dir_all(root.join("examples/monorepo/out"));
    (root, from)
}

/// skopeo's view of the config of `reference`, with the test credentials.
pub(crate) fn pushed_config(reference: &str) -> serde_json::Value {
    let out = run_ok(Command::new("skopeo").args([
        "inspect",
        "--config",
        "--tls-verify=false",
        "--creds",
        &format!("AWS:{PASSWORD}"),
        &format!("docker://{reference}"),
    ]));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn template_buildspec_logs_in_pushes_labels_and_hands_over_the_digest() {
    if !have_yaml() || !require_tool("skopeo") || !require_tool("make") || !require_tool("jq") {
        return;
    }
    let Some(bases) = TestRegistry::start() else {
        return;
    };
    let Some(ecr) = TestRegistry::start_basic("AWS", PASSWORD) else {
        return;
    };
    stand_in::publish(&bases, base_repository("python3.12"));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("fn");
    let cache = tmp.path().join("cache");
    run_ok(
        lambda_img(&cache)
            .args(["init", "--runtime", "python3.12", "--name", "orders"])
            .arg(&dir),
    );
    stand_in::point_at(&dir.join("lambda-img.toml"), &bases, &cache);

    let repo = format!("{}/orders", ecr.host());
    let exported = run_buildspec(
        &dir.join("buildspec.yml"),
        &dir,
        &[
            ("REPOSITORY_URI", repo.clone()),
            ("LAMBDA_IMG_CACHE", cache.display().to_string()),
        ],
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("build.json")).unwrap()).unwrap();
    let digest = report["digest"].as_str().unwrap();
    assert_eq!(exported["IMAGE_DIGEST"], digest);
    assert_eq!(exported["IMAGE_URI"], format!("{repo}@{digest}"));
    assert_eq!(
        std::fs::read_to_string(dir.join("image-digest.txt"))
            .unwrap()
            .trim(),
        digest
    );
    // The registry holds it under the commit's tag, labelled with the commit.
    let cfg = pushed_config(&format!("{repo}:{COMMIT}"));
    assert_eq!(
        cfg["config"]["Labels"]["org.opencontainers.image.revision"],
        COMMIT
    );
    assert_eq!(
        cfg["config"]["Labels"]["org.opencontainers.image.source"],
        "https://example.com/repo.git"
    );
}

#[test]
fn monorepo_buildspec_pushes_every_function_and_exports_each_uri() {
    if !have_yaml() || !require_tool("skopeo") || !require_tool("make") || !require_tool("jq") {
        return;
    }
    let Some(bases) = TestRegistry::start() else {
        return;
    };
    let Some(ecr) = TestRegistry::start_basic("AWS", PASSWORD) else {
        return;
    };
    stand_in::publish(&bases, base_repository("python3.12"));
    // The buildspec runs from the repository root and builds examples/monorepo.
    let tmp = tempfile::tempdir().unwrap();
    let (root, from) = monorepo_checkout(tmp.path());
    let cache = tmp.path().join("cache");
    for f in ["orders", "payments", "notifications"] {
        let manifest = root.join(format!("examples/monorepo/functions/{f}/lambda-img.toml"));
        stand_in::point_at(&manifest, &bases, &cache);
    }
    let exported = run_buildspec(
        &from.join("buildspec.yml"),
        &root,
        &[
            ("REGISTRY", ecr.host()),
            ("LAMBDA_IMG_CACHE", cache.display().to_string()),
        ],
    );
    let listed = std::fs::read_to_string(root.join("image-digests.txt")).unwrap();
    for f in ["orders", "payments", "notifications"] {
        let var = format!("{}_IMAGE_URI", f.to_uppercase());
        let uri = &exported[&var];
        assert!(
            uri.starts_with(&format!("{}/{f}@sha256:", ecr.host())),
            "{var}={uri}"
        );
        assert!(listed.contains(&format!("{f} {uri}")), "{listed}");
        let cfg = pushed_config(uri);
        assert_eq!(
            cfg["config"]["Labels"]["org.opencontainers.image.revision"],
            COMMIT
        );
    }
}
