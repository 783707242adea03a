//! `lambda-img run`: an image invoked locally with Lambda's semantics. The
//! image's layers are materialized (`rootfs`), each execution environment is
//! a sandboxed process (`sandbox`) polling a Runtime API (`runtime_api`).

mod environment;
pub mod function;
pub mod pool;
pub mod report;
pub mod watch;

use std::path::PathBuf;
use std::time::Duration;

pub use environment::{Environment, EnvironmentError, EnvironmentSpec};
use function::{FunctionSettings, ImageRunConfig};

use crate::cache::Cache;
use crate::image::{Architecture, Image};
use crate::report::Reporter;
use crate::rootfs::{Ownership, Rootfs, RootfsError};
use crate::sandbox::{Bind, LAMBDA_UID, Overlay, SandboxSpec};

/// Where the function's output lines go (stderr for `run`).
pub trait LogSink: Send + Sync {
    fn line(&self, text: &str);
}

/// How one invocation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvokeStatus {
    Success,
    /// A function error, with its type.
    Error(String),
    Timeout,
    /// The process ended (exit, signal), with Lambda's error type.
    Crash(String),
    InitError(String),
}

impl InvokeStatus {
    pub fn name(&self) -> &'static str {
        match self {
            InvokeStatus::Success => "success",
            InvokeStatus::Error(_) => "error",
            InvokeStatus::Timeout => "timeout",
            InvokeStatus::Crash(_) => "crash",
            InvokeStatus::InitError(_) => "init_error",
        }
    }

    pub fn error_type(&self) -> Option<&str> {
        match self {
            InvokeStatus::Success => None,
            InvokeStatus::Timeout => Some("Sandbox.Timedout"),
            InvokeStatus::Error(t) | InvokeStatus::Crash(t) | InvokeStatus::InitError(t) => Some(t),
        }
    }
}

