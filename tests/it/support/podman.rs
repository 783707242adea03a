//! podman with test-private storage and config (see shared/TEST-HARNESS.md):
//! runc, cgroupfs, capped rlimits, host or no network only.

use std::path::PathBuf;
use std::process::{Command, Output};

use super::runtime_api::RuntimeApi;
use super::{run_ok, stdout};

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

    /// The variables that point podman at this storage and config (for a
    /// program that runs podman itself, like `lambda-img run --engine podman`).
    pub fn env(&self) -> [(&'static str, PathBuf); 2] {
        [
            ("CONTAINERS_CONF", self.conf("containers.conf")),
            ("CONTAINERS_STORAGE_CONF", self.conf("storage.conf")),
        ]
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = super::command("podman");
        cmd.env("CONTAINERS_CONF", self.conf("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", self.conf("storage.conf"))
            .args(args);
        cmd
    }

    pub fn run_ok(&self, args: &[&str]) -> Output {
        run_ok(&mut self.command(args))
    }
}

/// A running container, removed when dropped (also when the test fails).
pub struct Container<'a> {
    podman: &'a Podman,
    id: String,
}

impl<'a> Container<'a> {
    /// `podman run -d --network host -e AWS_LAMBDA_RUNTIME_API=... IMAGE`.
    pub fn start(podman: &'a Podman, image: &str, api: &RuntimeApi, env: &[(&str, &str)]) -> Container<'a> {
        let mut args: Vec<String> = ["run", "-d", "--network", "host"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut all_env = vec![
            ("AWS_LAMBDA_RUNTIME_API".to_string(), api.addr()),
            ("AWS_LAMBDA_FUNCTION_NAME".to_string(), "test".to_string()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE".to_string(), "128".to_string()),
            ("AWS_LAMBDA_FUNCTION_VERSION".to_string(), "$LATEST".to_string()),
            ("AWS_REGION".to_string(), "us-east-1".to_string()),
        ];
        all_env.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        for (k, v) in all_env {
            args.push("-e".into());
            args.push(format!("{k}={v}"));
        }
        args.push(image.to_string());
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let id = stdout(&podman.run_ok(&argv)).trim().to_string();
        Container { podman, id }
    }

    pub fn logs(&self) -> String {
        let out = self.podman.command(&["logs", &self.id]).output().unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let _ = self.podman.command(&["rm", "-f", "-t", "0", &self.id]).output();
    }
}

/// `podman system service` on a private socket: a Docker-compatible API for
/// the real `docker` CLI (`DOCKER_HOST=unix://...`), over this storage.
/// Stopped by PID when dropped.
pub struct DockerApi {
    podman: Podman,
    child: std::process::Child,
    socket: PathBuf,
}

impl DockerApi {
    pub fn start() -> DockerApi {
        let podman = Podman::new();
        let socket = podman.dir.path().join("docker.sock");
        let child = podman
            .command(&["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start podman system service");
        let api = DockerApi {
            podman,
            child,
            socket,
        };
        let start = std::time::Instant::now();
        while !api
            .docker(&["version"])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(60),
                "podman's Docker API did not come up on {}",
                api.socket.display()
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        api
    }

    /// The variables that point `docker` (and podman, for its storage) here.
    pub fn env(&self) -> Vec<(&'static str, std::ffi::OsString)> {
        let mut env: Vec<_> = self
            .podman
            .env()
            .into_iter()
            .map(|(k, v)| (k, v.into_os_string()))
            .collect();
        env.push(("DOCKER_HOST", format!("unix://{}", self.socket.display()).into()));
        // A private client config: no credentials or contexts of the user's.
        env.push((
            "DOCKER_CONFIG",
            self.podman.dir.path().join("docker-config").into_os_string(),
        ));
        env
    }

    pub fn docker(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("docker");
        cmd.envs(self.env()).args(args);
        cmd
    }
}

impl Drop for DockerApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
