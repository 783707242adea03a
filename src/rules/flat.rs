//! The flattened filesystem of an image: every path the running container
//! sees, after each layer's whiteouts (`.wh.NAME`, `.wh..wh..opq`) removed
//! what lower layers held. Holds header facts per path, and the first bytes
//! of only the few files a rule asked for.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::CheckError;
use crate::image::Image;
use crate::tar_walk::{EntryKind, TarEntry, normalize, parent, walk_layer};

pub use crate::tar_walk::EntryKind as NodeKind;

/// One path of the flattened filesystem. Small (40 bytes): an image may
/// hold hundreds of thousands of paths, and only links and the few files a
/// rule reads the start of carry more, boxed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Node {
    pub kind: EntryKind,
    pub mode: u32,
    /// Index of the layer that wrote this path (0-based).
    pub layer: u32,
    pub uid: u64,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    extra: Option<Box<Extra>>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Extra {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    link: Option<Box<str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    head: Option<Box<[u8]>>,
}

impl Node {
    /// Target of a symlink or hard link, as written.
    pub fn link(&self) -> Option<&str> {
        self.extra.as_ref()?.link.as_deref()
    }

    /// The first bytes of the file, when a rule asked for them.
    pub fn head(&self) -> Option<&[u8]> {
        self.extra.as_ref()?.head.as_deref()
    }
}

/// One layer's changes, collected while it streams and applied when it ends
/// (an opaque whiteout may come after the entries of its own layer).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct LayerDelta {
    entries: Vec<(Box<str>, Node)>,
    whiteouts: Vec<String>,
    opaque: Vec<String>,
}

impl LayerDelta {
    /// Whether the entries' paths strictly ascend (as in the layers this
    /// tool writes), so no entry replaces or hides another of its layer.
    fn ascends(&self) -> bool {
        self.entries.windows(2).all(|w| w[0].0 < w[1].0)
    }

    /// Writes the entries recorded so far to `out` as the JSON elements of
    /// the `entries` array (each after a comma but the layer's first, which
    /// `first` tracks) and forgets them: a scan of a big layer made while it
    /// is compressed keeps them on disk, not beside the layer's selection.
    pub(super) fn spill_entries(
        &mut self,
        out: &mut impl std::io::Write,
        first: &mut bool,
    ) -> std::io::Result<()> {
        for entry in self.entries.drain(..) {
            if !std::mem::take(first) {
                out.write_all(b",")?;
            }
            serde_json::to_writer(&mut *out, &entry)?;
        }
        Ok(())
    }

    /// Records an entry; whiteout markers become deletions.
    pub fn add(&mut self, entry: &TarEntry, head: Option<Box<[u8]>>, layer: usize) {
        if entry.kind == EntryKind::Meta {
            return;
        }
        let name = entry.path.rsplit('/').next().unwrap_or("");
        if name == ".wh..wh..opq" {
            self.opaque.push(parent(&entry.path).to_string());
            return;
        }
        if name.starts_with(".wh..wh.") {
            return; // aufs bookkeeping, not a path
        }
        if let Some(hidden) = name.strip_prefix(".wh.") {
            let dir = parent(&entry.path);
            self.whiteouts.push(if dir.is_empty() {
                hidden.to_string()
            } else {
                format!("{dir}/{hidden}")
            });
            return;
        }
        let link = entry.link.as_deref().map(Box::from);
        let extra = (link.is_some() || head.is_some()).then(|| Box::new(Extra { link, head }));
        self.entries.push((
            entry.path.as_str().into(),
            Node {
                kind: entry.kind,
                mode: entry.mode,
                layer: layer as u32,
                uid: entry.uid,
                size: entry.size,
                extra,
            },
        ));
    }
}

/// Path (normalised, see [`normalize`]) → node.
#[derive(Debug, Default)]
pub struct FlatView {
    nodes: BTreeMap<Box<str>, Node>,
}

