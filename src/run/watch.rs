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

/// The sources of a manifest and their fingerprint when it was made: made
/// before the work it watches (a build, the first events) so that an edit
/// made during that work is seen as a change.
pub struct Watcher {
    manifest: PathBuf,
    watched: Vec<PathBuf>,
    last: u64,
}

impl Watcher {
    pub fn new(manifest: &Path) -> Watcher {
        let watched = Self::paths(manifest, &[manifest.to_path_buf()]);
        let last = fingerprint(&watched);
        Watcher {
            manifest: manifest.to_path_buf(),
            watched,
            last,
        }
    }

    /// The paths are read again after each change (the manifest may have
    /// gained a source); a manifest that does not load keeps the old ones.
    fn paths(manifest: &Path, fallback: &[PathBuf]) -> Vec<PathBuf> {
        match crate::manifest::load(manifest) {
            Ok(model) => watched_paths(&model),
            Err(_) => fallback.to_vec(),
        }
    }

    /// Calls `on_change` (on this thread) each time the sources change.
    /// Never returns.
    pub fn watch(mut self, mut on_change: impl FnMut()) -> ! {
        loop {
            std::thread::sleep(POLL);
            let now = fingerprint(&self.watched);
            if now != self.last {
                // The baseline is taken before the rebuild, so an edit made
                // while it runs is the next change.
                self.watched = Self::paths(&self.manifest, &self.watched);
                self.last = fingerprint(&self.watched);
                on_change();
            }
        }
    }
}
