//! Registry source and sink against the real Distribution registry, with
//! skopeo and podman as independent checks, a fault proxy and a bearer proxy.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lambda_img::cache::Cache;
use lambda_img::image::{
    Architecture, BlobLocation, Descriptor, Digest, Image, Layer, LayerOrigin, MediaFamily, OCI_INDEX,
    write_index, write_manifest,
};
use lambda_img::registry::{
    BlobAction, Client, CredentialStore, Credentials, LoginOptions, Reference, RegistryError,
    RegistryOptions, RetryPolicy, login,
};
use lambda_img::report::{Reporter, Silent};
use lambda_img::sink::{ImageSink, RegistrySink, SinkError, SinkReport};
use lambda_img::source::{ImageSource, RegistrySource, SourceError};

use crate::support::fault_proxy::{Fault, FaultKind, FaultProxy};
use crate::support::registry::TestRegistry;
use crate::support::token_server::BearerProxy;
use crate::support::{require_tool, run_ok};

/// Options for tests: quick retries, and no Docker config from the machine.
fn opts() -> RegistryOptions {
    RegistryOptions {
        retry: RetryPolicy::quick(),
        docker_config_dir: Some(PathBuf::from("/nonexistent/lambda-img-test-docker-config")),
        timeout: Duration::from_secs(10),
        ..RegistryOptions::default()
    }
}

fn opts_with_config(dir: &Path) -> RegistryOptions {
    RegistryOptions {
        docker_config_dir: Some(dir.to_path_buf()),
        ..opts()
    }
}

/// A gzip layer holding `files`: (compressed bytes, diff_id, uncompressed size).
fn gz_layer(files: &[(&str, &[u8])]) -> (Vec<u8>, Digest, u64) {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_path(name).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        h.set_mtime(315_532_800);
        h.set_cksum();
        tar.append(&h, *data).unwrap();
    }
    let raw = tar.into_inner().unwrap();
    let mut gz = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::new(6));
    gz.write_all(&raw).unwrap();
    (gz.finish().unwrap(), Digest::of(&raw), raw.len() as u64)
}

fn commit(cache: &Cache, bytes: &[u8]) -> PathBuf {
    let mut tmp = cache.temp_file().unwrap();
    tmp.write_all(bytes).unwrap();
    cache.commit_blob(tmp, &Digest::of(bytes)).unwrap()
}

fn built_layer(cache: &Cache, name: &str, files: &[(&str, &[u8])]) -> Layer {
    let (gz, diff_id, size) = gz_layer(files);
    let path = commit(cache, &gz);
    Layer {
        descriptor: Descriptor::new(MediaFamily::Oci.layer_gzip(), Digest::of(&gz), gz.len() as u64),
        diff_id,
        uncompressed_size: size,
        location: BlobLocation::File(path),
        origin: LayerOrigin::Built {
            name: name.into(),
            source: "test".into(),
            cached: false,
        },
    }
}

/// An image from `layers`, with a config whose architecture is `arch`.
fn image_of(layers: Vec<Layer>, arch: &str, config_media_type: &str) -> Image {
    let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id.to_string()).collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": {"Entrypoint": ["/hello"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let config_descriptor = Descriptor::new(config_media_type, Digest::of(&config), config.len() as u64);
    let descs: Vec<Descriptor> = layers.iter().map(|l| l.descriptor.clone()).collect();
    let manifest = write_manifest(MediaFamily::Oci, &config_descriptor, &descs, None);
    Image {
        family: MediaFamily::Oci,
        manifest_digest: Digest::of(&manifest),
        manifest,
        config,
        config_descriptor,
        layers,
    }
}

/// A two-layer image; `code` varies the second layer.
fn test_image(cache: &Cache, arch: &str, code: &[u8]) -> Image {
    let base = built_layer(cache, "base", &[("etc/base.txt", b"base layer\n")]);
    let code = built_layer(cache, "code", &[("var/task/app.py", code)]);
    image_of(vec![base, code], arch, MediaFamily::Oci.config())
}

fn push(
    host: &str,
    reference: &str,
    image: &Image,
    options: RegistryOptions,
) -> Result<SinkReport, SinkError> {
    RegistrySink::parse(&format!("{host}/{reference}"), options)
        .unwrap()
        .write(image, &Silent)
}