impl FlatView {
    /// Applies one layer on top of what is there. Returns the directories of
    /// lower layers that an entry of this layer replaced with a non-directory
    /// (without a whiteout first): runtimes refuse such an image or hide the
    /// directory's whole tree (rule LI043).
    pub fn apply(&mut self, delta: LayerDelta) -> Vec<String> {
        if self.nodes.is_empty() && delta.ascends() {
            // Nothing below to hide or replace, and no entry of a sorted
            // layer is below an earlier one: the layer is the view. Built in
            // one pass, the tree's nodes are full, where inserting one path
            // at a time leaves them about half empty (at half a million
            // files, some 30 MB of a check's peak).
            self.nodes = delta.entries.into_iter().collect();
            return Vec::new();
        }
        for dir in &delta.opaque {
            self.remove_under(dir);
        }
        for path in &delta.whiteouts {
            self.nodes.remove(path.as_str());
            self.remove_under(path);
        }
        let mut replaced = Vec::new();
        for (path, node) in delta.entries {
            if node.kind != EntryKind::Dir {
                let was_dir = match self.nodes.get(&*path) {
                    Some(old) => old.kind == EntryKind::Dir && old.layer < node.layer,
                    // A directory with children but no entry of its own.
                    None => self.under(&path).any(|(_, n)| n.layer < node.layer),
                };
                if was_dir {
                    replaced.push(path.to_string());
                }
                // A file over a directory hides everything below it.
                self.remove_under(&path);
            }
            self.nodes.insert(path, node);
        }
        replaced
    }

    fn remove_under(&mut self, dir: &str) {
        if dir.is_empty() {
            self.nodes.clear();
            return;
        }
        let prefix = format!("{dir}/");
        let doomed: Vec<Box<str>> = self
            .nodes
            .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for k in doomed {
            self.nodes.remove(&k);
        }
    }

    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(normalize(path).as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.nodes.iter().map(|(k, n)| (&**k, n))
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Every path at or below `dir`.
    pub fn under<'a>(&'a self, dir: &'a str) -> impl Iterator<Item = (&'a str, &'a Node)> + 'a {
        let prefix = format!("{dir}/");
        self.nodes
            .range::<str, _>((Bound::Included(dir), Bound::Unbounded))
            .map(|(k, n)| (&**k, n))
            .take_while(move |(k, _)| *k == dir || k.starts_with(&prefix))
    }

    /// Looks a path up the way the kernel would: symlinks in directory
    /// components are followed; the last one only when `follow_last`.
    /// Returns the path reached and its node.
    pub fn lookup(&self, path: &str, follow_last: bool) -> Option<(String, &Node)> {
        let mut pending: Vec<String> = normalize(path).split('/').rev().map(str::to_string).collect();
        pending.retain(|c| !c.is_empty());
        let mut current = String::new();
        let mut hops = 0;
        while let Some(component) = pending.pop() {
            if component == ".." {
                current = parent(&current).to_string();
                continue;
            }
            let next = if current.is_empty() {
                component
            } else {
                format!("{current}/{component}")
            };
            let last = pending.is_empty();
            match self.nodes.get(next.as_str()) {
                Some(node) if node.kind == EntryKind::Symlink && (!last || follow_last) => {
                    hops += 1;
                    if hops > 40 {
                        return None; // a loop, as ELOOP
                    }
                    let target = node.link().unwrap_or_default();
                    if target.starts_with('/') {
                        current.clear();
                    }
                    pending.extend(
                        target
                            .split('/')
                            .filter(|c| !c.is_empty() && *c != ".")
                            .rev()
                            .map(str::to_string),
                    );
                }
                Some(node) if last => return Some((next, node)),
                Some(_) => current = next,
                // A directory with children but no entry of its own still exists.
                None if !last && self.under(&next).next().is_some() => current = next,
                None => return None,
            }
        }
        None
    }

    /// Like [`lookup`](Self::lookup) following every link, and hard links to their target.
    pub fn resolve_file(&self, path: &str) -> Option<(String, &Node)> {
        let (found, node) = self.lookup(path, true)?;
        if node.kind == EntryKind::HardLink {
            return self.lookup(node.link().unwrap_or(""), true);
        }
        Some((found, node))
    }
}

/// The flattened filesystem of `image` (no file content kept), streaming
/// each layer once. For tools and tests; [`check_image`](super::check_image)
/// builds its own view in the same pass as its per-layer rules.
pub fn flatten(image: &Image) -> Result<FlatView, CheckError> {
    let mut view = FlatView::default();
    for (index, layer) in image.layers().iter().enumerate() {
        let mut delta = LayerDelta::default();
        walk_layer(layer, |entry, _| {
            if !entry.path.is_empty() {
                delta.add(entry, None, index);
            }
            Ok(())
        })?;
        let _ = view.apply(delta);
    }
    Ok(view)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, kind: EntryKind, link: Option<&str>) -> TarEntry {
        TarEntry {
            path: normalize(path),
            kind,
            mode: 0o755,
            uid: 0,
            size: 0,
            link: link.map(str::to_string),
            escapes_root: false,
        }
    }

