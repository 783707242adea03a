//! `lambda-img build`.

use std::path::PathBuf;

use clap::Args;

use super::settings::{BuildSettings, Project};
use super::{GlobalArgs, print_data};
use crate::build::{BuildOptions, prepare_model};
use crate::build_report::metadata::{build_report, write_metadata_file};
use crate::image::MediaFamily;
use crate::layer::DEFAULT_GZIP_LEVEL;
use crate::reference::{OutputKind, OutputTemplate};

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The function manifest.
    #[arg(long, value_name = "PATH", default_value = "lambda-img.toml")]
    pub manifest: PathBuf,
    /// Where to write the image: oci:DIR[:TAG], docker-archive:FILE[:REPO:TAG] or
    /// registry:REF. Repeat for several.
    #[arg(
        short,
        long = "output",
        value_name = "OUTPUT",
        env = "LAMBDA_IMG_OUTPUT",
        value_delimiter = ',',
        hide_possible_values = true,
        value_parser = super::completions::Hinted { hints: output_kinds, parse: parse_output }
    )]
    pub outputs: Vec<OutputTemplate>,
    /// Print a JSON report on stdout instead of the digest.
    #[arg(long)]
    pub json: bool,
    /// Media types of the output (default: the base image's; OCI for scratch).
    #[arg(long, value_enum, env = "LAMBDA_IMG_FORMAT")]
    pub format: Option<Format>,
    /// gzip level of new layers (1-9).
    #[arg(long, default_value_t = DEFAULT_GZIP_LEVEL, env = "LAMBDA_IMG_GZIP_LEVEL",
          value_parser = clap::value_parser!(u32).range(1..=9))]
    pub gzip_level: u32,
    /// Seconds a dependency installer (pip, npm) may run before it is stopped.
    #[arg(long, default_value_t = 1200, env = "LAMBDA_IMG_INSTALL_TIMEOUT", value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub install_timeout: u64,
    /// Compression threads (default: all cores). The output does not depend on it.
    #[arg(short, long, env = "LAMBDA_IMG_JOBS")]
    pub jobs: Option<usize>,
    /// Time written on files, `created` and history (seconds since 1970).
    #[arg(long, env = "SOURCE_DATE_EPOCH", value_name = "SECONDS")]
    pub source_date_epoch: Option<u64>,
    #[command(flatten)]
    pub limits: super::limits::LimitArgs,
    #[command(flatten)]
    pub rules: super::explain::RuleArgs,
    /// Accept a registry base that is not pinned by digest (not reproducible).
    #[arg(long, env = "LAMBDA_IMG_ALLOW_UNPINNED")]
    pub allow_unpinned: bool,
    /// A label set on the image over the manifest's `image.labels`, e.g.
    /// `--label org.opencontainers.image.revision=$CODEBUILD_RESOLVED_SOURCE_VERSION`.
    /// Repeat for several; LAMBDA_IMG_LABEL gives one when no flag is given.
    #[arg(long = "label", value_name = "KEY=VALUE", env = "LAMBDA_IMG_LABEL",
          value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// Rewrite base layers that hold hard links or miss parent directories
    /// (LI040, LI041) into new layers, as `[base] repair = true`.
    #[arg(long)]
    pub repair_base: bool,
    /// Replace an existing file at a docker-archive output even when it is not
    /// a docker-archive (the manifest and sources are never replaced).
    #[arg(long)]
    pub force: bool,
    /// Keep blobs of an OCI layout output that its index.json no longer reaches
    /// (by default they are removed after the new index.json is written, like `umoci gc`).
    #[arg(long)]
    pub no_gc: bool,
    /// Print the settings this build would use (flags over LAMBDA_IMG_*
    /// variables over lambda-img.toml) as JSON, and exit without building.
    #[arg(long)]
    pub print_settings: bool,
    /// Also write the JSON report to PATH, atomically (digest per output, pushed
    /// REPO@sha256:... references, base, platform, config digest, layers): the
    /// file a deploy step reads.
    #[arg(long, value_name = "PATH", env = "LAMBDA_IMG_METADATA_FILE")]
    pub metadata_file: Option<PathBuf>,
    /// The function's architecture, over `function.architecture` (one manifest
    /// built for both in a CI matrix).
    #[arg(long, value_parser = super::check::parse_arch, env = "LAMBDA_IMG_ARCH")]
    pub arch: Option<crate::image::Architecture>,
    /// Build every lambda-img.toml under DIR... (default `.`) with one shared
    /// cache; `{function}` in each --output is replaced by the function's name.
    #[arg(long, conflicts_with = "manifest")]
    pub recursive: bool,
    /// Directories searched with --recursive.
    #[arg(value_name = "DIR", requires = "recursive")]
    pub dirs: Vec<PathBuf>,
    #[command(flatten)]
    pub aws: super::deploy::BuildDeployArgs,
    /// Also write the image's SBOM (SPDX 2.3 JSON) to PATH, atomically: the
    /// packages lambda-img put into its layers, the base by digest and the
    /// code layer. The same inputs give the same bytes.
    /// With --recursive, `{function}` in PATH is replaced by each function's name.
    #[arg(long, value_name = "PATH")]
    pub sbom: Option<PathBuf>,
    /// The SBOM's format (the --sbom file's and the attached referrer's).
    #[arg(long, value_enum, default_value = "spdx")]
    pub sbom_format: SbomFormatArg,
    /// A registry repository shared as a layer cache by every machine (CI
    /// runners): layers and dependency sets missing locally are taken from
    /// it, and what this build makes is pushed to it. Over `[cache] registry`.
    #[arg(long, value_name = "REPO", env = "LAMBDA_IMG_CACHE_REGISTRY")]
    pub cache_registry: Option<String>,
    /// Only read the cache registry, never push to it (builds of untrusted
    /// changes, such as pull requests).
    #[arg(long, env = "LAMBDA_IMG_CACHE_REGISTRY_READONLY")]
    pub cache_registry_readonly: bool,
    /// Attach no SBOM to the outputs (by default registry and OCI-layout outputs get one as an OCI referrer).
    #[arg(long, env = "LAMBDA_IMG_NO_SBOM")]
    pub no_sbom: bool,
}

