//! `lambda-img build --print-settings`: the settings a build would use, after
//! flags (highest), `LAMBDA_IMG_*` environment variables (clap reads them when
//! a flag is absent) and lambda-img.toml (lowest) are merged. Credentials are
//! never printed: only whether a username was given.

use serde_json::{Value, json};

use super::build::BuildArgs;
use super::{GlobalArgs, print_data};
use crate::cache::Cache;
use crate::layer::DEFAULT_MTIME;

/// `--cache-registry` (or LAMBDA_IMG_CACHE_REGISTRY) over `[cache] registry`;
/// `--cache-registry-readonly` makes either read-only, `[cache] readonly` its own.
fn cache_registry_settings(args: &BuildArgs, cache: &crate::manifest::CacheSettings) -> Value {
    let given = args.cache_registry.clone().filter(|r| !r.is_empty());
    let readonly = args.cache_registry_readonly || (given.is_none() && cache.readonly);
    let from = match (&given, &cache.registry) {
        (Some(_), _) => Some("flag or LAMBDA_IMG_CACHE_REGISTRY"),
        (None, Some(_)) => Some("lambda-img.toml cache.registry"),
        (None, None) => None,
    };
    json!({
        "registry": given.or_else(|| cache.registry.clone()),
        "registry_from": from,
        "readonly": readonly,
    })
}

pub fn print(global: &GlobalArgs, args: &BuildArgs) -> anyhow::Result<()> {
    // Resolved like a build's: the flags are checked and a password given on
    // stdin is read (then dropped), so scripts see the same behaviour.
    let registry = global.registry_options()?;
    let mut model = crate::manifest::load(&args.manifest)?;
    if let Some(arch) = args.arch {
        model.architecture = arch;
    }
    let plan = crate::plan::plan(&model);
    let manifest_path = std::path::absolute(&args.manifest).unwrap_or_else(|_| args.manifest.clone());

    // The same merge `build` does: flag/env over the manifest, then the base's family.
    let (format, format_from) = match (args.format, plan.format) {
        (Some(f), _) => (Some(f.family()), "flag or LAMBDA_IMG_FORMAT"),
        (None, Some(f)) => (Some(f), "lambda-img.toml image.format"),
        (None, None) => (None, "the base image's media types (OCI for scratch)"),
    };
    let mut labels = plan.config.labels.clone();
    for (k, v) in &args.labels {
        labels.insert(k.clone(), v.clone());
    }
    let limits = args.limits.limits();
    let cache_dir = global.cache_dir.clone().unwrap_or_else(Cache::default_root);

    let settings: Value = json!({
        "manifest": manifest_path.display().to_string(),
        "function": model.name,
        "architecture": plan.arch.lambda_name(),
        "base": plan.base,
        "outputs": args.outputs,
        "format": format,
        "format_from": format_from,
        "labels": labels,
        "limits": {
            "max_uncompressed_size": limits.max_uncompressed,
            "max_manifest_size": limits.max_manifest_bytes,
            "layer_warning": limits.layer_warning,
            "layer_error": limits.layer_error,
        },
        "gzip_level": args.gzip_level,
        "install_timeout_seconds": args.install_timeout,
        "jobs": args.threads(),
        "source_date_epoch": args.source_date_epoch.unwrap_or(DEFAULT_MTIME),
        "allow_unpinned": args.allow_unpinned,
        "cache_dir": cache_dir.display().to_string(),
        "insecure_registries": global.insecure_registries,
        "registry_mirrors": global.registry_mirrors.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "metadata_file": args.metadata_file,
        "username_given": registry.credentials.is_some(),
        "registry_timeout_seconds": global.registry_timeout,
    });
    let mut settings = settings;
    settings["deploy"] = super::deploy::print_settings(global, &args.aws, &args.manifest)?;
    settings["cache_registry"] = cache_registry_settings(args, &model.cache);
    print_data(&serde_json::to_string_pretty(&settings)?)
}
