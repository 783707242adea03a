//! Registry faults through the fault proxy (503, 429 + Retry-After, a dropped
//! or hung connection, wrong bytes) and a cache shared by concurrent pulls.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lambda_img::cache::Cache;
use lambda_img::image::{Architecture, Digest, Image};
use lambda_img::registry::RegistryError;
use lambda_img::report::Reporter;
use lambda_img::source::{ImageSource, RegistrySource, SourceError};

use crate::support::fault_proxy::{Fault, FaultKind, FaultProxy};
use crate::support::registry::*;

#[test]
fn transient_faults_are_retried() {
    let Some(reg) = TestRegistry::start() else { return };
    let (_d, cache) = new_cache();
    let image = test_image(&cache, "amd64", &vec![7u8; 200_000]);
    push(&reg.host(), "fault/app:1", &image, opts()).unwrap();
    let proxy = FaultProxy::start(reg.port);
    let r = format!("{}/fault/app:1", proxy.host());
    let code = image.layers()[1].descriptor.digest.to_string();

    proxy.add(Fault {
        method: "GET",
        path_contains: "/manifests/".into(),
        times: 2,
        kind: FaultKind::Status(503),
    });
    proxy.add(Fault {
        method: "GET",
        path_contains: code.clone(),
        times: 1,
        kind: FaultKind::DropMidBody,
    });
    proxy.add(Fault {
        method: "GET",
        path_contains: image.config_descriptor().digest.to_string(),
        times: 1,
        kind: FaultKind::TooMany { retry_after: 1 },
    });
    let start = Instant::now();
    let got = pull(&r, Architecture::X86_64, &new_cache().1, opts()).unwrap();
    assert_eq!(got.manifest_digest(), image.manifest_digest());
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
    assert_eq!(proxy.count("GET", "/manifests/"), 3);
    assert_eq!(proxy.count("GET", &code), 2, "the cut download was fetched again");

    // A registry that keeps failing: a clear error naming registry, blob and status.
    proxy.add(Fault {
        method: "GET",
        path_contains: code.clone(),
        times: 100,
        kind: FaultKind::Status(503),
    });
    let (_d3, cache3) = new_cache();
    let err = pull(&r, Architecture::X86_64, &cache3, opts())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&proxy.host()) && err.contains(&code) && err.contains("503"),
        "{err}"
    );
    assert!(err.contains("4 attempt"), "{err}");

    // Push through faults: 503 on the upload start and on the manifest PUT.
    let v2 = test_image(&cache, "amd64", b"v2 via proxy\n");
    proxy.add(Fault {
        method: "POST",
        path_contains: "/blobs/uploads/".into(),
        times: 1,
        kind: FaultKind::Status(503),
    });
    proxy.add(Fault {
        method: "PUT",
        path_contains: "/manifests/".into(),
        times: 1,
        kind: FaultKind::Status(502),
    });
    let rep = push(&proxy.host(), "fault/app:2", &v2, opts()).unwrap();
    assert!(
        rep.reference
            .unwrap()
            .ends_with(&v2.manifest_digest().to_string())
    );
}

#[test]
fn a_hung_connection_times_out_and_is_retried() {
    let Some(reg) = TestRegistry::start() else { return };
    let (_d, cache) = new_cache();
    let image = test_image(&cache, "amd64", b"slow\n");
    push(&reg.host(), "slow/app:1", &image, opts()).unwrap();
    let proxy = FaultProxy::start(reg.port);
    proxy.add(Fault {
        method: "GET",
        path_contains: image.layers()[0].descriptor.digest.to_string(),
        times: 1,
        kind: FaultKind::Stall(Duration::from_secs(8)),
    });
    let mut o = opts();
    o.timeout = Duration::from_millis(1500);
    let start = Instant::now();
    let got = pull(
        &format!("{}/slow/app:1", proxy.host()),
        Architecture::X86_64,
        &new_cache().1,
        o,
    )
    .unwrap();
    assert_eq!(got.manifest_digest(), image.manifest_digest());
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "the timeout cut the hung request short"
    );
    assert_eq!(
        proxy.count("GET", &image.layers()[0].descriptor.digest.to_string()),
        2
    );
}

