//! Images that do what the user meant (issue #11): whiteout names refused,
//! `[code]` always a directory, a lower directory never silently replaced,
//! symlinks stored as written. Read back with umoci, the real unpacker.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::project::{Project, scratch_manifest};
use crate::support::{lambda_img, require_tool, run_fail, run_ok, stderr, stdout};

/// A scratch project whose entrypoint is the static busybox at /var/task/busybox.
fn busybox_project(extra: &str, files: &[(&str, &str)]) -> Option<Project> {
    if !require_tool("busybox") {
        return None;
    }
    let p = Project::new(&scratch_manifest(extra), files);
    p.copy_in(Path::new("/bin/busybox"), "busybox");
    Some(p)
}

/// Unpacks `oci:DIR:TAG` with umoci and returns the rootfs.
fn unpack(layout: &Path, tag: &str, into: &Path) -> PathBuf {
    let bundle = into.join("bundle");
    run_ok(Command::new("umoci").args([
        "unpack",
        "--rootless",
        "--image",
        &format!("{}:{tag}", layout.display()),
        bundle.to_str().unwrap(),
    ]));
    bundle.join("rootfs")
}

#[test]
fn a_whiteout_named_source_file_is_an_error_naming_it() {
    let Some(p) = busybox_project("", &[("etc/.wh.os-release", "")]) else {
        return;
    };
    let out_dir = p.join("out");
    let out = p.build_fail(&["--output", &format!("oci:{}", out_dir.display())]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "{} would be written as /var/task/etc/.wh.os-release, but a name starting with `.wh.` is a whiteout marker",
            p.join("etc/.wh.os-release").display()
        )),
        "{err}"
    );
    assert!(err.contains("Rename it or exclude it"), "{err}");
    assert!(!out_dir.exists(), "nothing written");
}

#[test]
fn a_lone_code_file_goes_inside_var_task() {
    let Some(p) = busybox_project("[code]\nsources = [\"busybox\"]\n", &[]) else {
        return;
    };
    if !require_tool("umoci") {
        return;
    }
    let layout = p.join("out");
    p.build_ok(&["--output", &format!("oci:{}:t", layout.display())]);
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = unpack(&layout, "t", tmp.path());
    assert!(rootfs.join("var/task").is_dir(), "/var/task stays a directory");
    assert!(rootfs.join("var/task/busybox").is_file());
}

#[test]
fn a_layer_replacing_a_lower_directory_is_refused_by_build() {
    let extra = "[[layer]]\nname = \"libs\"\nsources = [\"libs\"]\ndestination = \"/opt/lib\"\n\
                 [[layer]]\nname = \"conf\"\nsources = [\"conf.txt\"]\ndestination = \"/opt/lib\"\n";
    let Some(p) = busybox_project(extra, &[("libs/a.txt", "a\n"), ("conf.txt", "c\n")]) else {
        return;
    };
    let out_dir = p.join("out");
    let out = p.build_fail(&["--output", &format!("oci:{}", out_dir.display())]);
    let err = stderr(&out);
    assert!(err.contains("error[LI043 directory-replaced]"), "{err}");
    assert!(
        err.contains("replaces 1 directory of a lower layer with a non-directory: /opt/lib"),
        "{err}"
    );
    assert!(!out_dir.exists(), "nothing written");
}

#[test]
fn check_reports_an_umoci_layer_that_replaces_a_directory_with_a_file() {
    if !require_tool("umoci") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    std::fs::create_dir_all(dir.path().join("c/lib")).unwrap();
    std::fs::write(dir.path().join("c/lib/a.txt"), "a\n").unwrap();
    std::fs::write(dir.path().join("f.txt"), "f\n").unwrap();
    let image = format!("{}:t", layout.display());
    run_ok(Command::new("umoci").args(["init", "--layout", layout.to_str().unwrap()]));
    run_ok(Command::new("umoci").args(["new", "--image", &image]));
    for (src, dest) in [("c", "/opt"), ("f.txt", "/opt/lib")] {
        let src = dir.path().join(src);
        run_ok(Command::new("umoci").args(["insert", "--image", &image, src.to_str().unwrap(), dest]));
    }
    let cache = tempfile::tempdir().unwrap();
    let out = run_fail(lambda_img(cache.path()).args(["check", &format!("oci:{image}")]));
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("error[LI043 directory-replaced]: layer 2 "),
        "{text}"
    );
    assert!(text.contains("with a non-directory: /opt/lib"), "{text}");
}

