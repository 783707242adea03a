//! Bounded reads and transfers: size caps on JSON documents, only regular
//! files opened, a docker-archive config read once, nested indexes read once
//! each with a cap, and registry transfers with a deadline (through the
//! fault proxy in front of the real registry).

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lambda_img::image::{Architecture, Digest};
use lambda_img::registry::{Client, RegistryOptions, RetryPolicy};
use lambda_img::report::Silent;
use lambda_img::source::{ImageSource, OciLayoutSource};
use serde_json::json;

use crate::support::crafted::*;
use crate::support::fault_proxy::{
    Fault, FaultKind, FaultProxy, Response, Server, read_request, write_response,
};
use crate::support::registry::*;
use crate::support::stderr;

/// Runs `cmd` to its end, or kills it after `bound` (a hang is a failure,
/// reported with what it printed so far rather than as a stuck test run).
fn run_bounded(mut cmd: Command, bound: Duration) -> Output {
    let mut child: Child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let end = Instant::now() + bound;
    while Instant::now() < end {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    panic!(
        "{cmd:?} hung for {bound:?}; stderr so far:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn lambda_img_in(cache: &std::path::Path, args: &[&str]) -> Command {
    let mut c = crate::support::lambda_img(cache);
    c.args(args);
    c
}

#[test]
fn fifos_where_files_should_be_fail_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let bound = Duration::from_secs(30);

    // index.json of an input layout.
    let layout = dir.path().join("in");
    let entry = image_in_layout(&layout, &[("var/task/app", b"x")]);
    write_index(&layout, vec![entry.clone()]);
    mkfifo(&layout.join("index.json"));
    let out = run_bounded(
        lambda_img_in(&cache, &["check", &format!("oci:{}", layout.display())]),
        bound,
    );
    let err = stderr(&out);
    assert!(
        !out.status.success() && err.contains("index.json") && err.contains("FIFO"),
        "{err}"
    );

    // A blob of an input layout.
    write_index(&layout, vec![entry.clone()]);
    let manifest_blob = layout
        .join("blobs/sha256")
        .join(entry["digest"].as_str().unwrap().strip_prefix("sha256:").unwrap());
    mkfifo(&manifest_blob);
    let out = run_bounded(
        lambda_img_in(&cache, &["check", &format!("oci:{}", layout.display())]),
        bound,
    );
    let err = stderr(&out);
    assert!(!out.status.success() && err.contains("FIFO"), "{err}");

    // A docker-archive that is a FIFO.
    let archive = dir.path().join("image.tar");
    mkfifo(&archive);
    let out = run_bounded(
        lambda_img_in(
            &cache,
            &["check", &format!("docker-archive:{}", archive.display())],
        ),
        bound,
    );
    assert!(!out.status.success(), "{}", stderr(&out));

    // Docker's config.json, read for credentials before a pull.
    let docker = dir.path().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    mkfifo(&docker.join("config.json"));
    let mut cmd = lambda_img_in(&cache, &["check", "127.0.0.1:9/none/app:1"]);
    cmd.env("DOCKER_CONFIG", &docker);
    let out = run_bounded(cmd, bound);
    let err = stderr(&out);
    assert!(
        !out.status.success() && err.contains("config.json") && err.contains("FIFO"),
        "{err}"
    );
}

#[test]
fn an_output_layouts_index_json_is_capped_and_must_be_a_file() {
    if !crate::support::require_tool("busybox") {
        return;
    }
    let p = crate::support::project::Project::new(&crate::support::project::scratch_manifest(""), &[]);
    p.copy_in(std::path::Path::new("/bin/busybox"), "busybox");
    let outs = tempfile::tempdir().unwrap();
    let out = outs.path().join("out");
    write_index(&out, vec![]);
    // A valid but huge index.json: 40 MiB of annotations.
    let huge = json!({"schemaVersion": 2, "manifests": [], "annotations": {"pad": "x".repeat(40 << 20)}});
    std::fs::write(out.join("index.json"), serde_json::to_vec(&huge).unwrap()).unwrap();
    let res = run_bounded(
        p.cmd(&["build", "--output", &format!("oci:{}", out.display())]),
        Duration::from_secs(60),
    );
    let err = stderr(&res);
    assert!(
        !res.status.success() && err.contains("index.json is larger than"),
        "{err}"
    );

    mkfifo(&out.join("index.json"));
    let res = run_bounded(
        p.cmd(&["build", "--output", &format!("oci:{}", out.display())]),
        Duration::from_secs(60),
    );
    let err = stderr(&res);
    assert!(!res.status.success() && err.contains("FIFO"), "{err}");
}

#[test]
fn a_docker_archive_naming_one_config_many_times_reads_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let tar = raw_tar(&[("var/task/app", b"hello")]);
    // A 24 MiB config (a padding label), named by 60 entries: read for each,
    // that is 1.4 GB in memory; read once, 24 MiB.
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": ["/var/task/app"], "Labels": {"pad": "p".repeat(24 << 20)}},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", sha256_hex(&tar))]},
    }))
    .unwrap();
    let items: Vec<_> = (0..60)
        .map(|i| json!({"Config": "config.json", "RepoTags": [format!("img:{i}")], "Layers": ["layer.tar"]}))
        .collect();
    let manifest = serde_json::to_vec(&items).unwrap();
    let archive = dir.path().join("image.tar");
    docker_archive(
        &archive,
        &[
            ("manifest.json", &manifest),
            ("config.json", &config),
            ("layer.tar", &tar),
        ],
    );
    // 600 MB of address space is plenty for one read of the config, not for 60.
    let mut cmd = lambda_img_in(
        &dir.path().join("cache"),
        &[
            "inspect",
            &format!(
                "docker-archive:{}@sha256:{}",
                archive.display(),
                sha256_hex(&config)
            ),
        ],
    );
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 600 << 20,
                rlim_max: 600 << 20,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = run_bounded(cmd, Duration::from_secs(120));
    let err = stderr(&out);
    assert!(out.status.success(), "{:?}: {err}", out.status);
}

