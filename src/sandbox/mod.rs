//! Running a program in a root filesystem without a daemon: Linux user,
//! mount, PID, IPC and UTS namespaces, set up by lambda-img itself.
//!
//! Why not drive `bwrap`: bubblewrap maps exactly one uid and can only change
//! identity inside a user namespace. As root that maps the function's uid to
//! real root, so a root-only file in the image would be readable by it. Here,
//! run as root, the sandbox skips the user namespace and really becomes
//! uid 993 (so the kernel's own checks refuse what Lambda refuses); run as
//! another user, it maps 993 (or 0) to the caller in a user namespace, and
//! the root filesystem is materialized with modes that stand in for the
//! image's owners (see [`crate::rootfs::Ownership`]). No extra tool either.
//!
//! The process tree: lambda-img spawns itself as `__sandbox-init` (a fresh,
//! single-threaded process, which `unshare(CLONE_NEWUSER)` requires); that
//! unshares the namespaces and forks PID 1 of the new PID namespace, which
//! mounts the root, pivots into it, drops to the user and forks the program.
//! PID 1 reaps orphans and ends with the program; when PID 1 ends the kernel
//! kills everything left in the namespace, and when lambda-img goes away
//! every process below it is killed (parent-death signals).
//!
//! The same sandbox serves two uses: `run` (read-only root, uid 993, /tmp a
//! tmpfs) and installs that need root over a writable root (`[system]`).

mod init;
pub mod podman;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};

pub use init::init_main;

/// The first argument that makes the lambda-img binary the sandbox's init.
pub const INIT_ARG: &str = "__sandbox-init";
/// How the spec reaches the init process (not argv: `ps` shows argv to every user).
const SPEC_VAR: &str = "LAMBDA_IMG_SANDBOX_SPEC";

/// The running binary, which the sandbox's init re-executes. Not
/// `current_exe()`: that is the path the binary was started by, and once a
/// rebuild or an upgrade renames a new file over it, that path is another
/// program (or, as the link reads, "… (deleted)": nothing). The kernel's link
/// always opens the file this process runs.
const SELF_EXE: &str = "/proc/self/exe";
/// Exit status of the init when it could not set the sandbox up (the reason is on stderr).
pub const SETUP_FAILED: i32 = 125;
/// Exit status when the program could not be executed (as shells use).
pub const EXEC_FAILED: i32 = 127;

/// Lambda runs functions as this user and group (field: sbx_user1051).
pub const LAMBDA_UID: u32 = 993;

/// What to run and in which filesystem.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SandboxSpec {
    /// The root filesystem (a materialized snapshot).
    pub root: PathBuf,
    /// Mount the root writable (installs into a scratch copy); else read-only.
    pub writable_root: bool,
    /// Mount an overlay over `root` (its lower layer, never written): what the
    /// program writes lands in the overlay's upper directory (`[system]`).
    #[serde(default)]
    pub overlay: Option<Overlay>,
    /// uid and gid the program runs as inside.
    pub uid: u32,
    pub gid: u32,
    /// Size of the tmpfs mounted on /tmp, in MiB; `None`: no tmpfs.
    pub tmp_size_mb: Option<u64>,
    pub binds: Vec<Bind>,
    /// The program and its arguments; a name without `/` is searched in `PATH` of `env`.
    pub argv: Vec<String>,
    /// The program's whole environment.
    pub env: Vec<(String, String)>,
    /// Working directory inside.
    pub cwd: String,
    pub hostname: String,
}

/// The writable half of an overlay mount: two empty directories on one filesystem.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Overlay {
    /// Receives every file the program creates or changes, and whiteouts
    /// (0:0 character devices) and opaque markers for what it deletes.
    pub upper: PathBuf,
    /// The overlay's own scratch directory.
    pub work: PathBuf,
    /// Mount `upper` over the root as a second read-only lower layer instead
    /// (to read what an earlier run wrote without changing it).
    #[serde(default)]
    pub read_only: bool,
}

/// A host path bound into the sandbox.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Bind {
    pub source: PathBuf,
    /// Absolute path inside the sandbox.
    pub target: String,
    pub writable: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot start the sandbox: {0}")]
    Spawn(#[source] std::io::Error),
    #[error(
        "Linux namespaces are not available here ({reason}); run with `--engine podman` to use a container engine instead"
    )]
    Unavailable { reason: String },
}

/// Where a sandbox runs: lambda-img's own namespaces, or a container engine.
#[derive(Debug, Clone)]
pub enum Engine {
    Native,
    Container(podman::EngineRun),
}

