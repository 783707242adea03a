//! An image's root filesystem, materialized from the cache's layer blobs.
//!
//! Layers are applied in order with OCI whiteouts (`.wh.NAME`, `.wh..wh..opq`)
//! into directories under the cache, one snapshot per layer chain:
//!
//! ```text
//! rootfs-v1/<key>/   a complete tree; <key> = sha256 of the ownership mode and
//!                    the diff_ids of the chain of layers it holds
//! ```
//!
//! A new snapshot starts as a hard-link clone of the longest chain already
//! there, so a code-only change applies one layer to a clone instead of
//! unpacking the image again. `run` goes further ([`materialize_layered`]):
//! the last layer alone becomes a directory of its own under the same bucket,
//! which the sandbox mounts as a read-only overlay over the snapshot of the
//! layers below, so a code change writes only the code layer's files. Hard links share inodes between snapshots:
//! nothing writes a file in place (an entry replaces a file by unlinking it),
//! and a sandbox mounts a snapshot read-only. Snapshots are built in the
//! cache's `tmp/` and renamed into place, so a reader sees a whole tree or none.
//!
//! This module only writes trees; running anything in them is `sandbox/`.

mod extract;
mod top;
mod tree;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use extract::{Applied, DirModes, apply_layer};
pub use tree::{clone_tree, remove_tree};

use crate::cache::{Cache, CacheBucket};
use crate::image::{Digest, Layer, LayerOrigin};

/// Who owns the materialized files, and so what their modes mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Ownership {
    /// Owners and modes exactly as the layers say (needs root on the host).
    Exact,
    /// Every file belongs to the caller, who stands in for `uid:gid` of the
    /// image inside a user namespace: a file's owner bits become what that
    /// user would be granted by the layer's owner, group and mode, so a
    /// root-only file is unreadable to it as it is in Lambda. With uid 0 the
    /// modes stay as they are (root reads everything anyway).
    StandIn { uid: u32, gid: u32 },
}