/// `levels` levels of `k` indexes, each listing every index of the next level; the
/// last level lists only an arm64 manifest. Returns the index.json entry.
fn index_dag(dir: &std::path::Path, k: usize, levels: usize, leaf: serde_json::Value) -> serde_json::Value {
    let mut below = vec![leaf];
    for level in 0..levels {
        below = (0..k)
            .map(|i| index_blob(dir, &below, level * 1000 + i))
            .collect();
    }
    index_blob(dir, &below, 999_999)
}

fn resolve_within(source: OciLayoutSource, bound: Duration) -> Result<Digest, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let cache = new_cache();
        let r = source.resolve(Architecture::X86_64, &cache.1, &Silent);
        let _ = tx.send(r.map(|i| i.manifest_digest().clone()).map_err(|e| e.to_string()));
    });
    rx.recv_timeout(bound).expect("resolving the layout hung")
}

#[test]
fn nested_indexes_are_read_once_each_with_a_cap() {
    let dir = tempfile::tempdir().unwrap();
    // A shared DAG with the amd64 manifest at the bottom: 3 levels of 4
    // indexes is 12 distinct indexes (84 paths through them): resolved.
    let good = dir.path().join("good");
    let amd64 = image_in_layout(&good, &[("var/task/app", b"x")]);
    let top = index_dag(&good, 4, 3, amd64.clone());
    write_index(&good, vec![top]);
    let got = resolve_within(
        OciLayoutSource::parse(good.to_str().unwrap()).unwrap(),
        Duration::from_secs(60),
    );
    assert_eq!(got.unwrap().to_string(), amd64["digest"].as_str().unwrap());

    // 300 indexes whose every path ends at an arm64 manifest: 100^3 paths
    // (minutes to walk), refused at the cap with a message.
    let bad = dir.path().join("bad");
    let mut arm = image_in_layout(&bad, &[("var/task/app", b"y")]);
    arm["platform"]["architecture"] = "arm64".into();
    let top = index_dag(&bad, 100, 3, arm);
    write_index(&bad, vec![top]);
    let err = resolve_within(
        OciLayoutSource::parse(bad.to_str().unwrap()).unwrap(),
        Duration::from_secs(60),
    )
    .unwrap_err();
    assert!(err.contains("more than 64 indexes"), "{err}");
}

/// A registry-like server answering every manifest GET with `body`.
fn manifest_server(body: Vec<u8>) -> Server {
    let body = Arc::new(body);
    Server::start(Arc::new(move |stream| {
        let Some(req) = read_request(&stream) else { return };
        let resp = if req.path() == "/v2/" {
            Response::new(200, "{}")
        } else {
            Response::new(200, body.as_slice().to_vec()).with_header("Content-Type", OCI_MANIFEST)
        };
        write_response(stream, &resp, None)
    }))
}

