//! Choosing what goes into a layer: walking each input, applying its
//! include/exclude globs and ignore file, and mapping files to image paths.
//!
//! Rules:
//! - `include`/`exclude` are globs (globset, `*` stays within one path
//!   component, `**` crosses any number) relative to the input's source; a glob
//!   that matches a directory covers everything below it.
//! - the ignore file uses `.dockerignore` rules (see [`DockerIgnore`]).
//! - symlinks are stored, never followed, and keep their target as written:
//!   an absolute target resolves inside the image at run time (never on the
//!   build machine), like umoci and Docker store it. Only a relative target
//!   that climbs above the image root is an error naming the link. A target
//!   missing from the final image is the rules' concern (LI044).
//! - a name starting with `.wh.` is an error: unpackers treat it as a whiteout.
//! - a later input overwrites what an earlier one wrote at the same path; a
//!   file written where a directory was replaces that directory's contents.

use std::collections::BTreeMap;
use std::fs::{self, Metadata};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};

use super::{DockerIgnore, LayerError, LayerInput, LayerSpec};

/// One entry of the layer, keyed by its image path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Image path relative to `/`, without leading or trailing `/` (`var/task/app.py`).
    pub path: String,
    pub kind: EntryKind,
    /// Normalised permission bits (0755/0644 for files, 0755 dirs, 0777 symlinks).
    pub mode: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File { source: PathBuf, stat: FileStat },
    Symlink { target: String },
}

/// The stat facts that tell whether a file changed since it was last hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStat {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub ino: u64,
    pub dev: u64,
}

impl FileStat {
    pub fn of(meta: &Metadata) -> FileStat {
        FileStat {
            size: meta.len(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
            ino: meta.ino(),
            dev: meta.dev(),
        }
    }
}

pub const DIR_MODE: u32 = 0o755;
pub const SYMLINK_MODE: u32 = 0o777;

/// The entries of a layer, sorted by image path (byte order), every ancestor
/// directory present as its own entry.
pub fn select(spec: &LayerSpec) -> Result<Vec<Entry>, LayerError> {
    let mut tree = Tree::default();
    for input in &spec.inputs {
        select_input(input, &mut tree)?;
    }
    Ok(tree.entries.into_values().collect())
}

#[derive(Default)]
struct Tree {
    entries: BTreeMap<String, Entry>,
}

impl Tree {
    fn insert(&mut self, entry: Entry) {
        if entry.path.is_empty() {
            return; // the image root itself has no entry
        }
        // Ancestors must be directories (a later input wins over an earlier file).
        let mut end = 0;
        while let Some(i) = entry.path[end..].find('/') {
            end += i;
            let ancestor = &entry.path[..end];
            if !matches!(self.entries.get(ancestor), Some(e) if e.kind == EntryKind::Dir) {
                self.entries.insert(ancestor.to_string(), dir_entry(ancestor));
            }
            end += 1;
        }
        if entry.kind != EntryKind::Dir {
            // A non-directory replaces whatever tree stood at its path. '0' follows '/'.
            let below: Vec<String> = self
                .entries
                .range(format!("{}/", entry.path)..format!("{}0", entry.path))
                .map(|(k, _)| k.clone())
                .collect();
            for k in below {
                self.entries.remove(&k);
            }
        }
        self.entries.insert(entry.path.clone(), entry);
    }
}

fn dir_entry(path: &str) -> Entry {
    Entry {
        path: path.to_string(),
        kind: EntryKind::Dir,
        mode: DIR_MODE,
    }
}

/// `/var/task/` → `var/task`. Must be absolute, without `.` or `..`.
pub fn image_path(destination: &str) -> Result<String, LayerError> {
    let bad = |reason: &str| LayerError::BadDestination {
        destination: destination.to_string(),
        reason: reason.to_string(),
    };
    let rest = destination
        .strip_prefix('/')
        .ok_or_else(|| bad("it must be an absolute path in the image, starting with `/`"))?;
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    if parts.iter().any(|p| *p == "." || *p == "..") {
        return Err(bad("`.` and `..` are not allowed"));
    }
    Ok(parts.join("/"))
}

fn join(base: &str, rel: &str) -> String {
    if base.is_empty() {
        rel.to_string()
    } else {
        format!("{base}/{rel}")
    }
}

fn file_mode(meta: &Metadata, forced: Option<u32>) -> u32 {
    match forced {
        Some(m) => m & 0o7777,
        None if meta.mode() & 0o111 != 0 => 0o755,
        None => 0o644,
    }
}

fn select_input(input: &LayerInput, tree: &mut Tree) -> Result<(), LayerError> {
    let src = &input.source;
    let meta = fs::metadata(src).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => LayerError::MissingSource { path: src.clone() },
        _ => LayerError::from_io(src.clone(), e),
    })?;
    let dest = image_path(&input.destination)?;
    if meta.is_file() {
        let name = src
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| LayerError::NonUtf8Path { path: src.clone() })?;
        let path = if input.destination.ends_with('/') || dest.is_empty() {
            join(&dest, name)
        } else {
            dest
        };
        refuse_whiteout(src, &path)?;
        tree.insert(Entry {
            path,
            mode: file_mode(&meta, input.file_mode),
            kind: EntryKind::File {
                source: src.clone(),
                stat: FileStat::of(&meta),
            },
        });
        return Ok(());
    }
    if !meta.is_dir() {
        return Err(unsupported(src, &meta));
    }
    tree.insert(dir_entry(&dest));
    walk_dir(input, &dest, tree)
}

