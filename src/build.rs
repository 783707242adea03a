//! The build operation: manifest → plan → base + new layers → config and
//! manifest → Lambda's rules → outputs. Every input is resolved and every
//! output parsed before any work starts; nothing is written until the rules pass.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::cache::Cache;
use crate::image::config::{ConfigChanges, ConfigError, HistoryEntry, edit_config, rfc3339};
use crate::image::{
    BlobLocation, Descriptor, Digest, Image, Layer, LayerOrigin, MediaFamily, convert_layer_media_type,
    write_manifest,
};
use crate::layer::{DEFAULT_MTIME, LayerError, LayerSettings, build_layer, build_layer_observed};
use crate::manifest::{FunctionModel, ManifestError};
use crate::overwrite::{LocalOutput, refuse_overwrites};
use crate::plan::{BuildPlan, plan};
use crate::repair::RepairedLayer;
use crate::report::Reporter;
use crate::rules::{
    CheckContext, CheckError, Finding, LayerScan, Limits, RulePolicy, ScanMemo, ScanPlan, check_image_with,
    check_limits, has_errors, human_bytes, render_findings,
};
use crate::sink::{self, ImageSink, SinkError, SinkReport};
use crate::source::{self, SourceError};

/// Everything a build needs besides the manifest itself.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub manifest_path: PathBuf,
    /// Outputs as written on the command line (`oci:DIR[:TAG]`, ...).
    pub outputs: Vec<String>,
    /// SOURCE_DATE_EPOCH: the time written on entries, `created` and history.
    pub source_date_epoch: Option<u64>,
    pub limits: Limits,
    pub gzip_level: u32,
    pub threads: usize,
    /// How long a dependency installer (pip, npm) may run before it is stopped.
    pub install_timeout: std::time::Duration,
    /// Overrides the manifest's `image.format`.
    pub format: Option<MediaFamily>,
    /// Labels from the command line or environment, set over the manifest's
    /// `image.labels` (which are set over the base's).
    pub labels: Vec<(String, String)>,
    pub sink_options: sink::SinkOptions,
    pub source_options: source::SourceOptions,
    /// Replace an existing file at a docker-archive output that is not one.
    pub force: bool,
    /// `--arch`: overrides the manifest's `function.architecture` (one manifest, two builds).
    pub arch: Option<crate::image::Architecture>,
    /// Rules tuned on the command line, over the manifest's `[check]`.
    pub rules: RulePolicy,
    /// `--repair-base`: as `[base] repair = true`.
    pub repair_base: bool,
    /// Files the caller writes after the build (`--sbom`): like local
    /// outputs, they never end up in a layer, so the next build is the same.
    pub side_outputs: Vec<PathBuf>,
}

/// The built image and what was done with it.
#[derive(Debug)]
pub struct BuildOutcome {
    pub image: Image,
    /// The function's name from lambda-img.toml (the SBOM's name).
    pub function: String,
    /// The base as lambda-img.toml names it (canonical, even when fetched from a mirror).
    pub base: String,
    pub outputs: Vec<SinkReport>,
    /// The manifest digest each output holds, in `outputs` order: an OCI
    /// layout holds an OCI manifest even for a Docker-media-type image.
    pub output_digests: Vec<Digest>,
    /// Base layers whose blob this run fetched (pulled, or recompressed from a
    /// docker-archive): not `cached` in the report.
    pub fetched_base_layers: Vec<Digest>,
    /// Base layers rewritten by `[base] repair` (empty when none were).
    pub repaired: Vec<RepairedLayer>,
    /// Warnings and infos from the rules (errors stop the build).
    pub findings: Vec<Finding>,
    /// `[system]`: the packages its layer installed (empty without the table).
    pub system_packages: Vec<crate::system::InstalledPackage>,
}

