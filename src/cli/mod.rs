//! Command-line types (clap) and one small function per command. Commands
//! resolve flags, environment and defaults into an options struct and call
//! one library operation; they hold no logic a library test would need.

pub mod build;
mod build_recursive;
mod build_sbom;
mod cache;
mod check;
mod completions;
pub mod credential_scope;
mod deploy;
mod explain;
pub mod failure;
mod init;
mod inspect_sbom;
mod limits;
mod login;
mod man_sections;
mod pin;
mod plan;
mod run;
mod run_serve;
mod settings;

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::cache::Cache;
use crate::registry::{Credentials, RegistryOptions, ScopedCredentials};
use crate::report::progress::{StderrReporter, Verbosity};
use crate::source::SourceOptions;
pub use credential_scope::CredentialTarget;

/// Build AWS Lambda container images without Docker.
#[derive(Debug, Parser)]
#[command(name = "lambda-img", version, about, long_about = None, after_help = EXIT_STATUS)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Shown by `--help` and in the man page.
pub const EXIT_STATUS: &str = "Exit status: 0 success, 1 the build or a rule failed, 2 a command-line mistake \
(an unknown flag, a malformed --output, flags that clash).";

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Run as if started in DIR.
    #[arg(short = 'C', long = "directory", global = true, value_name = "DIR")]
    pub directory: Option<PathBuf>,
    /// Print no progress (errors and warnings still go to stderr).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more detail (cache decisions, installer output).
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// The cache directory shared by builds on this machine.
    #[arg(long, global = true, env = "LAMBDA_IMG_CACHE", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// A registry spoken to over plain HTTP (loopback hosts always are). Repeat for several.
    #[arg(
        long = "insecure-registry",
        global = true,
        value_name = "HOST[:PORT]",
        env = "LAMBDA_IMG_INSECURE_REGISTRY",
        value_delimiter = ','
    )]
    pub insecure_registries: Vec<String>,
    /// User name for the command's one target registry (build's registry: outputs,
    /// the REF of check/inspect/run/deploy, pin's base, login's host), over Docker's
    /// config; every other registry is signed in to as without it.
    #[arg(long, global = true, env = "LAMBDA_IMG_USERNAME", value_name = "USER")]
    pub username: Option<String>,
    /// Read the registry password (or token) from standard input.
    #[arg(long, global = true)]
    pub password_stdin: bool,
    /// Fetch base images named on registry FROM from the mirror TO instead (same
    /// repository path, or under PREFIX/), by the same tag or digest, verified; the
    /// manifest keeps the canonical name. For build, check, inspect, pin and init.
    /// Repeat for several.
    #[arg(
        long = "registry-mirror",
        global = true,
        value_name = "FROM=TO[/PREFIX]",
        env = "LAMBDA_IMG_REGISTRY_MIRRORS",
        value_delimiter = ','
    )]
    pub registry_mirrors: Vec<crate::registry::RegistryMirror>,
    /// Sign in to HOST[:PORT] with ECR's GetAuthorizationToken when Docker's
    /// config has nothing for it, like an ECR host (VPC endpoints, proxies).
    #[arg(
        long = "aws-auth",
        global = true,
        value_name = "HOST[:PORT]",
        env = "LAMBDA_IMG_AWS_AUTH",
        value_delimiter = ','
    )]
    pub aws_auth: Vec<String>,
    /// Give up on a stalled or trickling registry request (with its retries) after about this long.
    #[arg(
        long,
        global = true,
        env = "LAMBDA_IMG_REGISTRY_TIMEOUT",
        value_name = "SECONDS",
        default_value_t = crate::registry::DEFAULT_REGISTRY_TIMEOUT.as_secs(),
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub registry_timeout: u64,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the image described by lambda-img.toml.
    Build(build::BuildArgs),
    /// Check any image against every known Lambda deploy-time rejection.
    Check(check::CheckArgs),
    /// Show an image's config and layers, or how two images differ.
    Inspect(check::InspectArgs),
    /// Resolve the base image's tag and write its digest into lambda-img.toml.
    Pin(pin::PinArgs),
    /// Store credentials for a registry where docker would.
    Login(login::LoginArgs),
    /// Point a Lambda function at a pushed image by digest; optionally publish and move an alias.
    Deploy(deploy::DeployArgs),
    /// Show the cache's size, or prune it.
    Cache(cache::CacheArgs),
    /// Write a starter function project (manifest, handler, Makefile, buildspec).
    Init(init::InitArgs),
    /// Invoke the function locally with Lambda's semantics (no Docker, no daemon).
    Run(Box<run::RunArgs>),
    /// Print a shell completion script (bash, zsh, fish, ...).
    Completions(completions::CompletionsArgs),
    /// Print the man page (roff), or write one per command with --out-dir.
    Man(completions::ManArgs),
    /// Print a rule's full text: what it checks, how to fix it, where the fact comes from.
    Explain(explain::ExplainArgs),
    /// List every function under DIR... with each layer's input key, or only those changed since a git revision.
    Plan(plan::PlanArgs),
}