fn pull(
    reference: &str,
    arch: Architecture,
    cache: &Cache,
    options: RegistryOptions,
) -> Result<Image, SourceError> {
    RegistrySource::parse(reference, options)
        .unwrap()
        .resolve(arch, cache, &Silent)
}

fn actions(report: &SinkReport) -> Vec<(&'static str, BlobAction)> {
    report
        .blobs
        .as_ref()
        .unwrap()
        .iter()
        .map(|b| (b.kind, b.action))
        .collect()
}

fn new_cache() -> (tempfile::TempDir, Cache) {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path().join("cache")).unwrap();
    (dir, cache)
}

#[test]
fn push_matches_skopeo_and_pulls_back_identically() {
    let Some(reg) = TestRegistry::start() else { return };
    if !require_tool("skopeo") {
        return;
    }
    let (_d, cache) = new_cache();
    let image = test_image(&cache, "amd64", b"print('hi')\n");
    let report = push(&reg.host(), "fn/app:v1", &image, opts()).unwrap();
    let expected_ref = format!("{}/fn/app:v1@{}", reg.host(), image.manifest_digest);
    assert_eq!(report.reference.as_deref(), Some(expected_ref.as_str()));
    assert_eq!(
        actions(&report),
        vec![
            ("layer", BlobAction::Uploaded),
            ("layer", BlobAction::Uploaded),
            ("config", BlobAction::Uploaded)
        ]
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["blobs"][2]["action"], "uploaded");

    let raw = run_ok(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/fn/app:v1", reg.host()),
    ]));
    assert_eq!(
        raw.stdout, image.manifest,
        "the registry holds our exact manifest bytes"
    );
    let cfg = run_ok(Command::new("skopeo").args([
        "inspect",
        "--config",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/fn/app:v1", reg.host()),
    ]));
    assert_eq!(cfg.stdout, image.config);

    // Pull it back into a fresh cache, by tag and by digest.
    let (_d2, cache2) = new_cache();
    let pulled = pull(
        &format!("{}/fn/app:v1", reg.host()),
        Architecture::X86_64,
        &cache2,
        opts(),
    )
    .unwrap();
    assert_eq!(pulled.manifest_digest, image.manifest_digest);
    assert_eq!(pulled.manifest, image.manifest);
    assert_eq!(pulled.config, image.config);
    for (a, b) in pulled.layers.iter().zip(&image.layers) {
        assert_eq!(a.descriptor, b.descriptor);
        assert_eq!(a.diff_id, b.diff_id);
        let BlobLocation::File(p) = &a.location;
        assert_eq!(Digest::of(&std::fs::read(p).unwrap()), b.descriptor.digest);
        assert_eq!(
            a.origin,
            LayerOrigin::Base {
                source: format!("{}/fn/app:v1", reg.host()),
                mount_from: Some(format!("{}/fn/app", reg.host())),
            }
        );
    }
    let by_digest = pull(&expected_ref, Architecture::X86_64, &cache2, opts()).unwrap();
    assert_eq!(by_digest.manifest_digest, image.manifest_digest);
}

#[test]
fn podman_pulls_a_pushed_image() {
    let Some(reg) = TestRegistry::start() else { return };
    if !require_tool("podman") {
        return;
    }
    let (dir, cache) = new_cache();
    let image = test_image(&cache, "amd64", b"podman\n");
    push(&reg.host(), "fn/podman:latest", &image, opts()).unwrap();
    let conf = dir.path().join("containers.conf");
    std::fs::write(
        &conf,
        "[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\nnetns = \"none\"\n[engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n",
    )
    .unwrap();
    let podman = |args: &[&str]| {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", &conf)
            .arg("--root")
            .arg(dir.path().join("storage"))
            .arg("--runroot")
            .arg(dir.path().join("run"))
            .args(["--storage-driver", "vfs"])
            .args(args);
        c
    };
    let name = format!("{}/fn/podman:latest", reg.host());
    run_ok(&mut podman(&["pull", "--quiet", "--tls-verify=false", &name]));
    let out = run_ok(&mut podman(&[
        "image",
        "inspect",
        "--format",
        "{{.Digest}}",
        &name,
    ]));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        image.manifest_digest.to_string()
    );
}

