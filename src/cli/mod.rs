//! Command-line types (clap) and one small function per command. Commands
//! resolve flags, environment and defaults into an options struct and call
//! one library operation; they hold no logic a library test would need.

mod build;

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::cache::Cache;
use crate::report::progress::{StderrReporter, Verbosity};

/// Build AWS Lambda container images without Docker.
#[derive(Debug, Parser)]
#[command(name = "lambda-img", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

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
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the image described by lambda-img.toml.
    Build(build::BuildArgs),
}

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
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(dir) = &cli.global.directory {
        std::env::set_current_dir(dir)
            .map_err(|e| anyhow::anyhow!("cannot change to directory {}: {e}", dir.display()))?;
    }
    match cli.command {
        Command::Build(args) => build::run(&cli.global, args),
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
