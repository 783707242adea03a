//! The build plan: what to build on which base, in image order. Pure: no I/O.
//!
//! Layer order is the manifest's `[[layer]]`s as written (static to dynamic),
//! then the code layer last, so a code edit invalidates only the top layer.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::image::{Architecture, MediaFamily};
use crate::layer::{LayerInput, LayerSpec};
use crate::manifest::{FunctionModel, SourceKind, SourcePath};

/// The name of the code layer in reports and history.
pub const CODE_LAYER: &str = "code";

/// Directories excluded from the code layer at any depth: version control
/// metadata and Python's bytecode caches (host-specific, rebuilt at run time).
pub const DEFAULT_EXCLUDED_ANYWHERE: &[&str] = &[".git", ".hg", ".svn", "__pycache__"];

/// Directories excluded from the code layer at the root of each code source:
/// lambda-img's own working directory and a local virtualenv (host binaries;
/// dependencies belong in their own layer).
pub const DEFAULT_EXCLUDED_AT_ROOT: &[&str] = &[".lambda-img", ".venv"];

/// Changes to the base image's config.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigEdit {
    /// `None` keeps the base's.
    pub entrypoint: Option<Vec<String>>,
    /// `None` keeps the base's; `Some(vec![])` clears it.
    pub cmd: Option<Vec<String>>,
    pub workdir: Option<String>,
    /// Set over the base's env in this order; the manifest wins on a clash.
    pub env: Vec<(String, String)>,
    /// Added over the base's labels.
    pub labels: BTreeMap<String, String>,
}

/// Everything the build needs from the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildPlan {
    /// The base reference; a relative path in `oci:` or `docker-archive:` is
    /// made absolute against the manifest's directory.
    pub base: String,
    pub arch: Architecture,
    /// New layers in image order: user layers, then `code` (when it has sources).
    pub layers: Vec<LayerSpec>,
    pub config: ConfigEdit,
    /// `None`: the base's family (OCI for scratch).
    pub format: Option<MediaFamily>,
}

/// Turns a validated model into a plan.
pub fn plan(model: &FunctionModel) -> BuildPlan {
    let mut layers: Vec<LayerSpec> = model
        .layers
        .iter()
        .map(|l| LayerSpec {
            name: l.name.clone(),
            inputs: l
                .sources
                .iter()
                .map(|s| LayerInput {
                    source: s.path.clone(),
                    destination: destination_for(s, &l.destination, l.sources.len()),
                    include: l.include.clone(),
                    exclude: l.exclude.clone(),
                    ignore_file: None,
                    file_mode: l.mode,
                })
                .collect(),
        })
        .collect();

    let code = &model.code;
    if !code.sources.is_empty() {
        let manifest = model
            .project_dir
            .join(model.manifest_path.file_name().unwrap_or_default());
        let inputs = code
            .sources
            .iter()
            .map(|s| {
                let mut exclude = code.exclude.clone();
                if code.default_excludes && s.kind == SourceKind::Dir {
                    exclude.extend(default_excludes(&s.path, &manifest));
                }
                LayerInput {
                    source: s.path.clone(),
                    destination: destination_for(s, &code.destination, code.sources.len()),
                    include: code.include.clone(),
                    exclude,
                    ignore_file: code.ignore_file.clone(),
                    file_mode: None,
                }
            })
            .collect();
        layers.push(LayerSpec {
            name: CODE_LAYER.to_string(),
            inputs,
        });
    }

    let image = &model.image;
    BuildPlan {
        base: resolve_local_base(&model.base, &model.project_dir),
        arch: model.architecture,
        layers,
        config: ConfigEdit {
            entrypoint: image.entrypoint.clone(),
            cmd: image
                .cmd
                .clone()
                .or_else(|| model.handler.clone().map(|h| vec![h])),
            workdir: image.workdir.clone(),
            env: image.env.clone(),
            labels: image.labels.clone(),
        },
        format: image.format,
    }
}

impl BuildPlan {
    /// Leaves `outputs` (absolute paths of files or directories this run
    /// writes) out of every layer whose source directory holds them, so a
    /// build never packs its own earlier output.
    pub fn exclude_outputs(&mut self, outputs: &[PathBuf]) {
        for input in self.layers.iter_mut().flat_map(|l| l.inputs.iter_mut()) {
            for out in outputs {
                if let Some(rel) = relative_glob(&input.source, out) {
                    input.exclude.push(format!("{rel}/**"));
                    input.exclude.push(rel);
                }
            }
        }
    }
}

/// A file source among several goes inside the destination directory; a lone
/// file source is written at the destination unless it ends with `/`.
fn destination_for(source: &SourcePath, destination: &str, count: usize) -> String {
    if source.kind == SourceKind::File && count > 1 && !destination.ends_with('/') {
        format!("{destination}/")
    } else {
        destination.to_string()
    }
}

/// The code layer's default excludes for source directory `dir`.
fn default_excludes(dir: &Path, manifest: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for name in DEFAULT_EXCLUDED_ANYWHERE {
        out.push(format!("**/{name}"));
        out.push(format!("**/{name}/**"));
    }
    for name in DEFAULT_EXCLUDED_AT_ROOT {
        out.push((*name).to_string());
        out.push(format!("{name}/**"));
    }
    out.extend(relative_glob(dir, manifest));
    out
}

/// `path` relative to `dir` as an escaped glob, when `path` lies below `dir`.
fn relative_glob(dir: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(dir).ok()?;
    let rel = rel.to_str()?;
    (!rel.is_empty()).then(|| globset::escape(rel))
}

/// Makes the path of an `oci:` or `docker-archive:` reference absolute. The
/// path runs to the first `:` or `@` (skopeo's rule, plus our `@sha256:` pin).
fn resolve_local_base(base: &str, project_dir: &Path) -> String {
    for prefix in ["oci:", "docker-archive:"] {
        if let Some(rest) = base.strip_prefix(prefix) {
            let end = rest.find([':', '@']).unwrap_or(rest.len());
            let (path, tail) = rest.split_at(end);
            if Path::new(path).is_absolute() {
                return base.to_string();
            }
            return format!("{prefix}{}{tail}", project_dir.join(path).display());
        }
    }
    base.to_string()
}

#[cfg(test)]
mod tests {}
