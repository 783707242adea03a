//! `lambda-img run`: the environment a function sees (`--entrypoint` shells,
//! settings, another architecture), as root and as an unprivileged user.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::run::busybox_image;
use crate::support::project::Project;
use crate::support::{require_tool, run_ok, stderr, stdout};

const LOOK_AROUND: &str = "id -u; cat /etc/secret/token || echo secret-denied; \
    echo x > /var/task/x 2>/dev/null || echo task-read-only; echo y > /tmp/y && echo tmp-ok; \
    echo $$; cat /tmp/mounted/hello.txt; echo z > /tmp/mounted/z 2>/dev/null || echo mount-read-only";

/// A host folder with `hello.txt` under `dir`; returns its `--mount` value.
fn host_folder(dir: &Path) -> String {
    std::fs::create_dir(dir.join("host")).unwrap();
    std::fs::write(dir.join("host/hello.txt"), "mounted!\n").unwrap();
    format!("{}:/tmp/mounted", dir.join("host").display())
}

/// `run IMAGE --mount MOUNT --entrypoint busybox -- sh -c LOOK_AROUND`.
fn shell_args<'a>(image: &'a str, mount: &'a str) -> [&'a str; 10] {
    [
        "run",
        image,
        "--mount",
        mount,
        "--entrypoint",
        "/var/task/busybox",
        "--",
        "sh",
        "-c",
        LOOK_AROUND,
    ]
}

fn look_around(cmd: &mut Command) -> String {
    let out = run_ok(cmd);
    stdout(&out)
}

fn assert_lambda_like(text: &str) {
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "993",
            "secret-denied",
            "task-read-only",
            "tmp-ok",
            "2",
            "mounted!",
            "mount-read-only"
        ],
        "uid 993, root-only file unreadable, read-only root, writable /tmp, own PID namespace \
         (PID 1 is the sandbox's init), read-only mount"
    );
}

/// `--entrypoint` runs a shell in the function's environment, as root on the
/// host, of an image given as SOURCE.
#[test]
fn entrypoint_shell_sees_lambdas_environment() {
    let work = tempfile::tempdir().unwrap();
    let Some(image) = busybox_image(work.path()) else {
        return;
    };
    let mount = host_folder(work.path());
    let cache = tempfile::tempdir().unwrap();
    let text = look_around(crate::support::lambda_img(cache.path()).args(shell_args(&image, &mount)));
    assert_lambda_like(&text);
}

/// The same as an unprivileged user: user namespaces map uid 993 to the caller.
#[test]
fn entrypoint_shell_as_a_non_root_user() {
    if !require_tool("setpriv") {
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        crate::support::skipped("the test switches to uid 65534 and needs root to do so");
        return;
    }
    // Everything the user needs, in a place it may read and write.
    let work = tempfile::tempdir().unwrap();
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let Some(image) = busybox_image(work.path()) else {
        return;
    };
    let mount = host_folder(work.path());
    // A copy of the binary the user can reach whatever the checkout's permissions.
    let bin = work.path().join("lambda-img");
    std::fs::copy(crate::support::bin(), &bin).unwrap();
    run_ok(Command::new("chown").args(["-R", "65534:65534"]).arg(work.path()));
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .env("LAMBDA_IMG_CACHE", work.path().join("cache"))
        .env("HOME", work.path())
        .args(shell_args(&image, &mount));
    assert_lambda_like(&look_around(&mut cmd));
}

