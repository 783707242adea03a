//! `build --recursive`: the build options of every function of a monorepo,
//! built in turn with one shared cache after `pin --recursive` moved their
//! bases. Each output names its function with `{function}`
//! (`registry:ECR/{function}:TAG`), so one command line serves every
//! function. The caller builds each (and deploys it, with `--deploy`); one
//! function's failure does not stop the others.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::build::BuildOptions;
pub use crate::reference::FUNCTION_PLACEHOLDER;
use crate::reference::{OutputRefError, OutputTemplate};

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

/// One function of the fleet, with its own build options.
#[derive(Debug, Clone)]
pub struct FleetMember {
    pub manifest: PathBuf,
    /// `None` when the manifest names none (its build then fails first
    /// thing, with the manifest's own error).
    pub function: Option<String>,
    /// `template` with this manifest and this function's outputs, or why an
    /// output does not parse with its name in it (its build fails with that;
    /// the others go on).
    pub options: Result<BuildOptions, OutputRefError>,
}

/// The build options of every manifest: `template`'s settings and `outputs`
/// with `{function}` replaced. Refuses, before anything is built, outputs
/// that several functions would write.
pub fn plan_fleet(
    manifests: &[PathBuf],
    template: &BuildOptions,
    outputs: &[OutputTemplate],
) -> Result<Vec<FleetMember>, BuildAllError> {
    if manifests.len() > 1
        && let Some(output) = outputs.iter().find(|o| !o.names_function())
    {
        return Err(BuildAllError::SharedOutput {
            output: output.to_string(),
        });
    }
    let names: Vec<Option<String>> = manifests
        .iter()
        .map(|m| {
            std::fs::read_to_string(m)
                .ok()
                .and_then(|t| crate::discover::function_name(&t))
        })
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
            let mut options = template.clone();
            options.manifest_path = manifest.clone();
            // `--sbom sbom/{function}.json`: each function's own file is kept out of its layers.
            options.side_outputs = (template.side_outputs.iter())
                .map(|p| PathBuf::from(p.to_string_lossy().replace(FUNCTION_PLACEHOLDER, name)))
                .collect();
            let options = (outputs.iter())
                .map(|o| o.for_function(name))
                .collect::<Result<_, _>>()
                .map(|outputs| BuildOptions { outputs, ..options });
            FleetMember {
                manifest: manifest.clone(),
                function,
                options,
            }
        })
        .collect())
}
