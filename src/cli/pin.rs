//! `lambda-img pin`.

use std::path::PathBuf;

use clap::Args;

use super::{ExitStatus, GlobalArgs, print_data};
use crate::pin::pin_base;
use crate::repin::{PinStatus, render_table, repin};

/// The exit status of `pin --check` when some base lags its tag.
pub const EXIT_LAGS: u8 = 3;

#[derive(Debug, Args)]
pub struct PinArgs {
    /// The function manifest whose `[base] image` is pinned.
    #[arg(long, value_name = "PATH", default_value = "lambda-img.toml")]
    pub manifest: PathBuf,
    /// The architecture whose image the tag must have, over `function.architecture`.
    #[arg(long, value_parser = super::check::parse_arch, env = "LAMBDA_IMG_ARCH")]
    pub arch: Option<crate::image::Architecture>,
    /// Pin every lambda-img.toml under DIR... (default `.`; .git, node_modules,
    /// target, .lambda-img and caches are skipped). Each base tag is resolved once.
    #[arg(short, long, conflicts_with = "manifest")]
    pub recursive: bool,
    /// Write nothing; exit 3 when a base lags its tag, 0 when none does, 1 on errors.
    #[arg(long)]
    pub check: bool,
    /// Print the report as JSON on stdout (the table still goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Directories searched with --recursive.
    #[arg(value_name = "DIR", requires = "recursive")]
    pub dirs: Vec<PathBuf>,
}

pub fn run(global: &GlobalArgs, args: PinArgs) -> anyhow::Result<()> {
    let reporter = global.reporter();
    if args.recursive || args.check || args.json {
        return run_many(global, &args, &reporter);
    }
    // The architecture decides which child of an index must exist.
    let arch = match args.arch {
        Some(arch) => arch,
        None => crate::manifest::read_architecture(&args.manifest)?,
    };
    let target = super::CredentialTarget::of_bases("pin", &[args.manifest.as_path()]);
    let registry = global.registry_options_in(&args.manifest, &target)?;
    let outcome = pin_base(&args.manifest, arch, &registry, &reporter)?;
    if outcome.changed {
        crate::report::Reporter::step(
            &reporter,
            &format!(
                "{}: base {} → {}",
                args.manifest.display(),
                outcome.before,
                outcome.after
            ),
        );
    } else {
        crate::report::Reporter::step(
            &reporter,
            &format!("{}: base already pinned", args.manifest.display()),
        );
    }
    print_data(&outcome.after)
}

/// The report form: the table on stderr, JSON or the moved manifests on stdout.
fn run_many(
    global: &GlobalArgs,
    args: &PinArgs,
    reporter: &crate::report::progress::StderrReporter,
) -> anyhow::Result<()> {
    let manifests = if args.recursive {
        crate::discover::find_manifests(&args.dirs)?
    } else {
        vec![args.manifest.clone()]
    };
    let paths: Vec<&std::path::Path> = manifests.iter().map(PathBuf::as_path).collect();
    let target = super::CredentialTarget::of_bases("pin", &paths);
    let registry = registry_options_of_all(global, &paths, &target)?;
    let report = repin(&manifests, args.check, args.arch, &registry, reporter);
    // The table is the command's answer, so it is shown even under --quiet.
    eprintln!("{}", render_table(&report));
    if args.json {
        print_data(&serde_json::to_string_pretty(&report)?)?;
    } else {
        let moved: Vec<String> = report
            .functions
            .iter()
            .filter(|r| r.status == PinStatus::Moved)
            .map(|r| r.manifest.display().to_string())
            .collect();
        if !moved.is_empty() {
            print_data(&moved.join("\n"))?;
        }
    }
    if report.count(PinStatus::Failed) > 0 {
        return Err(ExitStatus(1).into());
    }
    if args.check && report.count(PinStatus::Moved) > 0 {
        return Err(ExitStatus(EXIT_LAGS).into());
    }
    Ok(())
}

/// Registry settings for pinning `manifests` together: ECR sign-in covers
/// the `[registry] aws_auth` hosts of every one of them (each manifest's
/// own, not ./lambda-img.toml's), as a build of each would.
fn registry_options_of_all(
    global: &GlobalArgs,
    manifests: &[&std::path::Path],
    target: &super::CredentialTarget,
) -> anyhow::Result<crate::registry::RegistryOptions> {
    let mut union = crate::manifest::DeploySettings::default();
    for path in manifests {
        // A broken manifest is reported in its own row of the table.
        if let Ok(Some(settings)) = crate::manifest::read_deploy_settings(path) {
            union.aws_auth.extend(settings.aws_auth);
        }
    }
    global.registry_options_for(Some(&union), None, target)
}