#[test]
fn repush_skips_present_blobs_and_uploads_only_what_changed() {
    let Some(reg) = TestRegistry::start() else { return };
    let (_d, cache) = new_cache();
    let v1 = test_image(&cache, "amd64", b"v1\n");
    push(&reg.host(), "fn/app:latest", &v1, opts()).unwrap();
    let again = push(&reg.host(), "fn/app:latest", &v1, opts()).unwrap();
    assert!(actions(&again).iter().all(|(_, a)| *a == BlobAction::Skipped));
    let v2 = test_image(&cache, "amd64", b"v2\n");
    let r = push(&reg.host(), "fn/app:latest", &v2, opts()).unwrap();
    assert_eq!(
        actions(&r),
        vec![
            ("layer", BlobAction::Skipped),
            ("layer", BlobAction::Uploaded),
            ("config", BlobAction::Uploaded)
        ]
    );
    // Untagged push: by digest.
    let r = push(&reg.host(), "fn/untagged", &v2, opts()).unwrap();
    assert_eq!(
        r.reference.unwrap(),
        format!("{}/fn/untagged@{}", reg.host(), v2.manifest_digest)
    );
}

#[test]
fn base_layers_are_mounted_across_repositories_and_refusals_fall_back() {
    let Some(reg) = TestRegistry::start() else { return };
    let (_d, cache) = new_cache();
    let base = test_image(&cache, "amd64", b"base\n");
    push(&reg.host(), "lambda/base:1", &base, opts()).unwrap();
    let (_d2, cache2) = new_cache();
    let pulled = pull(
        &format!("{}/lambda/base:1", reg.host()),
        Architecture::X86_64,
        &cache2,
        opts(),
    )
    .unwrap();
    let mut layers = pulled.layers.clone();
    layers.push(built_layer(&cache2, "code", &[("var/task/h.py", b"code\n")]));
    let derived = image_of(layers, "amd64", MediaFamily::Oci.config());
    let r = push(&reg.host(), "team/fn:1", &derived, opts()).unwrap();
    assert_eq!(
        actions(&r),
        vec![
            ("layer", BlobAction::Mounted),
            ("layer", BlobAction::Mounted),
            ("layer", BlobAction::Uploaded),
            ("config", BlobAction::Uploaded)
        ]
    );
    let back = pull(
        &format!("{}/team/fn:1", reg.host()),
        Architecture::X86_64,
        &new_cache().1,
        opts(),
    )
    .unwrap();
    assert_eq!(back.manifest_digest, derived.manifest_digest);

    // A mount source that does not have the blob: the registry answers 202
    // (an upload session) and the push uploads instead.
    let mut layers = pulled.layers.clone();
    let mut fresh = built_layer(&cache2, "x", &[("x", b"never pushed\n")]);
    fresh.origin = LayerOrigin::Base {
        source: "elsewhere".into(),
        mount_from: Some(format!("{}/lambda/base", reg.host())),
    };
    layers.push(fresh);
    let img = image_of(layers, "amd64", MediaFamily::Oci.config());
    let r = push(&reg.host(), "team/other:1", &img, opts()).unwrap();
    assert_eq!(actions(&r)[2], ("layer", BlobAction::Uploaded));
}

#[test]
fn an_index_resolves_to_the_functions_platform() {
    let Some(reg) = TestRegistry::start() else { return };
    let (_d, cache) = new_cache();
    let amd = test_image(&cache, "amd64", b"amd\n");
    let arm = test_image(&cache, "arm64", b"arm\n");
    push(&reg.host(), "multi/base", &amd, opts()).unwrap();
    push(&reg.host(), "multi/base", &arm, opts()).unwrap();
    let mut amd_d = amd.manifest_descriptor();
    amd_d.platform = Some(Architecture::X86_64.platform());
    let mut arm_d = arm.manifest_descriptor();
    arm_d.platform = Some(Architecture::Arm64.platform());
    let index = write_index(&[amd_d.clone(), arm_d]);
    let client = Client::with_credentials(&reg.host(), &opts(), None);
    client
        .put_manifest("multi/base", "3.12", OCI_INDEX, &index)
        .unwrap();
    client
        .put_manifest("multi/base", "amd-only", OCI_INDEX, &write_index(&[amd_d]))
        .unwrap();

    let r = format!("{}/multi/base:3.12", reg.host());
    let got_arm = pull(&r, Architecture::Arm64, &cache, opts()).unwrap();
    assert_eq!(got_arm.manifest_digest, arm.manifest_digest);
    let got_amd = pull(&r, Architecture::X86_64, &cache, opts()).unwrap();
    assert_eq!(got_amd.manifest_digest, amd.manifest_digest);
    let pinned = format!("{}/multi/base@{}", reg.host(), Digest::of(&index));
    assert_eq!(
        pull(&pinned, Architecture::Arm64, &cache, opts())
            .unwrap()
            .manifest_digest,
        arm.manifest_digest
    );
    let err = pull(
        &format!("{}/multi/base:amd-only", reg.host()),
        Architecture::Arm64,
        &cache,
        opts(),
    )
    .unwrap_err();
    assert!(matches!(err, SourceError::NoPlatform { .. }), "{err}");
    assert!(err.to_string().contains("linux/amd64"), "{err}");
}

