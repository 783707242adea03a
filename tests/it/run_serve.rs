//! `lambda-img run --serve` with curl, and `--watch`.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use serde_json::Value;

use crate::run::{APP_PY, action, python_project};
use crate::support::project::Project;
use crate::support::{require_tool, run_ok, stdout};

/// `run --serve` in the background, stopped by PID when dropped.
struct Server {
    child: std::process::Child,
    url: String,
}

impl Server {
    fn start(p: &Project, extra: &[&str]) -> Server {
        Server::start_program(&crate::support::bin(), p, extra)
    }

    /// [`Server::start`] with the binary at `program`.
    fn start_program(program: &std::path::Path, p: &Project, extra: &[&str]) -> Server {
        use std::io::BufRead;
        let mut args = vec!["run", "--serve", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut child = crate::support::command(program)
            .env("LAMBDA_IMG_CACHE", p.cache.path())
            .arg("-C")
            .arg(p.path())
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line.trim().to_string();
        assert!(url.starts_with("http://127.0.0.1:"), "{url:?}");
        Server { child, url }
    }

    fn invocations(&self, name: &str) -> String {
        format!("{}/2015-03-31/functions/{name}/invocations", self.url)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `curl` POSTs `body`; returns the status code and the body.
fn curl(url: &str, body: &str, headers: &[&str]) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-w", "\n%{http_code}", "-d", body]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = run_ok(cmd.arg(url));
    let text = stdout(&out);
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_string())
}

/// The emulator's endpoint with curl: a synchronous invoke, an asynchronous
/// one (202, then it runs), three concurrent requests queued for the one
/// environment, and `--concurrency 3` running three environments at once.
#[test]
fn serve_answers_curl_queues_requests_and_runs_async_events() {
    if !require_tool("curl") {
        return;
    }
    let Some(p) = python_project() else { return };
    let shared = tempfile::tempdir().unwrap();
    // Writable by the function's uid 993.
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let mount = format!("{}:/tmp/shared:rw", shared.path().display());
    {
        let server = Server::start(&p, &["--mount", &mount]);
        let (code, body) = curl(&server.invocations("function"), &action("echo"), &[]);
        assert_eq!(code, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["uid"], 993);

        let (code, body) = curl(
            &server.invocations("py-run"),
            r#"{"action":"touch","name":"async"}"#,
            &["X-Amz-Invocation-Type: Event"],
        );
        assert_eq!(
            (code, body.as_str()),
            (202, ""),
            "an Event invoke is accepted at once"
        );

        let (code, body) = curl(&server.invocations("function"), &action("fail"), &[]);
        assert_eq!(code, 200);
        assert!(
            body.contains("\"errorType\": \"ValueError\"") || body.contains("\"errorType\":\"ValueError\""),
            "{body}"
        );

        let answers: Vec<Value> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..3)
                .map(|_| s.spawn(|| curl(&server.invocations("function"), &action("count"), &[])))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    let (code, body) = h.join().unwrap();
                    assert_eq!(
                        code, 200,
                        "a concurrent request queues instead of failing: {body}"
                    );
                    serde_json::from_str(&body).unwrap()
                })
                .collect()
        });
        let envs: std::collections::BTreeSet<&str> =
            answers.iter().map(|a| a["env"].as_str().unwrap()).collect();
        assert_eq!(envs.len(), 1, "one environment served them in turn: {answers:?}");
        let mut calls: Vec<u64> = answers.iter().map(|a| a["calls"].as_u64().unwrap()).collect();
        calls.sort();
        assert_eq!(
            calls.windows(2).filter(|w| w[1] == w[0] + 1).count(),
            2,
            "{calls:?}"
        );
        // The async event ran (it was queued before these).
        assert!(shared.path().join("async").exists(), "the Event invocation ran");
    }
    std::fs::remove_file(shared.path().join("async")).unwrap();
    let server = Server::start(&p, &["--mount", &mount, "--concurrency", "3", "--timeout", "60"]);
    let answers: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|_| {
                s.spawn(|| {
                    curl(
                        &server.invocations("function"),
                        r#"{"action":"barrier","n":3}"#,
                        &[],
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap().1).collect()
    });
    let distinct: std::collections::BTreeSet<&String> = answers.iter().collect();
    assert_eq!(
        distinct.len(),
        3,
        "three environments were inside at once: {answers:?}"
    );
}

