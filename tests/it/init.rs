//! `lambda-img init`: every template is written, refuses to overwrite, fills
//! its placeholders, and builds: its base is a stand-in published to the test
//! registry under the official repository path, pinned with `lambda-img pin`.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::oci::{blob_path, config, layer_entries, manifest};
use crate::support::registry::TestRegistry;
use crate::support::{bin, lambda_img, require_tool, run_fail, run_ok, stand_in, stderr, stdout};

const RUNTIMES: [&str; 4] = ["python3.12", "nodejs20.x", "java21", "provided.al2023"];

/// Where cargo builds the Rust template and example, shared by the tests of
/// one run so `lambda_runtime` and its dependencies compile once.
pub fn rust_target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("lambda-runtime-target")
}

/// The official base's repository path for `runtime`, without the host.
pub fn base_repository(runtime: &str) -> &'static str {
    match runtime {
        "python3.12" => "lambda/python:3.12",
        "nodejs20.x" => "lambda/nodejs:20",
        "java21" => "lambda/java:21",
        "provided.al2023" => "lambda/provided:al2023",
        other => panic!("no base for {other}"),
    }
}

fn init(dir: &Path, args: &[&str]) -> std::process::Output {
    let cache = tempfile::tempdir().unwrap();
    run_ok(lambda_img(cache.path()).arg("init").args(args).arg(dir))
}

#[test]
fn init_writes_each_template_with_placeholders_filled_and_refuses_to_overwrite() {
    for runtime in RUNTIMES {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("my_fn");
        let out = init(&dir, &["--runtime", runtime]);
        let listed: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
        for expected in [
            "lambda-img.toml",
            "Makefile",
            ".dockerignore",
            "buildspec.yml",
            ".gitignore",
        ] {
            assert!(
                listed.contains(&dir.join(expected).display().to_string()),
                "{runtime}: {expected} not listed in {listed:?}"
            );
        }
        for path in &listed {
            let text = std::fs::read_to_string(path).unwrap();
            assert!(
                !text.contains("{{"),
                "{runtime}: unfilled placeholder in {path}:\n{text}"
            );
        }
        let toml = std::fs::read_to_string(dir.join("lambda-img.toml")).unwrap();
        assert!(
            toml.contains("name = \"my_fn\""),
            "name from the directory:\n{toml}"
        );
        assert!(toml.contains(&format!("runtime = \"{runtime}\"")));
        assert!(toml.contains("image = \"public.ecr.aws/lambda/"), "{toml}");
        let buildspec = std::fs::read_to_string(dir.join("buildspec.yml")).unwrap();
        for needle in [
            "aws ecr get-login-password",
            "--password-stdin",
            "CODEBUILD_RESOLVED_SOURCE_VERSION",
            "image-digest.txt",
            "exported-variables",
            "--metadata-file build.json",
            "cargo install --locked",
            "LAMBDA_IMG_VERSION: \"0.1.0\"",
            "/root/.lambda-img/**/*",
        ] {
            assert!(buildspec.contains(needle), "{runtime}: buildspec lacks {needle}");
        }

        // A second init refuses, names the files, and changes nothing.
        std::fs::write(dir.join("Makefile"), "mine\n").unwrap();
        let cache = tempfile::tempdir().unwrap();
        let refused = run_fail(
            lambda_img(cache.path())
                .args(["init", "--runtime", runtime])
                .arg(&dir),
        );
        let err = stderr(&refused);
        assert!(
            err.contains("lambda-img.toml") && err.contains("Makefile") && err.contains("--force"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(dir.join("Makefile")).unwrap(), "mine\n");
        // --force rewrites it.
        init(&dir, &["--runtime", runtime, "--force"]);
        assert_ne!(std::fs::read_to_string(dir.join("Makefile")).unwrap(), "mine\n");
    }
}

#[test]
fn init_arm64_targets_lambdas_arm_platform_in_every_installer() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        // lambda-img installs Python packages itself, for the manifest's architecture.
        ("python3.12", "lambda-img.toml", "[dependencies]"),
        ("nodejs20.x", "lambda-img.toml", "linux/arm64"),
        ("provided.al2023", "Makefile", "aarch64-unknown-linux-gnu"),
    ];
    for (runtime, file, needle) in cases {
        let dir = tmp.path().join(runtime);
        init(
            &dir,
            &["--runtime", runtime, "--arch", "arm64", "--name", "armed"],
        );
        let toml = std::fs::read_to_string(dir.join("lambda-img.toml")).unwrap();
        assert!(
            toml.contains("architecture = \"arm64\"") && toml.contains("name = \"armed\""),
            "{toml}"
        );
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        assert!(text.contains(needle), "{runtime}: {file} lacks {needle}:\n{text}");
    }
}

