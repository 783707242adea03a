//! Settings resolve flags over `LAMBDA_IMG_*` variables over lambda-img.toml,
//! as `build --print-settings` shows; completions and man pages come from the
//! CLI definition.

use serde_json::Value;

use crate::support::project::Project;
use crate::support::{bin, command, run_ok, stdout};

fn project() -> Project {
    let p = Project::new(
        r#"[function]
name = "settings"
runtime = "provided.al2023"

[base]
image = "scratch"

[code]
sources = ["bootstrap"]
destination = "/var/task/"

[image]
entrypoint = ["/var/task/bootstrap"]
labels = { team = "from-manifest", keep = "manifest" }
format = "docker"
"#,
        &[("bootstrap", "stand-in bootstrap, never run\n")],
    );
    let exec = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(p.join("bootstrap"), exec).unwrap();
    p
}

fn settings(p: &Project, args: &[&str], env: &[(&str, &str)]) -> Value {
    let mut full = vec!["build", "--print-settings"];
    full.extend_from_slice(args);
    // `p.cmd` starts from an environment without LAMBDA_IMG_* variables.
    let mut cmd = p.cmd(&full);
    for (k, v) in env {
        cmd.env(k, v);
    }
    serde_json::from_str(&stdout(&run_ok(&mut cmd))).unwrap()
}

#[test]
fn print_settings_shows_flags_over_environment_over_manifest() {
    let p = project();
    // Manifest only.
    let s = settings(&p, &[], &[]);
    assert_eq!(s["format"], "docker");
    assert_eq!(s["labels"]["team"], "from-manifest");
    assert_eq!(s["gzip_level"], 4, "the default level");
    assert_eq!(s["install_timeout_seconds"], 1200);
    assert_eq!(s["outputs"], serde_json::json!([]));
    // Environment over the manifest.
    let env = [
        ("LAMBDA_IMG_FORMAT", "oci"),
        ("LAMBDA_IMG_LABEL", "team=from-env"),
        ("LAMBDA_IMG_GZIP_LEVEL", "5"),
        ("LAMBDA_IMG_INSTALL_TIMEOUT", "60"),
        ("LAMBDA_IMG_OUTPUT", "oci:env-out"),
    ];
    let s = settings(&p, &[], &env);
    assert_eq!(s["format"], "oci");
    assert_eq!(s["labels"]["team"], "from-env");
    assert_eq!(
        s["labels"]["keep"], "manifest",
        "labels merge over the manifest's"
    );
    assert_eq!(s["gzip_level"], 5);
    assert_eq!(s["install_timeout_seconds"], 60);
    assert_eq!(s["outputs"], serde_json::json!(["oci:env-out"]));
    // Flags over the environment.
    let flags = [
        "--format",
        "docker",
        "--label",
        "team=from-flag",
        "--gzip-level",
        "9",
        "--output",
        "oci:flag-out",
    ];
    let s = settings(&p, &flags, &env);
    assert_eq!(s["format"], "docker");
    assert_eq!(s["labels"]["team"], "from-flag");
    assert_eq!(s["gzip_level"], 9);
    assert_eq!(s["outputs"], serde_json::json!(["oci:flag-out"]));
    assert_eq!(s["cache_dir"], p.cache.path().display().to_string());
    // Nothing was built: no output directory appeared.
    assert!(!p.join("flag-out").exists() && !p.join("env-out").exists());
}

#[test]
fn print_settings_never_prints_credentials() {
    let p = project();
    let mut cmd = p.cmd(&[
        "--username",
        "AWS",
        "--password-stdin",
        "build",
        "--print-settings",
        "--output",
        "registry:127.0.0.1:5999/app:1",
    ]);
    cmd.stdin(std::process::Stdio::piped());
    let mut child = cmd.stdout(std::process::Stdio::piped()).spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"s3cret-token\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(!text.contains("s3cret-token"), "{text}");
    let s: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(s["username_given"], true);
    // The credentials are for the output's registry only.
    assert_eq!(s["credentials_host"], "127.0.0.1:5999");
}

#[test]
fn build_label_flag_reaches_the_image_config() {
    let p = project();
    let out_dir = p.join("out");
    p.build_ok(&[
        "--label",
        "org.opencontainers.image.revision=abc123",
        "--label",
        "team=flag",
        "--output",
        &format!("oci:{}", out_dir.display()),
    ]);
    let cfg = crate::support::oci::config(&out_dir, "latest");
    let labels = &cfg["config"]["Labels"];
    assert_eq!(labels["org.opencontainers.image.revision"], "abc123");
    assert_eq!(labels["team"], "flag");
    assert_eq!(labels["keep"], "manifest");
}

