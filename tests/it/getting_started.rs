//! README's "Getting started", followed as written in a fresh directory for
//! each runtime, offline behind a mirror: a stand-in base is published to a
//! real Distribution registry under the official repository path
//! (`lambda/python:3.12`), `init --registry-mirror public.ecr.aws=127.0.0.1:PORT`
//! pins the canonical name to the mirror's digest, and `make` runs
//! `lambda-img --registry-mirror ... build`. skopeo reads the result. For
//! Python the dependency layer holds a wheel installed from a local
//! find-links directory (`--no-index`), so nothing reaches the network.
//!
//! `build --metadata-file`, `--arch` and mirror faults are in `build_flags.rs`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::init::{base_repository, rust_target_dir};
use crate::support::oci::{blob_path, layer_entries};
use crate::support::registry::TestRegistry;
use crate::support::{bin, lambda_img, require_tool, run_ok, stand_in, stderr, stdout};

/// What following the README left behind.
struct Followed {
    _tmp: tempfile::TempDir,
    project: PathBuf,
    /// The OCI layout `make` wrote (out/ in the project).
    layout: PathBuf,
    /// `skopeo inspect --raw` and `--config` of it.
    manifest: Value,
    config: Value,
    /// The stand-in's manifest digest on the mirror.
    base_digest: String,
    base_layers: Vec<String>,
}

pub fn skopeo_json(args: &[&str]) -> Value {
    let out = run_ok(Command::new("skopeo").args(args));
    serde_json::from_slice(&out.stdout).unwrap()
}

pub fn layer_digests(manifest: &Value) -> Vec<String> {
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

/// `lambda-img init --runtime RUNTIME my-function`, `cd my-function`, `make`,
/// with the mirror given to both commands; `edit` runs between init and make.
fn follow(runtime: &str, tools: &[&str], edit: &dyn Fn(&Path, &Path)) -> Option<Followed> {
    for tool in ["make", "skopeo", "docker-registry"].iter().chain(tools) {
        if !require_tool(tool) {
            return None;
        }
    }
    let registry = TestRegistry::start()?;
    let repository = base_repository(runtime);
    let base_digest = stand_in::publish(&registry, repository);
    let mirror = format!("public.ecr.aws={}", registry.host());
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");

    // lambda-img init --runtime python3.12 my-function
    run_ok(lambda_img(&cache).current_dir(tmp.path()).args([
        "--registry-mirror",
        &mirror,
        "init",
        "--runtime",
        runtime,
        "my-function",
    ]));
    let project = tmp.path().join("my-function");
    let toml = std::fs::read_to_string(project.join("lambda-img.toml")).unwrap();
    // The canonical name, pinned to the digest the mirror has for the tag.
    let pinned = format!("image = \"public.ecr.aws/{repository}@{base_digest}\"");
    assert!(toml.contains(&pinned), "{pinned} not in\n{toml}");
    edit(&project, tmp.path());

    // cd my-function && make
    let out = run_ok(
        crate::support::command("make")
            .current_dir(&project)
            .arg("-s")
            .arg(format!(
                "LAMBDA_IMG={} --registry-mirror {mirror}",
                bin().display()
            ))
            .env("LAMBDA_IMG_CACHE", &cache)
            .env("CARGO_TARGET_DIR", rust_target_dir())
            .env_remove("SOURCE_DATE_EPOCH"),
    );
    let printed = stdout(&out).trim().lines().last().unwrap_or("").to_string();
    assert!(printed.starts_with("sha256:"), "make printed {:?}", stdout(&out));

    let layout = project.join("out");
    let target = format!("oci:{}:latest", layout.display());
    let manifest = skopeo_json(&["inspect", "--raw", &target]);
    let config = skopeo_json(&["inspect", "--config", &target]);
    let base = skopeo_json(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!(
            "docker://{}/{}@{base_digest}",
            registry.host(),
            repository.split(':').next().unwrap()
        ),
    ]);
    let base_layers = layer_digests(&base);
    assert_eq!(
        layer_digests(&manifest)[..base_layers.len()],
        base_layers[..],
        "the base layers are the mirror's, byte for byte"
    );
    Some(Followed {
        _tmp: tmp,
        project,
        layout,
        manifest,
        config,
        base_digest,
        base_layers,
    })
}

fn layer_files(f: &Followed, index: usize) -> Vec<String> {
    let digest = f.manifest["layers"][index]["digest"].as_str().unwrap();
    layer_entries(&blob_path(&f.layout, digest))
        .into_iter()
        .map(|e| e.path.trim_end_matches('/').to_string())
        .collect()
}

