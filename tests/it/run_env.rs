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
/// binfmt_misc has qemu-aarch64 registered, else the error names the package.
#[test]
fn a_foreign_image_needs_qemu_and_says_so() {
    if std::env::consts::ARCH != "x86_64" {
        crate::support::skipped("written for an x86_64 host");
        return;
    }
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
    let registered = std::fs::read_to_string("/proc/sys/fs/binfmt_misc/qemu-aarch64")
        .is_ok_and(|e| e.starts_with("enabled") && e.contains("flags: ") && e.contains('F'));
    if registered {
        assert!(out.status.success(), "{}", stderr(&out));
    } else {
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(
            err.contains("linux/arm64")
                && err.contains("qemu-aarch64-static")
                && err.contains("qemu-user-static"),
            "{err}"
        );
    }
}