/// A running sandbox. Dropping it kills everything in it.
pub struct Sandbox {
    pid: u32,
    pidfd: OwnedFd,
    waiter: Option<std::thread::JoinHandle<()>>,
    /// A container to remove when stopping, and its env file (kept until then).
    container: Option<(podman::EngineRun, String, tempfile::NamedTempFile)>,
    /// The highest resident memory of the program's whole process tree seen
    /// by any probe (KiB): the kernel's VmHWM counts one process only.
    tree_peak_kib: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Sandbox {
    /// Starts `spec`; `on_exit` is called (on another thread) with the
    /// program's exit status when it ends, however it ends.
    pub fn spawn(
        spec: &SandboxSpec,
        stdin: Stdio,
        stdout: Stdio,
        stderr: Stdio,
        on_exit: impl FnOnce(ExitStatus) + Send + 'static,
    ) -> Result<Sandbox, SandboxError> {
        Sandbox::spawn_in(&Engine::Native, spec, stdin, stdout, stderr, on_exit)
    }

    /// [`Sandbox::spawn`] in `engine`.
    pub fn spawn_in(
        engine: &Engine,
        spec: &SandboxSpec,
        stdin: Stdio,
        stdout: Stdio,
        stderr: Stdio,
        on_exit: impl FnOnce(ExitStatus) + Send + 'static,
    ) -> Result<Sandbox, SandboxError> {
        let (mut command, container) = match engine {
            Engine::Native => {
                let json = serde_json::to_string(spec).expect("spec serializes");
                let mut cmd = Command::new(SELF_EXE);
                cmd.arg(INIT_ARG).env_clear().env(SPEC_VAR, json);
                (cmd, None)
            }
            Engine::Container(run) => {
                let name = podman::container_name();
                let mut env_file = tempfile::NamedTempFile::new().map_err(SandboxError::Spawn)?;
                let cmd = podman::command(run, spec, &name, &mut env_file).map_err(SandboxError::Spawn)?;
                (cmd, Some((run.clone(), name, env_file)))
            }
        };
        let mut child: Child = command
            .stdin(stdin)
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(SandboxError::Spawn)?;
        let pid = child.id();
        // SAFETY: pidfd_open takes a pid and flags; the child is not reaped yet.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        if fd < 0 {
            let err = std::io::Error::last_os_error();
            let _ = child.kill();
            let _ = child.wait();
            return Err(SandboxError::Spawn(err));
        }
        // SAFETY: a new descriptor that nothing else owns.
        let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let waiter = std::thread::spawn(move || {
            if let Ok(status) = child.wait() {
                on_exit(status);
            }
        });
        Ok(Sandbox {
            pid,
            pidfd,
            waiter: Some(waiter),
            container,
            tree_peak_kib: Default::default(),
        })
    }

    /// The init process's pid on the host.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Kills every process in the sandbox (through a pidfd: no pid reuse race).
    pub fn kill(&self) {
        // SAFETY: the pidfd is open for as long as self lives.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            );
        }
    }

    /// Kills the sandbox and waits until it is gone.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        if let Some((run, name, _)) = self.container.take() {
            podman::remove(&run, &name);
        }
        self.kill();
        if let Some(w) = self.waiter.take() {
            let _ = w.join();
        }
    }

    /// Peak resident memory of the program, in KiB (its `VmHWM`), while it runs.
    pub fn peak_memory_kib(&self) -> Option<u64> {
        let probe = self.memory_probe();
        let tree = probe.tree_resident_kib();
        let peak = probe.peak.load(std::sync::atomic::Ordering::SeqCst);
        [probe.read("VmHWM"), tree, (peak > 0).then_some(peak)]
            .into_iter()
            .flatten()
            .max()
    }

    /// A handle for watching the program's memory from another thread.
    pub fn memory_probe(&self) -> MemoryProbe {
        MemoryProbe {
            init: self.pid,
            peak: self.tree_peak_kib.clone(),
        }
    }
}