impl BuildArgs {
    /// `--sbom`, `--sbom-format` and `--no-sbom` together.
    pub(super) fn sbom_settings(&self) -> super::build_sbom::SbomSettings {
        super::build_sbom::SbomSettings {
            file: self.sbom.clone(),
            format: match self.sbom_format {
                SbomFormatArg::Spdx => crate::sbom::SbomFormat::Spdx,
                SbomFormatArg::Cyclonedx => crate::sbom::SbomFormat::CycloneDx,
            },
            attach: !self.no_sbom,
        }
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SbomFormatArg {
    /// SPDX 2.3 JSON.
    Spdx,
    /// CycloneDX 1.6 JSON.
    Cyclonedx,
}

/// `--cache-registry` opened once for the whole run, so its warnings and a
/// registry found down hold for every function of `--recursive`.
fn cache_registry_choice(
    args: &BuildArgs,
    registry: &crate::registry::RegistryOptions,
    reporter: &dyn crate::report::Reporter,
) -> anyhow::Result<crate::cache_registry::CacheRegistryChoice> {
    let given = match args.cache_registry.as_deref().filter(|r| !r.is_empty()) {
        Some(r) => Some(std::sync::Arc::new(crate::cache_registry::CacheRegistry::open(
            r,
            args.cache_registry_readonly,
            registry,
            reporter,
        )?)),
        None => None,
    };
    Ok(crate::cache_registry::CacheRegistryChoice {
        given,
        readonly: args.cache_registry_readonly,
    })
}

/// What shell completion offers for `--output`.
fn output_kinds() -> Vec<&'static str> {
    OutputKind::ALL.map(OutputKind::prefix).to_vec()
}

/// An output spec parsed, so a malformed one is a command-line mistake
/// (exit status 2) found before anything runs; `{function}` (for
/// --recursive) is checked as a name it will become.
fn parse_output(text: &str) -> Result<OutputTemplate, String> {
    OutputTemplate::parse(text).map_err(|e| e.to_string())
}

/// `KEY=VALUE` with a non-empty key; the value may hold further `=`.
fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Oci,
    Docker,
}

