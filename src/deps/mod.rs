//! Dependency layers: the function's libraries installed for its platform
//! (pip, npm), its jars, or its custom-runtime bootstrap, as layers that sit
//! between the user's `[[layer]]`s and the code layer.
//!
//! An installed set is cached as a record `deps-v1/<key>.json` listing the
//! layers it became. The key hashes the dependency files' contents, the
//! runtime, the architecture, the destination, `split` and the layer
//! settings; the record also names the installer version that made it. A
//! build whose key has a record neither installs nor compresses anything; a
//! record made by another installer version is rebuilt when that installer
//! is found, and reused when no installer is on PATH at all (so a code-only
//! rebuild never needs pip or npm). Installs run in a temp dir inside the
//! cache; on any failure it is deleted and no record is written.

mod bootstrap;
mod error;
mod installer;
mod node;
mod probe_cache;
mod python;
mod split;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

pub use bootstrap::check_elf;
pub use error::DepsError;
pub use installer::{Installer, PackageInstaller};
pub use python::platform_tag;
pub use split::group_of;

use crate::cache::{Cache, CacheBucket, CacheEntry, CacheIoError, Found, SharedRecord};
use crate::image::{BlobLocation, Descriptor, Layer, LayerOrigin};
use crate::layer::{LayerInput, LayerRecord, LayerSettings, LayerSpec, build_layer};
use crate::manifest::{DependencySet, FunctionModel, Runtime};
use crate::report::Reporter;
use crate::sbom::KnownArchive;

/// Bumped when the same inputs would give different layers (normalisation, grouping).
pub const DEPS_FORMAT_VERSION: u32 = 1;
/// Name of the dependency layer (`dependencies-K` when split).
pub const DEPENDENCIES_LAYER: &str = "dependencies";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct DepsRecord {
    /// `pip 23.2.1`
    installer: String,
    layers: Vec<NamedRecord>,
    /// The archives the installer installed from, with their hashes (pip's
    /// report), for the SBOM. Kept here, not in a layer, so the layers' bytes
    /// are what they were; records made before it have none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    archives: Vec<KnownArchive>,
}

