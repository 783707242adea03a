//! `lambda-img run`: real runtime clients (awslambdaric, a std-only custom
//! runtime, busybox) answering events in lambda-img's own sandbox, with
//! Lambda's failure semantics; podman gives the same answers.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::project::Project;
use crate::support::{require_tool, run_ok, stderr, stdout};

/// The `--json` records on stdout, one per line.
pub(crate) fn records(out: &Output) -> Vec<Value> {
    stdout(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}\n{}", stderr(out))))
        .collect()
}

/// The README's std-only custom runtime on scratch, its bootstrap built by rustc.
pub(crate) fn hello_scratch() -> Option<Project> {
    if !require_tool("rustc") {
        return None;
    }
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello-scratch");
    let manifest = std::fs::read_to_string(example.join("lambda-img.toml")).unwrap();
    let source = std::fs::read_to_string(example.join("bootstrap.rs")).unwrap();
    let p = Project::new(&manifest, &[("bootstrap.rs", &source)]);
    crate::runtime::compile_hello_bootstrap(p.path());
    Some(p)
}

/// The Python function of these tests: one handler whose event says what to do.
pub(crate) const APP_PY: &str = r#"import os, time
ENV_ID = os.urandom(8).hex()
if os.environ.get("FAIL_INIT"):
    raise RuntimeError("init failed on purpose")
import markupsafe
from markupsafe import _speedups
CALLS = 0

def handler(event, context):
    global CALLS
    CALLS += 1
    a = event.get("action")
    if a == "echo":
        print("echo called", flush=True)
        return {"calls": CALLS, "uid": os.getuid(), "request_id": context.aws_request_id,
                "function": context.function_name, "memory": context.memory_limit_in_mb,
                "remaining_ok": 0 < context.get_remaining_time_in_millis() <= 2000,
                "escaped": str(markupsafe.escape("<b>")), "native": _speedups.__file__.endswith(".so"),
                "cwd": os.getcwd(), "greeting": os.environ.get("GREETING")}
    if a == "fail":
        raise ValueError("bad input")
    if a == "sleep":
        time.sleep(event["seconds"])
        return "woke"
    if a == "crash":
        os._exit(3)
    if a == "big":
        return "x" * (7 * 1024 * 1024)
    if a == "write":
        out = {}
        for path in ["/var/task/new.txt", "/new.txt", "/tmp/new.txt"]:
            try:
                with open(path, "w") as f:
                    f.write("x")
                out[path] = "written"
            except OSError as e:
                out[path] = e.strerror
        return out
    if a == "hog":
        hog = b"x" * (300 * 1024 * 1024)
        return len(hog)
    if a == "pure":
        return {"escaped": str(markupsafe.escape(event.get("name", ""))), "native": _speedups.__file__.endswith(".so")}
    if a == "count":
        time.sleep(0.2)
        return {"env": ENV_ID, "calls": CALLS}
    if a == "touch":
        open("/tmp/shared/" + event["name"], "w").close()
        return "touched"
    if a == "barrier":
        # Returns only when `n` environments are inside at once.
        open("/tmp/shared/" + ENV_ID, "w").close()
        while len(os.listdir("/tmp/shared")) < event["n"]:
            time.sleep(0.05)
        return ENV_ID
    return {"unknown": a}
"#;

/// A Python function on the host-Python base with awslambdaric and a
/// compiled wheel (markupsafe) installed from PyPI.
pub(crate) fn python_project() -> Option<Project> {
    use crate::support::python_base::{host_python, python_base};
    if !require_tool("ldd") || !require_tool("python3") {
        return None;
    }
    let Some(py) = host_python() else {
        crate::support::require(false, "no /usr/bin/python3 with a stdlib under /usr/lib");
        return None;
    };
    let base = python_base(&py);
    let manifest = format!(
        r#"[function]
name = "py-run"
runtime = "python3.{minor}"
handler = "app.handler"
timeout = 2
environment = {{ GREETING = "from the manifest" }}

[base]
image = "{base}"

[code]
exclude = ["requirements.txt"]

[image]
entrypoint = ["/usr/bin/python3", "-m", "awslambdaric"]
cmd = ["app.handler"]
workdir = "/var/task"
env = {{ PYTHONPATH = "/var/task" }}

[dependencies]
"#,
        minor = py.minor
    );
    let p = Project::new(
        &manifest,
        &[
            ("requirements.txt", "awslambdaric\nmarkupsafe==3.0.2\n"),
            ("app.py", APP_PY),
        ],
    );
    Some(p)
}

