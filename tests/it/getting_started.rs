//! README's "Getting started", followed as written in a fresh directory for
//! each runtime, offline behind a mirror: a stand-in base is published to a
//! real Distribution registry under the official repository path
//! (`lambda/python:3.12`), `init --registry-mirror public.ecr.aws=127.0.0.1:PORT`
//! pins the canonical name to the mirror's digest, and `make` runs
//! `lambda-img --registry-mirror ... build`. skopeo reads the result. For
//! Python the dependency layer holds a wheel installed from a local
//! find-links directory (`--no-index`), so nothing reaches the network.
//!
//! Also: `build --metadata-file` checked against what skopeo reads from the
//! registry, and the error an unreachable base gives.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::init::{base_repository, rust_target_dir};
use crate::support::oci::{blob_path, layer_entries};
use crate::support::registry::TestRegistry;
use crate::support::{bin, lambda_img, require_tool, run_fail, run_ok, stand_in, stderr, stdout};

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

fn skopeo_json(args: &[&str]) -> Value {
    let out = run_ok(Command::new("skopeo").args(args));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn layer_digests(manifest: &Value) -> Vec<String> {
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
        Command::new("make")
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

#[test]
fn metadata_file_matches_what_skopeo_reads_from_the_registry() {
    if !require_tool("skopeo") {
        return;
    }
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let base_digest = stand_in::publish(&registry, "lambda/provided:al2023");
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let dir = tmp.path().join("fn");
    crate::support::write_files(
        &dir,
        &[
            ("bootstrap", "#!/bin/sh\necho hi\n"),
            (
                "lambda-img.toml",
                &format!(
                    "[function]\nname = \"meta\"\nruntime = \"provided.al2023\"\narchitecture = \"x86_64\"\n[base]\nimage = \"public.ecr.aws/lambda/provided:al2023@{base_digest}\"\n[code]\nsources = [\"bootstrap\"]\ndestination = \"/var/runtime/\"\n"
                ),
            ),
        ],
    );
    std::fs::set_permissions(
        dir.join("bootstrap"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let meta = tmp.path().join("meta.json");
    std::fs::write(&meta, "a previous build's file").unwrap();
    let repo = format!("{}/meta", registry.host());
    let layout = tmp.path().join("layout");
    let out = run_ok(lambda_img(&cache).current_dir(&dir).args([
        "--registry-mirror",
        &format!("public.ecr.aws={}", registry.host()),
        "build",
        "--json",
        "--output",
        &format!("registry:{repo}:v1"),
        "--output",
        &format!("oci:{}:v1", layout.display()),
        "--metadata-file",
        meta.to_str().unwrap(),
    ]));
    let file: Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(file, printed, "--json prints the same report");
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".lambda-img-write"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    let remote = format!("docker://{repo}:v1");
    let digest = run_ok(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        "--format",
        "{{.Digest}}",
        &remote,
    ]));
    let digest = stdout(&digest).trim().to_string();
    assert_eq!(file["digest"], digest.as_str());
    assert_eq!(file["pushed"], serde_json::json!([format!("{repo}@{digest}")]));
    // The pushed reference names the image skopeo reads.
    let by_digest = run_ok(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        "--format",
        "{{.Digest}}",
        &format!("docker://{repo}@{digest}"),
    ]));
    assert_eq!(stdout(&by_digest).trim(), digest);
    assert_eq!(file["outputs"][0]["digest"], digest.as_str());
    // The layout holds the OCI form of the (Docker-typed) image: its own digest.
    let in_layout = run_ok(Command::new("skopeo").args([
        "inspect",
        "--format",
        "{{.Digest}}",
        &format!("oci:{}:v1", layout.display()),
    ]));
    assert_eq!(file["outputs"][1]["digest"], stdout(&in_layout).trim());
    let raw = skopeo_json(&["inspect", "--raw", "--tls-verify=false", &remote]);
    assert_eq!(file["config_digest"], raw["config"]["digest"]);
    assert_eq!(file["media_type"], raw["mediaType"]);
    let listed: Vec<&str> = file["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap())
        .collect();
    assert_eq!(listed, layer_digests(&raw));
    let config = skopeo_json(&["inspect", "--config", "--tls-verify=false", &remote]);
    assert_eq!(file["platform"]["os"], config["os"]);
    assert_eq!(file["platform"]["architecture"], config["architecture"]);
    assert_eq!(
        file["base"],
        serde_json::json!({ "name": "public.ecr.aws/lambda/provided:al2023", "digest": base_digest })
    );
    // The first layer is the stand-in's, fetched from the mirror.
    assert_eq!(file["layers"][0]["origin"], "base");

    // inspect and check take the mirror too, and name the base canonically.
    let canonical = format!("public.ecr.aws/lambda/provided:al2023@{base_digest}");
    let mirror_flag = format!("public.ecr.aws={}", registry.host());
    let inspected =
        run_ok(lambda_img(&cache).args(["--registry-mirror", &mirror_flag, "inspect", "--json", &canonical]));
    let inspected: Value = serde_json::from_slice(&inspected.stdout).unwrap();
    assert_eq!(inspected["layers"].as_array().unwrap().len(), 1, "{inspected}");
    let checked = run_ok(lambda_img(&cache).args(["--registry-mirror", &mirror_flag, "check", &canonical]));
    assert!(stdout(&checked).starts_with(&canonical), "{}", stdout(&checked));
}

/// `build --arch` over `function.architecture`: one manifest, both images.
#[test]
fn build_arch_overrides_the_manifest() {
    if !require_tool("skopeo") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let dir = tmp.path().join("fn");
    crate::support::write_files(
        &dir,
        &[
            ("root/hello", "hi\n"),
            (
                "lambda-img.toml",
                "[function]\nname = \"a\"\nruntime = \"none\"\narchitecture = \"x86_64\"\n[base]\nimage = \"scratch\"\n[code]\nsources = [\"root\"]\ndestination = \"/\"\n[image]\nentrypoint = [\"/hello\"]\n",
            ),
        ],
    );
    std::fs::set_permissions(
        dir.join("root/hello"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    for (flag, want) in [(None, "amd64"), (Some("arm64"), "arm64")] {
        let layout = tmp.path().join(want);
        let mut cmd = lambda_img(&cache);
        cmd.current_dir(&dir)
            .args(["build", "--output", &format!("oci:{}:v1", layout.display())]);
        if let Some(arch) = flag {
            cmd.args(["--arch", arch]);
        }
        run_ok(&mut cmd);
        let config = skopeo_json(&["inspect", "--config", &format!("oci:{}:v1", layout.display())]);
        assert_eq!(config["architecture"], want);
    }
    let settings =
        run_ok(
            lambda_img(&cache)
                .current_dir(&dir)
                .args(["build", "--arch", "arm64", "--print-settings"]),
        );
    let settings: Value = serde_json::from_slice(&settings.stdout).unwrap();
    assert_eq!(settings["architecture"], "arm64");
}

#[test]
fn an_unreachable_base_says_what_to_do_and_names_the_request() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let dir = tmp.path().join("fn");
    let digest = format!("sha256:{}", "a".repeat(64));
    crate::support::write_files(
        &dir,
        &[
            ("src/app.py", "def h(e, c):\n    return 1\n"),
            (
                "lambda-img.toml",
                &format!(
                    "[function]\nname = \"f\"\nruntime = \"python3.12\"\nhandler = \"app.h\"\n[base]\nimage = \"nothing-here.invalid/lambda/python:3.12@{digest}\"\n[code]\nsources = [\"src\"]\n"
                ),
            ),
        ],
    );
    let out = run_fail(lambda_img(&cache).current_dir(&dir).args(["-v", "build"]));
    let err = stderr(&out);
    for needle in [
        "--registry-mirror nothing-here.invalid=",
        "skopeo copy docker://nothing-here.invalid/lambda/python:3.12@",
        "oci:",
        "docker-archive:",
        // -v: the request that failed.
        &format!("failed request: GET https://nothing-here.invalid/v2/lambda/python/manifests/{digest}"),
    ] {
        assert!(err.contains(needle), "{needle:?} not in:\n{err}");
    }
    // Through a mirror that is down, the error names the mirror's request.
    let out = run_fail(lambda_img(&cache).current_dir(&dir).args([
        "-v",
        "--registry-mirror",
        "nothing-here.invalid=127.0.0.1:9/cache",
        "build",
    ]));
    let err = stderr(&out);
    assert!(
        err.contains("through the mirror, as 127.0.0.1:9/cache/lambda/python:3.12@")
            && err.contains("failed request: GET http://127.0.0.1:9/v2/cache/lambda/python/manifests/"),
        "{err}"
    );
}

/// A mirror under a PREFIX/ is asked for the same repository path and digest,
/// and what it sends is verified: a blob with one byte changed (the fault
/// proxy in front of the real registry) stops the build and writes nothing.
#[test]
fn a_mirror_under_a_prefix_is_verified_byte_for_byte() {
    use crate::support::fault_proxy::{Fault, FaultKind, FaultProxy};
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let base_digest = stand_in::publish(&registry, "cache/lambda/provided:al2023");
    let proxy = FaultProxy::start(registry.port);
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let dir = tmp.path().join("fn");
    crate::support::write_files(
        &dir,
        &[
            ("bootstrap", "#!/bin/sh\necho hi\n"),
            (
                "lambda-img.toml",
                &format!(
                    "[function]\nname = \"m\"\nruntime = \"provided.al2023\"\n[base]\nimage = \"public.ecr.aws/lambda/provided:al2023@{base_digest}\"\n[code]\nsources = [\"bootstrap\"]\ndestination = \"/var/runtime/\"\n"
                ),
            ),
        ],
    );
    std::fs::set_permissions(
        dir.join("bootstrap"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    proxy.add(Fault {
        method: "GET",
        path_contains: "/blobs/sha256:".into(),
        times: 100,
        kind: FaultKind::Corrupt,
    });
    let mirror = format!("public.ecr.aws={}/cache", proxy.host());
    let layout = tmp.path().join("out");
    let build = |cache: &Path| {
        let mut cmd = lambda_img(cache);
        cmd.current_dir(&dir).args([
            "--registry-mirror",
            &mirror,
            "build",
            "--output",
            &format!("oci:{}:v1", layout.display()),
        ]);
        cmd
    };
    let out = run_fail(&mut build(&cache));
    let err = stderr(&out);
    assert!(err.contains("digest") && err.contains("expected"), "{err}");
    assert!(!layout.exists(), "nothing written");
    assert!(
        proxy.count(
            "GET",
            &format!("/v2/cache/lambda/provided/manifests/{base_digest}")
        ) > 0,
        "the mirror was asked under its prefix, by digest"
    );

    // An honest mirror: the same build succeeds, and the base keeps its name.
    let honest = format!("public.ecr.aws={}/cache", registry.host());
    let out = run_ok(lambda_img(&cache).current_dir(&dir).args([
        "--registry-mirror",
        &honest,
        "build",
        "--json",
        "--output",
        &format!("oci:{}:v1", layout.display()),
    ]));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["base"]["name"], "public.ecr.aws/lambda/provided:al2023");
    assert_eq!(report["base"]["digest"], base_digest.as_str());
}

/// `pin --arch` over `function.architecture`: the tag names an index with an
/// x86_64 child only (pushed with `skopeo copy --all`), so pinning an x86_64
/// manifest works, and the same manifest pinned for arm64 is refused.
#[test]
fn pin_arch_overrides_the_manifest() {
    if !require_tool("skopeo") {
        return;
    }
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let child = stand_in::publish(&registry, "lambda/provided:single");
    let tmp = tempfile::tempdir().unwrap();
    // The child in a layout, then an index naming it, pushed as `:al2023`.
    let layout = tmp.path().join("layout");
    run_ok(Command::new("skopeo").args([
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}/lambda/provided@{child}", registry.host()),
        &format!("oci:{}:single", layout.display()),
    ]));
    let raw = skopeo_json(&["inspect", "--raw", &format!("oci:{}:single", layout.display())]);
    let index_path = layout.join("index.json");
    let mut index: Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let mut entry = index["manifests"][0].clone();
    entry.as_object_mut().unwrap().remove("annotations");
    entry["mediaType"] = raw["mediaType"].clone();
    entry["platform"] = serde_json::json!({"architecture": "amd64", "os": "linux"});
    let wrapper = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry],
    }))
    .unwrap();
    let wrapper_digest = lambda_img::image::Digest::of(&wrapper);
    let hex = wrapper_digest
        .to_string()
        .trim_start_matches("sha256:")
        .to_string();
    std::fs::write(layout.join("blobs/sha256").join(&hex), &wrapper).unwrap();
    index["manifests"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": wrapper_digest.to_string(),
            "size": wrapper.len(),
            "annotations": {"org.opencontainers.image.ref.name": "multi"},
        }));
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    run_ok(Command::new("skopeo").args([
        "copy",
        "--all",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &format!("oci:{}:multi", layout.display()),
        &format!("docker://{}/lambda/provided:al2023", registry.host()),
    ]));

    let cache = tmp.path().join("cache");
    let manifest = tmp.path().join("lambda-img.toml");
    let text = "[function]\nname = \"p\"\nruntime = \"provided.al2023\"\narchitecture = \"x86_64\"\n[base]\nimage = \"public.ecr.aws/lambda/provided:al2023\"\n";
    std::fs::write(&manifest, text).unwrap();
    let mirror = format!("public.ecr.aws={}", registry.host());
    let pin = |arch: Option<&str>| {
        let mut cmd = lambda_img(&cache);
        cmd.args(["--registry-mirror", &mirror, "pin", "--manifest"])
            .arg(&manifest);
        if let Some(a) = arch {
            cmd.args(["--arch", a]);
        }
        cmd
    };
    let refused = run_fail(&mut pin(Some("arm64")));
    assert!(
        stderr(&refused).contains("no image for linux/arm64"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(
        std::fs::read_to_string(&manifest).unwrap(),
        text,
        "nothing written"
    );
    run_ok(&mut pin(None));
    assert!(
        std::fs::read_to_string(&manifest).unwrap().contains(&format!(
            "image = \"public.ecr.aws/lambda/provided:al2023@{wrapper_digest}\""
        )),
        "pinned to the index, canonical name kept"
    );
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