/// `[function]` keys, then flags over them, reach the function's
/// environment; credentials only with --aws-credentials.
#[test]
fn settings_from_the_manifest_and_flags_reach_the_function() {
    if !require_tool("busybox") {
        return;
    }
    let manifest = r#"[function]
name = "settings"
runtime = "provided.al2023"
architecture = "x86_64"
memory = 256
timeout = 10
ephemeral_storage = 600
environment = { FROM_MANIFEST = "m", OVERRIDDEN = "manifest" }

[base]
image = "scratch"

[image]
entrypoint = ["/var/task/busybox"]
"#;
    let p = Project::new(
        manifest,
        &[("vars.env", "# a comment\nFROM_FILE=f\nexport EXPORTED=yes\n")],
    );
    p.copy_in(Path::new("/bin/busybox"), "busybox");
    std::fs::set_permissions(p.join("busybox"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = "env; busybox df -m /tmp | busybox tail -1";
    let look = |extra: &[&str]| {
        let mut args = vec!["run", "--env-file", "vars.env"];
        args.extend_from_slice(extra);
        args.extend(["--entrypoint", "/var/task/busybox", "--", "sh", "-c", script]);
        let out = run_ok(
            p.cmd(&args)
                .env("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
                .env("AWS_SECRET_ACCESS_KEY", "example-secret-value"),
        );
        (stdout(&out), stderr(&out))
    };
    let (env, log) = look(&["--memory", "512", "--env", "OVERRIDDEN=flag"]);
    for line in [
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=512",
        "AWS_LAMBDA_FUNCTION_NAME=settings",
        "AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/settings",
        "AWS_LAMBDA_INITIALIZATION_TYPE=on-demand",
        "LAMBDA_TASK_ROOT=/var/task",
        "FROM_MANIFEST=m",
        "OVERRIDDEN=flag",
        "FROM_FILE=f",
        "EXPORTED=yes",
    ] {
        assert!(env.lines().any(|l| l == line), "{line} missing in\n{env}");
    }
    assert!(
        env.lines()
            .any(|l| l.starts_with("AWS_LAMBDA_RUNTIME_API=127.0.0.1:")),
        "{env}"
    );
    assert!(
        !env.contains("AWS_SECRET_ACCESS_KEY"),
        "no credentials unless asked: {env}"
    );
    assert!(!log.contains("example-secret-value"));
    let tmp = env.lines().last().unwrap();
    assert!(
        tmp.split_whitespace().nth(1) == Some("600"),
        "/tmp is 600 MB: {tmp}"
    );

    let (env, log) = look(&["--aws-credentials"]);
    assert!(
        env.lines()
            .any(|l| l == "AWS_SECRET_ACCESS_KEY=example-secret-value"),
        "{env}"
    );
    assert!(
        env.lines().any(|l| l == "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256"),
        "the manifest's memory: {env}"
    );
    assert!(
        !log.contains("example-secret-value"),
        "never in lambda-img's own output: {log}"
    );

    // Usage errors: status 2 and a message naming the problem.
    for (args, needle) in [
        (
            vec!["run", "--memory", "64"],
            "--memory 64 is outside Lambda's range 128 to 10240",
        ),
        (vec!["run", "--event", "{not json"], "is neither a file nor JSON"),
        (
            vec!["run", "--mount", "/tmp:/var/task/x"],
            "must be a path under /tmp",
        ),
    ] {
        let out = p.cmd(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{}", stderr(&out));
    }
    std::fs::write(
        p.join("lambda-img.toml"),
        manifest.replace("memory = 256", "memory = 64"),
    )
    .unwrap();
    let out = p.cmd(&["run"]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("lambda-img.toml:5:10") && stderr(&out).contains("use 128 to 10240"),
        "{}",
        stderr(&out)
    );
}

/// An arm64 image on this x86_64 machine: it runs through qemu when
/// binfmt_misc has qemu-aarch64 registered (`.ci/run` registers it), else the
/// error names the package.
#[test]
fn a_foreign_image_needs_qemu_and_says_so() {
    if std::env::consts::ARCH != "x86_64" {
        crate::support::skipped("written for an x86_64 host");
        return;
    }
    let registered = std::fs::read_to_string("/proc/sys/fs/binfmt_misc/qemu-aarch64")
        .is_ok_and(|e| e.starts_with("enabled") && e.contains("flags: ") && e.contains('F'));
    if registered {
        return real_arm64_function_answers_through_qemu();
    }
    if crate::support::in_ci() {
        panic!("binfmt_misc has no qemu-aarch64 (CI=true): .ci/run must register it");
    }
    eprintln!("!!! qemu-aarch64 is not registered: only the error path is tested here");
    let work = tempfile::tempdir().unwrap();
    let Some(image) = busybox_image(work.path()) else {
        return;
    };
    let layout = image.trim_start_matches("oci:").trim_end_matches(":secret");
    run_ok(Command::new("umoci").args([
        "config",
        "--architecture",
        "arm64",
        "--image",
        &format!("{layout}:secret"),
        "--tag",
        "arm64",
    ]));
    let cache = tempfile::tempdir().unwrap();
    let out = crate::support::lambda_img(cache.path())
        .args([
            "run",
            &format!("oci:{layout}:arm64"),
            "--entrypoint",
            "/var/task/busybox",
            "--",
            "true",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("linux/arm64")
            && err.contains("qemu-aarch64-static")
            && err.contains("qemu-user-static"),
        "{err}"
    );
}

/// Debian's arm64 busybox (an aarch64 binary, which this host cannot run
/// natively) as a custom runtime: a shell bootstrap speaks the Runtime API
/// with busybox wget, under qemu-user, and answers with the machine it sees.
fn real_arm64_function_answers_through_qemu() {
    let arm64_busybox = Path::new("/opt/lambda-img-arm64/busybox");
    if !arm64_busybox.is_file() {
        if crate::support::in_ci() {
            panic!(
                "{} is missing (CI=true): .ci/run must install it",
                arm64_busybox.display()
            );
        }
        eprintln!(
            "\n!!! SKIPPING: {} is missing; run .ci/run to install it !!!\n",
            arm64_busybox.display()
        );
        return;
    }
    let elf = std::fs::read(arm64_busybox).unwrap();
    assert_eq!(
        u16::from_le_bytes([elf[18], elf[19]]),
        183,
        "EM_AARCH64: a real arm64 binary"
    );
    let p = shell_runtime(arm64_busybox, "arm64");
    let out = run_ok(&mut p.cmd(&["run", "--json", "--event", r#"{"n":1}"#, "--event", r#"{"n":2}"#]));
    let r = crate::run::records(&out);
    assert_eq!(r.len(), 2, "{}", stderr(&out));
    for (i, rec) in r.iter().enumerate() {
        assert_eq!(rec["status"], "success", "{rec}\n{}", stderr(&out));
        assert_eq!(
            rec["response"]["machine"], "aarch64",
            "qemu-user runs it as arm64: {rec}"
        );
        assert_eq!(rec["response"]["event"]["n"], i + 1, "{rec}");
    }
}

/// A custom runtime that is a shell script: `busybox` (the file given) speaks
/// the Runtime API with its wget and answers `{"machine": uname -m, "event": EVENT}`;
/// an event with `hog` in it first starts a child that holds 300 MB.
/// The entrypoint has arguments (`busybox sh bootstrap`), as engines must pass them.
pub(crate) fn shell_runtime(busybox: &Path, arch: &str) -> Project {
    let manifest = format!(
        r#"[function]
name = "shell"
runtime = "provided.al2023"
architecture = "{arch}"

[base]
image = "scratch"

[code]
sources = ["busybox", "bootstrap"]
destination = "/var/runtime/"

[image]
entrypoint = ["/var/runtime/busybox", "sh", "/var/runtime/bootstrap"]
"#
    );
    // One invocation per loop: long-poll `next`, read the request id from
    // the response headers, post the answer.
    let bootstrap = r#"b=/var/runtime/busybox
api="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation"
while true; do
  $b wget -q -S -O /tmp/event "$api/next" 2>/tmp/headers || exit 1
  id=$($b sed -n 's/^ *[Ll]ambda-[Rr]untime-[Aa]ws-[Rr]equest-[Ii]d: *\([^[:space:]]*\).*/\1/p' /tmp/headers)
  # {"hog":...}: a child process (dd) holds 300 MB while it blocks on a pipe.
  case "$($b cat /tmp/event)" in *hog*) $b dd if=/dev/zero bs=300M count=1 2>/dev/null | $b sleep 3;; esac
  machine=$($b uname -m)
  $b wget -q -O /dev/null --post-data "{\"machine\":\"$machine\",\"event\":$($b cat /tmp/event)}" "$api/$id/response" || exit 1
done
"#;
    let p = Project::new(&manifest, &[("bootstrap", bootstrap)]);
    p.copy_in(busybox, "busybox");
    for f in ["busybox", "bootstrap"] {
        std::fs::set_permissions(p.join(f), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    p
}

/// `--engine docker`: the real docker CLI, against podman's Docker-compatible
/// API (no Docker daemon here), answers like the native sandbox, passes a
/// multi-argument entrypoint, and leaves no container behind.
#[test]
fn docker_engine_answers_like_the_native_sandbox() {
    if !require_tool("docker") || !require_tool("podman") || !require_tool("busybox") {
        return;
    }
    let p = shell_runtime(Path::new("/bin/busybox"), "x86_64");
    let api = crate::support::podman::DockerApi::start();
    let events = ["--event", r#"{"n":1}"#, "--event", r#"{"n":2}"#];
    let mut answers = Vec::new();
    for engine in ["native", "docker"] {
        let mut cmd = p.cmd(&["run", "--json", "--engine", engine]);
        cmd.args(events).envs(api.env());
        let out = run_ok(&mut cmd);
        let r = crate::run::records(&out);
        assert_eq!(r.len(), 2, "{engine}: {}", stderr(&out));
        for (i, rec) in r.iter().enumerate() {
            assert_eq!(rec["status"], "success", "{engine}: {rec}\n{}", stderr(&out));
            assert_eq!(rec["response"]["event"]["n"], i + 1, "{engine}: {rec}");
        }
        answers.push(r.iter().map(|rec| rec["response"].clone()).collect::<Vec<_>>());
    }
    assert_eq!(
        answers[0], answers[1],
        "docker answers as the native sandbox does"
    );
    let left = run_ok(&mut api.docker(&["ps", "-a", "-q"]));
    assert_eq!(stdout(&left).trim(), "", "no container is left behind");
    let images = run_ok(&mut api.docker(&["images", "--format", "{{.Repository}}"]));
    assert!(
        stdout(&images).contains("lambda-img-run"),
        "the image went through docker load: {}",
        stdout(&images)
    );
}

/// Lambda's memory limit covers the processes a handler starts: a child
/// holding 300 MB in a 128 MB function is stopped as Runtime.OutOfMemory,
/// and the next event gets a fresh environment.
#[test]
fn a_child_process_counts_toward_the_memory_limit() {
    if !require_tool("busybox") {
        return;
    }
    let p = shell_runtime(Path::new("/bin/busybox"), "x86_64");
    let out = p
        .cmd(&[
            "run",
            "--json",
            "--event",
            r#"{"n":1}"#,
            "--event",
            r#"{"hog":1}"#,
            "--event",
            r#"{"n":3}"#,
        ])
        .output()
        .unwrap();
    // A failed invocation makes `run` exit 1, after every event was answered.
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    let r = crate::run::records(&out);
    let log = stderr(&out);
    assert_eq!(r.len(), 3, "{log}");
    assert_eq!(r[0]["status"], "success", "{log}");
    assert!(
        r[0]["maxMemoryUsedMb"].as_u64().is_some_and(|m| m < 128),
        "{}",
        r[0]
    );
    assert_eq!(
        r[1]["status"], "crash",
        "300 MB in a child of a 128 MB function: {}\n{log}",
        r[1]
    );
    assert_eq!(r[1]["errorType"], "Runtime.OutOfMemory", "{}", r[1]);
    assert!(
        r[1]["maxMemoryUsedMb"].as_u64().is_some_and(|m| m > 128),
        "{}",
        r[1]
    );
    assert_eq!(r[2]["status"], "success", "a fresh environment: {}\n{log}", r[2]);
}

/// `run --watch` with events: the events run, and after a code change the
/// image is rebuilt and the same events run again, in a fresh environment,
/// answering with the new code.
#[test]
fn watch_with_events_runs_them_again_after_a_change() {
    use std::io::BufRead;
    if !require_tool("busybox") {
        return;
    }
    let p = shell_runtime(Path::new("/bin/busybox"), "x86_64");
    let mut child = p
        .cmd(&["run", "--watch", "--json", "--event", r#"{"n":1}"#])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed by PID when the test ends, however it ends.
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().unwrap();
    let _guard = Kill(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // A generous bound so a broken watch fails the test instead of hanging it.
    let next = || -> serde_json::Value {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(300))
            .expect("no record from `run --watch` within 5 minutes");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    };
    let first = next();
    assert_eq!(first["status"], "success", "{first}");
    assert!(first["response"].get("edited").is_none(), "{first}");
    assert!(first["initDurationMs"].is_number(), "{first}");

    let bootstrap = std::fs::read_to_string(p.join("bootstrap")).unwrap();
    let edited = bootstrap.replace(r#"{\"machine\""#, r#"{\"edited\":true,\"machine\""#);
    assert_ne!(edited, bootstrap);
    std::fs::write(p.join("bootstrap"), edited).unwrap();
    // The next record is the rerun (no timing asserted).
    let second = next();
    assert_eq!(second["status"], "success", "{second}");
    assert_eq!(
        second["response"]["edited"], true,
        "the new code answered: {second}"
    );
    assert_eq!(second["response"]["event"]["n"], 1, "{second}");
    assert!(
        second["initDurationMs"].is_number(),
        "a fresh environment: {second}"
    );
}

/// Where namespaces cannot be made (here: bwrap forbids nested user
/// namespaces to a non-root user), `run` says why and names the engine
/// option, instead of failing somewhere inside the sandbox.
#[test]
fn without_namespaces_run_says_why_and_names_the_podman_engine() {
    if !require_tool("bwrap") || !require_tool("busybox") {
        return;
    }
    let p = shell_runtime(Path::new("/bin/busybox"), "x86_64");
    let layout = p.join("out");
    p.build_ok(&["--output", &format!("oci:{}:latest", layout.display())]);
    let cache = tempfile::tempdir().unwrap();
    let out = crate::support::command("bwrap")
        .args([
            "--dev-bind",
            "/",
            "/",
            "--unshare-user",
            "--disable-userns",
            "--uid",
            "1000",
            "--gid",
            "1000",
            "--",
        ])
        .arg(crate::support::bin())
        .args(["run", &format!("oci:{}:latest", layout.display())])
        .env("LAMBDA_IMG_CACHE", cache.path())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("namespaces are not available")
            && err.contains("user namespace")
            && err.contains("--engine podman"),
        "{err}"
    );
}
