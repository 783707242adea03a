//! `lambda-img plan`.

use std::path::{Path, PathBuf};

use clap::Args;

use super::{GlobalArgs, print_data};
use crate::layer::{DEFAULT_GZIP_LEVEL, DEFAULT_MTIME, LayerSettings};
use crate::plan_fleet::{BaseReader, keep_changed, matrix_json, plan_functions, render_table};
use crate::report::Reporter;

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Directories searched for lambda-img.toml files (default `.`; .git,
    /// node_modules, target, .lambda-img and caches are skipped).
    #[arg(value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// Print the plan as JSON on stdout, `{"include": [...]}`: a GitHub Actions
    /// matrix whose entries are CodeBuild build-list tasks too (the table still goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Keep only the functions whose inputs changed since this git revision
    /// (sources, dependency files, the manifest, a base re-pin; uncommitted
    /// and untracked files count).
    #[arg(long, value_name = "GIT_REV")]
    pub changed_since: Option<String>,
    /// gzip level the builds will use (part of each layer's key), as `build --gzip-level`.
    #[arg(long, default_value_t = DEFAULT_GZIP_LEVEL, env = "LAMBDA_IMG_GZIP_LEVEL",
          value_parser = clap::value_parser!(u32).range(1..=9))]
    pub gzip_level: u32,
    /// Time the builds will write on files (part of each layer's key), as `build --source-date-epoch`.
    #[arg(long, env = "SOURCE_DATE_EPOCH", value_name = "SECONDS")]
    pub source_date_epoch: Option<u64>,
    /// Hashing threads (default: all cores). The keys do not depend on it.
    #[arg(short, long, env = "LAMBDA_IMG_JOBS")]
    pub jobs: Option<usize>,
}

pub fn run(global: &GlobalArgs, args: PlanArgs) -> anyhow::Result<()> {
    let reporter = global.reporter();
    let manifests = crate::discover::find_manifests(&args.dirs)?;
    // Ask git first: a bad revision should not cost hashing every function.
    let changed = match &args.changed_since {
        Some(rev) => {
            let at = args.dirs.first().map_or(Path::new("."), PathBuf::as_path);
            Some(crate::git_changes::changed_since(at, rev)?)
        }
        None => None,
    };
    let settings = LayerSettings {
        mtime: args.source_date_epoch.unwrap_or(DEFAULT_MTIME),
        gzip_level: args.gzip_level,
        threads: args
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
            .max(1),
        ..LayerSettings::default()
    };
    let cache = global.cache()?;
    reporter.step(&format!("planning {} function(s)", manifests.len()));
    // `plan` takes no explicit credentials (see credential_scope::refuse_unused).
    let no_credentials = super::CredentialTarget::none("plan", "it builds and pushes nothing");
    let source_options = global.source_options(
        true,
        Path::new(crate::manifest::MANIFEST_FILE_NAME),
        &no_credentials,
    )?;
    let bases = BaseReader::new(source_options, &reporter);
    let mut plans = plan_functions(&manifests, &settings, &bases, &cache)?;
    if let (Some(changed), Some(rev)) = (&changed, &args.changed_since) {
        let all = plans.len();
        plans = keep_changed(plans, changed, Path::new("."));
        reporter.step(&format!(
            "{} of {all} function(s) changed since {rev} ({} changed path(s) in the work tree)",
            plans.len(),
            changed.len()
        ));
    }
    // The table is for people; stdout carries the data.
    if !plans.is_empty() && !global.quiet {
        eprintln!("{}", render_table(&plans));
    }
    if args.json {
        return print_data(&serde_json::to_string(&matrix_json(&plans))?);
    }
    for p in &plans {
        print_data(&p.directory.display().to_string())?;
    }
    Ok(())
}
