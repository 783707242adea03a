//! `lambda-img run`: invoke the image locally with Lambda's semantics.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::{ExitStatus, GlobalArgs, print_data};
use crate::run::function::{
    DEFAULT_EPHEMERAL_MB, DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT_S, EPHEMERAL_RANGE, FunctionSettings,
    MEMORY_RANGE, TIMEOUT_RANGE,
};
use crate::run::report::{body_line, json_record, report_lines};
use crate::run::{Environment, InvokeRecord, InvokeStatus, LogSink};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The image: oci:DIR[:TAG], docker-archive:FILE or a registry reference.
    /// Without it, the project in the current directory is built (into the
    /// cache only) and run.
    pub source: Option<String>,
    /// An event: a JSON text, a file, or `-` for standard input. Repeat for
    /// several; each is invoked in order in one warm environment (default: `{}`).
    #[arg(short, long = "event", value_name = "FILE|-|JSON")]
    pub events: Vec<String>,
    /// Print one JSON object per invocation instead of the bare response.
    #[arg(long)]
    pub json: bool,
    /// The function manifest (without SOURCE).
    #[arg(long, value_name = "PATH", default_value = "lambda-img.toml")]
    pub manifest: PathBuf,
    /// Serve Lambda's invoke endpoint (as the Runtime Interface Emulator does).
    #[arg(long)]
    pub serve: bool,
    /// Address for --serve.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9000")]
    pub listen: String,
    /// Execution environments for --serve; further requests queue.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub concurrency: u32,
    /// Memory size in MB (Lambda: 128 to 10,240; default 128 or `function.memory`).
    #[arg(long, value_name = "MB")]
    pub memory: Option<u32>,
    /// Timeout in seconds (Lambda: 1 to 900; default 3 or `function.timeout`).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u32>,
    /// Size of /tmp in MB (Lambda: 512 to 10,240; default 512 or `function.ephemeral_storage`).
    #[arg(long, value_name = "MB")]
    pub ephemeral_storage: Option<u32>,
    /// A variable for the function, over the image's and the manifest's. Repeat for several.
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    /// A file of KEY=VALUE lines (# comments) for the function.
    #[arg(long, value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Pass this shell's AWS credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    /// AWS_SESSION_TOKEN) to the function; by default it gets none.
    #[arg(long)]
    pub aws_credentials: bool,
    /// Bind a host folder under /tmp: HOST_DIR:/tmp/DIR, read-only unless `:rw` is added.
    #[arg(long = "mount", value_name = "HOST_DIR:/tmp/DIR[:rw]")]
    pub mounts: Vec<String>,
    /// Run this program in the function's environment instead of invoking
    /// it (arguments after `--`), e.g. `--entrypoint /bin/sh -i`.
    #[arg(long, value_name = "CMD")]
    pub entrypoint: Option<String>,
    /// Arguments for --entrypoint.
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<String>,
    /// Keep standard input open for --entrypoint (a shell to look around).
    #[arg(short, long)]
    pub interactive: bool,
    /// Accepted for `docker run -it` habits: the terminal is passed as it is.
    #[arg(short, long)]
    pub tty: bool,
    /// The function's name (default: the manifest's, else `function`).
    #[arg(long, value_name = "NAME")]
    pub function_name: Option<String>,
    /// AWS_REGION for the function (default: this shell's AWS_REGION, else us-east-1).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Where the function runs: lambda-img's own Linux namespaces, or a
    /// container engine (for machines without namespaces) against the same
    /// in-process Runtime API.
    #[arg(long, value_enum, default_value = "native")]
    pub engine: EngineArg,
    /// Rebuild when a source of the manifest changes. With --serve the next
    /// request runs in an environment of the new image; with events, the same
    /// events run again in a fresh environment after each change.
    #[arg(long)]
    pub watch: bool,
    /// Accept a registry base that is not pinned by digest (building without SOURCE).
    #[arg(long)]
    pub allow_unpinned: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineArg {
    Native,
    Podman,
    Docker,
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

/// A usage error: printed, then exit status 2.
fn usage(message: impl std::fmt::Display) -> anyhow::Error {
    eprintln!("error: {message}");
    ExitStatus(2).into()
}

/// Function output and Lambda's START/END/REPORT lines, on stderr.
struct StderrLogs;

impl LogSink for StderrLogs {
    fn line(&self, text: &str) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{text}");
    }
}

/// The image to run and the manifest's settings, if a project is run.
struct Resolved {
    image: crate::image::Image,
    model: Option<crate::manifest::FunctionModel>,
}

