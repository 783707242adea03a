//! Refusals before anything is compressed.

use super::BuildError;
use crate::image::Layer;
use crate::layer::LayerError;
use crate::layer::select::{Selection, select};
use crate::plan::BuildPlan;
use crate::report::human_bytes;
use crate::rules::{Finding, Limits, RulePolicy, has_errors};

/// The files of every layer the plan builds from the project, in plan order,
/// each selected once: for the size check here and then for the layer itself
/// (a big tree is not walked twice).
pub(super) fn select_layers(plan: &BuildPlan) -> Result<Vec<Selection>, LayerError> {
    plan.specs().map(select).collect()
}

/// Stops the build when the base and the new layers' files (`selections`, in
/// plan order) are already over Lambda's uncompressed limit (unless the rules
/// policy allows it).
pub(super) fn refuse_oversized(
    base: &[Layer],
    plan: &BuildPlan,
    selections: &[Selection],
    limits: &Limits,
    policy: &RulePolicy,
) -> Result<(), BuildError> {
    if let Some(finding) = oversized(base, plan, selections, limits) {
        let findings = policy.apply(vec![finding]);
        if has_errors(&findings) {
            return Err(BuildError::Rules(findings));
        }
    }
    Ok(())
}

/// The finding for an image whose base layers and new layers' files already add up to
/// more than the uncompressed limit, before anything is compressed: the size
/// of each new layer's tar is known exactly from its file selection.
fn oversized(base: &[Layer], plan: &BuildPlan, selections: &[Selection], limits: &Limits) -> Option<Finding> {
    let mut sizes: Vec<(String, u64)> = plan
        .specs()
        .zip(selections)
        .map(|(spec, entries)| {
            (
                format!("layer {}", spec.name),
                crate::layer::tar_writer::tar_size(entries),
            )
        })
        .collect();
    let base_total: u64 = base.iter().map(|l| l.uncompressed_size).sum();
    let total = base_total + sizes.iter().map(|(_, s)| s).sum::<u64>();
    if total <= limits.max_uncompressed {
        return None;
    }
    sizes.sort_by_key(|(_, s)| std::cmp::Reverse(*s));
    let largest: Vec<String> = sizes
        .iter()
        .take(3)
        .map(|(name, size)| format!("{name} {}", human_bytes(*size)))
        .collect();
    Some(Finding::new(
        &crate::rules::catalog::IMAGE_TOO_LARGE,
        format!(
            "the base ({}) and the new layers' files add up to {} ({total} bytes) uncompressed, \
             over the limit of {} ({} bytes), before anything was compressed; largest new: {}",
            human_bytes(base_total),
            human_bytes(total),
            human_bytes(limits.max_uncompressed),
            limits.max_uncompressed,
            largest.join(", ")
        ),
    ))
}
