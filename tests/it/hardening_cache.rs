//! A cache nobody else can poison: ownership and permission checks with the
//! fix in the message, a per-user fallback without HOME, corrupt blobs evicted
//! with their records, and temp files of killed builds removed.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::support::oci::manifest;
use crate::support::project::{Project, scratch_manifest};
use crate::support::{bin, require_tool, run_fail, run_ok, stderr, stdout};

fn project() -> Option<Project> {
    if !require_tool("busybox") {
        return None;
    }
    let p = Project::new(
        &scratch_manifest(""),
        &[("data/notes.txt", &"cache hardening\n".repeat(5000))],
    );
    p.copy_in(Path::new("/bin/busybox"), "busybox");
    // Inputs changed within the last moment are hashed again rather than
    // trusted by their stat (racy-git style); old ones give a plain cache hit.
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for rel in ["busybox", "data/notes.txt"] {
        fs::File::options()
            .append(true)
            .open(p.join(rel))
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    Some(p)
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_cache_others_can_write_is_refused_with_the_fix() {
    let Some(p) = project() else { return };
    let cache = p.cache.path();
    let out = p.join("out");
    let oci = format!("oci:{}", out.display());
    run_ok(&mut p.cmd(&["build", "--output", &oci]));
    fs::remove_dir_all(&out).unwrap();

    // A group-writable cache root: refused, nothing written.
    chmod(cache, 0o775);
    let err = stderr(&run_fail(&mut p.cmd(&["build", "--output", &oci])));
    assert!(
        err.contains(&cache.display().to_string())
            && err.contains("writable by its group")
            && err.contains("chmod 700"),
        "{err}"
    );
    assert!(!out.exists(), "a refused cache writes no output");
    chmod(cache, 0o700);

    // A world-writable bucket, where a forged layer record would go.
    let layers = cache.join("layers-v1");
    assert!(layers.is_dir());
    chmod(&layers, 0o777);
    let err = stderr(&run_fail(&mut p.cmd(&["build", "--output", &oci])));
    assert!(err.contains("layers-v1") && err.contains("every user"), "{err}");
    chmod(&layers, 0o700);

    // A cache owned by another user (only root can arrange one).
    if lambda_img::cache::current_uid() == 0 {
        std::os::unix::fs::chown(cache, Some(65534), Some(65534)).unwrap();
        let err = stderr(&run_fail(&mut p.cmd(&["build", "--output", &oci])));
        assert!(
            err.contains("owned by uid 65534") && err.contains("LAMBDA_IMG_CACHE"),
            "{err}"
        );
        std::os::unix::fs::chown(cache, Some(0), Some(0)).unwrap();
    }
    run_ok(&mut p.cmd(&["build", "--output", &oci]));
}

#[test]
fn without_home_the_cache_is_per_user_and_private() {
    let tmp = tempfile::tempdir().unwrap();
    let cmd = || {
        let mut c = crate::support::command(bin());
        c.args(["cache", "dir"])
            .env_remove("LAMBDA_IMG_CACHE")
            .env_remove("XDG_CACHE_HOME")
            .env_remove("HOME")
            .env("TMPDIR", tmp.path());
        c
    };
    let uid = lambda_img::cache::current_uid();
    let expected = tmp.path().join(format!("lambda-img-{uid}"));
    let out = run_ok(&mut cmd());
    assert_eq!(stdout(&out).trim(), expected.display().to_string());
    let meta = fs::metadata(&expected).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    assert_eq!(meta.uid(), uid);
    for sub in ["tmp", "locks", "blobs-v1", "blobs-v1/sha256"] {
        assert_eq!(
            fs::metadata(expected.join(sub)).unwrap().permissions().mode() & 0o777,
            0o700,
            "{sub}"
        );
    }

    // Someone made it first with wide permissions, or planted a link: refused.
    chmod(&expected, 0o777);
    let err = stderr(&run_fail(&mut cmd()));
    assert!(err.contains("every user") && err.contains("chmod 700"), "{err}");
    fs::remove_dir_all(&expected).unwrap();
    let elsewhere = tmp.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    chmod(&elsewhere, 0o700);
    std::os::unix::fs::symlink(&elsewhere, &expected).unwrap();
    let err = stderr(&run_fail(&mut cmd()));
    assert!(err.contains("symbolic link"), "{err}");
    assert_eq!(
        fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "nothing was created through the link"
    );
}

#[test]
fn a_corrupt_cached_layer_is_evicted_and_rebuilt() {
    let Some(p) = project() else { return };
    // Outside the project, which would otherwise pack them into its layer.
    let outs = tempfile::tempdir().unwrap();
    let out = |n: &str| format!("oci:{}", outs.path().join(n).display());
    let first = stdout(&run_ok(&mut p.cmd(&["build", "--output", &out("o1")])));
    let (m, _) = manifest(&outs.path().join("o1"), "latest");
    let layer = m["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap()
        .to_string();
    let blob = p.cache.path().join("blobs-v1/sha256").join(&layer);
    let mut bytes = fs::read(&blob).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x5a;
    // Written in place, as disk damage would be (the cache itself never does this).
    fs::write(&blob, &bytes).unwrap();

    let err = stderr(&run_fail(&mut p.cmd(&["build", "--output", &out("o2")])));
    assert!(
        err.contains(&layer) && err.contains("removed from the cache"),
        "{err}"
    );
    assert!(!outs.path().join("o2/index.json").exists(), "nothing was written");
    assert!(!blob.exists(), "the corrupt blob was evicted");
    let records = fs::read_dir(p.cache.path().join("layers-v1")).unwrap();
    for r in records.flatten() {
        assert!(
            !fs::read_to_string(r.path()).unwrap().contains(&layer),
            "a record still names it"
        );
    }

    // The next build rebuilds it: same image as the first.
    let third = stdout(&run_ok(&mut p.cmd(&["build", "--output", &out("o3")])));
    assert_eq!(first, third);
}

#[test]
fn temp_files_of_a_killed_build_are_removed_by_the_next_build() {
    let Some(p) = project() else { return };
    let tmp = p.cache.path().join("tmp");
    fs::create_dir_all(&tmp).unwrap();
    fs::set_permissions(p.cache.path(), fs::Permissions::from_mode(0o700)).unwrap();
    let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    let make = |name: &str| {
        let path = tmp.join(name);
        let f = fs::File::create(&path).unwrap();
        f.set_len(8 << 20).unwrap();
        f.set_modified(an_hour_ago).unwrap();
        path
    };
    // Left by a killed build: nobody holds a lock on it.
    let dead = make("w-killed");
    // Held by a live writer (this test process), however old.
    let live = make("w-live");
    let holder = fs::File::open(&live).unwrap();
    holder.lock_shared().unwrap();
    // Not ours to judge.
    let other = make("unrelated");

    run_ok(&mut p.cmd(&["build", "--output", &format!("oci:{}", p.join("out").display())]));
    assert!(!dead.exists(), "the abandoned temp file was removed");
    assert!(live.exists(), "a temp file under a live lock was kept");
    assert!(other.exists());
    drop(holder);
}

#[test]
fn a_corrupt_cached_layer_refused_by_the_registry_is_evicted() {
    let Some(p) = project() else { return };
    let Some(reg) = crate::support::registry::TestRegistry::start() else {
        return;
    };
    let out = format!("registry:{}/evict/app:1", reg.host());
    let first = stdout(&run_ok(&mut p.cmd(&["build", "--output", &out])));
    let digest = first.trim().rsplit('@').next().unwrap().to_string();
    let blobs = p.cache.path().join("blobs-v1/sha256");
    // The code layer: the biggest blob this build wrote.
    let blob = fs::read_dir(&blobs)
        .unwrap()
        .flatten()
        .max_by_key(|e| e.metadata().unwrap().len())
        .unwrap()
        .path();
    let mut bytes = fs::read(&blob).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x5a;
    fs::write(&blob, &bytes).unwrap();

    // A fresh repository, so the registry does not already hold the layer.
    let out = format!("registry:{}/evict/other:1", reg.host());
    let err = stderr(&run_fail(&mut p.cmd(&["build", "--output", &out])));
    assert!(err.contains("removed from the cache"), "{err}");
    assert!(!blob.exists(), "the corrupt blob was evicted");
    let again = stdout(&run_ok(&mut p.cmd(&["build", "--output", &out])));
    assert!(
        again.contains(&digest),
        "the rebuilt image is the first one: {again} vs {first}"
    );
}
