//! Walking a directory input in image-path order.
//!
//! A layer lists its entries sorted by image path (byte order). Walking
//! depth-first with each directory's names sorted once, where a
//! directory's subtree sorts as its name followed by `/`, yields exactly
//! that order, so the selection needs no sort of the whole tree (string
//! compares of long shared prefixes, scattered in memory: most of a no-op
//! rebuild's own CPU time at 100,000 files). `requests` (the directory's own
//! entry) < `requests-2.31.dist-info/…` < `requests/…`.
//!
//! Each file is stat'ed relative to its open directory (a one-name lookup in
//! the kernel rather than the whole path again), and no owned path is made
//! per entry: only per directory walked, and for links and errors.

use std::cmp::Ordering;
use std::fs::{self, DirEntry, FileType, Metadata};
use std::path::{Path, PathBuf};

use super::LayerError;

/// One entry met by [`walk_sorted`].
pub(super) struct WalkEntry<'a> {
    /// Path below the walk's root, `/`-separated.
    pub rel: &'a str,
    /// The entry's type, as its directory listed it (a symlink is not followed).
    pub file_type: FileType,
    dir: &'a Path,
    name: &'a str,
    entry: &'a DirEntry,
}

impl WalkEntry<'_> {
    /// The entry's path on disk (for links and errors).
    pub fn path(&self) -> PathBuf {
        self.dir.join(self.name)
    }

    /// The entry's own stat (a symlink's, not its target's), relative to its directory.
    pub fn metadata(&self) -> Result<Metadata, LayerError> {
        self.entry
            .metadata()
            .map_err(|e| LayerError::from_io(self.path(), e))
    }
}

/// Calls `visit` for every entry below `root` (not `root` itself), in byte
/// order of their paths below it. For a directory, `visit` returns whether
/// to walk into it; its answer for anything else is ignored.
pub(super) fn walk_sorted<F>(root: &Path, mut visit: F) -> Result<(), LayerError>
where
    F: FnMut(&WalkEntry<'_>) -> Result<bool, LayerError>,
{
    let mut rel = String::new();
    walk_level(root, &mut rel, &mut visit)
}

/// A name of one directory, in that directory's `names` text.
struct Item {
    start: u32,
    len: u32,
    is_dir: bool,
    /// Set when the directory's own entry was visited and asked to be walked.
    descend: bool,
    file_type: FileType,
    entry: DirEntry,
}

/// Lists `dir` (whose path below the root is `rel`), then visits its entries
/// and walks its subdirectories in order.
fn walk_level<F>(dir: &Path, rel: &mut String, visit: &mut F) -> Result<(), LayerError>
where
    F: FnMut(&WalkEntry<'_>) -> Result<bool, LayerError>,
{
    let mut names = String::new();
    let mut items: Vec<Item> = Vec::new();
    for entry in fs::read_dir(dir).map_err(LayerError::io(dir))? {
        let entry = entry.map_err(LayerError::io(dir))?;
        let file_type = entry
            .file_type()
            .map_err(|e| LayerError::from_io(entry.path(), e))?;
        let name = entry.file_name();
        let name = name
            .to_str()
            .ok_or_else(|| LayerError::NonUtf8Path { path: entry.path() })?;
        let (Ok(start), Ok(len)) = (u32::try_from(names.len()), u32::try_from(name.len())) else {
            return Err(LayerError::TooManyNames);
        };
        names.push_str(name);
        items.push(Item {
            start,
            len,
            is_dir: file_type.is_dir(),
            descend: false,
            file_type,
            entry,
        });
    }
    let name_of = |item: &Item| &names[item.start as usize..(item.start + item.len) as usize];
    // Two steps per directory: its own entry (sorted by its name) and its
    // subtree (sorted by its name and `/`); one per other entry.
    let mut steps: Vec<(u32, bool)> = Vec::with_capacity(items.len() + items.len() / 4);
    for (i, item) in items.iter().enumerate() {
        steps.push((i as u32, false));
        if item.is_dir {
            steps.push((i as u32, true));
        }
    }
    steps.sort_unstable_by(|&(a, a_sub), &(b, b_sub)| {
        step_order(
            name_of(&items[a as usize]).as_bytes(),
            a_sub,
            name_of(&items[b as usize]).as_bytes(),
            b_sub,
        )
    });
    for (i, subtree) in steps {
        let item = &items[i as usize];
        let name = name_of(item);
        let at = rel.len();
        if !rel.is_empty() {
            rel.push('/');
        }
        rel.push_str(name);
        if !subtree {
            let walk_in = visit(&WalkEntry {
                rel,
                file_type: item.file_type,
                dir,
                name,
                entry: &item.entry,
            })?;
            items[i as usize].descend = walk_in && item.is_dir;
        } else if item.descend {
            walk_level(&dir.join(name), rel, visit)?;
        }
        rel.truncate(at);
    }
    Ok(())
}

/// The order of two steps of one directory: names compared as bytes, a
/// subtree's name with a `/` after it (sibling names hold no `/`, so that
/// decides before anything below).
fn step_order(a: &[u8], a_subtree: bool, b: &[u8], b_subtree: bool) -> Ordering {
    let n = a.len().min(b.len());
    match a[..n].cmp(&b[..n]) {
        Ordering::Equal => {}
        other => return other,
    }
    let next = |s: &[u8], subtree: bool| s.get(n).copied().or(subtree.then_some(b'/'));
    next(a, a_subtree).cmp(&next(b, b_subtree))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_walk_lists_paths_in_byte_order() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        for d in ["a", "a/b", "a-c", "a.d", "a0", "z", "a/b/c"] {
            fs::create_dir(r.join(d)).unwrap();
        }
        for f in [
            "a/x", "a/b/c/y", "a-c/q", "a.py", "a/!", "a0/k", "A", "z/ä", "z/~",
        ] {
            fs::write(r.join(f), b"").unwrap();
        }
        let mut seen = Vec::new();
        walk_sorted(r, |e| {
            seen.push(e.rel.to_string());
            Ok(true)
        })
        .unwrap();
        let mut sorted = seen.clone();
        sorted.sort();
        assert_eq!(seen, sorted);
        assert_eq!(seen.len(), 16);
        assert!(seen.iter().position(|p| p == "a").unwrap() < seen.iter().position(|p| p == "a-c").unwrap());
        assert!(
            seen.iter().position(|p| p == "a-c/q").unwrap() < seen.iter().position(|p| p == "a/!").unwrap()
        );
    }

    #[test]
    fn a_directory_not_walked_into_lists_nothing_below_it() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        fs::create_dir_all(r.join("keep/skip/deep")).unwrap();
        fs::write(r.join("keep/skip/deep/f"), b"").unwrap();
        fs::write(r.join("keep/f"), b"").unwrap();
        let mut seen = Vec::new();
        walk_sorted(r, |e| {
            seen.push(e.rel.to_string());
            Ok(e.rel != "keep/skip")
        })
        .unwrap();
        assert_eq!(seen, ["keep", "keep/f", "keep/skip"]);
    }

    #[test]
    fn a_missing_root_names_it() {
        let root = tempfile::tempdir().unwrap();
        let gone = root.path().join("gone");
        let err = walk_sorted(&gone, |_| Ok(true)).unwrap_err();
        assert!(err.to_string().contains("gone"), "{err}");
    }
}
