//! `--cache-registry`: two machines (two empty caches) sharing layers through
//! one real Distribution registry, and the registry's faults (down, slow,
//! refusing writes, lying) falling back to building, each with one warning.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::deps::FAKE_INTERPRETER;
use crate::support::fault_proxy::{Fault, FaultKind, FaultProxy};
use crate::support::project::Project;
use crate::support::registry::TestRegistry;
use crate::support::{lambda_img, require_tool, run_fail, run_ok, stand_in, stderr};

/// markupsafe ships a compiled extension: its wheel is platform specific.
const REQUIREMENTS: &str = "markupsafe==3.0.2\n";

fn function_manifest(deps: bool) -> String {
    let table = if deps {
        "requirements = \"requirements.txt\""
    } else {
        "enabled = false"
    };
    crate::deps::stand_in_python_manifest("shared-cache", "x86_64", table)
}

/// The Python function with a compiled wheel dependency.
fn python_function() -> Project {
    Project::new(
        &function_manifest(true),
        &[
            ("requirements.txt", REQUIREMENTS),
            (
                "app.py",
                "import markupsafe\n\ndef handler(event, context):\n    return str(markupsafe.escape(event))\n",
            ),
            ("fake/python3", FAKE_INTERPRETER),
        ],
    )
}

/// A function without dependencies, for the faults (no installer needed).
fn plain_function() -> Project {
    Project::new(
        &function_manifest(false),
        &[
            ("app.py", "def handler(event, context):\n    return event\n"),
            ("fake/python3", FAKE_INTERPRETER),
        ],
    )
}

/// A machine: its own cache, and a PATH (`None`: an empty one, so there is
/// no pip, python or npm).
struct Machine {
    cache: tempfile::TempDir,
    path: Option<String>,
}

impl Machine {
    fn new() -> Machine {
        Machine {
            cache: tempfile::tempdir().unwrap(),
            path: std::env::var("PATH").ok(),
        }
    }

    fn without_installers() -> Machine {
        Machine {
            path: None,
            ..Machine::new()
        }
    }

    fn cmd(&self, dir: &Path, args: &[&str]) -> Command {
        self.cmd_verbosity(dir, "--quiet", args)
    }

    /// [`Machine::cmd`] at `verbosity` (`--quiet`, `--verbose`).
    fn cmd_verbosity(&self, dir: &Path, verbosity: &str, args: &[&str]) -> Command {
        let mut cmd = lambda_img(self.cache.path());
        let empty = self.cache.path().join("empty-path");
        std::fs::create_dir_all(&empty).unwrap();
        cmd.env(
            "PATH",
            self.path.clone().unwrap_or_else(|| empty.display().to_string()),
        );
        cmd.arg("-C").arg(dir).arg(verbosity).args(args);
        cmd
    }

    /// `build --json ARGS` in `dir`: the report, and stderr.
    fn build(&self, dir: &Path, args: &[&str]) -> (Value, String) {
        let out = run_ok(&mut self.cmd(dir, &[&["build", "--json"], args].concat()));
        (serde_json::from_slice(&out.stdout).unwrap(), stderr(&out))
    }
}

