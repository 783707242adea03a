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
    let extra = "workdir = \"/var/task\"\n[code]\nsources = [\"busybox\"]\n";
    let Some(p) = busybox_project(extra, &[]) else {
        return;
    };
    if !require_tool("umoci") || !require_tool("podman") {
        return;
    }
    let layout = p.join("out");
    let archive = p.join("image.tar");
    p.build_ok(&[
        "--output",
        &format!("oci:{}:t", layout.display()),
        "--output",
        &format!("docker-archive:{}:localhost/lone:v1", archive.display()),
    ]);
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = unpack(&layout, "t", tmp.path());
    assert!(rootfs.join("var/task").is_dir(), "/var/task stays a directory");
    assert!(rootfs.join("var/task/busybox").is_file());
    // podman starts it in its workdir (it refused a /var/task that was a file).
    let podman = crate::support::podman::Podman::new();
    podman.run_ok(&["load", "-i", archive.to_str().unwrap()]);
    let out = podman.run_ok(&["run", "--rm", "--network", "none", "localhost/lone:v1", "pwd"]);
    assert_eq!(stdout(&out).trim(), "/var/task");
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

/// A sparse 10.1 GiB file: refused from its size alone, so nothing is read,
/// compressed or cached (today's failure compressed it for 40 s first).
#[test]
fn an_image_over_10_gib_is_refused_before_compressing() {
    let Some(p) = busybox_project("", &[]) else { return };
    let big = std::fs::File::create(p.join("big.bin")).unwrap();
    big.set_len(10_342 * 1024 * 1024).unwrap(); // 10.1 GiB
    drop(big);
    let out_dir = p.join("out");
    let out = p.build_fail(&["--output", &format!("oci:{}", out_dir.display())]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(
            "error[LI010 image-too-large]: the base (0 B) and the new layers' files add up to 10.1 GiB"
        ),
        "{err}"
    );
    assert!(err.contains("over the limit of 10.0 GiB (10737418240 bytes), before anything was compressed; largest new: layer code 10.1 GiB"), "{err}");
    assert!(!err.contains("==> layer code"), "{err}");
    assert!(!out_dir.exists());
    let blobs = walkdir::WalkDir::new(p.cache.path())
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file() && e.path().to_string_lossy().contains("blobs"))
        .count();
    assert_eq!(blobs, 0, "no layer was compressed into the cache");
}

fn skopeo_digest(image: &str) -> String {
    let out = run_ok(Command::new("skopeo").args(["inspect", "--tls-verify=false", image]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["Digest"].as_str().unwrap().to_string()
}

/// A Docker-media-type image (as every AWS base is) written to an OCI layout,
/// a docker-archive and a registry: each printed digest is the one skopeo
/// reads from that output.
#[test]
fn each_printed_digest_is_the_one_its_output_holds() {
    let Some(registry) = crate::support::registry::TestRegistry::start() else {
        return;
    };
    let Some(p) = busybox_project("format = \"docker\"\n", &[]) else {
        return;
    };
    if !require_tool("skopeo") {
        return;
    }
    let layout = p.join("out");
    let archive = p.join("image.tar");
    let pushed = format!("{}/fn/app:1", registry.host());
    let outputs = [
        format!("oci:{}:v1", layout.display()),
        format!("docker-archive:{}", archive.display()),
        format!("registry:{pushed}"),
    ];
    let docker_config = tempfile::tempdir().unwrap();
    let mut cmd = p.cmd(&["build", "-o", &outputs[0], "-o", &outputs[1], "-o", &outputs[2]]);
    cmd.env("DOCKER_CONFIG", docker_config.path());
    let out = run_ok(&mut cmd);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "one line per output: {text}");
    let oci_digest = lines[0]
        .strip_prefix(&format!("{}@", outputs[0]))
        .expect(lines[0]);
    let archive_digest = lines[1]
        .strip_prefix(&format!("{}@", outputs[1]))
        .expect(lines[1]);
    let pushed_digest = lines[2].strip_prefix(&format!("{pushed}@")).expect(lines[2]);
    assert_ne!(oci_digest, pushed_digest);
    assert_eq!(archive_digest, pushed_digest, "both hold the Docker manifest");
    assert_eq!(skopeo_digest(&format!("oci:{}:v1", layout.display())), oci_digest);
    assert_eq!(skopeo_digest(&format!("docker://{pushed}")), pushed_digest);
    let err = stderr(&out);
    assert_eq!(
        err.matches("outputs hold different manifests").count(),
        1,
        "warned once: {err}"
    );
    assert!(err.contains("build with --format oci"), "{err}");

    // --json: each output's digest; the archive's config is the image's.
    let mut cmd = p.cmd(&[
        "build",
        "--json",
        "-o",
        &outputs[0],
        "-o",
        &outputs[1],
        "-o",
        &outputs[2],
    ]);
    cmd.env("DOCKER_CONFIG", docker_config.path());
    let report: serde_json::Value = serde_json::from_slice(&run_ok(&mut cmd).stdout).unwrap();
    let digests: Vec<&str> = (0..3)
        .map(|i| report["outputs"][i]["digest"].as_str().unwrap())
        .collect();
    assert_eq!(digests, [oci_digest, archive_digest, pushed_digest]);
    let config = run_ok(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--config",
        &format!("docker-archive:{}", archive.display()),
    ]));
    let config_digest = format!("sha256:{}", sha256_hex(&config.stdout));
    assert_eq!(report["config_digest"], config_digest.as_str());

    // With --format oci every output holds one manifest: one digest is printed.
    let mut cmd = p.cmd(&["build", "--format", "oci", "-o", &outputs[0], "-o", &outputs[1]]);
    cmd.env("DOCKER_CONFIG", docker_config.path());
    let out = run_ok(&mut cmd);
    let digest = stdout(&out).trim().to_string();
    assert_eq!(skopeo_digest(&format!("oci:{}:v1", layout.display())), digest);
    assert!(!stderr(&out).contains("different manifests"));
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The host's own `/bin/true` is a glibc binary: on scratch its loader is missing.
#[test]
fn a_glibc_binary_or_a_script_without_its_interpreter_on_scratch_is_refused() {
    let p = Project::new(
        "[function]\nname = \"f\"\nruntime = \"provided.al2023\"\n\n[base]\nimage = \"scratch\"\n\n\
         [image]\nentrypoint = [\"/var/task/true\"]\n",
        &[],
    );
    p.copy_in(Path::new("/bin/true"), "true");
    let err = stderr(&p.build_fail(&[]));
    let loader = ["/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1"]
        .into_iter()
        .find(|l| err.contains(*l))
        .unwrap_or_else(|| panic!("no loader named: {err}"));
    assert!(
        err.contains(&format!(
            "error[LI046 elf-interpreter-missing]: entrypoint /var/task/true is a dynamically linked ELF binary \
             whose loader {loader} (PT_INTERP) does not exist in the image"
        )),
        "{err}"
    );

    let p = Project::new(
        "[function]\nname = \"f\"\nruntime = \"provided.al2023\"\n\n[base]\nimage = \"scratch\"\n\n\
         [image]\nentrypoint = [\"/var/task/run.sh\"]\n",
        &[("run.sh", "#!/bin/sh\necho hi\n")],
    );
    std::fs::set_permissions(
        p.join("run.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let err = stderr(&p.build_fail(&[]));
    assert!(
        err.contains(
            "error[LI045 script-interpreter-missing]: entrypoint /var/task/run.sh is a script whose interpreter \
             /bin/sh (its #! line) does not exist in the image"
        ),
        "{err}"
    );
}