/// `--serve --watch`: a code change is rebuilt (only its layer is
/// materialized again) and the next event runs the new code.
#[test]
fn watch_picks_up_a_code_change() {
    if !require_tool("curl") {
        return;
    }
    let Some(p) = python_project() else { return };
    let server = Server::start(&p, &["--watch"]);
    let (code, body) = curl(&server.invocations("function"), &action("echo"), &[]);
    assert_eq!(code, 200, "{body}");
    assert!(!body.contains("version"), "{body}");
    let changed = APP_PY.replace(
        r#""greeting": os.environ.get("GREETING")}"#,
        r#""greeting": os.environ.get("GREETING"), "version": 2}"#,
    );
    assert_ne!(changed, APP_PY);
    std::fs::write(p.join("app.py"), changed).unwrap();
    // Wait (bounded) for the rebuild; what is asserted is the new answer, not a time.
    let mut last = String::new();
    for _ in 0..240 {
        let (code, body) = curl(&server.invocations("function"), &action("echo"), &[]);
        assert_eq!(code, 200, "{body}");
        if body.contains("\"version\": 2") || body.contains("\"version\":2") {
            return;
        }
        last = body;
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    panic!("the change was never served; last answer: {last}");
}

/// An environment is started from the running binary, not from the path it
/// was started by: a rebuild or an upgrade that renames a new file over that
/// path (as cargo and package managers do) while `--serve` runs must not
/// break the next environment it starts (environments start at the first
/// invoke).
#[test]
fn serve_starts_environments_after_its_binary_file_is_replaced() {
    if !require_tool("curl") {
        return;
    }
    let Some(p) = python_project() else { return };
    let dir = tempfile::tempdir().unwrap();
    let program = dir.path().join("lambda-img");
    std::fs::copy(crate::support::bin(), &program).unwrap();
    let server = Server::start_program(&program, &p, &[]);
    let replacement = dir.path().join("lambda-img.new");
    std::fs::write(&replacement, "#!/bin/sh\necho replaced >&2\nexit 97\n").unwrap();
    std::fs::set_permissions(&replacement, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&replacement, &program).unwrap();
    let (code, body) = curl(&server.invocations("function"), &action("echo"), &[]);
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["uid"], 993, "the function ran in the sandbox: {body}");
}

/// `cache prune --all` beside a running `--serve` keeps the root filesystem
/// its environments stand on (and says so), and removes it once the server
/// is gone; the server goes on answering in between.
#[test]
fn prune_keeps_the_root_filesystem_a_running_serve_uses() {
    if !require_tool("curl") {
        return;
    }
    let Some(p) = crate::run::hello_scratch() else {
        return;
    };
    let rootfs = p.cache.path().join("rootfs-v1");
    let snapshots = || -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&rootfs)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    };
    let prune = |p: &Project| {
        let out = run_ok(&mut p.cmd(&["cache", "prune", "--all", "--json"]));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        (report, crate::support::stderr(&out))
    };
    let server = Server::start(&p, &[]);
    let held = snapshots();
    assert!(!held.is_empty(), "the server materialized its root filesystem");
    let (report, messages) = prune(&p);
    assert_eq!(report["removed_rootfs"], 0, "{report}");
    assert!(report["kept_rootfs_in_use"].as_u64().unwrap() >= 1, "{report}");
    assert!(messages.contains("a running `lambda-img run` uses"), "{messages}");
    assert_eq!(
        snapshots(),
        held,
        "nothing of the root filesystem in use was removed"
    );
    let (code, body) = curl(&server.invocations("function"), "{}", &[]);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("hello from lambda-img"), "{body}");

    drop(server);
    let (report, _) = prune(&p);
    assert_eq!(report["kept_rootfs_in_use"], 0, "{report}");
    assert!(report["removed_rootfs"].as_u64().unwrap() >= 1, "{report}");
    assert_eq!(snapshots(), Vec::<String>::new());
}