#[test]
fn init_refuses_an_invalid_function_name() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_fail(
        crate::support::command(bin())
            .args(["init", "--name", "no spaces"])
            .arg(tmp.path()),
    );
    assert!(stderr(&out).contains("--name"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "nothing written"
    );
}

/// Scaffolds `runtime`, runs `make prepare`, points the base at a stand-in,
/// runs `make image`; returns the project and its OCI layout.
fn build_template(runtime: &str, tools: &[&str]) -> Option<(tempfile::TempDir, PathBuf, Value)> {
    build_template_for(runtime, "x86_64", tools)
}

fn build_template_for(
    runtime: &str,
    arch: &str,
    tools: &[&str],
) -> Option<(tempfile::TempDir, PathBuf, Value)> {
    build_template_with(runtime, arch, tools, &|_| {})
}

/// As `build_template_for`, with `edit` run on the new project before it is built.
fn build_template_with(
    runtime: &str,
    arch: &str,
    tools: &[&str],
    edit: &dyn Fn(&Path),
) -> Option<(tempfile::TempDir, PathBuf, Value)> {
    for tool in ["make", "skopeo", "docker-registry"].iter().chain(tools) {
        if !require_tool(tool) {
            return None;
        }
    }
    let registry = TestRegistry::start()?;
    let base = base_repository(runtime);
    stand_in::publish_for(&registry, base, arch);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("proj");
    let cache = tmp.path().join("cache");
    init(&dir, &["--runtime", runtime, "--name", "tpl", "--arch", arch]);
    edit(&dir);
    let make = |target: &str| {
        let out_dir = tmp.path().join("out");
        let mut cmd = crate::support::command("make");
        cmd.current_dir(&dir)
            .arg("-s")
            .arg(target)
            .arg(format!("LAMBDA_IMG={}", bin().display()))
            .arg(format!("OUTPUT=oci:{}:v1", out_dir.display()))
            .env("LAMBDA_IMG_CACHE", &cache)
            .env("CARGO_TARGET_DIR", rust_target_dir())
            .env_remove("SOURCE_DATE_EPOCH");
        run_ok(&mut cmd)
    };
    // Only the runtimes that compile something have a prepare step.
    if std::fs::read_to_string(dir.join("Makefile"))
        .unwrap()
        .contains("\nprepare:")
    {
        make("prepare");
    }
    let pinned = stand_in::point_at(&dir.join("lambda-img.toml"), &registry, &cache);
    assert!(
        pinned.contains(&format!("{}/{base}@sha256:", registry.host())),
        "{pinned}"
    );
    let out = make("image");
    let digest = stdout(&out).trim().lines().last().unwrap_or("").to_string();
    assert!(
        digest.starts_with("sha256:"),
        "make image printed {:?}",
        stdout(&out)
    );
    let layout = tmp.path().join("out");
    let (m, _) = manifest(&layout, "v1");
    Some((tmp, layout, m))
}

fn layer_paths(layout: &Path, m: &Value, index: usize) -> Vec<(String, u32, Vec<u8>)> {
    let digest = m["layers"][index]["digest"].as_str().unwrap();
    layer_entries(&blob_path(layout, digest))
        .into_iter()
        .map(|e| (e.path, e.mode, e.data))
        .collect()
}

fn find<'a>(entries: &'a [(String, u32, Vec<u8>)], path: &str) -> &'a (String, u32, Vec<u8>) {
    entries
        .iter()
        .find(|(p, _, _)| p.trim_end_matches('/') == path)
        .unwrap_or_else(|| {
            panic!(
                "{path} not in layer: {:?}",
                entries.iter().map(|e| &e.0).collect::<Vec<_>>()
            )
        })
}

#[test]
fn python_template_builds_on_its_base() {
    // A package in requirements.txt: `lambda-img build` installs it itself.
    let add_package = |dir: &Path| {
        let req = dir.join("requirements.txt");
        let text = std::fs::read_to_string(&req).unwrap();
        std::fs::write(&req, format!("{text}six==1.16.0\n")).unwrap();
    };
    let Some((_tmp, layout, m)) = build_template_with("python3.12", "x86_64", &["pip3"], &add_package) else {
        return;
    };
    assert_eq!(
        m["layers"].as_array().unwrap().len(),
        3,
        "base, dependencies, code"
    );
    let deps = layer_paths(&layout, &m, 1);
    find(&deps, "var/task/six.py");
    let cfg = config(&layout, "v1");
    assert_eq!(cfg["config"]["Cmd"], serde_json::json!(["app.lambda_handler"]));
    assert_eq!(
        cfg["config"]["Entrypoint"],
        serde_json::json!(["/lambda-entrypoint.sh"])
    );
    let code = layer_paths(&layout, &m, 2);
    let app = find(&code, "var/task/app.py");
    assert!(String::from_utf8_lossy(&app.2).contains("def lambda_handler"));
}