/// The image `args` names, or the project's, built with `registry` (resolved
/// once per run: a `--watch` rebuild reads the manifest again, not stdin).
fn resolve_image(
    global: &GlobalArgs,
    args: &RunArgs,
    registry: &crate::registry::RegistryOptions,
) -> anyhow::Result<Resolved> {
    let reporter = global.reporter();
    let cache = global.cache()?;
    match &args.source {
        Some(source) => {
            let options = crate::source::SourceOptions {
                allow_unpinned: true,
                registry: registry.clone(),
            };
            let image = crate::check::read_image(source, host_arch(), &options, &cache, &reporter)?;
            Ok(Resolved { image, model: None })
        }
        None => {
            let model = crate::manifest::load(&args.manifest)?;
            let mut options = crate::build::BuildOptions::new(args.manifest.clone(), registry.clone());
            options.source_options.allow_unpinned = args.allow_unpinned;
            // A local run writes no SBOM.
            options.sbom_packages = false;
            let outcome = crate::build::build_model(&options, model.clone(), &cache, &reporter)?;
            Ok(Resolved {
                image: outcome.image,
                model: Some(model),
            })
        }
    }
}

fn host_arch() -> crate::image::Architecture {
    if std::env::consts::ARCH == "aarch64" {
        crate::image::Architecture::Arm64
    } else {
        crate::image::Architecture::X86_64
    }
}

fn in_range(flag: &str, value: u32, (lo, hi): (u32, u32)) -> anyhow::Result<u32> {
    if (lo..=hi).contains(&value) {
        Ok(value)
    } else {
        Err(usage(format!(
            "{flag} {value} is outside Lambda's range {lo} to {hi}"
        )))
    }
}

/// Flags over the manifest's `[function]` keys over Lambda's defaults.
fn settings(
    args: &RunArgs,
    model: Option<&crate::manifest::FunctionModel>,
) -> anyhow::Result<FunctionSettings> {
    let exec = model.map(|m| m.execution.clone()).unwrap_or_default();
    let memory = in_range(
        "--memory",
        args.memory.or(exec.memory).unwrap_or(DEFAULT_MEMORY_MB),
        MEMORY_RANGE,
    )?;
    let timeout = in_range(
        "--timeout",
        args.timeout.or(exec.timeout).unwrap_or(DEFAULT_TIMEOUT_S),
        TIMEOUT_RANGE,
    )?;
    let ephemeral = in_range(
        "--ephemeral-storage",
        args.ephemeral_storage
            .or(exec.ephemeral_storage)
            .unwrap_or(DEFAULT_EPHEMERAL_MB),
        EPHEMERAL_RANGE,
    )?;
    let mut env = exec.environment.clone();
    for file in &args.env_file {
        env.extend(read_env_file(file)?);
    }
    env.extend(args.env.iter().cloned());
    if args.aws_credentials {
        for key in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"] {
            if let Ok(v) = std::env::var(key) {
                env.push((key.to_string(), v));
            }
        }
    }
    let name = args
        .function_name
        .clone()
        .or_else(|| model.map(|m| m.name.clone()))
        .unwrap_or_else(|| "function".into());
    let region = args
        .region
        .clone()
        .or_else(|| std::env::var("AWS_REGION").ok().filter(|r| !r.is_empty()))
        .unwrap_or_else(|| "us-east-1".into());
    Ok(FunctionSettings {
        name,
        memory_mb: memory,
        timeout_s: timeout,
        ephemeral_mb: ephemeral,
        env,
        region,
        handler: model.and_then(|m| m.handler.clone()),
    })
}

/// `KEY=VALUE` lines; blank lines and `#` comments skipped.
fn read_env_file(path: &std::path::Path) -> anyhow::Result<Vec<(String, String)>> {
    let text =
        std::fs::read_to_string(path).map_err(|e| usage(format!("--env-file {}: {e}", path.display())))?;
    let mut vars = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        match parse_env(line) {
            Ok(kv) => vars.push(kv),
            Err(e) => return Err(usage(format!("{}:{}: {e}", path.display(), n + 1))),
        }
    }
    Ok(vars)
}

/// Each `--event` as bytes: JSON text, a file, or stdin.
fn read_events(args: &RunArgs) -> anyhow::Result<Vec<Vec<u8>>> {
    if args.events.is_empty() {
        return Ok(vec![b"{}".to_vec()]);
    }
    let mut events = Vec::new();
    for e in &args.events {
        let bytes = if e == "-" {
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)?;
            buf
        } else if std::path::Path::new(e).is_file() {
            std::fs::read(e).map_err(|err| usage(format!("--event {e}: {err}")))?
        } else if serde_json::from_str::<serde_json::Value>(e).is_ok() {
            e.clone().into_bytes()
        } else {
            return Err(usage(format!("--event {e:?} is neither a file nor JSON")));
        };
        if bytes.len() > crate::runtime_api::MAX_PAYLOAD {
            return Err(usage(format!(
                "--event {e}: {} bytes is over Lambda's {} byte request limit",
                bytes.len(),
                crate::runtime_api::MAX_PAYLOAD
            )));
        }
        events.push(bytes);
    }
    Ok(events)
}