/// Reads the memory of a sandbox's program (found below its init by pid)
/// and of the processes it started.
pub struct MemoryProbe {
    init: u32,
    peak: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl MemoryProbe {
    fn program(&self) -> Option<u32> {
        let pid_one = children(self.init)?.into_iter().next()?;
        children(pid_one)?.into_iter().next()
    }

    /// A `/proc/PID/status` figure of the program in KiB (`VmRSS`, `VmHWM`).
    pub fn read(&self, field: &str) -> Option<u64> {
        status_kib(self.program()?, field)
    }

    /// The resident memory of the program and of every process below it
    /// (a handler that starts a converter or a shell counts it too, as
    /// Lambda's memory limit does), in KiB; also raises the recorded peak.
    /// Pages shared between the processes are counted once per process, so
    /// this errs on the high side.
    pub fn tree_resident_kib(&self) -> Option<u64> {
        let program = self.program()?;
        let mut total = 0;
        let mut pending = vec![program];
        while let Some(pid) = pending.pop() {
            total += status_kib(pid, "VmRSS").unwrap_or(0);
            pending.extend(all_children(pid));
        }
        self.peak.fetch_max(total, std::sync::atomic::Ordering::SeqCst);
        Some(total)
    }

    /// Kills the program (its sandbox then ends with it).
    pub fn kill_program(&self) {
        if let Some(pid) = self.program() {
            // SAFETY: a signal to a pid just read from /proc.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The children of every thread of `pid` (a child belongs to the thread
/// that forked it, and a runtime may fork from any thread).
fn all_children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for task in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            out.extend(text.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
        }
    }
    out
}

fn children(pid: u32) -> Option<Vec<u32>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    Some(text.split_whitespace().filter_map(|p| p.parse().ok()).collect())
}

/// Says why namespaces cannot be used, when they cannot: the sandbox's init
/// is started far enough to create them (about a millisecond), and its
/// complaint is the reason.
pub fn probe(root: &std::path::Path) -> Result<(), SandboxError> {
    run_probe(&probe_spec(root, None))
}

/// Whether [`probe`] passes with `top` mounted as a read-only overlay over
/// `root`, the way a run mounts a layer of its own (kernels before 5.11
/// refuse an overlay in a user namespace).
pub fn probe_overlay(root: &std::path::Path, top: &std::path::Path) -> Result<(), SandboxError> {
    let overlay = Overlay {
        upper: top.to_path_buf(),
        work: PathBuf::new(),
        read_only: true,
    };
    run_probe(&probe_spec(root, Some(overlay)))
}

/// The spec a probe starts: nothing to run, only the namespaces and mounts to make.
fn probe_spec(root: &std::path::Path, overlay: Option<Overlay>) -> SandboxSpec {
    SandboxSpec {
        root: root.to_path_buf(),
        writable_root: false,
        overlay,
        uid: 0,
        gid: 0,
        tmp_size_mb: None,
        binds: Vec::new(),
        argv: Vec::new(),
        env: Vec::new(),
        cwd: "/".into(),
        hostname: "probe".into(),
    }
}

fn run_probe(spec: &SandboxSpec) -> Result<(), SandboxError> {
    let out = Command::new(SELF_EXE)
        .arg(INIT_ARG)
        .arg("--probe")
        .env_clear()
        .env(SPEC_VAR, serde_json::to_string(&spec).expect("spec serializes"))
        .stdin(Stdio::null())
        .output()
        .map_err(SandboxError::Spawn)?;
    if out.status.code() == Some(0) {
        Ok(())
    } else {
        Err(SandboxError::Unavailable {
            reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// An image's architecture this machine cannot run (no qemu in binfmt_misc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignArch {
    /// The image's OCI architecture name.
    pub image: &'static str,
    /// This machine's.
    pub host: &'static str,
    /// The binfmt handler that would run it (`qemu-aarch64-static`).
    pub qemu: String,
}

/// Whether programs built for `arch` run here: natively, or because
/// binfmt_misc hands them to qemu.
pub fn arch_support(arch: crate::image::Architecture) -> Result<(), ForeignArch> {
    let host = std::env::consts::ARCH;
    let (image, machine) = match arch {
        crate::image::Architecture::X86_64 => ("amd64", "x86_64"),
        crate::image::Architecture::Arm64 => ("arm64", "aarch64"),
    };
    if host == machine {
        return Ok(());
    }
    let qemu = format!("qemu-{machine}");
    let entry = std::fs::read_to_string(format!("/proc/sys/fs/binfmt_misc/{qemu}")).unwrap_or_default();
    // `F` (fix binary): the kernel opened the interpreter at registration,
    // so it runs inside a root filesystem that does not have it.
    let usable = entry.lines().next() == Some("enabled")
        && entry
            .lines()
            .any(|l| l.strip_prefix("flags:").is_some_and(|f| f.contains('F')));
    if usable {
        Ok(())
    } else {
        Err(ForeignArch {
            image,
            host,
            qemu: format!("{qemu}-static"),
        })
    }
}
