//! `lambda-img plan`: every function of a monorepo with the input key of each
//! of its layers, and which of them a set of changed files touches, for CI
//! matrices (GitHub Actions `fromJSON`, CodeBuild `batch: build-list`).
//!
//! The keys are the build's own: each layer's file selection hashed by
//! `layer::keyed_selection` (the `layers-v1` record name) and the dependency
//! set's key from `deps::dependency_key` (the `deps-v1` record name). Nothing
//! is installed, compressed or fetched: a plan of hundreds of functions reads
//! their files once (later plans and builds skip unchanged files through the
//! cache's stat index).
//!
//! A changed path touches a function when it is the function's manifest (a
//! base re-pin rewrites it), one of its dependency files, a file one of its
//! layers selects, a path under a layer source that no longer exists (a
//! deleted file), or anything under a local base (`oci:DIR`).

mod system_key;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::cache::Cache;
use crate::layer::LayerSettings;
use crate::layer::select::EntryKind;
use crate::plan::LayerKind;

pub use system_key::{BaseReader, BaseUnread};

/// One function of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct FunctionPlan {
    /// `[function] name`.
    pub name: String,
    /// The manifest as found (relative to where the search started when the
    /// directories were given relative).
    pub manifest: PathBuf,
    /// The manifest's directory, in the same form (`-C` it to build).
    pub directory: PathBuf,
    pub architecture: String,
    pub runtime: String,
    /// `[base] image` exactly as written.
    pub base: String,
    /// New layers in image order (`system`, user layers, dependencies, code).
    pub layers: Vec<LayerKey>,
    /// With `--changed-since`: the changed paths that are this function's
    /// inputs (relative to the directory the plan ran in, where they are under it).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<PathBuf>,
    #[serde(skip)]
    inputs: FunctionInputs,
}

/// A layer and its input key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerKey {
    pub name: String,
    pub key: String,
}

