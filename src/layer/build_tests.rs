use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Mutex;

use flate2::read::GzDecoder;

use super::*;
use crate::image::MediaFamily;
use crate::layer::LayerInput;
use crate::report::Reporter;

/// Keeps `detail` lines so tests can see cache decisions.
#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl Reporter for Recorder {
    fn step(&self, _: &str) {}
    fn task_start(&self, _: &str, _: &str, _: Option<u64>) {}
    fn task_progress(&self, _: &str, _: u64) {}
    fn task_done(&self, _: &str, _: &str) {}
    fn warn(&self, _: &str) {}
    fn detail(&self, m: &str) {
        self.0.lock().unwrap().push(m.to_string());
    }
}

/// A small tree; `file_perm`/`dir_perm` play the part of different umasks.
fn fixed_tree(root: &Path, file_perm: u32, dir_perm: u32, touch: Option<&str>) {
    let files: [(&str, &[u8]); 4] = [
        ("app.py", b"def handler(event, context):\n    return 'ok'\n"),
        ("lib/util.py", b"X = 1\n"),
        ("lib/data/blob.bin", &[0u8, 1, 2, 3, 255, 254, 253]),
        ("bootstrap", b"#!/bin/sh\nexec python3 app.py\n"),
    ];
    for (rel, body) in files {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, body).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(file_perm)).unwrap();
        if let Some(date) = touch {
            let st = std::process::Command::new("touch")
                .args(["-d", date])
                .arg(&p)
                .status()
                .unwrap();
            assert!(st.success());
        }
    }
    // Big enough to span several compression blocks, so the golden digest
    // covers dictionary priming and the joins between blocks.
    let big: String = (0..80_000u32)
        .map(|i| format!("{} ", i.wrapping_mul(2_654_435_761) % 9973))
        .collect();
    fs::write(root.join("lib/data/big.txt"), big).unwrap();
    // Pseudo-random bytes over more than a whole block: the golden digest
    // covers blocks written stored as incompressible too.
    let noise = crate::gzip::test_noise(400_000, 0x9e37_79b9_7f4a_7c15);
    fs::write(root.join("lib/data/noise.bin"), noise).unwrap();
    for f in ["lib/data/big.txt", "lib/data/noise.bin"] {
        fs::set_permissions(root.join(f), fs::Permissions::from_mode(file_perm)).unwrap();
    }
    fs::set_permissions(
        root.join("bootstrap"),
        fs::Permissions::from_mode(file_perm | 0o100),
    )
    .unwrap();
    std::os::unix::fs::symlink("lib/util.py", root.join("util.py")).unwrap();
    for d in ["lib", "lib/data"] {
        fs::set_permissions(root.join(d), fs::Permissions::from_mode(dir_perm)).unwrap();
    }
}

fn spec_for(root: &Path) -> LayerSpec {
    LayerSpec {
        name: "code".into(),
        inputs: vec![LayerInput::all(root, "/var/task")],
    }
}

fn settings(threads: usize) -> LayerSettings {
    LayerSettings {
        threads,
        ..LayerSettings::default()
    }
}

fn blob_bytes(layer: &Layer) -> Vec<u8> {
    let BlobLocation::File(p) = &layer.location;
    fs::read(p).unwrap()
}

/// If this changes, the bytes of every layer changed: the compressor (flate2 /
/// zlib-rs version or settings), the gzip framing or the tar layout. That breaks
/// chunk reuse for every user's existing images; only accept it on purpose,
/// and bump LAYER_FORMAT_VERSION with it.
const GOLDEN_DIFF_ID: &str = "sha256:3c46539a777d238ee7eda6d9bfd64b895187b07ec4829a9063342ac24138e3a3";
const GOLDEN_DIGEST: &str = "sha256:6d1b082d02a34d093c349dc2fe234a09ba0fa66d8d15feed88d702561428e123";

#[test]
fn golden_digest_of_a_fixed_tree() {
    let src = tempfile::tempdir().unwrap();
    let cache_dir = tempfile::tempdir().unwrap();
    fixed_tree(src.path(), 0o644, 0o755, None);
    let cache = Cache::open(cache_dir.path()).unwrap();
    let layer = build_layer(
        &spec_for(src.path()),
        &settings(2),
        &cache,
        &crate::report::Silent,
    )
    .unwrap();
    // Checked first: when only the blob digest moves, the compressor changed;
    // when this moves too, the tar layout did.
    assert_eq!(layer.diff_id.to_string(), GOLDEN_DIFF_ID);
    assert_eq!(layer.descriptor.digest.to_string(), GOLDEN_DIGEST);
}