#[test]
fn completions_and_man_pages_come_from_the_cli_definition() {
    let generate = |args: &[&str]| stdout(&run_ok(command(bin()).args(args)));
    let bash = generate(&["completions", "bash"]);
    assert!(bash.contains("complete") && bash.contains("lambda-img"), "{bash}");
    assert!(bash.contains("--print-settings") && bash.contains("init"));
    assert!(generate(&["completions", "zsh"]).starts_with("#compdef lambda-img"));
    assert!(generate(&["completions", "fish"]).contains("complete -c lambda-img"));
    let man = generate(&["man"]);
    assert!(man.contains(".TH lambda-img 1"), "{man}");
    assert!(man.contains("init") && man.contains("completions"));

    let dir = tempfile::tempdir().unwrap();
    run_ok(command(bin()).args(["man", "--out-dir"]).arg(dir.path()));
    let build = std::fs::read_to_string(dir.path().join("lambda-img-build.1")).unwrap();
    assert!(build.contains("print\\-settings"), "{build}");
    assert!(dir.path().join("lambda-img-init.1").is_file());
}

/// Regression (issue #13): the settings are resolved once, so the password
/// on stdin is read once however many registries and functions a command
/// talks to. Two functions of `build --recursive` each push to a real
/// htpasswd registry with the one password stdin gave; a second read would
/// find stdin empty and fail with "empty password".
#[test]
fn password_stdin_is_read_once_for_every_function_of_a_recursive_build() {
    let Some(registry) = crate::support::registry::TestRegistry::start_basic("ci", "s3cret") else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    for name in ["alpha", "beta"] {
        let manifest = format!(
            "[function]\nname = \"{name}\"\nruntime = \"provided.al2023\"\n\n[base]\nimage = \"scratch\"\n\n\
             [code]\nsources = [\"bootstrap\"]\n\n[image]\nentrypoint = [\"/var/task/bootstrap\"]\n"
        );
        crate::support::write_files(
            &root.path().join(name),
            &[("lambda-img.toml", &manifest), ("bootstrap", "stand-in\n")],
        );
        let exec = std::os::unix::fs::PermissionsExt::from_mode(0o755);
        std::fs::set_permissions(root.path().join(name).join("bootstrap"), exec).unwrap();
    }
    let cache = tempfile::tempdir().unwrap();
    let docker_config = tempfile::tempdir().unwrap();
    let output = format!("registry:{}/fleet/{{function}}:1", registry.host());
    let mut cmd = crate::support::lambda_img(cache.path());
    cmd.current_dir(root.path())
        .args(["--username", "ci", "--password-stdin"])
        .args(["build", "--recursive", "--output", &output])
        .env("DOCKER_CONFIG", docker_config.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let err = crate::support::stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("empty password"), "{err}");
    let lines = stdout(&out);
    for name in ["alpha", "beta"] {
        let pushed = format!("{name} {}/fleet/{name}:1@sha256:", registry.host());
        assert!(lines.contains(&pushed), "{lines}");
    }
}

/// Regression (issue #13): a build reads lambda-img.toml once (it was read
/// three times: for the ECR sign-in hosts, for the deploy settings and for
/// the build). The kernel counts the opens (inotify `IN_OPEN`, with
/// `IN_CLOSE_NOWRITE` between them so that two opens are never merged into
/// one event), for `--print-settings` and for a build with an output.
#[test]
fn a_build_reads_the_manifest_once() {
    let p = project();
    let manifest = p.join("lambda-img.toml");
    for args in [vec!["--print-settings"], vec!["--output", "oci:out"]] {
        let opens = OpenCounter::watch(&manifest);
        let out = p.cmd(&[&["build"], args.as_slice()].concat()).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", crate::support::stderr(&out));
        assert_eq!(opens.count(), 1, "{args:?} opened {}", manifest.display());
    }
    assert!(p.join("out/index.json").is_file(), "the build wrote its output");
}

/// Counts the opens of one file through inotify.
struct OpenCounter(std::os::fd::OwnedFd);

impl OpenCounter {
    fn watch(path: &std::path::Path) -> OpenCounter {
        use std::os::fd::FromRawFd;
        use std::os::unix::ffi::OsStrExt;
        // SAFETY: plain syscalls; the fd is owned by the returned value.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        assert!(fd >= 0, "inotify_init1: {}", std::io::Error::last_os_error());
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        let mask = libc::IN_OPEN | libc::IN_CLOSE_NOWRITE;
        // SAFETY: `c_path` is a valid C string for the call's duration.
        let wd =
            unsafe { libc::inotify_add_watch(std::os::fd::AsRawFd::as_raw_fd(&fd), c_path.as_ptr(), mask) };
        assert!(wd >= 0, "inotify_add_watch: {}", std::io::Error::last_os_error());
        OpenCounter(fd)
    }

    /// The opens queued so far.
    fn count(&self) -> usize {
        let mut file = std::fs::File::from(self.0.try_clone().unwrap());
        let mut events = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match std::io::Read::read(&mut file, &mut buf) {
                Ok(0) => break,
                Ok(n) => events.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("reading inotify events: {e}"),
            }
        }
        // struct inotify_event: wd, mask, cookie, len (u32 each), then `len` name bytes.
        let mut opens = 0;
        let mut at = 0;
        while at + 16 <= events.len() {
            let word = |i: usize| u32::from_ne_bytes(events[at + i..at + i + 4].try_into().unwrap());
            if word(4) & libc::IN_OPEN != 0 {
                opens += 1;
            }
            at += 16 + word(12) as usize;
        }
        opens
    }
}