/// One invocation's result and figures.
#[derive(Debug, Clone)]
pub struct InvokeRecord {
    pub request_id: String,
    pub status: InvokeStatus,
    /// The response, or the error as Lambda returns it to the caller.
    pub body: Vec<u8>,
    pub duration: Duration,
    /// The init phase, on an environment's first invocation.
    pub init_duration: Option<Duration>,
    pub memory_size_mb: u32,
    pub max_memory_used_mb: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    #[error(transparent)]
    Environment(#[from] EnvironmentError),
    #[error(
        "the image has neither ENTRYPOINT nor CMD: Lambda would have nothing to run (set image.entrypoint in lambda-img.toml)"
    )]
    NoCommand,
    #[error(
        "the image is for linux/{image} but this machine is {host}, and binfmt_misc has no {qemu} registered; install it (Debian: apt-get install qemu-user-static binfmt-support) to run the image through qemu"
    )]
    ForeignArch {
        image: &'static str,
        host: &'static str,
        qemu: String,
    },
    #[error("--mount {0}: {1}")]
    Mount(String, String),
    #[error(transparent)]
    Sandbox(#[from] crate::sandbox::SandboxError),
    #[error("cannot write the image for the container engine: {0}")]
    Sink(#[from] crate::sink::SinkError),
    #[error("{0}")]
    Engine(#[source] std::io::Error),
}

/// An image ready to run: its root filesystem (none for a container
/// engine, which unpacks the image itself) and the config Lambda reads.
#[derive(Debug, Clone)]
pub struct RunImage {
    pub rootfs: Option<Rootfs>,
    pub config: ImageRunConfig,
}

/// Reads the config Lambda honours and, when `materialize`, materializes
/// `image` for running as Lambda's user.
pub fn prepare(
    image: &Image,
    materialize: bool,
    cache: &Cache,
    reporter: &dyn Reporter,
) -> Result<RunImage, RunError> {
    let config = ImageRunConfig::from_config(&image.config_json().unwrap_or_default());
    if let Some(arch) = config.arch() {
        check_arch(arch)?;
    }
    if !materialize {
        return Ok(RunImage { rootfs: None, config });
    }
    let rootfs = crate::rootfs::materialize_layered(image.layers(), run_ownership(), cache)?;
    if let Some(reason) = &rootfs.not_layered {
        reporter.detail(&format!(
            "the last layer is applied to a clone of the snapshot, not mounted over it: {reason}"
        ));
    }
    if rootfs.layers_applied > 0 {
        reporter.step(&format!(
            "materialized {} layer(s) of the root filesystem",
            rootfs.layers_applied
        ));
    }
    Ok(RunImage {
        rootfs: Some(rootfs),
        config,
    })
}

/// Who owns the files of a root filesystem `run` materializes: Lambda's user.
fn run_ownership() -> Ownership {
    Ownership::for_user(LAMBDA_UID, LAMBDA_UID)
}

/// Checks that the sandbox can start in `image`'s root filesystem (once, so
/// a run fails early with the reason). When the last layer is to be mounted
/// as an overlay and the kernel refuses that, the layer is applied to a clone
/// of the snapshot instead, and a detail says why.
pub fn probe_sandbox(
    run: &mut RunImage,
    image: &Image,
    cache: &Cache,
    reporter: &dyn Reporter,
) -> Result<(), RunError> {
    let Some(rootfs) = &run.rootfs else {
        return Ok(());
    };
    let Some(top) = &rootfs.top else {
        return Ok(crate::sandbox::probe(&rootfs.path)?);
    };
    let Err(refused) = crate::sandbox::probe_overlay(&rootfs.path, top) else {
        return Ok(());
    };
    crate::sandbox::probe(&rootfs.path)?;
    reporter.detail(&format!(
        "the last layer is applied to a clone of the snapshot: an overlay cannot be mounted here ({refused})"
    ));
    run.rootfs = Some(crate::rootfs::materialize(
        image.layers(),
        run_ownership(),
        cache,
    )?);
    Ok(())
}

/// A foreign image runs only when binfmt_misc hands its binaries to qemu.
fn check_arch(arch: Architecture) -> Result<(), RunError> {
    crate::sandbox::arch_support(arch).map_err(|f| RunError::ForeignArch {
        image: f.image,
        host: f.host,
        qemu: f.qemu,
    })
}

/// `HOST_DIR:/tmp/DIR[:rw]`: a host folder bound under /tmp, read-only unless `:rw`.
pub fn parse_mount(text: &str) -> Result<Bind, RunError> {
    let err = |m: &str| RunError::Mount(text.to_string(), m.to_string());
    let (spec, writable) = match text.strip_suffix(":rw") {
        Some(s) => (s, true),
        None => (text.strip_suffix(":ro").unwrap_or(text), false),
    };
    let (host, target) = spec
        .rsplit_once(':')
        .ok_or_else(|| err("expected HOST_DIR:/tmp/DIR[:rw]"))?;
    if !target.starts_with("/tmp/") || target.split('/').any(|c| c == "..") {
        return Err(err(
            "the target must be a path under /tmp (the only writable place in Lambda)",
        ));
    }
    let source = std::fs::canonicalize(host).map_err(|e| err(&format!("{host}: {e}")))?;
    Ok(Bind {
        source,
        target: target.to_string(),
        writable,
    })
}

/// What an environment needs beyond the image: settings, mounts, and
/// optionally another command (`--entrypoint`).
pub fn environment_spec(
    image: &RunImage,
    settings: FunctionSettings,
    binds: Vec<Bind>,
    command: Option<Vec<String>>,
    engine: crate::sandbox::Engine,
) -> Result<EnvironmentSpec, RunError> {
    let argv = command.unwrap_or_else(|| image.config.command());
    if argv.is_empty() {
        return Err(RunError::NoCommand);
    }
    let mut sandbox = SandboxSpec {
        root: image.rootfs.as_ref().map(|r| r.path.clone()).unwrap_or_default(),
        writable_root: false,
        overlay: None,
        uid: LAMBDA_UID,
        gid: LAMBDA_UID,
        tmp_size_mb: Some(u64::from(settings.ephemeral_mb)),
        binds,
        argv,
        env: Vec::new(),
        cwd: image.config.workdir.clone().unwrap_or_else(|| "/".into()),
        hostname: "localhost".into(),
    };
    // The last layer's own directory, over the snapshot of the rest.
    sandbox.overlay = image
        .rootfs
        .as_ref()
        .and_then(|r| r.top.as_ref())
        .map(|top| Overlay {
            upper: top.clone(),
            work: PathBuf::new(),
            read_only: true,
        });
    Ok(EnvironmentSpec {
        sandbox,
        image: image.config.clone(),
        settings,
        engine,
        rootfs_in_use: image
            .rootfs
            .as_ref()
            .map(|r| r.in_use.clone())
            .unwrap_or_default(),
    })
}

/// The project's image built into the cache only (like `cargo run`).
pub fn project_dir_manifest(dir: Option<&std::path::Path>) -> PathBuf {
    dir.map_or_else(|| PathBuf::from("lambda-img.toml"), |d| d.join("lambda-img.toml"))
}

/// Writes the image as a docker-archive and loads it into a container
/// engine (`podman`, `docker`), for `--engine`.
pub fn load_into_engine(
    program: &str,
    image: &Image,
    reporter: &dyn Reporter,
) -> Result<crate::sandbox::Engine, RunError> {
    let dir = tempfile::tempdir().map_err(RunError::Engine)?;
    let name = format!("localhost/lambda-img-run:{}", image.manifest_digest().short());
    let archive = dir.path().join("image.tar");
    let sink = crate::sink::open_ref(
        &crate::reference::OutputRef::docker_archive(&archive, Some(&name)),
        &crate::sink::SinkOptions::default(),
    )?;
    sink.write(image, reporter)?;
    reporter.step(&format!("loading the image into {program}"));
    let image = crate::sandbox::podman::load(program, &archive, &name).map_err(RunError::Engine)?;
    Ok(crate::sandbox::Engine::Container(
        crate::sandbox::podman::EngineRun {
            program: program.to_string(),
            image,
        },
    ))
}

/// `--entrypoint`: runs the spec's program in its environment with this
/// process's stdout and stderr (and stdin when `interactive`), bypassing
/// the Runtime API (which is served all the same, for a runtime started by
/// hand), and returns its exit status.
pub fn run_program(spec: &EnvironmentSpec, interactive: bool) -> Result<std::process::ExitStatus, RunError> {
    use std::process::Stdio;
    let api = crate::runtime_api::RuntimeApi::start().map_err(EnvironmentError::Api)?;
    let mut sandbox = spec.sandbox.clone();
    sandbox.env = function::environment(&spec.image, &spec.settings, &api.addr());
    let (done, exited) = std::sync::mpsc::channel();
    let stdin = if interactive {
        Stdio::inherit()
    } else {
        Stdio::null()
    };
    let running = crate::sandbox::Sandbox::spawn_in(
        &spec.engine,
        &sandbox,
        stdin,
        Stdio::inherit(),
        Stdio::inherit(),
        move |status| {
            let _ = done.send(status);
        },
    )
    .map_err(EnvironmentError::from)?;
    let status = exited
        .recv()
        .map_err(|_| RunError::Engine(std::io::Error::other("the sandbox ended without a status")))?;
    drop(running);
    Ok(status)
}