impl Format {
    pub fn family(self) -> MediaFamily {
        match self {
            Format::Oci => MediaFamily::Oci,
            Format::Docker => MediaFamily::Docker,
        }
    }
}

impl BuildArgs {
    /// `--jobs`, else every core.
    pub fn threads(&self) -> usize {
        self.jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
            .max(1)
    }
}

/// Merges the flags, `LAMBDA_IMG_*` and lambda-img.toml into this build's
/// settings, before any work: the manifest is read once and the password
/// (`--password-stdin`) once; usage mistakes are found first. A new flag is
/// one field and one line here.
pub fn resolve(global: &GlobalArgs, args: &BuildArgs) -> anyhow::Result<BuildSettings> {
    // Said plainly before any file is read.
    global.check_credential_flags()?;
    // --recursive reads each function's manifest in its turn; --print-settings
    // shows the one --manifest names even then.
    let project = match args.recursive && !args.print_settings {
        true => None,
        false => Some(Project::read(&args.manifest)?),
    };
    let deploy_settings = project.as_ref().map(|p| &p.deploy);
    // Explicit credentials are for the registry outputs' one host only.
    let target = super::CredentialTarget::of_outputs(&args.outputs);
    let registry = global.registry_options_for(deploy_settings, args.aws.flags.region.as_deref(), &target)?;
    let mut options = BuildOptions::new(args.manifest.clone(), registry);
    // One function's outputs are as written; --recursive puts each
    // function's name in (and --print-settings shows them as given).
    if !args.recursive && !args.print_settings {
        options.outputs = (args.outputs.iter())
            .map(OutputTemplate::as_written)
            .collect::<Result<_, _>>()?;
    }
    options.source_date_epoch = args.source_date_epoch;
    options.limits = args.limits.limits();
    options.gzip_level = args.gzip_level;
    options.threads = args.threads();
    options.install_timeout = std::time::Duration::from_secs(args.install_timeout);
    options.format = args.format.map(Format::family);
    options.labels = args.labels.clone();
    options.sink_options.keep_unreferenced = args.no_gc;
    options.source_options.allow_unpinned = args.allow_unpinned;
    options.force = args.force;
    options.arch = args.arch;
    options.rules = args.rules.policy()?;
    options.repair_base = args.repair_base;
    options.side_outputs = args.sbom.iter().chain(&args.metadata_file).cloned().collect();
    options.sbom_packages = args.sbom.is_some() || !args.no_sbom;
    Ok(BuildSettings {
        options,
        target: super::deploy::target(&args.aws.flags, deploy_settings),
        signin_hosts: global.signin_hosts(deploy_settings),
        project,
        deploy: args.aws.deploy,
        create_repository: args.aws.create_repository,
        cache_dir: global
            .cache_dir
            .clone()
            .unwrap_or_else(crate::cache::Cache::default_root),
        metadata_file: args.metadata_file.clone(),
        cache_registry: args.cache_registry.clone(),
        cache_registry_readonly: args.cache_registry_readonly,
        outputs: args.outputs.clone(),
    })
}