/// Ends the process with this status and no further message (the command
/// already printed what the user needs, e.g. `check` findings).
#[derive(Debug)]
pub struct ExitStatus(pub u8);

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}

impl std::error::Error for ExitStatus {}

/// A command-line mistake found after parsing (two flags that clash, a
/// malformed output): printed like clap's own errors, exit status 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

impl GlobalArgs {
    pub fn reporter(&self) -> StderrReporter {
        let verbosity = if self.quiet {
            Verbosity::Quiet
        } else if self.verbose {
            Verbosity::Verbose
        } else {
            Verbosity::Normal
        };
        StderrReporter::new(verbosity)
    }

    pub fn cache(&self) -> anyhow::Result<Cache> {
        let root = self.cache_dir.clone().unwrap_or_else(Cache::default_root);
        Ok(Cache::open(root)?)
    }

    /// The hosts ECR sign-in covers besides ECR's own: `--aws-auth` and the
    /// manifest's `[registry] aws_auth`.
    pub fn signin_hosts(&self, manifest: Option<&crate::manifest::DeploySettings>) -> Vec<String> {
        let mut hosts = self.aws_auth.clone();
        hosts.extend(manifest.iter().flat_map(|s| s.aws_auth.iter().cloned()));
        hosts
    }

    /// `--username` and `--password-stdin` come together: a usage mistake
    /// otherwise, found before any file is read.
    pub fn check_credential_flags(&self) -> Result<(), UsageError> {
        match (&self.username, self.password_stdin) {
            (Some(_), false) => Err(UsageError(
                "--username needs --password-stdin (the password is never a flag)".into(),
            )),
            (None, true) => Err(UsageError("--password-stdin needs --username".into())),
            _ => Ok(()),
        }
    }

    /// Registry settings for a command without a manifest of its own: ECR
    /// sign-in also covers `[registry] aws_auth` of ./lambda-img.toml. Reads
    /// the password from stdin when asked: call once per command.
    pub fn registry_options(&self, target: &CredentialTarget) -> anyhow::Result<RegistryOptions> {
        self.registry_options_in(std::path::Path::new(crate::manifest::MANIFEST_FILE_NAME), target)
    }

    /// Registry settings with ECR sign-in also for `[registry] aws_auth` of
    /// the manifest at `manifest` (the command's `--manifest`).
    pub fn registry_options_in(
        &self,
        manifest: &std::path::Path,
        target: &CredentialTarget,
    ) -> anyhow::Result<RegistryOptions> {
        // A broken manifest here is reported by the command that reads it;
        // sign-in then goes on with the flag's hosts.
        let settings = crate::manifest::read_deploy_settings(manifest).ok().flatten();
        self.registry_options_for(settings.as_ref(), None, target)
    }

