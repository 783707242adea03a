//! Every example in examples/ builds with its own Makefile (on a copy, so the
//! checkout stays clean); AWS bases are stand-ins published to the test
//! registry. The Rust example answers an invocation under podman through the
//! real `lambda_runtime` client; the monorepo shares one cache and rebuilds
//! only what changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use serde_json::Value;

use crate::init::{base_repository, rust_target_dir};
use crate::support::oci::{blob_path, config, layer_entries, manifest};
use crate::support::podman::{Container, Podman};
use crate::support::registry::TestRegistry;
use crate::support::runtime_api::RuntimeApi;
use crate::support::{bin, require_tool, run_ok, stand_in};

/// A copy of examples/`name` in a temp dir, without build products.
pub(crate) fn copy_example(name: &str) -> (tempfile::TempDir, PathBuf) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(name);
    let tmp = tempfile::tempdir().unwrap();
    let to = tmp.path().join(name);
    for entry in walkdir::WalkDir::new(&from).into_iter().filter_entry(|e| {
        let n = e.file_name().to_string_lossy();
        !(e.depth() > 0 && ["build", "out", "target", ".lambda-img-cache"].contains(&n.as_ref()))
    }) {
        let entry = entry.unwrap();
        let dest = to.join(entry.path().strip_prefix(&from).unwrap());
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
    (tmp, to)
}

/// `make -s TARGET` in `dir` with the test's binary and cache.
pub(crate) fn make(dir: &Path, cache: &Path, args: &[&str]) -> Output {
    let mut cmd = crate::support::command("make");
    cmd.current_dir(dir)
        .arg("-s")
        .args(args)
        .arg(format!("LAMBDA_IMG={}", bin().display()))
        .env("LAMBDA_IMG_CACHE", cache)
        .env("CARGO_TARGET_DIR", rust_target_dir())
        .env_remove("SOURCE_DATE_EPOCH");
    run_ok(&mut cmd)
}

fn tools(names: &[&str]) -> bool {
    names.iter().all(|t| require_tool(t))
}

/// Prepares and builds a single-function example on a stand-in base; returns
/// the OCI layout, its manifest and the temp dir holding both.
fn build_on_stand_in(name: &str, runtime: &str) -> Option<(tempfile::TempDir, PathBuf, Value)> {
    let registry = TestRegistry::start()?;
    stand_in::publish(&registry, base_repository(runtime));
    let (tmp, dir) = copy_example(name);
    let cache = tmp.path().join("cache");
    // Only the examples that compile something have a prepare step.
    if std::fs::read_to_string(dir.join("Makefile"))
        .unwrap()
        .contains("\nprepare:")
    {
        make(&dir, &cache, &["prepare"]);
    }
    stand_in::point_at(&dir.join("lambda-img.toml"), &registry, &cache);
    let layout = tmp.path().join("layout");
    make(
        &dir,
        &cache,
        &["image", &format!("OUTPUT=oci:{}:v1", layout.display())],
    );
    let (m, _) = manifest(&layout, "v1");
    Some((tmp, layout, m))
}

fn entries(layout: &Path, m: &Value, index: usize) -> BTreeMap<String, (u32, Vec<u8>)> {
    let digest = m["layers"][index]["digest"].as_str().unwrap();
    layer_entries(&blob_path(layout, digest))
        .into_iter()
        .map(|e| (e.path.trim_end_matches('/').to_string(), (e.mode, e.data)))
        .collect()
}

#[test]
fn python_example_installs_lambdas_compiled_wheel_in_its_own_layer() {
    if !tools(&["make", "pip3", "docker-registry"]) {
        return;
    }
    let Some((_tmp, layout, m)) = build_on_stand_in("python", "python3.12") else {
        return;
    };
    assert_eq!(m["layers"].as_array().unwrap().len(), 3, "base, packages, code");
    let packages = entries(&layout, &m, 1);
    // The manylinux wheel for CPython 3.12 on x86_64, whatever the host's Python is.
    let (_, so) = &packages["var/task/ujson.cpython-312-x86_64-linux-gnu.so"];
    assert_eq!(&so[..4], b"\x7fELF");
    assert_eq!(u16::from_le_bytes([so[18], so[19]]), 0x3E, "e_machine x86-64");
    assert!(entries(&layout, &m, 2).contains_key("var/task/app.py"));
    let cfg = config(&layout, "v1");
    assert_eq!(cfg["config"]["Cmd"], serde_json::json!(["app.lambda_handler"]));
    assert!(
        cfg["config"]["Env"]
            .as_array()
            .unwrap()
            .contains(&"LOG_LEVEL=info".into())
    );
}

#[test]
fn node_example_installs_production_modules_in_their_own_layer() {
    if !tools(&["make", "npm", "docker-registry"]) {
        return;
    }
    let Some((_tmp, layout, m)) = build_on_stand_in("node", "nodejs20.x") else {
        return;
    };
    assert!(entries(&layout, &m, 1).contains_key("var/task/node_modules/ms/index.js"));
    assert!(entries(&layout, &m, 2).contains_key("var/task/index.mjs"));
}

