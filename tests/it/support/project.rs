//! A temporary function project and its private cache.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::{lambda_img, run_fail, run_ok, write_files};

pub struct Project {
    pub dir: tempfile::TempDir,
    pub cache: tempfile::TempDir,
}

impl Project {
    /// A project whose `lambda-img.toml` is `manifest`, with `files` beside it.
    pub fn new(manifest: &str, files: &[(&str, &str)]) -> Project {
        let dir = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("lambda-img.toml"), manifest).unwrap();
        write_files(dir.path(), files);
        Project { dir, cache }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `lambda-img -C <project> <args>` with the project's cache.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = lambda_img(self.cache.path());
        cmd.arg("-C").arg(self.path()).args(args);
        cmd
    }

    pub fn build_ok(&self, args: &[&str]) -> Output {
        let mut full = vec!["build"];
        full.extend_from_slice(args);
        run_ok(&mut self.cmd(&full))
    }

    pub fn build_fail(&self, args: &[&str]) -> Output {
        let mut full = vec!["build"];
        full.extend_from_slice(args);
        run_fail(&mut self.cmd(&full))
    }

    /// Copies a file from the host into the project (e.g. a static binary).
    pub fn copy_in(&self, from: &Path, rel: &str) {
        let to = self.join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap();
    }
}

/// A manifest for a custom-runtime function on scratch whose bootstrap is busybox.
pub fn scratch_manifest(extra: &str) -> String {
    format!(
        r#"[function]
name = "hello"
runtime = "provided.al2023"
architecture = "x86_64"

[base]
image = "scratch"

[image]
entrypoint = ["/var/task/busybox"]
{extra}
"#
    )
}