#[test]
fn same_digest_from_different_paths_times_umasks_and_threads() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    fixed_tree(a.path(), 0o600, 0o700, Some("2001-02-03 04:05:06"));
    fixed_tree(&b.path().join("deeper/checkout"), 0o664, 0o775, None);
    let (ca, cb) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let la = build_layer(
        &spec_for(a.path()),
        &settings(1),
        &Cache::open(ca.path()).unwrap(),
        &crate::report::Silent,
    )
    .unwrap();
    let lb = build_layer(
        &spec_for(&b.path().join("deeper/checkout")),
        &settings(4),
        &Cache::open(cb.path()).unwrap(),
        &crate::report::Silent,
    )
    .unwrap();
    assert_eq!(la.descriptor, lb.descriptor);
    assert_eq!(la.diff_id, lb.diff_id);
    assert_eq!(blob_bytes(&la), blob_bytes(&lb));
}

#[test]
fn layer_facts_match_the_blob() {
    let src = tempfile::tempdir().unwrap();
    fixed_tree(src.path(), 0o644, 0o755, None);
    let cd = tempfile::tempdir().unwrap();
    let cache = Cache::open(cd.path()).unwrap();
    let s = LayerSettings {
        family: MediaFamily::Docker,
        ..settings(2)
    };
    let layer = build_layer(&spec_for(src.path()), &s, &cache, &crate::report::Silent).unwrap();
    assert_eq!(layer.descriptor.media_type, crate::image::DOCKER_LAYER_GZIP);
    let bytes = blob_bytes(&layer);
    assert_eq!(Digest::of(&bytes), layer.descriptor.digest);
    assert_eq!(bytes.len() as u64, layer.descriptor.size);
    let mut tar = Vec::new();
    GzDecoder::new(&bytes[..]).read_to_end(&mut tar).unwrap();
    assert_eq!(Digest::of(&tar), layer.diff_id);
    assert_eq!(tar.len() as u64, layer.uncompressed_size);
    match &layer.origin {
        LayerOrigin::Built {
            name, source, cached, ..
        } => {
            assert_eq!(name, "code");
            assert!(source.contains("/var/task"), "{source}");
            assert!(!cached);
        }
        o => panic!("{o:?}"),
    }
}

#[test]
fn second_build_is_a_cache_hit_that_reads_no_file() {
    let src = tempfile::tempdir().unwrap();
    fixed_tree(src.path(), 0o644, 0o755, None);
    // Files younger than the racy window are not remembered by the stat index.
    std::thread::sleep(std::time::Duration::from_millis(150));
    let cd = tempfile::tempdir().unwrap();
    let cache = Cache::open(cd.path()).unwrap();
    let spec = spec_for(src.path());
    let first = build_layer(&spec, &settings(2), &cache, &crate::report::Silent).unwrap();
    let BlobLocation::File(blob) = &first.location;
    let before = fs::metadata(blob).unwrap();

    let rec = Recorder::default();
    let second = build_layer(&spec, &settings(2), &cache, &rec).unwrap();
    assert_eq!(second.descriptor, first.descriptor);
    assert_eq!(second.diff_id, first.diff_id);
    assert!(matches!(second.origin, LayerOrigin::Built { cached: true, .. }));
    let after = fs::metadata(blob).unwrap();
    assert_eq!(
        (before.ino(), before.mtime_nsec()),
        (after.ino(), after.mtime_nsec()),
        "blob rewritten"
    );
    let details = rec.0.lock().unwrap().join("\n");
    assert!(
        details.contains("0 read to hash") && details.contains("cache hit"),
        "{details}"
    );

    // A changed file is read again and gives a new layer.
    fs::write(src.path().join("lib/util.py"), "X = 2\n").unwrap();
    let rec = Recorder::default();
    let third = build_layer(&spec, &settings(2), &cache, &rec).unwrap();
    assert_ne!(third.descriptor.digest, first.descriptor.digest);
    assert!(matches!(third.origin, LayerOrigin::Built { cached: false, .. }));
    let details = rec.0.lock().unwrap().join("\n");
    assert!(details.contains("1 read to hash"), "{details}");
}

