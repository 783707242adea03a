//! Whole-tree operations on snapshots: a hard-link clone and a removal that
//! works whatever modes the tree's directories ended with.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use super::{Ownership, RootfsError};

/// Makes `dst` a copy of the tree `src` in which every regular file is a hard
/// link to the source's (cost: one link per file, not the bytes). Directories
/// are created writable; the caller gives them their final modes.
pub fn clone_tree(src: &Path, dst: &Path, ownership: Ownership) -> Result<(), RootfsError> {
    for entry in walkdir::WalkDir::new(src).follow_links(false) {
        let entry = entry.map_err(|e| RootfsError::io(src, e.into()))?;
        let rel = entry.path().strip_prefix(src).expect("walk stays under its root");
        let to = dst.join(rel);
        let io = |e| RootfsError::io(&to, e);
        let kind = entry.file_type();
        if kind.is_dir() {
            fs::create_dir(&to).map_err(io)?;
            fs::set_permissions(&to, fs::Permissions::from_mode(0o755)).map_err(io)?;
        } else if kind.is_file() {
            fs::hard_link(entry.path(), &to).map_err(io)?;
        } else if kind.is_symlink() {
            let target = fs::read_link(entry.path()).map_err(io)?;
            std::os::unix::fs::symlink(target, &to).map_err(io)?;
            if ownership == Ownership::Exact {
                let meta = entry.metadata().map_err(|e| RootfsError::io(&to, e.into()))?;
                std::os::unix::fs::lchown(&to, Some(meta.uid()), Some(meta.gid())).map_err(io)?;
            }
        } else if std::os::unix::fs::FileTypeExt::is_fifo(&kind) {
            // A FIFO cannot be linked across snapshots usefully: make a new one.
            let meta = entry.metadata().map_err(|e| RootfsError::io(&to, e.into()))?;
            let c = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(to.as_os_str()))
                .map_err(|e| io(std::io::Error::other(e)))?;
            // SAFETY: c is a valid NUL-terminated path.
            if unsafe { libc::mkfifo(c.as_ptr(), meta.mode() & 0o7777) } != 0 {
                return Err(io(std::io::Error::last_os_error()));
            }
        }
    }
    Ok(())
}

/// Removes a tree, first making each directory writable and searchable by
/// its owner (a stand-in tree may have read-only directories).
pub fn remove_tree(path: &Path) -> Result<(), RootfsError> {
    crate::cache::remove_tree(path).map_err(|e| RootfsError::io(path, e))
}
