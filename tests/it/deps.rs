//! Dependency layers: real pip and npm installing for the function's platform
//! (their registries are reachable), read back from the OCI layout.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::support::oci::{Entry, blob_path, layer_entries, manifest};
use crate::support::project::Project;
use crate::support::{require_tool, stderr};

/// An interpreter stand-in that is never run. Not a `#!` script: on scratch
/// its interpreter would be missing (LI045).
/// An interpreter stand-in that is never run (the rules want the entrypoint).
pub(crate) const FAKE_INTERPRETER: &str = "stand-in interpreter, never run\n";

const REQUIREMENTS: &str = "markupsafe==3.0.2\nsix==1.17.0\n";

/// The manifest of a Python function `name` on scratch whose interpreter is
/// `fake/python3` (a stand-in), with `deps_table` as its `[dependencies]` body.
pub(crate) fn stand_in_python_manifest(name: &str, arch: &str, deps_table: &str) -> String {
    format!(
        r#"[function]
name = "{name}"
runtime = "python3.12"
handler = "app.handler"
architecture = "{arch}"

[base]
image = "scratch"

[[layer]]
name = "interpreter"
sources = ["fake/python3"]
destination = "/usr/bin/python3"
mode = "0755"

[code]
exclude = ["fake/**", "requirements.txt"]

[image]
entrypoint = ["/usr/bin/python3", "-m", "awslambdaric"]

[dependencies]
{deps_table}
"#
    )
}

/// A Python function on scratch with a stand-in interpreter (the rules want
/// the entrypoint to exist; these tests never run the image).
fn python_project(arch: &str, requirements: &str, deps: &str) -> Option<Project> {
    if !require_tool("python3") {
        return None;
    }
    let manifest = stand_in_python_manifest("deps", arch, deps);
    Some(Project::new(
        &manifest,
        &[
            ("requirements.txt", requirements),
            (
                "app.py",
                "import markupsafe\n\ndef handler(event, context):\n    return str(markupsafe.escape(event))\n",
            ),
            ("fake/python3", FAKE_INTERPRETER),
        ],
    ))
}

/// Builds into `out` and returns the JSON report.
fn build_json(p: &Project, out: &Path) -> Value {
    let o = p.build_ok(&["--json", "--output", &format!("oci:{}", out.display())]);
    serde_json::from_slice(&o.stdout).unwrap()
}

/// The report entries of layers whose name starts with `dependencies`.
fn dep_layers(report: &Value) -> Vec<Value> {
    report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["name"].as_str().is_some_and(|n| n.starts_with("dependencies")))
        .cloned()
        .collect()
}

fn names(report: &Value) -> Vec<String> {
    report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap_or("<base>").to_string())
        .collect()
}

fn entries_of(out: &Path, layer: &Value) -> BTreeMap<String, Entry> {
    layer_entries(&blob_path(out, layer["digest"].as_str().unwrap()))
        .into_iter()
        .map(|e| (e.path.clone(), e))
        .collect()
}