#[test]
fn basic_auth_through_config_json_helper_and_login() {
    let Some(reg) = TestRegistry::start_basic("alice", "s3cret-pw") else {
        return;
    };
    let (dir, cache) = new_cache();
    let image = test_image(&cache, "amd64", b"auth\n");

    // Anonymous: refused with a message naming the registry.
    let err = push(&reg.host(), "priv/app:1", &image, opts()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&reg.host()) && msg.contains("no credentials"),
        "{msg}"
    );

    // Wrong password via login: refused, nothing stored.
    let cfg = dir.path().join("docker");
    let bad = LoginOptions {
        registry: reg.host(),
        credentials: Credentials::new("alice", "wrong-pw"),
        docker_config_dir: Some(cfg.clone()),
        registry_options: opts(),
    };
    let err = login(&bad).unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
    assert!(!err.to_string().contains("wrong-pw"));
    assert!(!cfg.join("config.json").exists());

    // Right password: stored in config.json like docker, then used by push and pull.
    let good = LoginOptions {
        credentials: Credentials::new("alice", "s3cret-pw"),
        ..bad
    };
    let outcome = login(&good).unwrap();
    assert_eq!(
        outcome.stored_in,
        CredentialStore::ConfigFile(cfg.join("config.json"))
    );
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cfg.join("config.json")).unwrap()).unwrap();
    assert!(stored["auths"][reg.host()]["auth"].is_string());
    push(&reg.host(), "priv/app:1", &image, opts_with_config(&cfg)).unwrap();
    let got = pull(
        &format!("{}/priv/app:1", reg.host()),
        Architecture::X86_64,
        &new_cache().1,
        opts_with_config(&cfg),
    )
    .unwrap();
    assert_eq!(got.manifest_digest, image.manifest_digest);

    // A credential helper found on the helper search path.
    let helper_dir = dir.path().join("bin");
    std::fs::create_dir_all(&helper_dir).unwrap();
    let helper = helper_dir.join("docker-credential-lambdatest");
    let log = dir.path().join("helper-stdin");
    let stored = dir.path().join("helper-store");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\ncase \"$1\" in\n get) cat > {}; echo '{{\"ServerURL\":\"x\",\"Username\":\"alice\",\"Secret\":\"s3cret-pw\"}}' ;;\n store) cat > {} ;;\n *) exit 1 ;;\nesac\n",
            log.display(),
            stored.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let helper_cfg = dir.path().join("docker-helper");
    std::fs::create_dir_all(&helper_cfg).unwrap();
    std::fs::write(
        helper_cfg.join("config.json"),
        format!(r#"{{"credHelpers":{{"{}":"lambdatest"}}}}"#, reg.host()),
    )
    .unwrap();
    let mut o = opts_with_config(&helper_cfg);
    o.helper_path = Some(helper_dir.into_os_string());
    let got = pull(
        &format!("{}/priv/app:1", reg.host()),
        Architecture::X86_64,
        &new_cache().1,
        o,
    )
    .unwrap();
    assert_eq!(got.manifest_digest, image.manifest_digest);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        reg.host(),
        "the helper got the server on stdin"
    );

    // Explicit credentials that are wrong: a clear refusal.
    let mut o = opts();
    o.credentials = Some(Credentials::new("alice", "nope-nope"));
    let err = pull(
        &format!("{}/priv/app:1", reg.host()),
        Architecture::X86_64,
        &cache,
        o,
    )
    .unwrap_err();
    assert!(err.to_string().contains("refused access"), "{err}");
    assert!(!err.to_string().contains("nope-nope"));
}