/// (name, from) of every layer lambda-img made.
fn origins(report: &Value) -> Vec<(String, String)> {
    report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["origin"] == "built")
        .map(|l| {
            (
                l["name"].as_str().unwrap().to_string(),
                l["from"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn all_from(report: &Value, from: &str) -> bool {
    let o = origins(report);
    !o.is_empty() && o.iter().all(|(_, f)| f == from)
}

fn from_of(report: &Value, name: &str) -> String {
    origins(report)
        .into_iter()
        .find(|(n, _)| n.starts_with(name))
        .map(|(_, f)| f)
        .unwrap_or_else(|| panic!("no layer {name} in {report}"))
}

/// Lines of stderr about the cache registry.
fn cache_warnings(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("warning:") && l.contains("cache registry"))
        .collect()
}

/// The tags of `repo` (`host/name`), as skopeo lists them.
fn tags(repo: &str) -> Vec<String> {
    let out = Command::new("skopeo")
        .args(["list-tags", "--tls-verify=false"])
        .arg(format!("docker://{repo}"))
        .output()
        .unwrap();
    if !out.status.success() {
        return Vec::new();
    }
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut tags: Vec<String> = v["Tags"]
        .as_array()
        .map(|a| a.iter().map(|t| t.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    tags.sort();
    tags
}

/// The manifest digest skopeo reads back for `reference`.
fn skopeo_digest(reference: &str) -> String {
    let out = run_ok(
        Command::new("skopeo")
            .args(["inspect", "--tls-verify=false", "--raw"])
            .arg(format!("docker://{reference}")),
    );
    lambda_img::image::Digest::of(&out.stdout).to_string()
}

/// The blob actions of a report's first (registry) output, for layers.
fn layer_pushes(report: &Value) -> Vec<String> {
    report["outputs"][0]["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["kind"] == "layer")
        .map(|b| b["action"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn cache_registry_lets_a_second_machine_build_the_same_image_without_pip() {
    if !require_tool("python3") || !require_tool("skopeo") {
        return;
    }
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let host = registry.host();
    let cache_repo = format!("{host}/build-cache");
    let project = python_function();
    let push = |repo: &str| format!("registry:{host}/{repo}:1");

    // Machine 1 builds everything and shares it.
    let one = Machine::new();
    let (r1, _) = one.build(
        project.path(),
        &["--cache-registry", &cache_repo, "--output", &push("fn-one")],
    );
    assert!(all_from(&r1, "built"), "{:?}", origins(&r1));
    let shared = tags(&cache_repo);
    assert_eq!(
        shared.iter().filter(|t| t.starts_with("deps-v1-")).count(),
        1,
        "{shared:?}"
    );
    assert_eq!(
        shared.iter().filter(|t| t.starts_with("layers-v1-")).count(),
        2,
        "{shared:?}"
    );
    // The image push mounted what the cache repository already had.
    assert!(
        layer_pushes(&r1).iter().all(|a| a == "mounted"),
        "{:?}",
        layer_pushes(&r1)
    );
    // A record is an OCI artifact, as skopeo reads it.
    let deps_tag = shared.iter().find(|t| t.starts_with("deps-v1-")).unwrap();
    let raw = run_ok(
        Command::new("skopeo")
            .args(["inspect", "--tls-verify=false", "--raw"])
            .arg(format!("docker://{cache_repo}:{deps_tag}")),
    );
    let record: Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(record["artifactType"], "application/vnd.lambda-img.cache.v1");
    let deps_layer = r1["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "dependencies")
        .unwrap();
    assert_eq!(record["layers"][0]["digest"], deps_layer["digest"]);
    assert_eq!(
        record["layers"][0]["annotations"]["org.lambda-img.cache.diff-id"],
        deps_layer["diff_id"]
    );

    // Machine 2: an empty cache and no pip, python or npm on PATH.
    let two = Machine::without_installers();
    let (r2, err2) = two.build(
        project.path(),
        &["--cache-registry", &cache_repo, "--output", &push("fn-two")],
    );
    assert_eq!(r2["digest"], r1["digest"], "{err2}");
    assert!(all_from(&r2, "cache-registry"), "{:?}", origins(&r2));
    assert!(cache_warnings(&err2).is_empty(), "{err2}");
    // Each shared layer was scanned for the rules while it was verified, as
    // the layer it is in this image: one scan per layer, none made twice
    // under another place.
    let scans = std::fs::read_dir(
        two.cache
            .path()
            .join(lambda_img::cache::CacheBucket::LayerScans.dir_name()),
    )
    .unwrap()
    .count();
    assert_eq!(scans, r2["layers"].as_array().unwrap().len(), "{r2}");
    // Nothing was uploaded twice: every layer was mounted from the cache repository.
    assert!(
        layer_pushes(&r2).iter().all(|a| a == "mounted"),
        "{:?}",
        layer_pushes(&r2)
    );
    assert_eq!(
        skopeo_digest(&format!("{host}/fn-two:1")),
        r1["digest"].as_str().unwrap()
    );
    // Its local cache now has it all: the next build asks nobody.
    let (again, _) = two.build(project.path(), &["--cache-registry", &cache_repo]);
    assert!(all_from(&again, "local-cache"), "{:?}", origins(&again));

    // A changed requirements file misses and is installed (machine 2 without
    // pip cannot, and says so; with pip it builds the set and shares it).
    std::fs::write(
        project.join("requirements.txt"),
        "markupsafe==3.0.2\nsix==1.17.0\n",
    )
    .unwrap();
    let failed = run_fail(&mut two.cmd(project.path(), &["build", "--cache-registry", &cache_repo]));
    assert!(stderr(&failed).contains("pip"), "{}", stderr(&failed));
    let (changed, _) = one.build(project.path(), &["--cache-registry", &cache_repo]);
    assert_eq!(from_of(&changed, "dependencies"), "built");
    assert_eq!(from_of(&changed, "interpreter"), "local-cache");
    assert_ne!(changed["digest"], r1["digest"]);
    assert_eq!(
        tags(&cache_repo)
            .iter()
            .filter(|t| t.starts_with("deps-v1-"))
            .count(),
        2
    );
    std::fs::write(project.join("requirements.txt"), REQUIREMENTS).unwrap();

    // The dependency blob is damaged in the registry's storage: machine 3
    // refuses it, installs the set itself and makes the very same image.
    let blob = deps_layer["digest"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap();
    let data = registry
        .storage()
        .join("docker/registry/v2/blobs/sha256")
        .join(&blob[..2])
        .join(blob)
        .join("data");
    let mut bytes = std::fs::read(&data).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&data, &bytes).unwrap();
    let three = Machine::new();
    let (r3, err3) = three.build(project.path(), &["--cache-registry", &cache_repo]);
    assert_eq!(r3["digest"], r1["digest"]);
    assert_eq!(from_of(&r3, "dependencies"), "built");
    assert_eq!(from_of(&r3, "code"), "cache-registry");
    let warnings = cache_warnings(&err3);
    assert_eq!(warnings.len(), 2, "{err3}");
    assert!(
        warnings[0].contains("refused") && warnings[0].contains(deps_tag),
        "{}",
        warnings[0]
    );
    // Machine 3 deleted the blob and uploaded its own, but Distribution links
    // an upload of a digest it stores to the stored (damaged) bytes: the
    // read-back says so, and what to remove.
    let stored = data.parent().unwrap();
    let hint = stored.strip_prefix(registry.storage()).unwrap();
    assert!(
        warnings[1].contains("read back were refused again")
            && warnings[1].contains(&hint.display().to_string()),
        "{}",
        warnings[1]
    );
    // Done as it says, the next machine finds the blob missing and uploads
    // it; from then on an empty machine without pip takes it all from there.
    std::fs::remove_dir_all(stored).unwrap();
    let (r4, err4) = Machine::new().build(project.path(), &["--cache-registry", &cache_repo]);
    assert_eq!(r4["digest"], r1["digest"]);
    assert_eq!(from_of(&r4, "dependencies"), "built");
    assert!(cache_warnings(&err4)[0].contains("missing"), "{err4}");
    let every_layer_shared = || {
        let (r, err) =
            Machine::without_installers().build(project.path(), &["--cache-registry", &cache_repo]);
        assert_eq!(r["digest"], r1["digest"], "{err}");
        assert!(all_from(&r, "cache-registry"), "{:?}", origins(&r));
        assert!(cache_warnings(&err).is_empty(), "{err}");
    };
    every_layer_shared();

    // Damage the registry can put right through its API: the cache
    // repository's link for the dependency blob names another blob, so it
    // serves other bytes. The machine that finds it deletes the blob and
    // uploads its own (one warning, the refusal), and the next empty machine
    // takes every layer from the cache registry.
    // (A blob larger than the dependency blob: served in its place, it is
    // refused as soon as it runs past the descriptor's size.)
    let other = upload_blob(&host, "build-cache", &vec![7u8; 100_000]);
    let link = registry
        .storage()
        .join("docker/registry/v2/repositories/build-cache/_layers/sha256")
        .join(blob)
        .join("link");
    std::fs::write(&link, &other).unwrap();
    let (r6, err6) = Machine::new().build(project.path(), &["--cache-registry", &cache_repo]);
    assert_eq!(r6["digest"], r1["digest"]);
    assert_eq!(from_of(&r6, "dependencies"), "built");
    let warnings = cache_warnings(&err6);
    assert_eq!(warnings.len(), 1, "{err6}");
    assert!(warnings[0].contains("refused"), "{err6}");
    assert_eq!(
        std::fs::read_to_string(&link).unwrap(),
        format!("sha256:{blob}"),
        "the link names the blob again"
    );
    every_layer_shared();
}

/// The SBOM of the image machine 2 builds from the cache registry is machine
/// 1's, byte for byte, and so is its referrer: the wheel hashes pip reported
/// travel with the dependency record, and the document itself is shared as
/// a record keyed by everything its bytes depend on. A shared document whose
/// blob is damaged or missing in the registry is warned about once and made
/// again, the same bytes, from the layers.
#[test]
fn cache_registry_gives_a_second_machine_the_same_sbom_and_referrer() {
    if !require_tool("python3") || !require_tool("skopeo") || !require_tool("curl") {
        return;
    }
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let host = registry.host();
    let cache_repo = format!("{host}/sbom-cache");
    let project = python_function();
    // Outside the project: a file there would be in the code layer.
    let documents = tempfile::tempdir().unwrap();
    // Builds on `machine` (verbose: the cache registry's pushes are listed)
    // to registry repository `name`: the report, stderr, the --sbom document.
    let build = |machine: &Machine, name: &str| {
        let file = documents.path().join(format!("{name}.spdx.json"));
        let args = [
            "build",
            "--json",
            "--cache-registry",
            &cache_repo,
            "--output",
            &format!("registry:{host}/{name}:1"),
            "--sbom",
            file.to_str().unwrap(),
        ];
        let out = run_ok(&mut machine.cmd_verbosity(project.path(), "--verbose", &args));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        (report, stderr(&out), std::fs::read(&file).unwrap())
    };
    let pushed_document = |err: &str| {
        err.lines()
            .any(|l| l.contains("pushed record sbom-documents-v1-"))
    };

    let (r1, err1, doc1) = build(&Machine::new(), "one");
    assert!(pushed_document(&err1), "{err1}");
    // Machine 1's document names the wheel pip installed, with its sha256
    // and URL, and the dependency record carries them.
    let spdx: Value = serde_json::from_slice(&doc1).unwrap();
    let wheel = spdx["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"].as_str().unwrap().eq_ignore_ascii_case("markupsafe"))
        .unwrap_or_else(|| panic!("no markupsafe in {spdx}"));
    let sha256 = wheel["checksums"][0]["checksumValue"].as_str().unwrap();
    assert_eq!(wheel["checksums"][0]["algorithm"], "SHA256", "{wheel}");
    assert!(
        wheel["downloadLocation"]
            .as_str()
            .unwrap()
            .starts_with("https://"),
        "{wheel}"
    );
    let shared = tags(&cache_repo);
    let record = |prefix: &str| -> Value {
        let tag = shared
            .iter()
            .find(|t| t.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} tag in {shared:?}"));
        let raw = run_ok(
            Command::new("skopeo")
                .args(["inspect", "--tls-verify=false", "--raw"])
                .arg(format!("docker://{cache_repo}:{tag}")),
        );
        serde_json::from_slice(&raw.stdout).unwrap()
    };
    let extra = record("deps-v1-")["annotations"]["org.lambda-img.cache.extra"].clone();
    assert!(extra.as_str().unwrap().contains(sha256), "{extra}");
    let document = record("sbom-documents-v1-");
    assert_eq!(document["layers"].as_array().unwrap().len(), 1, "{document}");
    assert_eq!(document["layers"][0]["mediaType"], "application/spdx+json");
    assert_eq!(document["layers"][0]["digest"], r1["sbom"]["digest"]);
    let document_digest = r1["sbom"]["digest"].as_str().unwrap().to_string();

    // The same image, its document and its referrer, on every empty machine
    // without pip or python; `made_here`: whether it made the document.
    let same_everywhere = |name: &str, made_here: bool| -> String {
        let (r, err, doc) = build(&Machine::without_installers(), name);
        assert_eq!(r["digest"], r1["digest"], "{err}");
        assert!(all_from(&r, "cache-registry"), "{:?}", origins(&r));
        assert!(
            doc == doc1,
            "machine {name}'s SBOM differs:\n{}",
            String::from_utf8_lossy(&doc)
        );
        assert_eq!(r["sbom"]["digest"], r1["sbom"]["digest"]);
        assert_eq!(
            r["sbom"]["referrers"][0]["manifest"], r1["sbom"]["referrers"][0]["manifest"],
            "{}",
            r["sbom"]
        );
        assert_eq!(pushed_document(&err), made_here, "{err}");
        err
    };
    let err2 = same_everywhere("two", false);
    assert!(cache_warnings(&err2).is_empty(), "{err2}");

    // The cache repository's link for the document names another blob: it
    // is refused (one warning), the document is made from the layers with
    // the shared wheel hashes, and put back.
    let hex = document_digest.strip_prefix("sha256:").unwrap();
    let other = upload_blob(&host, "sbom-cache", &vec![7u8; 100_000]);
    let link = registry
        .storage()
        .join("docker/registry/v2/repositories/sbom-cache/_layers/sha256")
        .join(hex)
        .join("link");
    std::fs::write(&link, &other).unwrap();
    let err3 = same_everywhere("three", true);
    let warnings = cache_warnings(&err3);
    assert_eq!(warnings.len(), 1, "{err3}");
    assert!(
        warnings[0].contains("refused") && warnings[0].contains("sbom-documents-v1-"),
        "{}",
        warnings[0]
    );
    assert_eq!(std::fs::read_to_string(&link).unwrap(), document_digest);
    let err4 = same_everywhere("four", false);
    assert!(cache_warnings(&err4).is_empty(), "{err4}");

    // The document's bytes are gone from the registry's storage: missing
    // (one warning), made here and uploaded again.
    let stored = registry
        .storage()
        .join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex);
    std::fs::remove_dir_all(&stored).unwrap();
    let err5 = same_everywhere("five", true);
    let warnings = cache_warnings(&err5);
    assert_eq!(warnings.len(), 1, "{err5}");
    assert!(warnings[0].contains("missing"), "{}", warnings[0]);
    let err6 = same_everywhere("six", false);
    assert!(cache_warnings(&err6).is_empty(), "{err6}");
}

/// Uploads `bytes` as a blob of `repo` with curl (POST, then PUT `?digest=`); its digest.
fn upload_blob(host: &str, repo: &str, bytes: &[u8]) -> String {
    let started = run_ok(Command::new("curl").args([
        "-fsS",
        "-X",
        "POST",
        "-D",
        "-",
        "-o",
        "/dev/null",
        &format!("http://{host}/v2/{repo}/blobs/uploads/"),
    ]));
    let headers = String::from_utf8(started.stdout).unwrap();
    let location = headers
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("location")
                .then(|| value.trim().to_string())
        })
        .expect("the upload has a Location");
    let url = match location.starts_with("http") {
        true => location,
        false => format!("http://{host}{location}"),
    };
    let digest = lambda_img::image::Digest::of(bytes).to_string();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), bytes).unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    run_ok(Command::new("curl").args([
        "-fsS",
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        &format!("@{}", file.path().display()),
        &format!("{url}{sep}digest={digest}"),
    ]));
    digest
}

/// Points every function of a checkout of examples/monorepo at a stand-in base.
fn monorepo(registry: &TestRegistry, tmp: &Path) -> std::path::PathBuf {
    let (root, _) = crate::codebuild::monorepo_checkout(tmp);
    let monorepo = root.join("examples/monorepo");
    let pin_cache = tmp.join("pin-cache");
    for f in ["notifications", "orders", "payments"] {
        stand_in::point_at(
            &monorepo.join(format!("functions/{f}/lambda-img.toml")),
            registry,
            &pin_cache,
        );
    }
    monorepo
}

/// `build --recursive --json`: (function, report) pairs.
fn recursive(machine: &Machine, dir: &Path, args: &[&str]) -> Vec<(String, Value)> {
    let out = run_ok(&mut machine.cmd(
        dir,
        &[&["build", "--recursive", "--json"], args, &["functions"]].concat(),
    ));
    let all: Value = serde_json::from_slice(&out.stdout).unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .map(|f| (f["function"].as_str().unwrap().to_string(), f["report"].clone()))
        .collect()
}

#[test]
fn cache_registry_shares_a_monorepo_between_two_machines() {
    if !require_tool("skopeo") {
        return;
    }
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    stand_in::publish(&registry, "lambda/python:3.12");
    let tmp = tempfile::tempdir().unwrap();
    let monorepo = monorepo(&registry, tmp.path());
    let host = registry.host();
    let cache_repo = format!("{host}/build-cache");

    let one = Machine::new();
    let out_one = format!("registry:{host}/one/{{function}}:1");
    let first = recursive(
        &one,
        &monorepo,
        &["--cache-registry", &cache_repo, "--output", &out_one],
    );
    assert_eq!(first.len(), 3);
    // Machine 2 through a proxy that only logs what it is asked.
    let proxy = FaultProxy::start(registry.port);
    let two = Machine::without_installers();
    let out_two = format!("registry:{}/two/{{function}}:1", proxy.host());
    let cache_via_proxy = format!("{}/build-cache", proxy.host());
    let second = recursive(
        &two,
        &monorepo,
        &["--cache-registry", &cache_via_proxy, "--output", &out_two],
    );
    // Records and blobs are fetched ahead of the builds that need them,
    // each once: no record is looked up twice, no blob pulled twice.
    let mut asked = std::collections::BTreeMap::<String, usize>::new();
    for (method, path, _) in proxy.log.lock().unwrap().iter() {
        if method == "GET" && path.starts_with("/v2/build-cache/") {
            *asked.entry(path.clone()).or_default() += 1;
        }
    }
    assert!(asked.values().all(|n| *n == 1), "{asked:#?}");
    let records = |kind: &str| {
        asked
            .keys()
            .filter(|p| p.contains(&format!("/manifests/{kind}")))
            .count()
    };
    assert_eq!(
        records("layers-v1-"),
        4,
        "one shared layer and three code layers: {asked:#?}"
    );
    // Each function's SBOM document is machine 1's, not made again.
    assert_eq!(records("sbom-documents-v1-"), 3, "{asked:#?}");
    assert_eq!(
        asked.keys().filter(|p| p.contains("/manifests/")).count(),
        7,
        "{asked:#?}"
    );
    for ((name, a), (name2, b)) in first.iter().zip(&second) {
        assert_eq!(name, name2);
        assert_eq!(a["digest"], b["digest"], "{name}");
        // The shared layer came from the registry once, then from the local cache.
        let o = origins(b);
        assert!(
            o.iter().all(|(_, f)| f == "cache-registry" || f == "local-cache"),
            "{name}: {o:?}"
        );
        assert_eq!(from_of(b, "code"), "cache-registry", "{name}");
        // Every layer from the cache repository is mounted. (The base was
        // pulled from the registry by its own name, not the proxy's: to the
        // client another registry, whose blobs it cannot mount.)
        let base: Vec<&Value> = b["layers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["origin"] == "base")
            .map(|l| &l["digest"])
            .collect();
        let pushes: Vec<&Value> = b["outputs"][0]["blobs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["kind"] == "layer" && !base.contains(&&p["digest"]))
            .map(|p| &p["action"])
            .collect();
        assert!(
            !pushes.is_empty() && pushes.iter().all(|a| *a == "mounted" || *a == "skipped"),
            "{name}: {pushes:?}"
        );
        assert_eq!(
            skopeo_digest(&format!("{host}/two/{name}:1")),
            a["digest"].as_str().unwrap()
        );
    }
    assert!(
        all_from(&second[0].1, "cache-registry"),
        "{:?}",
        origins(&second[0].1)
    );
    // The shared layer is one record for all three functions.
    let shared = |r: &Value| {
        r["layers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"] == "shared")
            .unwrap()["digest"]
            .clone()
    };
    assert!(first.iter().all(|(_, r)| shared(r) == shared(&first[0].1)));
    let tags = tags(&cache_repo);
    let kind = |prefix: &str| tags.iter().filter(|t| t.starts_with(prefix)).count();
    assert_eq!(kind("layers-v1-"), 4, "one shared layer and three code layers");
    assert_eq!(kind("sbom-documents-v1-"), 3, "one SBOM document per function");
    assert_eq!(tags.len(), 7, "{tags:?}");
}

/// Puts `edit`ed bytes of the record `tag` of `repo` back under the same tag.
fn rewrite_record(host: &str, repo: &str, tag: &str, edit: impl Fn(String) -> String) {
    let url = format!("http://{host}/v2/{repo}/manifests/{tag}");
    let got = run_ok(Command::new("curl").args([
        "-fsS",
        "-H",
        "Accept: application/vnd.oci.image.manifest.v1+json",
        &url,
    ]));
    let edited = edit(String::from_utf8(got.stdout).unwrap());
    run_ok(Command::new("curl").args([
        "-fsS",
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/vnd.oci.image.manifest.v1+json",
        "--data-binary",
        &edited,
        &url,
    ]));
}

fn layer_digest(report: &Value, name: &str) -> String {
    report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == name)
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn cache_registry_faults_fall_back_to_building_with_one_warning() {
    if !require_tool("curl") || !require_tool("skopeo") {
        return;
    }
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let host = registry.host();
    let project = plain_function();
    let reference = Machine::new();
    let (expected, _) = reference.build(project.path(), &["--cache-registry", &format!("{host}/cache")]);
    let digest = expected["digest"].clone();
    let local_keys = |machine: &Machine| {
        // The code layer's key is the name of its local record.
        let dir = machine.cache.path().join("layers-v1");
        let keys: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                e.unwrap()
                    .file_name()
                    .to_string_lossy()
                    .trim_end_matches(".json")
                    .to_string()
            })
            .collect();
        keys
    };
    let shared_keys = local_keys(&reference);
    assert_eq!(shared_keys.len(), 2);

    let proxy = FaultProxy::start(registry.port);
    let via_proxy = format!("{}/cache", proxy.host());
    // Each case: a fault, then a build on a new machine through the proxy.
    let build = |extra: &[&str]| {
        let m = Machine::new();
        let (r, err) = m.build(
            project.path(),
            &[&["--cache-registry", via_proxy.as_str()], extra].concat(),
        );
        assert_eq!(r["digest"], digest, "{err}");
        (r, err)
    };
    let fault = |method: &'static str, path: &str, kind: FaultKind| {
        proxy.add(Fault {
            method,
            path_contains: path.to_string(),
            times: 1000,
            kind,
        })
    };

    // Through the proxy, unharmed: everything from the cache registry.
    let (r, err) = build(&[]);
    assert!(all_from(&r, "cache-registry"), "{err}");

    // Down (every manifest lookup answers 503): asked once, one warning.
    fault("GET", "/manifests/", FaultKind::Status(503));
    let (r, err) = build(&[]);
    assert!(all_from(&r, "built"), "{:?}", origins(&r));
    let w = cache_warnings(&err);
    assert_eq!(w.len(), 1, "{err}");
    assert!(w[0].contains("not using it again"), "{}", w[0]);
    let refused: std::collections::BTreeSet<String> = proxy
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, _, status)| *status == 503)
        .map(|(_, path, _)| path.clone())
        .collect();
    assert_eq!(refused.len(), 1, "asked for one record only: {refused:?}");
    drop(proxy);

    // Each of the following gets a proxy of its own.
    let fresh = || {
        let p = FaultProxy::start(registry.port);
        let name = format!("{}/cache", p.host());
        (p, name)
    };
    let build_via = |name: &str, extra: &[&str]| {
        let m = Machine::new();
        let (r, err) = m.build(project.path(), &[&["--cache-registry", name], extra].concat());
        assert_eq!(r["digest"], digest, "{err}");
        (r, err)
    };

    // Slow: a lookup that hangs is cut after --registry-timeout, once.
    let (p, name) = fresh();
    p.add(Fault {
        method: "GET",
        path_contains: "/manifests/".into(),
        times: 1000,
        kind: FaultKind::Stall(Duration::from_secs(6)),
    });
    let (r, err) = build_via(&name, &["--registry-timeout", "2"]);
    assert!(all_from(&r, "built"));
    assert_eq!(cache_warnings(&err).len(), 1, "{err}");
    drop(p);

    // Lies: a blob whose bytes are not its digest is refused.
    let (p, name) = fresh();
    p.add(Fault {
        method: "GET",
        path_contains: "/blobs/sha256:".into(),
        times: 1000,
        kind: FaultKind::Corrupt,
    });
    // The machine would replace them, but this registry cannot delete blobs
    // (405, as Distribution answers without storage.delete.enabled): one
    // warning per blob saying so, and no upload over them.
    p.add(Fault {
        method: "DELETE",
        path_contains: "/blobs/sha256:".into(),
        times: 1000,
        kind: FaultKind::Status(405),
    });
    let (r, err) = build_via(&name, &[]);
    assert!(all_from(&r, "built"), "{:?}", origins(&r));
    let w = cache_warnings(&err);
    assert!(!w.is_empty() && w.iter().all(|l| l.contains("refused")), "{err}");
    let undeletable = w.iter().filter(|l| l.contains("storage.delete.enabled")).count();
    assert_eq!(undeletable, 2, "{err}");
    assert_eq!(p.count("DELETE", "/blobs/"), 2, "each damaged blob asked once");
    assert_eq!(p.count("PUT", "/blobs/uploads/"), 0, "{err}");
    drop(p);

    // A record whose blob is missing.
    let code = layer_digest(&expected, "code");
    run_ok(Command::new("curl").args([
        "-fsS",
        "-X",
        "DELETE",
        &format!("http://{host}/v2/cache/blobs/{code}"),
    ]));
    let (r, err) = build_via(&format!("{host}/cache"), &[]);
    assert_eq!(from_of(&r, "code"), "built");
    assert_eq!(from_of(&r, "interpreter"), "cache-registry");
    let w = cache_warnings(&err);
    assert_eq!(w.len(), 1, "{err}");
    assert!(w[0].contains("missing"), "{}", w[0]);

    // Records of another format version, and a record whose diff_id lies.
    let interpreter = layer_digest(&expected, "interpreter");
    let interpreter_diff_id = expected["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "interpreter")
        .unwrap()["diff_id"]
        .as_str()
        .unwrap()
        .to_string();
    for key in &shared_keys {
        let tag = format!("layers-v1-{key}");
        let raw = run_ok(Command::new("curl").args([
            "-fsS",
            "-H",
            "Accept: application/vnd.oci.image.manifest.v1+json",
            &format!("http://{host}/v2/cache/manifests/{tag}"),
        ]));
        let text = String::from_utf8(raw.stdout).unwrap();
        if text.contains(&interpreter) {
            let other = lambda_img::image::Digest::of(b"another tar").to_string();
            rewrite_record(&host, "cache", &tag, |t| t.replace(&interpreter_diff_id, &other));
        } else {
            rewrite_record(&host, "cache", &tag, |t| {
                t.replace(
                    "\"org.lambda-img.cache.format\":\"1\"",
                    "\"org.lambda-img.cache.format\":\"2\"",
                )
            });
        }
    }
    let (r, err) = build_via(&format!("{host}/cache"), &["--cache-registry-readonly"]);
    assert!(all_from(&r, "built"), "{:?}", origins(&r));
    let w = cache_warnings(&err);
    assert_eq!(w.len(), 2, "{err}");
    assert!(w.iter().any(|l| l.contains("format version 2")), "{err}");
    assert!(w.iter().any(|l| l.contains("uncompresses to")), "{err}");
    // Read-only: nothing was pushed over the bad records.
    let again = Machine::new();
    let (_, err) = again.build(
        project.path(),
        &[
            "--cache-registry",
            &format!("{host}/cache"),
            "--cache-registry-readonly",
        ],
    );
    assert_eq!(cache_warnings(&err).len(), 2, "{err}");

    // Writes refused (403): one warning, the rest of the run reads only.
    let (p, name) = fresh();
    p.add(Fault {
        method: "PUT",
        path_contains: "/manifests/".into(),
        times: 1000,
        kind: FaultKind::Status(403),
    });
    let (_, err) = build_via(&name, &[]);
    let w = cache_warnings(&err);
    assert_eq!(
        w.iter().filter(|l| l.contains("refused a write")).count(),
        1,
        "{err}"
    );
    assert_eq!(p.count("PUT", "/manifests/"), 1, "no write after the refusal");
    drop(p);
}

#[test]
fn cache_registry_settings_merge_flag_environment_and_manifest() {
    let manifest = format!(
        "{}\n[cache]\nregistry = \"127.0.0.1:5000/from-toml\"\nreadonly = true\n",
        function_manifest(false)
    );
    let project = Project::new(
        &manifest,
        &[("app.py", "x = 1\n"), ("fake/python3", FAKE_INTERPRETER)],
    );
    let settings = |env: &[(&str, &str)]| {
        let mut cmd = project.cmd(&["build", "--print-settings"]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let v: Value = serde_json::from_slice(&run_ok(&mut cmd).stdout).unwrap();
        v["cache_registry"].clone()
    };
    let toml = settings(&[]);
    assert_eq!(toml["registry"], "127.0.0.1:5000/from-toml");
    assert_eq!(toml["readonly"], true);
    let env = settings(&[("LAMBDA_IMG_CACHE_REGISTRY", "127.0.0.1:5000/from-env")]);
    assert_eq!(env["registry"], "127.0.0.1:5000/from-env");
    assert_eq!(
        env["readonly"], false,
        "the manifest's readonly is its own registry's"
    );
    let ro = settings(&[
        ("LAMBDA_IMG_CACHE_REGISTRY", "127.0.0.1:5000/from-env"),
        ("LAMBDA_IMG_CACHE_REGISTRY_READONLY", "true"),
    ]);
    assert_eq!(ro["readonly"], true);

    // A registry that is not a repository is an error naming the file and line.
    std::fs::write(
        project.join("lambda-img.toml"),
        format!(
            "{}\n[cache]\nregistry = \"just-a-host\"\n",
            function_manifest(false)
        ),
    )
    .unwrap();
    let err = stderr(&project.build_fail(&[]));
    assert!(
        err.contains("lambda-img.toml") && err.contains("cache.registry") && err.contains("HOST/REPOSITORY"),
        "{err}"
    );
    // A tag is refused by --cache-registry before anything is built.
    std::fs::write(project.join("lambda-img.toml"), function_manifest(false)).unwrap();
    let err = stderr(&project.build_fail(&["--cache-registry", "127.0.0.1:5000/cache:latest"]));
    assert!(
        err.contains("--cache-registry") && err.contains("repository only"),
        "{err}"
    );
}
