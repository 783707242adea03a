//! `lambda-img check` and `lambda-img inspect`.

use clap::Args;

use super::explain::RuleArgs;
use super::limits::LimitArgs;
use super::{ExitStatus, GlobalArgs, print_data};
use crate::check::{CheckOptions, check, inspect};
use crate::image::Architecture;
use crate::inspect::{render_diff, render_table};
use crate::rules::{RulePolicy, has_errors, render_findings, summary};

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The image: oci:DIR[:TAG], docker-archive:FILE or a registry reference.
    #[arg(required_unless_present_any = ["list_rules", "explain"])]
    pub source: Option<String>,
    /// Print every rule id, its default severity and one line of why, and exit.
    #[arg(long)]
    pub list_rules: bool,
    /// Print one rule's full text (as `lambda-img explain RULE`) and exit.
    #[arg(long, value_name = "RULE", value_parser = crate::rules::rule_id)]
    pub explain: Option<&'static str>,
    /// The function's architecture (for an index: the child to check; default x86_64).
    #[arg(long, value_parser = parse_arch)]
    pub arch: Option<Architecture>,
    /// The function's runtime (e.g. python3.12), for the handler rule.
    #[arg(long, hide_possible_values = true,
          value_parser = super::completions::Hinted { hints: runtime_names, parse: |s| Ok(s.to_string()) })]
    pub runtime: Option<String>,
    /// The function's handler (default: the image's CMD).
    #[arg(long)]
    pub handler: Option<String>,
    /// Print the findings as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub rules: RuleArgs,
    /// The manifest whose [check] allow/deny apply (default: ./lambda-img.toml when present).
    #[arg(long, value_name = "PATH")]
    pub manifest: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The image: oci:DIR[:TAG], docker-archive:FILE or a registry reference.
    pub source: String,
    /// Another image: show which layers and config fields differ.
    #[arg(long, value_name = "OTHER")]
    pub diff: Option<String>,
    /// For an index: the child to show.
    #[arg(long, value_parser = parse_arch, default_value = "x86_64")]
    pub arch: Architecture,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Show the SBOM attached to the image (an OCI referrer): its packages, or with --json the document itself.
    #[arg(long, conflicts_with = "diff")]
    pub sbom: bool,
}

/// What shell completion offers for `--runtime`: the runtimes lambda-img knows.
fn runtime_names() -> Vec<&'static str> {
    static NAMES: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    NAMES
        .get_or_init(|| {
            crate::manifest::Runtime::known_names()
                .into_iter()
                .map(|n| &*Box::leak(n.into_boxed_str()))
                .collect()
        })
        .clone()
}

pub fn parse_arch(s: &str) -> Result<Architecture, String> {
    Architecture::parse(s).ok_or_else(|| format!("unknown architecture {s:?}: use x86_64 or arm64"))
}

pub fn run_check(global: &GlobalArgs, args: CheckArgs) -> anyhow::Result<()> {
    if args.list_rules {
        return super::explain::print_rules(args.json);
    }
    if let Some(id) = args.explain {
        return super::explain::run_explain(super::explain::ExplainArgs { rule: id });
    }
    let flags = args.rules.policy()?;
    // A project's [check] applies to `check` run in it, as it does to `build`.
    let manifest = args.manifest.clone().or_else(|| {
        let default = std::path::PathBuf::from(crate::manifest::MANIFEST_FILE_NAME);
        default.is_file().then_some(default)
    });
    let rules = match &manifest {
        Some(path) => RulePolicy::merged(&crate::manifest::read_rule_policy(path)?, &flags),
        None => flags,
    };
    let reporter = global.reporter();
    let cache = global.cache()?;
    let source = args.source.expect("clap requires it");
    // ECR sign-in covers the `[registry] aws_auth` of the manifest in use;
    // explicit credentials are for the checked image's registry only.
    let signin = manifest
        .clone()
        .unwrap_or_else(|| crate::manifest::MANIFEST_FILE_NAME.into());
    let target =
        super::CredentialTarget::none("check", "the image is a local file or layout").with_image(&source);
    let source_options = global.source_options(true, &signin, &target)?;
    let options = CheckOptions {
        source,
        rules,
        arch: args.arch,
        runtime: args.runtime,
        handler: args.handler,
        limits: args.limits.limits(),
        // Checking any image is fine; only builds insist on pinned bases.
        source_options,
    };
    let outcome = check(&options, &cache, &reporter)?;
    if args.json {
        print_data(&serde_json::to_string_pretty(&outcome)?)?;
    } else {
        let mut text = format!("{}@{}\n", outcome.reference, outcome.manifest_digest);
        text.push_str(&render_findings(&outcome.findings));
        text.push_str(&summary(&outcome.findings));
        print_data(text.trim_end())?;
    }
    if has_errors(&outcome.findings) {
        return Err(ExitStatus(1).into());
    }
    Ok(())
}

pub fn run_inspect(global: &GlobalArgs, args: InspectArgs) -> anyhow::Result<()> {
    let reporter = global.reporter();
    let cache = global.cache()?;
    let target = super::CredentialTarget::none("inspect", "the images are local files or layouts")
        .with_image(&args.source)
        .with_image(args.diff.as_deref().unwrap_or_default());
    let manifest = std::path::Path::new(crate::manifest::MANIFEST_FILE_NAME);
    let options = global.source_options(true, manifest, &target)?;
    if args.sbom {
        return super::inspect_sbom::run(
            &args.source,
            args.arch,
            args.json,
            &options.registry,
            &cache,
            &reporter,
        );
    }
    let (summary, diff) = inspect(
        &args.source,
        args.diff.as_deref(),
        args.arch,
        &options,
        &cache,
        &reporter,
    )?;
    if args.json {
        let value = match &diff {
            Some(diff) => serde_json::json!({ "image": summary, "diff": diff }),
            None => serde_json::to_value(&summary)?,
        };
        print_data(&serde_json::to_string_pretty(&value)?)
    } else {
        match &diff {
            Some(diff) => print_data(render_diff(diff).trim_end()),
            None => print_data(render_table(&summary).trim_end()),
        }
    }
}