pub fn run(global: &GlobalArgs, args: RunArgs) -> anyhow::Result<()> {
    // Usage errors before any build.
    let binds = args
        .mounts
        .iter()
        .map(|m| crate::run::parse_mount(m).map_err(usage))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let events = if args.serve || args.entrypoint.is_some() {
        Vec::new()
    } else {
        read_events(&args)?
    };
    if args.watch && (args.source.is_some() || args.entrypoint.is_some()) {
        return Err(usage(
            "--watch rebuilds the project in the current directory: use it with no SOURCE and no --entrypoint",
        ));
    }
    let is_entrypoint = args.entrypoint.is_some();
    // Explicit credentials are for SOURCE's registry; a project built here
    // pushes nowhere, so its base (like a build's) is read with Docker's config.
    let target = super::CredentialTarget::none(
        "run",
        "without a registry SOURCE it builds the project into the cache and reads the base with Docker's config",
    )
    .with_image(args.source.as_deref().unwrap_or_default());
    let registry = global.registry_options_in(&args.manifest, &target)?;
    // Before the first build: an edit made while it runs is a change.
    let watcher = args
        .watch
        .then(|| crate::run::watch::Watcher::new(&args.manifest));
    let spec = environment_for(global, &args, &registry, &binds)?;
    if is_entrypoint {
        return run_entrypoint(&spec, args.interactive);
    }
    if args.serve {
        let logs: Arc<dyn LogSink> = Arc::new(StderrLogs);
        let mut rebuild = || environment_for(global, &args, &registry, &binds);
        let watch = watcher.map(|w| {
            (
                w,
                &mut rebuild as &mut dyn FnMut() -> anyhow::Result<crate::run::EnvironmentSpec>,
            )
        });
        return super::run_serve::serve(spec, &args.listen, args.concurrency as usize, logs, watch);
    }
    let logs: Arc<dyn LogSink> = Arc::new(StderrLogs);
    let failed = invoke_all(spec, &events, args.json, &logs)?;
    let Some(watcher) = watcher else {
        return if failed { Err(ExitStatus(1).into()) } else { Ok(()) };
    };
    // --watch with events: each change rebuilds the image and sends the same
    // events to a fresh environment (new code starts cold, as after a deploy),
    // until the user stops it.
    watcher.watch(|| {
        logs.line("a source changed: rebuilding");
        let outcome = environment_for(global, &args, &registry, &binds)
            .and_then(|spec| invoke_all(spec, &events, args.json, &logs));
        if let Err(e) = outcome {
            logs.line(&format!("error: {e:#}; waiting for the next change"));
        }
    })
}

/// Sends `events` in order to one environment made from `spec`, printing a
/// record for each; returns whether any invocation failed.
fn invoke_all(
    spec: crate::run::EnvironmentSpec,
    events: &[Vec<u8>],
    json: bool,
    logs: &Arc<dyn LogSink>,
) -> anyhow::Result<bool> {
    let mut environment = Environment::new(spec, logs.clone());
    let mut failed = false;
    for event in events {
        let record = environment.invoke(event.clone(), None)?;
        print_record(&record, json, logs.as_ref())?;
        failed |= record.status != InvokeStatus::Success;
    }
    Ok(failed)
}

fn print_record(record: &InvokeRecord, json: bool, logs: &dyn LogSink) -> anyhow::Result<()> {
    for line in report_lines(record) {
        logs.line(&line);
    }
    if json {
        print_data(&json_record(record).to_string())
    } else {
        print_data(&body_line(&record.body))
    }
}

/// Resolves (building when there is no SOURCE) and prepares the image, and
/// the environment its invocations start from.
fn environment_for(
    global: &GlobalArgs,
    args: &RunArgs,
    registry: &crate::registry::RegistryOptions,
    binds: &[crate::sandbox::Bind],
) -> anyhow::Result<crate::run::EnvironmentSpec> {
    let resolved = resolve_image(global, args, registry)?;
    let settings = settings(args, resolved.model.as_ref())?;
    let cache = global.cache()?;
    let reporter = global.reporter();
    let native = args.engine == EngineArg::Native;
    let mut image = crate::run::prepare(&resolved.image, native, &cache, &reporter)?;
    let engine = match args.engine {
        EngineArg::Native => crate::sandbox::Engine::Native,
        EngineArg::Podman => crate::run::load_into_engine("podman", &resolved.image, &reporter)?,
        EngineArg::Docker => crate::run::load_into_engine("docker", &resolved.image, &reporter)?,
    };
    crate::run::probe_sandbox(&mut image, &resolved.image, &cache, &reporter)?;
    let command = args.entrypoint.as_ref().map(|e| {
        std::iter::once(e.clone())
            .chain(args.args.iter().cloned())
            .collect()
    });
    Ok(crate::run::environment_spec(
        &image,
        settings,
        binds.to_vec(),
        command,
        engine,
    )?)
}

/// `--entrypoint`: the program runs in the function's sandbox with this
/// terminal, and its exit status becomes ours.
fn run_entrypoint(spec: &crate::run::EnvironmentSpec, interactive: bool) -> anyhow::Result<()> {
    use std::os::unix::process::ExitStatusExt;
    let status = crate::run::run_program(spec, interactive)?;
    match status.code() {
        Some(0) => Ok(()),
        Some(code) => Err(ExitStatus(code.clamp(1, 255) as u8).into()),
        None => Err(ExitStatus(128 + status.signal().unwrap_or(0) as u8).into()),
    }
}
