//! The JSON report printed by `build --json`. Field order is the order written;
//! the schema is documented in README.md and only grows.

use serde::Serialize;

use crate::image::{Digest, Image, LayerOrigin};
use crate::rules::Finding;
use crate::sink::SinkReport;

#[derive(Debug, Serialize)]
pub struct BuildReport<'a> {
    pub digest: &'a Digest,
    pub media_type: &'static str,
    pub manifest_size: usize,
    pub config_digest: &'a Digest,
    pub uncompressed_size: u64,
    pub compressed_size: u64,
    pub layers: Vec<LayerReport<'a>>,
    pub outputs: Vec<OutputReport<'a>>,
    pub findings: &'a [Finding],
    /// Base layers rewritten by `[base] repair`, with what each costs.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub repaired_base_layers: &'a [crate::repair::RepairedLayer],
}

/// One output: what its sink reported, and the manifest digest it holds.
#[derive(Debug, Serialize)]
pub struct OutputReport<'a> {
    #[serde(flatten)]
    pub sink: &'a SinkReport,
    pub digest: &'a Digest,
}

#[derive(Debug, Serialize)]
pub struct LayerReport<'a> {
    pub digest: &'a Digest,
    pub diff_id: &'a Digest,
    pub media_type: &'a str,
    pub size: u64,
    pub uncompressed_size: u64,
    /// `base` for layers reused from the base image, `built` for ours.
    pub origin: &'static str,
    /// The layer's name in the manifest (`code`, a `[[layer]]` name); none for base layers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    pub source: &'a str,
    /// True only for a layer neither pulled nor built in this run (a base
    /// layer already in the cache or a local layout, a built layer found in the cache).
    pub cached: bool,
    /// Where the layer's blob came from in this run: `built` (compressed
    /// here), `local-cache`, `cache-registry` (`--cache-registry`), or
    /// `base` for a base layer.
    pub from: &'static str,
}

impl<'a> BuildReport<'a> {
    /// `digests[i]` is the manifest digest `outputs[i]` holds.
    pub fn new(
        image: &'a Image,
        outputs: &'a [SinkReport],
        digests: &'a [Digest],
        findings: &'a [Finding],
    ) -> Self {
        let outputs = outputs
            .iter()
            .zip(digests)
            .map(|(sink, digest)| OutputReport { sink, digest })
            .collect();
        let layers = image
            .layers()
            .iter()
            .map(|l| {
                let (origin, name, source, cached, from) = match &l.origin {
                    LayerOrigin::Base { source, .. } => ("base", None, source.as_str(), true, "base"),
                    LayerOrigin::Built {
                        name,
                        source,
                        cached,
                        from_cache_registry,
                    } => {
                        let from = match (cached, from_cache_registry) {
                            (_, true) => "cache-registry",
                            (true, false) => "local-cache",
                            (false, false) => "built",
                        };
                        ("built", Some(name.as_str()), source.as_str(), *cached, from)
                    }
                };
                LayerReport {
                    digest: &l.descriptor.digest,
                    diff_id: &l.diff_id,
                    media_type: &l.descriptor.media_type,
                    size: l.descriptor.size,
                    uncompressed_size: l.uncompressed_size,
                    origin,
                    name,
                    source,
                    cached,
                    from,
                }
            })
            .collect();
        BuildReport {
            digest: image.manifest_digest(),
            media_type: image.family().manifest(),
            manifest_size: image.manifest().len(),
            config_digest: &image.config_descriptor().digest,
            uncompressed_size: image.uncompressed_size(),
            compressed_size: image.layers().iter().map(|l| l.descriptor.size).sum(),
            layers,
            outputs,
            findings,
            repaired_base_layers: &[],
        }
    }
}