    /// Registry settings from the flags, with ECR sign-in for ECR hosts and
    /// [`signin_hosts`](Self::signin_hosts) (in `region`, else the
    /// environment's). Reads the password from stdin when asked, so a
    /// command calls this once and shares the value. Explicit credentials
    /// are scoped to `target`'s one host, found before the password is read.
    pub fn registry_options_for(
        &self,
        manifest: Option<&crate::manifest::DeploySettings>,
        region: Option<&str>,
        target: &CredentialTarget,
    ) -> anyhow::Result<RegistryOptions> {
        self.check_credential_flags()?;
        let credentials = match &self.username {
            Some(user) => {
                let host = target.host()?;
                let secret = Credentials::new(user.clone(), read_password_stdin()?);
                Some(ScopedCredentials::new(&host, secret))
            }
            None => None,
        };
        Ok(RegistryOptions {
            insecure: self.insecure_registries.clone(),
            credentials,
            mirrors: self.registry_mirrors.clone(),
            fallback: Some(self.ecr_signin(manifest, region)),
            show_requests: self.verbose,
            ..Default::default()
        }
        .with_registry_timeout(std::time::Duration::from_secs(self.registry_timeout)))
    }

    /// ECR sign-in for ECR hosts and [`signin_hosts`](Self::signin_hosts),
    /// in `region` (else the environment's): what registry options ask when
    /// Docker's config has nothing for a registry.
    pub fn ecr_signin(
        &self,
        manifest: Option<&crate::manifest::DeploySettings>,
        region: Option<&str>,
    ) -> std::sync::Arc<dyn crate::registry::credentials::FallbackCredentials> {
        let hosts = self.signin_hosts(manifest);
        std::sync::Arc::new(crate::aws::EcrSignIn::new(hosts, region.map(str::to_string)))
    }

    /// Source settings with ECR sign-in for the hosts of the manifest at `manifest`.
    pub fn source_options(
        &self,
        allow_unpinned: bool,
        manifest: &std::path::Path,
        target: &CredentialTarget,
    ) -> anyhow::Result<SourceOptions> {
        Ok(SourceOptions {
            allow_unpinned,
            registry: self.registry_options_in(manifest, target)?,
        })
    }
}

/// The password from stdin, without its trailing newline; never echoed or
/// logged. Stdin holds one password: [`GlobalArgs::registry_options_for`]
/// is called once per command and its value shared.
fn read_password_stdin() -> anyhow::Result<String> {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
    let password = text.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        anyhow::bail!("--password-stdin read an empty password");
    }
    Ok(password)
}

impl Cli {
    /// Whether the command asked for JSON on stdout (then a failure is JSON too).
    pub fn wants_json(&self) -> bool {
        match &self.command {
            Command::Build(a) => a.json,
            Command::Check(a) => a.json,
            Command::Inspect(a) => a.json,
            Command::Plan(a) => a.json,
            _ => false,
        }
    }
}

/// Runs the parsed command line.
pub fn run(mut cli: Cli) -> anyhow::Result<()> {
    // Paths given relative to where the user stands stay so after `-C`.
    if let Some(cache) = cli.global.cache_dir.take() {
        cli.global.cache_dir = Some(std::path::absolute(&cache).unwrap_or(cache));
    }
    if let Some(dir) = &cli.global.directory {
        std::env::set_current_dir(dir)
            .map_err(|e| anyhow::anyhow!("cannot change to directory {}: {e}", dir.display()))?;
    }
    credential_scope::refuse_unused(&cli.global, &cli.command)?;
    match cli.command {
        Command::Build(args) => build::run(&cli.global, args),
        Command::Check(args) => check::run_check(&cli.global, args),
        Command::Inspect(args) => check::run_inspect(&cli.global, args),
        Command::Pin(args) => pin::run(&cli.global, args),
        Command::Login(args) => login::run(&cli.global, args),
        Command::Deploy(args) => deploy::run(&cli.global, args),
        Command::Cache(args) => cache::run(&cli.global, args),
        Command::Init(args) => init::run(&cli.global, args),
        Command::Run(args) => run::run(&cli.global, *args),
        Command::Completions(args) => completions::run_completions(args),
        Command::Man(args) => completions::run_man(args),
        Command::Explain(args) => explain::run_explain(args),
        Command::Plan(args) => plan::run(&cli.global, args),
    }
}

/// Writes data to stdout; a closed pipe (`| head`) is not an error.
pub fn print_data(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
