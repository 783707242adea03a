use std::fs;
use std::path::Path;

use super::*;
use crate::layer::LayerInput;
use crate::layer::select::select;

fn write_tree(root: &Path, files: &[&str]) {
    for f in files {
        let p = root.join(f);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, f.as_bytes()).unwrap();
    }
}

/// Digests of every file and how many were read, as a build computes them.
fn digests(spec: &LayerSpec, cache: &Cache) -> (Vec<Option<ContentHash>>, usize) {
    let entries = select(spec).unwrap();
    content_digests(&entries, cache, &spec_identity(spec), 2).unwrap()
}

fn age() {
    // Files younger than the racy window are not remembered.
    std::thread::sleep(std::time::Duration::from_millis(150));
}

/// A tree of `files` (old enough to be remembered), an empty cache and a
/// spec taking the tree to `dest`.
fn fixture(files: &[&str], dest: &str) -> (tempfile::TempDir, tempfile::TempDir, Cache, LayerSpec) {
    let src = tempfile::tempdir().unwrap();
    write_tree(src.path(), files);
    age();
    let cd = tempfile::tempdir().unwrap();
    let cache = Cache::open(cd.path()).unwrap();
    let spec = LayerSpec {
        name: "t".into(),
        inputs: vec![LayerInput::all(src.path(), dest)],
    };
    (src, cd, cache, spec)
}

#[test]
fn the_index_follows_added_removed_and_changed_files() {
    let (src, _cd, cache, spec) = fixture(&["a.py", "pkg/b.py", "pkg/sub/c.py", "z.txt"], "/var/task");
    let (first, read) = digests(&spec, &cache);
    assert_eq!(read, 4);
    let (again, read) = digests(&spec, &cache);
    assert_eq!((again, read), (first.clone(), 0));

    // One removed, one added in the middle, one changed: only the new and
    // the changed are read; the digests equal a fresh computation's.
    fs::remove_file(src.path().join("pkg/b.py")).unwrap();
    write_tree(src.path(), &["pkg/aa.py"]);
    fs::write(src.path().join("z.txt"), "changed").unwrap();
    age();
    let (third, read) = digests(&spec, &cache);
    assert_eq!(read, 2);
    let fresh = tempfile::tempdir().unwrap();
    assert_eq!(third, digests(&spec, &Cache::open(fresh.path()).unwrap()).0);
    assert_eq!(digests(&spec, &cache).1, 0, "the index was rewritten");
}

#[test]
fn a_damaged_index_only_costs_a_reread() {
    let (_src, _cd, cache, spec) = fixture(&["a", "b/c", "d"], "/t");
    let (first, _) = digests(&spec, &cache);
    let index = stat_index_path(&cache, &spec_identity(&spec));
    let bytes = fs::read(&index).unwrap();
    assert!(bytes.starts_with(STAT_MAGIC));
    // Cut in the middle of the second record: the first still counts.
    let cut = STAT_MAGIC.len() + (bytes.len() - STAT_MAGIC.len()) / 3 + 10;
    fs::write(&index, &bytes[..cut]).unwrap();
    let (second, read) = digests(&spec, &cache);
    assert_eq!((second, read), (first.clone(), 2));
    fs::write(&index, b"not an index").unwrap();
    assert_eq!(digests(&spec, &cache), (first, 3));
}

#[test]
fn an_index_whose_paths_do_not_ascend_ends_there() {
    // Each record: shared prefix length, tail length, tail, input, five
    // stat numbers and the hash (see `IndexReader`).
    fn record(out: &mut Vec<u8>, shared: u8, tail: &str) {
        out.extend([shared, tail.len() as u8]);
        out.extend(tail.as_bytes());
        out.push(0);
        out.extend([0u8; 40 + 32]);
    }
    let mut bytes = STAT_MAGIC.to_vec();
    record(&mut bytes, 0, "pkg/b");
    record(&mut bytes, 4, "c"); // pkg/c: ascends
    record(&mut bytes, 4, "a"); // pkg/a: goes back, damage
    record(&mut bytes, 0, "z");
    let mut reader = IndexReader::new(std::io::Cursor::new(bytes)).unwrap();
    let mut stale = false;
    assert!(reader.seek("pkg/b", &mut stale).is_some());
    assert!(reader.seek("pkg/c", &mut stale).is_some());
    assert!(!reader.has_more(), "the descending record ends the index");
    assert!(reader.seek("z", &mut stale).is_none());
    assert!(!stale);
}
