//! Helpers shared by the integration tests: the binary, temp projects and
//! external tools (which must exist under `CI=true`).

#![allow(dead_code)]

pub mod oci;
pub mod podman;
pub mod project;
pub mod python_base;
pub mod runtime_api;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// True when running in CI, where a missing tool is a failure, not a skip.
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| v == "true" || v == "1")
        .unwrap_or(false)
}

/// Returns whether `tool` is on PATH. Locally a missing tool skips the test
/// with a loud message (see [`skipped`]); under `CI=true` it fails the test.
pub fn require_tool(tool: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false);
    require(found, &format!("`{tool}` is not installed (.ci/run installs it)"))
}

/// `found`, for a test that needs what `missing` describes (a tool, a
/// module of one, a version): when it is not there, a loud skip locally
/// ([`skipped`]) and a failure under `CI=true`.
pub fn require(found: bool, missing: &str) -> bool {
    if !found {
        if in_ci() {
            panic!("{missing} (CI=true): .ci/run must install it");
        }
        skipped(missing);
    }
    found
}

/// Where [`skipped`] lists the tests that proved nothing on this machine.
pub fn skip_list() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("skipped-tests.txt")
}

/// The tests this run skipped, for the summary printed when it ends.
static SKIPPED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Says, where a developer sees it, that the calling test is skipped and
/// proves nothing here. libtest swallows the stderr of a passing test, so
/// the line also goes to the terminal (`/dev/tty`, when there is one) and to
/// [`skip_list`], and the test binary prints every skip again as it exits,
/// after libtest's own summary. The caller returns without asserting.
pub fn skipped(reason: &str) {
    let test = std::thread::current().name().unwrap_or("?").to_string();
    let line = format!("{test}: {reason}");
    eprintln!("\n!!! SKIPPING {line}; this test proves nothing here. !!!\n");
    if let Ok(mut tty) = std::fs::OpenOptions::new().write(true).open("/dev/tty") {
        let _ = writeln!(tty, "!!! SKIPPING {line}");
    }
    let mut all = SKIPPED.lock().unwrap_or_else(|p| p.into_inner());
    // The list holds the skips of the latest run that skipped any.
    let first = all.is_empty();
    let list = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(first)
        .append(!first)
        .open(skip_list());
    if let Ok(mut list) = list {
        let _ = writeln!(list, "{line}");
    }
    if first {
        // SAFETY: `print_skipped` is a plain function that neither unwinds
        // nor touches state that exit() has torn down (the static lives on).
        unsafe { libc::atexit(print_skipped) };
    }
    all.push(line);
}

/// Runs when the test binary exits: the skips, after libtest's summary.
extern "C" fn print_skipped() {
    let all = SKIPPED.lock().unwrap_or_else(|p| p.into_inner());
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "\n!!! {} test(s) SKIPPED, proving nothing on this machine (a failure under CI=true; also listed in {}):",
        all.len(),
        skip_list().display()
    );
    for line in all.iter() {
        let _ = writeln!(err, "!!!   {line}");
    }
}

/// The path of the built `lambda-img` binary.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lambda-img"))
}

/// A command for `program` (lambda-img, or make or a shell that runs it)
/// whose environment holds nothing of the developer's or CI's that would
/// change what lambda-img does: no `LAMBDA_IMG_*`, `DOCKER_CONFIG` or
/// `SOURCE_DATE_EPOCH`, and no AWS credentials, profile or shared files
/// that would reach a real account. A test that needs one sets it.
pub fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    for (key, _) in std::env::vars_os() {
        let name = key.to_string_lossy();
        if name.starts_with("LAMBDA_IMG_")
            || name.starts_with("AWS_")
            || name == "DOCKER_CONFIG"
            || name == "SOURCE_DATE_EPOCH"
        {
            cmd.env_remove(&key);
        }
    }
    // ~/.aws and the instance metadata service would reach a real account too.
    let nowhere = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("no-aws-files");
    cmd.env("AWS_CONFIG_FILE", nowhere.join("config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", nowhere.join("credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true");
    cmd
}

/// A `lambda-img` command with a private cache under `cache` and a clean
/// environment ([`command`]).
pub fn lambda_img(cache: &Path) -> Command {
    let mut cmd = command(bin());
    cmd.env("LAMBDA_IMG_CACHE", cache);
    cmd
}

/// Runs a command and returns its output; panics with stdout and stderr when it fails.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed with {}\n--- stdout\n{}\n--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// Runs a command that must fail the way lambda-img fails at work (exit
/// status 1: the build, a rule, a registry or AWS said no); returns its
/// output. A panic (101), a usage mistake (2) or a signal fails the test.
pub fn run_fail(cmd: &mut Command) -> Output {
    run_fail_with(cmd, 1)
}

/// Runs a command that must exit with `code` (2: a command-line mistake;
/// 3: `pin --check` found a base to move); returns its output.
pub fn run_fail_with(cmd: &mut Command, code: i32) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert_eq!(
        out.status.code(),
        Some(code),
        "{cmd:?} was expected to exit with status {code} but ended with {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Writes `files` (relative path, contents) under `dir`, creating parents.
pub fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (rel, contents) in files {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, contents).unwrap();
    }
}

pub mod crafted;
pub mod debian_base;
pub mod fault_proxy;
pub mod location_relay;
pub mod moto;
pub mod registry;
pub mod stand_in;
pub mod token_server;