impl BuildOutcome {
    /// The parts of the build report (`--json`, `--metadata-file`).
    pub fn report_facts(&self) -> crate::build_report::metadata::BuildFacts<'_> {
        crate::build_report::metadata::BuildFacts {
            image: &self.image,
            base: &self.base,
            outputs: &self.outputs,
            output_digests: &self.output_digests,
            repaired: &self.repaired,
            fetched_base_layers: &self.fetched_base_layers,
            findings: &self.findings,
            system_packages: &self.system_packages,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("base image: {0}")]
    Source(#[from] SourceError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("the image would not deploy to Lambda; nothing was written:\n{}", render_findings(.0))]
    Rules(Vec<Finding>),
    #[error("checking the image: {0}")]
    Check(#[from] CheckError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Overwrite(#[from] crate::overwrite::OverwriteError),
    #[error(transparent)]
    Repair(#[from] crate::repair::RepairError),
    #[error("cannot make the dependency layers")]
    Deps(#[from] crate::deps::DepsError),
    #[error(transparent)]
    System(#[from] crate::system::SystemError),
}

/// Builds the image described by `options.manifest_path` and writes it to every output.
pub fn build(
    options: &BuildOptions,
    cache: &Cache,
    reporter: &dyn Reporter,
) -> Result<BuildOutcome, BuildError> {
    let mut model = crate::manifest::load(&options.manifest_path)?;
    if let Some(arch) = options.arch {
        model.architecture = arch;
    }
    let mut plan = plan(&model);
    for (key, value) in &options.labels {
        plan.config.labels.insert(key.clone(), value.clone());
    }
    // Resolve every output before any work: a typo in the last one must not
    // cost a full build.
    let sinks: Vec<Box<dyn ImageSink>> = options
        .outputs
        .iter()
        .map(|o| sink::open(o, &options.sink_options))
        .collect::<Result<_, _>>()?;
    // An output inside the project (`oci:out`) must not end up in the next build's code layer.
    let local: Vec<(&str, PathBuf)> = options
        .outputs
        .iter()
        .zip(&sinks)
        .filter_map(|(o, s)| Some((o.as_str(), absolute(s.local_path()?))))
        .collect();
    let sources: Vec<(&str, &std::path::Path)> = plan
        .layers
        .iter()
        .flat_map(|l| {
            l.inputs
                .iter()
                .map(move |i| (l.name.as_str(), i.source.as_path()))
        })
        .collect();
    let guarded: Vec<LocalOutput> = local
        .iter()
        .map(|(output, path)| LocalOutput { output, path })
        .collect();
    refuse_overwrites(
        &guarded,
        &absolute(options.manifest_path.clone()),
        &sources,
        options.force,
    )?;
    let mut local_outputs: Vec<PathBuf> = local.into_iter().map(|(_, p)| p).collect();
    local_outputs.extend(options.side_outputs.iter().map(|p| absolute(p.clone())));
    plan.exclude_outputs(&local_outputs);
    let source = source::open(&plan.base, &options.source_options)?;
    let context = CheckContext {
        arch: Some(plan.arch),
        runtime: Some(model.runtime.to_string()),
        handler: model.handler.clone(),
        limits: options.limits,
    };

    let policy = RulePolicy::merged(&model.check, &options.rules);
    // Filesystem time stamps lag the clock by up to a tick: a little slack.
    let started = std::time::SystemTime::now() - std::time::Duration::from_millis(20);
    let (image, repaired, system_packages) = assemble(
        &model,
        &plan,
        options,
        &policy,
        &context,
        source.as_ref(),
        cache,
        reporter,
    )?;

    // The cheap limits first, so an oversized image fails before its layers are read.
    let limits = policy.apply(check_limits(&image, &options.limits, Some(plan.arch)));
    if has_errors(&limits) {
        return Err(BuildError::Rules(limits));
    }
    reporter.step("checking Lambda's rules");
    let findings = policy.apply(checked_image(&image, &context, cache)?);
    if has_errors(&findings) {
        return Err(BuildError::Rules(findings));
    }
    for f in &findings {
        reporter.finding(&f.to_string());
    }

    let output_digests: Vec<Digest> = options.outputs.iter().map(|o| held_digest(o, &image)).collect();
    warn_if_digests_differ(&options.outputs, &output_digests, reporter);
    let mut outputs = Vec::with_capacity(sinks.len());
    for sink in &sinks {
        outputs.push(sink.write(&image, reporter)?);
    }
    Ok(BuildOutcome {
        fetched_base_layers: fetched_since(&image, cache, started),
        image,
        function: model.name.clone(),
        base: plan.base.clone(),
        outputs,
        output_digests,
        repaired,
        findings,
        system_packages,
    })
}

/// The base layers whose blob this run put in the cache (pulled, or
/// recompressed from a docker-archive): the report does not call them cached.
/// A cache blob's birth time says when it arrived (a later use touches only
/// its mtime); a blob in a local layout was never fetched. Where the
/// filesystem keeps no birth time, a layer counts as cached.
fn fetched_since(image: &Image, cache: &Cache, started: std::time::SystemTime) -> Vec<Digest> {
    image
        .layers
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

/// The digest of the manifest that `output` holds once written: skopeo and
/// umoci skip Docker manifests in a layout, so an `oci:` output of a
/// Docker-media-type image holds its OCI twin (same config and layers).
fn held_digest(output: &str, image: &Image) -> Digest {
    match output.starts_with("oci:").then(|| sink::as_oci(image)).flatten() {
        Some(oci) => oci.manifest_digest,
        None => image.manifest_digest.clone(),
    }
}

/// One warning, before anything is written, when outputs will hold different
/// manifests (each is then printed on its own line).
fn warn_if_digests_differ(outputs: &[String], digests: &[Digest], reporter: &dyn Reporter) {
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

/// What a cached check remembers: the rule id and message of each finding.
#[derive(serde::Serialize, serde::Deserialize)]
struct CheckRecord {
    findings: Vec<(String, String)>,
}

const CHECKS_BUCKET: &str = "checks-v1";
const SCANS_BUCKET: &str = "layer-scans-v1";

/// Layer scans kept in the cache, so the rules read only layers they have not seen.
struct CachedScans<'a>(&'a Cache);

impl ScanMemo for CachedScans<'_> {
    fn get(&self, key: &str) -> Option<LayerScan> {
        self.0.get_record(SCANS_BUCKET, key)
    }
    fn put(&self, key: &str, scan: &LayerScan) {
        // A failed write only costs a re-read next time.
        let _ = self.0.put_record(SCANS_BUCKET, key, scan);
    }
}

/// `check_image`, remembered in the cache: the findings are a function of the
/// image's bytes (named by its manifest digest), the context and the rules,
/// so an unchanged rebuild does not read its layers again.
fn checked_image(image: &Image, context: &CheckContext, cache: &Cache) -> Result<Vec<Finding>, BuildError> {
    let key = Digest::of(
        serde_json::json!({
            "manifest": image.manifest_digest,
            "context": context,
            "rules": crate::rules::catalog::catalog_key(),
        })
        .to_string()
        .as_bytes(),
    );
    if let Some(record) = cache.get_record::<CheckRecord>(CHECKS_BUCKET, key.hex()) {
        let restored: Option<Vec<Finding>> = record
            .findings
            .iter()
            .map(|(id, message)| crate::rules::rule(id).map(|rule| Finding::new(rule, message.clone())))
            .collect();
        if let Some(findings) = restored {
            return Ok(findings);
        }
    }
    let findings = check_image_with(image, context, Some(&CachedScans(cache)))?;
    let record = CheckRecord {
        findings: findings
            .iter()
            .map(|f| (f.rule_id.to_string(), f.message.clone()))
            .collect(),
    };
    // A failed write only costs a re-check next time.
    let _ = cache.put_record(CHECKS_BUCKET, key.hex(), &record);
    Ok(findings)
}

/// `path` made absolute against the current directory, resolving symlinks in
/// the part that exists so it compares equal to canonical source paths.
fn absolute(path: PathBuf) -> PathBuf {
    let path = std::path::absolute(&path).unwrap_or(path);
    match (
        path.parent().and_then(|p| p.canonicalize().ok()),
        path.file_name(),
    ) {
        (Some(parent), Some(name)) => parent.join(name),
        _ => path,
    }
}

/// Resolves the base, builds the new layers and returns the new image value.
#[allow(clippy::too_many_arguments)]
fn assemble(
    model: &FunctionModel,
    plan: &BuildPlan,
    options: &BuildOptions,
    policy: &RulePolicy,
    context: &CheckContext,
    source: &dyn source::ImageSource,
    cache: &Cache,
    reporter: &dyn Reporter,
) -> Result<(Image, Vec<RepairedLayer>, Vec<crate::system::InstalledPackage>), BuildError> {
    reporter.step(&format!("resolving base {}", source.describe()));
    let mut base = source.resolve(plan.arch, cache, reporter)?;
    let family = options.format.or(plan.format).unwrap_or(base.family);
    let epoch = options.source_date_epoch.unwrap_or(DEFAULT_MTIME);
    let settings = LayerSettings {
        family,
        mtime: epoch,
        gzip_level: options.gzip_level,
        threads: options.threads,
    };

    let repaired = if model.base_repair || options.repair_base {
        repair_base(&mut base, &settings, cache, reporter)?
    } else {
        Vec::new()
    };
    if let Some(finding) = oversized(&base.layers, plan, &options.limits)? {
        let findings = policy.apply(vec![finding]);
        if has_errors(&findings) {
            return Err(BuildError::Rules(findings));
        }
    }
    let mut layers: Vec<Layer> = base
        .layers
        .iter()
        .map(|l| to_family(l, family))
        .collect::<Result<_, _>>()?;
    // The base this image is built on: manifest annotations for OCI, config
    // labels (under the manifest's own) for Docker V2.2.
    let base_record = crate::registry::reference::base_record_for(&plan.base)
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
    let changes = |new_layers| ConfigChanges {
        architecture: plan.arch,
        created: rfc3339(epoch),
        entrypoint: plan.config.entrypoint.as_deref(),
        cmd: plan.config.cmd.as_deref(),
        workdir: plan.config.workdir.as_deref(),
        env: &plan.config.env,
        labels: &labels,
        new_layers,
    };
    // The config as it will be but for its layers, so the rules' scans of the
    // new layers can run while they are compressed (see `build_scanned`).
    let preview = edit_config(&base.config, &changes(&[]))?;
    let scan_plan = ScanPlan::new(&preview, context);
    let mut history = Vec::new();
    let mut system_packages = Vec::new();
    if let Some(system) = &plan.system {
        let built = crate::system::system_layer(system, &base.layers, plan.arch, &settings, cache, reporter)?;
        system_packages = built.packages;
        push_built(std::iter::once(built.layer), model, &mut layers, &mut history);
    }
    // Dependency layers go between the user's layers and the code layer.
    let mut deps =
        crate::deps::prepare(model, &settings, options.install_timeout, cache, reporter)?.into_iter();
    for spec in &plan.layers {
        if spec.name == crate::plan::CODE_LAYER {
            push_built(deps.by_ref(), model, &mut layers, &mut history);
        }
        reporter.step(&format!("layer {}", spec.name));
        let mut spec = spec.clone();
        if spec.name == crate::plan::CODE_LAYER {
            crate::deps::exclude_from_code(model, &mut spec.inputs);
        }
        let spec = &spec;
        let index = layers.len();
        let mut layer = build_scanned(spec, &settings, cache, reporter, scan_plan.as_ref(), index)?;
        // Describe inputs relative to the project: the history is part of the
        // config bytes, and a checkout path must not change the digest.
        let source = describe_inputs(spec, &model.project_dir);
        if let LayerOrigin::Built { source: s, .. } = &mut layer.origin {
            *s = source.clone();
        }
        history.push(HistoryEntry {
            diff_id: layer.diff_id.clone(),
            created_by: format!("lambda-img: {} layer from {source}", spec.name),
            comment: Some(format!("function {}", model.name)),
        });
        layers.push(layer);
    }
    push_built(deps, model, &mut layers, &mut history);

    let config = edit_config(&base.config, &changes(&history))?;
    let config_descriptor = Descriptor::new(family.config(), Digest::of(&config), config.len() as u64);
    let layer_descriptors: Vec<Descriptor> = layers.iter().map(|l| l.descriptor.clone()).collect();
    let manifest = write_manifest(family, &config_descriptor, &layer_descriptors, Some(&annotations));
    let image = Image {
        family,
        manifest_digest: Digest::of(&manifest),
        manifest,
        config,
        config_descriptor,
        layers,
    };
    Ok((image, repaired, system_packages))
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `[base] repair`: rewrites the base layers that hold hard links or miss
/// parent directories, and the base config's diff_ids and history with them.
fn repair_base(
    base: &mut Image,
    settings: &LayerSettings,
    cache: &Cache,
    reporter: &dyn Reporter,
) -> Result<Vec<RepairedLayer>, BuildError> {
    reporter.step("repairing base layers ([base] repair)");
    let repaired = crate::repair::repair_base_layers(&mut base.layers, settings, cache)?;
    if repaired.is_empty() {
        reporter.detail("no base layer needed repair");
        return Ok(repaired);
    }
    let diff_ids: Vec<Digest> = base.layers.iter().map(|l| l.diff_id.clone()).collect();
    base.config = crate::repair::repaired_config(&base.config, &repaired, &diff_ids)
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

/// The finding for an image whose base layers and new layers' files already add up to
/// more than the uncompressed limit, before anything is compressed: the size
/// of each new layer's tar is known exactly from its file selection.
fn oversized(base: &[Layer], plan: &BuildPlan, limits: &Limits) -> Result<Option<Finding>, BuildError> {
    let mut sizes: Vec<(String, u64)> = Vec::new();
    for spec in &plan.layers {
        let entries = crate::layer::select::select(spec)?;
        sizes.push((
            format!("layer {}", spec.name),
            crate::layer::tar_writer::tar_size(&entries),
        ));
    }
    let base_total: u64 = base.iter().map(|l| l.uncompressed_size).sum();
    let total = base_total + sizes.iter().map(|(_, s)| s).sum::<u64>();
    if total <= limits.max_uncompressed {
        return Ok(None);
    }
    sizes.sort_by_key(|(_, s)| std::cmp::Reverse(*s));
    let largest: Vec<String> = sizes
        .iter()
        .take(3)
        .map(|(name, size)| format!("{name} {}", human_bytes(*size)))
        .collect();
    Ok(Some(Finding::new(
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
    )))
}

/// Builds a layer; when it is compressed, the rules' scan of it runs on the
/// uncompressed tar at the same time and is left in the cache, so checking
/// the image does not inflate and read the new layer a second time (on two
/// cores that was a serial 10% of a cold build). A scan that fails here is
/// dropped: the rules then read the layer as they would have anyway.
fn build_scanned(
    spec: &crate::layer::LayerSpec,
    settings: &LayerSettings,
    cache: &Cache,
    reporter: &dyn Reporter,
    scan_plan: Option<&ScanPlan>,
    index: usize,
) -> Result<Layer, BuildError> {
    let Some(scan_plan) = scan_plan else {
        return Ok(build_layer(spec, settings, cache, reporter)?);
    };
    // A few blocks of slack: the scanner only parses headers and skips
    // content, so it keeps up; when it stops, sends fail and are ignored.
    let (blocks, received) = std::sync::mpsc::sync_channel::<Vec<u8>>(8);
    std::thread::scope(|s| {
        let scanner = s.spawn(move || scan_plan.scan_tar(BlockReader::new(received), index));
        let observe = |block: &[u8]| {
            let _ = blocks.send(block.to_vec());
        };
        let built = build_layer_observed(spec, settings, cache, reporter, &observe);
        drop(blocks);
        let scan = scanner.join().expect("layer scan thread panicked");
        let layer = built?;
        // A layer from the cache was not streamed: its scan saw nothing.
        if let (LayerOrigin::Built { cached: false, .. }, Ok(scan)) = (&layer.origin, scan) {
            scan.remember(&layer.descriptor.digest, &CachedScans(cache));
        }
        Ok(layer)
    })
}

/// Reads the blocks a channel delivers as one stream.
struct BlockReader {
    blocks: std::sync::mpsc::Receiver<Vec<u8>>,
    current: Vec<u8>,
    at: usize,
}

impl BlockReader {
    fn new(blocks: std::sync::mpsc::Receiver<Vec<u8>>) -> BlockReader {
        BlockReader {
            blocks,
            current: Vec::new(),
            at: 0,
        }
    }
}

impl std::io::Read for BlockReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.current.len() {
            match self.blocks.recv() {
                Ok(block) => {
                    self.current = block;
                    self.at = 0;
                }
                // The sender is gone: the stream ended.
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Appends layers built elsewhere (dependency layers) with their history entries.
fn push_built(
    built: impl Iterator<Item = Layer>,
    model: &FunctionModel,
    layers: &mut Vec<Layer>,
    history: &mut Vec<HistoryEntry>,
) {
    for layer in built {
        if let LayerOrigin::Built { name, source, .. } = &layer.origin {
            history.push(HistoryEntry {
                diff_id: layer.diff_id.clone(),
                created_by: format!("lambda-img: {name} layer from {source}"),
                comment: Some(format!("function {}", model.name)),
            });
        }
        layers.push(layer);
    }
}

/// `src → /var/task, assets → /opt/assets`, with paths relative to the project.
fn describe_inputs(spec: &crate::layer::LayerSpec, project_dir: &std::path::Path) -> String {
    spec.inputs
        .iter()
        .map(|input| {
            let rel = crate::manifest::project_relative(&input.source, project_dir);
            format!("{rel} → {}", input.destination)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A base layer under the output's media type family. The blob is untouched;
/// only the descriptor's media type string changes.
fn to_family(layer: &Layer, family: MediaFamily) -> Result<Layer, BuildError> {
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

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::image::Architecture;
    use crate::layer::{LayerInput, LayerSpec};

    fn remembered_scans(cache: &Cache) -> usize {
        fs::read_dir(cache.root().join(SCANS_BUCKET)).map_or(0, |d| d.count())
    }

    #[test]
    fn a_compressed_layer_is_scanned_on_the_way_and_a_cached_one_is_not() {
        let src = tempfile::tempdir().unwrap();
        fs::write(
            src.path().join("app.py"),
            "def handler(event, context):\n    return 1\n",
        )
        .unwrap();
        let bootstrap = src.path().join("bootstrap");
        fs::write(&bootstrap, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&bootstrap, fs::Permissions::from_mode(0o755)).unwrap();
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(cache_dir.path()).unwrap();
        let spec = LayerSpec {
            name: "code".into(),
            inputs: vec![LayerInput::all(src.path(), "/var/task")],
        };
        let context = CheckContext {
            arch: Some(Architecture::X86_64),
            runtime: Some("python3.12".into()),
            handler: Some("app.handler".into()),
            limits: Limits::default(),
        };
        let config = br#"{"architecture":"amd64","os":"linux","config":{"Cmd":["app.handler"]}}"#;
        let plan = ScanPlan::new(config, &context).unwrap();
        let settings = LayerSettings::default();
        let silent = crate::report::Silent;

        let built = build_scanned(&spec, &settings, &cache, &silent, Some(&plan), 0).unwrap();
        assert!(matches!(built.origin, LayerOrigin::Built { cached: false, .. }));
        assert_eq!(remembered_scans(&cache), 1, "the compressed layer's scan is kept");

        // From the cache, the layer is not streamed: the empty stream's
        // "scan" must not be remembered in place of the real one.
        fs::remove_dir_all(cache.root().join(SCANS_BUCKET)).unwrap();
        let again = build_scanned(&spec, &settings, &cache, &silent, Some(&plan), 0).unwrap();
        assert!(matches!(again.origin, LayerOrigin::Built { cached: true, .. }));
        assert_eq!(again.descriptor, built.descriptor);
        assert_eq!(remembered_scans(&cache), 0);
    }
}
