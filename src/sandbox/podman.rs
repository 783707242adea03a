//! The same sandbox in a container engine, for machines where namespaces
//! cannot be used: `podman run` (or `docker run`) with Lambda's settings
//! (uid 993, read-only root, /tmp a tmpfs, the host's network so the
//! function reaches lambda-img's Runtime API on loopback).

use std::io::Write;
use std::process::Command;

use super::SandboxSpec;

/// A container engine and the image (already in its storage) to run.
#[derive(Debug, Clone)]
pub struct EngineRun {
    /// `podman` or `docker`.
    pub program: String,
    pub image: String,
}

/// A container name of our own, so a stop can remove it.
pub(super) fn container_name() -> String {
    format!("lambda-img-run-{}", crate::runtime_api::ids::hex_id())
}

/// `podman run` for `spec`. The environment goes through a 0600 file, not
/// `-e` arguments, which every user on the machine could read in `ps`.
pub(super) fn command(
    engine: &EngineRun,
    spec: &SandboxSpec,
    name: &str,
    env_file: &mut tempfile::NamedTempFile,
) -> std::io::Result<Command> {
    for (k, v) in &spec.env {
        // The env-file format has no quoting: a value with a newline cannot pass.
        writeln!(env_file, "{k}={}", v.replace('\n', " "))?;
    }
    env_file.flush()?;
    let mut cmd = Command::new(&engine.program);
    // `-i`: the container reads the client's stdin, which `run -i
    // --entrypoint` hands over (elsewhere it is /dev/null: at once at its end).
    cmd.args([
        "run",
        "-i",
        "--rm",
        "--name",
        name,
        "--network",
        "host",
        "--pull",
        "never",
    ])
    .arg(format!("--user={}:{}", spec.uid, spec.gid))
    .arg("--env-file")
    .arg(env_file.path())
    .arg(format!("--workdir={}", spec.cwd))
    .arg(format!("--hostname={}", spec.hostname));
    if !spec.writable_root {
        cmd.arg("--read-only");
    }
    if let Some(size) = spec.tmp_size_mb {
        cmd.arg(format!("--tmpfs=/tmp:rw,size={size}m,mode=1777"));
    }
    for bind in &spec.binds {
        let mode = if bind.writable { "rw" } else { "ro" };
        cmd.arg(format!(
            "--volume={}:{}:{mode}",
            bind.source.display(),
            bind.target
        ));
    }
    // The program as the entrypoint and its arguments as the command: both
    // engines read that the same way. (A JSON-array `--entrypoint` is
    // podman's extension; docker would take the whole array as one path.)
    let Some((program, args)) = spec.argv.split_first() else {
        return Err(std::io::Error::other(
            "the image has no entrypoint or command to run",
        ));
    };
    cmd.arg(format!("--entrypoint={program}"))
        .arg(&engine.image)
        .args(args);
    Ok(cmd)
}

/// Removes the container (a killed `podman run` client leaves it running).
pub(super) fn remove(engine: &EngineRun, name: &str) {
    // `-t 0` (no grace period) is podman's; docker's `rm -f` kills at once
    // and rejects `-t`.
    let args: &[&str] = if engine.program == "docker" {
        &["rm", "-f"]
    } else {
        &["rm", "-f", "-t", "0"]
    };
    let _ = Command::new(&engine.program)
        .args(args)
        .arg(name)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

/// Loads a docker-archive into the engine's storage; returns the image name.
pub fn load(program: &str, archive: &std::path::Path, name: &str) -> std::io::Result<String> {
    let out = Command::new(program)
        .arg("load")
        .arg("-i")
        .arg(archive)
        .output()?;
    if !out.status.success() {
        return Err(std::io::Error::other(format!(
            "{program} load failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(name.to_string())
}
