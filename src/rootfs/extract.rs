//! Applying one layer tar to a tree: entries replace what is there, OCI
//! whiteouts remove, and no path (nor a symlink in one) leads out of the tree.

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsString;
use std::fs;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use super::{Ownership, RootfsError, remove_tree};
use crate::image::{BlobLocation, Compression, Layer, MediaKind, classify};

/// How many symlinks one path may pass through before it is refused (as Linux's ELOOP).
const MAX_HOPS: usize = 40;

/// The modes and owners directories get once a tree is complete, keyed by
/// path relative to the tree: while layers are applied every directory stays
/// writable by the caller, whatever its final mode.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct DirModes(BTreeMap<String, (u32, u32, u32)>);

impl DirModes {
    fn set(&mut self, rel: &str, mode: u32, uid: u32, gid: u32) {
        self.0.insert(rel.to_string(), (mode, uid, gid));
    }

    /// Forgets `rel` and everything under it (it was removed or replaced).
    fn remove_under(&mut self, rel: &str) {
        let prefix = format!("{rel}/");
        self.0.retain(|k, _| k != rel && !k.starts_with(&prefix));
    }

    pub(crate) fn load(path: &Path) -> Result<DirModes, RootfsError> {
        let bytes = fs::read(path).map_err(|e| RootfsError::io(path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| RootfsError::io(path, io::Error::other(e)))
    }

    pub(crate) fn save(&self, path: &Path) -> Result<(), RootfsError> {
        let tmp = path.with_extension("tmp");
        fs::write(&tmp, serde_json::to_vec(self).expect("plain map"))
            .and_then(|_| fs::rename(&tmp, path))
            .map_err(|e| RootfsError::io(path, e))
    }

    /// Sets every directory's final mode (and owner under [`Ownership::Exact`]),
    /// children before parents so a read-only parent does not stop the walk.
    pub fn apply(&self, tree: &Path, ownership: Ownership) -> Result<(), RootfsError> {
        for (rel, &(mode, uid, gid)) in self.0.iter().rev() {
            let path = tree.join(rel);
            if !fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                continue;
            }
            if ownership == Ownership::Exact {
                std::os::unix::fs::lchown(&path, Some(uid), Some(gid))
                    .map_err(|e| RootfsError::io(&path, e))?;
            }
            // A stand-in keeps r-x on its directories: the caller must be
            // able to clone and remove the tree (the sandbox mounts it read-only).
            let mode = match ownership {
                Ownership::Exact => mode & 0o7777,
                Ownership::StandIn { .. } => effective_mode(mode, uid, gid, ownership) | 0o500,
            };
            fs::set_permissions(&path, fs::Permissions::from_mode(mode))
                .map_err(|e| RootfsError::io(&path, e))?;
        }
        Ok(())
    }
}

/// The mode a file gets on disk: exact, or with the owner bits set to what
/// the stood-in user is granted (see [`Ownership::StandIn`]).
pub(crate) fn effective_mode(mode: u32, uid: u32, gid: u32, ownership: Ownership) -> u32 {
    match ownership {
        Ownership::Exact => mode & 0o7777,
        Ownership::StandIn { uid: 0, .. } => mode & 0o777,
        Ownership::StandIn { uid: u, gid: g } => {
            let bits = if uid == u {
                (mode >> 6) & 7
            } else if gid == g {
                (mode >> 3) & 7
            } else {
                mode & 7
            };
            (mode & 0o077) | (bits << 6)
        }
    }
}

/// What applying a layer met that a caller may need to know.
#[derive(Debug, Clone, Copy, Default)]
pub struct Applied {
    /// Whiteout and opaque-directory entries (deletions of lower files).
    pub whiteouts: usize,
}

/// Applies `layer`'s tar to `tree`.
pub fn apply_layer(
    layer: &Layer,
    tree: &Path,
    ownership: Ownership,
    modes: &mut DirModes,
) -> Result<Applied, RootfsError> {
    let layer_err = |message: String| RootfsError::Layer {
        layer: layer.descriptor.digest.clone(),
        message,
    };
    let BlobLocation::File(blob) = &layer.location;
    let file = fs::File::open(blob).map_err(|e| RootfsError::io(blob, e))?;
    let reader: Box<dyn Read> = match classify(&layer.descriptor.media_type) {
        MediaKind::Layer {
            compression: Compression::Gzip,
            ..
        } => Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
            1 << 20,
            file,
        ))),
        MediaKind::Layer {
            compression: Compression::None,
            ..
        } => Box::new(BufReader::with_capacity(1 << 20, file)),
        _ => {
            return Err(layer_err(format!(
                "media type {} cannot be unpacked here (gzip and plain tar can)",
                layer.descriptor.media_type
            )));
        }
    };
    let mut applier = Applier {
        tree,
        ownership,
        modes,
        created: HashSet::new(),
        whiteouts: 0,
    };
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .map_err(|e| layer_err(format!("not a tar: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| layer_err(format!("unreadable tar entry: {e}")))?;
        let name = entry
            .path()
            .map_err(|e| layer_err(format!("bad entry name: {e}")))?
            .into_owned();
        applier
            .entry(&mut entry, &name)
            .map_err(|e| layer_err(format!("{}: {e}", name.display())))?;
    }
    Ok(Applied {
        whiteouts: applier.whiteouts,
    })
}

struct Applier<'a> {
    tree: &'a Path,
    ownership: Ownership,
    modes: &'a mut DirModes,
    /// Paths this layer wrote, which an opaque whiteout in it must keep.
    created: HashSet<PathBuf>,
    whiteouts: usize,
}

