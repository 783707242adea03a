//! The last layer of a chain on its own: a directory holding only what that
//! layer writes, which the sandbox mounts as a read-only overlay over the
//! snapshot of the layers below. A code change then costs the code layer's
//! files instead of one hard link per file of the whole image.
//!
//! Not every layer can be served this way. An overlay shows a deletion only
//! through special files (whiteouts) and resolves paths in each layer apart,
//! so a layer that deletes, or that writes a directory where the layers below
//! have a symlink or a file, or that hard-links a file from below, is refused
//! with the reason, and the caller clones the snapshot instead.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{DirModes, Ownership, RootfsError, apply_layer, finish_tree, mark_used, sidecar};
use crate::cache::Cache;
use crate::image::Layer;

/// A top-layer directory, or why the layer cannot be one.
pub(super) enum Top {
    /// The directory, and whether it was made now (not found in the cache).
    Ready {
        path: PathBuf,
        made: bool,
    },
    Unfit(String),
}

/// The top directory of `layer` over the snapshot `below` (key `below_key`),
/// made in the cache's `tmp/` and renamed to `dest` when complete.
pub(super) fn top_layer(
    layer: &Layer,
    below: &Path,
    dest: &Path,
    ownership: Ownership,
    cache: &Cache,
) -> Result<Top, RootfsError> {
    if dest.is_dir() {
        mark_used(dest);
        return Ok(Top::Ready {
            path: dest.to_path_buf(),
            made: false,
        });
    }
    let name = dest
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let _lock = cache
        .lock(&format!("rootfs-{name}"))
        .map_err(|e| RootfsError::io(dest, e))?;
    if dest.is_dir() {
        mark_used(dest);
        return Ok(Top::Ready {
            path: dest.to_path_buf(),
            made: false,
        });
    }
    let tmp_root = cache.root().join("tmp");
    let work = tempfile::Builder::new()
        .prefix("rootfs-top-")
        .tempdir_in(&tmp_root)
        .map_err(|e| RootfsError::io(&tmp_root, e))?;
    let tree = work.path().join("tree");
    fs::create_dir(&tree)
        .and_then(|_| fs::set_permissions(&tree, fs::Permissions::from_mode(0o755)))
        .map_err(|e| RootfsError::io(&tree, e))?;
    // Directories the layer only implies (`var/` of `var/task/app.py`) must
    // keep the modes they have below: the overlay shows the upper one's.
    let mut modes = DirModes::load(&sidecar(below))?;
    let applied = match apply_layer(layer, &tree, ownership, &mut modes) {
        Ok(applied) => applied,
        // A hard link to a file below, say: the clone applies it, or names the fault.
        Err(e) => {
            return Ok(Top::Unfit(format!(
                "the layer cannot be unpacked on its own ({e})"
            )));
        }
    };
    if applied.whiteouts > 0 {
        return Ok(Top::Unfit(format!(
            "the layer deletes {} path(s) of the layers below (whiteouts)",
            applied.whiteouts
        )));
    }
    if let Some(rel) = directory_over_non_directory(&tree, below)? {
        return Ok(Top::Unfit(format!(
            "the layer has a directory /{rel} where the layers below have a file or symlink"
        )));
    }
    finish_tree(&tree, &modes, ownership, dest)?;
    drop(work);
    Ok(Top::Ready {
        path: dest.to_path_buf(),
        made: true,
    })
}

/// The first directory of `tree` that `below` has as something else: the
/// overlay would hide a symlink there that the layer's paths went through.
fn directory_over_non_directory(tree: &Path, below: &Path) -> Result<Option<String>, RootfsError> {
    for entry in walkdir::WalkDir::new(tree).min_depth(1).follow_links(false) {
        let entry = entry.map_err(|e| RootfsError::io(tree, e.into()))?;
        if !entry.file_type().is_dir() {
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(tree)
            .expect("walk stays under its root");
        if fs::symlink_metadata(below.join(rel)).is_ok_and(|m| !m.is_dir()) {
            return Ok(Some(rel.to_string_lossy().into_owned()));
        }
    }
    Ok(None)
}
