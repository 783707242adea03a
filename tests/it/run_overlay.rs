//! `lambda-img run` after a code change: the code layer is its own directory,
//! mounted read-only over the snapshot of the layers below, so the new code
//! answers (and deleted files are gone) without a new snapshot of the image.

use std::collections::BTreeSet;
use std::path::Path;

use crate::run::busybox_image;
use crate::support::project::Project;
use crate::support::{run_ok, stderr, stdout};

/// What the shell prints: the code files and whether the base's busybox is there.
const LOOK: &str = "cat /var/task/app.txt; ls /var/task; echo x > /var/task/x 2>/dev/null || echo read-only";

/// The names directly in the project cache's rootfs bucket.
fn rootfs_entries(cache: &Path) -> BTreeSet<String> {
    std::fs::read_dir(cache.join("rootfs-v1"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn look(p: &Project) -> (String, String) {
    let out = run_ok(&mut p.cmd(&[
        "-v",
        "run",
        "--entrypoint",
        "/var/task/busybox",
        "--",
        "sh",
        "-c",
        LOOK,
    ]));
    (stdout(&out), stderr(&out))
}

/// A project on the busybox image (two layers) whose code changes between runs.
fn project(work: &Path) -> Option<Project> {
    let base = busybox_image(work)?;
    let manifest = format!(
        "[function]\nname = \"overlay\"\nruntime = \"provided.al2023\"\narchitecture = \"x86_64\"\n\n\
         [base]\nimage = \"{base}\"\n\n[image]\nentrypoint = [\"/var/task/busybox\"]\n"
    );
    Some(Project::new(
        &manifest,
        &[("app.txt", "v1\n"), ("old.txt", "old\n")],
    ))
}

#[test]
fn a_code_change_is_served_through_an_overlay_without_a_new_snapshot() {
    let work = tempfile::tempdir().unwrap();
    let Some(p) = project(work.path()) else { return };
    let (first, log) = look(&p);
    assert_eq!(
        first.lines().collect::<Vec<_>>(),
        ["v1", "app.txt", "busybox", "old.txt", "read-only"],
        "the code over the base's /var/task, read-only\n{log}"
    );
    assert!(!log.contains("applied to a clone"), "{log}");
    let before = rootfs_entries(p.cache.path());

    std::fs::write(p.join("app.txt"), "v2\n").unwrap();
    std::fs::remove_file(p.join("old.txt")).unwrap();
    let (second, log) = look(&p);
    assert_eq!(
        second.lines().collect::<Vec<_>>(),
        ["v2", "app.txt", "busybox", "read-only"],
        "the new code answers, the deleted file is gone\n{log}"
    );
    assert!(!log.contains("applied to a clone"), "{log}");
    let after = rootfs_entries(p.cache.path());
    let new: Vec<&String> = after.difference(&before).collect();
    assert_eq!(new.len(), 2, "one new directory and its sidecar: {new:?}\n{log}");
    let top = new.iter().find(|n| !n.ends_with(".json")).unwrap();
    let top = p.cache.path().join("rootfs-v1").join(top);
    let files: BTreeSet<String> = walkdir::WalkDir::new(&top)
        .into_iter()
        .map(|e| {
            e.unwrap()
                .path()
                .strip_prefix(&top)
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    assert!(
        files.contains("var/task/app.txt") && !files.contains("var/task/busybox") && !files.contains("etc"),
        "the code layer's files only, not a tree of the image: {files:?}"
    );
}

/// `run -i --entrypoint` with `--engine podman`: the program reads the
/// caller's stdin, as in the native sandbox.
#[test]
fn entrypoint_reads_stdin_through_podman_as_natively() {
    use std::io::Write;
    if !crate::support::require_tool("podman") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let Some(image) = busybox_image(work.path()) else {
        return;
    };
    let podman = crate::support::podman::Podman::new();
    let cache = tempfile::tempdir().unwrap();
    let cat = |engine: &str| {
        let mut cmd = crate::support::lambda_img(cache.path());
        cmd.args([
            "run",
            &image,
            "--engine",
            engine,
            "-i",
            "--entrypoint",
            "/var/task/busybox",
            "--",
            "cat",
        ])
        .envs(podman.env())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        child.stdin.take().unwrap().write_all(b"from stdin\n").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{engine}: {}", stderr(&out));
        stdout(&out)
    };
    assert_eq!(cat("native"), "from stdin\n");
    assert_eq!(cat("podman"), "from stdin\n", "podman gets -i");
    let left = podman.run_ok(&["ps", "-aq"]);
    assert_eq!(stdout(&left).trim(), "", "no container is left behind");
}
