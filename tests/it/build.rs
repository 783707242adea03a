//! `lambda-img build`: outputs checked with skopeo, umoci and podman; layer
//! hygiene read back from the produced tars; determinism across checkouts.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::oci::{blob_path, config, index_entry, layer_entries, manifest};
use crate::support::project::{Project, scratch_manifest};
use crate::support::{require_tool, run_ok, stderr, stdout};

const BUSYBOX: &str = "/bin/busybox";

/// A scratch project whose bootstrap is the static busybox binary.
fn hello_project(extra: &str) -> Option<Project> {
    if !require_tool("busybox") {
        return None;
    }
    let p = Project::new(
        &scratch_manifest(extra),
        &[
            ("data/config.json", "{\"greeting\": \"hi\"}\n"),
            ("lib/util.txt", "util\n"),
        ],
    );
    p.copy_in(Path::new(BUSYBOX), "busybox");
    std::fs::set_permissions(p.join("busybox"), std::fs::Permissions::from_mode(0o700)).unwrap();
    Some(p)
}

fn digest_line(out: &std::process::Output) -> String {
    let text = stdout(out);
    let line = text.trim();
    assert!(
        line.starts_with("sha256:") && line.len() == 71,
        "stdout is not one digest: {text:?}"
    );
    line.to_string()
}

#[test]
fn builds_scratch_image_into_oci_layout_that_skopeo_and_umoci_read() {
    let Some(p) = hello_project("") else { return };
    if !require_tool("skopeo") || !require_tool("umoci") {
        return;
    }
    let out_dir = p.join("out");
    let out = p.build_ok(&["--output", &format!("oci:{}:v1", out_dir.display())]);
    let digest = digest_line(&out);

    // Our index names the printed digest; skopeo sees exactly our manifest bytes.
    assert_eq!(index_entry(&out_dir, "v1")["digest"], digest.as_str());
    let (m, bytes) = manifest(&out_dir, "v1");
    let raw =
        run_ok(Command::new("skopeo").args(["inspect", "--raw", &format!("oci:{}:v1", out_dir.display())]));
    assert_eq!(raw.stdout, bytes, "skopeo reads our manifest bytes unchanged");
    assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(
        m["layers"].as_array().unwrap().len(),
        1,
        "scratch + one code layer"
    );

    let cfg = config(&out_dir, "v1");
    assert_eq!(cfg["architecture"], "amd64");
    assert_eq!(cfg["os"], "linux");
    assert_eq!(
        cfg["config"]["Entrypoint"],
        serde_json::json!(["/var/task/busybox"])
    );
    assert_eq!(cfg["created"], "1980-01-01T00:00:00Z");

    let bundle = tempfile::tempdir().unwrap();
    let bundle_path = bundle.path().join("b");
    run_ok(Command::new("umoci").args([
        "unpack",
        "--rootless",
        "--image",
        &format!("{}:v1", out_dir.display()),
        bundle_path.to_str().unwrap(),
    ]));
    let rootfs = bundle_path.join("rootfs");
    let bootstrap = std::fs::metadata(rootfs.join("var/task/busybox")).unwrap();
    assert_eq!(
        bootstrap.permissions().mode() & 0o777,
        0o755,
        "exec bit normalised to 0755"
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("var/task/data/config.json")).unwrap(),
        "{\"greeting\": \"hi\"}\n"
    );
    assert!(
        !rootfs.join("var/task/lambda-img.toml").exists(),
        "the manifest itself is not shipped"
    );
}

