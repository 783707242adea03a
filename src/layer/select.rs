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

use std::fs::{self, Metadata};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};

use super::walk::{EntryType, Stat};
use super::{DockerIgnore, LayerError, LayerInput, LayerSpec};

/// One entry of the layer, as [`Selection`] hands it out (borrowed from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Image path relative to `/`, without leading or trailing `/` (`var/task/app.py`).
    pub path: &'a str,
    pub kind: EntryKind<'a>,
    /// Normalised permission bits (0755/0644 for files, 0755 dirs, 0777 symlinks).
    pub mode: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind<'a> {
    Dir,
    File { source: Source<'a>, stat: FileStat },
    Symlink { target: &'a str },
}

/// Where a selected file is read from: its input's source, joined with the
/// part of the image path below the input's destination (kept once, in the
/// image path, rather than as a second owned path per file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source<'a> {
    /// Index of the input in the spec.
    pub input: usize,
    root: &'a Path,
    /// Path below `root`; empty when the input is the file itself.
    rel: &'a str,
}

impl Source<'_> {
    pub fn path(&self) -> PathBuf {
        if self.rel.is_empty() {
            self.root.to_path_buf()
        } else {
            self.root.join(self.rel)
        }
    }
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

impl From<&Stat> for FileStat {
    fn from(s: &Stat) -> FileStat {
        FileStat {
            size: s.size,
            mtime_ns: s.mtime_ns,
            ctime_ns: s.ctime_ns,
            ino: s.ino,
            dev: s.dev,
        }
    }
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
///
/// Compact because a layer may hold hundreds of thousands of files (a big
/// `node_modules`): every image path and link target lives once in one
/// string arena, and each entry is a fixed-size record pointing into it; a
/// file's source path is derived from its input and image path when needed.
#[derive(Debug, Default)]
pub struct Selection {
    arena: String,
    records: Vec<Record>,
    roots: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy)]
struct Record {
    path: Span,
    /// Where the source-relative part of `path` starts (`u32::MAX`: the
    /// input is this file itself).
    rel: u32,
    input: u32,
    mode: u32,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u32,
    len: u32,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Dir,
    File(FileStat),
    Symlink(Span),
}

impl Selection {
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The `i`th entry in image-path order.
    pub fn get(&self, i: usize) -> Entry<'_> {
        self.entry(&self.records[i])
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = Entry<'_>> + '_ {
        self.records.iter().map(|r| self.entry(r))
    }

    /// Regular files among the entries.
    pub fn files(&self) -> usize {
        self.records
            .iter()
            .filter(|r| matches!(r.kind, Kind::File(_)))
            .count()
    }

    fn text(&self, span: Span) -> &str {
        &self.arena[span.start as usize..(span.start + span.len) as usize]
    }

    fn path_of(&self, r: &Record) -> &str {
        self.text(r.path)
    }

