//! podman with test-private storage and config (see shared/TEST-HARNESS.md):
//! runc, cgroupfs, capped rlimits, host or no network only.

use std::path::PathBuf;
use std::process::{Command, Output};

use super::run_ok;

pub struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    pub fn new() -> Podman {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(
            root.join("containers.conf"),
            "[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\nnetns = \"none\"\n\n\
             [engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n",
        )
        .unwrap();
        std::fs::write(
            root.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
                root.join("graph").display(),
                root.join("run").display()
            ),
        )
        .unwrap();
        Podman { dir }
    }

    fn conf(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("podman");
        cmd.env("CONTAINERS_CONF", self.conf("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", self.conf("storage.conf"))
            .args(args);
        cmd
    }

    pub fn run_ok(&self, args: &[&str]) -> Output {
        run_ok(&mut self.command(args))
    }
}
