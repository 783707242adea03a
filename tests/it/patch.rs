//! The patch cadence of a monorepo, end to end against a real registry
//! (Distribution, behind the recording proxy so every request is counted):
//! a base tag moves to a new build, `pin --check` names the functions that
//! lag, `pin --recursive` moves exactly those, `build --recursive` rebuilds
//! them reusing every app layer byte for byte (no pip), the push uploads no
//! app layer and mounts the new base layer, and the images record their base.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::fault_proxy::FaultProxy;
use crate::support::project::{Project, scratch_manifest};
use crate::support::registry::{TestRegistry, free_port};
use crate::support::{lambda_img, require_tool, run_ok, stderr, write_files};

const BASE_NAME: &str = "org.opencontainers.image.base.name";
const BASE_DIGEST: &str = "org.opencontainers.image.base.digest";

/// A base image: a stand-in interpreter at /usr/bin/python3 (a layer that
/// changes between builds) and a shared file, with the env AWS bases set.
fn python_base(version: &str, format: &str) -> String {
    format!(
        r#"[function]
name = "base-python"
runtime = "provided.al2023"
architecture = "x86_64"

[base]
image = "scratch"

[[layer]]
name = "shell"
sources = ["sh"]
destination = "/bin/sh"
mode = "0755"

[[layer]]
name = "interpreter"
sources = ["python3"]
destination = "/usr/bin/python3"
mode = "0755"

[code]
sources = ["share"]
destination = "/usr/share/base"

[image]
entrypoint = ["/usr/bin/python3", "-m", "awslambdaric"]
workdir = "/var/task"
env = {{ PATH = "/var/lang/{version}/bin:/usr/bin:/bin", LD_LIBRARY_PATH = "/var/lang/{version}/lib:/lib64", LANG = "C.UTF-8" }}
format = "{format}"
"#
    )
}

fn python_function(name: &str, base: &str, extra: &str) -> String {
    format!(
        r#"# {name}: patched with the fleet
[function]
name = "{name}"
runtime = "python3.12"
handler = "app.handler"
architecture = "x86_64"

[base]
# follows the team's base tag
image = "{base}"   # re-pinned by `pin --recursive`

[code]
sources = ["src"]

{extra}"#
    )
}

/// `lambda-img -C dir args` with a shared cache and no Docker config.
fn cli(cache: &Path, docker_config: &Path, dir: &Path, args: &[&str]) -> Command {
    let mut c = lambda_img(cache);
    c.env("DOCKER_CONFIG", docker_config)
        .arg("-C")
        .arg(dir)
        .args(args);
    c
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            stderr(out)
        )
    })
}