#[test]
fn registry_documents_are_capped_before_they_are_read() {
    // A 5 MiB manifest: refused with the limit named.
    let big = manifest_server(vec![b' '; 5 << 20]);
    let client = Client::with_credentials(&big.host(), &opts(), None);
    let err = client.get_manifest("big/app", "1").unwrap_err().to_string();
    assert!(
        err.contains("larger than 4194304 bytes") && err.contains(&big.host()),
        "{err}"
    );

    // A manifest naming a 1 GiB config (the registry has a small blob by that
    // digest, as a lying registry would): refused before any download.
    let Some(reg) = TestRegistry::start() else { return };
    let (_d, cache) = new_cache();
    let image = test_image(&cache, "amd64", b"huge config\n");
    let mut huge = image.config_descriptor().clone();
    huge.size = 1 << 30;
    let layers: Vec<_> = image.layers().iter().map(|l| l.descriptor.clone()).collect();
    let manifest =
        lambda_img::image::write_manifest(lambda_img::image::MediaFamily::Oci, &huge, &layers, None);
    let image = lambda_img::image::Image::from_manifest(
        lambda_img::image::MediaFamily::Oci,
        manifest,
        image.config().to_vec(),
        huge,
        image.layers().to_vec(),
    );
    let client = Client::with_credentials(&reg.host(), &opts(), None);
    client
        .push_blob(
            "huge/app",
            &image.config_descriptor().digest,
            lambda_img::registry::BlobBytes::Memory(image.config()),
            None,
        )
        .unwrap();
    for l in image.layers() {
        let lambda_img::image::BlobLocation::File(p) = &l.location;
        client
            .push_blob(
                "huge/app",
                &l.descriptor.digest,
                lambda_img::registry::BlobBytes::File(p),
                None,
            )
            .unwrap();
    }
    client
        .put_manifest("huge/app", "1", OCI_MANIFEST, image.manifest())
        .unwrap();
    let proxy = FaultProxy::start(reg.port);
    let err = pull(
        &format!("{}/huge/app:1", proxy.host()),
        Architecture::X86_64,
        &new_cache().1,
        opts(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("1073741824 bytes") && err.contains("limit for an image config"),
        "{err}"
    );
    assert_eq!(
        proxy.count("GET", &image.config_descriptor().digest.to_string()),
        0,
        "nothing was downloaded"
    );
}

fn slow_opts(total_secs: u64) -> RegistryOptions {
    RegistryOptions {
        // Many tries allowed: only the deadline can end the sequence.
        retry: RetryPolicy {
            attempts: 50,
            ..RetryPolicy::quick()
        },
        ..opts()
    }
    .with_registry_timeout(Duration::from_secs(total_secs))
}

#[test]
fn a_trickling_registry_is_cut_by_the_minimum_rate_and_the_deadline() {
    let Some(reg) = TestRegistry::start() else { return };
    let (_d, cache) = new_cache();
    let image = test_image(&cache, "amd64", &noise(300_000));
    push(&reg.host(), "slow/app:1", &image, opts()).unwrap();
    let proxy = FaultProxy::start(reg.port);
    let code = image.layers()[1].descriptor.digest.to_string();
    // 100 bytes every 50 ms: 2 KB/s, never idle long enough for a read timeout.
    proxy.add(Fault {
        method: "GET",
        path_contains: code.clone(),
        times: 1000,
        kind: FaultKind::Trickle {
            bytes: 100,
            every: Duration::from_millis(50),
        },
    });
    let err = pull(
        &format!("{}/slow/app:1", proxy.host()),
        Architecture::X86_64,
        &new_cache().1,
        slow_opts(4),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains(&proxy.host())
            && err.contains(&code)
            && err.contains("below the minimum")
            && err.contains("--registry-timeout"),
        "{err}"
    );
    let tries = proxy.count("GET", &code);
    assert!(
        (2..10).contains(&tries),
        "the deadline, not the 50 allowed attempts, ended it: {tries} tries"
    );

    // Through the CLI: the flag sets the bound, and the message names it.
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = lambda_img_in(
        &tmp.path().join("cache"),
        &[
            "--registry-timeout",
            "4",
            "check",
            &format!("{}/slow/app:1", proxy.host()),
        ],
    );
    cmd.env("DOCKER_CONFIG", tmp.path().join("no-docker"));
    let out = run_bounded(cmd, Duration::from_secs(90));
    let err = stderr(&out);
    assert!(
        !out.status.success() && err.contains("below the minimum") && err.contains("--registry-timeout"),
        "{err}"
    );
}

#[test]
fn a_short_body_says_what_arrived_against_what_was_promised() {
    let Some(reg) = TestRegistry::start() else { return };
    let (_d, cache) = new_cache();
    let image = test_image(&cache, "amd64", &vec![3u8; 100_000]);
    push(&reg.host(), "short/app:1", &image, opts()).unwrap();
    let proxy = FaultProxy::start(reg.port);
    let layer = &image.layers()[1].descriptor;
    let code = layer.digest.to_string();

    // Content-Length claims more than the blob has: every byte the descriptor
    // names arrived, and the digest matches, so the pull succeeds.
    proxy.add(Fault {
        method: "GET",
        path_contains: code.clone(),
        times: 1000,
        kind: FaultKind::LongerLength(10),
    });
    let got = pull(
        &format!("{}/short/app:1", proxy.host()),
        Architecture::X86_64,
        &new_cache().1,
        opts(),
    );
    assert_eq!(got.unwrap().manifest_digest(), image.manifest_digest());

    // Cut in half every time: the message gives both numbers, and they differ.
    let proxy = FaultProxy::start(reg.port);
    proxy.add(Fault {
        method: "GET",
        path_contains: code.clone(),
        times: 1000,
        kind: FaultKind::DropMidBody,
    });
    let err = pull(
        &format!("{}/short/app:1", proxy.host()),
        Architecture::X86_64,
        &new_cache().1,
        opts(),
    )
    .unwrap_err()
    .to_string();
    let want = format!("received {} of the {} bytes", layer.size / 2, layer.size);
    assert!(err.contains(&want), "{err}");
}