pub(crate) fn action(a: &str) -> String {
    format!(r#"{{"action":"{a}"}}"#)
}

pub(crate) fn run_events(p: &Project, extra: &[&str], events: &[String]) -> Output {
    let mut args = vec!["run", "--json"];
    args.extend_from_slice(extra);
    for e in events {
        args.push("--event");
        args.push(e);
    }
    p.cmd(&args).output().unwrap()
}

/// Every failure Lambda knows, in one warm environment and the fresh ones
/// that follow a timeout and a crash.
#[test]
fn python_function_fails_as_lambda_does_and_recovers() {
    let Some(p) = python_project() else { return };
    let events = [
        action("echo"),
        action("fail"),
        r#"{"action":"sleep","seconds":30}"#.to_string(),
        action("echo"),
        action("crash"),
        action("echo"),
        action("big"),
        action("write"),
        action("hog"),
        action("echo"),
    ];
    let out = run_events(&p, &[], &events);
    let log = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed invoke makes the status 1\n{log}"
    );
    let r = records(&out);
    assert_eq!(r.len(), events.len(), "{log}");

    let echo = &r[0]["response"];
    assert_eq!(r[0]["status"], "success", "{log}");
    assert_eq!(echo["calls"], 1);
    assert_eq!(echo["uid"], 993, "Lambda's user");
    assert_eq!(echo["request_id"], r[0]["requestId"]);
    assert_eq!(echo["function"], "py-run");
    assert_eq!(
        echo["memory"], "128",
        "awslambdaric hands the variable over as a string"
    );
    assert_eq!(
        echo["remaining_ok"], true,
        "the deadline header follows timeout = 2: {echo}"
    );
    assert_eq!(echo["escaped"], "&lt;b&gt;");
    assert_eq!(echo["native"], true, "the compiled wheel loaded");
    assert_eq!(echo["cwd"], "/var/task");
    assert_eq!(echo["greeting"], "from the manifest");
    assert!(r[0]["initDurationMs"].as_f64().unwrap() > 0.0);
    assert!(
        log.contains("echo called"),
        "the function's output reaches stderr: {log}"
    );
    assert!(log.contains(&format!(
        "REPORT RequestId: {}\tDuration: ",
        r[0]["requestId"].as_str().unwrap()
    )));

    assert_eq!(r[1]["status"], "error");
    assert_eq!(r[1]["errorType"], "ValueError");
    assert_eq!(r[1]["error"]["errorType"], "ValueError");
    assert_eq!(r[1]["error"]["errorMessage"], "bad input");
    assert!(r[1]["error"]["stackTrace"].is_array(), "{}", r[1]);

    assert_eq!(r[2]["status"], "timeout");
    let message = r[2]["error"]["errorMessage"].as_str().unwrap();
    assert!(
        message.ends_with("Task timed out after 2.00 seconds"),
        "{message}"
    );
    assert_eq!(r[2]["error"]["errorType"], "Sandbox.Timedout");

    assert_eq!(r[3]["status"], "success", "{log}");
    assert_eq!(
        r[3]["response"]["calls"], 1,
        "a fresh environment after the timeout"
    );
    assert!(r[3]["initDurationMs"].is_number(), "init ran again");

    assert_eq!(r[4]["status"], "crash");
    assert_eq!(r[4]["error"]["errorType"], "Runtime.ExitError");
    assert!(
        r[4]["error"]["errorMessage"]
            .as_str()
            .unwrap()
            .ends_with("Runtime exited with error: exit status 3"),
        "{}",
        r[4]
    );
    assert_eq!(
        r[5]["response"]["calls"], 1,
        "a fresh environment after the crash"
    );

    assert_eq!(r[6]["status"], "error");
    assert_eq!(r[6]["errorType"], "Function.ResponseSizeTooLarge");
    assert!(
        r[6]["error"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("6291556 bytes")
    );

    let w = &r[7]["response"];
    assert_eq!(r[7]["status"], "success", "{}\n{log}", r[7]);
    assert_eq!(w["/var/task/new.txt"], "Read-only file system", "{w}");
    assert_eq!(w["/new.txt"], "Read-only file system", "{w}");
    assert_eq!(w["/tmp/new.txt"], "written", "{w}");

    assert_eq!(r[8]["status"], "crash", "300 MB in a 128 MB function: {}", r[8]);
    assert_eq!(r[8]["errorType"], "Runtime.OutOfMemory");
    assert!(
        r[8]["error"]["errorMessage"]
            .as_str()
            .unwrap()
            .ends_with("Runtime exited with error: signal: killed")
    );
    assert_eq!(
        r[9]["response"]["calls"], 1,
        "a fresh environment after running out of memory"
    );
}

/// An exception at import is Lambda's init error, for each event (init runs again).
#[test]
fn python_init_error_is_reported_and_init_runs_again() {
    let Some(p) = python_project() else { return };
    let out = run_events(&p, &["--env", "FAIL_INIT=1"], &[action("echo"), action("echo")]);
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    let r = records(&out);
    assert_eq!(r.len(), 2, "{log}");
    for rec in &r {
        assert_eq!(rec["status"], "init_error", "{rec}\n{log}");
        assert_eq!(
            rec["errorType"], rec["error"]["errorType"],
            "the type the runtime posted: {rec}"
        );
        let msg = rec["error"]["errorMessage"].as_str().unwrap_or_default();
        assert!(msg.contains("init failed on purpose"), "{rec}");
    }
    assert!(log.contains("init failed on purpose"), "{log}");
}

/// hello-scratch answers the same events through `run` as through podman
/// with the tests' Runtime API.
#[test]
fn hello_scratch_answers_through_run_as_through_podman() {
    use crate::support::podman::{Container, Podman};
    use crate::support::runtime_api::RuntimeApi;
    let Some(p) = hello_scratch() else { return };
    let events = [r#"{"name":"world"}"#.to_string(), "{}".to_string()];
    let mut args = vec!["run"];
    for e in &events {
        args.extend(["--event", e.as_str()]);
    }
    let out = run_ok(&mut p.cmd(&args));
    let ours: Vec<String> = stdout(&out).lines().map(String::from).collect();
    assert_eq!(
        ours,
        [
            r#"{"greeting":"hello from lambda-img","event_bytes":16}"#,
            r#"{"greeting":"hello from lambda-img","event_bytes":2}"#
        ]
    );
    let log = stderr(&out);
    assert_eq!(log.matches("REPORT RequestId: ").count(), 2, "{log}");
    assert_eq!(
        log.matches("Init Duration: ").count(),
        1,
        "one warm environment: {log}"
    );

    if !require_tool("podman") {
        return;
    }
    let archive = p.join("image.tar");
    p.build_ok(&[
        "--output",
        &format!("docker-archive:{}:hello-run:test", archive.display()),
    ]);
    let podman = Podman::new();
    podman.run_ok(&["load", "-i", archive.to_str().unwrap()]);
    let api = RuntimeApi::start();
    let container = Container::start(&podman, "localhost/hello-run:test", &api, &[]);
    for (event, expected) in events.iter().zip(&ours) {
        let answer = api.invoke(event, std::time::Duration::from_secs(60));
        let body = answer.unwrap_or_else(|e| panic!("{e}\n{}", container.logs()));
        assert_eq!(&body, expected);
    }
}

/// A busybox image built by lambda-img into `dir/layout`, plus a layer that
/// umoci adds with a root-only (0600) secret: returns `oci:DIR:secret`.
pub(crate) fn busybox_image(dir: &Path) -> Option<String> {
    if !require_tool("busybox") || !require_tool("umoci") {
        return None;
    }
    let p = Project::new(&crate::support::project::scratch_manifest(""), &[]);
    p.copy_in(Path::new("/bin/busybox"), "busybox");
    std::fs::set_permissions(p.join("busybox"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let layout = dir.join("layout");
    p.build_ok(&["--output", &format!("oci:{}:base", layout.display())]);
    let bundle = dir.join("bundle");
    let layout_s = layout.display().to_string();
    run_ok(
        Command::new("umoci")
            .args(["unpack", "--image", &format!("{layout_s}:base")])
            .arg(&bundle),
    );
    let secret = bundle.join("rootfs/etc/secret");
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::write(secret.join("token"), "s3cr3t\n").unwrap();
    std::fs::set_permissions(secret.join("token"), std::fs::Permissions::from_mode(0o600)).unwrap();
    run_ok(
        Command::new("umoci")
            .args(["repack", "--image", &format!("{layout_s}:secret")])
            .arg(&bundle),
    );
    std::fs::remove_dir_all(&bundle).unwrap();
    Some(format!("oci:{layout_s}:secret"))
}

/// `--engine podman`: the same image in podman, against lambda-img's own
/// Runtime API, gives the same answers as the native sandbox.
#[test]
fn podman_engine_answers_like_the_native_sandbox() {
    if !require_tool("podman") {
        return;
    }
    let Some(p) = hello_scratch() else { return };
    let podman = crate::support::podman::Podman::new();
    let invoke = |engine: &str| {
        let mut cmd = p.cmd(&[
            "run",
            "--json",
            "--engine",
            engine,
            "--event",
            r#"{"name":"world"}"#,
            "--event",
            "{}",
        ]);
        cmd.envs(podman.env());
        let out = run_ok(&mut cmd);
        let r = records(&out);
        assert_eq!(r.len(), 2, "{}", stderr(&out));
        assert_eq!(
            stderr(&out).matches("Init Duration").count(),
            1,
            "one warm container: {}",
            stderr(&out)
        );
        r.into_iter().map(|r| r["response"].clone()).collect::<Vec<_>>()
    };
    let native = invoke("native");
    assert_eq!(native[0]["event_bytes"], 16);
    assert_eq!(invoke("podman"), native);
    let left = podman.run_ok(&["ps", "-aq"]);
    assert_eq!(stdout(&left).trim(), "", "no container is left behind");
}

/// The Rust example (`lambda_runtime` 1.x, built by its Makefile) answers
/// events through `run`, with the request ids lambda-img's Runtime API gave.
#[test]
fn rust_example_answers_through_run() {
    if !require_tool("make") || !require_tool("cargo") {
        return;
    }
    let (tmp, dir) = crate::examples::copy_example("rust");
    let cache = tmp.path().join("cache");
    crate::examples::make(&dir, &cache, &["prepare"]);
    let out = run_ok(crate::support::lambda_img(&cache).arg("-C").arg(&dir).args([
        "run",
        "--json",
        "--event",
        r#"{"name":"lambda"}"#,
        "--event",
        "{}",
    ]));
    let r = records(&out);
    assert_eq!(r.len(), 2, "{}", stderr(&out));
    assert_eq!(r[0]["response"]["greeting"], "hello, lambda");
    assert_eq!(r[1]["response"]["greeting"], "hello, world");
    for rec in &r {
        assert_eq!(rec["response"]["request_id"], rec["requestId"], "{rec}");
    }
}

/// The Python function answers the same events through `run` as through
/// podman with the tests' Runtime API.
#[test]
fn python_function_answers_through_run_as_through_podman() {
    use crate::support::podman::{Container, Podman};
    use crate::support::runtime_api::RuntimeApi;
    if !require_tool("podman") {
        return;
    }
    let Some(p) = python_project() else { return };
    let events = [
        r#"{"action":"pure","name":"<b>lambda</b>"}"#.to_string(),
        action("pure"),
    ];
    let out = run_events(&p, &[], &events);
    assert!(out.status.success(), "{}", stderr(&out));
    let ours: Vec<Value> = records(&out).into_iter().map(|r| r["response"].clone()).collect();
    assert_eq!(ours[0]["escaped"], "&lt;b&gt;lambda&lt;/b&gt;");
    assert_eq!(ours[0]["native"], true);

    let archive = p.join("image.tar");
    p.build_ok(&[
        "--output",
        &format!("docker-archive:{}:py-run:test", archive.display()),
    ]);
    let podman = Podman::new();
    podman.run_ok(&["load", "-i", archive.to_str().unwrap()]);
    let api = RuntimeApi::start();
    let container = Container::start(&podman, "localhost/py-run:test", &api, &[]);
    for (event, expected) in events.iter().zip(&ours) {
        let body = api
            .invoke(event, std::time::Duration::from_secs(90))
            .unwrap_or_else(|e| panic!("{e}\n{}", container.logs()));
        let theirs: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(&theirs, expected);
    }
}
