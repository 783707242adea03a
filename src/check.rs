//! The `check` and `inspect` operations on any image source: read the image
//! the way Lambda would be given it, and report what Lambda would refuse.

use serde::Serialize;

use crate::cache::Cache;
use crate::image::base_record::BaseRecord;
use crate::image::{Architecture, BlobLocation, Digest, Image, Layer, MediaKind, classify};
use crate::inspect::{ImageSummary, InspectError, LayerDiff};
use crate::report::Reporter;
use crate::rules::{
    CheckContext, CheckError, Finding, LayerReads, Limits, RulePolicy, StreamDigests, base_lag_finding,
    check_content_reading, check_limits, index_finding,
};
use crate::source::{self, ImageSource, LayerVerification, SourceError, SourceOptions};

/// What to check and against which function.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Any base reference `build` accepts (`oci:`, `docker-archive:`, a registry reference).
    pub source: String,
    /// The function's architecture; for an index, the child to check (default x86_64).
    pub arch: Option<Architecture>,
    pub runtime: Option<String>,
    pub handler: Option<String>,
    pub limits: Limits,
    pub source_options: SourceOptions,
    /// Rules allowed, denied, strict (the manifest's `[check]` merged with flags).
    pub rules: RulePolicy,
}

#[derive(Debug, Serialize)]
pub struct CheckOutcome {
    pub reference: String,
    /// The digest of the single-platform manifest that was checked.
    pub manifest_digest: Digest,
    pub findings: Vec<Finding>,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckOpError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Check(#[from] CheckError),
    #[error(transparent)]
    Inspect(#[from] InspectError),
}

/// Reads the image `options.source` names and runs every Lambda rule on it.
pub fn check(
    options: &CheckOptions,
    cache: &Cache,
    reporter: &dyn Reporter,
) -> Result<CheckOutcome, CheckOpError> {
    let source = source::open(&options.source, &options.source_options)?;
    let mut findings = Vec::new();
    // A tag naming an index deploys nowhere, even when the right child exists:
    // report it, then check the child Lambda would have needed.
    if let Ok(Some(media_type)) = source.top_media_type(reporter)
        && matches!(classify(&media_type), MediaKind::Index(_))
    {
        findings.push(index_finding(&options.source, &media_type));
    }
    let arch = options.arch.unwrap_or(Architecture::X86_64);
    // The rules read every layer anyway: a layer not verified before is
    // verified on that read (one inflation instead of two).
    let unverified = source.resolve_with(arch, cache, reporter, LayerVerification::ByCaller)?;
    let context = CheckContext {
        arch: options.arch,
        runtime: options.runtime.clone(),
        handler: options.handler.clone(),
        limits: options.limits,
    };
    reporter.step(&format!("checking {} against Lambda's rules", source.describe()));
    let (image, content) = scan_verifying(source.as_ref(), unverified, arch, &context, cache, reporter)?;
    findings.extend(check_limits(&image, &context.limits, context.arch));
    findings.extend(content);
    findings.extend(base_lag(&image, &options.source_options, reporter));
    let mut findings = options.rules.apply(findings);
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    Ok(CheckOutcome {
        reference: source.describe(),
        manifest_digest: image.manifest_digest().clone(),
        findings,
    })
}

/// The filesystem rules on an image resolved with [`LayerVerification::ByCaller`],
/// hashing each layer not verified before as the scan reads it; returns the
/// verified image (every layer's diff_id and size as read) and the findings.
/// Whatever this read cannot vouch for (a layer it could not hash, a walk
/// that failed) is left to the source's own verification, so a bad blob is
/// refused with the same error as by `build`.
fn scan_verifying(
    source: &dyn ImageSource,
    image: Image,
    arch: Architecture,
    context: &CheckContext,
    cache: &Cache,
    reporter: &dyn Reporter,
) -> Result<(Image, Vec<Finding>), CheckOpError> {
    let unverified: Vec<bool> = image
        .layers()
        .iter()
        .map(|l| source::cached_layer_facts(&l.descriptor, cache).is_none())
        .collect();
    let reads = LayerReads::new(unverified.clone());
    let content = check_content_reading(&image, context, &reads);
    let digests = reads.digests();
    let content = match content {
        Ok(content) => content,
        Err(e) => {
            if unverified.contains(&true) {
                source.resolve(arch, cache, reporter)?;
            }
            return Err(e.into());
        }
    };
    let source_ref = source.describe();
    let mut layers = Vec::with_capacity(image.layers().len());
    for (layer, read) in image.layers().iter().zip(&digests) {
        match verified(layer, read.as_ref(), cache, &source_ref)? {
            Some(layer) => layers.push(layer),
            // Not hashed (a layer the rules could not read): the source verifies it.
            None => return Ok((source.resolve(arch, cache, reporter)?, content)),
        }
    }
    let image = Image::from_manifest(
        image.family(),
        image.manifest().to_vec(),
        image.config().to_vec(),
        image.config_descriptor().clone(),
        layers,
    );
    Ok((image, content))
}

/// `layer` with its facts verified: from this read's digests, else from the
/// facts cached by an earlier verification; `None` when neither is there.
fn verified(
    layer: &Layer,
    read: Option<&StreamDigests>,
    cache: &Cache,
    source_ref: &str,
) -> Result<Option<Layer>, SourceError> {
    let facts = match read {
        Some(read) => {
            let BlobLocation::File(path) = &layer.location;
            // An unverified layer carries the config's diff_id (ByCaller).
            source::verify_read(path, &layer.descriptor, &layer.diff_id, read, cache, source_ref)?
        }
        // Cached since (or before) the source resolved it: as verified as
        // the source would have it, if it names the same diff_id.
        None => match source::cached_layer_facts(&layer.descriptor, cache) {
            Some(facts) if facts.diff_id == layer.diff_id => facts,
            _ => return Ok(None),
        },
    };
    Ok(Some(Layer {
        diff_id: facts.diff_id,
        uncompressed_size: facts.uncompressed_size,
        ..layer.clone()
    }))
}

/// LI091 for an image that records its base: asks the base's registry what
/// the tag names now. An unreachable registry is no finding (the image may be
/// checked offline); it is said in the progress output.
fn base_lag(image: &Image, options: &SourceOptions, reporter: &dyn Reporter) -> Option<Finding> {
    let record = BaseRecord::read(image)?;
    record.digest.as_ref()?;
    let reference = crate::registry::Reference::parse(&record.name).ok()?;
    reference.tag.as_ref()?;
    // Advisory: one quick try, so checking offline is not held up by retries.
    let registry = crate::registry::RegistryOptions {
        retry: crate::registry::RetryPolicy {
            attempts: 1,
            ..Default::default()
        },
        timeout: options.registry.timeout.min(std::time::Duration::from_secs(10)),
        ..options.registry.clone()
    };
    // Through a `--registry-mirror` when one covers the base's registry, as `pin` asks.
    let routed = crate::registry::mirror::route(&registry.mirrors, &reference).map(|(r, _)| r);
    match crate::registry::resolve_digest(routed.as_ref().unwrap_or(&reference), &registry, reporter) {
        Ok(current) => base_lag_finding(&record, &current),
        Err(e) => {
            reporter.detail(&format!("base {} not compared with its tag: {e}", record.name));
            None
        }
    }
}

/// Reads one image for `inspect`.
pub fn read_image(
    reference: &str,
    arch: Architecture,
    options: &SourceOptions,
    cache: &Cache,
    reporter: &dyn Reporter,
) -> Result<Image, CheckOpError> {
    Ok(source::open(reference, options)?.resolve(arch, cache, reporter)?)
}

/// `inspect SOURCE [--diff OTHER]`: the summary of one image, and optionally
/// how its layers differ from another's.
pub fn inspect(
    reference: &str,
    other: Option<&str>,
    arch: Architecture,
    options: &SourceOptions,
    cache: &Cache,
    reporter: &dyn Reporter,
) -> Result<(ImageSummary, Option<LayerDiff>), CheckOpError> {
    let summary = crate::inspect::summarize(&read_image(reference, arch, options, cache, reporter)?)?;
    let diff = match other {
        Some(other) => {
            let b = crate::inspect::summarize(&read_image(other, arch, options, cache, reporter)?)?;
            Some(crate::inspect::diff(&summary, &b))
        }
        None => None,
    };
    Ok((summary, diff))
}