#[test]
fn wrong_bytes_are_refused_and_never_cached() {
    let Some(reg) = TestRegistry::start() else { return };
    let (_d, cache) = new_cache();
    let image = test_image(&cache, "amd64", b"honest bytes\n");
    push(&reg.host(), "lie/app:1", &image, opts()).unwrap();
    let proxy = FaultProxy::start(reg.port);
    let code = &image.layers()[1].descriptor.digest;
    proxy.add(Fault {
        method: "GET",
        path_contains: code.to_string(),
        times: 100,
        kind: FaultKind::Corrupt,
    });
    let (_d2, cache2) = new_cache();
    let err = pull(
        &format!("{}/lie/app:1", proxy.host()),
        Architecture::X86_64,
        &cache2,
        opts(),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, SourceError::Registry(RegistryError::DigestMismatch { .. })),
        "{msg}"
    );
    assert!(
        msg.contains(&code.to_string()) && msg.contains(&proxy.host()),
        "{msg}"
    );
    assert!(!cache2.has_blob(code));
    assert_eq!(
        std::fs::read_dir(cache2.root().join("tmp")).unwrap().count(),
        0,
        "no temp file left"
    );

    // A corrupt manifest fetched by digest is refused too.
    proxy.add(Fault {
        method: "GET",
        path_contains: "/manifests/".into(),
        times: 1,
        kind: FaultKind::Corrupt,
    });
    let by_digest = format!("{}/lie/app@{}", proxy.host(), image.manifest_digest());
    let err = pull(&by_digest, Architecture::X86_64, &cache2, opts()).unwrap_err();
    assert!(
        err.to_string().contains(&image.manifest_digest().to_string()),
        "{err}"
    );
}

#[test]
fn a_corrupt_cache_entry_is_dropped_and_fetched_again() {
    let Some(reg) = TestRegistry::start() else { return };
    let (_d, cache) = new_cache();
    let image = test_image(&cache, "amd64", b"cache me\n");
    push(&reg.host(), "c/app:1", &image, opts()).unwrap();
    let (_d2, cache2) = new_cache();
    let r = format!("{}/c/app:1", reg.host());
    pull(&r, Architecture::X86_64, &cache2, opts()).unwrap();
    let victim = &image.layers()[1].descriptor;
    let path = cache2.blob_path(&victim.digest);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    struct Warnings(std::sync::Mutex<Vec<String>>);
    impl Reporter for Warnings {
        fn step(&self, _: &str) {}
        fn task_start(&self, _: &str, _: &str, _: Option<u64>) {}
        fn task_progress(&self, _: &str, _: u64) {}
        fn task_done(&self, _: &str, _: &str) {}
        fn warn(&self, m: &str) {
            self.0.lock().unwrap().push(m.to_string());
        }
    }
    let w = Warnings(Default::default());
    let got = RegistrySource::parse(&r, opts())
        .unwrap()
        .resolve(Architecture::X86_64, &cache2, &w)
        .unwrap();
    assert_eq!(got.manifest_digest(), image.manifest_digest());
    assert_eq!(Digest::of(&std::fs::read(&path).unwrap()), victim.digest);
    assert!(w.0.lock().unwrap().iter().any(|m| m.contains("corrupt")));
}