#[test]
fn python_template_for_arm64_builds_an_arm64_image() {
    let Some((_tmp, layout, _m)) = build_template_for("python3.12", "arm64", &["pip3"]) else {
        return;
    };
    assert_eq!(config(&layout, "v1")["architecture"], "arm64");
}

#[test]
fn nodejs_template_builds_on_its_base() {
    // The starter as written has no dependencies, hence no dependency layer;
    // with one added to package.json and its lock (the node example's `ms`),
    // `lambda-img build` installs it with no table and no Makefile step.
    let add_package = |dir: &Path| {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/node");
        for file in ["package.json", "package-lock.json"] {
            let text = std::fs::read_to_string(example.join(file)).unwrap();
            std::fs::write(dir.join(file), text.replace("node-example", "tpl")).unwrap();
        }
    };
    let Some((_tmp, layout, m)) = build_template_with("nodejs20.x", "x86_64", &["npm"], &add_package) else {
        return;
    };
    assert_eq!(
        m["layers"].as_array().unwrap().len(),
        3,
        "base, node-modules, code"
    );
    assert_eq!(
        config(&layout, "v1")["config"]["Cmd"],
        serde_json::json!(["index.handler"])
    );
    find(&layer_paths(&layout, &m, 2), "var/task/index.mjs");
    find(&layer_paths(&layout, &m, 1), "var/task/node_modules/ms/index.js");
}

#[test]
fn java_template_builds_on_its_base() {
    let Some((_tmp, layout, m)) = build_template("java21", &["javac"]) else {
        return;
    };
    assert_eq!(m["layers"].as_array().unwrap().len(), 3, "base, jars, code");
    assert_eq!(
        config(&layout, "v1")["config"]["Cmd"],
        serde_json::json!(["example.Handler::handleRequest"])
    );
    let class = find(&layer_paths(&layout, &m, 2), "var/task/example/Handler.class")
        .2
        .clone();
    assert_eq!(&class[..4], &[0xCA, 0xFE, 0xBA, 0xBE], "a class file");
    // lib/README.md is not a jar: the jars layer holds only its directory.
    assert!(
        layer_paths(&layout, &m, 1)
            .iter()
            .all(|(p, _, _)| !p.ends_with(".md"))
    );
}

#[test]
fn provided_template_builds_a_static_bootstrap_on_its_base() {
    let Some((_tmp, layout, m)) = build_template("provided.al2023", &["cargo"]) else {
        return;
    };
    assert_eq!(m["layers"].as_array().unwrap().len(), 2, "base, code");
    let code = layer_paths(&layout, &m, 1);
    let (_, mode, data) = find(&code, "var/runtime/bootstrap");
    assert_eq!(&data[..4], b"\x7fELF");
    assert_eq!(mode & 0o777, 0o755);
}

/// `init` pins the base to the tag's digest of today when the registry
/// answers: here a mirror of ECR Public's `lambda/*` repositories (`--base-registry`,
/// as an ECR pull-through cache would be), holding a stand-in for nodejs:20,
/// the one template without a digest built in.
#[test]
fn init_pins_the_base_through_a_mirror() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let digest = stand_in::publish(&registry, "lambda/nodejs:20");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("proj");
    let out = init(
        &dir,
        &["--runtime", "nodejs20.x", "--base-registry", &registry.host()],
    );
    let text = std::fs::read_to_string(dir.join("lambda-img.toml")).unwrap();
    let want = format!("image = \"{}/lambda/nodejs:20@{digest}\"", registry.host());
    assert!(
        text.contains(&want),
        "{want} not in\n{text}\n--- stderr\n{}",
        stderr(&out)
    );

    // Unreachable (no mirror, no network to ECR here) or --no-pin: the
    // built-in reference stays, with a warning that says what to do.
    let offline = tmp.path().join("offline");
    let out = init(
        &offline,
        &[
            "--runtime",
            "python3.12",
            "--base-registry",
            "unresolvable.invalid",
        ],
    );
    assert!(stderr(&out).contains("lambda-img pin"), "{}", stderr(&out));
    let text = std::fs::read_to_string(offline.join("lambda-img.toml")).unwrap();
    assert!(
        text.contains("unresolvable.invalid/lambda/python:3.12@sha256:"),
        "{text}"
    );
}