/// A function's dependency layers, in image order, and what the install
/// knew about the archives they came from.
#[derive(Debug, Default)]
pub struct Prepared {
    pub layers: Vec<Layer>,
    /// Empty when unknown: a copied set, an old record, an old pip, or a
    /// cache registry record written before records carried them.
    pub archives: Vec<KnownArchive>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct NamedRecord {
    name: String,
    #[serde(flatten)]
    record: LayerRecord,
}

/// Makes (or finds in the cache) the dependency layers of `model`, in image order.
/// An installer still running after `install_timeout` is stopped.
pub fn prepare(
    model: &FunctionModel,
    settings: &LayerSettings,
    install_timeout: std::time::Duration,
    cache: &Cache,
    reporter: &dyn Reporter,
) -> Result<Prepared, DepsError> {
    let Some(deps) = &model.dependencies else {
        return Ok(Prepared::default());
    };
    if let Some(inputs) = copied_inputs(model)? {
        return Ok(Prepared {
            layers: simple_layer(model, inputs, settings, cache, reporter)?,
            archives: Vec::new(),
        });
    }
    installed(
        model,
        &installed_files(&deps.set),
        settings,
        install_timeout,
        cache,
        reporter,
    )
}

/// The input key of a function's dependency layers, computed as [`prepare`]
/// computes it but without installing or compressing anything, and the files
/// it is made from (for `lambda-img plan`).
#[derive(Debug, Clone)]
pub struct DependencyKey {
    /// `dependencies` (all layers of a split set share the one key).
    pub layer: String,
    pub key: String,
    /// The dependency files the key hashes (requirements and what it
    /// includes, package.json + lock) or the copied jars/bootstrap.
    pub files: Vec<PathBuf>,
    /// Every file a copied set (jars, bootstrap) puts in its layer.
    pub selected: Vec<PathBuf>,
}

/// See [`DependencyKey`]; `None` when the function has no dependency layer.
pub fn dependency_key(
    model: &FunctionModel,
    settings: &LayerSettings,
    cache: &Cache,
) -> Result<Option<DependencyKey>, DepsError> {
    let Some(deps) = &model.dependencies else {
        return Ok(None);
    };
    if let Some(inputs) = copied_inputs(model)? {
        let spec = LayerSpec {
            name: DEPENDENCIES_LAYER.into(),
            inputs,
        };
        let keyed = crate::layer::keyed_selection(&spec, settings, cache)?;
        let selected = keyed.sources();
        return Ok(Some(DependencyKey {
            layer: DEPENDENCIES_LAYER.into(),
            key: keyed.key,
            files: spec.inputs.into_iter().map(|i| i.source).collect(),
            selected,
        }));
    }
    let files = installed_files(&deps.set);
    let (key, files) = installed_key(model, &files, settings)?;
    Ok(Some(DependencyKey {
        layer: DEPENDENCIES_LAYER.into(),
        key,
        files,
        selected: Vec::new(),
    }))
}

/// The layer inputs of a set that is copied as it is (jars, a bootstrap);
/// `None` for one that is installed (pip, npm).
fn copied_inputs(model: &FunctionModel) -> Result<Option<Vec<LayerInput>>, DepsError> {
    let Some(deps) = &model.dependencies else {
        return Ok(None);
    };
    let dest = deps.destination.as_str();
    Ok(match &deps.set {
        DependencySet::Java { jars } => Some(
            jars.iter()
                .map(|j| {
                    let mut input = LayerInput::all(&j.path, format!("{}/", dest.trim_end_matches('/')));
                    if j.kind == crate::manifest::SourceKind::Dir {
                        input.destination = dest.to_string();
                        input.include = vec!["**/*.jar".into()];
                    }
                    input
                })
                .collect(),
        ),
        DependencySet::Bootstrap { path } => {
            check_elf(path, model.architecture)?;
            let mut input = LayerInput::all(path, dest);
            input.file_mode = Some(0o755);
            Some(vec![input])
        }
        DependencySet::Python { .. } | DependencySet::Node { .. } => None,
    })
}

/// The dependency files of an installed set, the requirements (or package.json) first.
fn installed_files(set: &DependencySet) -> Vec<&PathBuf> {
    match set {
        DependencySet::Python { requirements } => vec![requirements],
        DependencySet::Node {
            package_json,
            package_lock,
        } => vec![package_json, package_lock],
        DependencySet::Java { .. } | DependencySet::Bootstrap { .. } => Vec::new(),
    }
}

/// The cache key of an installed set and every file it hashes (those given
/// and, for pip, the files they include).
fn installed_key(
    model: &FunctionModel,
    files: &[&PathBuf],
    settings: &LayerSettings,
) -> Result<(String, Vec<PathBuf>), DepsError> {
    let deps = model.dependencies.as_ref().expect("caller checked");
    let mut read: Vec<PathBuf> = files.iter().map(|f| f.to_path_buf()).collect();
    let mut contents = Vec::new();
    for f in files {
        let bytes = std::fs::read(f).map_err(|source| DepsError::Read {
            path: f.to_path_buf(),
            source,
        })?;
        contents.push(bytes);
    }
    let installer = package_installer(model).expect("an installed set");
    // Files the requirements file pulls in (`-r`, `-c`) are inputs too.
    for included in installer.included_files()? {
        contents.push(included.name.into_bytes());
        contents.push(included.bytes);
        read.push(included.path);
    }
    let mut h = Sha256::new();
    let mut field = |b: &[u8]| {
        h.update((b.len() as u64).to_le_bytes());
        h.update(b);
    };
    field(b"lambda-img deps");
    field(&DEPS_FORMAT_VERSION.to_le_bytes());
    let format = settings.format();
    field(&format.version.to_le_bytes());
    field(model.runtime.to_string().as_bytes());
    field(model.architecture.to_string().as_bytes());
    field(installer.name().as_bytes());
    field(deps.destination.as_bytes());
    field(&deps.split.to_le_bytes());
    // No media family: it changes the layers' media type, not their bytes.
    field(&format.mtime.to_le_bytes());
    field(&format.gzip_level.to_le_bytes());
    field(&format.block_size.to_le_bytes());
    for c in &contents {
        field(c);
    }
    Ok((hex::encode(h.finalize()), read))
}

/// The installer of an installed set (pip, npm); `None` for a copied one
/// (jars, a bootstrap).
fn package_installer(model: &FunctionModel) -> Option<Box<dyn PackageInstaller + '_>> {
    let deps = model.dependencies.as_ref()?;
    let destination = deps.destination.as_str();
    match (&deps.set, model.runtime) {
        (DependencySet::Python { requirements }, Runtime::Python { minor }) => Some(Box::new(python::Pip {
            requirements,
            minor,
            arch: model.architecture,
            destination,
        })),
        (
            DependencySet::Node {
                package_json,
                package_lock,
            },
            _,
        ) => Some(Box::new(node::Npm {
            package_json,
            package_lock,
            arch: model.architecture,
            destination,
        })),
        _ => None,
    }
}

