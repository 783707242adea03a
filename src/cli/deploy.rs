//! `lambda-img deploy`, and the deploy flags `build --deploy` shares.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use super::limits::LimitArgs;
use super::settings::DeployTarget;
use super::{GlobalArgs, print_data};
use crate::aws::AwsSession;
use crate::build::BuildOptions;
use crate::deploy::{DeployOptions, DeployOutcome, deploy};
use crate::manifest::{DeploySettings, alias_name, function_ref, read_deploy_settings, region_name};
use crate::registry::RegistryOptions;
use crate::source::SourceOptions;

/// Where and how to deploy; each falls back to `[deploy]` in lambda-img.toml.
#[derive(Debug, Clone, Args)]
pub struct DeployFlags {
    /// The function (name or ARN); default `[deploy] function`, else `function.name`.
    #[arg(long, value_name = "NAME", env = "LAMBDA_IMG_FUNCTION", value_parser = parse_function)]
    pub function: Option<String>,
    /// The function's region; default `[deploy] region`, else AWS_REGION / the profile's.
    #[arg(long, value_name = "REGION", value_parser = parse_region)]
    pub region: Option<String>,
    /// Publish a version after the update (default `[deploy] publish`).
    #[arg(long)]
    pub publish: bool,
    /// Point this alias at the published version, creating it if missing (implies --publish).
    #[arg(long, value_name = "NAME", value_parser = parse_alias)]
    pub alias: Option<String>,
    /// Seconds to wait for the update to finish.
    #[arg(long, default_value_t = 300, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub wait_timeout: u64,
}

fn parse_function(s: &str) -> Result<String, String> {
    function_ref(s)
        .then(|| s.to_string())
        .ok_or_else(|| format!("{s:?} is not a Lambda function name (1-64 letters, digits, - or _) or ARN"))
}

fn parse_region(s: &str) -> Result<String, String> {
    region_name(s)
        .then(|| s.to_string())
        .ok_or_else(|| format!("{s:?} is not an AWS region name such as us-east-1"))
}