#[test]
fn two_pulls_sharing_a_cache_both_succeed_and_fetch_each_blob_once() {
    let Some(reg) = TestRegistry::start() else { return };
    let (_d, cache) = new_cache();
    let image = test_image(&cache, "amd64", &vec![3u8; 500_000]);
    push(&reg.host(), "share/app:1", &image, opts()).unwrap();
    let proxy = Arc::new(FaultProxy::start(reg.port));
    let shared = tempfile::tempdir().unwrap();
    let r = format!("{}/share/app:1", proxy.host());
    let results: Vec<Image> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let r = r.clone();
                let root = shared.path().to_path_buf();
                s.spawn(move || {
                    let cache = Cache::open(root).unwrap();
                    pull(&r, Architecture::X86_64, &cache, opts()).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for img in &results {
        assert_eq!(img.manifest_digest(), image.manifest_digest());
    }
    for l in image.layers() {
        assert_eq!(
            proxy.count("GET", &l.descriptor.digest.to_string()),
            1,
            "one download per blob"
        );
    }
    let cache = Cache::open(shared.path()).unwrap();
    for l in image.layers() {
        let bytes = std::fs::read(cache.blob_path(&l.descriptor.digest)).unwrap();
        assert_eq!(Digest::of(&bytes), l.descriptor.digest);
    }
}

/// Set in the two children the test below starts: the reference to pull
/// and the shared cache to pull it into.
const CHILD_REF: &str = "LAMBDA_IMG_TEST_CHILD_REF";
const CHILD_CACHE: &str = "LAMBDA_IMG_TEST_CHILD_CACHE";

/// Two processes (this test binary, run again as this one test) pull one
/// image into one cache at once: each blob is fetched once and both get it.
/// In a child, the test is the pull (`CHILD_REF` into `CHILD_CACHE`) and
/// prints what it pulled; so it never passes without doing the work.
#[test]
fn two_processes_pulling_into_one_cache_fetch_each_blob_once() {
    if let (Some(r), Some(root)) = (std::env::var_os(CHILD_REF), std::env::var_os(CHILD_CACHE)) {
        let cache = Cache::open(root).unwrap();
        let img = pull(r.to_str().unwrap(), Architecture::X86_64, &cache, opts()).unwrap();
        println!("pulled {}", img.manifest_digest());
        return;
    }
    let Some(reg) = TestRegistry::start() else { return };
    let (_d, cache) = new_cache();
    let image = test_image(&cache, "amd64", &vec![5u8; 400_000]);
    push(&reg.host(), "proc/app:1", &image, opts()).unwrap();
    let proxy = FaultProxy::start(reg.port);
    let shared = tempfile::tempdir().unwrap();
    let r = format!("{}/proc/app:1", proxy.host());
    let children: Vec<_> = (0..2)
        .map(|_| {
            std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "registry_faults::two_processes_pulling_into_one_cache_fetch_each_blob_once",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_REF, &r)
                .env(CHILD_CACHE, shared.path())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains(&format!("pulled {}", image.manifest_digest())),
            "{text}"
        );
    }
    for l in image.layers() {
        assert_eq!(
            proxy.count("GET", &l.descriptor.digest.to_string()),
            1,
            "one download per blob"
        );
    }
    let cache = Cache::open(shared.path()).unwrap();
    for l in image.layers() {
        assert_eq!(
            Digest::of(&std::fs::read(cache.blob_path(&l.descriptor.digest)).unwrap()),
            l.descriptor.digest
        );
    }
    assert_eq!(std::fs::read_dir(cache.root().join("tmp")).unwrap().count(), 0);
}

/// A push that fails midway (the registry refuses a blob upload for good)
/// leaves the tag on the previous image: the manifest only goes up last.
#[test]
fn a_failed_push_never_moves_the_tag() {
    let Some(reg) = TestRegistry::start() else { return };
    let (_d, cache) = new_cache();
    let v1 = test_image(&cache, "amd64", b"version one");
    push(&reg.host(), "fault/tag:live", &v1, opts()).unwrap();

    let proxy = FaultProxy::start(reg.port);
    let v2 = test_image(&cache, "amd64", b"version two, a different code layer");
    proxy.add(Fault {
        method: "POST",
        path_contains: "/blobs/uploads/".into(),
        times: 100,
        kind: FaultKind::Status(503),
    });
    let err = push(&proxy.host(), "fault/tag:live", &v2, opts()).unwrap_err();
    assert!(err.to_string().contains("503"), "{err}");
    assert_eq!(proxy.count("PUT", "/manifests/"), 0, "no manifest was sent");

    let now = pull(
        &format!("{}/fault/tag:live", reg.host()),
        Architecture::X86_64,
        &new_cache().1,
        opts(),
    )
    .unwrap();
    assert_eq!(
        now.manifest_digest(),
        v1.manifest_digest(),
        "the tag still names the first image"
    );
}
