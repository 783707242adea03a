use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use super::*;
use crate::image::{BlobLocation, Descriptor, OCI_LAYER_TAR};

/// One tar entry: path, kind and content (or link target).
enum E<'a> {
    Dir(&'a str),
    /// A directory with its own mode.
    DirMode(&'a str, u32),
    File(&'a str, &'a str, u32),
    Link(&'a str, &'a str),
    /// A file whose name is written as is (the tar crate refuses `..`).
    Raw(&'a str, &'a str),
}

fn layer(cache: &Cache, entries: &[E]) -> Layer {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_ustar();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1);
        match e {
            E::Dir(p) | E::DirMode(p, _) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(if let E::DirMode(_, m) = e { *m } else { 0o755 });
                h.set_size(0);
                b.append_data(&mut h, p, std::io::empty()).unwrap();
            }
            E::File(p, content, mode) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(content.len() as u64);
                b.append_data(&mut h, p, content.as_bytes()).unwrap();
            }
            E::Raw(p, content) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(content.len() as u64);
                h.as_old_mut().name[..p.len()].copy_from_slice(p.as_bytes());
                h.set_cksum();
                b.append(&h, content.as_bytes()).unwrap();
            }
            E::Link(p, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, p, target).unwrap();
            }
        }
    }
    let bytes = b.into_inner().unwrap();
    let digest = Digest::of(&bytes);
    let path = cache.blob_path(&digest);
    std::fs::write(&path, &bytes).unwrap();
    Layer {
        descriptor: Descriptor::new(OCI_LAYER_TAR, digest.clone(), bytes.len() as u64),
        diff_id: digest,
        uncompressed_size: bytes.len() as u64,
        location: BlobLocation::File(path),
        origin: LayerOrigin::Built {
            name: "t".into(),
            source: "test".into(),
            cached: false,
            from_cache_registry: false,
        },
    }
}

fn read(root: &Path, rel: &str) -> Option<String> {
    std::fs::read_to_string(root.join(rel)).ok()
}

/// Ownership as a non-root caller would materialize (modes folded for uid 993),
/// so the tests mean the same as root and as another user.
const STAND_IN: Ownership = Ownership::StandIn { uid: 993, gid: 993 };

#[test]
fn whiteouts_remove_lower_entries_and_opaque_directories_keep_their_own_layer() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let lower = layer(
        &cache,
        &[
            E::Dir("etc"),
            E::File("etc/gone", "x", 0o644),
            E::File("etc/kept", "k", 0o644),
            E::Dir("opt"),
            E::File("opt/old", "o", 0o644),
        ],
    );
    let upper = layer(
        &cache,
        &[
            E::File("etc/.wh.gone", "", 0o644),
            E::Dir("opt"),
            E::File("opt/new", "n", 0o644),
            E::File("opt/.wh..wh..opq", "", 0o644),
        ],
    );
    let fs = materialize(&[lower, upper], STAND_IN, &cache).unwrap();
    assert_eq!(read(&fs.path, "etc/gone"), None);
    assert_eq!(read(&fs.path, "etc/kept").as_deref(), Some("k"));
    assert_eq!(
        read(&fs.path, "opt/old"),
        None,
        "the opaque directory hides the lower layer"
    );
    assert_eq!(
        read(&fs.path, "opt/new").as_deref(),
        Some("n"),
        "but not its own layer"
    );
    assert!(fs.path.join("tmp").is_dir() && fs.path.join("proc").is_dir());
}

#[test]
fn a_symlink_in_a_path_never_leads_out_of_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let l = layer(
        &cache,
        &[
            E::Link("up", "../../../../../../../.."),
            E::Link("abs", outside.to_str().unwrap()),
            E::File("up/escaped", "1", 0o644),
            E::File("abs/escaped", "2", 0o644),
            E::Raw("../dotdot", "3"),
        ],
    );
    let fs = materialize(&[l], STAND_IN, &cache).unwrap();
    assert!(!outside.join("escaped").exists());
    assert!(!dir.path().join("dotdot").exists());
    // Resolved as if the tree were `/`.
    assert_eq!(read(&fs.path, "escaped").as_deref(), Some("1"));
    let inside = outside.strip_prefix("/").unwrap().join("escaped");
    assert_eq!(read(&fs.path, inside.to_str().unwrap()).as_deref(), Some("2"));
    assert_eq!(read(&fs.path, "dotdot").as_deref(), Some("3"));
}

#[test]
fn a_code_only_change_applies_one_layer_to_a_hard_link_clone() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let base = layer(&cache, &[E::Dir("lib"), E::File("lib/big", "dependency", 0o644)]);
    let code1 = layer(&cache, &[E::Dir("var"), E::File("var/app", "v1", 0o644)]);
    let code2 = layer(&cache, &[E::Dir("var"), E::File("var/app", "v2", 0o644)]);
    let first = materialize(&[base.clone(), code1.clone()], STAND_IN, &cache).unwrap();
    assert_eq!(first.layers_applied, 2);
    let again = materialize(&[base.clone(), code1], STAND_IN, &cache).unwrap();
    assert_eq!((again.layers_applied, &again.path), (0, &first.path));
    let second = materialize(&[base, code2], STAND_IN, &cache).unwrap();
    assert_eq!(second.layers_applied, 1, "only the code layer");
    assert_eq!(read(&second.path, "var/app").as_deref(), Some("v2"));
    assert_eq!(
        read(&first.path, "var/app").as_deref(),
        Some("v1"),
        "the first snapshot is untouched"
    );
    let ino = |p: &Path| std::fs::metadata(p.join("lib/big")).unwrap().ino();
    assert_eq!(
        ino(&first.path),
        ino(&second.path),
        "shared by a hard link, not copied"
    );
}

