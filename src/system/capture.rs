//! The overlay's upper directory as layer entries: what the install wrote,
//! new and changed files with their modes, deletions as OCI whiteouts, and
//! none of the caches, logs and scratch space a manager leaves behind.
//!
//! overlayfs marks a deleted path with a 0:0 character device in the upper
//! directory and a directory that replaced a lower one (whose lower contents
//! are gone) with an `overlay.opaque` xattr; the OCI forms are an empty
//! `.wh.NAME` file and a `.wh..wh..opq` file inside the directory.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::layer::select::{FileStat, Selection, SelectionBuilder};

/// Paths (relative to the image root) whose contents never reach the layer:
/// package caches and indexes (downloaded again when needed), logs, scratch
/// space, mount points, and the `-old` backups dpkg and debconf keep.
pub const EXCLUDED: &[&str] = &[
    "tmp",
    "var/tmp",
    "run",
    "proc",
    "dev",
    "sys",
    "var/log",
    "var/cache/apt",
    "var/lib/apt/lists",
    "var/cache/dnf",
    "var/cache/yum",
    "var/cache/libdnf5",
    "var/cache/apk",
    "var/cache/ldconfig",
    "var/lib/dpkg/status-old",
    "var/lib/dpkg/diversions-old",
    "var/lib/dpkg/statoverride-old",
    "var/cache/debconf/config.dat-old",
    "var/cache/debconf/templates.dat-old",
    "var/lib/dnf/history.sqlite",
    "var/lib/dnf/history.sqlite-shm",
    "var/lib/dnf/history.sqlite-wal",
    "var/lib/rpm/.rpm.lock",
    "var/lib/rpm/.dbenv.lock",
    "etc/resolv.conf",
];

/// What the walk found besides the entries.
#[derive(Debug)]
pub struct Captured {
    pub entries: Selection,
    /// Paths left out because their kind has no layer form (sockets, FIFOs, devices).
    pub skipped: Vec<String>,
}

fn excluded(rel: &str) -> bool {
    EXCLUDED.iter().any(|x| {
        rel.strip_prefix(x)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

fn is_opaque(path: &Path) -> bool {
    let Ok(c_path) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|name| {
            let c_name = CString::new(*name).expect("no NUL");
            let mut value = [0u8; 2];
            // SAFETY: valid C strings and a buffer of the given length.
            let n = unsafe {
                libc::lgetxattr(
                    c_path.as_ptr(),
                    c_name.as_ptr(),
                    value.as_mut_ptr().cast(),
                    value.len(),
                )
            };
            n == 1 && value[0] == b'y'
        })
}

/// Walks `upper` into sorted entries (ancestors first). Whiteouts point at
/// `empty`, an empty file the caller keeps until the tar is written.
pub fn capture(upper: &Path, empty: &Path) -> std::io::Result<Captured> {
    let empty_stat = FileStat::of(&std::fs::metadata(empty)?);
    // Sources: input 0 is the upper directory (image paths below it), input 1 the empty file.
    let mut entries = SelectionBuilder::new(vec![upper.to_path_buf(), empty.to_path_buf()]);
    let names = |e: crate::layer::LayerError| std::io::Error::other(e.to_string());
    let mut skipped = Vec::new();
    let mut walk = walkdir::WalkDir::new(upper).min_depth(1).into_iter();
    while let Some(item) = walk.next() {
        let item = item.map_err(std::io::Error::other)?;
        let rel = item
            .path()
            .strip_prefix(upper)
            .expect("below the walk's root")
            .to_string_lossy()
            .into_owned();
        if excluded(&rel) {
            if item.file_type().is_dir() {
                walk.skip_current_dir();
            }
            continue;
        }
        let meta = item.path().symlink_metadata()?;
        let mode = meta.mode() & 0o7777;
        let ft = meta.file_type();
        if ft.is_dir() {
            if is_opaque(item.path()) {
                let marker = format!("{rel}/.wh..wh..opq");
                entries
                    .file_at_root(&marker, 1, 0o644, empty_stat)
                    .map_err(names)?;
            }
            entries.dir(&rel, mode).map_err(names)?;
        } else if ft.is_file() {
            entries
                .file_below(&rel, 0, mode, FileStat::of(&meta))
                .map_err(names)?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(item.path())?;
            entries
                .symlink(&rel, &target.to_string_lossy(), mode)
                .map_err(names)?;
        } else if ft.is_char_device() && meta.rdev() == 0 {
            let (parent, name) = match rel.rsplit_once('/') {
                Some((p, n)) => (format!("{p}/"), n.to_string()),
                None => (String::new(), rel.clone()),
            };
            let path = format!("{parent}.wh.{name}");
            entries.file_at_root(&path, 1, 0o644, empty_stat).map_err(names)?;
        } else {
            skipped.push(rel);
        }
    }
    Ok(Captured {
        entries: entries.finish(),
        skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upper_directory_becomes_sorted_entries_with_whiteouts() {
        let dir = tempfile::tempdir().unwrap();
        let upper = dir.path().join("upper");
        for d in ["usr/bin", "var/log/apt", "var/lib/apt/lists", "etc"] {
            std::fs::create_dir_all(upper.join(d)).unwrap();
        }
        std::fs::write(upper.join("usr/bin/jq"), b"\x7fELF").unwrap();
        std::fs::write(upper.join("var/log/apt/history.log"), b"log").unwrap();
        std::fs::write(upper.join("var/lib/apt/lists/x_Packages"), b"index").unwrap();
        std::os::unix::fs::symlink("jq", upper.join("usr/bin/jq2")).unwrap();
        std::fs::set_permissions(
            upper.join("usr/bin/jq"),
            std::os::unix::fs::PermissionsExt::from_mode(0o4755),
        )
        .unwrap();
        // A deletion as overlayfs records it (needs root to make the device).
        let c = CString::new(upper.join("etc/motd").as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid path; mknod of a 0:0 character device.
        let whiteouts = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o644, 0) } == 0;
        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").unwrap();

        let captured = capture(&upper, &empty).unwrap();
        let paths: Vec<&str> = captured.entries.iter().map(|e| e.path).collect();
        let mut expected = vec![
            "etc",
            "usr",
            "usr/bin",
            "usr/bin/jq",
            "usr/bin/jq2",
            "var",
            "var/lib",
            "var/lib/apt",
        ];
        if whiteouts {
            expected.insert(1, "etc/.wh.motd");
        }
        assert_eq!(paths, expected);
        let jq = captured.entries.iter().find(|e| e.path == "usr/bin/jq").unwrap();
        assert_eq!(jq.mode, 0o4755, "modes are kept as the manager set them");
    }
}
