//! Building a layer end to end: select → key → cache lookup → tar → parallel
//! gzip → cache blob + record.

use serde::{Deserialize, Serialize};

use super::cache_key::{content_digests, layer_key, spec_identity};
use super::select::{EntryKind, Selection, select};
use super::tar_writer::write_tar_into_blocks;
use super::{LayerError, LayerSettings, LayerSpec};
use crate::cache::{Cache, CacheBucket, CacheEntry, CacheIoError, Found, SharedLayer, SharedRecord};
use crate::gzip::compress_to_blob;
use crate::image::{BlobLocation, Descriptor, Digest, Layer, LayerOrigin};
use crate::report::Reporter;

/// What the cache remembers about a built layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    pub digest: Digest,
    pub size: u64,
    pub diff_id: Digest,
    pub uncompressed_size: u64,
}

impl CacheEntry for LayerRecord {
    fn blobs(&self) -> Vec<(&Digest, u64)> {
        vec![(&self.digest, self.size)]
    }

    fn to_shared(&self) -> Option<SharedRecord> {
        Some(SharedRecord {
            installer: None,
            layers: vec![self.shared("layer")],
            extra: None,
        })
    }

    fn from_shared(shared: SharedRecord) -> Option<LayerRecord> {
        let [layer] = <[SharedLayer; 1]>::try_from(shared.layers).ok()?;
        shared.installer.is_none().then(|| layer.into())
    }
}

impl LayerRecord {
    /// The record as one layer of a shared record, named `name`.
    pub fn shared(&self, name: &str) -> SharedLayer {
        SharedLayer {
            name: name.to_string(),
            digest: self.digest.clone(),
            size: self.size,
            diff_id: self.diff_id.clone(),
            uncompressed_size: self.uncompressed_size,
        }
    }
}

impl From<SharedLayer> for LayerRecord {
    fn from(l: SharedLayer) -> LayerRecord {
        LayerRecord {
            digest: l.digest,
            size: l.size,
            diff_id: l.diff_id,
            uncompressed_size: l.uncompressed_size,
        }
    }
}

impl From<CacheIoError> for LayerError {
    fn from(e: CacheIoError) -> LayerError {
        LayerError::Cache {
            path: e.path,
            source: e.source,
        }
    }
}

/// A layer's file selection and the cache key it hashes to.
#[derive(Debug)]
pub struct KeyedSelection {
    pub entries: Selection,
    /// The layer's input key (the `layers-v1` record name).
    pub key: String,
    /// Regular files among `entries`.
    pub files: usize,
    /// Files that had to be read to hash them (the rest came from the stat index).
    pub read: usize,
}

impl KeyedSelection {
    /// The files on disk the selection puts in the layer, in layer order.
    pub fn sources(&self) -> Vec<std::path::PathBuf> {
        self.entries
            .iter()
            .filter_map(|e| match e.kind {
                EntryKind::File { source, .. } => Some(source.path()),
                _ => None,
            })
            .collect()
    }
}

/// Selects the files of `spec` and computes its cache key, exactly as a
/// build does before it compresses anything (`lambda-img plan` stops here).
pub fn keyed_selection(
    spec: &LayerSpec,
    settings: &LayerSettings,
    cache: &Cache,
) -> Result<KeyedSelection, LayerError> {
    keyed(spec, select(spec)?, settings, cache)
}

/// [`keyed_selection`] of a selection already made (the build selects every
/// layer first, to refuse an oversized image before compressing anything).
pub fn keyed(
    spec: &LayerSpec,
    entries: Selection,
    settings: &LayerSettings,
    cache: &Cache,
) -> Result<KeyedSelection, LayerError> {
    let spec_id = spec_identity(spec);
    let (digests, read) = content_digests(&entries, cache, &spec_id, settings.threads)?;
    let files = digests.iter().filter(|d| d.is_some()).count();
    let key = layer_key(&entries, &digests, settings);
    Ok(KeyedSelection {
        entries,
        key,
        files,
        read,
    })
}

/// Builds (or finds in the cache) the gzip layer described by `spec`.
pub fn build_layer(
    spec: &LayerSpec,
    settings: &LayerSettings,
    cache: &Cache,
    reporter: &dyn Reporter,
) -> Result<Layer, LayerError> {
    build_layer_observed(spec, &describe(spec), settings, cache, reporter, &|_| {})
}

