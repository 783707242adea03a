//! The new image's config edits and manifest annotations, from the plan.

use std::collections::BTreeMap;

use crate::image::MediaFamily;
use crate::image::config::{ConfigChanges, ConfigError, HistoryEntry, edit_config, rfc3339};
use crate::plan::BuildPlan;

/// What the build changes in the base's config, and the manifest's annotations.
pub(super) struct NewConfig<'a> {
    plan: &'a BuildPlan,
    created: String,
    labels: BTreeMap<String, String>,
    /// The manifest's annotations (empty for Docker V2.2, which has none).
    pub annotations: BTreeMap<String, String>,
}

impl<'a> NewConfig<'a> {
    /// The base this image is built on goes in manifest annotations for OCI,
    /// in config labels (under the manifest's own) for Docker V2.2.
    pub fn new(plan: &'a BuildPlan, family: MediaFamily, epoch: u64) -> NewConfig<'a> {
        let base_record = crate::reference::ImageRef::parse(&plan.base)
            .ok()
            .and_then(|r| r.base_record())
            .map(|r| r.entries())
            .unwrap_or_default();
        let (annotations, labels) = match family {
            MediaFamily::Oci => (base_record, plan.config.labels.clone()),
            MediaFamily::Docker => (
                BTreeMap::new(),
                base_record
                    .into_iter()
                    .chain(plan.config.labels.clone())
                    .collect(),
            ),
        };
        NewConfig {
            plan,
            created: rfc3339(epoch),
            labels,
            annotations,
        }
    }

    /// The base's config with the plan's edits and `new_layers` appended.
    pub fn apply(&self, base_config: &[u8], new_layers: &[HistoryEntry]) -> Result<Vec<u8>, ConfigError> {
        let edit = &self.plan.config;
        let changes = ConfigChanges {
            architecture: self.plan.arch,
            created: self.created.clone(),
            entrypoint: edit.entrypoint.as_deref(),
            cmd: edit.cmd.as_deref(),
            workdir: edit.workdir.as_deref(),
            env: &edit.env,
            labels: &self.labels,
            new_layers,
        };
        edit_config(base_config, &changes)
    }
}