/// A pure-Python wheel (`hello-wheel` 1.0), written with Python's zipfile
/// with a correct RECORD, so pip installs it like one from PyPI.
fn write_wheel(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let script = r#"
import base64, hashlib, sys, zipfile
files = {
    "hello_wheel/__init__.py": b"GREETING = 'hello from a wheel'\n",
    "hello_wheel-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: hello-wheel\nVersion: 1.0\n",
    "hello_wheel-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: lambda-img-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = ""
for name, data in files.items():
    h = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    record += f"{name},sha256={h},{len(data)}\n"
record += "hello_wheel-1.0.dist-info/RECORD,,\n"
with zipfile.ZipFile(sys.argv[1] + "/hello_wheel-1.0-py3-none-any.whl", "w") as z:
    for name, data in files.items():
        z.writestr(name, data)
    z.writestr("hello_wheel-1.0.dist-info/RECORD", record)
"#;
    run_ok(Command::new("python3").args(["-c", script]).arg(dir));
}

#[test]
fn getting_started_python_offline_behind_a_mirror_installs_the_wheel() {
    if !require_tool("python3") {
        return;
    }
    // The README's next step: a package in requirements.txt. Here it comes
    // from a local directory, so the build needs no network at all.
    let add_wheel = |project: &Path, tmp: &Path| {
        let wheels = tmp.join("wheels");
        write_wheel(&wheels);
        std::fs::write(
            project.join("requirements.txt"),
            format!(
                "--no-index\n--find-links {}\nhello-wheel==1.0\n",
                wheels.display()
            ),
        )
        .unwrap();
    };
    let Some(f) = follow("python3.12", &["pip3"], &add_wheel) else {
        return;
    };
    let layers = f.manifest["layers"].as_array().unwrap().len();
    assert_eq!(layers, f.base_layers.len() + 2, "base, dependencies, code");
    let deps = layer_files(&f, f.base_layers.len());
    for path in [
        "var/task/hello_wheel/__init__.py",
        "var/task/hello_wheel-1.0.dist-info/METADATA",
    ] {
        assert!(
            deps.contains(&path.to_string()),
            "{path} not in the dependency layer: {deps:?}"
        );
    }
    assert!(layer_files(&f, layers - 1).contains(&"var/task/app.py".to_string()));
    assert_eq!(
        f.config["config"]["Cmd"],
        serde_json::json!(["app.lambda_handler"])
    );
    assert_eq!(f.config["architecture"], "amd64");
}

#[test]
fn getting_started_nodejs_offline_behind_a_mirror_ships_a_lockfile() {
    let Some(f) = follow("nodejs20.x", &["npm"], &|_, _| {}) else {
        return;
    };
    let lock: Value =
        serde_json::from_slice(&std::fs::read(f.project.join("package-lock.json")).unwrap()).unwrap();
    assert_eq!(lock["lockfileVersion"], 3);
    assert_eq!(lock["packages"][""]["name"], "my-function");
    // The starter has no dependencies yet: base and code only.
    assert_eq!(
        f.manifest["layers"].as_array().unwrap().len(),
        f.base_layers.len() + 1
    );
    assert!(layer_files(&f, f.base_layers.len()).contains(&"var/task/index.mjs".to_string()));
    assert_eq!(f.config["config"]["Cmd"], serde_json::json!(["index.handler"]));
}

#[test]
fn getting_started_java_offline_behind_a_mirror_compiles_and_builds() {
    let Some(f) = follow("java21", &["javac"], &|_, _| {}) else {
        return;
    };
    let code = layer_files(&f, f.manifest["layers"].as_array().unwrap().len() - 1);
    assert!(
        code.contains(&"var/task/example/Handler.class".to_string()),
        "{code:?}"
    );
    assert_eq!(
        f.config["config"]["Cmd"],
        serde_json::json!(["example.Handler::handleRequest"])
    );
}

#[test]
fn getting_started_provided_offline_behind_a_mirror_builds_a_bootstrap() {
    let Some(f) = follow("provided.al2023", &["cargo"], &|_, _| {}) else {
        return;
    };
    assert_eq!(
        f.manifest["layers"].as_array().unwrap().len(),
        f.base_layers.len() + 1
    );
    assert!(layer_files(&f, f.base_layers.len()).contains(&"var/runtime/bootstrap".to_string()));
    assert!(!f.base_digest.is_empty());
}

/// Without npm on PATH, `init` writes the template's lockfile, and it is the
/// same bytes npm writes for the starter (so `npm ci` accepts either).
#[test]
fn init_without_npm_writes_the_lock_npm_would() {
    if !require_tool("npm") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let with_npm = tmp.path().join("a/my-function");
    let without = tmp.path().join("b/my-function");
    let out = run_ok(
        lambda_img(&cache)
            .args(["init", "--no-pin", "--runtime", "nodejs20.x"])
            .arg(&with_npm),
    );
    assert!(stderr(&out).contains("written by npm"), "{}", stderr(&out));
    let out = run_ok(
        lambda_img(&cache)
            .env("PATH", "/nonexistent")
            .args(["init", "--no-pin", "--runtime", "nodejs20.x"])
            .arg(&without),
    );
    assert!(stderr(&out).contains("npm is not on PATH"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(without.join("package-lock.json")).unwrap(),
        std::fs::read_to_string(with_npm.join("package-lock.json")).unwrap()
    );
}