    fn entry(&self, r: &Record) -> Entry<'_> {
        let path = self.path_of(r);
        let kind = match r.kind {
            Kind::Dir => EntryKind::Dir,
            Kind::Symlink(t) => EntryKind::Symlink { target: self.text(t) },
            Kind::File(stat) => EntryKind::File {
                stat,
                source: Source {
                    input: r.input as usize,
                    root: &self.roots[r.input as usize],
                    rel: if r.rel == u32::MAX {
                        ""
                    } else {
                        &path[r.rel as usize..]
                    },
                },
            },
        };
        Entry {
            path,
            kind,
            mode: r.mode,
        }
    }

    fn push_text(&mut self, text: &str) -> Result<Span, LayerError> {
        let start = u32::try_from(self.arena.len()).ok();
        let len = u32::try_from(text.len()).ok();
        match (start, len) {
            (Some(start), Some(len)) if start.checked_add(len).is_some() => {
                self.arena.push_str(text);
                Ok(Span { start, len })
            }
            _ => Err(LayerError::TooManyNames),
        }
    }

    /// Adds one entry of input `input` (records of one input are merged in
    /// by [`Selection::merge_from`]).
    fn push(
        &mut self,
        path: &str,
        rel: u32,
        input: usize,
        mode: u32,
        kind: PendingKind<'_>,
    ) -> Result<(), LayerError> {
        if path.is_empty() {
            return Ok(()); // the image root itself has no entry
        }
        let span = self.push_text(path)?;
        let kind = match kind {
            PendingKind::Dir => Kind::Dir,
            PendingKind::File(stat) => Kind::File(stat),
            PendingKind::Symlink(target) => Kind::Symlink(self.push_text(target)?),
        };
        self.records.push(Record {
            path: span,
            rel,
            input: input as u32,
            mode,
            kind,
        });
        Ok(())
    }

    fn push_dir(&mut self, path: &str, input: usize) -> Result<(), LayerError> {
        self.push(path, 0, input, DIR_MODE, PendingKind::Dir)
    }

    /// Sorts the records from `from` on (one input's) by path and adds the
    /// ancestor directories they lack, then lays them over the records
    /// before `from`: an entry of the new input replaces the old one at its
    /// path, and a new non-directory drops the old entries below it (a later
    /// input overwrites what an earlier one wrote).
    fn merge_from(&mut self, from: usize, input: usize, complete: bool) -> Result<(), LayerError> {
        let mut new = if from == 0 {
            std::mem::take(&mut self.records)
        } else {
            self.records.split_off(from)
        };
        self.sort(&mut new);
        // Ancestors must be directories; a walk that skipped no directory
        // whose contents it took (`complete`) lists them all.
        let mut missing: std::collections::BTreeSet<String> = Default::default();
        for r in new.iter().filter(|_| !complete) {
            let mut dir = parent(self.path_of(r));
            while !dir.is_empty() && !missing.contains(dir) && self.find(&new, dir).is_none() {
                missing.insert(dir.to_string());
                dir = parent(dir);
            }
        }
        if !missing.is_empty() {
            let at = self.records.len();
            for dir in &missing {
                self.push_dir(dir, input)?;
            }
            new.extend(self.records.drain(at..));
            self.sort(&mut new);
        }
        let old = std::mem::take(&mut self.records);
        if old.is_empty() {
            self.records = new;
            return Ok(());
        }
        let keep = |r: &Record| {
            let path = self.path_of(r);
            if self.find(&new, path).is_some() {
                return false;
            }
            // Below a new non-directory?
            path.match_indices('/').all(|(i, _)| {
                self.find(&new, &path[..i])
                    .is_none_or(|k| matches!(new[k].kind, Kind::Dir))
            })
        };
        let kept: Vec<Record> = old.into_iter().filter(|r| keep(r)).collect();
        let mut merged = Vec::with_capacity(kept.len() + new.len());
        let (mut a, mut b) = (kept.into_iter().peekable(), new.into_iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) => {
                    if self.path_of(x) < self.path_of(y) {
                        a.next()
                    } else {
                        b.next()
                    }
                }
                (Some(_), None) => a.next(),
                (None, Some(_)) => b.next(),
                (None, None) => break,
            };
            merged.extend(next);
        }
        self.records = merged;
        Ok(())
    }

    fn sort(&self, records: &mut [Record]) {
        records.sort_unstable_by(|x, y| self.path_of(x).cmp(self.path_of(y)));
    }

    /// Index of the record at `path` in the sorted `records`.
    fn find(&self, records: &[Record], path: &str) -> Option<usize> {
        records.binary_search_by(|r| self.path_of(r).cmp(path)).ok()
    }
}

enum PendingKind<'a> {
    Dir,
    File(FileStat),
    Symlink(&'a str),
}

/// A selection made by hand rather than by walking inputs (the system
/// layer's capture of an overlay's upper directory). A file's source is
/// `roots[input]` joined with its image path, or `roots[input]` itself.
#[derive(Debug)]
pub struct SelectionBuilder {
    sel: Selection,
}

impl SelectionBuilder {
    pub fn new(roots: Vec<PathBuf>) -> SelectionBuilder {
        SelectionBuilder {
            sel: Selection {
                roots,
                ..Selection::default()
            },
        }
    }

    pub fn dir(&mut self, path: &str, mode: u32) -> Result<(), LayerError> {
        self.sel.push(path, 0, 0, mode, PendingKind::Dir)
    }

    /// A file read from `roots[input]/<path>`.
    pub fn file_below(
        &mut self,
        path: &str,
        input: usize,
        mode: u32,
        stat: FileStat,
    ) -> Result<(), LayerError> {
        self.sel.push(path, 0, input, mode, PendingKind::File(stat))
    }

    /// A file read from `roots[input]` itself.
    pub fn file_at_root(
        &mut self,
        path: &str,
        input: usize,
        mode: u32,
        stat: FileStat,
    ) -> Result<(), LayerError> {
        self.sel
            .push(path, u32::MAX, input, mode, PendingKind::File(stat))
    }

    pub fn symlink(&mut self, path: &str, target: &str, mode: u32) -> Result<(), LayerError> {
        self.sel.push(path, 0, 0, mode, PendingKind::Symlink(target))
    }

    /// The entries sorted by image path; of entries pushed at one path, the last.
    pub fn finish(self) -> Selection {
        let mut sel = self.sel;
        let mut records = std::mem::take(&mut sel.records);
        // Stable, so among equal paths the pushing order stays.
        records.sort_by(|x, y| sel.path_of(x).cmp(sel.path_of(y)));
        records.dedup_by(|later, kept| {
            let same = sel.path_of(later) == sel.path_of(kept);
            if same {
                *kept = *later;
            }
            same
        });
        sel.records = records;
        sel
    }
}

/// The entries of `spec`'s layer (see [`Selection`]).
pub fn select(spec: &LayerSpec) -> Result<Selection, LayerError> {
    let mut sel = Selection {
        roots: spec.inputs.iter().map(|i| i.source.clone()).collect(),
        ..Selection::default()
    };
    for (index, input) in spec.inputs.iter().enumerate() {
        let from = sel.records.len();
        let complete = select_input(input, index, &mut sel)?;
        sel.merge_from(from, index, complete)?;
    }
    Ok(sel)
}

