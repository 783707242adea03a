//! The flattened filesystem of an image: every path the running container
//! sees, after each layer's whiteouts (`.wh.NAME`, `.wh..wh..opq`) removed
//! what lower layers held. Holds header facts per path, and the first bytes
//! of only the few files a rule asked for.

use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;

use super::CheckError;
use crate::image::Image;
use crate::tar_walk::{EntryKind, TarEntry, ancestors, normalize, parent, walk_layer};

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
///
/// One array sorted by path (byte order), not a tree: an image may hold half
/// a million paths, and a layer this tool wrote arrives sorted, so the first
/// such layer becomes the view as it is (no second copy of its entries) and
/// a later one is merged in one pass. Only a layer out of order (or with a
/// path twice) is applied an entry at a time, in a tree made for it.
#[derive(Debug, Default)]
pub struct FlatView {
    nodes: Vec<(Box<str>, Node)>,
}

impl FlatView {
    /// Applies one layer on top of what is there. Returns the directories of
    /// lower layers that an entry of this layer replaced with a non-directory
    /// (without a whiteout first): runtimes refuse such an image or hide the
    /// directory's whole tree (rule LI043).
    pub fn apply(&mut self, delta: LayerDelta) -> Vec<String> {
        if !delta.ascends() {
            let mut tree: BTreeMap<Box<str>, Node> = std::mem::take(&mut self.nodes).into_iter().collect();
            let replaced = apply_in_order(&mut tree, delta);
            self.nodes = tree.into_iter().collect();
            return replaced;
        }
        let LayerDelta {
            entries,
            whiteouts,
            opaque,
        } = delta;
        self.remove_hidden(&whiteouts, &opaque);
        if self.nodes.is_empty() {
            // Nothing below to hide or replace, and no entry of a sorted
            // layer is below an earlier one: the layer is the view.
            self.nodes = entries;
            return Vec::new();
        }
        let replaced = replaced_dirs(&self.nodes, &entries, &below_own_files(&entries));
        merge(&mut self.nodes, entries);
        replaced
    }

    /// Drops what a layer's whiteouts (the path and all below it) and opaque
    /// directories (all below them) hide of the lower layers.
    fn remove_hidden(&mut self, whiteouts: &[String], opaque: &[String]) {
        if whiteouts.is_empty() && opaque.is_empty() {
            return;
        }
        // `.wh..wh..opq` at the top, or a whiteout of an empty name: everything.
        if opaque.iter().chain(whiteouts).any(|d| d.is_empty()) {
            self.nodes.clear();
            return;
        }
        let whiteouts: HashSet<&str> = whiteouts.iter().map(String::as_str).collect();
        let opaque: HashSet<&str> = opaque.iter().map(String::as_str).collect();
        self.nodes.retain(|(path, _)| {
            !whiteouts.contains(&**path)
                && !ancestors(path).any(|a| whiteouts.contains(a) || opaque.contains(a))
        });
    }

    fn find(&self, path: &str) -> Option<&Node> {
        let i = self.nodes.binary_search_by(|(k, _)| (**k).cmp(path)).ok()?;
        Some(&self.nodes[i].1)
    }