#[test]
fn bearer_token_flow_anonymous_and_with_credentials() {
    let Some(reg) = TestRegistry::start() else { return };
    let (_d, cache) = new_cache();
    let image = test_image(&cache, "amd64", b"bearer\n");

    let anon = BearerProxy::start(reg.port, None);
    let r = push(&anon.host(), "tok/app:1", &image, opts()).unwrap();
    assert_eq!(r.blobs.unwrap().len(), 3);
    let got = pull(
        &format!("{}/tok/app:1", anon.host()),
        Architecture::X86_64,
        &new_cache().1,
        opts(),
    )
    .unwrap();
    assert_eq!(got.manifest_digest, image.manifest_digest);
    let issued = anon.issued.lock().unwrap().clone();
    assert!(
        issued.contains(&"repository:tok/app:pull,push".to_string()),
        "{issued:?}"
    );
    assert!(
        issued.contains(&"repository:tok/app:pull".to_string()),
        "{issued:?}"
    );

    let private = BearerProxy::start(reg.port, Some(("bob", "tokpw")));
    let err = pull(
        &format!("{}/tok/app:1", private.host()),
        Architecture::X86_64,
        &new_cache().1,
        opts(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("anonymous access was refused"), "{err}");
    let mut o = opts();
    o.credentials = Some(Credentials::new("bob", "wrong"));
    let err = pull(
        &format!("{}/tok/app:1", private.host()),
        Architecture::X86_64,
        &new_cache().1,
        o,
    )
    .unwrap_err();
    assert!(err.to_string().contains("rejected the credentials"), "{err}");
    let mut o = opts();
    o.credentials = Some(Credentials::new("bob", "tokpw"));
    let got = pull(
        &format!("{}/tok/app:1", private.host()),
        Architecture::X86_64,
        &new_cache().1,
        o,
    )
    .unwrap();
    assert_eq!(got.manifest_digest, image.manifest_digest);
}

#[test]
fn transient_faults_are_retried() {
    let Some(reg) = TestRegistry::start() else { return };
    let (_d, cache) = new_cache();
    let image = test_image(&cache, "amd64", &vec![7u8; 200_000]);
    push(&reg.host(), "fault/app:1", &image, opts()).unwrap();
    let proxy = FaultProxy::start(reg.port);
    let r = format!("{}/fault/app:1", proxy.host());
    let code = image.layers[1].descriptor.digest.to_string();

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
        path_contains: image.config_descriptor.digest.to_string(),
        times: 1,
        kind: FaultKind::TooMany { retry_after: 1 },
    });
    let start = Instant::now();
    let got = pull(&r, Architecture::X86_64, &new_cache().1, opts()).unwrap();
    assert_eq!(got.manifest_digest, image.manifest_digest);
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
    assert!(rep.reference.unwrap().ends_with(&v2.manifest_digest.to_string()));
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
        path_contains: image.layers[0].descriptor.digest.to_string(),
        times: 1,
        kind: FaultKind::Stall(Duration::from_secs(4)),
    });
    let mut o = opts();
    o.timeout = Duration::from_millis(700);
    let start = Instant::now();
    let got = pull(
        &format!("{}/slow/app:1", proxy.host()),
        Architecture::X86_64,
        &new_cache().1,
        o,
    )
    .unwrap();
    assert_eq!(got.manifest_digest, image.manifest_digest);
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "the timeout cut the hung request short"
    );
    assert_eq!(
        proxy.count("GET", &image.layers[0].descriptor.digest.to_string()),
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
    let code = &image.layers[1].descriptor.digest;
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
    let by_digest = format!("{}/lie/app@{}", proxy.host(), image.manifest_digest);
    let err = pull(&by_digest, Architecture::X86_64, &cache2, opts()).unwrap_err();
    assert!(
        err.to_string().contains(&image.manifest_digest.to_string()),
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
    let victim = &image.layers[1].descriptor;
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
    assert_eq!(got.manifest_digest, image.manifest_digest);
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
        assert_eq!(img.manifest_digest, image.manifest_digest);
    }
    for l in &image.layers {
        assert_eq!(
            proxy.count("GET", &l.descriptor.digest.to_string()),
            1,
            "one download per blob"
        );
    }
    let cache = Cache::open(shared.path()).unwrap();
    for l in &image.layers {
        let bytes = std::fs::read(cache.blob_path(&l.descriptor.digest)).unwrap();
        assert_eq!(Digest::of(&bytes), l.descriptor.digest);
    }
}