impl Applier<'_> {
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<R>, name: &Path) -> io::Result<()> {
        let comps = components(name);
        let Some((last, parents)) = comps.split_last() else {
            return Ok(()); // the root itself
        };
        let (parent, parent_rel) = self.resolve_dir(parents)?;
        let last_str = last.to_string_lossy();
        if last_str.starts_with(".wh.") {
            self.whiteouts += 1;
        }
        if last_str == ".wh..wh..opq" {
            for child in fs::read_dir(&parent)? {
                let child = child?.path();
                if !self.created.contains(&child) {
                    self.remove(&child, &parent_rel)?;
                }
            }
            return Ok(());
        }
        if let Some(hidden) = last_str.strip_prefix(".wh.") {
            let target = parent.join(hidden);
            if fs::symlink_metadata(&target).is_ok() {
                self.remove(&target, &parent_rel)?;
            }
            return Ok(());
        }
        let path = parent.join(last);
        let rel = join_rel(&parent_rel, &last_str);
        let header = entry.header();
        let mode = header.mode()?;
        let uid = header.uid()? as u32;
        let gid = header.gid()? as u32;
        let kind = header.entry_type();
        let existing = fs::symlink_metadata(&path).ok();
        if kind.is_dir() {
            match existing {
                Some(m) if m.is_dir() => {}
                Some(_) => {
                    self.remove(&path, &parent_rel)?;
                    fs::create_dir(&path)?;
                }
                None => fs::create_dir(&path)?,
            }
            self.modes.set(&rel, mode, uid, gid);
            self.created.insert(path);
            return Ok(());
        }
        if existing.is_some() {
            self.remove(&path, &parent_rel)?;
        }
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)?;
                io::copy(entry, &mut file)?;
                if self.ownership == Ownership::Exact {
                    std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
                }
                let mode = effective_mode(mode, uid, gid, self.ownership);
                file.set_permissions(fs::Permissions::from_mode(mode))?;
                if let Ok(mtime) = entry.header().mtime() {
                    let _ = file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime));
                }
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()?
                    .ok_or_else(|| io::Error::other("symlink without a target"))?;
                std::os::unix::fs::symlink(&target, &path)?;
                if self.ownership == Ownership::Exact {
                    std::os::unix::fs::lchown(&path, Some(uid), Some(gid))?;
                }
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name()?
                    .ok_or_else(|| io::Error::other("hard link without a target"))?;
                let comps = components(&target);
                let Some((t_last, t_parents)) = comps.split_last() else {
                    return Err(io::Error::other("hard link to the root"));
                };
                let (t_parent, _) = self.resolve_dir(t_parents)?;
                fs::hard_link(t_parent.join(t_last), &path)?;
            }
            tar::EntryType::Fifo => {
                let c = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()))
                    .map_err(io::Error::other)?;
                let m = effective_mode(mode, uid, gid, self.ownership);
                // SAFETY: c is a valid NUL-terminated path.
                if unsafe { libc::mkfifo(c.as_ptr(), m as libc::mode_t) } != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            // Device nodes are the sandbox's business (it mounts a minimal
            // /dev); other types carry no file.
            _ => return Ok(()),
        }
        self.created.insert(path);
        Ok(())
    }

    /// Removes `path` (a child of the directory `parent_rel`), however deep.
    fn remove(&mut self, path: &Path, parent_rel: &str) -> io::Result<()> {
        let meta = fs::symlink_metadata(path)?;
        if let Some(name) = path.file_name() {
            self.modes
                .remove_under(&join_rel(parent_rel, &name.to_string_lossy()));
        }
        if meta.is_dir() {
            remove_tree(path).map_err(|e| io::Error::other(e.to_string()))
        } else {
            fs::remove_file(path)
        }
    }

    /// Resolves directory components inside the tree: a symlink is followed
    /// as if the tree were `/` (an absolute target restarts at the tree, `..`
    /// stops at it), and a missing directory is created. Returns the host
    /// path and the path relative to the tree.
    fn resolve_dir(&mut self, comps: &[OsString]) -> io::Result<(PathBuf, String)> {
        let mut stack: Vec<OsString> = Vec::new();
        let mut todo: std::collections::VecDeque<OsString> = comps.iter().cloned().collect();
        let mut hops = 0;
        while let Some(c) = todo.pop_front() {
            if c == ".." {
                stack.pop();
                continue;
            }
            let mut path = self.tree.to_path_buf();
            path.extend(&stack);
            path.push(&c);
            match fs::symlink_metadata(&path) {
                Ok(m) if m.file_type().is_symlink() => {
                    hops += 1;
                    if hops > MAX_HOPS {
                        return Err(io::Error::other("too many levels of symbolic links"));
                    }
                    let target = fs::read_link(&path)?;
                    if target.is_absolute() {
                        stack.clear();
                    }
                    for t in components(&target).into_iter().rev() {
                        todo.push_front(t);
                    }
                }
                Ok(m) if m.is_dir() => stack.push(c),
                Ok(_) => return Err(io::Error::other(format!("{} is not a directory", path.display()))),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&path)?;
                    stack.push(c);
                    // A directory only implied by a path keeps the mode
                    // known for it (a layer applied alone over a snapshot
                    // starts from the snapshot's modes), else 0755 root.
                    self.modes.0.entry(rel_of(&stack)).or_insert((0o755, 0, 0));
                }
                Err(e) => return Err(e),
            }
        }
        let mut path = self.tree.to_path_buf();
        path.extend(&stack);
        Ok((path, rel_of(&stack)))
    }
}

/// A tar name's normal components (`./`, `/` and empty parts dropped; `..` kept
/// for [`Applier::resolve_dir`], which never lets it climb out of the tree).
fn components(path: &Path) -> Vec<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

fn rel_of(stack: &[OsString]) -> String {
    stack
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

fn join_rel(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}