pub fn run(global: &GlobalArgs, args: BuildArgs) -> anyhow::Result<()> {
    let settings = resolve(global, &args)?;
    if args.print_settings {
        return super::settings::print(&settings);
    }
    let reporter = global.reporter();
    let cache = global.cache()?;
    // --recursive prepares each function's deploy itself, with its own outputs.
    if let Some(project) = &settings.project {
        super::deploy::before_build(global, &args.aws, &settings.options.outputs, &project.deploy)?;
    }
    let BuildSettings {
        mut options,
        project,
        target,
        outputs: settings_outputs,
        ..
    } = settings;
    // Opened once for the whole run (its warnings and a registry found down
    // hold for every function of --recursive), after --print-settings, which
    // must not reach it.
    options.cache_registry = cache_registry_choice(&args, &options.sink_options.registry, &reporter)?;
    let sbom = args.sbom_settings();
    if settings_outputs.is_empty() {
        crate::report::Reporter::warn(
            &reporter,
            "no --output given: the image is built and checked, then kept only in the cache",
        );
    }
    // --recursive reads each function's manifest in its turn.
    let Some(Project { model, .. }) = project else {
        let recursive = super::build_recursive::RecursiveArgs {
            dirs: &args.dirs,
            json: args.json,
            metadata_file: args.metadata_file.as_deref(),
            aws: &args.aws,
            limits: &args.limits,
            sbom: &sbom,
        };
        return super::build_recursive::run(
            global,
            recursive,
            &options,
            &settings_outputs,
            &cache,
            &reporter,
        );
    };
    let ready = prepare_model(&options, model, &cache, &reporter)?;
    let epoch = options.source_date_epoch.unwrap_or(crate::layer::DEFAULT_MTIME);
    let document =
        super::build_sbom::before_outputs(&sbom, &ready, &options.manifest_path, epoch, &reporter)?;
    let outcome = ready.write(&reporter)?;
    let sbom_report =
        super::build_sbom::after_build(&sbom, document, &outcome, &options.sink_options, &reporter)?;
    let mut report = build_report(&outcome.report_facts());
    if let Some(sbom_report) = sbom_report {
        report["sbom"] = sbom_report;
    }
    if let Some(path) = &args.metadata_file {
        write_metadata_file(path, &report)?;
    }
    let pushed = crate::sink::pushed_references(&outcome.outputs);
    if !pushed.is_empty() {
        // `deploy` without IMAGE deploys what this build pushed.
        let project_dir = options.manifest_path.parent().unwrap_or(std::path::Path::new(""));
        if let Err(e) =
            crate::deploy::last_build::record(project_dir, &serde_json::to_string_pretty(&report)?)
        {
            crate::report::Reporter::warn(&reporter, &e.to_string());
        }
    }
    if args.aws.deploy {
        let image = pushed.first().copied().unwrap_or_default();
        let deployed = super::deploy::after_build(global, &args.aws, &target, &options, &args.limits, image)?;
        if args.json {
            // The build report grows a `deploy` member.
            report["deploy"] = serde_json::to_value(&deployed)?;
        } else {
            print_data(image)?;
            return print_data(&super::deploy::text(&deployed));
        }
    }
    if args.json {
        print_data(&serde_json::to_string_pretty(&report)?)
    } else {
        print_data(&digest_lines(&outcome))
    }
}

/// What stdout carries: every digest printed is one an output holds. Like
/// ko, pushed images are `REF@sha256:...`, one a line, ready for `aws lambda
/// update-function-code --image-uri`; otherwise the one digest every output
/// holds. When outputs hold different manifests (an OCI layout of a Docker
/// image), one `OUTPUT@sha256:...` line per output.
fn digest_lines(outcome: &crate::build::BuildOutcome) -> String {
    let digests = &outcome.output_digests;
    let differ = digests.windows(2).any(|w| w[0] != w[1]);
    let line = |(o, d): (&crate::sink::SinkReport, &crate::image::Digest)| match o.pushed_reference() {
        Some(r) => r.to_string(),
        None => format!("{}@{d}", o.output),
    };
    if differ {
        return outcome
            .outputs
            .iter()
            .zip(digests)
            .map(line)
            .collect::<Vec<_>>()
            .join("\n");
    }
    let pushed = crate::sink::pushed_references(&outcome.outputs);
    match (pushed.is_empty(), digests.first()) {
        (false, _) => pushed.join("\n"),
        (true, Some(d)) => d.to_string(),
        (true, None) => outcome.image.manifest_digest().to_string(),
    }
}
