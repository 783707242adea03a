//! `--watch`: notices when a source of the manifest changes. Polling file
//! times and sizes twice a second is enough for an edit-and-invoke loop and
//! needs no platform notification API.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::manifest::{DependencySet, FunctionModel};

const POLL: Duration = Duration::from_millis(500);

/// Every path whose change changes the image: the manifest, the layers' and
/// the code's sources, and the dependency files.
pub fn watched_paths(model: &FunctionModel) -> Vec<PathBuf> {
    let mut paths = vec![model.manifest_path.clone()];
    paths.extend(
        model
            .layers
            .iter()
            .flat_map(|l| l.sources.iter().map(|s| s.path.clone())),
    );
    paths.extend(model.code.sources.iter().map(|s| s.path.clone()));
    if let Some(deps) = &model.dependencies {
        match &deps.set {
            DependencySet::Python { requirements } => paths.push(requirements.clone()),
            DependencySet::Node {
                package_json,
                package_lock,
            } => paths.extend([package_json.clone(), package_lock.clone()]),
            DependencySet::Java { jars } => paths.extend(jars.iter().map(|j| j.path.clone())),
            DependencySet::Bootstrap { path } => paths.push(path.clone()),
        }
    }
    paths
}

/// A hash of the names, sizes and modification times under `paths`.
pub fn fingerprint(paths: &[PathBuf]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for root in paths {
        for entry in walkdir::WalkDir::new(root)
            .sort_by_file_name()
            .into_iter()
            .flatten()
        {
            entry.path().hash(&mut h);
            if let Ok(meta) = entry.metadata() {
                meta.len().hash(&mut h);
                meta.modified().ok().hash(&mut h);
            }
        }
    }
    h.finish()
}

/// Calls `on_change` (on this thread) each time the sources under `manifest`
/// change; the paths are read again after each change (the manifest may
/// have gained a source). Never returns.
pub fn watch(manifest: &Path, mut on_change: impl FnMut()) -> ! {
    let paths = |fallback: &[PathBuf]| match crate::manifest::load(manifest) {
        Ok(model) => watched_paths(&model),
        Err(_) => fallback.to_vec(),
    };
    let mut watched = paths(&[manifest.to_path_buf()]);
    let mut last = fingerprint(&watched);
    loop {
        std::thread::sleep(POLL);
        let now = fingerprint(&watched);
        if now != last {
            on_change();
            watched = paths(&watched);
            last = fingerprint(&watched);
        }
    }
}