#[test]
fn a_stand_in_gets_the_owner_bits_the_lambda_user_would_be_granted() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let l = layer(
        &cache,
        &[
            E::Dir("etc"),
            E::File("etc/secret", "s", 0o600),
            E::File("etc/open", "o", 0o644),
        ],
    );
    let fs = materialize(&[l], STAND_IN, &cache).unwrap();
    let mode = |rel: &str| std::fs::metadata(fs.path.join(rel)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("etc/secret"), 0o000, "root's 0600: nothing for uid 993");
    assert_eq!(mode("etc/open"), 0o444);
    assert_eq!(
        effective_mode_for_test(0o750, 0, 993),
        0o550,
        "the group's bits when the group is 993's"
    );
    assert_eq!(effective_mode_for_test(0o700, 993, 0), 0o700, "993's own file");
    assert_eq!(
        extract::effective_mode(0o4755, 0, 0, Ownership::Exact),
        0o4755,
        "exact keeps the mode"
    );
}

fn effective_mode_for_test(mode: u32, uid: u32, gid: u32) -> u32 {
    extract::effective_mode(mode, uid, gid, STAND_IN)
}

/// Entries directly in a bucket directory (snapshots, top directories, sidecars).
fn bucket_entries(cache: &Cache) -> std::collections::BTreeSet<String> {
    std::fs::read_dir(cache.bucket_dir(CacheBucket::Rootfs))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn a_code_only_change_becomes_a_directory_of_its_own_over_the_snapshot_below() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let base = layer(
        &cache,
        &[
            E::Dir("lib"),
            E::File("lib/big", "dependency", 0o644),
            E::DirMode("var", 0o750),
        ],
    );
    let deps = layer(&cache, &[E::Dir("opt"), E::File("opt/dep", "d", 0o644)]);
    let code1 = layer(
        &cache,
        &[
            E::File("var/task/app", "v1", 0o644),
            E::File("var/task/old", "o", 0o644),
        ],
    );
    let code2 = layer(&cache, &[E::File("var/task/app", "v2", 0o644)]);
    let first = materialize_layered(&[base.clone(), deps.clone(), code1.clone()], STAND_IN, &cache).unwrap();
    assert_eq!(first.layers_applied, 3);
    let top1 = first
        .top
        .clone()
        .expect("the code layer is a directory of its own");
    assert_eq!(read(&top1, "var/task/app").as_deref(), Some("v1"));
    assert_eq!(
        read(&first.path, "opt/dep").as_deref(),
        Some("d"),
        "the snapshot below"
    );
    assert!(
        !first.path.join("var/task").exists(),
        "the snapshot below has no code"
    );
    let again = materialize_layered(&[base.clone(), deps.clone(), code1], STAND_IN, &cache).unwrap();
    assert_eq!(
        (again.layers_applied, &again.top),
        (0, &first.top),
        "all in the cache"
    );

    let before = bucket_entries(&cache);
    let second = materialize_layered(&[base, deps, code2], STAND_IN, &cache).unwrap();
    assert_eq!(second.layers_applied, 1, "only the code layer");
    assert_eq!(second.path, first.path, "the same snapshot below");
    let top2 = second.top.clone().unwrap();
    let new: Vec<String> = bucket_entries(&cache).difference(&before).cloned().collect();
    let name = top2.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(
        new,
        [name.clone(), format!("{name}.dirs.json")],
        "one top directory and its sidecar"
    );
    let files: Vec<String> = walkdir::WalkDir::new(&top2)
        .into_iter()
        .map(|e| {
            e.unwrap()
                .path()
                .strip_prefix(&top2)
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    assert_eq!(
        files,
        ["", "var", "var/task", "var/task/app"],
        "the code layer's files only"
    );
    assert_eq!(read(&top2, "var/task/app").as_deref(), Some("v2"));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode(&top2.join("var")),
        mode(&first.path.join("var")),
        "a directory the layer only implies keeps the mode it has below (the overlay shows the top's)"
    );
    assert_eq!(
        mode(&top2.join("var")),
        0o550 | 0o500,
        "root's 0750 for uid 993, kept r-x"
    );
}

#[test]
fn a_top_layer_that_deletes_or_crosses_a_symlink_is_applied_to_a_clone() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let base = layer(
        &cache,
        &[
            E::Dir("usr"),
            E::Dir("usr/lib"),
            E::File("usr/lib/gone", "g", 0o644),
            E::Link("lib", "usr/lib"),
        ],
    );
    let deletes = layer(&cache, &[E::File("usr/lib/.wh.gone", "", 0o644)]);
    let fs = materialize_layered(&[base.clone(), deletes], STAND_IN, &cache).unwrap();
    assert_eq!(fs.top, None);
    assert!(
        fs.not_layered.as_deref().unwrap().contains("whiteouts"),
        "{:?}",
        fs.not_layered
    );
    assert_eq!(
        read(&fs.path, "usr/lib/gone"),
        None,
        "the clone applied the whiteout"
    );

    let through_link = layer(&cache, &[E::File("lib/new", "n", 0o644)]);
    let fs = materialize_layered(&[base, through_link], STAND_IN, &cache).unwrap();
    assert_eq!(fs.top, None);
    assert!(
        fs.not_layered.as_deref().unwrap().contains("/lib "),
        "{:?}",
        fs.not_layered
    );
    assert_eq!(
        read(&fs.path, "usr/lib/new").as_deref(),
        Some("n"),
        "written through the symlink"
    );
    assert!(
        std::fs::symlink_metadata(fs.path.join("lib"))
            .unwrap()
            .is_symlink()
    );
}