/// Jars and bootstraps: plain files, cached by the layer cache like any layer.
fn simple_layer(
    model: &FunctionModel,
    inputs: Vec<LayerInput>,
    settings: &LayerSettings,
    cache: &Cache,
    reporter: &dyn Reporter,
) -> Result<Vec<Layer>, DepsError> {
    let description = inputs
        .iter()
        .map(|i| {
            format!(
                "{} → {}",
                crate::manifest::project_relative(&i.source, &model.project_dir),
                i.destination
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let spec = LayerSpec {
        name: DEPENDENCIES_LAYER.into(),
        inputs,
    };
    let mut layer = build_layer(&spec, settings, cache, reporter)?;
    if let LayerOrigin::Built { source, .. } = &mut layer.origin {
        *source = description;
    }
    Ok(vec![layer])
}

fn installed(
    model: &FunctionModel,
    files: &[&PathBuf],
    settings: &LayerSettings,
    install_timeout: std::time::Duration,
    cache: &Cache,
    reporter: &dyn Reporter,
) -> Result<Prepared, DepsError> {
    let deps = model.dependencies.as_ref().expect("caller checked");
    let (key, _) = installed_key(model, files, settings)?;
    let manager = package_installer(model).expect("installed() is called for pip and npm sets only");
    let installer_name = manager.name();
    let probe = manager.probe(cache);
    let description = format!(
        "{} → {}",
        files
            .iter()
            .map(|f| crate::manifest::project_relative(f, &model.project_dir))
            .collect::<Vec<_>>()
            .join(" + "),
        deps.destination
    );
    let hit = |rec: DepsRecord, why: &str| {
        reporter.detail(&format!("dependencies: cache hit {key} ({}{why})", rec.installer));
        prepared(&rec, to_layers(&rec, &description, settings, cache, true, false))
    };
    let usable = |rec: &DepsRecord| match &probe {
        Some(i) if i.id() != rec.installer => {
            reporter.detail(&format!(
                "dependencies: installed by {}, now {}: installing again",
                rec.installer,
                i.id()
            ));
            false
        }
        _ => true,
    };
    // Another build sharing the cache may be installing the same set right now.
    let found = cache.get_or_build_shared(CacheBucket::Deps, &key, usable, reporter, || {
        let installer = probe
            .clone()
            .ok_or_else(|| manager.missing(&files[0].to_path_buf()))?;
        install_set(
            model,
            (manager.as_ref(), &installer),
            settings,
            install_timeout,
            &description,
            cache,
            reporter,
        )
    })?;
    let record = match found {
        Found::Hit(rec) => {
            let why = if probe.is_none() {
                format!("; {installer_name} is not on PATH, which a cached set does not need")
            } else {
                String::new()
            };
            return Ok(hit(rec, &why));
        }
        Found::BuiltMeanwhile(rec) => return Ok(hit(rec, "; installed meanwhile by another build")),
        Found::Shared(rec) => {
            reporter.detail(&format!(
                "dependencies: from the cache registry {key} ({})",
                rec.installer
            ));
            return Ok(prepared(
                &rec,
                to_layers(&rec, &description, settings, cache, true, true),
            ));
        }
        Found::Built(rec) => rec,
    };
    reporter.task_done(
        DEPS_TASK,
        &format!(
            "dependencies: {} layer(s) from {}",
            record.layers.len(),
            record.installer
        ),
    );
    Ok(prepared(
        &record,
        to_layers(&record, &description, settings, cache, false, false),
    ))
}

fn prepared(record: &DepsRecord, layers: Vec<Layer>) -> Prepared {
    Prepared {
        layers,
        archives: record.archives.clone(),
    }
}

/// The progress task of an install.
const DEPS_TASK: &str = "dependencies";

/// Installs the set into a staging directory of the cache and builds its layers.
fn install_set(
    model: &FunctionModel,
    // The kind of installer (pip, npm) and the program found for it.
    (manager, installer): (&dyn PackageInstaller, &Installer),
    settings: &LayerSettings,
    install_timeout: std::time::Duration,
    description: &str,
    cache: &Cache,
    reporter: &dyn Reporter,
) -> Result<DepsRecord, DepsError> {
    let deps = model.dependencies.as_ref().expect("caller checked");
    let cache_err = |source| DepsError::Cache {
        path: cache.root().to_path_buf(),
        source,
    };
    let work = tempfile::Builder::new()
        .prefix("deps-")
        .tempdir_in(cache.root().join("tmp"))
        .map_err(cache_err)?;
    let home = work.path().join("home");
    let run_env = installer::RunEnv {
        home: &home,
        timeout: install_timeout,
    };
    let staging = work.path().join("staging");
    for d in [&home, &staging] {
        std::fs::create_dir_all(d).map_err(cache_err)?;
    }
    let task = DEPS_TASK;
    reporter.task_start(
        task,
        &format!("installing {description} with {}", installer.id()),
        None,
    );
    let (tree, dest) = manager.install(installer, &staging, &run_env, reporter)?;
    let owners = match tree.is_dir() {
        true => manager.owners(&tree)?,
        false => Default::default(),
    };
    let archives = manager.archives(&staging).unwrap_or_else(|e| {
        // Only the SBOM's hashes depend on it: the install itself succeeded.
        reporter.warn(&format!(
            "{e}; the SBOM lists these packages without their archives' hashes"
        ));
        Vec::new()
    });
    let mut record = DepsRecord {
        installer: installer.id(),
        layers: Vec::new(),
        archives,
    };
    for (k, globs) in split::groups(&owners, deps.split).into_iter().enumerate() {
        if globs.is_empty() {
            continue;
        }
        let name = if deps.split == 1 {
            DEPENDENCIES_LAYER.to_string()
        } else {
            format!("{DEPENDENCIES_LAYER}-{}", k + 1)
        };
        let mut input = LayerInput::all(&tree, dest.clone());
        if deps.split > 1 {
            input.include = globs;
        }
        let spec = LayerSpec {
            name: name.clone(),
            inputs: vec![input],
        };
        // The pieces are shared as part of the set's record, not on their own.
        let layer = build_layer(&spec, settings, &cache.local_only(), reporter)?;
        // The stat index of a staging dir that is about to be deleted is never read again.
        crate::layer::forget_stat_index(cache, &spec);
        record.layers.push(NamedRecord {
            name,
            record: LayerRecord {
                digest: layer.descriptor.digest.clone(),
                size: layer.descriptor.size,
                diff_id: layer.diff_id.clone(),
                uncompressed_size: layer.uncompressed_size,
            },
        });
    }
    Ok(record)
}

fn to_layers(
    rec: &DepsRecord,
    description: &str,
    settings: &LayerSettings,
    cache: &Cache,
    cached: bool,
    from_cache_registry: bool,
) -> Vec<Layer> {
    rec.layers
        .iter()
        .map(|l| Layer {
            descriptor: Descriptor::new(
                settings.family.layer_gzip(),
                l.record.digest.clone(),
                l.record.size,
            ),
            diff_id: l.record.diff_id.clone(),
            uncompressed_size: l.record.uncompressed_size,
            location: BlobLocation::File(cache.blob_path(&l.record.digest)),
            origin: LayerOrigin::Built {
                name: l.name.clone(),
                source: description.to_string(),
                cached,
                from_cache_registry,
            },
        })
        .collect()
}

impl CacheEntry for DepsRecord {
    fn blobs(&self) -> Vec<(&crate::image::Digest, u64)> {
        self.layers
            .iter()
            .map(|l| (&l.record.digest, l.record.size))
            .collect()
    }

    fn to_shared(&self) -> Option<SharedRecord> {
        Some(SharedRecord {
            installer: Some(self.installer.clone()),
            layers: self.layers.iter().map(|l| l.record.shared(&l.name)).collect(),
            // Always written, `[]` too: another machine's SBOM names the
            // same wheel hashes as this one's (they are in its memo key).
            extra: Some(serde_json::to_string(&self.archives).expect("archives serialise")),
        })
    }

    /// A shared record of a dependency set names its installer. Its
    /// archives are what it carries (none from a record written before they
    /// were shared); archives that do not read make the record unusable.
    fn from_shared(shared: SharedRecord) -> Option<DepsRecord> {
        let archives = match &shared.extra {
            Some(text) => serde_json::from_str(text).ok()?,
            None => Vec::new(),
        };
        Some(DepsRecord {
            installer: shared.installer?,
            archives,
            layers: shared
                .layers
                .into_iter()
                .map(|l| NamedRecord {
                    name: l.name.clone(),
                    record: l.into(),
                })
                .collect(),
        })
    }
}

impl From<CacheIoError> for DepsError {
    fn from(e: CacheIoError) -> DepsError {
        DepsError::Cache {
            path: e.path,
            source: e.source,
        }
    }
}