    #[test]
    fn whiteouts_and_opaque_dirs_hide_lower_layers() {
        let mut view = FlatView::default();
        let mut d = LayerDelta::default();
        for p in ["a", "a/x", "a/y", "b", "b/z", "c"] {
            d.add(&entry(p, EntryKind::Dir, None), None, 0);
        }
        view.apply(d);
        let mut d = LayerDelta::default();
        d.add(&entry("a/new", EntryKind::File, None), None, 1);
        d.add(&entry("a/.wh..wh..opq", EntryKind::File, None), None, 1);
        d.add(&entry("b/.wh.z", EntryKind::File, None), None, 1);
        d.add(&entry(".wh.c", EntryKind::File, None), None, 1);
        assert!(view.apply(d).is_empty(), "whiteouts remove, they do not replace");
        let paths: Vec<_> = view.iter().map(|(k, _)| k).collect();
        assert_eq!(paths, ["a", "a/new", "b"]);
    }

    #[test]
    fn a_file_over_a_lower_directory_is_reported() {
        let mut view = FlatView::default();
        let mut d = LayerDelta::default();
        d.add(&entry("var/task/lib/x.py", EntryKind::File, None), None, 0);
        d.add(&entry("opt", EntryKind::Dir, None), None, 0);
        let _ = view.apply(d);
        let mut d = LayerDelta::default();
        d.add(&entry("var/task", EntryKind::File, None), None, 1);
        d.add(&entry("opt", EntryKind::Symlink, Some("/x")), None, 1);
        d.add(&entry("new", EntryKind::File, None), None, 1);
        assert_eq!(view.apply(d), ["var/task", "opt"]);
        assert!(view.get("var/task/lib/x.py").is_none());
    }

    #[test]
    fn a_sorted_layer_on_an_empty_view_is_taken_whole() {
        let paths = ["a", "a/x", "b", "b/c", "b/c/d"];
        let kinds = [
            EntryKind::File,
            EntryKind::File,
            EntryKind::Dir,
            EntryKind::Dir,
            EntryKind::File,
        ];
        let mut sorted = LayerDelta::default();
        let mut unsorted = LayerDelta::default();
        for (p, k) in paths.iter().zip(kinds) {
            sorted.add(&entry(p, k, None), None, 0);
        }
        for (p, k) in paths.iter().zip(kinds).rev() {
            unsorted.add(&entry(p, k, None), None, 0);
        }
        assert!(sorted.ascends() && !unsorted.ascends());
        let (mut one, mut other) = (FlatView::default(), FlatView::default());
        assert!(one.apply(sorted).is_empty());
        // In reverse order the file `a` comes after `a/x` and hides it.
        assert!(other.apply(unsorted).is_empty());
        let listed = |v: &FlatView| v.iter().map(|(k, n)| (k.to_string(), n.kind)).collect::<Vec<_>>();
        assert_eq!(listed(&one).len(), 5);
        assert_eq!(
            listed(&other),
            listed(&one)
                .into_iter()
                .filter(|(k, _)| k != "a/x")
                .collect::<Vec<_>>()
        );
        assert_eq!(one.lookup("/b/c/d", true).unwrap().0, "b/c/d");
    }

    #[test]
    fn lookup_follows_directory_links_but_not_the_last_one() {
        let mut view = FlatView::default();
        let mut d = LayerDelta::default();
        d.add(&entry("usr/bin/tool", EntryKind::File, None), None, 0);
        d.add(&entry("bin", EntryKind::Symlink, Some("usr/bin")), None, 0);
        d.add(
            &entry("usr/bin/alias", EntryKind::Symlink, Some("/usr/bin/tool")),
            None,
            0,
        );
        view.apply(d);
        assert_eq!(view.lookup("/bin/tool", false).unwrap().0, "usr/bin/tool");
        assert_eq!(
            view.lookup("/bin/alias", false).unwrap().1.kind,
            EntryKind::Symlink
        );
        assert_eq!(view.lookup("/bin/alias", true).unwrap().0, "usr/bin/tool");
        assert!(view.lookup("/bin/missing", true).is_none());
    }
}
