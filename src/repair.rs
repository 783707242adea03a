//! `[base] repair = true` / `build --repair-base`: base layers that break a
//! repairable Lambda rule are rewritten into new layers, deterministically.
//!
//! Lambda's unpacker rejects hard-link entries (LI040) and entries whose
//! parent directory has no earlier entry in the layer (LI041); Debian-derived
//! bases carry hard links (`perl`, `gzip`). A repaired layer holds the same
//! files: each hard link becomes a regular file with its target's header and
//! bytes, and each missing parent is written as a directory (0755, root, the
//! child's mtime) just before its first child. Every other header field, PAX
//! records (xattrs, file capabilities) included, is copied. The output depends
//! only on the layer's bytes and the gzip settings, so it is cached by them.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, Write};
use std::path::PathBuf;

use flate2::read::MultiGzDecoder;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::cache::{Cache, CacheBucket};
use crate::gzip::compress_into_cache;
use crate::image::{BlobLocation, Compression, Descriptor, Digest, Layer, LayerOrigin, MediaKind, classify};
use crate::layer::{LayerError, LayerSettings};
use crate::tar_walk::{normalize, parent};

const REPAIRED_BUCKET: CacheBucket = CacheBucket::RepairedBase;

/// What the rewrite of one base layer changed and cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairedLayer {
    /// Position in the image (0-based).
    pub index: usize,
    pub from: Digest,
    pub to: Digest,
    pub hard_links: usize,
    pub parents_added: usize,
    /// Compressed bytes of the new blob: stored and pushed, no longer shared
    /// with the base image (its original blob is not referenced any more).
    pub unshared_bytes: u64,
}

#[derive(Serialize, Deserialize)]
struct Record {
    descriptor_digest: Digest,
    size: u64,
    diff_id: Digest,
    uncompressed_size: u64,
    hard_links: usize,
    parents_added: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    #[error("cannot read base layer {layer} to repair it: {source}")]
    Read { layer: Digest, source: io::Error },
    #[error(
        "base layer {layer} has a hard link {link} -> {target}, whose target is not an earlier file of \
         the same layer, so it cannot be rewritten as a file; rebuild the base image without it"
    )]
    LinkTarget {
        layer: Digest,
        link: String,
        target: String,
    },
    #[error("base layer {layer} has media type {media_type}, which lambda-img cannot rewrite")]
    Unreadable { layer: Digest, media_type: String },
    #[error(transparent)]
    Layer(#[from] LayerError),
}

/// Rewrites every layer of `layers` (the base's) that needs it, in place;
/// returns what was rewritten, in layer order.
pub fn repair_base_layers(
    layers: &mut [Layer],
    settings: &LayerSettings,
    cache: &Cache,
) -> Result<Vec<RepairedLayer>, RepairError> {
    let mut out = Vec::new();
    for (index, layer) in layers.iter_mut().enumerate() {
        let key = Digest::of(
            format!(
                "repair-v1 {} {} {:?}",
                layer.descriptor.digest, settings.gzip_level, settings.family
            )
            .as_bytes(),
        );
        let cached: Option<Record> = cache
            .get_record(REPAIRED_BUCKET, key.hex())
            .filter(|r: &Record| cache.blob_path(&r.descriptor_digest).is_file());
        let (record, was_cached) = match cached {
            Some(r) => (r, true),
            None => match rewrite(layer, settings, cache)? {
                Some(r) => {
                    // A failed write only costs a rewrite next time.
                    let _ = cache.put_record(REPAIRED_BUCKET, key.hex(), &r);
                    (r, false)
                }
                None => continue,
            },
        };
        if record.hard_links == 0 && record.parents_added == 0 {
            continue;
        }
        let from = layer.descriptor.digest.clone();
        out.push(RepairedLayer {
            index,
            from: from.clone(),
            to: record.descriptor_digest.clone(),
            hard_links: record.hard_links,
            parents_added: record.parents_added,
            unshared_bytes: record.size,
        });
        *layer = Layer {
            descriptor: Descriptor::new(
                settings.family.layer_gzip(),
                record.descriptor_digest.clone(),
                record.size,
            ),
            diff_id: record.diff_id,
            uncompressed_size: record.uncompressed_size,
            location: BlobLocation::File(cache.blob_path(&record.descriptor_digest)),
            origin: LayerOrigin::Built {
                name: format!("base-repair-{}", index + 1),
                source: format!("base layer {} {from}, repaired", index + 1),
                cached: was_cached,
                from_cache_registry: false,
            },
        };
    }
    Ok(out)
}

/// Some writers (umoci 0.4) end a layer right after the last entry's
/// content, without padding or end-of-archive blocks; the blob's digest was
/// verified, so zeros stand in for what the tar reader expects there.
struct PadEnd<R> {
    inner: R,
    count: u64,
    tail: Option<u64>,
}

