//! The build's outputs: opened before any work, kept out of the layers they
//! lie in, and which manifest digest each will hold.

use std::path::PathBuf;

use super::{BuildError, BuildOptions};
use crate::image::{Digest, Image};
use crate::overwrite::{LocalKind, LocalOutput, absolute, refuse_overwrites};
use crate::plan::BuildPlan;
use crate::reference::{OutputKind, OutputRef, OutputTarget};
use crate::report::Reporter;
use crate::sink::{self, ImageSink};

/// Opens every output of `options` and leaves the local ones (and the side
/// outputs) out of the plan's layers, refusing any that would replace an input.
/// Every output is resolved before any work: a typo in the last one must not
/// cost a full build.
pub(super) fn open_outputs(
    options: &BuildOptions,
    cache: &crate::cache::Cache,
    plan: &mut BuildPlan,
) -> Result<Vec<Box<dyn ImageSink>>, BuildError> {
    // The sinks know the cache the layers are built into (an OCI layout links
    // a blob this build committed without reading it again).
    let sink_options = sink::SinkOptions {
        cache: Some(cache.clone()),
        ..options.sink_options.clone()
    };
    let sinks: Vec<Box<dyn ImageSink>> = options
        .outputs
        .iter()
        .map(|o| sink::open_ref(o, &sink_options))
        .collect::<Result<_, _>>()?;
    // An output inside the project (`oci:out`) must not end up in the next build's code layer.
    let local: Vec<(&OutputRef, PathBuf)> = options
        .outputs
        .iter()
        .zip(&sinks)
        .filter_map(|(o, s)| Some((o, absolute(s.local_path()?))))
        .collect();
    let sources: Vec<(&str, &std::path::Path)> = plan
        .specs()
        .flat_map(|l| {
            l.inputs
                .iter()
                .map(move |i| (l.name.as_str(), i.source.as_path()))
        })
        .collect();
    let guarded: Vec<LocalOutput> = local
        .iter()
        .map(|(output, path)| LocalOutput {
            output: output.as_str(),
            path,
            kind: match output.kind() {
                OutputKind::DockerArchive => LocalKind::Archive,
                OutputKind::Oci | OutputKind::Registry => LocalKind::Layout,
            },
        })
        .collect();
    refuse_overwrites(
        &guarded,
        &absolute(options.manifest_path.clone()),
        &sources,
        options.force,
    )?;
    let side: Vec<PathBuf> = options.side_outputs.iter().map(|p| absolute(p.clone())).collect();
    crate::overwrite::refuse_side_overwrites(&side, &absolute(options.manifest_path.clone()), &sources)?;
    let mut local_outputs: Vec<PathBuf> = local.into_iter().map(|(_, p)| p).collect();
    local_outputs.extend(side);
    plan.exclude_outputs(&local_outputs);
    Ok(sinks)
}

/// The digest of the manifest that `output` holds once written: skopeo and
/// umoci skip Docker manifests in a layout, so an `oci:` output of a
/// Docker-media-type image holds its OCI twin (same config and layers).
pub(super) fn held_digest(output: &OutputRef, image: &Image) -> Digest {
    let oci = match output.target() {
        OutputTarget::Oci { .. } => sink::as_oci(image),
        OutputTarget::DockerArchive { .. } | OutputTarget::Registry(_) => None,
    };
    match oci {
        Some(oci) => oci.manifest_digest().clone(),
        None => image.manifest_digest().clone(),
    }
}

/// One warning, before anything is written, when outputs will hold different
/// manifests (each is then printed on its own line).
pub(super) fn warn_if_digests_differ(outputs: &[OutputRef], digests: &[Digest], reporter: &dyn Reporter) {
    if digests.windows(2).all(|w| w[0] == w[1]) {
        return;
    }
    let held: Vec<String> = outputs
        .iter()
        .zip(digests)
        .map(|(o, d)| format!("{o} holds {d}"))
        .collect();
    reporter.warn(&format!(
        "the image uses Docker media types, so the outputs hold different manifests \
         (an OCI layout cannot hold a Docker manifest): {}; each output's digest is printed \
         on its own line. For one digest everywhere, build with --format oci \
         (or image.format = \"oci\"), or write only docker-archive and registry outputs",
        held.join(", ")
    ));
}