/// The parent of an image path (`""` at the top).
fn parent(path: &str) -> &str {
    path.rfind('/').map_or("", |i| &path[..i])
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

/// A file's mode in the layer from its `st_mode`: 0755 or 0644 unless forced.
fn file_mode(st_mode: u32, forced: Option<u32>) -> u32 {
    match forced {
        Some(m) => m & 0o7777,
        None if st_mode & 0o111 != 0 => 0o755,
        None => 0o644,
    }
}

/// Adds `input`'s entries; true when every ancestor of them is among them.
fn select_input(input: &LayerInput, index: usize, sel: &mut Selection) -> Result<bool, LayerError> {
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
        let mode = file_mode(meta.mode(), input.file_mode);
        sel.push(
            &path,
            u32::MAX,
            index,
            mode,
            PendingKind::File(FileStat::of(&meta)),
        )?;
        return Ok(false);
    }
    if !meta.is_dir() {
        return Err(unsupported(src, meta.mode()));
    }
    for (i, _) in dest.match_indices('/') {
        sel.push_dir(&dest[..i], index)?;
    }
    sel.push_dir(&dest, index)?;
    walk_dir(input, index, &dest, sel)
}

/// Walks a directory input; true when every ancestor of what it took is
/// among it (only an include list or an ignore exception takes files from
/// directories it does not take).
fn walk_dir(input: &LayerInput, index: usize, dest: &str, sel: &mut Selection) -> Result<bool, LayerError> {
    let src = &input.source;
    let origin = |what: &str| format!("{what} of input {}", src.display());
    let include = glob_set(&input.include, &origin("include"))?;
    let exclude = glob_set(&input.exclude, &origin("exclude"))?;
    let ignore = match &input.ignore_file {
        Some(p) => DockerIgnore::from_file(p)?,
        None => DockerIgnore::default(),
    };
    let prune_ignored = !ignore.has_exceptions();
    // The source-relative part of every image path starts here.
    let rel_start = if dest.is_empty() { 0 } else { dest.len() as u32 + 1 };

    let mut path = String::new();
    // The visitor's own reasons to keep out of a directory, from its path alone.
    let may_enter = |rel: &str| {
        let excluded = exclude.as_ref().is_some_and(|s| s.is_match(rel));
        !(excluded || prune_ignored && ignore.is_ignored(rel))
    };
    super::walk::walk_sorted(src, &may_enter, |item| {
        let rel = item.rel;
        let kind = item.kind;
        if exclude.as_ref().is_some_and(|s| s.is_match(rel)) {
            return Ok(false);
        }
        if ignore.is_ignored(rel) {
            return Ok(!prune_ignored);
        }
        if !include.as_ref().is_none_or(|s| matches_self_or_ancestor(s, rel)) {
            return Ok(true); // directories are still walked: their files may match
        }
        path.clear();
        if !dest.is_empty() {
            path.push_str(dest);
            path.push('/');
        }
        path.push_str(rel);
        if is_whiteout(&path) {
            return Err(whiteout_error(&item.path(), &path));
        }
        if kind.is_dir() {
            // The walk's own stat of a directory is not needed.
            sel.push_dir(&path, index)?;
            return Ok(true);
        }
        let stat = item.metadata()?;
        match kind {
            EntryType::File => {
                let mode = file_mode(stat.mode, input.file_mode);
                sel.push(
                    &path,
                    rel_start,
                    index,
                    mode,
                    PendingKind::File(FileStat::from(&stat)),
                )?;
            }
            EntryType::Symlink => {
                let link = item.path();
                let target = symlink_target(&link, &path)?;
                sel.push(&path, 0, index, SYMLINK_MODE, PendingKind::Symlink(&target))?;
            }
            EntryType::Dir | EntryType::Special(_) => return Err(unsupported(&item.path(), stat.mode)),
        }
        Ok(false)
    })?;
    Ok(include.is_none() && prune_ignored)
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
    if is_whiteout(image_path) {
        return Err(whiteout_error(source, image_path));
    }
    Ok(())
}

fn is_whiteout(image_path: &str) -> bool {
    let name = image_path.rsplit('/').next().unwrap_or(image_path);
    name.starts_with(".wh.")
}

fn whiteout_error(source: &Path, image_path: &str) -> LayerError {
    LayerError::WhiteoutName {
        path: source.to_path_buf(),
        image_path: image_path.to_string(),
    }
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

fn unsupported(path: &Path, st_mode: u32) -> LayerError {
    let kind = match EntryType::of_mode(st_mode) {
        EntryType::Special(kind) => kind,
        _ => "special file",
    };
    LayerError::UnsupportedFileType {
        path: path.to_path_buf(),
        kind,
    }
}

#[cfg(test)]
#[path = "select_tests.rs"]
mod tests;