/// [`build_layer`], described as `source` (the plan's words, paths relative
/// to the project, where [`build_layer`] names the inputs' absolute paths),
/// showing `observe` the uncompressed tar, block by block in order, when the
/// layer is compressed (a layer found in the cache shows nothing).
pub fn build_layer_observed(
    spec: &LayerSpec,
    source: &str,
    settings: &LayerSettings,
    cache: &Cache,
    reporter: &dyn Reporter,
    observe: &(dyn Fn(&[u8]) + Sync),
) -> Result<Layer, LayerError> {
    build_selected(spec, select(spec)?, source, settings, cache, reporter, observe)
}

/// [`build_layer_observed`] of a selection already made.
pub fn build_selected(
    spec: &LayerSpec,
    entries: Selection,
    source: &str,
    settings: &LayerSettings,
    cache: &Cache,
    reporter: &dyn Reporter,
    observe: &(dyn Fn(&[u8]) + Sync),
) -> Result<Layer, LayerError> {
    let KeyedSelection {
        entries,
        key,
        files,
        read,
    } = keyed(spec, entries, settings, cache)?;
    reporter.detail(&format!(
        "layer {}: {} entries, {files} files, {read} read to hash, {} from the stat index",
        spec.name,
        entries.len(),
        files - read
    ));
    let task = format!("layer:{}", spec.name);
    let layer = |rec: &LayerRecord, cached: bool, from_cache_registry: bool| Layer {
        descriptor: Descriptor::new(settings.family.layer_gzip(), rec.digest.clone(), rec.size),
        diff_id: rec.diff_id.clone(),
        uncompressed_size: rec.uncompressed_size,
        location: BlobLocation::File(cache.blob_path(&rec.digest)),
        origin: LayerOrigin::Built {
            name: spec.name.clone(),
            source: source.to_string(),
            cached,
            from_cache_registry,
        },
    };
    // Another build sharing the cache may be compressing this layer right now.
    let found = cache.get_or_build_shared(
        CacheBucket::Layers,
        &key,
        |_| true,
        reporter,
        || {
            // Progress counts tar bytes, known exactly from the selection.
            let total = super::tar_writer::tar_size(&entries);
            reporter.task_start(&task, &format!("layer {}", spec.name), Some(total));
            let on_block = |block: &[u8]| {
                reporter.task_progress(&task, block.len() as u64);
                observe(block);
            };
            let summary =
                compress_to_blob(settings.gzip_level, settings.threads, cache, &on_block, |sink| {
                    write_tar_into_blocks(&entries, settings.mtime, sink)
                })?;
            Ok::<_, LayerError>(LayerRecord {
                digest: summary.compressed_digest,
                size: summary.compressed_size,
                diff_id: summary.uncompressed_digest,
                uncompressed_size: summary.uncompressed_size,
            })
        },
    )?;
    let rec = match found {
        Found::Hit(rec) => {
            reporter.detail(&format!("layer {}: cache hit {}", spec.name, rec.digest));
            return Ok(layer(&rec, true, false));
        }
        Found::Shared(rec) => {
            reporter.detail(&format!(
                "layer {}: from the cache registry {}",
                spec.name, rec.digest
            ));
            return Ok(layer(&rec, true, true));
        }
        Found::BuiltMeanwhile(rec) => {
            reporter.detail(&format!(
                "layer {}: built meanwhile by another process",
                spec.name
            ));
            return Ok(layer(&rec, true, false));
        }
        Found::Built(rec) => rec,
    };
    reporter.task_done(
        &task,
        &format!(
            "layer {}: {} ({} compressed, {} uncompressed)",
            spec.name,
            rec.digest,
            crate::report::human_bytes(rec.size),
            crate::report::human_bytes(rec.uncompressed_size)
        ),
    );
    Ok(layer(&rec, false, false))
}

/// `./src → /var/task, ./bootstrap → /var/runtime/` for reports.
fn describe(spec: &LayerSpec) -> String {
    spec.inputs
        .iter()
        .map(|i| format!("{} → {}", i.source.display(), i.destination))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
#[path = "build_tests.rs"]
mod tests;
