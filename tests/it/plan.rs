//! `lambda-img plan` on a real git repository holding a copy of
//! examples/monorepo: every function with its layers' input keys (the build's
//! own keys), and `--changed-since` listing exactly the functions each commit
//! touched, as real `git` reports the changes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::codebuild::{PASSWORD, have_yaml, monorepo_checkout, pushed_config, run_buildspec};
use crate::init::base_repository;
use crate::support::registry::TestRegistry;
use crate::support::{bin, lambda_img, require_tool, run_fail, run_ok, stand_in, stderr, stdout};

const FUNCTIONS: [&str; 3] = ["notifications", "orders", "payments"];

/// `git ARGS` in `dir`, as a committer with a fixed identity.
fn git(dir: &Path, args: &[&str]) {
    run_ok(
        Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=plan test", "-c", "user.email=plan@example.com"])
            .args(["-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main"])
            .args(args),
    );
}

/// A git repository of a copy of examples/monorepo, everything committed;
/// returns the repository root and the monorepo inside it.
fn repository(tmp: &Path) -> (PathBuf, PathBuf) {
    let (root, _) = monorepo_checkout(tmp);
    git(&root, &["init", "-q"]);
    commit_all(&root, "the monorepo");
    (root.clone(), root.join("examples/monorepo"))
}

fn commit_all(root: &Path, message: &str) {
    git(root, &["add", "-A"]);
    git(root, &["commit", "-q", "-m", message]);
}

fn append(path: &Path, text: &str) {
    let mut body = std::fs::read_to_string(path).unwrap();
    body.push_str(text);
    std::fs::write(path, body).unwrap();
}

/// `plan --json ARGS functions` run in the monorepo, parsed.
fn plan_json(monorepo: &Path, cache: &Path, args: &[&str]) -> Value {
    let out = run_ok(
        lambda_img(cache)
            .current_dir(monorepo)
            .args(["plan", "--json"])
            .args(args)
            .arg("functions"),
    );
    serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("plan --json: {e}: {}", stdout(&out)))
}

