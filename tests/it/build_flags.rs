//! The flags a first build reaches for, checked with real tools: `build
//! --metadata-file` against what skopeo reads from a Distribution registry;
//! `--registry-mirror` under a prefix, verified against a lying mirror (the
//! fault proxy in front of the real registry), and the error an unreachable
//! base gives; `build --arch` and `pin --arch` over `function.architecture`.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::getting_started::{layer_digests, skopeo_json};
use crate::support::registry::TestRegistry;
use crate::support::{lambda_img, require_tool, run_fail, run_ok, stand_in, stderr, stdout};

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
    provided_function(&dir, "meta", &base_digest);
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
    provided_function(&dir, "m", &base_digest);
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

/// A provided.al2023 function named `name` whose executable bootstrap sits in
/// /var/runtime, on the stand-in base published as `public.ecr.aws/lambda/provided:al2023`.
fn provided_function(dir: &Path, name: &str, base_digest: &str) {
    crate::support::write_files(
        dir,
        &[
            ("bootstrap", "#!/bin/sh\necho hi\n"),
            (
                "lambda-img.toml",
                &format!(
                    "[function]\nname = \"{name}\"\nruntime = \"provided.al2023\"\narchitecture = \"x86_64\"\n[base]\nimage = \"public.ecr.aws/lambda/provided:al2023@{base_digest}\"\n[code]\nsources = [\"bootstrap\"]\ndestination = \"/var/runtime/\"\n"
                ),
            ),
        ],
    );
    std::fs::set_permissions(
        dir.join("bootstrap"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
}

/// `-v` names the request that failed when a registry keeps failing (the
/// method and URL, no query string); without `-v` the message stays short.
#[test]
fn verbose_names_the_request_a_failing_push_gave_up_on() {
    use crate::support::fault_proxy::{Fault, FaultKind, FaultProxy};
    use crate::support::project::{Project, scratch_manifest};
    if !require_tool("busybox") {
        return;
    }
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let proxy = FaultProxy::start(registry.port);
    proxy.add(Fault {
        method: "PUT",
        path_contains: "/manifests/".into(),
        times: 1000,
        kind: FaultKind::Status(500),
    });
    let p = Project::new(&scratch_manifest(""), &[]);
    p.copy_in(Path::new("/bin/busybox"), "busybox");
    let output = format!("registry:{}/fn/app:1", proxy.host());
    let failed = format!(
        "failed request: PUT http://{}/v2/fn/app/manifests/1",
        proxy.host()
    );

    let quiet = run_fail(&mut p.cmd(&["build", "--output", &output]));
    let err = stderr(&quiet);
    assert!(err.contains("answered 500"), "{err}");
    assert!(
        !err.contains("failed request"),
        "only -v names the request: {err}"
    );

    let verbose = run_fail(&mut p.cmd(&["-v", "build", "--output", &output]));
    let err = stderr(&verbose);
    assert!(err.contains(&failed), "-v names the request ({failed}): {err}");

    // A network failure (a registry that stops answering) as well.
    let stalled = FaultProxy::start(registry.port);
    stalled.add(Fault {
        method: "PUT",
        path_contains: "/manifests/".into(),
        times: 1000,
        kind: FaultKind::Stall(std::time::Duration::from_secs(30)),
    });
    let output = format!("registry:{}/fn/app:1", stalled.host());
    let failed = format!(
        "failed request: PUT http://{}/v2/fn/app/manifests/1",
        stalled.host()
    );
    let args = ["-v", "--registry-timeout", "4", "build", "--output", &output];
    let err = stderr(&run_fail(&mut p.cmd(&args)));
    assert!(err.contains("did not answer"), "{err}");
    assert!(err.contains(&failed), "-v names the request ({failed}): {err}");
}
