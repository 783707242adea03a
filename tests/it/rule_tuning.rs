//! Rules users can tune (issue #11): `--allow`, `--deny`, `--strict` on
//! `build` and `check`, `[check]` in lambda-img.toml, `check --list-rules`,
//! `lambda-img explain`, and the same severity printed by `build` and `check`.

use std::os::unix::fs::symlink;
use std::path::Path;

use crate::support::project::{Project, scratch_manifest};
use crate::support::{lambda_img, require_tool, run_fail, run_fail_with, run_ok, stderr, stdout};

/// A busybox project whose code holds one dangling symlink (LI044, a warning).
fn dangling_project(extra: &str) -> Option<Project> {
    if !require_tool("busybox") {
        return None;
    }
    let p = Project::new(&scratch_manifest(extra), &[]);
    p.copy_in(Path::new("/bin/busybox"), "busybox");
    symlink("/etc/missing.conf", p.join("conf")).unwrap();
    Some(p)
}

const DANGLING: &str = "warning[LI044 dangling-symlink]: 1 symlink points to nothing in the image: \
                        /var/task/conf -> /etc/missing.conf (layer 1)";

#[test]
fn build_and_check_print_the_same_finding_word_for_word() {
    let Some(p) = dangling_project("") else { return };
    let layout = p.join("out");
    let built = p.build_ok(&["--output", &format!("oci:{}:t", layout.display())]);
    let build_err = stderr(&built);
    let line = build_err.lines().find(|l| l.contains("LI044")).expect(&build_err);
    assert_eq!(line, DANGLING);
    let checked = run_ok(&mut p.cmd(&["check", &format!("oci:{}:t", layout.display())]));
    let check_out = stdout(&checked);
    let line = check_out.lines().find(|l| l.contains("LI044")).expect(&check_out);
    assert_eq!(line, DANGLING);
}

#[test]
fn strict_deny_and_allow_change_what_fails() {
    let Some(p) = dangling_project("") else { return };
    let out = p.build_fail(&["--strict"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(
            "error[LI044 dangling-symlink]: 1 symlink points to nothing in the image: \
                      /var/task/conf -> /etc/missing.conf (layer 1) (--strict; by default warning)"
        ),
        "{err}"
    );
    assert!(err.contains("nothing was written"), "{err}");
    let err = stderr(&p.build_fail(&["--deny", "dangling-symlink"]));
    assert!(
        err.contains("error[LI044 dangling-symlink]") && err.contains("(denied; by default warning)"),
        "{err}"
    );
    // --allow wins over --strict for its rule.
    let out = p.build_ok(&["--strict", "--allow", "LI044"]);
    let err = stderr(&out);
    assert!(
        err.contains("info[LI044 dangling-symlink]") && err.contains("(allowed; by default warning)"),
        "{err}"
    );
}

#[test]
fn the_manifest_check_table_applies_to_build_and_check_and_flags_win() {
    let Some(p) = dangling_project("\n[check]\ndeny = [\"LI044\"]\n") else {
        return;
    };
    let layout = p.join("out");
    let out_spec = format!("oci:{}:t", layout.display());
    let err = stderr(&p.build_fail(&["--output", &out_spec]));
    assert!(
        err.contains("error[LI044 dangling-symlink]") && err.contains("(denied; by default warning)"),
        "{err}"
    );
    assert!(!layout.exists());
    p.build_ok(&["--output", &out_spec, "--allow", "LI044"]);

    // `check` in the project reads its [check]; elsewhere it does not.
    let out = run_fail(&mut p.cmd(&["check", &out_spec]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("error[LI044 dangling-symlink]"),
        "{}",
        stdout(&out)
    );
    run_ok(&mut p.cmd(&["check", &out_spec, "--allow", "LI044"]));
    let elsewhere = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let out = run_ok(
        lambda_img(cache.path())
            .current_dir(elsewhere.path())
            .args(["check", &out_spec]),
    );
    assert!(
        stdout(&out).contains("warning[LI044 dangling-symlink]"),
        "{}",
        stdout(&out)
    );

    // An allowed error rule lets a build through: LI043 on a replaced directory.
    let extra = "[[layer]]\nname = \"libs\"\nsources = [\"libs\"]\ndestination = \"/opt/lib\"\n\
                 [[layer]]\nname = \"conf\"\nsources = [\"conf.txt\"]\ndestination = \"/opt/lib\"\n";
    let q = Project::new(
        &scratch_manifest(extra),
        &[("libs/a.txt", "a\n"), ("conf.txt", "c\n")],
    );
    q.copy_in(Path::new("/bin/busybox"), "busybox");
    q.build_fail(&[]);
    let err = stderr(&q.build_ok(&["--allow", "LI043"]));
    assert!(err.contains("info[LI043 directory-replaced]"), "{err}");
}

#[test]
fn list_rules_and_explain_print_the_catalogue() {
    let cache = tempfile::tempdir().unwrap();
    let list = stdout(&run_ok(lambda_img(cache.path()).args(["check", "--list-rules"])));
    for line in [
        "LI040  error    hard-link                 a layer holds hard-link entries, which Lambda's unpacker rejects",
        "LI044  warning  dangling-symlink          a symbolic link's target does not exist in the final image (base and every layer)",
        "LI070  info     ignored-config-field      the image config sets fields Lambda ignores (User, ExposedPorts, Healthcheck, Volumes)",
    ] {
        assert!(list.lines().any(|l| l == line), "{line} missing from\n{list}");
    }
    let json: serde_json::Value = serde_json::from_slice(
        &run_ok(lambda_img(cache.path()).args(["check", "--list-rules", "--json"])).stdout,
    )
    .unwrap();
    assert!(
        json.as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == "LI043" && r["severity"] == "error")
    );

    let explain = stdout(&run_ok(lambda_img(cache.path()).args(["explain", "hard-link"])));
    assert!(
        explain.starts_with("LI040 hard-link (default severity: error)\n\n"),
        "{explain}"
    );
    assert!(
        explain.contains("\nsource: field: aspect-build/rules_aws#145"),
        "{explain}"
    );
    let same = stdout(&run_ok(lambda_img(cache.path()).args([
        "check",
        "--explain",
        "LI040",
    ])));
    assert_eq!(same, explain);
    let out = run_fail_with(lambda_img(cache.path()).args(["explain", "LI999"]), 2);
    assert!(
        stderr(&out).contains("unknown rule \"LI999\": `lambda-img check --list-rules` lists every rule id")
    );
}
