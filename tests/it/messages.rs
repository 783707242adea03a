//! Messages and exit codes (issue #11): `--username U --password-stdin` for
//! build, check, pin and login against a real htpasswd registry (stdin read
//! once), exit status 2 for command-line mistakes, JSON errors, hints.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::support::project::{Project, scratch_manifest};
use crate::support::registry::TestRegistry;
use crate::support::{lambda_img, require_tool, run_fail, run_fail_with, stderr, stdout};

/// Runs `cmd` with `input` on stdin.
pub(crate) fn with_stdin(cmd: &mut Command, input: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

pub(crate) fn ok(out: Output, what: &str) -> Output {
    assert!(
        out.status.success(),
        "{what} failed with {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    out
}

#[test]
fn password_stdin_works_for_build_check_pin_and_login() {
    let Some(registry) = TestRegistry::start_basic("ci", "s3cret") else {
        return;
    };
    if !require_tool("busybox") {
        return;
    }
    let host = registry.host();
    let docker_config = tempfile::tempdir().unwrap();
    let auth = ["--username", "ci", "--password-stdin"];

    // build: the push needs the credentials.
    let base = Project::new(&scratch_manifest(""), &[]);
    base.copy_in(Path::new("/bin/busybox"), "busybox");
    let mut cmd = base.cmd(&["build", "--output", &format!("registry:{host}/fn/base:1")]);
    cmd.args(auth).env("DOCKER_CONFIG", docker_config.path());
    let out = ok(with_stdin(&mut cmd, "s3cret\n"), "build");
    let pushed = stdout(&out).trim().to_string();
    assert!(
        pushed.starts_with(&format!("{host}/fn/base:1@sha256:")),
        "{pushed}"
    );

    // build on that base and push beside it: the base read and the push both
    // need the one password stdin gave.
    let manifest = format!(
        "[function]\nname = \"app\"\nruntime = \"provided.al2023\"\n\n[base]\nimage = \"{pushed}\"\n\n\
         [code]\nsources = [\"x.txt\"]\n"
    );
    let app = Project::new(&manifest, &[("x.txt", "x\n")]);
    let mut cmd = app.cmd(&["build", "--output", &format!("registry:{host}/fn/app:1")]);
    cmd.args(auth).env("DOCKER_CONFIG", docker_config.path());
    ok(with_stdin(&mut cmd, "s3cret\n"), "build on a registry base");

    // check
    let cache = tempfile::tempdir().unwrap();
    let mut cmd = lambda_img(cache.path());
    cmd.args(["check", &format!("{host}/fn/app:1")]).args(auth);
    cmd.env("DOCKER_CONFIG", docker_config.path());
    ok(with_stdin(&mut cmd, "s3cret"), "check");
    // A wrong password is refused by the registry, not read as empty.
    let mut cmd = lambda_img(cache.path());
    cmd.args(["check", &format!("{host}/fn/app:1")]).args(auth);
    let out = with_stdin(cmd.env("DOCKER_CONFIG", docker_config.path()), "wrong\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(!stderr(&out).contains("empty password"), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("wrong"),
        "the password never appears: {}",
        stderr(&out)
    );

    // pin: resolves the tag with the credentials.
    let unpinned = Project::new(
        &format!(
            "[function]\nname = \"app\"\nruntime = \"provided.al2023\"\n\n[base]\nimage = \"{host}/fn/base:1\"\n"
        ),
        &[],
    );
    let mut cmd = unpinned.cmd(&["pin"]);
    cmd.args(auth).env("DOCKER_CONFIG", docker_config.path());
    ok(with_stdin(&mut cmd, "s3cret\n"), "pin");
    let pinned = std::fs::read_to_string(unpinned.join("lambda-img.toml")).unwrap();
    assert!(pinned.contains(&pushed), "{pinned}");

    // login prints where it stored them as a plain path.
    let mut cmd = lambda_img(cache.path());
    cmd.args(["login", &host]).args(auth);
    let out = ok(
        with_stdin(cmd.env("DOCKER_CONFIG", docker_config.path()), "s3cret\n"),
        "login",
    );
    let config = docker_config.path().join("config.json");
    assert!(
        stderr(&out).contains(&format!(
            "logged in to {host}; credentials stored in {}\n",
            config.display()
        )),
        "{}",
        stderr(&out)
    );
    assert!(std::fs::read_to_string(&config).unwrap().contains(&host));
}

#[test]
fn command_line_mistakes_exit_2_and_json_failures_are_json() {
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["build", "--output", "bogus:x"],
        vec!["build", "--output", "oci:"],
        vec!["build", "--username", "u"],
        vec!["build", "--no-such-flag"],
        vec!["check"],
        vec!["login", "example.com"],
        vec!["explain", "LI999"],
    ] {
        run_fail_with(
            lambda_img(cache.path())
                .current_dir(dir.path())
                .args(&args)
                .stdin(Stdio::null()),
            2,
        );
    }
    let out = run_fail_with(
        lambda_img(cache.path())
            .current_dir(dir.path())
            .args(["build", "-o", "bogus:x"]),
        2,
    );
    assert!(
        stderr(&out).contains(
            "invalid value 'bogus:x' for '--output <OUTPUT>': invalid output bogus:x: expected oci:DIR[:TAG], docker-archive:FILE[:REPO:TAG] or registry:REF"
        ),
        "{}",
        stderr(&out)
    );

    // No manifest: the hint names `lambda-img init`; --json gives a JSON error.
    let out = run_fail(
        lambda_img(cache.path())
            .current_dir(dir.path())
            .args(["build", "--json"]),
    );
    let err = stderr(&out);
    assert!(err.contains("no lambda-img.toml here"), "{err}");
    assert!(err.contains("run `lambda-img init` to write one"), "{err}");
    assert_eq!(err.matches("lambda-img.toml").count(), 1, "said once: {err}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["error"]["kind"], "manifest");
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("lambda-img init")
    );

    // A rule failure with --json: the findings are in the object.
    let p = Project::new(
        "[function]\nname = \"f\"\nruntime = \"provided.al2023\"\n\n[base]\nimage = \"scratch\"\n\n[image]\nentrypoint = [\"/var/task/missing\"]\n",
        &[("present.txt", "x\n")],
    );
    let out = run_fail(&mut p.cmd(&["build", "--json"]));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["error"]["kind"], "rules");
    assert_eq!(json["findings"][0]["rule_id"], "LI033");

    // Not UTF-8: said so, with the byte offset.
    std::fs::write(
        dir.path().join("lambda-img.toml"),
        b"[function]\nname = \"\xff\"\n",
    )
    .unwrap();
    let out = run_fail(lambda_img(cache.path()).current_dir(dir.path()).args(["build"]));
    let err = stderr(&out);
    assert!(err.contains("lambda-img.toml is not UTF-8 text"), "{err}");
    assert!(!err.contains("-C DIR"), "{err}");
}