fn parse_alias(s: &str) -> Result<String, String> {
    alias_name(s)
        .then(|| s.to_string())
        .ok_or_else(|| format!("{s:?} is not an alias name (1-128 letters, digits, - or _, not all digits)"))
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The image, REPO@sha256:...; default: the image the last build of this project pushed.
    pub image: Option<String>,
    /// The function manifest whose `[deploy]` table gives defaults (optional).
    #[arg(long, value_name = "PATH", default_value = "lambda-img.toml")]
    pub manifest: PathBuf,
    #[command(flatten)]
    pub flags: DeployFlags,
    /// Print a JSON report (old and new image, version, alias, timings).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Flags over the manifest's `[deploy]` table.
pub fn target(flags: &DeployFlags, settings: Option<&DeploySettings>) -> DeployTarget {
    DeployTarget {
        function: flags
            .function
            .clone()
            .or_else(|| settings.and_then(|s| s.function.clone())),
        region: flags
            .region
            .clone()
            .or_else(|| settings.and_then(|s| s.region.clone())),
        publish: flags.publish || settings.is_some_and(|s| s.publish),
        alias: flags
            .alias
            .clone()
            .or_else(|| settings.and_then(|s| s.alias.clone())),
    }
}

/// The deploy of `target`, reading the image with `registry`.
pub fn options(
    target: &DeployTarget,
    flags: &DeployFlags,
    manifest: &Path,
    limits: &LimitArgs,
    registry: RegistryOptions,
) -> anyhow::Result<DeployOptions> {
    let function = target.function.clone().ok_or_else(|| {
        anyhow::anyhow!(
            "no function to deploy to: pass --function NAME, or run in a project whose {} names one ([deploy] function or function.name)",
            manifest.display()
        )
    })?;
    let project_dir = match manifest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut options = DeployOptions::new(function, project_dir);
    options.region = target.region.clone();
    options.publish = target.publish;
    options.alias = target.alias.clone();
    options.wait_timeout = Duration::from_secs(flags.wait_timeout);
    options.limits = limits.limits();
    options.source_options = SourceOptions {
        allow_unpinned: true,
        registry,
    };
    Ok(options)
}

/// Runs a deploy with `options` and prints its outcome.
pub fn run_options(global: &GlobalArgs, options: &DeployOptions) -> anyhow::Result<DeployOutcome> {
    let reporter = global.reporter();
    let cache = global.cache()?;
    let session = AwsSession::load(options.region.as_deref())?;
    Ok(deploy(options, &session, &cache, &reporter)?)
}

/// `FUNCTION_ARN VERSION`, for `read arn version` in scripts.
pub fn text(outcome: &DeployOutcome) -> String {
    format!("{} {}", outcome.function_arn, outcome.version)
}

pub fn run(global: &GlobalArgs, args: DeployArgs) -> anyhow::Result<()> {
    // Resolved once: the manifest's `[deploy]`, then the registry settings
    // (with ECR sign-in for its `[registry] aws_auth`).
    let settings = read_deploy_settings(&args.manifest)?;
    let registry = global.registry_options_for(
        settings.as_ref(),
        args.flags.region.as_deref(),
        &deploy_credential_target(global, &args)?,
    )?;
    let target = target(&args.flags, settings.as_ref());
    let mut options = options(&target, &args.flags, &args.manifest, &args.limits, registry)?;
    options.image = args.image.clone();
    let outcome = run_options(global, &options)?;
    if args.json {
        print_data(&serde_json::to_string_pretty(&outcome)?)
    } else {
        print_data(&text(&outcome))
    }
}

/// `build`'s ECR and deploy flags.
#[derive(Debug, Clone, Args)]
pub struct BuildDeployArgs {
    /// Create a missing ECR repository before pushing to it.
    #[arg(long)]
    pub create_repository: bool,
    /// With --create-repository: scan images on push.
    #[arg(long, requires = "create_repository")]
    pub scan_on_push: bool,
    /// With --create-repository: make tags immutable.
    #[arg(long, requires = "create_repository")]
    pub immutable_tags: bool,
    /// After pushing, deploy the pushed image to the function (see `lambda-img deploy`).
    #[arg(long)]
    pub deploy: bool,
    #[command(flatten)]
    pub flags: DeployFlags,
}

/// Before a build: refuse `--deploy` without a registry output, and make
/// sure the ECR repositories pushed to exist (or create them).
pub fn before_build(
    global: &GlobalArgs,
    args: &BuildDeployArgs,
    outputs: &[crate::reference::OutputRef],
    settings: &DeploySettings,
) -> anyhow::Result<()> {
    if args.deploy && !outputs.iter().any(|o| o.is_registry()) {
        anyhow::bail!("build --deploy needs a registry output to deploy from: add --output registry:REF");
    }
    let targets = crate::deploy::repository::ecr_targets(outputs, &global.signin_hosts(Some(settings)));
    if !targets.is_empty() {
        let reporter = global.reporter();
        let session = AwsSession::load(args.flags.region.as_deref())?;
        let create = args.create_repository.then_some(crate::aws::RepositoryOptions {
            scan_on_push: args.scan_on_push,
            immutable_tags: args.immutable_tags,
        });
        crate::deploy::repository::ensure_repositories(&session, &targets, create, &reporter)?;
    }
    Ok(())
}

/// After a build with `build` that pushed `image`: deploy it to `target`.
pub fn after_build(
    global: &GlobalArgs,
    args: &BuildDeployArgs,
    target: &DeployTarget,
    build: &BuildOptions,
    limits: &LimitArgs,
    image: &str,
) -> anyhow::Result<DeployOutcome> {
    let registry = build.source_options.registry.clone();
    let mut options = options(target, &args.flags, &build.manifest_path, limits, registry)?;
    options.image = Some(image.to_string());
    run_options(global, &options)
}

/// Explicit credentials of `deploy` are for the registry of the image it
/// reads (IMAGE, else the one the project's last build pushed). Found only
/// when they are given, so a deploy without them fails as it always did.
fn deploy_credential_target(
    global: &GlobalArgs,
    args: &DeployArgs,
) -> anyhow::Result<super::CredentialTarget> {
    let target = super::CredentialTarget::none("deploy", "it has no image to read");
    let image = match &args.image {
        Some(image) => image.clone(),
        None if global.username.is_some() => {
            let project_dir = match args.manifest.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            crate::deploy::last_build::pushed_image(&project_dir)?
        }
        None => return Ok(target),
    };
    Ok(target.with_image(&image))
}