impl<R: Read> Read for PadEnd<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.tail.is_none() {
            let n = self.inner.read(buf)?;
            if n > 0 || buf.is_empty() {
                self.count += n as u64;
                return Ok(n);
            }
            self.tail = Some((512 - self.count % 512) % 512 + 1024);
        }
        let left = self.tail.as_mut().expect("set above");
        let n = (*left).min(buf.len() as u64) as usize;
        buf[..n].fill(0);
        *left -= n as u64;
        Ok(n)
    }
}

/// The uncompressed tar stream of a layer blob.
fn open_tar(layer: &Layer) -> Result<PadEnd<Box<dyn Read>>, RepairError> {
    let inner = open_blob(layer)?;
    Ok(PadEnd {
        inner,
        count: 0,
        tail: None,
    })
}

fn open_blob(layer: &Layer) -> Result<Box<dyn Read>, RepairError> {
    let BlobLocation::File(path) = &layer.location;
    let read_err = |source| RepairError::Read {
        layer: layer.descriptor.digest.clone(),
        source,
    };
    let file = BufReader::with_capacity(1 << 16, File::open(path).map_err(read_err)?);
    match classify(&layer.descriptor.media_type) {
        MediaKind::Layer {
            compression: Compression::Gzip,
            ..
        } => Ok(Box::new(MultiGzDecoder::new(file))),
        MediaKind::Layer {
            compression: Compression::None,
            ..
        } => Ok(Box::new(file)),
        _ => Err(RepairError::Unreadable {
            layer: layer.descriptor.digest.clone(),
            media_type: layer.descriptor.media_type.clone(),
        }),
    }
}

/// What the first pass learns: whether anything needs repair, and which
/// files hard links point at (their bytes are kept in the second pass).
fn survey(layer: &Layer) -> Result<(bool, HashSet<String>), RepairError> {
    let read_err = |source| RepairError::Read {
        layer: layer.descriptor.digest.clone(),
        source,
    };
    let mut archive = tar::Archive::new(open_tar(layer)?);
    let mut targets = HashSet::new();
    let mut dirs: HashSet<String> = HashSet::new();
    let mut needed = false;
    for entry in archive.entries().map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        let path = normalize(&String::from_utf8_lossy(&entry.path_bytes()));
        if path.is_empty() {
            continue;
        }
        let kind = entry.header().entry_type();
        let dir = parent(&path);
        needed |= !dir.is_empty() && !dirs.contains(dir);
        if kind == tar::EntryType::Directory {
            dirs.insert(path.clone());
        }
        if kind == tar::EntryType::Link {
            needed = true;
            if let Some(t) = entry.link_name_bytes() {
                targets.insert(normalize(&String::from_utf8_lossy(&t)));
            }
        }
    }
    Ok((needed, targets))
}

/// Rewrites one layer, or `None` when it needs no repair.
fn rewrite(layer: &Layer, settings: &LayerSettings, cache: &Cache) -> Result<Option<Record>, RepairError> {
    let (needed, targets) = survey(layer)?;
    if !needed {
        return Ok(None);
    }
    let digest = layer.descriptor.digest.clone();
    let read_err = |source| RepairError::Read {
        layer: digest.clone(),
        source,
    };
    let cache_err = |source| {
        RepairError::Layer(LayerError::Cache {
            path: cache.root().to_path_buf(),
            source,
        })
    };
    let mut tar_file = cache.temp_file().map_err(cache_err)?;
    let mut kept: HashMap<String, (tar::Header, tempfile::NamedTempFile)> = HashMap::new();
    let (mut hard_links, mut parents_added) = (0, 0);
    {
        let mut out = tar::Builder::new(io::BufWriter::new(tar_file.as_file_mut()));
        let mut dirs: HashSet<String> = HashSet::new();
        let mut archive = tar::Archive::new(open_tar(layer)?);
        for entry in archive.entries().map_err(read_err)? {
            let mut entry = entry.map_err(read_err)?;
            let raw_path = entry.path_bytes().into_owned();
            let path = normalize(&String::from_utf8_lossy(&raw_path));
            let mut header = entry.header().clone();
            let kind = header.entry_type();
            if matches!(kind, tar::EntryType::XGlobalHeader) {
                continue;
            }
            if !path.is_empty() {
                parents_added +=
                    add_parents(&mut out, &mut dirs, &path, header.mtime().unwrap_or(0)).map_err(read_err)?;
            }
            if kind == tar::EntryType::Directory {
                dirs.insert(path.clone());
            }
            let pax: Vec<(String, Vec<u8>)> = match entry.pax_extensions().map_err(read_err)? {
                Some(exts) => exts
                    .filter_map(Result::ok)
                    .filter(|e| !matches!(e.key(), Ok("path" | "linkpath" | "size")))
                    .filter_map(|e| Some((e.key().ok()?.to_string(), e.value_bytes().to_vec())))
                    .collect(),
                None => Vec::new(),
            };
            if !pax.is_empty() {
                out.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                    .map_err(read_err)?;
            }
            match kind {
                tar::EntryType::Link => {
                    hard_links += 1;
                    let target = entry
                        .link_name_bytes()
                        .map(|t| normalize(&String::from_utf8_lossy(&t)))
                        .unwrap_or_default();
                    let Some((target_header, bytes)) = kept.get_mut(&target) else {
                        return Err(RepairError::LinkTarget {
                            layer: digest.clone(),
                            link: format!("/{path}"),
                            target: format!("/{target}"),
                        });
                    };
                    let mut file_header = target_header.clone();
                    let file = bytes.as_file_mut();
                    file.rewind().map_err(read_err)?;
                    out.append_data(&mut file_header, &path, file).map_err(read_err)?;
                }
                tar::EntryType::Regular | tar::EntryType::Continuous if targets.contains(&path) => {
                    let mut copy = cache.temp_file().map_err(cache_err)?;
                    io::copy(&mut entry, copy.as_file_mut()).map_err(read_err)?;
                    copy.as_file_mut().rewind().map_err(read_err)?;
                    out.append_data(&mut header, &path, copy.as_file_mut())
                        .map_err(read_err)?;
                    kept.insert(path.clone(), (header, copy));
                }
                tar::EntryType::Symlink => {
                    let target = entry
                        .link_name_bytes()
                        .map(|t| t.into_owned())
                        .unwrap_or_default();
                    out.append_link(
                        &mut header,
                        &path,
                        PathBuf::from(String::from_utf8_lossy(&target).into_owned()),
                    )
                    .map_err(read_err)?;
                }
                _ => {
                    let name = if path.is_empty() {
                        String::from_utf8_lossy(&raw_path).into_owned()
                    } else if kind == tar::EntryType::Directory {
                        format!("{path}/")
                    } else {
                        path.clone()
                    };
                    out.append_data(&mut header, name, &mut entry).map_err(read_err)?;
                }
            }
        }
        out.into_inner().map_err(read_err)?.flush().map_err(read_err)?;
    }
    tar_file.as_file_mut().rewind().map_err(read_err)?;
    let summary = compress_into_cache(
        tar_file.as_file_mut(),
        settings.gzip_level,
        settings.threads,
        cache,
    )
    .map_err(LayerError::from)?;
    Ok(Some(Record {
        descriptor_digest: summary.compressed_digest,
        size: summary.compressed_size,
        diff_id: summary.uncompressed_digest,
        uncompressed_size: summary.uncompressed_size,
        hard_links,
        parents_added,
    }))
}

