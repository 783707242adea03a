//! A build's settings, resolved once before any work: flags (highest),
//! `LAMBDA_IMG_*` environment variables (clap reads them when a flag is
//! absent) and lambda-img.toml (lowest, read once) merged into one
//! [`BuildSettings`] value (by `build::resolve`). `build` runs from it;
//! `build --print-settings` prints it. Credentials are never printed: only
//! whether a username was given.
//!
//! This module uses no other command's module (`build` and `deploy` use it),
//! so the commands' modules form no cycle.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::build::BuildOptions;
use crate::layer::DEFAULT_MTIME;
use crate::manifest::{DeploySettings, FunctionModel, ManifestError};

/// lambda-img.toml, read from disk once: what `deploy` reads of it and the
/// validated model the build runs from.
#[derive(Debug, Clone)]
pub struct Project {
    pub deploy: DeploySettings,
    pub model: FunctionModel,
}

impl Project {
    /// Reads `path` once. A missing, unreadable or non-UTF-8 file is said
    /// plainly (a missing one suggests `lambda-img init`); the deploy
    /// settings are checked before the build tables, as `deploy` checks them.
    pub fn read(path: &Path) -> anyhow::Result<Project> {
        let text = read_manifest_text(path)?;
        let deploy = crate::manifest::deploy_settings_of(&text, path)?;
        let model = crate::manifest::load_text(&text, path)?;
        Ok(Project { deploy, model })
    }
}

/// Why the manifest file cannot be read, said before the build starts.
#[derive(Debug, thiserror::Error)]
pub enum ManifestFileError {
    #[error(
        "no lambda-img.toml here ({dir}): run `lambda-img init` to write one, or pass -C DIR or --manifest PATH"
    )]
    Missing { dir: String },
    #[error("{path} is not UTF-8 text (invalid byte at offset {offset}): save it as UTF-8")]
    NotUtf8 { path: String, offset: usize },
    #[error("cannot read {path}: permission denied; make it readable (chmod u+r {path}) or run as its owner")]
    Permission { path: String },
}

/// The manifest's text, or why it cannot be read.
fn read_manifest_text(path: &Path) -> anyhow::Result<String> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && path.ends_with(crate::manifest::MANIFEST_FILE_NAME) =>
        {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
            return Err(ManifestFileError::Missing {
                dir: dir.display().to_string(),
            }
            .into());
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(ManifestFileError::Permission {
                path: path.display().to_string(),
            }
            .into());
        }
        Err(source) => {
            return Err(ManifestError::Read {
                path: path.to_path_buf(),
                source,
            }
            .into());
        }
    };
    String::from_utf8(bytes).map_err(|e| {
        ManifestFileError::NotUtf8 {
            path: path.display().to_string(),
            offset: e.utf8_error().valid_up_to(),
        }
        .into()
    })
}

/// Where `--deploy` goes: the flags over `[deploy]` (the function may stay
/// unknown until a deploy needs it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeployTarget {
    pub function: Option<String>,
    pub region: Option<String>,
    pub publish: bool,
    pub alias: Option<String>,
}

/// Everything `build` uses, resolved once.
#[derive(Debug)]
pub struct BuildSettings {
    /// What the build operation is given (the template of every function
    /// with `--recursive`).
    pub options: BuildOptions,
    /// lambda-img.toml; `None` with `--recursive`, where each function's
    /// manifest is read when its turn comes.
    pub project: Option<Project>,
    /// `--deploy`, and its target.
    pub deploy: bool,
    pub target: DeployTarget,
    pub create_repository: bool,
    /// Hosts that ECR sign-in covers besides ECR's own: `--aws-auth` and
    /// `[registry] aws_auth`.
    pub signin_hosts: Vec<String>,
    pub cache_dir: PathBuf,
    pub metadata_file: Option<PathBuf>,
    /// `--cache-registry` / LAMBDA_IMG_CACHE_REGISTRY (opened by the build
    /// itself, after --print-settings) and `--cache-registry-readonly`.
    pub cache_registry: Option<String>,
    pub cache_registry_readonly: bool,
    /// `--output` as given; `options` holds them parsed for one function
    /// (`{function}` as written), `build --recursive` each function's own.
    pub outputs: Vec<crate::reference::OutputTemplate>,
}

/// `--cache-registry` (or LAMBDA_IMG_CACHE_REGISTRY) over `[cache] registry`;
/// `--cache-registry-readonly` makes either read-only, `[cache] readonly` its own.
fn cache_registry_settings(settings: &BuildSettings, cache: &crate::manifest::CacheSettings) -> Value {
    let given = settings.cache_registry.clone().filter(|r| !r.is_empty());
    let readonly = settings.cache_registry_readonly || (given.is_none() && cache.readonly);
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

/// `build --print-settings`: the resolved settings as JSON on stdout.
pub fn print(settings: &BuildSettings) -> anyhow::Result<()> {
    super::print_data(&serde_json::to_string_pretty(&to_json(settings)?)?)
}

fn to_json(settings: &BuildSettings) -> anyhow::Result<Value> {
    let options = &settings.options;
    let project = settings
        .project
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("--print-settings needs the manifest it describes"))?;
    let mut model = project.model.clone();
    if let Some(arch) = options.arch {
        model.architecture = arch;
    }
    // What the manifest gives the build, with the flags set over it as `build` does.
    let plan = crate::plan::plan(&model);
    let manifest_path =
        std::path::absolute(&options.manifest_path).unwrap_or_else(|_| options.manifest_path.clone());
    let (format, format_from) = match (options.format, plan.format) {
        (Some(f), _) => (Some(f), "flag or LAMBDA_IMG_FORMAT"),
        (None, Some(f)) => (Some(f), "lambda-img.toml image.format"),
        (None, None) => (None, "the base image's media types (OCI for scratch)"),
    };
    let mut labels = plan.config.labels.clone();
    for (k, v) in &options.labels {
        labels.insert(k.clone(), v.clone());
    }
    let limits = &options.limits;
    let registry = &options.sink_options.registry;
    let deploy = &settings.target;
    Ok(json!({
        "manifest": manifest_path.display().to_string(),
        "function": model.name,
        "architecture": plan.arch.lambda_name(),
        "base": plan.base,
        "outputs": settings.outputs,
        "format": format,
        "format_from": format_from,
        "labels": labels,
        "limits": {
            "max_uncompressed_size": limits.max_uncompressed,
            "max_manifest_size": limits.max_manifest_bytes,
            "layer_warning": limits.layer_warning,
            "layer_error": limits.layer_error,
        },
        "gzip_level": options.gzip_level,
        "install_timeout_seconds": options.install_timeout.as_secs(),
        "jobs": options.threads,
        "source_date_epoch": options.source_date_epoch.unwrap_or(DEFAULT_MTIME),
        "allow_unpinned": options.source_options.allow_unpinned,
        "cache_dir": settings.cache_dir.display().to_string(),
        "insecure_registries": registry.insecure,
        "registry_mirrors": registry.mirrors.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "metadata_file": settings.metadata_file,
        "username_given": registry.credentials.is_some(),
        "credentials_host": registry.credentials.as_ref().map(|c| c.host()),
        "registry_timeout_seconds": registry.deadline.as_secs(),
        "deploy": {
            "enabled": settings.deploy,
            "function": deploy.function,
            "region": deploy.region,
            "publish": deploy.publish || deploy.alias.is_some(),
            "alias": deploy.alias,
            "create_repository": settings.create_repository,
            "aws_auth": settings.signin_hosts,
        },
        "cache_registry": cache_registry_settings(settings, &project.model.cache),
    }))
}