#[test]
fn a_missing_blob_is_rebuilt() {
    let src = tempfile::tempdir().unwrap();
    fixed_tree(src.path(), 0o644, 0o755, None);
    let cd = tempfile::tempdir().unwrap();
    let cache = Cache::open(cd.path()).unwrap();
    let spec = spec_for(src.path());
    let first = build_layer(&spec, &settings(2), &cache, &crate::report::Silent).unwrap();
    let BlobLocation::File(blob) = &first.location;
    fs::remove_file(blob).unwrap();
    let again = build_layer(&spec, &settings(2), &cache, &crate::report::Silent).unwrap();
    assert!(matches!(again.origin, LayerOrigin::Built { cached: false, .. }));
    assert_eq!(again.descriptor, first.descriptor);
    assert!(blob.is_file());
}

#[test]
fn golden_tree_spans_several_blocks() {
    let src = tempfile::tempdir().unwrap();
    fixed_tree(src.path(), 0o644, 0o755, None);
    let cd = tempfile::tempdir().unwrap();
    let cache = Cache::open(cd.path()).unwrap();
    let layer = build_layer(
        &spec_for(src.path()),
        &settings(1),
        &cache,
        &crate::report::Silent,
    )
    .unwrap();
    assert!(layer.uncompressed_size > 2 * crate::gzip::BLOCK_SIZE as u64);
}

#[test]
fn concurrent_builds_of_one_layer_compress_it_once() {
    let src = tempfile::tempdir().unwrap();
    fixed_tree(src.path(), 0o644, 0o755, None);
    let cd = tempfile::tempdir().unwrap();
    let spec = spec_for(src.path());
    let results: Vec<Layer> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|_| {
                s.spawn(|| {
                    // Each thread opens the cache on its own, like separate processes.
                    let cache = Cache::open(cd.path()).unwrap();
                    build_layer(&spec, &settings(1), &cache, &crate::report::Silent).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let fresh = results
        .iter()
        .filter(|l| matches!(l.origin, LayerOrigin::Built { cached: false, .. }))
        .count();
    assert_eq!(
        fresh, 1,
        "exactly one build compresses; the others wait and reuse it"
    );
    assert!(results.iter().all(|l| l.descriptor == results[0].descriptor));
}

#[test]
fn a_layer_made_in_a_new_cache_is_keyed_as_in_a_used_one() {
    let src = tempfile::tempdir().unwrap();
    fixed_tree(src.path(), 0o644, 0o755, None);
    let other = tempfile::tempdir().unwrap();
    fs::write(other.path().join("other.py"), "X = 3\n").unwrap();
    // Files younger than the racy window are not remembered by the stat index.
    std::thread::sleep(std::time::Duration::from_millis(150));
    let (new_dir, used_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (new, used) = (
        Cache::open(new_dir.path()).unwrap(),
        Cache::open(used_dir.path()).unwrap(),
    );
    // Another layer's record: the used cache could hold a match, so it keys first.
    build_layer(
        &spec_for(other.path()),
        &settings(2),
        &used,
        &crate::report::Silent,
    )
    .unwrap();

    let spec = spec_for(src.path());
    let (in_new, in_used) = (Recorder::default(), Recorder::default());
    let a = build_layer(&spec, &settings(2), &new, &in_new).unwrap();
    let b = build_layer(&spec, &settings(2), &used, &in_used).unwrap();
    let said = |r: &Recorder| r.0.lock().unwrap().join("\n");
    assert!(
        said(&in_new).contains("hashed as they were compressed"),
        "{}",
        said(&in_new)
    );
    assert!(said(&in_used).contains("read to hash"), "{}", said(&in_used));
    assert_eq!((&a.descriptor, &a.diff_id), (&b.descriptor, &b.diff_id));
    assert_eq!(blob_bytes(&a), blob_bytes(&b));
    // The same record name (the cache key) in both.
    let records = |c: &Cache| -> std::collections::BTreeSet<String> {
        fs::read_dir(c.bucket_dir(CacheBucket::Layers))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(records(&new).len(), 1);
    assert!(
        records(&new).is_subset(&records(&used)),
        "{:?} {:?}",
        records(&new),
        records(&used)
    );

    // The new cache's stat index came from the same reads: a rebuild reads nothing.
    let again = Recorder::default();
    let c = build_layer(&spec, &settings(2), &new, &again).unwrap();
    assert!(matches!(c.origin, LayerOrigin::Built { cached: true, .. }));
    assert!(said(&again).contains("0 read to hash"), "{}", said(&again));
}
