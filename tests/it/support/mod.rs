//! Helpers shared by the integration tests: the binary, temp projects and
//! external tools (which must exist under `CI=true`).

#![allow(dead_code)]

pub mod oci;
pub mod podman;
pub mod project;
pub mod python_base;
pub mod runtime_api;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// True when running in CI, where a missing tool is a failure, not a skip.
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| v == "true" || v == "1")
        .unwrap_or(false)
}

/// Returns whether `tool` is on PATH. Locally a missing tool skips the test
/// with a loud message; under `CI=true` it fails the test.
pub fn require_tool(tool: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false);
    if !found {
        if in_ci() {
            panic!("required tool `{tool}` is not installed (CI=true): .ci/run must install it");
        }
        eprintln!(
            "\n!!! SKIPPING: `{tool}` is not installed; this test proves nothing here. Run .ci/run to install it. !!!\n"
        );
    }
    found
}

/// The path of the built `lambda-img` binary.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lambda-img"))
}

/// A `lambda-img` command with a private cache under `cache`.
pub fn lambda_img(cache: &Path) -> Command {
    let mut cmd = Command::new(bin());
    cmd.env("LAMBDA_IMG_CACHE", cache).env_remove("SOURCE_DATE_EPOCH");
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

/// Runs a command that must fail; returns its output.
pub fn run_fail(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        !out.status.success(),
        "{cmd:?} was expected to fail but succeeded\n--- stdout\n{}\n--- stderr\n{}",
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