impl Ownership {
    /// [`Ownership::Exact`] when running as root, else a stand-in for `uid:gid`.
    pub fn for_user(uid: u32, gid: u32) -> Ownership {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            Ownership::Exact
        } else {
            Ownership::StandIn { uid, gid }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("cannot materialize the root filesystem at {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("layer {layer}: {message}")]
    Layer { layer: Digest, message: String },
}

impl RootfsError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> RootfsError {
        RootfsError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A materialized root filesystem (a snapshot directory in the cache).
#[derive(Debug, Clone)]
pub struct Rootfs {
    pub path: PathBuf,
    /// The last layer's own directory, to mount as a read-only overlay over
    /// `path` (which then holds the layers below it); see [`materialize_layered`].
    pub top: Option<PathBuf>,
    /// Why the last layer was applied to a clone instead of being a `top`.
    pub not_layered: Option<String>,
    /// How many layers had to be applied to make it (0: it was in the cache).
    pub layers_applied: usize,
    /// Held while the value (or a clone) lives: `cache prune` leaves the
    /// snapshots a running sandbox stands on.
    pub in_use: InUse,
}

impl Rootfs {
    fn whole(path: PathBuf, layers_applied: usize, in_use: InUse) -> Rootfs {
        Rootfs {
            path,
            top: None,
            not_layered: None,
            layers_applied,
            in_use,
        }
    }
}

/// Shared locks on the snapshots a root filesystem is made of (see
/// `cache::prune::snapshot_in_use_lock`), released when the last clone drops.
#[derive(Debug, Clone, Default)]
pub struct InUse(Vec<std::sync::Arc<crate::cache::CacheLock>>);

impl InUse {
    /// Marks the snapshot `key` in use, waiting while a prune removes it. Taken
    /// before the snapshot is looked for, so a prune cannot remove it between.
    fn snapshot(cache: &Cache, key: &str, path: &Path) -> Result<InUse, RootfsError> {
        let lock = cache
            .lock_shared(&crate::cache::prune::snapshot_in_use_lock(key))
            .map_err(|e| RootfsError::io(path, e))?;
        Ok(InUse(vec![std::sync::Arc::new(lock)]))
    }

    fn and(mut self, other: InUse) -> InUse {
        self.0.extend(other.0);
        self
    }
}

/// The snapshot key of the chain `diff_ids` under `ownership`.
fn chain_key(ownership: Ownership, diff_ids: &[&Digest]) -> String {
    let text = serde_json::json!({ "ownership": ownership, "chain": diff_ids }).to_string();
    Digest::of(text.as_bytes()).hex().to_string()
}

/// Mount points a sandbox needs in every root (an image may lack them; scratch does).
const MOUNT_POINTS: &[&str] = &["tmp", "proc", "dev"];

/// Materializes `layers` (in manifest order) and returns the snapshot of the
/// whole chain. Snapshots are also kept at the last base layer and at the
/// layer before the last, the chains a rebuild of the function shares.
pub fn materialize(layers: &[Layer], ownership: Ownership, cache: &Cache) -> Result<Rootfs, RootfsError> {
    let bucket = cache.bucket_dir(CacheBucket::Rootfs);
    std::fs::create_dir_all(&bucket).map_err(|e| RootfsError::io(&bucket, e))?;
    let diff_ids: Vec<&Digest> = layers.iter().map(|l| &l.diff_id).collect();
    let key_at = |n: usize| chain_key(ownership, &diff_ids[..n]);
    let full = bucket.join(key_at(layers.len()));
    let in_use = InUse::snapshot(cache, &key_at(layers.len()), &full)?;
    if full.is_dir() {
        mark_used(&full);
        return Ok(Rootfs::whole(full, 0, in_use));
    }
    let _lock = cache
        .lock(&format!("rootfs-{}", key_at(layers.len())))
        .map_err(|e| RootfsError::io(&full, e))?;
    if full.is_dir() {
        mark_used(&full);
        return Ok(Rootfs::whole(full, 0, in_use));
    }
    // The chains worth keeping: after the base, and before the last layer.
    let base_end = layers
        .iter()
        .rposition(|l| matches!(l.origin, LayerOrigin::Base { .. }))
        .map_or(0, |i| i + 1);
    let mut keep: Vec<usize> = vec![base_end, layers.len().saturating_sub(1), layers.len()];
    keep.retain(|&n| n > 0);
    keep.sort_unstable();
    keep.dedup();
    // The longest chain already materialized, held while it is cloned (a
    // prune that took it after it was found leaves nothing to clone).
    let mut start = (1..layers.len())
        .rev()
        .find(|&n| bucket.join(key_at(n)).is_dir())
        .unwrap_or(0);
    let _cloned = match start {
        0 => InUse::default(),
        n => InUse::snapshot(cache, &key_at(n), &bucket.join(key_at(n)))?,
    };
    if start > 0 && !bucket.join(key_at(start)).is_dir() {
        start = 0;
    }
    let tmp_root = cache.root().join("tmp");
    let work = tempfile::Builder::new()
        .prefix("rootfs-")
        .tempdir_in(&tmp_root)
        .map_err(|e| RootfsError::io(&tmp_root, e))?;
    let tree = work.path().join("tree");
    let mut modes = if start > 0 {
        let from = bucket.join(key_at(start));
        mark_used(&from);
        clone_tree(&from, &tree, ownership)?;
        DirModes::load(&sidecar(&from))?
    } else {
        std::fs::create_dir(&tree).map_err(|e| RootfsError::io(&tree, e))?;
        DirModes::default()
    };
    let mut applied = 0;
    for n in start + 1..=layers.len() {
        apply_layer(&layers[n - 1], &tree, ownership, &mut modes)?;
        applied += 1;
        if keep.contains(&n) {
            let dest = bucket.join(key_at(n));
            if n < layers.len() {
                if !dest.is_dir() {
                    // A finished copy of this chain, for later builds to clone.
                    let copy = work.path().join(format!("chain-{n}"));
                    clone_tree(&tree, &copy, ownership)?;
                    finish(&copy, &modes, ownership, &dest)?;
                }
            } else {
                finish(&tree, &modes, ownership, &dest)?;
            }
        }
    }
    Ok(Rootfs::whole(full, applied, in_use))
}

/// Like [`materialize`], except when the whole chain is not in the cache yet:
/// then its last layer becomes a directory of its own ([`Rootfs::top`]) over
/// the snapshot of the layers below, content-addressed by the ownership mode,
/// the layer's diff_id and that snapshot (whose directory modes it keeps), so
/// a code change writes the code layer's files and clones nothing. A layer
/// that cannot be served so (see `top`) is applied to a clone, and
/// [`Rootfs::not_layered`] says why.
pub fn materialize_layered(
    layers: &[Layer],
    ownership: Ownership,
    cache: &Cache,
) -> Result<Rootfs, RootfsError> {
    let Some((last, below)) = layers.split_last().filter(|(_, below)| !below.is_empty()) else {
        return materialize(layers, ownership, cache);
    };
    let bucket = cache.bucket_dir(CacheBucket::Rootfs);
    let diff_ids: Vec<&Digest> = layers.iter().map(|l| &l.diff_id).collect();
    if bucket.join(chain_key(ownership, &diff_ids)).is_dir() {
        return materialize(layers, ownership, cache);
    }
    let rest = materialize(below, ownership, cache)?;
    let below_key = chain_key(ownership, &diff_ids[..below.len()]);
    let text =
        serde_json::json!({ "ownership": ownership, "top": last.diff_id, "over": below_key }).to_string();
    let top_key = Digest::of(text.as_bytes()).hex().to_string();
    let dest = bucket.join(&top_key);
    let top_in_use = InUse::snapshot(cache, &top_key, &dest)?;
    match top::top_layer(last, &rest.path, &dest, ownership, cache)? {
        top::Top::Ready { path, made } => Ok(Rootfs {
            top: Some(path),
            layers_applied: rest.layers_applied + usize::from(made),
            in_use: rest.in_use.clone().and(top_in_use),
            ..rest
        }),
        top::Top::Unfit(reason) => Ok(Rootfs {
            not_layered: Some(reason),
            ..materialize(layers, ownership, cache)?
        }),
    }
}

/// Where a snapshot's directory modes are kept: as the layers wrote them,
/// which a stand-in tree's own (folded) modes no longer say. Its mtime says
/// when the snapshot was last used, which `cache prune --older-than` reads
/// (it knows this name too: `<key>.dirs.json`).
fn sidecar(snapshot: &Path) -> PathBuf {
    snapshot.with_extension("dirs.json")
}

/// Notes that a snapshot was used now (its sidecar's mtime). Only pruning
/// reads it, so a failure is ignored.
fn mark_used(snapshot: &Path) {
    if let Ok(file) = std::fs::File::options().write(true).open(sidecar(snapshot)) {
        let _ = file.set_modified(std::time::SystemTime::now());
    }
}

/// Adds the mount points, gives directories their final modes and moves the tree into place.
fn finish(tree: &Path, modes: &DirModes, ownership: Ownership, dest: &Path) -> Result<(), RootfsError> {
    for dir in MOUNT_POINTS {
        let p = tree.join(dir);
        if std::fs::symlink_metadata(&p).is_err() {
            std::fs::create_dir(&p).map_err(|e| RootfsError::io(&p, e))?;
        }
    }
    finish_tree(tree, modes, ownership, dest)
}

/// Gives directories their final modes and moves the tree into place.
fn finish_tree(tree: &Path, modes: &DirModes, ownership: Ownership, dest: &Path) -> Result<(), RootfsError> {
    // The sidecar first: a tree in place always has one.
    modes.save(&sidecar(dest))?;
    modes.apply(tree, ownership)?;
    match std::fs::rename(tree, dest) {
        Ok(()) => Ok(()),
        // Another process made the same snapshot first: the same bytes.
        Err(_) if dest.is_dir() => {
            let _ = remove_tree(tree);
            Ok(())
        }
        Err(e) => Err(RootfsError::io(dest, e)),
    }
}