/// npm 10.2 or newer (`--os`/`--cpu`); Debian 12's own npm is 9.2. Missing
/// or older: a failure under CI=true, a loud skip otherwise.
fn npm_for_other_platforms() -> bool {
    if !require_tool("npm") {
        return false;
    }
    let out = std::process::Command::new("npm")
        .arg("--version")
        .output()
        .unwrap();
    let v = crate::support::stdout(&out);
    let mut parts = v.trim().split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let ok = (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (10, 2);
    crate::support::require(ok, &format!("npm {} is older than 10.2", v.trim()))
}

fn deps_records(p: &Project) -> usize {
    std::fs::read_dir(p.cache.path().join("deps-v1"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn python_wheels_for_each_architecture_land_in_var_task() {
    for (arch, machine) in [("x86_64", "x86_64"), ("arm64", "aarch64")] {
        let Some(p) = python_project(arch, REQUIREMENTS, "") else {
            return;
        };
        let out = p.join("out");
        let report = build_json(&p, &out);
        assert_eq!(names(&report), ["interpreter", "dependencies", "code"], "{arch}");
        let deps = &dep_layers(&report)[0];
        assert_eq!(deps["cached"], false);
        let files = entries_of(&out, deps);
        let so = format!("var/task/markupsafe/_speedups.cpython-312-{machine}-linux-gnu.so");
        assert!(files.contains_key(&so), "{arch}: no {so} in {:?}", files.keys());
        assert!(files.contains_key("var/task/six.py"));
        let wheel = &files["var/task/MarkupSafe-3.0.2.dist-info/WHEEL"];
        let tags = String::from_utf8_lossy(&wheel.data);
        assert!(
            tags.lines()
                .any(|l| l.starts_with("Tag: cp312-cp312-manylinux") && l.ends_with(&format!("_{machine}"))),
            "{arch}: WHEEL tags {tags}"
        );
        assert!(!tags.contains(if machine == "x86_64" { "aarch64" } else { "x86_64" }));
        for path in files.keys() {
            assert!(
                !path.contains("__pycache__")
                    && !path.ends_with(".pyc")
                    && !path.ends_with("direct_url.json"),
                "{arch}: host-specific file {path}"
            );
            assert!(path.starts_with("var/"), "{path}");
        }
        // The manifest's layer order: interpreter, dependencies, code.
        let (m, _) = manifest(&out, "latest");
        assert_eq!(m["layers"][1]["digest"], deps["digest"]);
    }
}

#[test]
fn two_installs_of_the_same_requirements_give_the_same_digest() {
    let Some(a) = python_project("x86_64", REQUIREMENTS, "") else {
        return;
    };
    let Some(b) = python_project("x86_64", REQUIREMENTS, "") else {
        return;
    };
    // Separate projects and caches: two real pip installs, in different paths.
    let ra = build_json(&a, &a.join("out"));
    let ob = b.build_ok(&["--json", "-v"]);
    let rb: Value = serde_json::from_slice(&ob.stdout).unwrap();
    let log = stderr(&ob);
    assert!(
        log.contains("Successfully installed markupsafe-3.0.2 six-1.17.0"),
        "--verbose shows pip's output: {log}"
    );
    assert_eq!(dep_layers(&rb)[0]["cached"], false, "b installed on its own");
    assert_eq!(dep_layers(&ra)[0]["digest"], dep_layers(&rb)[0]["digest"]);
    assert_eq!(ra["digest"], rb["digest"], "whole image identical");
}

#[test]
fn a_code_only_change_neither_installs_nor_needs_pip() {
    let Some(p) = python_project("x86_64", REQUIREMENTS, "") else {
        return;
    };
    let out = p.join("out");
    let first = build_json(&p, &out);
    std::fs::write(
        p.join("app.py"),
        "import six\n\ndef handler(event, context):\n    return 2\n",
    )
    .unwrap();
    // No pip, python3 or npm on PATH: a reinstall would fail.
    let o = crate::support::run_ok(
        p.cmd(&["build", "--json", "--output", &format!("oci:{}", out.display())])
            .env("PATH", "/nonexistent"),
    );
    let second: Value = serde_json::from_slice(&o.stdout).unwrap();
    let (d1, d2) = (&dep_layers(&first)[0], &dep_layers(&second)[0]);
    assert_eq!(d2["cached"], true);
    assert_eq!(d1["digest"], d2["digest"]);
    let code = second["layers"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (code["name"].as_str(), code["cached"].as_bool()),
        (Some("code"), Some(false))
    );
    assert_ne!(first["digest"], second["digest"]);

    // A changed requirements file is a new set: installed again.
    std::fs::write(p.join("requirements.txt"), "six==1.16.0\n").unwrap();
    let third = build_json(&p, &out);
    assert_eq!(dep_layers(&third)[0]["cached"], false);
    assert_ne!(dep_layers(&third)[0]["digest"], d1["digest"]);
}

#[test]
fn a_package_without_a_wheel_for_the_platform_is_named() {
    // docopt publishes a source distribution only.
    let Some(p) = python_project("x86_64", "six==1.17.0\ndocopt==0.6.2\n", "") else {
        return;
    };
    let out = p.join("out");
    let o = p.build_fail(&["--output", &format!("oci:{}", out.display())]);
    let err = stderr(&o);
    assert!(
        err.contains("`docopt`") && err.contains("manylinux2014_x86_64"),
        "{err}"
    );
    assert!(err.contains("requirements.txt"), "{err}");
    assert!(!out.exists(), "no output after a failed install");
    assert_eq!(deps_records(&p), 0, "no cache record after a failed install");
}

/// A pip that never finishes (a hung index, a prompt) is stopped after
/// --install-timeout together with what it started; the build fails naming
/// the command and the flag, and writes nothing.
#[test]
fn a_hung_installer_is_stopped_and_writes_nothing() {
    let Some(p) = python_project("x86_64", REQUIREMENTS, "") else {
        return;
    };
    // A stand-in python3 first on PATH: it answers the pip probe, then as
    // "pip install" starts a child that would outlive it and hangs.
    let bin = p.join("hung-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = bin.join("python3");
    std::fs::write(
        &script,
        "#!/bin/sh\n\
         if [ \"$1\" = -c ]; then echo \"$0\"; echo 24.0; echo \"$0\"; exit 0; fi\n\
         sleep 300 &\n\
         echo $! > \"$(dirname \"$0\")/child.pid\"\n\
         echo Collecting markupsafe\n\
         exec sleep 300\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());

    let out = p.join("out");
    let o = crate::support::run_fail(
        p.cmd(&[
            "build",
            "--install-timeout",
            "2",
            "--output",
            &format!("oci:{}", out.display()),
        ])
        .env("PATH", path),
    );
    let err = stderr(&o);
    assert!(err.contains("did not finish within 2 s"), "{err}");
    assert!(
        err.contains("--install-timeout") && err.contains("requirements.txt"),
        "{err}"
    );
    assert!(
        err.contains("Collecting markupsafe"),
        "the output so far is shown: {err}"
    );
    assert!(!out.exists());
    assert_eq!(deps_records(&p), 0);
    // The child the installer started was stopped with it (a zombie waiting
    // for init to reap it counts as stopped).
    let child = std::fs::read_to_string(bin.join("child.pid")).unwrap();
    let running = || {
        std::fs::read_to_string(format!("/proc/{}/stat", child.trim())).is_ok_and(|stat| {
            stat.rsplit(')')
                .next()
                .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
        })
    };
    assert!(
        !running(),
        "the installer's child {} is still running",
        child.trim()
    );
}

#[test]
fn missing_pip_is_a_clear_error_and_writes_nothing() {
    let Some(p) = python_project("x86_64", REQUIREMENTS, "") else {
        return;
    };
    let out = p.join("out");
    let o = crate::support::run_fail(
        p.cmd(&["build", "--output", &format!("oci:{}", out.display())])
            .env("PATH", "/nonexistent"),
    );
    let err = stderr(&o);
    assert!(err.contains("pip") && err.contains("not found on PATH"), "{err}");
    assert!(err.contains("requirements.txt"), "{err}");
    assert!(!out.exists());
    assert_eq!(deps_records(&p), 0);
    let leftovers: Vec<_> = std::fs::read_dir(p.cache.path().join("tmp"))
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "staging left behind: {leftovers:?}");
}

#[test]
fn split_groups_packages_and_a_bump_changes_one_group() {
    let reqs = "markupsafe==3.0.2\nsix==1.17.0\nidna==3.10\ncertifi==2024.8.30\ncharset-normalizer==3.4.0\n";
    let Some(p) = python_project("x86_64", reqs, "split = 3\n") else {
        return;
    };
    let out = p.join("out");
    let first = build_json(&p, &out);
    let groups = dep_layers(&first);
    assert!(
        groups.len() >= 2,
        "packages spread over several layers: {}",
        names(&first).join(",")
    );
    // Each package's files sit in exactly one layer.
    let mut owner: BTreeMap<String, String> = BTreeMap::new();
    for g in &groups {
        for path in entries_of(&out, g).keys() {
            let parts: Vec<&str> = path.split('/').collect();
            if parts.len() > 3 || (parts.len() == 3 && !path.ends_with('/')) {
                let top = parts[2].to_string();
                let name = g["name"].as_str().unwrap().to_string();
                let prev = owner.insert(top.clone(), name.clone());
                assert!(prev.is_none_or(|p| p == name), "{top} in two layers");
            }
        }
    }
    assert_eq!(owner["six.py"], owner["six-1.17.0.dist-info"]);
    assert_eq!(owner["markupsafe"], owner["MarkupSafe-3.0.2.dist-info"]);

    // Bump six: only its layer changes.
    std::fs::write(
        p.join("requirements.txt"),
        reqs.replace("six==1.17.0", "six==1.16.0"),
    )
    .unwrap();
    let second = build_json(&p, &out);
    let six_layer = owner["six.py"].clone();
    for (a, b) in groups.iter().zip(dep_layers(&second)) {
        assert_eq!(a["name"], b["name"]);
        if a["name"] == six_layer.as_str() {
            assert_ne!(a["digest"], b["digest"], "six's layer changed");
        } else {
            assert_eq!(a["digest"], b["digest"], "{} unchanged", a["name"]);
        }
    }
}

#[test]
fn split_beyond_the_manifest_budget_is_refused() {
    let Some(p) = python_project("x86_64", REQUIREMENTS, "split = 500\n") else {
        return;
    };
    let err = stderr(&p.build_fail(&[]));
    assert!(
        err.contains("dependencies.split") && err.contains("25,400") && err.contains("127"),
        "{err}"
    );
}

#[test]
fn node_modules_from_the_lock_land_in_var_task() {
    if !npm_for_other_platforms() {
        return;
    }
    let p = Project::new(
        r#"[function]
name = "node"
runtime = "nodejs20.x"
handler = "index.handler"

[base]
image = "scratch"

[[layer]]
name = "interpreter"
sources = ["fake/node"]
destination = "/usr/bin/node"
mode = "0755"

[code]
exclude = ["fake/**"]

[image]
entrypoint = ["/usr/bin/node"]

[dependencies]
"#,
        &[
            (
                "package.json",
                "{\"name\": \"fn\", \"version\": \"1.0.0\", \"dependencies\": {\"ms\": \"2.1.3\"}, \"devDependencies\": {\"is-number\": \"7.0.0\"}}\n",
            ),
            (
                "index.js",
                "const ms = require('ms');\nexports.handler = async () => ms(1000);\n",
            ),
            ("fake/node", FAKE_INTERPRETER),
            // A local node_modules must not reach the code layer.
            ("node_modules/stale/index.js", "host junk\n"),
        ],
    );
    lock_packages(p.path());
    let out = p.join("out");
    let report = build_json(&p, &out);
    assert_eq!(names(&report), ["interpreter", "dependencies", "code"]);
    let files = entries_of(&out, &dep_layers(&report)[0]);
    assert!(
        files.contains_key("var/task/node_modules/ms/index.js"),
        "{:?}",
        files.keys()
    );
    assert!(
        !files.keys().any(|k| k.contains("is-number")),
        "dev dependency installed"
    );
    assert!(!files.contains_key("var/task/node_modules/.package-lock.json"));
    let code = entries_of(&out, report["layers"].as_array().unwrap().last().unwrap());
    assert!(code.contains_key("var/task/index.js"));
    assert!(
        !code.keys().any(|k| k.contains("node_modules")),
        "{:?}",
        code.keys()
    );

    // A second install of the same lock elsewhere: the same layer.
    let q = Project::new("", &[]);
    for f in [
        "lambda-img.toml",
        "package.json",
        "package-lock.json",
        "index.js",
        "fake/node",
    ] {
        q.copy_in(&p.join(f), f);
    }
    let again = build_json(&q, &q.join("out"));
    assert_eq!(dep_layers(&again)[0]["cached"], false);
    assert_eq!(dep_layers(&again)[0]["digest"], dep_layers(&report)[0]["digest"]);
}

#[test]
fn jars_go_to_var_task_lib() {
    let p = Project::new(
        "[function]\nname = \"j\"\nruntime = \"java21\"\nhandler = \"example.Handler::handleRequest\"\n[base]\nimage = \"scratch\"\n[[layer]]\nname = \"jvm\"\nsources = [\"fake/java\"]\ndestination = \"/usr/bin/java\"\nmode = \"0755\"\n[code]\nsources = [\"classes\"]\n[image]\nentrypoint = [\"/usr/bin/java\"]\n[dependencies]\n",
        &[
            ("target/dependency/a.jar", "jar a"),
            ("target/dependency/notes.txt", "not a jar"),
            ("classes/example/Handler.class", "class"),
            ("fake/java", FAKE_INTERPRETER),
        ],
    );
    let out = p.join("out");
    let report = build_json(&p, &out);
    assert_eq!(names(&report), ["jvm", "dependencies", "code"]);
    let files = entries_of(&out, &dep_layers(&report)[0]);
    assert_eq!(files["var/task/lib/a.jar"].data, b"jar a");
    assert!(!files.contains_key("var/task/lib/notes.txt"));
}

#[test]
fn bootstrap_goes_to_var_runtime_and_its_machine_is_checked() {
    if !require_tool("busybox") {
        return;
    }
    let manifest = |arch: &str| {
        format!(
            "[function]\nname = \"b\"\nruntime = \"provided.al2023\"\narchitecture = \"{arch}\"\n[base]\nimage = \"scratch\"\n[code]\nsources = []\n[dependencies]\nbootstrap = \"build/bootstrap\"\n[image]\nentrypoint = [\"/var/runtime/bootstrap\"]\n"
        )
    };
    let p = Project::new(&manifest("x86_64"), &[]);
    p.copy_in(Path::new("/bin/busybox"), "build/bootstrap");
    let out = p.join("out");
    let report = build_json(&p, &out);
    let files = entries_of(&out, &dep_layers(&report)[0]);
    let boot = &files["var/runtime/bootstrap"];
    assert_eq!(boot.mode, 0o755);

    std::fs::write(p.join("lambda-img.toml"), manifest("arm64")).unwrap();
    let err = stderr(&p.build_fail(&[]));
    assert!(
        err.contains("build/bootstrap") && err.contains("EM_X86_64") && err.contains("EM_AARCH64"),
        "{err}"
    );
}

/// A Python function on a Python base, its runtime client (`awslambdaric`)
/// and a compiled dependency (`markupsafe`) installed by lambda-img from PyPI,
/// runs under podman and answers an invocation through the Runtime API.
#[test]
fn python_function_with_awslambdaric_answers_an_invocation() {
    use crate::support::podman::{Container, Podman};
    use crate::support::python_base::{host_python, python_base};
    use crate::support::runtime_api::RuntimeApi;

    if !require_tool("podman") || !require_tool("ldd") || !require_tool("python3") {
        return;
    }
    let Some(py) = host_python() else {
        crate::support::require(false, "no /usr/bin/python3 with a stdlib under /usr/lib");
        return;
    };
    let base = python_base(&py);
    let p = Project::new(
        &format!(
            r#"[function]
name = "py-e2e"
runtime = "python3.{minor}"
handler = "app.handler"

[base]
image = "{base}"

[code]
exclude = ["requirements.txt"]

[image]
entrypoint = ["/usr/bin/python3", "-m", "awslambdaric"]
workdir = "/var/task"
env = {{ PYTHONPATH = "/var/task" }}

[dependencies]
"#,
            minor = py.minor
        ),
        &[
            ("requirements.txt", "awslambdaric\nmarkupsafe==3.0.2\n"),
            (
                "app.py",
                "import markupsafe\nfrom markupsafe import _speedups\n\n\
                 def handler(event, context):\n    return {\"escaped\": str(markupsafe.escape(event[\"name\"])), \"native\": _speedups.__file__.endswith(\".so\")}\n",
            ),
        ],
    );
    let archive = p.join("image.tar");
    let o = p.build_ok(&[
        "--json",
        "--output",
        &format!("docker-archive:{}:py-e2e:test", archive.display()),
    ]);
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(names(&report).last().map(String::as_str), Some("code"));
    assert_eq!(dep_layers(&report).len(), 1);

    let podman = Podman::new();
    podman.run_ok(&["load", "-i", archive.to_str().unwrap()]);
    let api = RuntimeApi::start();
    let container = Container::start(&podman, "localhost/py-e2e:test", &api, &[]);
    let answer = api.invoke(r#"{"name":"<b>lambda</b>"}"#, std::time::Duration::from_secs(90));
    let body = answer.unwrap_or_else(|e| panic!("{e}\n--- container logs\n{}", container.logs()));
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(v["escaped"], "&lt;b&gt;lambda&lt;/b&gt;", "{body}");
    assert_eq!(v["native"], true, "markupsafe's compiled speedups loaded: {body}");
}

#[test]
fn an_unreachable_index_is_a_network_error_and_writes_nothing() {
    let Some(p) = python_project("x86_64", REQUIREMENTS, "") else {
        return;
    };
    let out = p.join("out");
    // Proxy settings pass through the clean environment: point them at a closed port.
    let o = crate::support::run_fail(
        p.cmd(&["build", "--output", &format!("oci:{}", out.display())])
            .env("HTTPS_PROXY", "http://127.0.0.1:9")
            .env("HTTP_PROXY", "http://127.0.0.1:9")
            .env("PIP_DEFAULT_TIMEOUT", "2"),
    );
    let err = stderr(&o);
    assert!(
        err.contains("could not reach its package index") && err.contains("requirements.txt"),
        "{err}"
    );
    assert!(err.contains("pip output"), "installer output shown: {err}");
    assert!(!out.exists());
    assert_eq!(deps_records(&p), 0);
}

#[test]
fn npm_selects_the_packages_of_the_target_cpu() {
    if !npm_for_other_platforms() {
        return;
    }
    // esbuild ships its binary as optional per-platform packages.
    let p = Project::new(
        "[function]\nname = \"n\"\nruntime = \"nodejs20.x\"\nhandler = \"index.handler\"\narchitecture = \"arm64\"\n[base]\nimage = \"scratch\"\n[[layer]]\nname = \"interpreter\"\nsources = [\"fake/node\"]\ndestination = \"/usr/bin/node\"\nmode = \"0755\"\n[code]\nexclude = [\"fake/**\"]\n[image]\nentrypoint = [\"/usr/bin/node\"]\n[dependencies]\n",
        &[
            (
                "package.json",
                "{\"name\": \"fn\", \"version\": \"1.0.0\", \"dependencies\": {\"esbuild\": \"0.24.0\"}}\n",
            ),
            ("index.js", "exports.handler = async () => 1;\n"),
            ("fake/node", FAKE_INTERPRETER),
        ],
    );
    lock_packages(p.path());
    let out = p.join("out");
    let report = build_json(&p, &out);
    let files = entries_of(&out, &dep_layers(&report)[0]);
    assert!(
        files.contains_key("var/task/node_modules/@esbuild/linux-arm64/bin/esbuild"),
        "{:?}",
        files
            .keys()
            .filter(|k| k.contains("@esbuild"))
            .collect::<Vec<_>>()
    );
    assert!(
        !files.keys().any(|k| k.contains("@esbuild/linux-x64")),
        "host platform package installed"
    );
}

#[test]
fn concurrent_builds_sharing_a_cache_install_once() {
    let Some(a) = python_project("x86_64", REQUIREMENTS, "") else {
        return;
    };
    let Some(b) = python_project("x86_64", REQUIREMENTS, "") else {
        return;
    };
    let shared = tempfile::tempdir().unwrap();
    let spawn = |p: &Project| {
        crate::support::lambda_img(shared.path())
            .arg("-C")
            .arg(p.path())
            .args(["build", "--json"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (ca, cb) = (spawn(&a), spawn(&b));
    let (oa, ob) = (ca.wait_with_output().unwrap(), cb.wait_with_output().unwrap());
    assert!(
        oa.status.success() && ob.status.success(),
        "{}{}",
        stderr(&oa),
        stderr(&ob)
    );
    let ra: Value = serde_json::from_slice(&oa.stdout).unwrap();
    let rb: Value = serde_json::from_slice(&ob.stdout).unwrap();
    let (da, db) = (&dep_layers(&ra)[0], &dep_layers(&rb)[0]);
    assert_eq!(da["digest"], db["digest"]);
    // The lock on the set's key: one build installed, the other waited and took its record.
    let installed = [da, db].iter().filter(|l| l["cached"] == false).count();
    assert_eq!(installed, 1, "{da} {db}");
    assert_eq!(
        std::fs::read_dir(shared.path().join("deps-v1")).unwrap().count(),
        1
    );
}

/// Writes package-lock.json for the package.json in `dir` with the real npm.
fn lock_packages(dir: &std::path::Path) {
    crate::support::run_ok(
        std::process::Command::new("npm")
            .args([
                "install",
                "--package-lock-only",
                "--ignore-scripts",
                "--no-audit",
                "--no-fund",
            ])
            .current_dir(dir),
    );
}
