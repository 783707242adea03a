//! The base as a build uses it: repaired when asked, its layers under the
//! output's media types, and which of its blobs this run fetched.

use super::BuildError;
use crate::cache::Cache;
use crate::image::config::ConfigError;
use crate::image::{BlobLocation, Digest, Image, Layer, LayerOrigin, MediaFamily, convert_layer_media_type};
use crate::layer::LayerSettings;
use crate::repair::RepairedLayer;
use crate::report::Reporter;
use crate::report::human_bytes;
use crate::source::SourceError;

/// The base layers whose blob this run put in the cache (pulled, or
/// recompressed from a docker-archive): the report does not call them cached.
/// A cache blob's birth time says when it arrived (a later use touches only
/// its mtime); a blob in a local layout was never fetched. Where the
/// filesystem keeps no birth time, a layer counts as cached.
pub(super) fn fetched_since(image: &Image, cache: &Cache, started: std::time::SystemTime) -> Vec<Digest> {
    image
        .layers()
        .iter()
        .filter(|l| matches!(l.origin, LayerOrigin::Base { .. }))
        .filter(|l| {
            let BlobLocation::File(path) = &l.location;
            path.starts_with(cache.root())
                && std::fs::metadata(path)
                    .and_then(|m| m.created())
                    .is_ok_and(|t| t >= started)
        })
        .map(|l| l.descriptor.digest.clone())
        .collect()
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `[base] repair`: rewrites the base layers that hold hard links or miss
/// parent directories, and the base config's diff_ids and history with them.
pub(super) fn repair_base(
    config: &mut Vec<u8>,
    layers: &mut [Layer],
    settings: &LayerSettings,
    cache: &Cache,
    reporter: &dyn Reporter,
) -> Result<Vec<RepairedLayer>, BuildError> {
    reporter.step("repairing base layers ([base] repair)");
    let repaired = crate::repair::repair_base_layers(layers, settings, cache)?;
    if repaired.is_empty() {
        reporter.detail("no base layer needed repair");
        return Ok(repaired);
    }
    let diff_ids: Vec<Digest> = layers.iter().map(|l| l.diff_id.clone()).collect();
    *config = crate::repair::repaired_config(config, &repaired, &diff_ids)
        .map_err(|m| BuildError::Config(ConfigError::NotAnObject(m)))?;
    for r in &repaired {
        reporter.warn(&format!(
            "base layer {} {} rewritten as {}: {} written as files, {} added; {} no longer shared with the base",
            r.index + 1,
            r.from.short(),
            r.to.short(),
            plural(r.hard_links, "hard link", "hard links"),
            plural(r.parents_added, "parent directory", "parent directories"),
            human_bytes(r.unshared_bytes)
        ));
    }
    Ok(repaired)
}

/// A base layer under the output's media type family. The blob is untouched;
/// only the descriptor's media type string changes.
pub(super) fn to_family(layer: &Layer, family: MediaFamily) -> Result<Layer, BuildError> {
    let mut out = layer.clone();
    out.descriptor.media_type = convert_layer_media_type(&layer.descriptor.media_type, family)
        .ok_or_else(|| {
            BuildError::Source(SourceError::UnsupportedLayer {
                source_ref: match &layer.origin {
                    LayerOrigin::Base { source, .. } => source.clone(),
                    LayerOrigin::Built { name, .. } => name.clone(),
                },
                layer: layer.descriptor.digest.clone(),
                media_type: layer.descriptor.media_type.clone(),
            })
        })?
        .to_string();
    Ok(out)
}