fn walk_dir(input: &LayerInput, dest: &str, tree: &mut Tree) -> Result<(), LayerError> {
    let src = &input.source;
    let origin = |what: &str| format!("{what} of input {}", src.display());
    let include = glob_set(&input.include, &origin("include"))?;
    let exclude = glob_set(&input.exclude, &origin("exclude"))?;
    let ignore = match &input.ignore_file {
        Some(p) => DockerIgnore::from_file(p)?,
        None => DockerIgnore::default(),
    };
    let prune_ignored = !ignore.has_exceptions();

    let mut it = walkdir::WalkDir::new(src)
        .follow_links(false)
        .min_depth(1)
        .into_iter();
    while let Some(item) = it.next() {
        let item = item.map_err(|e| {
            let path = e.path().unwrap_or(src).to_path_buf();
            LayerError::from_io(path, e.into())
        })?;
        let rel = item
            .path()
            .strip_prefix(src)
            .ok()
            .and_then(|r| r.to_str())
            .ok_or_else(|| LayerError::NonUtf8Path {
                path: item.path().to_path_buf(),
            })?;
        let ft = item.file_type();
        if exclude.as_ref().is_some_and(|s| s.is_match(rel)) {
            if ft.is_dir() {
                it.skip_current_dir();
            }
            continue;
        }
        if ignore.is_ignored(rel) {
            if ft.is_dir() && prune_ignored {
                it.skip_current_dir();
            }
            continue;
        }
        if !include.as_ref().is_none_or(|s| matches_self_or_ancestor(s, rel)) {
            continue; // directories are still walked: their files may match
        }
        let path = join(dest, rel);
        refuse_whiteout(item.path(), &path)?;
        let meta = item
            .metadata()
            .map_err(|e| LayerError::from_io(item.path().to_path_buf(), e.into()))?;
        let entry = if ft.is_dir() {
            dir_entry(&path)
        } else if ft.is_file() {
            Entry {
                path,
                mode: file_mode(&meta, input.file_mode),
                kind: EntryKind::File {
                    source: item.path().to_path_buf(),
                    stat: FileStat::of(&meta),
                },
            }
        } else if ft.is_symlink() {
            let target = symlink_target(item.path(), &path)?;
            Entry {
                path,
                mode: SYMLINK_MODE,
                kind: EntryKind::Symlink { target },
            }
        } else {
            return Err(unsupported(item.path(), &meta));
        };
        tree.insert(entry);
    }
    Ok(())
}

fn matches_self_or_ancestor(set: &GlobSet, rel: &str) -> bool {
    set.is_match(rel) || rel.match_indices('/').any(|(i, _)| set.is_match(&rel[..i]))
}

fn glob_set(patterns: &[String], origin: &str) -> Result<Option<GlobSet>, LayerError> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        let pattern = p.trim_start_matches("./").trim_end_matches('/');
        let glob = GlobBuilder::new(pattern)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| LayerError::BadPattern {
                pattern: p.clone(),
                file: origin.to_string(),
                reason: e.kind().to_string(),
            })?;
        b.add(glob);
    }
    b.build().map(Some).map_err(|e| LayerError::BadPattern {
        pattern: patterns.join(", "),
        file: origin.to_string(),
        reason: e.to_string(),
    })
}

/// A whiteout marker name (`.wh.NAME`, `.wh..wh..opq`) would delete lower
/// layers' files instead of being stored.
fn refuse_whiteout(source: &Path, image_path: &str) -> Result<(), LayerError> {
    let name = image_path.rsplit('/').next().unwrap_or(image_path);
    if name.starts_with(".wh.") {
        return Err(LayerError::WhiteoutName {
            path: source.to_path_buf(),
            image_path: image_path.to_string(),
        });
    }
    Ok(())
}

/// Reads a link's target; a relative one must not climb above the image root
/// from the link's place in the image (`image_path`).
fn symlink_target(link: &Path, image_path: &str) -> Result<String, LayerError> {
    let target = fs::read_link(link).map_err(LayerError::io(link))?;
    let text = target
        .to_str()
        .ok_or_else(|| LayerError::NonUtf8Path {
            path: link.to_path_buf(),
        })?
        .to_string();
    if target.is_absolute() {
        return Ok(text);
    }
    // Depth of the link's directory below the image root, then walk the target.
    let mut depth = image_path.matches('/').count() as i64;
    for c in target.components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return Err(LayerError::SymlinkAboveRoot {
                link: link.to_path_buf(),
                target: target.clone(),
            });
        }
    }
    Ok(text)
}

fn unsupported(path: &Path, meta: &Metadata) -> LayerError {
    let ft = meta.file_type();
    let kind = if ft.is_socket() {
        "socket"
    } else if ft.is_fifo() {
        "named pipe (FIFO)"
    } else if ft.is_block_device() {
        "block device"
    } else if ft.is_char_device() {
        "character device"
    } else {
        "special file"
    };
    LayerError::UnsupportedFileType {
        path: path.to_path_buf(),
        kind,
    }
}

#[cfg(test)]
#[path = "select_tests.rs"]
mod tests;