/// Writes the missing ancestors of `path` as directories; returns how many.
fn add_parents(
    out: &mut tar::Builder<impl Write>,
    dirs: &mut HashSet<String>,
    path: &str,
    mtime: u64,
) -> io::Result<usize> {
    let mut missing = Vec::new();
    let mut dir = parent(path);
    while !dir.is_empty() && !dirs.contains(dir) {
        missing.push(dir.to_string());
        dir = parent(dir);
    }
    for d in missing.iter().rev() {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(mtime);
        h.set_size(0);
        out.append_data(&mut h, format!("{d}/"), io::empty())?;
        dirs.insert(d.clone());
    }
    Ok(missing.len())
}

/// The base config with each repaired layer's diff_id replaced and its
/// history entry saying so (placeholders stand in for a `null` history).
pub fn repaired_config(
    config: &[u8],
    repaired: &[RepairedLayer],
    diff_ids: &[Digest],
) -> Result<Vec<u8>, String> {
    let mut root: Value = serde_json::from_slice(config).map_err(|e| e.to_string())?;
    let obj = root.as_object_mut().ok_or("the config is not an object")?;
    if let Some(ids) = obj
        .get_mut("rootfs")
        .and_then(|r| r.get_mut("diff_ids"))
        .and_then(Value::as_array_mut)
    {
        for r in repaired {
            if let Some(slot) = ids.get_mut(r.index) {
                *slot = Value::String(diff_ids[r.index].to_string());
            }
        }
    }
    let history = obj.entry("history").or_insert(Value::Null);
    if history.is_null() {
        *history = Value::Array(
            (0..diff_ids.len())
                .map(|_| json!({"created_by": "(base image layer; the base config has no history)"}))
                .collect(),
        );
    }
    if let Some(entries) = history.as_array_mut() {
        let mut layer_entries = entries
            .iter_mut()
            .filter(|e| !e.get("empty_layer").and_then(Value::as_bool).unwrap_or(false));
        let mut at = 0;
        for r in repaired {
            let Some(entry) = layer_entries.nth(r.index - at) else {
                break;
            };
            at = r.index + 1;
            let note = format!(
                "lambda-img [base] repair: layer {} rewritten from {} ({} hard links as files, {} parent directories added)",
                r.index + 1,
                r.from,
                r.hard_links,
                r.parents_added
            );
            if let Some(e) = entry.as_object_mut() {
                let comment = match e.get("comment").and_then(Value::as_str) {
                    Some(c) if !c.is_empty() => format!("{c}; {note}"),
                    _ => note,
                };
                e.insert("comment".into(), Value::String(comment));
            }
        }
    }
    Ok(serde_json::to_vec(&root).expect("a JSON value always serialises"))
}