    pub fn get(&self, path: &str) -> Option<&Node> {
        self.find(&normalize(path))
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
        let own = self.find(dir).map(|n| (dir, n));
        own.into_iter()
            .chain(below(&self.nodes, dir).iter().map(|(k, n)| (&**k, n)))
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
            match self.find(&next) {
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

/// The entries strictly below `dir` in a sorted array: one run, from
/// `dir/` (a sibling such as `dir.txt` or `dir-2` sorts before it) to the
/// first path not starting with it.
fn below<'a>(nodes: &'a [(Box<str>, Node)], dir: &str) -> &'a [(Box<str>, Node)] {
    &nodes[below_range(nodes, dir)]
}

/// [`below`], as a range of indices.
fn below_range(nodes: &[(Box<str>, Node)], dir: &str) -> std::ops::Range<usize> {
    let prefix = format!("{dir}/");
    let start = nodes.partition_point(|(k, _)| **k < *prefix);
    let len = nodes[start..].partition_point(|(k, _)| k.starts_with(&prefix));
    start..start + len
}

/// For each entry of a sorted layer, whether it lies below one of the
/// layer's own non-directories (which hid whatever the lower layers had
/// there). An entry's ancestors sort before it, so each is asked of its
/// parent's answer: one lookup an entry (with no entry for the parent, of
/// every ancestor).
fn below_own_files(entries: &[(Box<str>, Node)]) -> Vec<bool> {
    let mut hidden = vec![false; entries.len()];
    let index_of = |p: &str| entries.binary_search_by(|(k, _)| (**k).cmp(p)).ok();
    for i in 0..entries.len() {
        let path = &*entries[i].0;
        let parent = parent(path);
        hidden[i] = match index_of(parent) {
            _ if parent.is_empty() => false,
            Some(p) => entries[p].1.kind != EntryKind::Dir || hidden[p],
            None => ancestors(parent)
                .filter_map(index_of)
                .any(|a| entries[a].1.kind != EntryKind::Dir || hidden[a]),
        };
    }
    hidden
}

/// The lower directories a sorted layer's non-directories replace, in the
/// layer's order: a directory entry of a lower layer at the same path, or
/// (with no entry there) lower entries below it.
fn replaced_dirs(lower: &[(Box<str>, Node)], entries: &[(Box<str>, Node)], hidden: &[bool]) -> Vec<String> {
    let mut replaced = Vec::new();
    for ((path, node), &hidden) in entries.iter().zip(hidden) {
        if node.kind == EntryKind::Dir || hidden {
            continue;
        }
        let was_dir = match lower.binary_search_by(|(k, _)| (**k).cmp(path)) {
            Ok(i) => lower[i].1.kind == EntryKind::Dir && lower[i].1.layer < node.layer,
            // A directory with children but no entry of its own.
            Err(_) => below(lower, path).iter().any(|(_, n)| n.layer < node.layer),
        };
        if was_dir {
            replaced.push(path.to_string());
        }
    }
    replaced
}

/// A sorted layer laid over the sorted lower view: its entries replace those
/// at their paths, and each of its non-directories drops the lower entries
/// below it. In place, from the back: a small code layer over half a million
/// lower paths does not copy them into a second array.
fn merge(lower: &mut Vec<(Box<str>, Node)>, mut entries: Vec<(Box<str>, Node)>) {
    // The runs of lower entries to drop, by index, sorted by where they start.
    let mut doomed: Vec<(usize, usize)> = Vec::new();
    for (path, node) in &entries {
        if let Ok(i) = lower.binary_search_by(|(k, _)| (**k).cmp(path)) {
            doomed.push((i, i + 1));
        }
        if node.kind != EntryKind::Dir {
            let run = below_range(lower, path);
            if !run.is_empty() {
                doomed.push((run.start, run.end));
            }
        }
    }
    if !doomed.is_empty() {
        doomed.sort_unstable();
        let (mut at, mut next) = (0, 0);
        lower.retain(|_| {
            let i = at;
            at += 1;
            // Past the runs that ended, the first one left holds `i` if
            // any does (they are sorted by where they start).
            while next < doomed.len() && doomed[next].1 <= i {
                next += 1;
            }
            !(next < doomed.len() && doomed[next].0 <= i)
        });
    }
    let mut i = lower.len();
    // Empty names hold the new slots until the merge fills them.
    let blank = || -> (Box<str>, Node) {
        (
            Box::from(""),
            Node {
                kind: EntryKind::Dir,
                mode: 0,
                layer: 0,
                uid: 0,
                size: 0,
                extra: None,
            },
        )
    };
    lower.resize_with(i + entries.len(), blank);
    for slot in (0..lower.len()).rev() {
        let take_upper = match (i.checked_sub(1), entries.last()) {
            (_, None) => break, // the rest of `lower` is in place
            (None, Some(_)) => true,
            (Some(prev), Some((up, _))) => **up > *lower[prev].0,
        };
        if take_upper {
            lower[slot] = entries.pop().expect("checked");
        } else {
            i -= 1;
            lower.swap(i, slot);
        }
    }
}

/// Applies a layer whose entries are in any order, one entry at a time as a
/// runtime extracts it (a later entry replaces an earlier one at its path).
fn apply_in_order(nodes: &mut BTreeMap<Box<str>, Node>, delta: LayerDelta) -> Vec<String> {
    for dir in &delta.opaque {
        remove_under(nodes, dir);
    }
    for path in &delta.whiteouts {
        nodes.remove(path.as_str());
        remove_under(nodes, path);
    }
    let mut replaced = Vec::new();
    for (path, node) in delta.entries {
        if node.kind != EntryKind::Dir {
            let was_dir = match nodes.get(&*path) {
                Some(old) => old.kind == EntryKind::Dir && old.layer < node.layer,
                // A directory with children but no entry of its own.
                None => tree_below(nodes, &path).any(|(_, n)| n.layer < node.layer),
            };
            if was_dir {
                replaced.push(path.to_string());
            }
            // A file over a directory hides everything below it.
            remove_under(nodes, &path);
        }
        nodes.insert(path, node);
    }
    replaced
}

fn tree_below<'a>(
    nodes: &'a BTreeMap<Box<str>, Node>,
    dir: &str,
) -> impl Iterator<Item = (&'a Box<str>, &'a Node)> {
    let prefix = format!("{dir}/");
    nodes
        .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
        .take_while(move |(k, _)| k.starts_with(&prefix))
}

