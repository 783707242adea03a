use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use super::*;
use crate::layer::select::select;
use crate::layer::{LayerInput, LayerSpec};

fn tree(dir: &Path) {
    fs::create_dir_all(dir.join("pkg/sub")).unwrap();
    fs::write(dir.join("app.py"), "print('hi')\n").unwrap();
    fs::write(dir.join("pkg/sub/data.bin"), vec![7u8; 1000]).unwrap();
    fs::write(dir.join("run.sh"), "#!/bin/sh\n").unwrap();
    fs::set_permissions(dir.join("run.sh"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::set_permissions(dir.join("app.py"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::hard_link(dir.join("app.py"), dir.join("pkg/hard.py")).unwrap();
    symlink("sub/data.bin", dir.join("pkg/link.bin")).unwrap();
    let long = "d".repeat(60);
    fs::create_dir_all(dir.join(&long)).unwrap();
    fs::write(dir.join(&long).join(format!("{}.txt", "f".repeat(80))), "long").unwrap();
}

fn tar_of(dir: &Path, mtime: u64) -> Vec<u8> {
    let spec = LayerSpec {
        name: "t".into(),
        inputs: vec![LayerInput::all(dir, "/var/task")],
    };
    write_tar(&select(&spec).unwrap(), mtime, Vec::new()).unwrap()
}

#[test]
fn headers_are_normalised_sorted_and_parents_first() {
    let d = tempfile::tempdir().unwrap();
    tree(d.path());
    let bytes = tar_of(d.path(), 315_532_800);
    assert_eq!(bytes.len() % 512, 0);
    let mut ar = tar::Archive::new(&bytes[..]);
    let mut seen: Vec<String> = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        let path = String::from_utf8(e.path_bytes().into_owned()).unwrap();
        assert!(!path.starts_with('/'), "{path}");
        assert_eq!(h.uid().unwrap(), 0, "{path}");
        assert_eq!(h.gid().unwrap(), 0, "{path}");
        assert_eq!(h.username_bytes().unwrap_or_default(), b"", "{path}");
        assert_eq!(h.groupname_bytes().unwrap_or_default(), b"", "{path}");
        assert_eq!(h.mtime().unwrap(), 315_532_800, "{path}");
        let gnu = h.as_gnu().unwrap();
        assert_eq!(gnu.atime, [0; 12]);
        assert_eq!(gnu.ctime, [0; 12]);
        let ty = h.entry_type();
        assert!(
            matches!(ty, EntryType::Regular | EntryType::Directory | EntryType::Symlink),
            "{path}: {ty:?}"
        );
        let mode = h.mode().unwrap();
        match ty {
            EntryType::Directory => {
                assert!(path.ends_with('/'), "{path}");
                assert_eq!(mode, 0o755, "{path}");
            }
            EntryType::Symlink => {
                assert_eq!(mode, 0o777);
                assert_eq!(path, "var/task/pkg/link.bin");
                assert_eq!(e.link_name().unwrap().unwrap().to_str(), Some("sub/data.bin"));
            }
            _ => {
                let want = if path.ends_with("run.sh") { 0o755 } else { 0o644 };
                assert_eq!(mode, want, "{path}");
                let mut body = Vec::new();
                std::io::Read::read_to_end(&mut e, &mut body).unwrap();
                assert_eq!(body.len() as u64, h.size().unwrap());
                if path.ends_with(".py") {
                    assert_eq!(body, b"print('hi')\n", "{path}: hard links become full copies");
                }
            }
        }
        let plain = path.trim_end_matches('/').to_string();
        if let Some((parent, _)) = plain.rsplit_once('/') {
            assert!(
                seen.iter().any(|s| s == parent),
                "{plain} came before its parent {parent}"
            );
        }
        if let Some(last) = seen.last() {
            assert!(
                last.as_bytes() < plain.as_bytes(),
                "{last} then {plain}: not sorted"
            );
        }
        seen.push(plain);
    }
    assert_eq!(&seen[..2], ["var", "var/task"]);
    assert!(seen.iter().any(|p| p == "var/task/pkg/hard.py"));
    assert!(
        seen.iter().any(|p| p.len() > 150),
        "the long name survives: {seen:?}"
    );
}

#[test]
fn same_bytes_from_different_disk_metadata() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    tree(a.path());
    tree(b.path());
    // Different mtimes and permission bits that normalise to the same modes.
    let old = filetime_days_ago(a.path().join("app.py"));
    assert!(old);
    fs::set_permissions(b.path().join("run.sh"), fs::Permissions::from_mode(0o751)).unwrap();
    fs::set_permissions(b.path().join("pkg/sub"), fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(tar_of(a.path(), 1), tar_of(b.path(), 1));
    assert_ne!(tar_of(a.path(), 1), tar_of(a.path(), 2), "mtime is written");
}

fn filetime_days_ago(p: std::path::PathBuf) -> bool {
    std::process::Command::new("touch")
        .args(["-d", "2001-01-01"])
        .arg(p)
        .status()
        .unwrap()
        .success()
}

#[test]
fn a_file_that_shrinks_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    fs::write(d.path().join("f"), "0123456789").unwrap();
    let spec = LayerSpec {
        name: "t".into(),
        inputs: vec![LayerInput::all(d.path(), "/t")],
    };
    let entries = select(&spec).unwrap();
    fs::write(d.path().join("f"), "01").unwrap();
    let err = write_tar(&entries, 1, Vec::new()).unwrap_err();
    assert!(matches!(err, LayerError::FileChanged { .. }), "{err}");
}

#[test]
fn tar_size_predicts_the_written_length_exactly() {
    let d = tempfile::tempdir().unwrap();
    tree(d.path());
    for n in [98, 99, 100, 101, 102, 200, 511, 512] {
        fs::write(d.path().join("x".repeat(n.min(250))), vec![1u8; n]).unwrap();
    }
    // Image paths of 99, 100 and 101 bytes (`var/task/` is 9), files and dirs.
    for n in [90, 91, 92] {
        fs::write(d.path().join("y".repeat(n)), "y").unwrap();
        fs::create_dir_all(d.path().join("z".repeat(n))).unwrap();
    }
    symlink("t".repeat(100), d.path().join("target-100")).unwrap();
    symlink("t".repeat(101), d.path().join("target-101")).unwrap();
    symlink("t".repeat(120), d.path().join("long-target")).unwrap();
    let deep = d.path().join("a".repeat(90)).join("b".repeat(8));
    fs::create_dir_all(&deep).unwrap();
    let spec = LayerSpec {
        name: "t".into(),
        inputs: vec![LayerInput::all(d.path(), "/var/task")],
    };
    let entries = select(&spec).unwrap();
    let written = write_tar(&entries, 315_532_800, Vec::new()).unwrap();
    assert_eq!(tar_size(&entries), written.len() as u64);
}

/// The tar `write_tar_into_blocks` streams into the compressor, as the
/// gzip summary's uncompressed digest and size name it.
fn streamed_tar(entries: &Selection) -> Result<crate::gzip::GzipSummary, LayerError> {
    crate::gzip::parallel_gzip(4, 2, std::io::sink(), Path::new("<test>"), &|_| {}, |sink| {
        write_tar_into_blocks(entries, 7, sink)
    })
    .map(|(_, summary)| summary)
}

#[test]
fn the_tar_read_straight_into_blocks_is_the_buffered_one() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    // Files larger than a block and than the read buffer, of odd sizes.
    fs::write(
        dir.path().join("big.bin"),
        crate::gzip::test_noise(3 * READ_BUF + 77, 5),
    )
    .unwrap();
    fs::write(
        dir.path().join("mid.bin"),
        crate::gzip::test_noise(crate::gzip::BLOCK_SIZE + 1, 6),
    )
    .unwrap();
    let spec = LayerSpec {
        name: "t".into(),
        inputs: vec![LayerInput::all(dir.path(), "/var/task")],
    };
    let entries = select(&spec).unwrap();
    let buffered = write_tar(&entries, 7, Vec::new()).unwrap();
    let summary = streamed_tar(&entries).unwrap();
    assert_eq!(summary.uncompressed_size, buffered.len() as u64);
    assert_eq!(summary.uncompressed_digest, crate::image::Digest::of(&buffered));

    // A file that shrank after its selection is still refused.
    fs::write(dir.path().join("big.bin"), b"short").unwrap();
    assert!(matches!(
        streamed_tar(&entries),
        Err(LayerError::FileChanged { .. })
    ));
}