#[test]
fn help_and_man_page_document_the_exit_status() {
    let cache = tempfile::tempdir().unwrap();
    let help = stdout(&crate::support::run_ok(lambda_img(cache.path()).arg("--help")));
    assert!(
        help.contains("Exit status: 0 success, 1 the build or a rule failed, 2 a command-line mistake"),
        "{help}"
    );
    let man = stdout(&crate::support::run_ok(lambda_img(cache.path()).arg("man")));
    assert!(
        man.contains("2 a command\\-line mistake") || man.contains("2 a command-line mistake"),
        "{man}"
    );
}

/// `cached: true` only for layers neither pulled nor built in this run.
#[test]
fn cached_is_false_for_base_layers_pulled_and_layers_built_in_this_run() {
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    if !require_tool("busybox") {
        return;
    }
    let host = registry.host();
    let base = Project::new(&scratch_manifest(""), &[]);
    base.copy_in(Path::new("/bin/busybox"), "busybox");
    let out = crate::support::run_ok(&mut base.cmd(&["build", "-o", &format!("registry:{host}/c/base:1")]));
    let pushed = stdout(&out).trim().to_string();
    let app = Project::new(
        &format!(
            "[function]\nname = \"app\"\nruntime = \"provided.al2023\"\n\n[base]\nimage = \"{pushed}\"\n\n\
             [code]\nsources = [\"x.txt\"]\n"
        ),
        &[("x.txt", "x\n")],
    );
    let cached = |report: &serde_json::Value| -> Vec<(String, bool)> {
        report["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l["origin"].as_str().unwrap().to_string(),
                    l["cached"].as_bool().unwrap(),
                )
            })
            .collect()
    };
    let out = crate::support::run_ok(&mut app.cmd(&["build", "--json"]));
    let err = stderr(&out);
    assert_eq!(err.matches("==> resolving base").count(), 1, "said once: {err}");
    assert!(!err.contains("caused by"), "{err}");
    let first: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        cached(&first),
        [("base".into(), false), ("built".into(), false)],
        "pulled and built"
    );
    let second: serde_json::Value =
        serde_json::from_slice(&crate::support::run_ok(&mut app.cmd(&["build", "--json"])).stdout).unwrap();
    assert_eq!(
        cached(&second),
        [("base".into(), true), ("built".into(), true)],
        "both from the cache"
    );
}

/// Root reads everything, so the build runs as `nobody` (setpriv, a real
/// util-linux tool) over a project whose one file it may not read.
#[test]
fn an_unreadable_source_says_what_to_do() {
    use std::os::unix::fs::PermissionsExt;
    if !require_tool("setpriv") || !require_tool("busybox") {
        return;
    }
    let p = Project::new(&scratch_manifest(""), &[("secret.txt", "x\n")]);
    p.copy_in(Path::new("/bin/busybox"), "busybox");
    let open =
        |path: &Path, mode| std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    open(p.path(), 0o755);
    open(&p.join("lambda-img.toml"), 0o644);
    open(&p.join("busybox"), 0o755);
    open(&p.join("secret.txt"), 0o000);
    // The cache must belong to the user who builds (it refuses one owned by
    // another user or open to others), so it is handed to that user.
    std::os::unix::fs::chown(p.cache.path(), Some(65534), Some(65534)).unwrap();
    open(p.cache.path(), 0o700);
    let out = crate::support::command("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(crate::support::bin())
        .arg("-C")
        .arg(p.path())
        .arg("build")
        .env("LAMBDA_IMG_CACHE", p.cache.path())
        .env("HOME", p.cache.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "cannot read {}: permission denied; make it readable by this user (chmod u+r, or a+rX for a directory) or exclude it",
            p.join("secret.txt").display()
        )),
        "{err}"
    );
}