#[test]
fn absolute_symlinks_are_stored_and_dangling_ones_warned_about() {
    let Some(p) = busybox_project("", &[("etc/real.conf", "r\n")]) else {
        return;
    };
    if !require_tool("umoci") {
        return;
    }
    // pip's tree: python3.11/sitecustomize.py -> /etc/python3.11/sitecustomize.py.
    std::fs::create_dir_all(p.join("python3.11")).unwrap();
    symlink(
        "/etc/python3.11/sitecustomize.py",
        p.join("python3.11/sitecustomize.py"),
    )
    .unwrap();
    symlink("/var/task/etc/real.conf", p.join("present.conf")).unwrap();
    let layout = p.join("out");
    let out = p.build_ok(&["--output", &format!("oci:{}:t", layout.display())]);
    let err = stderr(&out);
    assert!(
        err.contains(
            "warning[LI044 dangling-symlink]: 1 symlink points to nothing in the image: \
             /var/task/python3.11/sitecustomize.py -> /etc/python3.11/sitecustomize.py (layer 1)"
        ),
        "{err}"
    );
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = unpack(&layout, "t", tmp.path());
    assert_eq!(
        std::fs::read_link(rootfs.join("var/task/python3.11/sitecustomize.py")).unwrap(),
        Path::new("/etc/python3.11/sitecustomize.py")
    );
    assert_eq!(
        std::fs::read_link(rootfs.join("var/task/present.conf")).unwrap(),
        Path::new("/var/task/etc/real.conf")
    );

    // A relative link that climbs above `/` is still refused.
    symlink("../../../../x", p.join("python3.11/up")).unwrap();
    let out = p.build_fail(&[]);
    let err = stderr(&out);
    assert!(
        err.contains("points to ../../../../x, which climbs above the image root"),
        "{err}"
    );
}

#[test]
fn outputs_never_replace_inputs_and_are_refused_before_any_work() {
    let Some(p) = busybox_project("", &[("notes.txt", "keep me\n"), ("src/app.txt", "a\n")]) else {
        return;
    };
    let manifest_before = std::fs::read(p.join("lambda-img.toml")).unwrap();
    let out = p.build_fail(&["--output", "docker-archive:lambda-img.toml"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "output docker-archive:lambda-img.toml would replace the manifest {}",
            p.path().canonicalize().unwrap().join("lambda-img.toml").display()
        )),
        "{err}"
    );
    assert!(!err.contains("==> layer"), "refused before any work: {err}");
    assert_eq!(std::fs::read(p.join("lambda-img.toml")).unwrap(), manifest_before);

    // The project directory is the code layer's source.
    let err = stderr(&p.build_fail(&["--output", &format!("oci:{}", p.path().display())]));
    assert!(err.contains("would replace the manifest"), "{err}");
    let err = stderr(&p.build_fail(&["--output", &format!("oci:{}", p.join("src").display())]));
    assert!(err.contains("exists and is not an OCI image layout"), "{err}");

    // An existing file that is not a docker-archive needs --force.
    let err = stderr(&p.build_fail(&["--output", "docker-archive:notes.txt"]));
    assert!(
        err.contains("exists and is not a docker-archive (it is not a tar file)"),
        "{err}"
    );
    assert!(err.contains("pass --force to replace it"), "{err}");
    assert_eq!(std::fs::read_to_string(p.join("notes.txt")).unwrap(), "keep me\n");
    let err = stderr(&p.build_fail(&["--output", "oci:notes.txt"]));
    assert!(
        err.contains("exists and is not an OCI image layout (it is a file)"),
        "{err}"
    );

    // A docker-archive may replace the previous one; --force replaces the notes.
    let archive = p.join("img.tar");
    p.build_ok(&["--output", &format!("docker-archive:{}", archive.display())]);
    p.build_ok(&["--output", &format!("docker-archive:{}", archive.display())]);
    p.build_ok(&["--output", "docker-archive:notes.txt", "--force"]);
    if require_tool("skopeo") {
        run_ok(Command::new("skopeo").args([
            "inspect",
            &format!("docker-archive:{}", p.join("notes.txt").display()),
        ]));
    }
}