#[test]
fn java_example_puts_classes_in_task_root_and_jars_in_lib() {
    if !tools(&["make", "javac", "jar", "docker-registry"]) {
        return;
    }
    let Some((_tmp, layout, m)) = build_on_stand_in("java", "java21") else {
        return;
    };
    let jars = entries(&layout, &m, 1);
    let (_, jar) = &jars["var/task/lib/greeter.jar"];
    assert_eq!(&jar[..2], b"PK", "a zip");
    let classes = entries(&layout, &m, 2);
    assert!(
        classes.contains_key("var/task/example/Handler.class"),
        "{:?}",
        classes.keys()
    );
    assert!(
        !classes.keys().any(|k| k.ends_with(".jar")),
        "no jar in the code layer"
    );
    // The SBOM attached to the layout names the jar by its Maven coordinates.
    let listed = crate::support::run_ok(
        std::process::Command::new(crate::support::bin())
            .env("LAMBDA_IMG_CACHE", _tmp.path().join("cache"))
            .args(["inspect", "--sbom"])
            .arg(format!("oci:{}:v1", layout.display())),
    );
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("example/greeter ") && l.contains("pkg:maven/example/greeter@1.0.0")),
        "{listed}"
    );
}

/// The Rust example built by its Makefile (cargo, `lambda_runtime` 1.x, static),
/// loaded into podman and invoked through a Runtime API on 127.0.0.1.
#[test]
fn rust_example_answers_an_invocation_through_lambda_runtime() {
    if !tools(&["make", "cargo", "podman"]) {
        return;
    }
    let (tmp, dir) = copy_example("rust");
    let cache = tmp.path().join("cache");
    let archive = tmp.path().join("image.tar");
    make(
        &dir,
        &cache,
        &[
            "image",
            &format!("OUTPUT=docker-archive:{}:rust-example:test", archive.display()),
        ],
    );
    let podman = Podman::new();
    podman.run_ok(&["load", "-i", archive.to_str().unwrap()]);
    let api = RuntimeApi::start();
    let container = Container::start(&podman, "localhost/rust-example:test", &api, &[]);
    let answer = api
        .invoke(r#"{"name":"lambda"}"#, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}\n--- container logs\n{}", container.logs()));
    let body: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(body["greeting"], "hello, lambda");
    let id = body["request_id"].as_str().unwrap().to_string();
    assert!(
        id.starts_with("req-"),
        "the request id came from our Runtime API: {id}"
    );
    let again: Value = serde_json::from_str(&api.invoke("{}", Duration::from_secs(30)).unwrap()).unwrap();
    assert_eq!(again["greeting"], "hello, world");
    assert_ne!(again["request_id"].as_str().unwrap(), id);
}

/// One function's JSON report: image digest and built layers by name.
struct Report {
    digest: String,
    base: Vec<String>,
    built: BTreeMap<String, (String, bool)>,
}

fn read_report(path: &Path) -> Report {
    let v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let mut base = Vec::new();
    let mut built = BTreeMap::new();
    for l in v["layers"].as_array().unwrap() {
        let digest = l["digest"].as_str().unwrap().to_string();
        match l["origin"].as_str().unwrap() {
            "built" => {
                built.insert(
                    l["name"].as_str().unwrap().to_string(),
                    (digest, l["cached"].as_bool().unwrap()),
                );
            }
            _ => base.push(digest),
        }
    }
    Report {
        digest: v["digest"].as_str().unwrap().to_string(),
        base,
        built,
    }
}

#[test]
fn monorepo_builds_in_parallel_and_rebuilds_only_the_changed_functions_code() {
    if !tools(&["make", "docker-registry"]) {
        return;
    }
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    stand_in::publish(&registry, base_repository("python3.12"));
    let (tmp, root) = copy_example("monorepo");
    let cache = tmp.path().join("cache");
    let functions = ["orders", "payments", "notifications"];
    for f in functions {
        stand_in::point_at(
            &root.join("functions").join(f).join("lambda-img.toml"),
            &registry,
            &cache,
        );
    }
    let reports = |out: &Path| -> BTreeMap<&str, Report> {
        functions
            .iter()
            .map(|f| (*f, read_report(&out.join(format!("{f}.json")))))
            .collect()
    };

    let out = root.join("out");
    make(&root, &cache, &["-j3"]);
    let first = reports(&out);
    let shared = &first["orders"].built["shared"].0;
    for f in functions {
        let r = &first[f];
        assert_eq!(r.base, first["orders"].base, "{f}: the same base layers");
        assert_eq!(
            &r.built["shared"].0, shared,
            "{f}: the shared layer is byte-identical"
        );
        assert_eq!(r.built.len(), 2, "{f}: shared + code");
        // Each function's OCI layout is where the Makefile says.
        assert_eq!(
            manifest(&out.join(f), "latest").0["layers"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
    }

    // Change one function's code and build everything again.
    let app = root.join("functions/orders/src/app.py");
    let mut text = std::fs::read_to_string(&app).unwrap();
    text.push_str("\n# changed\n");
    std::fs::write(&app, text).unwrap();
    make(&root, &cache, &["-j3"]);
    let second = reports(&out);

    let orders = &second["orders"];
    assert!(!orders.built["code"].1, "orders: code layer rebuilt");
    assert_ne!(orders.built["code"].0, first["orders"].built["code"].0);
    assert!(orders.built["shared"].1, "orders: shared layer from the cache");
    assert_eq!(&orders.built["shared"].0, shared);
    assert_ne!(orders.digest, first["orders"].digest);
    for f in ["payments", "notifications"] {
        let r = &second[f];
        assert!(
            r.built.values().all(|(_, cached)| *cached),
            "{f}: nothing rebuilt: {:?}",
            r.built
        );
        assert_eq!(r.digest, first[f].digest, "{f}: same image");
    }
}
