//! Building a layer end to end: select → key → cache lookup → tar → parallel
//! gzip → cache blob + record.

use serde::{Deserialize, Serialize};

use super::cache_key::{content_digests, key_while_writing, layer_key, spec_identity};
use super::select::{EntryKind, Selection, select};
use super::tar_writer::{write_tar_into_blocks, write_tar_into_blocks_hashing};
use super::{LayerError, LayerSettings, LayerSpec};
use crate::cache::{Cache, CacheBucket, CacheEntry, CacheIoError, Found, SharedLayer, SharedRecord};
use crate::gzip::{Block, compress_to_blob};
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
    observe: &(dyn Fn(&Block) + Sync),
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
    observe: &(dyn Fn(&Block) + Sync),
) -> Result<Layer, LayerError> {
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
    // Compresses the layer, its tar written by `write` (progress counts tar
    // bytes, known exactly from the selection).
    let compress = |entries: &Selection, write: &mut WriteTar<'_>| {
        let total = super::tar_writer::tar_size(entries);
        reporter.task_start(&task, &format!("layer {}", spec.name), Some(total));
        let on_block = |block: &Block| {
            reporter.task_progress(&task, block.len() as u64);
            observe(block);
        };
        let summary = compress_to_blob(settings.gzip_level, settings.threads, cache, &on_block, |sink| {
            write(sink)
        })?;
        Ok::<_, LayerError>(LayerRecord {
            digest: summary.compressed_digest,
            size: summary.compressed_size,
            diff_id: summary.uncompressed_digest,
            uncompressed_size: summary.uncompressed_size,
        })
    };
    let done = |rec: &LayerRecord| {
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
    };
    if nothing_to_find(cache)
        && let Some(rec) = build_in_new_cache(spec, &entries, settings, cache, reporter, &compress)?
    {
        done(&rec);
        return Ok(layer(&rec, false, false));
    }
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
    // Another build sharing the cache may be compressing this layer right now.
    let found = cache.get_or_build_shared(
        CacheBucket::Layers,
        &key,
        |_| true,
        reporter,
        || {
            compress(&entries, &mut |sink| {
                write_tar_into_blocks(&entries, settings.mtime, sink)
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
    done(&rec);
    Ok(layer(&rec, false, false))
}

/// Writes a layer's tar into the compressor.
type WriteTar<'a> = dyn FnMut(&mut crate::gzip::BlockSink<'_>) -> Result<(), LayerError> + 'a;
/// Compresses the tar a [`WriteTar`] writes into the cache, with progress.
type Compress<'a> = dyn Fn(&Selection, &mut WriteTar<'_>) -> Result<LayerRecord, LayerError> + 'a;

/// Whether no layer record could be found in `cache` whatever the key: its
/// layer bucket is empty and it has no second level (a first build on a new
/// machine, or a CI runner that keeps no cache).
fn nothing_to_find(cache: &Cache) -> bool {
    cache.second_level().is_none()
        && std::fs::read_dir(cache.bucket_dir(CacheBucket::Layers)).map_or(true, |mut d| d.next().is_none())
}

/// Builds a layer in a cache where no record could be found (see
/// [`nothing_to_find`]): the key is not needed before compressing, so each
/// file is hashed for it from the read that compresses it, not read a first
/// time beforehand (at 2 GB, that read and hash was 0.4 s of both cores
/// before any compression). The record, the key and the stat index come out
/// as [`keyed`] and the cache would have made them. Builds of the same spec
/// take turns: one that finds a record made meanwhile answers `None`, and
/// takes the usual way to it.
fn build_in_new_cache(
    spec: &LayerSpec,
    entries: &Selection,
    settings: &LayerSettings,
    cache: &Cache,
    reporter: &dyn Reporter,
    compress: &Compress<'_>,
) -> Result<Option<LayerRecord>, LayerError> {
    let spec_id = spec_identity(spec);
    let lock_name = format!("new-layer-{spec_id}");
    let _turn = cache.lock(&lock_name).map_err(|source| LayerError::Cache {
        path: cache.root().join("locks").join(format!("{lock_name}.lock")),
        source,
    })?;
    if !nothing_to_find(cache) {
        return Ok(None);
    }
    let made = key_while_writing(cache, &spec_id, settings, |each| {
        compress(entries, &mut |sink| {
            write_tar_into_blocks_hashing(entries, settings.mtime, sink, each)
        })
    })?;
    let Some((rec, key)) = made else {
        return Ok(None);
    };
    cache
        .put_record(CacheBucket::Layers, &key, &rec)
        .map_err(|source| LayerError::Cache {
            path: cache.record_path(CacheBucket::Layers, &key),
            source,
        })?;
    reporter.detail(&format!(
        "layer {}: {} entries, {} files hashed as they were compressed (a new cache: no record to look up)",
        spec.name,
        entries.len(),
        entries.files()
    ));
    Ok(Some(rec))
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
