//! `build --recursive`: every function of a monorepo built in turn with one
//! shared cache, as after `pin --recursive` moved their bases. Each output
//! names its function with `{function}` (`registry:ECR/{function}:TAG`), so
//! one command line serves every function. One function's failure does not
//! stop the others; the caller reports each.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::build::{BuildError, BuildOptions, BuildOutcome, build};
use crate::cache::Cache;
use crate::report::Reporter;

/// Replaced in each `--output` by the function's name.
pub const FUNCTION_PLACEHOLDER: &str = "{function}";

#[derive(Debug, thiserror::Error)]
pub enum BuildAllError {
    #[error(
        "--output {output} would be written by every function: put {FUNCTION_PLACEHOLDER} in it (e.g. registry:REGISTRY/{FUNCTION_PLACEHOLDER}:TAG)"
    )]
    SharedOutput { output: String },
    #[error("{first} and {second} both name their function {name:?}: their outputs would collide")]
    SameName {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
}

/// One function's build.
#[derive(Debug)]
pub struct FunctionBuild {
    pub manifest: PathBuf,
    /// `None` when the manifest could not be read.
    pub function: Option<String>,
    pub result: Result<BuildOutcome, BuildError>,
}

/// Builds every manifest with `template`'s settings, `{function}` in its
/// outputs replaced. Every output is checked before the first build starts.
pub fn build_all(
    manifests: &[PathBuf],
    template: &BuildOptions,
    cache: &Cache,
    reporter: &dyn Reporter,
) -> Result<Vec<FunctionBuild>, BuildAllError> {
    if manifests.len() > 1
        && let Some(output) = template
            .outputs
            .iter()
            .find(|o| !o.contains(FUNCTION_PLACEHOLDER))
    {
        return Err(BuildAllError::SharedOutput {
            output: output.clone(),
        });
    }
    // A manifest that does not load is built anyway: its build fails first
    // thing, with the manifest's own error.
    let names: Vec<Option<String>> = manifests
        .iter()
        .map(|m| crate::manifest::load(m).ok().map(|model| model.name))
        .collect();
    let mut seen: BTreeMap<&str, &PathBuf> = BTreeMap::new();
    for (name, manifest) in names.iter().zip(manifests) {
        if let Some(name) = name
            && let Some(first) = seen.insert(name, manifest)
        {
            return Err(BuildAllError::SameName {
                name: name.clone(),
                first: first.clone(),
                second: manifest.clone(),
            });
        }
    }
    Ok(names
        .into_iter()
        .zip(manifests)
        .map(|(function, manifest)| {
            let name = function.as_deref().unwrap_or("unnamed");
            reporter.step(&format!("building {name} ({})", manifest.display()));
            let options = BuildOptions {
                manifest_path: manifest.clone(),
                outputs: template
                    .outputs
                    .iter()
                    .map(|o| o.replace(FUNCTION_PLACEHOLDER, name))
                    .collect(),
                ..template.clone()
            };
            FunctionBuild {
                manifest: manifest.clone(),
                result: build(&options, cache, reporter),
                function,
            }
        })
        .collect())
}
