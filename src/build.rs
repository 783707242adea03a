//! The build operation: manifest → plan → base + new layers → config and
//! manifest → Lambda's rules → outputs. Every input is resolved and every
//! output parsed before any work starts; nothing is written until the rules pass.
//!
//! This file is the orchestration; the parts live beside it in `build/`:
//! the outputs (`outputs`), the base as the build uses it (`base`), the
//! refusals before compressing (`preflight`), the config edits (`config`),
//! scanning while compressing (`scan`) and the remembered findings (`findings`).

mod base;
mod config;
mod findings;
mod outputs;
mod preflight;
mod scan;

use std::path::PathBuf;

use crate::cache::Cache;
use crate::image::config::{ConfigError, HistoryEntry};
use crate::image::{Digest, Image, Layer, LayerOrigin, MediaFamily};
use crate::layer::{DEFAULT_MTIME, LayerError, LayerSettings};
use crate::manifest::{FunctionModel, ManifestError};
use crate::plan::{BuildPlan, LayerKind, PlannedLayer, plan};
use crate::repair::RepairedLayer;
use crate::report::Reporter;
use crate::rules::{
    CheckContext, CheckError, Finding, Limits, RulePolicy, ScanPlan, check_limits, has_errors,
    render_findings,
};
use crate::sink::{self, SinkError, SinkReport};
use crate::source::{self, SourceError};

/// Everything a build needs besides the manifest itself.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub manifest_path: PathBuf,
    /// Outputs, parsed (`oci:DIR[:TAG]`, ...; as written on the command line).
    pub outputs: Vec<crate::reference::OutputRef>,
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
    /// `--cache-registry`, `--cache-registry-readonly`.
    pub cache_registry: crate::cache_registry::CacheRegistryChoice,
    /// Whether an SBOM will be made of the image: only then are the new
    /// layers' packages listed while they are compressed (`--no-sbom` spares
    /// that scan's CPU and memory).
    pub sbom_packages: bool,
}

/// A dependency installer's time limit unless `--install-timeout` says otherwise.
pub const DEFAULT_INSTALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1200);

