//! `lambda-img init`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::{GlobalArgs, print_data};
use crate::image::Architecture;
use crate::init::{InitOptions, LockWriter, TemplateRuntime, scaffold};

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The project directory (created when missing).
    #[arg(default_value = ".", value_name = "DIR")]
    pub dir: PathBuf,
    /// The Lambda runtime of the new function.
    #[arg(long, value_enum, default_value = "python3.12")]
    pub runtime: RuntimeArg,
    /// The function's architecture.
    #[arg(long = "arch", value_enum, default_value = "x86_64")]
    pub arch: ArchArg,
    /// The function name (default: the directory's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Overwrite files that exist.
    #[arg(long)]
    pub force: bool,
    /// Name the base in this registry, a mirror of public.ecr.aws/lambda/* (e.g. an
    /// ECR pull-through cache).
    #[arg(long, value_name = "HOST[:PORT]", env = "LAMBDA_IMG_BASE_REGISTRY")]
    pub base_registry: Option<String>,
    /// Do not resolve the base's current digest; keep the one built into lambda-img.
    #[arg(long)]
    pub no_pin: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RuntimeArg {
    #[value(name = "python3.12")]
    Python312,
    #[value(name = "nodejs20.x")]
    Nodejs20,
    #[value(name = "java21")]
    Java21,
    #[value(name = "provided.al2023")]
    ProvidedAl2023,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ArchArg {
    #[value(name = "x86_64")]
    X86_64,
    #[value(name = "arm64")]
    Arm64,
}

pub fn run(global: &GlobalArgs, args: InitArgs) -> anyhow::Result<()> {
    let runtime = match args.runtime {
        RuntimeArg::Python312 => TemplateRuntime::Python312,
        RuntimeArg::Nodejs20 => TemplateRuntime::Nodejs20,
        RuntimeArg::Java21 => TemplateRuntime::Java21,
        RuntimeArg::ProvidedAl2023 => TemplateRuntime::ProvidedAl2023,
    };
    let architecture = match args.arch {
        ArchArg::X86_64 => Architecture::X86_64,
        ArchArg::Arm64 => Architecture::Arm64,
    };
    let options = InitOptions {
        dir: args.dir.clone(),
        runtime,
        architecture,
        name: args.name,
        force: args.force,
        base_registry: args.base_registry,
    };
    if args.no_pin && global.username.is_some() {
        // Refused before any file is written.
        super::CredentialTarget::none("init --no-pin", "it pins nothing, so it reads no registry").host()?;
    }
    let written = scaffold(&options)?;
    let reporter = global.reporter();
    match crate::init::lock_node_dependencies(&options) {
        Some(LockWriter::Npm) => crate::report::Reporter::step(
            &reporter,
            "package-lock.json written by npm install --package-lock-only",
        ),
        Some(LockWriter::Template { reason }) => crate::report::Reporter::step(
            &reporter,
            &format!("package-lock.json written from the template ({reason})"),
        ),
        None => {}
    }
    // Pin to the tag's digest of today where the registry answers; the digest
    // built into lambda-img is a fallback that ages (AWS republishes weekly).
    let pinned = if args.no_pin {
        false
    } else {
        let manifest = args.dir.join("lambda-img.toml");
        // The manifest just written: its base is the credentials' host and
        // its `[registry] aws_auth` the sign-in hosts.
        let target = super::CredentialTarget::of_bases("init", &[manifest.as_path()]);
        let registry = global.registry_options_in(&manifest, &target)?;
        match crate::pin::pin_base(&manifest, architecture, &registry, &reporter) {
            Ok(outcome) => {
                crate::report::Reporter::step(&reporter, &format!("base pinned: {}", outcome.after));
                true
            }
            Err(e) => {
                crate::report::Reporter::warn(
                    &reporter,
                    &format!(
                        "could not resolve the base's current digest ({e}); run `lambda-img pin` when the registry is reachable"
                    ),
                );
                false
            }
        }
    };
    let compiles = matches!(runtime, TemplateRuntime::Java21 | TemplateRuntime::ProvidedAl2023);
    let next = match (
        pinned || runtime.base().digest_for(architecture).is_some(),
        compiles,
    ) {
        (true, true) => "next: `make` (compiles, then builds the image)",
        (true, false) => "next: `make` (lambda-img installs the dependencies and builds the image)",
        (false, _) => {
            "next: `lambda-img pin` (the base is not pinned yet; build refuses it until then), then `make`"
        }
    };
    crate::report::Reporter::step(
        &reporter,
        &format!(
            "wrote a {runtime} function for {} in {}; {next}",
            architecture.lambda_name(),
            args.dir.display()
        ),
    );
    // stdout: the files written, one per line (data, for scripts).
    let list: Vec<String> = written
        .iter()
        .map(|p| args.dir.join(p).display().to_string())
        .collect();
    print_data(&list.join("\n"))
}