#[test]
fn layer_tars_are_hygienic() {
    let Some(p) = hello_project("") else { return };
    std::fs::hard_link(p.join("lib/util.txt"), p.join("lib/util-link.txt")).unwrap();
    std::os::unix::fs::symlink("util.txt", p.join("lib/alias.txt")).unwrap();
    std::fs::set_permissions(p.join("lib/util.txt"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let out_dir = p.join("out");
    p.build_ok(&["--output", &format!("oci:{}", out_dir.display())]);
    let (m, _) = manifest(&out_dir, "latest");
    let layer = m["layers"][0]["digest"].as_str().unwrap();
    let entries = layer_entries(&blob_path(&out_dir, layer));
    let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();

    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted, "entries sorted");
    for (i, e) in entries.iter().enumerate() {
        // Every ancestor directory appears earlier, as a directory.
        let trimmed = e.path.trim_end_matches('/');
        let mut parent = Path::new(trimmed).parent();
        while let Some(dir) = parent.filter(|d| !d.as_os_str().is_empty()) {
            let want = format!("{}/", dir.display());
            let pos = paths.iter().position(|p| *p == want);
            assert!(
                pos.is_some_and(|pos| pos < i),
                "{} has no earlier parent entry {want}",
                e.path
            );
            parent = dir.parent();
        }
        assert_ne!(e.kind, tar::EntryType::Link, "hard link entry {}", e.path);
        assert_eq!((e.uid, e.gid), (0, 0), "owner of {}", e.path);
        assert!(
            e.uname.is_empty() && e.gname.is_empty(),
            "user/group names of {}",
            e.path
        );
        assert_eq!(e.mtime, 315_532_800, "mtime of {}", e.path);
        match e.kind {
            tar::EntryType::Directory => assert_eq!(e.mode, 0o755, "{}", e.path),
            tar::EntryType::Regular => {
                assert!(e.mode == 0o644 || e.mode == 0o755, "{} mode {:o}", e.path, e.mode)
            }
            tar::EntryType::Symlink => assert_eq!(e.link.as_deref(), Some("util.txt")),
            other => panic!("unexpected entry type {other:?} for {}", e.path),
        }
    }
    let util = entries
        .iter()
        .find(|e| e.path == "var/task/lib/util.txt")
        .unwrap();
    assert_eq!(util.mode, 0o644, "0600 made readable by the Lambda user");
    let linked = entries
        .iter()
        .find(|e| e.path == "var/task/lib/util-link.txt")
        .unwrap();
    assert_eq!(
        (linked.kind, linked.data.as_slice()),
        (tar::EntryType::Regular, b"util\n".as_slice())
    );
    assert!(paths.starts_with(&["var/", "var/task/"]), "{paths:?}");
}

#[test]
fn same_inputs_give_the_same_digest_across_paths_times_and_umasks() {
    let Some(a) = hello_project("") else { return };
    let Some(b) = hello_project("") else { return };
    // Different mtimes and permission bits that normalise to the same modes.
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
    std::fs::File::options()
        .write(true)
        .open(b.join("lib/util.txt"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    std::fs::set_permissions(b.join("lib/util.txt"), std::fs::Permissions::from_mode(0o640)).unwrap();
    std::fs::set_permissions(b.join("data"), std::fs::Permissions::from_mode(0o700)).unwrap();
    let da = digest_line(&a.build_ok(&[]));
    let db = digest_line(&b.build_ok(&[]));
    assert_eq!(da, db);
    // SOURCE_DATE_EPOCH changes the bytes.
    let dc = digest_line(&a.build_ok(&["--source-date-epoch", "1700000000"]));
    assert_ne!(da, dc);
}

/// A monorepo function takes a shared folder from beside its project
/// (`../../shared`): the history names it relative to the project, so two
/// checkouts at different paths still give one digest.
#[test]
fn a_source_beside_the_project_keeps_the_digest_independent_of_the_checkout() {
    if !require_tool("busybox") {
        return;
    }
    let build = |root: &Path| -> (String, Value) {
        let func = root.join("functions/hello");
        std::fs::create_dir_all(&func).unwrap();
        std::fs::create_dir_all(root.join("shared")).unwrap();
        std::fs::write(root.join("shared/common.txt"), "shared\n").unwrap();
        let layer =
            "[[layer]]\nname = \"shared\"\nsources = [\"../../shared\"]\ndestination = \"/opt/shared\"\n";
        std::fs::write(func.join("lambda-img.toml"), scratch_manifest(layer)).unwrap();
        std::fs::copy(BUSYBOX, func.join("busybox")).unwrap();
        std::fs::set_permissions(func.join("busybox"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let cache = tempfile::tempdir().unwrap();
        let out = root.join("out");
        let built = run_ok(
            crate::support::lambda_img(cache.path())
                .arg("-C")
                .arg(&func)
                .args(["build", "--output"])
                .arg(format!("oci:{}", out.display())),
        );
        (digest_line(&built), config(&out, "latest"))
    };
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (da, config_a) = build(&a.path().join("one"));
    let (db, _) = build(&b.path().join("somewhere/deeper"));
    assert_eq!(da, db);
    let created: Vec<&str> = config_a["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["created_by"].as_str())
        .collect();
    assert!(
        created.iter().any(|c| c.contains("../../shared → /opt/shared")),
        "{created:?}"
    );
}

/// A built layer carries the plan's description of its sources (relative to
/// the project, the words of its history), whether built now or found in the cache.
#[test]
fn built_layers_carry_the_plans_description_of_their_sources() {
    let Some(p) = hello_project("") else { return };
    for (run, cached) in [("first", false), ("second", true)] {
        let report: Value = serde_json::from_slice(&p.build_ok(&["--json"]).stdout).unwrap();
        let code = &report["layers"][0];
        assert_eq!(code["cached"], cached, "{run} build");
        // The project's own directory, as the plan words it (the layer
        // module alone would name the checkout's absolute path).
        assert_eq!(code["source"], ". → /var/task", "{run} build");
    }
}

#[test]
fn json_report_lists_layers_and_cache_hits() {
    let Some(p) = hello_project("") else { return };
    let first: Value = serde_json::from_slice(&p.build_ok(&["--json"]).stdout).unwrap();
    let layers = first["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    let code = &layers[0];
    assert_eq!(code["name"], "code");
    assert_eq!(code["origin"], "built");
    assert_eq!(code["cached"], false);
    assert!(code["uncompressed_size"].as_u64().unwrap() > code["size"].as_u64().unwrap() / 2);
    assert!(first["manifest_size"].as_u64().unwrap() > 100);
    assert_eq!(first["uncompressed_size"], code["uncompressed_size"]);

    let second: Value = serde_json::from_slice(&p.build_ok(&["--json"]).stdout).unwrap();
    assert_eq!(second["digest"], first["digest"]);
    assert_eq!(
        second["layers"][0]["cached"], true,
        "unchanged layer comes from the cache"
    );

    std::fs::write(p.join("lib/util.txt"), "changed\n").unwrap();
    let third: Value = serde_json::from_slice(&p.build_ok(&["--json"]).stdout).unwrap();
    assert_ne!(third["digest"], first["digest"]);
    assert_eq!(third["layers"][0]["cached"], false);
}

#[test]
fn docker_archive_loads_in_podman_and_runs() {
    let Some(p) = hello_project("[image.env]\nGREETING = \"hello from lambda-img\"\n") else {
        return;
    };
    if !require_tool("skopeo") || !require_tool("podman") {
        return;
    }
    let archive = p.join("image.tar");
    p.build_ok(&[
        "--output",
        &format!("docker-archive:{}:hello:v1", archive.display()),
    ]);
    let inspect =
        run_ok(Command::new("skopeo").args(["inspect", &format!("docker-archive:{}", archive.display())]));
    let info: Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(info["Architecture"], "amd64");

    let podman = crate::support::podman::Podman::new();
    podman.run_ok(&["load", "-i", archive.to_str().unwrap()]);
    let out = podman.run_ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "/var/task/busybox",
        "localhost/hello:v1",
        "sh",
        "-c",
        "echo $GREETING",
    ]);
    assert_eq!(stdout(&out).trim(), "hello from lambda-img");
}

#[test]
fn base_layers_are_reused_byte_for_byte() {
    let Some(base) = hello_project("") else { return };
    let base_dir = base.path().join("base-layout");
    let base_digest = digest_line(&base.build_ok(&["--output", &format!("oci:{}:base", base_dir.display())]));
    let (base_manifest, _) = manifest(&base_dir, "base");

    let app = Project::new(
        &format!(
            r#"[function]
name = "app"
runtime = "provided.al2023"

[base]
image = "oci:{}:base@{base_digest}"

[[layer]]
name = "assets"
sources = ["assets"]
destination = "/opt/assets"

[code]
sources = ["src"]
"#,
            base_dir.display()
        ),
        &[("assets/a.txt", "asset\n"), ("src/handler.sh", "echo hi\n")],
    );
    let out_dir = app.join("out");
    let report: Value = serde_json::from_slice(
        &app.build_ok(&["--json", "--output", &format!("oci:{}", out_dir.display())])
            .stdout,
    )
    .unwrap();
    let (m, _) = manifest(&out_dir, "latest");
    let layers = m["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3, "base, assets, code");
    assert_eq!(
        layers[0], base_manifest["layers"][0],
        "base layer descriptor unchanged"
    );
    assert_eq!(report["layers"][0]["origin"], "base");
    assert_eq!(report["layers"][1]["name"], "assets");
    assert_eq!(report["layers"][2]["name"], "code");
    let cfg = config(&out_dir, "latest");
    assert_eq!(
        cfg["config"]["Entrypoint"],
        serde_json::json!(["/var/task/busybox"]),
        "base entrypoint kept"
    );
    assert_eq!(cfg["rootfs"]["diff_ids"].as_array().unwrap().len(), 3);
    assert_eq!(cfg["history"].as_array().unwrap().len(), 3);
}

#[test]
fn wrong_base_digest_is_refused_and_nothing_is_written() {
    let Some(base) = hello_project("") else { return };
    let base_dir = base.path().join("base-layout");
    base.build_ok(&["--output", &format!("oci:{}:base", base_dir.display())]);
    let wrong = format!("sha256:{}", "0".repeat(64));
    let app = Project::new(
        &format!(
            "[function]\nname = \"app\"\nruntime = \"provided.al2023\"\n\n[base]\nimage = \"oci:{}:base@{wrong}\"\n",
            base_dir.display()
        ),
        &[("x.txt", "x")],
    );
    let out_dir = app.join("out");
    let out = app.build_fail(&["--output", &format!("oci:{}", out_dir.display())]);
    let err = stderr(&out);
    assert!(err.contains(&wrong) && err.contains("digest"), "{err}");
    assert!(!out_dir.exists(), "no output after a failed build");

    let missing = Project::new(
        &format!(
            "[function]\nname = \"app\"\nruntime = \"provided.al2023\"\n\n[base]\nimage = \"oci:{}:nope\"\n",
            base_dir.display()
        ),
        &[("x.txt", "x")],
    );
    let err = stderr(&missing.build_fail(&[]));
    assert!(
        err.contains("nope") && err.contains("base"),
        "missing tag named, tags listed: {err}"
    );
}

#[test]
fn limits_stop_the_build_before_any_output() {
    let Some(p) = hello_project("") else { return };
    let out_dir = p.join("out");
    let out = p.build_fail(&[
        "--max-uncompressed-size",
        "1000",
        "--output",
        &format!("oci:{}", out_dir.display()),
    ]);
    let err = stderr(&out);
    assert!(
        err.contains("1000") && err.contains("code"),
        "figure, limit and largest layer named: {err}"
    );
    assert!(!out_dir.exists());

    let out = p.build_fail(&[
        "--max-manifest-size",
        "100",
        "--output",
        &format!("oci:{}", out_dir.display()),
    ]);
    assert!(stderr(&out).contains("100"), "{}", stderr(&out));
    assert!(!out_dir.exists());
}

#[test]
fn failed_build_leaves_previous_output_untouched() {
    let Some(p) = hello_project("") else { return };
    let out_dir = p.join("out");
    let archive = p.join("image.tar");
    let outputs = [
        "--output".to_string(),
        format!("oci:{}", out_dir.display()),
        "--output".to_string(),
        format!("docker-archive:{}", archive.display()),
    ];
    let args: Vec<&str> = outputs.iter().map(String::as_str).collect();
    p.build_ok(&args);
    let index_before = std::fs::read(out_dir.join("index.json")).unwrap();
    let archive_before = std::fs::read(&archive).unwrap();

    std::fs::write(p.join("lambda-img.toml"), "[function\nname = 1").unwrap();
    let out = p.build_fail(&args);
    let err = stderr(&out);
    assert!(err.contains("lambda-img.toml:1:"), "file:line:col in {err}");
    assert_eq!(std::fs::read(out_dir.join("index.json")).unwrap(), index_before);
    assert_eq!(std::fs::read(&archive).unwrap(), archive_before);
    let leftovers: Vec<_> = std::fs::read_dir(p.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') && n != ".")
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
}

#[test]
fn bad_manifests_name_file_line_and_key() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "[function]\nname = \"f\"\nruntime = \"python3.12\"\nhandler = \"app\"\n[base]\nimage = \"scratch\"\n",
            "handler",
            &["lambda-img.toml:4:", "app"],
        ),
        (
            "[function]\nname = \"f\"\nruntime = \"provided.al2023\"\nbogus = 1\n[base]\nimage = \"scratch\"\n",
            "unknown key",
            &["lambda-img.toml:4:", "bogus"],
        ),
        (
            "[function]\nname = \"f\"\nruntime = \"provided.al2023\"\n[base]\nimage = \"scratch\"\n[[layer]]\nname = \"x\"\nsources = [\"nope\"]\ndestination = \"/opt\"\n",
            "missing source",
            &["lambda-img.toml:8:", "nope"],
        ),
    ];
    for (manifest_text, what, needles) in cases {
        let p = Project::new(manifest_text, &[("app.py", "def handler(e, c):\n    return 1\n")]);
        let out_dir = p.join("out");
        let out = p.build_fail(&["--output", &format!("oci:{}", out_dir.display())]);
        let err = stderr(&out);
        for needle in *needles {
            assert!(err.contains(needle), "{what}: {needle:?} not in {err}");
        }
        assert!(!out_dir.exists(), "{what}: output written");
    }
}

#[test]
fn unwritable_output_is_a_clear_error() {
    let Some(p) = hello_project("") else { return };
    let out = p.build_fail(&["--output", "oci:/proc/definitely/not/here"]);
    let err = stderr(&out);
    assert!(err.contains("/proc/definitely/not/here"), "{err}");
}

#[test]
fn cache_command_shows_size_and_prunes() {
    let Some(p) = hello_project("") else { return };
    p.build_ok(&[]);
    let size = |p: &Project| -> Value {
        serde_json::from_slice(&run_ok(&mut p.cmd(&["cache", "size", "--json"])).stdout).unwrap()
    };
    let before = size(&p);
    assert!(before["blobs"].as_u64().unwrap() >= 1, "{before}");
    assert!(
        before["blob_bytes"].as_u64().unwrap() > 500_000,
        "busybox is in a layer blob: {before}"
    );
    let dir = stdout(&run_ok(&mut p.cmd(&["cache", "dir"])));
    assert_eq!(Path::new(dir.trim()), p.cache.path());

    let refused = crate::support::run_fail(&mut p.cmd(&["cache", "prune"]));
    assert!(stderr(&refused).contains("--all"), "{}", stderr(&refused));
    run_ok(&mut p.cmd(&["cache", "prune", "--all"]));
    let after = size(&p);
    assert_eq!(after["blobs"], 0, "{after}");
    // The next build fills it again and gives the same image.
    let out: Value = serde_json::from_slice(&p.build_ok(&["--json"]).stdout).unwrap();
    assert_eq!(out["layers"][0]["cached"], false);
}

/// The filesystem rules run at the end of every build too: an entrypoint
/// that is not in the image stops the build before any output is written.
#[test]
fn a_rule_error_stops_the_build_before_any_output() {
    let p = Project::new(
        "[function]\nname = \"f\"\nruntime = \"provided.al2023\"\n\n[base]\nimage = \"scratch\"\n\n[image]\nentrypoint = [\"/var/task/missing\"]\n",
        &[("present.txt", "x\n")],
    );
    let out_dir = p.join("out");
    let out = p.build_fail(&["--output", &format!("oci:{}", out_dir.display())]);
    let err = stderr(&out);
    assert!(
        err.contains("LI033") && err.contains("/var/task/missing"),
        "{err}"
    );
    assert!(err.contains("nothing was written"), "{err}");
    assert!(!out_dir.exists());
}
