//! `lambda-img cache prune` through the real binary: buckets of other format
//! versions go on every prune, and the root filesystems `run` materialized go
//! once unused (issue #14 found prune ignoring them).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::support::project::Project;
use crate::support::{run_ok, stdout};

fn json(p: &Project, args: &[&str]) -> Value {
    let out = run_ok(&mut p.cmd(args));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)))
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn cache_prune_removes_old_version_buckets_and_unused_root_filesystems() {
    let Some(p) = crate::run::hello_scratch() else {
        return;
    };
    let answer = |p: &Project| stdout(&run_ok(&mut p.cmd(&["run", "--event", "{}"])));
    let first = answer(&p);
    assert!(first.contains("hello from lambda-img"), "{first}");
    let cache = p.cache.path();
    let tag = fs::read_to_string(cache.join("CACHEDIR.TAG")).unwrap();
    assert!(
        tag.starts_with("Signature: 8a477f597d28d172789f06886806bc55"),
        "{tag}"
    );
    let rootfs = cache.join("rootfs-v1");
    let snapshots = names(&rootfs);
    assert!(
        snapshots.iter().any(|n| !n.ends_with(".dirs.json")),
        "run materialized a root filesystem: {snapshots:?}"
    );
    let layer_records = names(&cache.join("layers-v1"));
    assert!(!layer_records.is_empty());

    // What an older lambda-img left: buckets of format versions nobody reads now.
    let old: Vec<PathBuf> = ["layers-v0", "archive-gzip-v1"]
        .iter()
        .map(|b| cache.join(b))
        .collect();
    for dir in &old {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join("0123.json"), r#"{"digest":"sha256:00"}"#).unwrap();
    }
    let size = json(&p, &["cache", "size", "--json"]);
    assert_eq!(size["old_buckets"], 2, "{size}");
    assert!(size["rootfs_snapshots"].as_u64().unwrap() >= 1, "{size}");
    assert!(size["rootfs_bytes"].as_u64().unwrap() > 0, "{size}");

    // Any prune removes the old buckets; a root filesystem just used stays.
    let report = json(&p, &["cache", "prune", "--older-than", "30", "--json"]);
    assert_eq!(report["removed_old_buckets"], 2, "{report}");
    assert_eq!(report["removed_rootfs"], 0, "{report}");
    assert!(old.iter().all(|d| !d.exists()));
    assert_eq!(names(&rootfs), snapshots);
    assert_eq!(names(&cache.join("layers-v1")), layer_records);

    // Unused for 60 days (a use refreshes the sidecar's time): pruned, whole.
    let long_ago = SystemTime::now() - Duration::from_secs(60 * 86400);
    for name in snapshots.iter().filter(|n| n.ends_with(".dirs.json")) {
        let sidecar = fs::File::options().write(true).open(rootfs.join(name)).unwrap();
        sidecar.set_modified(long_ago).unwrap();
    }
    let dry = json(
        &p,
        &["cache", "prune", "--older-than", "30", "--dry-run", "--json"],
    );
    assert!(dry["removed_rootfs"].as_u64().unwrap() >= 1, "{dry}");
    assert_eq!(names(&rootfs), snapshots, "a dry run removes nothing");
    let report = json(&p, &["cache", "prune", "--older-than", "30", "--json"]);
    assert_eq!(report["removed_rootfs"], dry["removed_rootfs"], "{report}");
    assert_eq!(
        report["removed_blobs"], 0,
        "the layer blobs were used just now: {report}"
    );
    assert_eq!(names(&rootfs), Vec::<String>::new());
    assert_eq!(
        names(&cache.join("tmp")),
        Vec::<String>::new(),
        "nothing left behind"
    );

    // The next run materializes it again from the cached layers.
    assert_eq!(answer(&p), first);
    assert!(!names(&rootfs).is_empty());
    let report = json(&p, &["cache", "prune", "--all", "--json"]);
    assert!(report["removed_rootfs"].as_u64().unwrap() >= 1, "{report}");
    assert_eq!(names(&rootfs), Vec::<String>::new());
}