/// The rows of a `pin --json` report by function name: (status, written).
fn statuses(report: &Value) -> Vec<(String, String)> {
    report["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["function"].as_str().unwrap().to_string(),
                r["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The digests of the layers a build made (not the base's), by function.
fn built_layers(build: &Value, function: &str) -> Vec<(String, String, bool)> {
    let f = build
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["function"] == function)
        .unwrap_or_else(|| panic!("no {function} in {build:#}"));
    f["report"]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["origin"] == "built")
        .map(|l| {
            (
                l["name"].as_str().unwrap().to_string(),
                l["digest"].as_str().unwrap().to_string(),
                l["cached"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn report_of<'a>(build: &'a Value, function: &str) -> &'a Value {
    &build
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["function"] == function)
        .unwrap()["report"]
}

/// skopeo's view of a pushed image: (manifest, config).
fn skopeo(host: &str, reference: &str) -> (Value, Value) {
    let at = format!("docker://{host}/{reference}");
    let raw = run_ok(Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false", &at]));
    let config = run_ok(Command::new("skopeo").args(["inspect", "--config", "--tls-verify=false", &at]));
    (
        serde_json::from_slice(&raw.stdout).unwrap(),
        serde_json::from_slice(&config.stdout).unwrap(),
    )
}

#[test]
fn a_moved_base_tag_is_found_repinned_and_rebuilt_across_the_monorepo() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    if !require_tool("busybox") || !require_tool("skopeo") || !require_tool("python3") {
        return;
    }
    let proxy = FaultProxy::start(registry.port);
    let host = proxy.host();
    let docker_config = tempfile::tempdir().unwrap();
    let dc = docker_config.path();
    let cache = tempfile::tempdir().unwrap();
    let cache = cache.path();

    // Base v1 of two tags: python:3.12 (OCI) and provided:al2023 (Docker V2.2).
    let py = Project::new(
        &python_base("v1", "oci"),
        &[
            ("python3", "#!/bin/sh\n# v1\nexit 0\n"),
            ("share/NOTICE", "base\n"),
        ],
    );
    py.copy_in(Path::new("/bin/busybox"), "sh");
    run_ok(&mut cli(
        cache,
        dc,
        py.path(),
        &["build", "--output", &format!("registry:{host}/base/python:3.12")],
    ));
    let provided = Project::new(
        &scratch_manifest("format = \"docker\"\nenv = { PATH = \"/usr/bin:/bin\" }"),
        &[("x.txt", "x\n")],
    );
    provided.copy_in(Path::new("/bin/busybox"), "busybox");
    run_ok(&mut cli(
        cache,
        dc,
        provided.path(),
        &[
            "build",
            "--output",
            &format!("registry:{host}/base/provided:al2023"),
        ],
    ));

    // The monorepo: two functions on python:3.12 (one with pip dependencies),
    // one on provided:al2023, written with tags only, then pinned.
    let mono = tempfile::tempdir().unwrap();
    let root = mono.path();
    let py_tag = format!("{host}/base/python:3.12");
    write_files(
        root,
        &[
            (
                "functions/orders/lambda-img.toml",
                &python_function(
                    "orders",
                    &py_tag,
                    "[code]\nexclude = [\"requirements.txt\"]\n\n[image]\nenv = { ORDERS_TABLE = \"orders\", LANG = \"en_US.UTF-8\" }\n\n[dependencies]\n",
                )
                .replace("[code]\nsources = [\"src\"]\n\n", ""),
            ),
            ("functions/orders/requirements.txt", "six==1.17.0\n"),
            ("functions/orders/src/app.py", "import six\n\ndef handler(event, context):\n    return 1\n"),
            (
                "functions/payments/lambda-img.toml",
                &python_function("payments", &py_tag, "[image]\nenv = { STAGE = \"prod\" }\n"),
            ),
            ("functions/payments/src/app.py", "def handler(event, context):\n    return 2\n"),
            (
                "functions/notify/lambda-img.toml",
                &format!(
                    "[function]\nname = \"notify\"\nruntime = \"provided.al2023\"\n\n[base]\nimage = \"{host}/base/provided:al2023\"\n\n[code]\nsources = [\"src\"]\n\n[image]\nenv = {{ NOTIFY = \"1\" }}\n"
                ),
            ),
            ("functions/notify/src/handler.sh", "echo notify\n"),
            // Not functions of ours: never read.
            ("functions/orders/node_modules/x/lambda-img.toml", "not toml ["),
            (".git/lambda-img.toml", "not toml ["),
        ],
    );
    let first_pin = json(&run_ok(&mut cli(
        cache,
        dc,
        root,
        &["pin", "--recursive", "--json"],
    )));
    assert_eq!(
        statuses(&first_pin),
        [
            ("notify".to_string(), "moved".to_string()),
            ("orders".to_string(), "moved".to_string()),
            ("payments".to_string(), "moved".to_string())
        ],
        "{first_pin:#}"
    );

    let output = format!("registry:{host}/{{function}}:1");
    let v1 = json(&run_ok(&mut cli(
        cache,
        dc,
        root,
        &["build", "--recursive", "--json", "--output", &output],
    )));
    let v1_py = skopeo(&host, "base/python:3.12");
    let v1_py_digest = first_pin["functions"][1]["new_digest"]
        .as_str()
        .unwrap()
        .to_string();
    // An OCI image records its base as manifest annotations.
    let (orders_v1, _) = skopeo(&host, "orders:1");
    assert_eq!(orders_v1["annotations"][BASE_NAME], py_tag.as_str());
    assert_eq!(orders_v1["annotations"][BASE_DIGEST], v1_py_digest.as_str());
    // A Docker V2.2 image (no annotations) records it as config labels.
    let (notify_m, notify_c) = skopeo(&host, "notify:1");
    assert!(notify_m.get("annotations").is_none());
    assert_eq!(
        notify_c["config"]["Labels"][BASE_NAME],
        format!("{host}/base/provided:al2023").as_str()
    );

    // Base v2 under the same tag: a changed interpreter layer, a changed PATH
    // and LD_LIBRARY_PATH, and Docker media types this time.
    std::fs::write(py.join("python3"), "#!/bin/sh\n# v2: patched\nexit 0\n").unwrap();
    std::fs::write(py.join("lambda-img.toml"), python_base("v2", "docker")).unwrap();
    let mark = proxy.log.lock().unwrap().len();
    run_ok(&mut cli(
        cache,
        dc,
        py.path(),
        &["build", "--output", &format!("registry:{host}/base/python:3.12")],
    ));
    let v2_py = skopeo(&host, "base/python:3.12");
    let old_layers: Vec<&Value> = v1_py.0["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| &l["digest"])
        .collect();
    let new_layer: Vec<String> = v2_py.0["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .filter(|d| !old_layers.iter().any(|o| *o == d.as_str()))
        .collect();
    assert_eq!(
        new_layer.len(),
        1,
        "exactly one base layer changed: {new_layer:?}"
    );
    let new_layer = &new_layer[0];

    // The old image's recorded base now lags its tag: check says so.
    let out = run_ok(&mut cli(
        cache,
        dc,
        root,
        &["check", "--json", &format!("{host}/orders:1")],
    ));
    let ids: Vec<String> = json(&out)["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule_id"].as_str().unwrap().to_string())
        .collect();
    assert!(ids.contains(&"LI091".to_string()), "{ids:?}");

    // pin --check: exit 3 naming the lagging functions, nothing written.
    let manifests =
        ["orders", "payments", "notify"].map(|f| root.join(format!("functions/{f}/lambda-img.toml")));
    let before: Vec<String> = manifests
        .iter()
        .map(|m| std::fs::read_to_string(m).unwrap())
        .collect();
    let mark_check = proxy.log.lock().unwrap().len();
    let out = cli(
        cache,
        dc,
        root,
        &["pin", "--check", "--recursive", "--json", "functions"],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    // Each distinct tag is asked for once, though two functions share python:3.12.
    let asked = |tag: &str| {
        proxy.log.lock().unwrap()[mark_check..]
            .iter()
            .filter(|(m, t, _)| (m == "GET" || m == "HEAD") && t.ends_with(&format!("/manifests/{tag}")))
            .count()
    };
    assert_eq!((asked("3.12"), asked("al2023")), (1, 1));
    let check = json(&out);
    assert_eq!(
        statuses(&check),
        [
            ("notify".to_string(), "unchanged".to_string()),
            ("orders".to_string(), "moved".to_string()),
            ("payments".to_string(), "moved".to_string())
        ]
    );
    let table = stderr(&out);
    assert!(
        table.contains("orders") && table.contains("payments") && table.contains("lag"),
        "{table}"
    );
    let unchanged: Vec<String> = manifests
        .iter()
        .map(|m| std::fs::read_to_string(m).unwrap())
        .collect();
    assert_eq!(before, unchanged, "--check writes nothing");

    // A function whose base registry is down fails alone: the others move.
    let down = free_port();
    write_files(
        root,
        &[(
            "functions/legacy/lambda-img.toml",
            &python_function(
                "legacy",
                &format!("127.0.0.1:{down}/base/python:3.11@{v1_py_digest}"),
                "",
            ),
        )],
    );
    let out = cli(cache, dc, root, &["pin", "--recursive", "--json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed function fails the run: {}",
        stderr(&out)
    );
    let pinned = json(&out);
    assert_eq!(
        statuses(&pinned),
        [
            ("legacy".to_string(), "failed".to_string()),
            ("notify".to_string(), "unchanged".to_string()),
            ("orders".to_string(), "moved".to_string()),
            ("payments".to_string(), "moved".to_string())
        ]
    );
    let v2_py_digest = pinned["functions"][2]["new_digest"].as_str().unwrap().to_string();
    std::fs::remove_dir_all(root.join("functions/legacy")).unwrap();
    // Only the digest moved: comments, spacing and every other line are kept.
    let after: Vec<String> = manifests
        .iter()
        .map(|m| std::fs::read_to_string(m).unwrap())
        .collect();
    for i in 0..2 {
        assert_eq!(
            after[i],
            before[i].replace(&v1_py_digest, &v2_py_digest),
            "{}",
            after[i]
        );
        assert!(after[i].contains("# re-pinned by `pin --recursive`"));
    }
    assert_eq!(after[2], before[2], "notify did not move");

    // Rebuild every function without pip on PATH: a reinstall would fail.
    let mark_rebuild = proxy.log.lock().unwrap().len();
    let output = format!("registry:{host}/{{function}}:2");
    let v2 = json(&run_ok(
        cli(
            cache,
            dc,
            root,
            &["build", "--recursive", "--json", "--output", &output],
        )
        .env("PATH", "/nonexistent"),
    ));
    for f in ["orders", "payments", "notify"] {
        let (old, new) = (built_layers(&v1, f), built_layers(&v2, f));
        let digests = |l: &[(String, String, bool)]| {
            l.iter()
                .map(|(n, d, _)| (n.clone(), d.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            digests(&old),
            digests(&new),
            "{f}: every app layer is reused byte for byte"
        );
        assert!(
            new.iter().all(|(_, _, cached)| *cached),
            "{f}: no layer recompressed: {new:?}"
        );
        assert!(
            !report_of(&v2, f)["findings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["severity"] == "error")
        );
    }
    assert!(
        built_layers(&v2, "orders")
            .iter()
            .any(|(n, _, _)| n.starts_with("dependencies"))
    );

    for (f, own) in [("orders", "ORDERS_TABLE=orders"), ("payments", "STAGE=prod")] {
        let (m, c) = skopeo(&host, &format!("{f}:2"));
        // The media-type family follows the new base: Docker V2.2.
        assert_eq!(
            m["mediaType"],
            "application/vnd.docker.distribution.manifest.v2+json"
        );
        let env: Vec<&str> = c["config"]["Env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap())
            .collect();
        assert!(
            env.contains(&"PATH=/var/lang/v2/bin:/usr/bin:/bin"),
            "{f}: {env:?}"
        );
        assert!(
            env.contains(&"LD_LIBRARY_PATH=/var/lang/v2/lib:/lib64"),
            "{f}: {env:?}"
        );
        assert!(env.contains(&own), "{f}: {env:?}");
        assert_eq!(c["config"]["Entrypoint"][0], "/usr/bin/python3");
        assert_eq!(c["config"]["Labels"][BASE_NAME], py_tag.as_str());
        assert_eq!(c["config"]["Labels"][BASE_DIGEST], v2_py_digest.as_str());
        // The layers: v2's base layers, then the same app layers as before.
        let base_layers = v2_py.0["layers"].as_array().unwrap();
        assert_eq!(
            &m["layers"].as_array().unwrap()[..base_layers.len()],
            base_layers.as_slice()
        );
    }
    let (_, orders_c) = skopeo(&host, "orders:2");
    let env = orders_c["config"]["Env"].to_string();
    assert!(
        env.contains("LANG=en_US.UTF-8") && !env.contains("LANG=C.UTF-8"),
        "the function's own wins: {env}"
    );

    // What the rebuild's pushes sent: no app layer and no base layer uploaded
    // (the new base layer is mounted from base/python), only new configs.
    let log = proxy.log.lock().unwrap().clone();
    let uploads: Vec<&String> = log[mark_rebuild..]
        .iter()
        .filter(|(m, _, _)| m == "PUT")
        .map(|(_, t, _)| t)
        .filter(|t| t.contains("/blobs/uploads/"))
        .collect();
    let app_digests: Vec<String> = ["orders", "payments", "notify"]
        .iter()
        .flat_map(|f| built_layers(&v2, f))
        .map(|(_, d, _)| d.trim_start_matches("sha256:").to_string())
        .collect();
    for t in &uploads {
        assert!(
            !app_digests.iter().any(|d| t.contains(d.as_str())),
            "an app layer was uploaded: {t}"
        );
        assert!(
            !t.contains(new_layer.trim_start_matches("sha256:")),
            "the new base layer was uploaded: {t}"
        );
    }
    let configs: Vec<String> = ["orders", "payments"]
        .iter()
        .map(|f| {
            report_of(&v2, f)["config_digest"]
                .as_str()
                .unwrap()
                .trim_start_matches("sha256:")
                .to_string()
        })
        .collect();
    // Each rebuilt image also gets its new SBOM referrer (it names the new base).
    let sboms: Vec<String> = ["orders", "payments"]
        .iter()
        .map(|f| {
            report_of(&v2, f)["sbom"]["digest"]
                .as_str()
                .unwrap()
                .trim_start_matches("sha256:")
                .to_string()
        })
        .collect();
    let (sbom_uploads, uploads): (Vec<&String>, Vec<&String>) = uploads
        .into_iter()
        .partition(|t| sboms.iter().any(|s| t.contains(s.as_str())));
    assert_eq!(sbom_uploads.len(), 2, "one SBOM each: {sbom_uploads:?}");
    assert_eq!(uploads.len(), 2, "two new configs and nothing else: {uploads:?}");
    for c in &configs {
        assert!(
            uploads.iter().any(|t| t.contains(c.as_str())),
            "config {c} uploaded: {uploads:?}"
        );
    }
    let mounts = log[mark_rebuild..]
        .iter()
        .filter(|(m, t, s)| {
            m == "POST"
                && t.contains("mount=")
                && t.contains(new_layer.trim_start_matches("sha256:"))
                && *s == 201
        })
        .count();
    assert_eq!(
        mounts, 2,
        "the new base layer is mounted into orders and payments"
    );
    // Over the whole patch, the new layer was uploaded once: with base v2.
    let new_layer_uploads = log[mark..]
        .iter()
        .filter(|(m, t, _)| m == "PUT" && t.contains(new_layer.trim_start_matches("sha256:")))
        .count();
    assert_eq!(new_layer_uploads, 1);

    // The rebuilt images pass check (no LI091 now) and inspect shows the base.
    for f in ["orders", "payments", "notify"] {
        let out = run_ok(&mut cli(
            cache,
            dc,
            root,
            &["check", "--json", &format!("{host}/{f}:2")],
        ));
        let findings = json(&out)["findings"].clone();
        assert!(
            !findings
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["rule_id"] == "LI091" || x["severity"] == "error"),
            "{f}: {findings:#}"
        );
    }
    let out = run_ok(&mut cli(
        cache,
        dc,
        root,
        &["inspect", &format!("{host}/payments:2")],
    ));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("base          {py_tag}@{v2_py_digest}")),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Nothing lags any more.
    let out = cli(cache, dc, root, &["pin", "--check", "--recursive"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        out.stdout.is_empty(),
        "no manifest listed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// `scratch` has no base to record: its images carry no base annotation.
#[test]
fn a_scratch_image_records_no_base() {
    if !require_tool("busybox") {
        return;
    }
    let p = Project::new(&scratch_manifest(""), &[("x.txt", "x\n")]);
    p.copy_in(Path::new("/bin/busybox"), "busybox");
    let out = p.join("out");
    p.build_ok(&["--output", &format!("oci:{}:1", out.display())]);
    let (m, _) = crate::support::oci::manifest(&out, "1");
    assert!(m.get("annotations").is_none(), "{m:#}");
    let c = crate::support::oci::config(&out, "1");
    assert!(c["config"].get("Labels").is_none(), "{c:#}");
}

/// A base from another registry (as public.ecr.aws is to a private ECR):
/// `build --recursive` uploads each base layer once, then mounts it into
/// every other function's repository, and refuses outputs that would collide.
#[test]
fn a_fleet_on_a_base_from_another_registry_uploads_each_base_layer_once() {
    let (Some(bases), Some(target)) = (TestRegistry::start(), TestRegistry::start()) else {
        return;
    };
    if !require_tool("busybox") || !require_tool("skopeo") {
        return;
    }
    let proxy = FaultProxy::start(target.port);
    let docker_config = tempfile::tempdir().unwrap();
    let dc = docker_config.path();
    let cache = tempfile::tempdir().unwrap();
    let cache = cache.path();
    let base = Project::new(&scratch_manifest(""), &[("x.txt", "x\n")]);
    base.copy_in(Path::new("/bin/busybox"), "busybox");
    let base_ref = format!("{}/base/provided:al2023", bases.host());
    run_ok(&mut cli(
        cache,
        dc,
        base.path(),
        &["build", "--output", &format!("registry:{base_ref}")],
    ));

    let mono = tempfile::tempdir().unwrap();
    let root = mono.path();
    for f in ["alpha", "beta", "gamma"] {
        write_files(
            root,
            &[
                (
                    &format!("{f}/lambda-img.toml"),
                    &format!(
                        "[function]\nname = \"{f}\"\nruntime = \"provided.al2023\"\n\n[base]\nimage = \"{base_ref}\"\n\n[code]\nsources = [\"src\"]\n"
                    ),
                ),
                (&format!("{f}/src/handler.sh"), &format!("echo {f}\n")),
            ],
        );
    }
    run_ok(&mut cli(cache, dc, root, &["pin", "--recursive", "--quiet"]));

    // One output for several functions would be overwritten by each: refused
    // before anything is built.
    let out = cli(cache, dc, root, &["build", "--recursive", "--output", "oci:out"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("{function}"), "{}", stderr(&out));
    assert!(!root.join("out").exists());
    // Two functions of one name would push to one repository: refused too.
    let dup = root.join("zeta/lambda-img.toml");
    std::fs::create_dir_all(dup.parent().unwrap()).unwrap();
    std::fs::copy(root.join("alpha/lambda-img.toml"), &dup).unwrap();
    let out = cli(
        cache,
        dc,
        root,
        &["build", "--recursive", "--output", "oci:out/{function}"],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("both name their function \"alpha\""),
        "{}",
        stderr(&out)
    );
    std::fs::remove_dir_all(root.join("zeta")).unwrap();

    let output = format!("registry:{}/{{function}}:1", proxy.host());
    let out = run_ok(&mut cli(
        cache,
        dc,
        root,
        &["build", "--recursive", "--output", &output],
    ));
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    for (line, f) in lines.iter().zip(["alpha", "beta", "gamma"]) {
        assert!(
            line.starts_with(&format!("{f} {}/{f}:1@sha256:", proxy.host())),
            "{line}"
        );
    }
    let (m, _) = skopeo(&bases.host(), "base/provided:al2023");
    let log = proxy.log.lock().unwrap().clone();
    for layer in m["layers"].as_array().unwrap() {
        let hex = layer["digest"].as_str().unwrap().trim_start_matches("sha256:");
        let uploads = log
            .iter()
            .filter(|(m, t, _)| m == "PUT" && t.contains(hex))
            .count();
        let mounts = log
            .iter()
            .filter(|(m, t, s)| m == "POST" && t.contains("mount=") && t.contains(hex) && *s == 201)
            .count();
        assert_eq!(
            (uploads, mounts),
            (1, 2),
            "base layer {hex}: uploaded once, mounted twice"
        );
    }
}

/// LI091 needs the registry: an image whose base registry is gone is checked
/// as before (no warning, no long wait), and one whose base moved is warned about.
#[test]
fn check_warns_of_a_lagging_base_only_when_its_registry_answers() {
    if !require_tool("busybox") {
        return;
    }
    let docker_config = tempfile::tempdir().unwrap();
    let dc = docker_config.path();
    let cache = tempfile::tempdir().unwrap();
    let cache = cache.path();
    let app_dir = tempfile::tempdir().unwrap();
    let layout = app_dir.path().join("out");
    {
        let Some(registry) = TestRegistry::start() else {
            return;
        };
        let base = Project::new(&scratch_manifest(""), &[("x.txt", "x\n")]);
        base.copy_in(Path::new("/bin/busybox"), "busybox");
        let base_ref = format!("{}/base/provided:al2023", registry.host());
        run_ok(&mut cli(
            cache,
            dc,
            base.path(),
            &["build", "--output", &format!("registry:{base_ref}")],
        ));
        write_files(
            app_dir.path(),
            &[
                (
                    "lambda-img.toml",
                    &format!(
                        "[function]\nname = \"app\"\nruntime = \"provided.al2023\"\n\n[base]\nimage = \"{base_ref}\"\n\n[code]\nsources = [\"src\"]\n"
                    ),
                ),
                ("src/handler.sh", "echo app\n"),
            ],
        );
        run_ok(&mut cli(cache, dc, app_dir.path(), &["pin", "--quiet"]));
        let oci = format!("oci:{}:1", layout.display());
        // Docker media types into an OCI layout: the layout's manifest is OCI,
        // the record is in the config's labels, and both are read.
        run_ok(&mut cli(
            cache,
            dc,
            app_dir.path(),
            &["build", "--format", "docker", "--output", &oci],
        ));
        let out = run_ok(&mut cli(cache, dc, app_dir.path(), &["inspect", &oci]));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&format!("base          {base_ref}@sha256:")),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let lags = |out: &Output| {
            json(out)["findings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["rule_id"] == "LI091")
        };
        assert!(!lags(&run_ok(&mut cli(
            cache,
            dc,
            app_dir.path(),
            &["check", "--json", &oci]
        ))));
        // The tag moves: the same layout now lags it.
        std::fs::write(base.join("x.txt"), "x, patched\n").unwrap();
        run_ok(&mut cli(
            cache,
            dc,
            base.path(),
            &["build", "--output", &format!("registry:{base_ref}")],
        ));
        let out = run_ok(&mut cli(cache, dc, app_dir.path(), &["check", "--json", &oci]));
        assert!(lags(&out), "{}", String::from_utf8_lossy(&out.stdout));
    }
    // The registry is stopped: check still passes, without LI091.
    let oci = format!("oci:{}:1", layout.display());
    let out = run_ok(&mut cli(cache, dc, app_dir.path(), &["check", "--json", &oci]));
    let findings = json(&out)["findings"].clone();
    assert!(
        !findings
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["rule_id"] == "LI091"),
        "{findings:#}"
    );
}
