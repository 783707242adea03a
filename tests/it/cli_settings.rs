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
/// three times: for ECR sign-in hosts, for the deploy settings and for the
/// build). The manifest here is a FIFO that hands out its text to the first
/// reader only: a second open would find no text (or this thread's garbage)
/// and the build would fail. Checked for `--print-settings` and for a build
/// with an output.
#[test]
fn a_build_reads_the_manifest_once() {
    let p = project();
    let text = std::fs::read_to_string(p.join("lambda-img.toml")).unwrap();
    for args in [vec!["--print-settings"], vec!["--output", "oci:out"]] {
        let fifo = p.join("lambda-img.toml");
        std::fs::remove_file(&fifo).unwrap();
        run_ok(command("mkfifo").arg(&fifo));
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let server = {
            let (fifo, text, done) = (fifo.clone(), text.clone(), done.clone());
            std::thread::spawn(move || serve_to_each_reader(&fifo, &text, &done))
        };
        let out = p.cmd(&[&["build"], args.as_slice()].concat()).output().unwrap();
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        let readers = server.join().unwrap();
        assert!(out.status.success(), "{args:?}: {}", crate::support::stderr(&out));
        assert_eq!(readers, 1, "{args:?} opened the manifest {readers} times");
    }
    let layout = p.join("out");
    assert!(layout.join("index.json").is_file(), "the build wrote its output");
}

/// Writes `text` to the first reader that opens `fifo`, and garbage to any
/// later one, until `done`; returns how many readers came.
fn serve_to_each_reader(fifo: &std::path::Path, text: &str, done: &std::sync::atomic::AtomicBool) -> usize {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let open = || {
        std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(fifo)
    };
    let mut readers = 0;
    while !done.load(std::sync::atomic::Ordering::SeqCst) {
        // A non-blocking open for writing succeeds only while a reader has it open.
        let Ok(mut writer) = open() else {
            std::thread::sleep(std::time::Duration::from_millis(2));
            continue;
        };
        readers += 1;
        let body = if readers == 1 { text } else { "not = [toml" };
        let _ = writer.write_all(body.as_bytes());
        drop(writer);
        // The reader has its text and EOF; wait until it closes the FIFO so
        // it is not counted twice.
        while !done.load(std::sync::atomic::Ordering::SeqCst) && open().is_ok() {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
    readers
}