/// The functions a plan lists, by name.
fn names(plan: &Value) -> Vec<String> {
    plan["include"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect()
}

/// `function → layer name → key`.
fn keys(plan: &Value) -> BTreeMap<String, Vec<(String, String)>> {
    plan["include"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let layers = f["layers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| {
                    (
                        l["name"].as_str().unwrap().to_string(),
                        l["key"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            (f["name"].as_str().unwrap().to_string(), layers)
        })
        .collect()
}

fn key_of(plan: &Value, function: &str, layer: &str) -> String {
    keys(plan)[function]
        .iter()
        .find(|(n, _)| n == layer)
        .unwrap_or_else(|| panic!("{function} has no layer {layer}"))
        .1
        .clone()
}

/// The functions `plan --changed-since HEAD~1` lists, checked against the
/// plain form (one directory a line on stdout).
fn changed_since_parent(monorepo: &Path, cache: &Path) -> Vec<String> {
    let plan = plan_json(monorepo, cache, &["--changed-since", "HEAD~1"]);
    let listed = names(&plan);
    let plain = run_ok(lambda_img(cache).current_dir(monorepo).args([
        "plan",
        "--changed-since",
        "HEAD~1",
        "functions",
    ]));
    let dirs: Vec<String> = stdout(&plain).lines().map(str::to_string).collect();
    let expected: Vec<String> = listed.iter().map(|f| format!("functions/{f}")).collect();
    assert_eq!(dirs, expected, "plain lines name each function's directory");
    listed
}

#[test]
fn plan_json_lists_every_function_with_stable_keys_that_follow_the_sources() {
    if !require_tool("git") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (_root, monorepo) = repository(tmp.path());
    let cache = tmp.path().join("cache");

    let first = plan_json(&monorepo, &cache, &[]);
    assert_eq!(names(&first), FUNCTIONS);
    // Only `include` at the top: any other key would be a matrix dimension in GitHub Actions.
    assert_eq!(first.as_object().unwrap().keys().collect::<Vec<_>>(), ["include"]);
    for (entry, f) in first["include"].as_array().unwrap().iter().zip(FUNCTIONS) {
        let manifest = format!("functions/{f}/lambda-img.toml");
        assert_eq!(entry["manifest"], manifest.as_str());
        assert_eq!(entry["directory"], format!("functions/{f}").as_str());
        assert_eq!(entry["architecture"], "x86_64");
        assert_eq!(entry["runtime"], "python3.12");
        // The base exactly as the manifest writes it.
        let text = std::fs::read_to_string(monorepo.join(&manifest)).unwrap();
        let base = entry["base"].as_str().unwrap();
        assert!(
            base.starts_with("public.ecr.aws/lambda/python:3.12@sha256:")
                && text.contains(&format!("image = \"{base}\"")),
            "{base}"
        );
        let all = keys(&first);
        let layers: Vec<&str> = all[f].iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(layers, ["shared", "code"], "{f}");
        for (_, key) in &all[f] {
            assert!(
                key.len() == 64 && key.chars().all(|c| c.is_ascii_hexdigit()),
                "{key}"
            );
        }
    }
    // One shared package, one key; each function's own code, its own key.
    let shared = key_of(&first, "orders", "shared");
    assert!(FUNCTIONS.iter().all(|f| key_of(&first, f, "shared") == shared));
    assert_ne!(
        key_of(&first, "orders", "code"),
        key_of(&first, "payments", "code")
    );

    // Each entry is a CodeBuild build-list task too: an identifier and variables.
    for (b, f) in first["include"].as_array().unwrap().iter().zip(FUNCTIONS) {
        assert_eq!(b["identifier"], f);
        let vars = &b["env"]["variables"];
        assert_eq!(vars["FUNCTION"], f);
        assert_eq!(vars["FUNCTION_DIR"], format!("functions/{f}").as_str());
        assert_eq!(
            vars["FUNCTION_MANIFEST"],
            format!("functions/{f}/lambda-img.toml").as_str()
        );
        assert_eq!(vars["FUNCTION_ARCH"], "x86_64");
    }

    // Stable: a second run (stat index warm) and a run on an empty cache agree.
    assert_eq!(keys(&plan_json(&monorepo, &cache, &[])), keys(&first));
    let fresh = tmp.path().join("fresh-cache");
    assert_eq!(keys(&plan_json(&monorepo, &fresh, &[])), keys(&first));
    // ...and so does another checkout elsewhere (another runner's disk).
    let (elsewhere, _) = monorepo_checkout(&tmp.path().join("elsewhere"));
    let other_checkout = plan_json(&elsewhere.join("examples/monorepo"), &fresh, &[]);
    assert_eq!(keys(&other_checkout), keys(&first));
    // The keys are those of a build with the same settings: another epoch, other keys.
    let other = plan_json(&monorepo, &cache, &["--source-date-epoch", "1700000000"]);
    assert_ne!(key_of(&other, "orders", "code"), key_of(&first, "orders", "code"));

    // A source changes: that function's code key moves, nothing else does.
    append(&monorepo.join("functions/orders/src/app.py"), "\n# changed\n");
    let second = plan_json(&monorepo, &cache, &[]);
    assert_ne!(
        key_of(&second, "orders", "code"),
        key_of(&first, "orders", "code")
    );
    for f in ["notifications", "payments"] {
        assert_eq!(keys(&second)[f], keys(&first)[f], "{f}");
    }
    // The shared package changes: every function's shared key moves, together.
    append(&monorepo.join("shared/common/__init__.py"), "\n# changed\n");
    let third = plan_json(&monorepo, &cache, &[]);
    let moved = key_of(&third, "orders", "shared");
    assert_ne!(moved, shared);
    assert!(FUNCTIONS.iter().all(|f| key_of(&third, f, "shared") == moved));
}

#[test]
fn plan_changed_since_lists_exactly_the_functions_a_commit_touched() {
    if !require_tool("git") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (root, monorepo) = repository(tmp.path());
    let cache = tmp.path().join("cache");

    // A second shared package, used by two of the three functions.
    let billing = monorepo.join("shared/billing");
    std::fs::create_dir_all(&billing).unwrap();
    std::fs::write(billing.join("__init__.py"), "RATE = 1\n").unwrap();
    for f in ["orders", "payments"] {
        append(
            &monorepo.join(format!("functions/{f}/lambda-img.toml")),
            "\n[[layer]]\nname = \"billing\"\nsources = [\"../../shared/billing\"]\ndestination = \"/opt/python/billing\"\n",
        );
    }
    commit_all(&root, "billing, for orders and payments");
    assert_eq!(changed_since_parent(&monorepo, &cache), ["orders", "payments"]);

    // A code file of one function.
    append(&monorepo.join("functions/notifications/src/app.py"), "\n# v2\n");
    commit_all(&root, "notifications v2");
    assert_eq!(changed_since_parent(&monorepo, &cache), ["notifications"]);

    // A shared file used by two.
    append(&billing.join("__init__.py"), "RATE = 2\n");
    commit_all(&root, "billing rate");
    assert_eq!(changed_since_parent(&monorepo, &cache), ["orders", "payments"]);

    // The shared file used by all three.
    append(&monorepo.join("shared/common/__init__.py"), "\n# v2\n");
    commit_all(&root, "common v2");
    assert_eq!(changed_since_parent(&monorepo, &cache), FUNCTIONS);

    // The manifest of one (a setting, no source).
    append(
        &monorepo.join("functions/payments/lambda-img.toml"),
        "\n[image]\nenv = { STAGE = \"prod\" }\n",
    );
    commit_all(&root, "payments env");
    assert_eq!(changed_since_parent(&monorepo, &cache), ["payments"]);

    // A deleted source file.
    std::fs::write(monorepo.join("functions/orders/src/util.py"), "X = 1\n").unwrap();
    commit_all(&root, "orders util");
    std::fs::remove_file(monorepo.join("functions/orders/src/util.py")).unwrap();
    commit_all(&root, "orders util gone");
    assert_eq!(changed_since_parent(&monorepo, &cache), ["orders"]);

    // A file outside every function's inputs touches none.
    append(&monorepo.join("Makefile"), "\n# a comment\n");
    commit_all(&root, "makefile");
    assert!(changed_since_parent(&monorepo, &cache).is_empty());
    let plan = plan_json(&monorepo, &cache, &["--changed-since", "HEAD~1"]);
    assert_eq!(plan, serde_json::json!({ "include": [] }));

    // Uncommitted work counts: an untracked file a layer selects does, a
    // file the code layer leaves out (__pycache__) does not.
    std::fs::create_dir_all(monorepo.join("functions/orders/src/__pycache__")).unwrap();
    std::fs::write(
        monorepo.join("functions/orders/src/__pycache__/app.cpython-312.pyc"),
        "bytecode",
    )
    .unwrap();
    let plan = plan_json(&monorepo, &cache, &["--changed-since", "HEAD"]);
    assert!(names(&plan).is_empty(), "{plan}");
    std::fs::write(monorepo.join("functions/payments/src/new.py"), "Y = 1\n").unwrap();
    let plan = plan_json(&monorepo, &cache, &["--changed-since", "HEAD"]);
    assert_eq!(names(&plan), ["payments"]);
    assert_eq!(
        plan["include"][0]["changed"],
        serde_json::json!(["functions/payments/src/new.py"])
    );

    // A revision git does not know: a clear error, before any hashing.
    let out = run_fail(lambda_img(&cache).current_dir(&monorepo).args([
        "plan",
        "--changed-since",
        "no-such-rev",
        "functions",
    ]));
    let err = stderr(&out);
    assert!(
        err.contains("no-such-rev") && err.contains("fetch-depth"),
        "{err}"
    );
}

#[test]
fn plan_changed_since_follows_a_real_base_repin_and_its_keys_are_the_builds() {
    if !require_tool("git") || !require_tool("docker-registry") {
        return;
    }
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let repository_path = base_repository("python3.12");
    stand_in::publish(&registry, repository_path);
    let tmp = tempfile::tempdir().unwrap();
    let (root, monorepo) = repository(tmp.path());
    let cache = tmp.path().join("cache");
    let manifest = |f: &str| monorepo.join(format!("functions/{f}/lambda-img.toml"));
    for f in FUNCTIONS {
        stand_in::point_at(&manifest(f), &registry, &cache);
    }
    commit_all(&root, "bases from the test registry");
    assert_eq!(changed_since_parent(&monorepo, &cache), FUNCTIONS);

    // AWS publishes a patched base under the same tag; only payments moves onto it.
    stand_in::publish_patched(&registry, repository_path);
    let before = std::fs::read_to_string(manifest("payments")).unwrap();
    run_ok(
        lambda_img(&cache)
            .args(["--quiet", "pin", "--manifest"])
            .arg(manifest("payments")),
    );
    assert_ne!(std::fs::read_to_string(manifest("payments")).unwrap(), before);
    commit_all(&root, "repin payments");
    let plan = plan_json(&monorepo, &cache, &["--changed-since", "HEAD~1"]);
    assert_eq!(names(&plan), ["payments"]);
    assert_eq!(
        plan["include"][0]["changed"],
        serde_json::json!(["functions/payments/lambda-img.toml"])
    );

    // The plan's keys name the records a real build leaves in the cache.
    let all = plan_json(&monorepo, &cache, &[]);
    let out = tmp.path().join("out");
    run_ok(
        lambda_img(&cache)
            .current_dir(monorepo.join("functions/orders"))
            .args(["--quiet", "build", "--output"])
            .arg(format!("oci:{}", out.display())),
    );
    for (layer, key) in &keys(&all)["orders"] {
        assert!(
            cache.join("layers-v1").join(format!("{key}.json")).is_file(),
            "orders' {layer} layer: no cache record under the plan's key {key}"
        );
    }

    // `[system]` in one function: its plan lists the system layer's key first
    // (the base named by its layers, read from the registry's manifest and
    // config: in a fresh cache the config is the only blob the plan fetched),
    // and a change of the package list touches that function alone.
    append(&manifest("payments"), "\n[system]\npackages = [\"jq\"]\n");
    commit_all(&root, "payments installs jq");
    let fresh = tmp.path().join("fresh-cache");
    let plan = plan_json(&monorepo, &fresh, &["--changed-since", "HEAD~1"]);
    assert_eq!(names(&plan), ["payments"]);
    assert_eq!(keys(&plan)["payments"][0].0, "system", "{plan:#}");
    let jq = key_of(&plan, "payments", "system");
    let blobs: Vec<_> = std::fs::read_dir(fresh.join("blobs-v1/sha256"))
        .unwrap()
        .collect();
    assert_eq!(
        blobs.len(),
        1,
        "the plan fetched the base's config and no layer: {blobs:?}"
    );
    let text = std::fs::read_to_string(manifest("payments")).unwrap();
    std::fs::write(
        manifest("payments"),
        text.replace("packages = [\"jq\"]", "packages = [\"jq\", \"git\"]"),
    )
    .unwrap();
    commit_all(&root, "payments installs git too");
    let plan = plan_json(&monorepo, &cache, &["--changed-since", "HEAD~1"]);
    assert_eq!(names(&plan), ["payments"]);
    assert_ne!(
        key_of(&plan, "payments", "system"),
        jq,
        "the package list is in the key"
    );
    assert!(
        keys(&plan_json(&monorepo, &cache, &[]))["orders"]
            .iter()
            .all(|(layer, _)| layer != "system"),
        "a function without [system] has no system layer"
    );
}

/// The GitHub Actions example's plan step, run in bash as a runner would
/// (with `$GITHUB_OUTPUT` a file); returns its outputs.
fn run_github_plan_step(workflow: &Path, root: &Path, cache: &Path, base: &str) -> BTreeMap<String, String> {
    let work = tempfile::tempdir().unwrap();
    let script = work.path().join("plan.sh");
    let extract = format!(
        r#"
import yaml
flow = yaml.safe_load(open({workflow:?}))
steps = flow["jobs"]["plan"]["steps"]
step = next(s for s in steps if s.get("id") == "plan")
matrix = flow["jobs"]["build"]["strategy"]["matrix"]
assert matrix == "${{{{ fromJSON(needs.plan.outputs.matrix) }}}}", matrix
open({script:?}, "w").write("set -e\n" + step["run"])
"#,
        workflow = workflow.display().to_string(),
        script = script.display().to_string(),
    );
    run_ok(Command::new("python3").args(["-c", &extract]));
    let stubs = work.path().join("bin");
    std::fs::create_dir(&stubs).unwrap();
    std::os::unix::fs::symlink(bin(), stubs.join("lambda-img")).unwrap();
    let outputs = work.path().join("github-output");
    run_ok(
        crate::support::command("bash")
            .arg(&script)
            .current_dir(root)
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    stubs.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .env("BASE", base)
            .env("GITHUB_OUTPUT", &outputs)
            .env("LAMBDA_IMG_CACHE", cache)
            .env_remove("SOURCE_DATE_EPOCH"),
    );
    std::fs::read_to_string(&outputs)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn monorepo_ci_examples_build_only_what_a_commit_changed() {
    if !require_tool("git")
        || !require_tool("jq")
        || !require_tool("skopeo")
        || !have_yaml()
        || !require_tool("docker-registry")
    {
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
    let cache = tmp.path().join("cache");
    let (root, monorepo) = repository(tmp.path());
    for f in FUNCTIONS {
        stand_in::point_at(
            &monorepo.join(format!("functions/{f}/lambda-img.toml")),
            &bases,
            &cache,
        );
    }
    commit_all(&root, "bases from the test registry");
    append(&monorepo.join("functions/orders/src/app.py"), "\n# v2\n");
    commit_all(&root, "orders v2");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/monorepo");

    // GitHub Actions: the plan step's output is the matrix, one entry.
    let outputs = run_github_plan_step(&example.join("github-actions.yml"), &root, &cache, "HEAD~1");
    assert_eq!(outputs["count"], "1");
    let matrix: Value = serde_json::from_str(&outputs["matrix"]).unwrap();
    assert_eq!(names(&matrix), ["orders"]);
    assert_eq!(
        matrix["include"][0]["directory"],
        "examples/monorepo/functions/orders"
    );

    // CodeBuild: the planner starts a batch of one task...
    let calls = tmp.path().join("aws-calls");
    let exported = run_buildspec(
        &example.join("buildspec-plan.yml"),
        &root,
        &[
            ("LAMBDA_IMG_CACHE", cache.display().to_string()),
            ("BATCH_PROJECT", "functions-batch".to_string()),
            ("AWS_CALLS", calls.display().to_string()),
        ],
    );
    assert_eq!(exported["FUNCTIONS_CHANGED"], "1");
    let logged = std::fs::read_to_string(&calls).unwrap();
    assert!(
        logged.starts_with("codebuild start-build-batch --project-name functions-batch"),
        "{logged}"
    );
    let batch: Value =
        serde_json::from_slice(&std::fs::read(root.join("batch-buildspec.json")).unwrap()).unwrap();
    let tasks = batch["batch"]["build-list"].as_array().unwrap();
    assert_eq!(tasks.len(), 1, "{batch}");
    assert_eq!(tasks[0]["identifier"], "orders");
    let task_spec = tasks[0]["buildspec"].as_str().unwrap();
    assert!(root.join(task_spec).is_file(), "{task_spec}");

    // ...whose buildspec, with the task's variables, pushes that function.
    let mut env: Vec<(&str, String)> = vec![
        ("REGISTRY", ecr.host()),
        ("LAMBDA_IMG_CACHE", cache.display().to_string()),
        ("CODEBUILD_SRC_DIR", root.display().to_string()),
    ];
    let vars = tasks[0]["env"]["variables"].as_object().unwrap();
    for (k, v) in vars {
        env.push((k.as_str(), v.as_str().unwrap().to_string()));
    }
    let exported = run_buildspec(&root.join(task_spec), &root, &env);
    let uri = &exported["IMAGE_URI"];
    assert!(
        uri.starts_with(&format!("{}/orders@sha256:", ecr.host())),
        "IMAGE_URI={uri}"
    );
    let config = pushed_config(uri);
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(vars["LAMBDA_IMG_CACHE_REGISTRY_READONLY"], "false");
    // The task shared its layers through REGISTRY/lambda-img-cache: the same
    // task on another runner (an empty cache) takes every layer from there.
    let mut empty_disk = env.clone();
    for (k, v) in &mut empty_disk {
        if *k == "LAMBDA_IMG_CACHE" {
            *v = tmp.path().join("cache-two").display().to_string();
        }
    }
    let again = run_buildspec(&root.join(task_spec), &root, &empty_disk);
    assert_eq!(&again["IMAGE_URI"], uri);
    let report: Value = serde_json::from_slice(&std::fs::read(root.join("build.json")).unwrap()).unwrap();
    let froms: Vec<&Value> = report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["origin"] == "built")
        .map(|l| &l["from"])
        .collect();
    assert!(
        !froms.is_empty() && froms.iter().all(|f| *f == "cache-registry"),
        "{froms:?}"
    );

    // A pull request's planner makes its tasks read the cache only.
    run_buildspec(
        &example.join("buildspec-plan.yml"),
        &root,
        &[
            ("LAMBDA_IMG_CACHE", cache.display().to_string()),
            ("BATCH_PROJECT", "functions-batch".to_string()),
            ("AWS_CALLS", calls.display().to_string()),
            ("CODEBUILD_WEBHOOK_EVENT", "PULL_REQUEST_UPDATED".to_string()),
        ],
    );
    let batch: Value =
        serde_json::from_slice(&std::fs::read(root.join("batch-buildspec.json")).unwrap()).unwrap();
    assert_eq!(
        batch["batch"]["build-list"][0]["env"]["variables"]["LAMBDA_IMG_CACHE_REGISTRY_READONLY"], "true",
        "{batch}"
    );

    // A commit touching nothing a function is made of starts no batch.
    append(&monorepo.join("Makefile"), "\n# a comment\n");
    commit_all(&root, "makefile");
    std::fs::remove_file(&calls).unwrap();
    let exported = run_buildspec(
        &example.join("buildspec-plan.yml"),
        &root,
        &[
            ("LAMBDA_IMG_CACHE", cache.display().to_string()),
            ("BATCH_PROJECT", "functions-batch".to_string()),
            ("AWS_CALLS", calls.display().to_string()),
        ],
    );
    assert_eq!(exported["FUNCTIONS_CHANGED"], "0");
    assert!(!calls.exists(), "no batch is started when nothing changed");
    let outputs = run_github_plan_step(&example.join("github-actions.yml"), &root, &cache, "HEAD~1");
    assert_eq!(outputs["count"], "0");
}