/// What a function is made from, as absolute canonical paths.
#[derive(Debug, Clone, Default)]
struct FunctionInputs {
    manifest: PathBuf,
    project_dir: PathBuf,
    /// Layer sources (directories or files) whose selected files are `selected`.
    roots: Vec<PathBuf>,
    selected: BTreeSet<PathBuf>,
    /// Files that are inputs as a whole: dependency files, ignore files.
    files: BTreeSet<PathBuf>,
    /// A local base: anything under it is an input.
    base: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Manifest(#[from] crate::manifest::ManifestError),
    #[error("{manifest}: layer {layer}: {source}")]
    Layer {
        manifest: PathBuf,
        layer: String,
        source: crate::layer::LayerError,
    },
    #[error("{manifest}: dependencies: {source}")]
    Deps {
        manifest: PathBuf,
        source: Box<crate::deps::DepsError>,
    },
    #[error(transparent)]
    Base(#[from] BaseUnread),
}

/// The plan of each manifest, in the order given. `settings` must be the
/// build's (SOURCE_DATE_EPOCH, gzip level) for the keys to be the build's.
pub fn plan_functions(
    manifests: &[PathBuf],
    settings: &LayerSettings,
    bases: &BaseReader,
    cache: &Cache,
) -> Result<Vec<FunctionPlan>, PlanError> {
    manifests
        .iter()
        .map(|m| plan_function(m, settings, bases, cache))
        .collect()
}

fn plan_function(
    manifest: &Path,
    settings: &LayerSettings,
    bases: &BaseReader,
    cache: &Cache,
) -> Result<FunctionPlan, PlanError> {
    let model = crate::manifest::load(manifest)?;
    let plan = crate::plan::plan(&model);
    let mut inputs = FunctionInputs {
        manifest: canonical(manifest),
        project_dir: model.project_dir.clone(),
        base: plan.local_base().map(|p| canonical(&p)),
        ..Default::default()
    };
    let dependencies =
        crate::deps::dependency_key(&model, settings, cache).map_err(|source| PlanError::Deps {
            manifest: manifest.to_path_buf(),
            source: Box::new(source),
        })?;
    let mut layers = Vec::new();
    for planned in &plan.layers {
        let spec = match planned.kind {
            LayerKind::Base => {
                layers.extend(bases.system_key(manifest, &plan, model.base_repair, settings, cache)?);
                continue;
            }
            LayerKind::Dependencies => {
                if let Some(d) = &dependencies {
                    layers.push(LayerKey {
                        name: d.layer.clone(),
                        key: d.key.clone(),
                    });
                }
                continue;
            }
            LayerKind::User | LayerKind::Code => planned.spec.as_ref().expect("a files layer has a spec"),
        };
        let keyed =
            crate::layer::keyed_selection(spec, settings, cache).map_err(|source| PlanError::Layer {
                manifest: manifest.to_path_buf(),
                layer: spec.name.clone(),
                source,
            })?;
        for input in &spec.inputs {
            inputs.roots.push(canonical(&input.source));
            inputs.files.extend(input.ignore_file.as_deref().map(canonical));
        }
        inputs
            .selected
            .extend(keyed.entries.iter().filter_map(|e| match e.kind {
                EntryKind::File { source, .. } => Some(canonical(&source.path())),
                _ => None,
            }));
        layers.push(LayerKey {
            name: spec.name.clone(),
            key: keyed.key,
        });
    }
    if let Some(d) = dependencies {
        inputs.files.extend(d.files.iter().map(|p| canonical(p)));
        inputs.selected.extend(d.selected.iter().map(|p| canonical(p)));
        inputs.roots.extend(d.files.iter().map(|p| canonical(p)));
    }
    Ok(FunctionPlan {
        name: model.name.clone(),
        directory: manifest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf(),
        manifest: manifest.to_path_buf(),
        architecture: model.architecture.to_string(),
        runtime: model.runtime.to_string(),
        base: model.base.clone(),
        layers,
        changed: Vec::new(),
        inputs,
    })
}

/// The functions that `changed` (absolute, canonical paths) touches, each
/// with the paths that touched it, shown relative to `cwd` where they are under it.
pub fn keep_changed(plans: Vec<FunctionPlan>, changed: &[PathBuf], cwd: &Path) -> Vec<FunctionPlan> {
    let cwd = canonical(cwd);
    plans
        .into_iter()
        .filter_map(|mut p| {
            let touched: Vec<PathBuf> = p
                .touched_by(changed)
                .into_iter()
                .map(|t| t.strip_prefix(&cwd).unwrap_or(t).to_path_buf())
                .collect();
            if touched.is_empty() {
                return None;
            }
            p.changed = touched;
            Some(p)
        })
        .collect()
}

/// The human table (stderr): function, architecture, manifest, each layer's
/// key (short), and with `--changed-since` what changed.
pub fn render_table(plans: &[FunctionPlan]) -> String {
    let with_changes = plans.iter().any(|p| !p.changed.is_empty());
    let mut header = vec!["function", "arch", "manifest", "layer keys"];
    if with_changes {
        header.push("changed");
    }
    let mut rows: Vec<Vec<String>> = vec![header.into_iter().map(String::from).collect()];
    for p in plans {
        let layers: Vec<String> = p
            .layers
            .iter()
            .map(|l| format!("{}={}", l.name, &l.key[..l.key.len().min(12)]))
            .collect();
        let mut row = vec![
            p.name.clone(),
            p.architecture.clone(),
            p.manifest.display().to_string(),
            layers.join(" "),
        ];
        if with_changes {
            row.push(match p.changed.as_slice() {
                [] => "-".to_string(),
                [one] => one.display().to_string(),
                [first, rest @ ..] => format!("{} (+{} more)", first.display(), rest.len()),
            });
        }
        rows.push(row);
    }
    let mut widths = vec![0; rows[0].len()];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    rows.iter()
        .map(|row| {
            let padded: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
            padded.join("  ").trim_end().to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl FunctionPlan {
    /// The paths of `changed` (absolute, canonical) that are inputs of this function.
    pub fn touched_by<'a>(&self, changed: &'a [PathBuf]) -> Vec<&'a Path> {
        changed
            .iter()
            .map(PathBuf::as_path)
            .filter(|p| self.is_input(p))
            .collect()
    }

    fn is_input(&self, path: &Path) -> bool {
        let i = &self.inputs;
        if path == i.manifest || i.files.contains(path) || i.selected.contains(path) {
            return true;
        }
        if i.base.as_deref().is_some_and(|b| path.starts_with(b)) {
            return true;
        }
        // A dependency file added or deleted beside the manifest changes
        // whether the function has a dependency layer at all.
        let default_dependency_file = path.parent() == Some(i.project_dir.as_path())
            && path.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                [
                    crate::manifest::DEFAULT_REQUIREMENTS,
                    crate::manifest::DEFAULT_PACKAGE_JSON,
                    crate::manifest::DEFAULT_PACKAGE_LOCK,
                ]
                .contains(&n)
            });
        if default_dependency_file {
            return true;
        }
        // Under a layer source but not selected: a deleted file was an input
        // (its absence changes the layer); a symbolic link is one (the
        // selection keeps links by image path, not source path, so a link
        // left out by the rules is counted too: a spare build, never a missed
        // one); any other file is left out by the layer's include/exclude/ignore rules.
        let under_source = i.roots.iter().any(|r| path.starts_with(r));
        under_source && std::fs::symlink_metadata(path).map_or(true, |m| m.file_type().is_symlink())
    }
}

/// The plan as JSON for CI: `{"include": [...]}`, one entry per function,
/// is a GitHub Actions matrix as it stands (`matrix: ${{ fromJSON(...) }}`;
/// any other top-level key would become a matrix dimension), and each entry
/// is also a CodeBuild `batch: build-list` task: an `identifier` CodeBuild
/// accepts and `env.variables` naming the function (`jq '.include |
/// map({identifier, env})'` is the list).
pub fn matrix_json(plans: &[FunctionPlan]) -> serde_json::Value {
    let mut identifiers = BTreeSet::new();
    let include: Vec<serde_json::Value> = plans
        .iter()
        .map(|p| {
            let mut entry = serde_json::to_value(p).expect("a plan serializes");
            entry["identifier"] = unique_identifier(&p.name, &mut identifiers).into();
            // Names of our own, not LAMBDA_IMG_*: those are lambda-img's settings.
            entry["env"] = serde_json::json!({ "variables": {
                "FUNCTION": p.name,
                "FUNCTION_DIR": p.directory,
                "FUNCTION_MANIFEST": p.manifest,
                "FUNCTION_ARCH": p.architecture,
            }});
            entry
        })
        .collect();
    serde_json::json!({ "include": include })
}

/// A CodeBuild batch identifier (letters, digits, `_`; unique in the list).
fn unique_identifier(name: &str, taken: &mut BTreeSet<String>) -> String {
    let base: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let mut id = base.clone();
    let mut n = 2;
    while !taken.insert(id.clone()) {
        id = format!("{base}_{n}");
        n += 1;
    }
    id
}

fn canonical(path: &Path) -> PathBuf {
    path.canonicalize()
        .unwrap_or_else(|_| std::path::absolute(path).unwrap_or(path.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_paths_touch_a_function_through_its_inputs_only() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        let project = root.join("fn");
        std::fs::create_dir_all(project.join("src/__pycache__")).unwrap();
        std::fs::write(
            project.join("lambda-img.toml"),
            "[function]\nname = \"f\"\nruntime = \"python3.12\"\nhandler = \"app.handler\"\n\
             [base]\nimage = \"oci:base:latest\"\n[code]\nsources = [\"src\"]\n",
        )
        .unwrap();
        std::fs::write(project.join("src/app.py"), "def handler(e, c):\n    return 1\n").unwrap();
        std::fs::write(project.join("src/__pycache__/app.pyc"), "bytecode").unwrap();
        std::os::unix::fs::symlink("app.py", project.join("src/alias.py")).unwrap();
        std::fs::write(project.join("README.md"), "not an input").unwrap();
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(cache_dir.path()).unwrap();
        let bases = BaseReader::new(Default::default(), &crate::report::Silent);
        let plans = plan_functions(
            &[project.join("lambda-img.toml")],
            &LayerSettings::default(),
            &bases,
            &cache,
        )
        .unwrap();
        let names: Vec<&str> = plans[0].layers.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["code"]);
        let touches = |rel: &str| !plans[0].touched_by(&[project.join(rel)]).is_empty();
        for input in [
            "lambda-img.toml",
            "src/app.py",
            "src/alias.py",
            "src/deleted.py",
            "requirements.txt",
            "base/index.json",
        ] {
            assert!(touches(input), "{input} is an input");
        }
        for other in ["src/__pycache__/app.pyc", "README.md", "../elsewhere.py"] {
            assert!(!touches(other), "{other} is not an input");
        }
    }

    #[test]
    fn identifiers_are_codebuild_safe_and_unique() {
        let mut taken = BTreeSet::new();
        assert_eq!(unique_identifier("orders-api", &mut taken), "orders_api");
        assert_eq!(unique_identifier("orders_api", &mut taken), "orders_api_2");
        assert_eq!(unique_identifier("orders.api", &mut taken), "orders_api_3");
    }
}
