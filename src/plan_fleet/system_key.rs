//! The `[system]` layer's key in a plan: the build's own key
//! (`system::system_key`, the `system-layers-v1` record name), which names
//! the base by its layers' uncompressed digests. Those come from the base's
//! config: a local base (`oci:`, `docker-archive:`) is read where it lies, a
//! registry base sends its manifest and config only (no layer is
//! downloaded), once per base and architecture however many functions share it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;

use super::LayerKey;
use crate::cache::Cache;
use crate::image::{Architecture, Digest};
use crate::layer::LayerSettings;
use crate::plan::BuildPlan;
use crate::report::Reporter;
use crate::source::{SourceError, SourceOptions};

/// Reads bases for their layers' digests, remembering each.
pub struct BaseReader<'a> {
    options: SourceOptions,
    reporter: &'a dyn Reporter,
    seen: RefCell<HashMap<(String, Architecture), Vec<Digest>>>,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "{manifest}: [system]: its layer's key names the base by its layers, but base {base} could not be read: {source}"
)]
pub struct BaseUnread {
    manifest: PathBuf,
    base: String,
    source: Box<SourceError>,
}

impl<'a> BaseReader<'a> {
    /// `options` as a build's; an unpinned registry base is read at its tag's
    /// current digest (the plan builds nothing, and says what a build would use).
    pub fn new(mut options: SourceOptions, reporter: &'a dyn Reporter) -> Self {
        options.allow_unpinned = true;
        BaseReader {
            options,
            reporter,
            seen: RefCell::default(),
        }
    }

    fn diff_ids(&self, base: &str, arch: Architecture, cache: &Cache) -> Result<Vec<Digest>, SourceError> {
        let id = (base.to_string(), arch);
        if let Some(ids) = self.seen.borrow().get(&id) {
            return Ok(ids.clone());
        }
        let ids = crate::source::open(base, &self.options)?.diff_ids(arch, cache, self.reporter)?;
        self.seen.borrow_mut().insert(id, ids.clone());
        Ok(ids)
    }

    /// The `system` layer's key, when `plan` has a `[system]` table. A base
    /// that `[base] repair` rewrites is keyed by the repaired layers, which
    /// only a build makes: such a function's plan lists no `system` key.
    pub fn system_key(
        &self,
        manifest: &std::path::Path,
        plan: &BuildPlan,
        repaired: bool,
        settings: &LayerSettings,
        cache: &Cache,
    ) -> Result<Option<LayerKey>, BaseUnread> {
        let Some(system) = plan.system.as_ref().filter(|_| !repaired) else {
            return Ok(None);
        };
        let diff_ids = self
            .diff_ids(&plan.base, plan.arch, cache)
            .map_err(|source| BaseUnread {
                manifest: manifest.to_path_buf(),
                base: plan.base.clone(),
                source: Box::new(source),
            })?;
        Ok(Some(LayerKey {
            name: crate::system::SYSTEM_LAYER.to_string(),
            key: crate::system::system_key(system, &diff_ids, plan.arch, settings),
        }))
    }
}