impl BuildOptions {
    /// The one way to make build options: a build of `manifest_path` with
    /// every default (no outputs, Lambda's limits, all cores), talking to
    /// registries with `registry` for both the base and the outputs. Callers
    /// set the fields their flags change.
    pub fn new(manifest_path: PathBuf, registry: crate::registry::RegistryOptions) -> BuildOptions {
        BuildOptions {
            manifest_path,
            outputs: Vec::new(),
            source_date_epoch: None,
            limits: Limits::default(),
            gzip_level: crate::layer::DEFAULT_GZIP_LEVEL,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            install_timeout: DEFAULT_INSTALL_TIMEOUT,
            format: None,
            labels: Vec::new(),
            sink_options: sink::SinkOptions {
                registry: registry.clone(),
                keep_unreferenced: false,
                cache: None,
            },
            source_options: source::SourceOptions {
                allow_unpinned: false,
                registry,
            },
            force: false,
            arch: None,
            rules: RulePolicy::default(),
            repair_base: false,
            side_outputs: Vec::new(),
            cache_registry: Default::default(),
            sbom_packages: true,
        }
    }
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
    /// The archives the dependency install came from, with their hashes
    /// (pip's report; empty when not known), for the SBOM.
    pub archives: Vec<crate::sbom::KnownArchive>,
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
    SideFile(#[from] crate::overwrite::SideFileError),
    #[error(transparent)]
    Repair(#[from] crate::repair::RepairError),
    #[error("cannot make the dependency layers")]
    Deps(#[from] crate::deps::DepsError),
    #[error("{manifest}: [cache] registry: {source}")]
    CacheRegistry {
        manifest: PathBuf,
        source: crate::cache_registry::CacheRegistryError,
    },
    #[error(transparent)]
    System(#[from] crate::system::SystemError),
}

/// Builds the image described by `options.manifest_path` and writes it to every output.
pub fn build(
    options: &BuildOptions,
    cache: &Cache,
    reporter: &dyn Reporter,
) -> Result<BuildOutcome, BuildError> {
    let model = crate::manifest::load(&options.manifest_path)?;
    build_model(options, model, cache, reporter)
}

/// [`build`] of a manifest the caller has already loaded from
/// `options.manifest_path` (the CLI reads it once, with its other settings).
pub fn build_model(
    options: &BuildOptions,
    model: FunctionModel,
    cache: &Cache,
    reporter: &dyn Reporter,
) -> Result<BuildOutcome, BuildError> {
    prepare_model(options, model, cache, reporter)?.write(reporter)
}

/// A built and checked image whose outputs are opened but not yet written:
/// what must succeed before any output appears (the SBOM's document) is
/// made from it, then [`Ready::write`] writes every output.
pub struct Ready {
    /// The outcome so far: everything but `outputs`.
    pub outcome: BuildOutcome,
    sinks: Vec<Box<dyn sink::ImageSink>>,
    cache: Cache,
    started: std::time::SystemTime,
}

impl Ready {
    /// The cache the image was built with, the cache registry (when the
    /// build has one) behind it: what was made after the layers (the SBOM
    /// document) is kept and shared through it as the layers were.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// How many outputs [`Ready::write`] will write.
    pub fn output_count(&self) -> usize {
        self.sinks.len()
    }

    /// Writes the image to every output, in the order given.
    pub fn write(self, reporter: &dyn Reporter) -> Result<BuildOutcome, BuildError> {
        let Ready {
            mut outcome,
            sinks,
            cache,
            started,
        } = self;
        for sink in &sinks {
            outcome.outputs.push(sink.write(&outcome.image, reporter)?);
        }
        outcome.fetched_base_layers = base::fetched_since(&outcome.image, &cache, started);
        Ok(outcome)
    }
}

/// [`build_model`] up to the outputs: the image built and checked, every
/// output opened, nothing written.
pub fn prepare_model(
    options: &BuildOptions,
    mut model: FunctionModel,
    cache: &Cache,
    reporter: &dyn Reporter,
) -> Result<Ready, BuildError> {
    if let Some(arch) = options.arch {
        model.architecture = arch;
    }
    let shared = with_cache_registry(options, &model, cache, reporter)?;
    let cache = shared.as_ref().unwrap_or(cache);
    let mut plan = plan(&model);
    for (key, value) in &options.labels {
        plan.config.labels.insert(key.clone(), value.clone());
    }
    let sinks = outputs::open_outputs(options, cache, &mut plan)?;
    let source = source::open(&plan.base, &options.source_options)?;
    let job = Job {
        context: CheckContext {
            arch: Some(plan.arch),
            runtime: Some(model.runtime.to_string()),
            handler: model.handler.clone(),
            limits: options.limits,
        },
        policy: RulePolicy::merged(&model.check, &options.rules),
        model: &model,
        plan: &plan,
        options,
        cache,
        reporter,
    };
    // Filesystem time stamps lag the clock by up to a tick: a little slack.
    let started = std::time::SystemTime::now() - std::time::Duration::from_millis(20);
    let (image, repaired, system_packages, archives) = assemble(&job, source.as_ref())?;

    // The cheap limits first, so an oversized image fails before its layers are read.
    let limits = job
        .policy
        .apply(check_limits(&image, &options.limits, Some(plan.arch)));
    if has_errors(&limits) {
        return Err(BuildError::Rules(limits));
    }
    reporter.step("checking Lambda's rules");
    let findings = job
        .policy
        .apply(findings::checked_image(&image, &job.context, cache)?);
    if has_errors(&findings) {
        return Err(BuildError::Rules(findings));
    }
    for f in &findings {
        reporter.finding(&f.to_string());
    }

    let output_digests: Vec<Digest> = options
        .outputs
        .iter()
        .map(|o| outputs::held_digest(o, &image))
        .collect();
    outputs::warn_if_digests_differ(&options.outputs, &output_digests, reporter);
    let outcome = BuildOutcome {
        fetched_base_layers: Vec::new(),
        image,
        function: model.name.clone(),
        base: plan.base.clone(),
        outputs: Vec::with_capacity(sinks.len()),
        output_digests,
        repaired,
        findings,
        system_packages,
        archives,
    };
    Ok(Ready {
        outcome,
        sinks,
        cache: cache.clone(),
        started,
    })
}

/// `cache` with the build's cache registry behind it, when it has one.
fn with_cache_registry(
    options: &BuildOptions,
    model: &crate::manifest::FunctionModel,
    cache: &Cache,
    reporter: &dyn Reporter,
) -> Result<Option<Cache>, BuildError> {
    let level = options
        .cache_registry
        .for_function(&model.cache, &options.sink_options.registry, reporter)
        .map_err(|source| BuildError::CacheRegistry {
            manifest: options.manifest_path.clone(),
            source,
        })?;
    Ok(level.map(|l| cache.with_second_level(l)))
}

/// What one build works from, resolved before any work.
struct Job<'a> {
    model: &'a FunctionModel,
    plan: &'a BuildPlan,
    options: &'a BuildOptions,
    policy: RulePolicy,
    context: CheckContext,
    cache: &'a Cache,
    reporter: &'a dyn Reporter,
}

/// What [`assemble`] made besides the image: the repaired base layers, the
/// `[system]` packages and the dependency install's archives.
type Assembled = (
    Image,
    Vec<RepairedLayer>,
    Vec<crate::system::InstalledPackage>,
    Vec<crate::sbom::KnownArchive>,
);

/// Resolves the base, then appends the plan's layers in order and returns the new image value.
fn assemble(job: &Job<'_>, source: &dyn source::ImageSource) -> Result<Assembled, BuildError> {
    let Job {
        model,
        plan,
        options,
        cache,
        reporter,
        ..
    } = *job;
    reporter.step(&format!("resolving base {}", source.describe()));
    let base = source.resolve(plan.arch, cache, reporter)?;
    let family = options.format.or(plan.format).unwrap_or(base.family());
    let (mut base_config, mut base_layers) = base.into_config_and_layers();
    let epoch = options.source_date_epoch.unwrap_or(DEFAULT_MTIME);
    let settings = LayerSettings {
        family,
        mtime: epoch,
        gzip_level: options.gzip_level,
        threads: options.threads,
    };
    let repaired = if model.base_repair || options.repair_base {
        base::repair_base(&mut base_config, &mut base_layers, &settings, cache, reporter)?
    } else {
        Vec::new()
    };
    let selections = preflight::select_layers(plan)?;
    preflight::refuse_oversized(&base_layers, plan, &selections, &options.limits, &job.policy)?;
    let mut selections = selections.into_iter();
    let mut base_layers: Vec<Layer> = base_layers
        .iter()
        .map(|l| base::to_family(l, family))
        .collect::<Result<_, _>>()?;
    let new_config = config::NewConfig::new(plan, family, epoch);
    // The config as it will be but for its layers, so the rules' scans of the
    // new layers can run while they are compressed (see `scan::build_scanned`).
    let scan_plan =
        ScanPlan::new(&new_config.apply(&base_config, &[])?, &job.context).map(std::sync::Arc::new);
    let deps_cache = scan::scanning_shared(
        cache,
        scan_plan.as_ref(),
        first_dependency_index(plan, base_layers.len()),
    );
    let prepared = crate::deps::prepare(model, &settings, options.install_timeout, &deps_cache, reporter)?;
    let mut deps = prepared.layers;

    let mut appended = Appended::default();
    let mut system_packages = Vec::new();
    for planned in &plan.layers {
        match planned.kind {
            LayerKind::Base => {
                // `[system]`: the packages' layer sits right above the base
                // (it changes least after the base) and installs over it.
                if let Some(system) = &plan.system {
                    let built = crate::system::system_layer(
                        system,
                        &base_layers,
                        plan.arch,
                        &settings,
                        cache,
                        reporter,
                    )?;
                    system_packages = built.packages;
                    appended.layers.append(&mut base_layers);
                    appended.push_new(built.layer, None, &plan.comment);
                } else {
                    appended.layers.append(&mut base_layers);
                }
            }
            LayerKind::Dependencies => {
                for layer in deps.drain(..) {
                    appended.push_new(layer, None, &plan.comment);
                }
            }
            LayerKind::User | LayerKind::Code => {
                let spec = planned.spec.as_ref().expect("a files layer has a spec");
                let source = planned.source.as_deref().expect("a files layer is described");
                reporter.step(&format!("layer {}", planned.name));
                let entries = selections.next().expect("one selection per files layer");
                let index = appended.layers.len();
                let layer = scan::build_scanned(
                    spec,
                    source,
                    entries,
                    &settings,
                    cache,
                    reporter,
                    scan_plan.as_ref().map(|plan| scan::StreamScans {
                        plan,
                        index,
                        sbom_packages: job.options.sbom_packages,
                    }),
                )?;
                appended.push_new(layer, Some(planned), &plan.comment);
            }
        }
    }

    let config = new_config.apply(&base_config, &appended.history)?;
    let image = Image::new(family, config, appended.layers, Some(&new_config.annotations));
    Ok((image, repaired, system_packages, prepared.archives))
}

/// Where the first dependency layer will sit in the image: after the base
/// (and its `[system]` layer) and the layers planned before them.
fn first_dependency_index(plan: &BuildPlan, base_layers: usize) -> usize {
    plan.layers
        .iter()
        .take_while(|p| p.kind != LayerKind::Dependencies)
        .map(|p| match p.kind {
            LayerKind::Base => base_layers + usize::from(plan.system.is_some()),
            _ => 1,
        })
        .sum()
}

/// The new image's layers and the history entries of those this build made.
#[derive(Default)]
struct Appended {
    layers: Vec<Layer>,
    history: Vec<HistoryEntry>,
}

impl Appended {
    /// Appends a layer this build made, with its history: the plan's text for
    /// a layer of the plan's own, else (a dependency or `[system]` layer, as
    /// its maker described it) made from the layer's description.
    fn push_new(&mut self, layer: Layer, planned: Option<&PlannedLayer>, comment: &str) {
        if let LayerOrigin::Built { name, source, .. } = &layer.origin {
            let created_by = match planned.and_then(|p| p.history.clone()) {
                Some(text) => text,
                None => crate::plan::created_by(name, source),
            };
            self.history.push(HistoryEntry {
                diff_id: layer.diff_id.clone(),
                created_by,
                comment: Some(comment.to_string()),
            });
        }
        self.layers.push(layer);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_plan_names_the_dependencies_as_deps_does() {
        assert_eq!(crate::plan::DEPENDENCIES_LAYERS, crate::deps::DEPENDENCIES_LAYER);
    }
}
