//! Symlinks of the final image: a link is stored as written and resolved by
//! the kernel inside the running container, so a target is checked against
//! the flattened filesystem (base and every layer), never the build machine.

use super::catalog::DANGLING_SYMLINK;
use super::flat::FlatView;
use super::{Examples, Finding};
use crate::tar_walk::{EntryKind, parent};

/// Top-level directories Lambda mounts at run time: a link into them
/// (`/etc/mtab -> /proc/mounts`) is fine though the image has nothing there.
const RUNTIME_MOUNTS: &[&str] = &["proc", "sys", "dev", "run", "tmp"];

/// One warning listing the links whose target is not in the image.
pub(super) fn check_dangling(view: &FlatView) -> Option<Finding> {
    let mut dangling = Examples::default();
    for (path, node) in view.iter() {
        if node.kind != EntryKind::Symlink {
            continue;
        }
        let target = node.link().unwrap_or("");
        let joined = if target.starts_with('/') {
            target.to_string()
        } else {
            format!("{}/{target}", parent(path))
        };
        let first = lexical(&joined);
        let first = first.split('/').next().unwrap_or("");
        if RUNTIME_MOUNTS.contains(&first) {
            continue;
        }
        if view.lookup(&joined, true).is_none() {
            dangling.push(|| format!("/{path} -> {target} (layer {})", node.layer + 1));
        }
    }
    (dangling.count > 0).then(|| {
        Finding::new(
            &DANGLING_SYMLINK,
            format!(
                "{} to nothing in the image: {}",
                dangling.counted("symlink points", "symlinks point"),
                dangling.list()
            ),
        )
    })
}

/// `a/b/../c` → `a/c` without following links (only to classify the target).
fn lexical(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::flat::LayerDelta;
    use crate::tar_walk::TarEntry;

    fn add(d: &mut LayerDelta, path: &str, kind: EntryKind, link: Option<&str>) {
        let entry = TarEntry {
            path: path.into(),
            kind,
            mode: 0o777,
            uid: 0,
            size: 0,
            link: link.map(str::to_string),
            escapes_root: false,
        };
        d.add(&entry, None, 0);
    }

    #[test]
    fn only_links_to_nothing_are_reported() {
        let mut d = LayerDelta::default();
        add(&mut d, "etc/python3.11/sitecustomize.py", EntryKind::File, None);
        add(
            &mut d,
            "var/task/site.py",
            EntryKind::Symlink,
            Some("/etc/python3.11/sitecustomize.py"),
        );
        add(
            &mut d,
            "var/task/up.py",
            EntryKind::Symlink,
            Some("../../etc/python3.11/sitecustomize.py"),
        );
        add(&mut d, "etc/mtab", EntryKind::Symlink, Some("/proc/mounts"));
        add(&mut d, "var/run", EntryKind::Symlink, Some("../run"));
        let mut view = FlatView::default();
        let _ = view.apply(d);
        assert_eq!(check_dangling(&view), None);

        let mut d = LayerDelta::default();
        add(
            &mut d,
            "var/task/gone.py",
            EntryKind::Symlink,
            Some("/etc/missing.py"),
        );
        add(&mut d, "var/task/loop", EntryKind::Symlink, Some("loop"));
        let _ = view.apply(d);
        let finding = check_dangling(&view).unwrap();
        assert_eq!(finding.rule_id, "LI044");
        assert_eq!(
            finding.message,
            "2 symlinks point to nothing in the image: /var/task/gone.py -> /etc/missing.py (layer 1), \
             /var/task/loop -> loop (layer 1)"
        );
    }
}