#[test]
fn clear_errors_for_missing_things_and_unusable_images() {
    let Some(reg) = TestRegistry::start() else { return };
    let (_d, cache) = new_cache();
    let image = test_image(&cache, "amd64", b"x\n");
    push(&reg.host(), "e/app:1", &image, opts()).unwrap();

    let err = pull(
        &format!("{}/e/nothing:1", reg.host()),
        Architecture::X86_64,
        &cache,
        opts(),
    )
    .unwrap_err();
    assert!(
        matches!(err, SourceError::Registry(RegistryError::NotFound { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("e/nothing:1"), "{err}");
    let err = pull(
        &format!("{}/e/app:nope", reg.host()),
        Architecture::X86_64,
        &cache,
        opts(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("has no manifest e/app:nope"), "{err}");
    assert!(err.to_string().contains("MANIFEST_UNKNOWN"), "{err}");

    let err = pull(
        "no-such-registry.invalid/x/y:1",
        Architecture::X86_64,
        &cache,
        opts(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("no-such-registry.invalid"), "{err}");

    // An artifact (not a container image) is refused before any layer download.
    let layer = built_layer(&cache, "chart", &[("Chart.yaml", b"name: x\n")]);
    let chart = image_of(vec![layer], "amd64", "application/vnd.cncf.helm.config.v1+json");
    push(&reg.host(), "e/chart:1", &chart, opts()).unwrap();
    let err = pull(
        &format!("{}/e/chart:1", reg.host()),
        Architecture::X86_64,
        &cache,
        opts(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("helm"), "{err}");

    // A push destination with a digest is refused up front.
    assert!(RegistrySink::parse(&format!("{}/e/app@{}", reg.host(), image.manifest_digest), opts()).is_err());
    // Reference parsing errors say what is wrong.
    let err = Reference::parse("Bad/Name").unwrap_err();
    assert!(err.to_string().contains("uppercase"), "{err}");
}

#[test]
fn pin_writes_the_digest_and_keeps_the_file() {
    let Some(reg) = TestRegistry::start() else { return };
    let (dir, cache) = new_cache();
    let image = test_image(&cache, "amd64", b"pin\n");
    push(&reg.host(), "pin/base:3.12", &image, opts()).unwrap();
    let toml_path = dir.path().join("lambda-img.toml");
    let text = format!(
        "# my function\n[function]\nname = \"f\"\n\n[base]\n# the base image\nimage = \"{}/pin/base:3.12\"  # keep me\n\n[[layer]]\nname = \"deps\"\n",
        reg.host()
    );
    std::fs::write(&toml_path, &text).unwrap();
    let out = lambda_img::pin::pin_base(&toml_path, Architecture::X86_64, &opts(), &Silent).unwrap();
    assert!(out.changed);
    assert_eq!(out.digest, image.manifest_digest);
    let after = std::fs::read_to_string(&toml_path).unwrap();
    assert_eq!(
        after,
        text.replace(
            "/pin/base:3.12\"",
            &format!("/pin/base:3.12@{}\"", image.manifest_digest)
        )
    );
    let again = lambda_img::pin::pin_base(&toml_path, Architecture::X86_64, &opts(), &Silent).unwrap();
    assert!(!again.changed);
    let r = Reference::parse(&format!("{}/pin/base:3.12", reg.host())).unwrap();
    assert!(!r.is_pinned());
    assert_eq!(
        lambda_img::registry::resolve_digest(&r, &opts(), &Silent).unwrap(),
        image.manifest_digest
    );
    // A local base has nothing to pin.
    std::fs::write(&toml_path, "[base]\nimage = \"oci:./base\"\n").unwrap();
    let err = lambda_img::pin::pin_base(&toml_path, Architecture::X86_64, &opts(), &Silent).unwrap_err();
    assert!(err.to_string().contains("not a registry reference"), "{err}");
}