fn remove_under(nodes: &mut BTreeMap<Box<str>, Node>, dir: &str) {
    if dir.is_empty() {
        nodes.clear();
        return;
    }
    let doomed: Vec<Box<str>> = tree_below(nodes, dir).map(|(k, _)| k.clone()).collect();
    for k in doomed {
        nodes.remove(&k);
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

    /// A layer from `(path, kind)` picks, in the order given.
    fn layer(picks: &[(String, u8)], index: usize) -> LayerDelta {
        let kinds = [EntryKind::Dir, EntryKind::File, EntryKind::Symlink];
        let mut d = LayerDelta::default();
        for (path, k) in picks {
            d.add(&entry(path, kinds[*k as usize % 3], None), None, index);
        }
        d
    }

    /// Paths over a few names that sort around `/` (`a-c` and `a.d` between
    /// `a` and `a/…`), three deep at most.
    fn paths() -> impl proptest::strategy::Strategy<Value = Vec<(String, u8)>> {
        use proptest::prelude::*;
        let name = prop::sample::select(vec!["a", "a-c", "a.d", "a0", "b", ".wh.a", ".wh..wh..opq"]);
        prop::collection::vec((prop::collection::vec(name, 1..4), 0u8..3), 0..24)
            .prop_map(|v| v.into_iter().map(|(names, k)| (names.join("/"), k)).collect())
    }

    proptest::proptest! {
        /// The sorted array's merge of a sorted layer gives what applying it
        /// an entry at a time gives: the same view, the same replaced directories.
        #[test]
        fn a_sorted_layer_merges_as_applied_in_order(lower in paths(), upper in paths(), sort_lower: bool) {
            let sorted = |mut v: Vec<(String, u8)>| {
                v.sort_by(|a, b| a.0.cmp(&b.0));
                v.dedup_by(|a, b| a.0 == b.0);
                v
            };
            let lower = if sort_lower { sorted(lower) } else { lower };
            let upper = sorted(upper);
            let mut view = FlatView::default();
            let mut tree = BTreeMap::new();
            proptest::prop_assert_eq!(view.apply(layer(&lower, 0)), apply_in_order(&mut tree, layer(&lower, 0)));
            proptest::prop_assert_eq!(view.apply(layer(&upper, 1)), apply_in_order(&mut tree, layer(&upper, 1)));
            let listed: Vec<(String, Node)> = view.iter().map(|(k, n)| (k.to_string(), n.clone())).collect();
            let expected: Vec<(String, Node)> = tree.into_iter().map(|(k, n)| (k.to_string(), n)).collect();
            proptest::prop_assert_eq!(listed, expected);
        }
    }

    #[test]
    fn a_directory_is_found_past_siblings_that_sort_before_its_children() {
        let mut view = FlatView::default();
        let mut d = LayerDelta::default();
        // No entry of its own for `lib`; `lib-dynload` and `lib.txt` sort
        // between `lib` and `lib/…`.
        for p in ["lib-dynload", "lib.txt", "lib/x.py"] {
            d.add(&entry(p, EntryKind::File, None), None, 0);
        }
        view.apply(d);
        assert_eq!(view.under("lib").count(), 1);
        assert_eq!(view.lookup("/lib/x.py", true).unwrap().0, "lib/x.py");
        let mut d = LayerDelta::default();
        d.add(&entry("lib", EntryKind::File, None), None, 1);
        assert_eq!(
            view.apply(d),
            ["lib"],
            "a file over a directory with children but no entry"
        );
        let paths: Vec<_> = view.iter().map(|(k, _)| k).collect();
        assert_eq!(paths, ["lib", "lib-dynload", "lib.txt"]);
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
