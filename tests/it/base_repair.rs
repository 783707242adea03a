//! `[base] repair = true` / `--repair-base` (issue #11): a base made by umoci
//! with a hard link and layers without parent directories is refused with
//! LI040/LI041 naming the option, and with it builds an image whose rewritten
//! layers umoci unpacks to the same files, history saying so, deterministically.

use std::path::Path;
use std::process::Command;

use crate::support::project::Project;
use crate::support::{require_tool, run_ok, stderr, stdout};

/// An OCI layout `DIR:t` with a hard link (`/opt/bin/tool2`) in layer 1 and
/// `/var/task/data.txt` without its parents in layer 2.
fn umoci_base(dir: &Path) -> String {
    let content = dir.join("c");
    std::fs::create_dir_all(content.join("bin")).unwrap();
    std::fs::write(content.join("bin/tool"), "tool\n").unwrap();
    std::fs::hard_link(content.join("bin/tool"), content.join("bin/tool2")).unwrap();
    std::fs::write(dir.join("data.txt"), "data\n").unwrap();
    let layout = dir.join("layout");
    let image = format!("{}:t", layout.display());
    run_ok(Command::new("umoci").args(["init", "--layout", layout.to_str().unwrap()]));
    run_ok(Command::new("umoci").args(["new", "--image", &image]));
    run_ok(Command::new("umoci").args(["insert", "--image", &image, content.to_str().unwrap(), "/opt"]));
    let data = dir.join("data.txt");
    run_ok(Command::new("umoci").args([
        "insert",
        "--image",
        &image,
        data.to_str().unwrap(),
        "/var/task/data.txt",
    ]));
    format!("oci:{image}")
}

fn project(base: &str, repair: bool) -> Project {
    let manifest = format!(
        "[function]\nname = \"hello\"\nruntime = \"provided.al2023\"\n\n[base]\nimage = \"{base}\"\n{}\n\
         [code]\nsources = [\"busybox\"]\n\n[image]\nentrypoint = [\"/var/task/busybox\"]\n",
        if repair { "repair = true\n" } else { "" }
    );
    let p = Project::new(&manifest, &[]);
    p.copy_in(Path::new("/bin/busybox"), "busybox");
    p
}

#[test]
fn a_base_with_hard_links_and_missing_parents_is_repaired_on_request() {
    if !require_tool("umoci") || !require_tool("skopeo") || !require_tool("busybox") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let base = umoci_base(work.path());

    let plain = project(&base, false);
    let err = stderr(&plain.build_fail(&[]));
    assert!(
        err.contains("/opt/bin/tool2 -> opt/bin/tool; it is a base image layer: `[base] repair = true` (or `build --repair-base`) rewrites it"),
        "{err}"
    );
    assert!(err.contains("error[LI041 missing-parent]"), "{err}");

    let p = project(&base, true);
    let layout = p.join("out");
    let out = p.build_ok(&["--json", "--output", &format!("oci:{}:t", layout.display())]);
    let err = stderr(&out);
    assert!(
        err.contains("rewritten as")
            && err.contains("1 hard link written as files, 0 parent directories added"),
        "{err}"
    );
    assert!(
        err.contains("2 parent directories added"),
        "var and var/task: {err}"
    );
    assert!(err.contains("no longer shared with the base"), "{err}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let repaired = report["repaired_base_layers"].as_array().unwrap();
    assert_eq!(repaired.len(), 2, "{report}");
    assert_eq!(repaired[0]["hard_links"], 1);
    assert_eq!(repaired[1]["parents_added"], 2);
    assert!(repaired[0]["unshared_bytes"].as_u64().unwrap() > 0);
    assert_eq!(report["layers"][0]["digest"], repaired[0]["to"]);

    // The image passes every rule, and unpacks to the same files.
    let checked = run_ok(&mut p.cmd(&["check", &format!("oci:{}:t", layout.display())]));
    assert!(stdout(&checked).contains("no findings"), "{}", stdout(&checked));
    let bundle = work.path().join("bundle");
    run_ok(Command::new("umoci").args([
        "unpack",
        "--rootless",
        "--image",
        &format!("{}:t", layout.display()),
        bundle.to_str().unwrap(),
    ]));
    let rootfs = bundle.join("rootfs");
    for f in ["opt/bin/tool", "opt/bin/tool2"] {
        assert_eq!(std::fs::read_to_string(rootfs.join(f)).unwrap(), "tool\n", "{f}");
    }
    assert_eq!(
        std::fs::read_to_string(rootfs.join("var/task/data.txt")).unwrap(),
        "data\n"
    );
    let config =
        run_ok(Command::new("skopeo").args(["inspect", "--config", &format!("oci:{}:t", layout.display())]));
    let config: serde_json::Value = serde_json::from_slice(&config.stdout).unwrap();
    let comment = config["history"][0]["comment"].as_str().unwrap();
    assert!(
        comment.starts_with("lambda-img [base] repair: layer 1 rewritten from sha256:"),
        "{comment}"
    );

    // Deterministic: a fresh cache and --repair-base instead of the key give the same image.
    let again = project(&base, false);
    let second = again.build_ok(&["--repair-base"]);
    assert_eq!(stdout(&second).trim(), report["digest"].as_str().unwrap());
}
