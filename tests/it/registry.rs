//! Registry source and sink against the real Distribution registry, with
//! skopeo and podman as independent checks. Auth and faults have their own files.

use std::process::Command;

use lambda_img::image::{
    Architecture, BlobLocation, Digest, LayerOrigin, MediaFamily, OCI_INDEX, write_index,
};
use lambda_img::registry::{BlobAction, Client, Reference, RegistryError};
use lambda_img::report::Silent;
use lambda_img::sink::RegistrySink;
use lambda_img::source::SourceError;

use crate::support::registry::*;
use crate::support::{require_tool, run_ok};

#[test]
fn push_matches_skopeo_and_pulls_back_identically() {
    let Some(reg) = TestRegistry::start() else { return };
    if !require_tool("skopeo") {
        return;
    }
    let (_d, cache) = new_cache();
    let image = test_image(&cache, "amd64", b"print('hi')\n");
    let report = push(&reg.host(), "fn/app:v1", &image, opts()).unwrap();
    let expected_ref = format!("{}/fn/app:v1@{}", reg.host(), image.manifest_digest());
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
        raw.stdout,
        image.manifest(),
        "the registry holds our exact manifest bytes"
    );
    let cfg = run_ok(Command::new("skopeo").args([
        "inspect",
        "--config",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/fn/app:v1", reg.host()),
    ]));
    assert_eq!(cfg.stdout, image.config());

    // Pull it back into a fresh cache, by tag and by digest.
    let (_d2, cache2) = new_cache();
    let pulled = pull(
        &format!("{}/fn/app:v1", reg.host()),
        Architecture::X86_64,
        &cache2,
        opts(),
    )
    .unwrap();
    assert_eq!(pulled.manifest_digest(), image.manifest_digest());
    assert_eq!(pulled.manifest(), image.manifest());
    assert_eq!(pulled.config(), image.config());
    for (a, b) in pulled.layers().iter().zip(image.layers()) {
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
    assert_eq!(by_digest.manifest_digest(), image.manifest_digest());
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
        image.manifest_digest().to_string()
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
        format!("{}/fn/untagged@{}", reg.host(), v2.manifest_digest())
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
    let mut layers = pulled.layers().to_vec();
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
    assert_eq!(back.manifest_digest(), derived.manifest_digest());

    // A mount source that does not have the blob: the registry answers 202
    // (an upload session) and the push uploads instead.
    let mut layers = pulled.layers().to_vec();
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
    assert_eq!(got_arm.manifest_digest(), arm.manifest_digest());
    let got_amd = pull(&r, Architecture::X86_64, &cache, opts()).unwrap();
    assert_eq!(got_amd.manifest_digest(), amd.manifest_digest());
    let pinned = format!("{}/multi/base@{}", reg.host(), Digest::of(&index));
    assert_eq!(
        pull(&pinned, Architecture::Arm64, &cache, opts())
            .unwrap()
            .manifest_digest(),
        arm.manifest_digest()
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

    // zstd layers: Lambda cannot run them; refused before any layer download.
    let mut z = built_layer(&cache, "z", &[("z", b"z\n")]);
    z.descriptor.media_type = lambda_img::image::OCI_LAYER_ZSTD.to_string();
    let zimg = image_of(vec![z], "amd64", MediaFamily::Oci.config());
    push(&reg.host(), "e/zstd:1", &zimg, opts()).unwrap();
    let err = pull(
        &format!("{}/e/zstd:1", reg.host()),
        Architecture::X86_64,
        &new_cache().1,
        opts(),
    )
    .unwrap_err();
    assert!(matches!(err, SourceError::UnsupportedLayer { .. }), "{err}");
    assert!(err.to_string().contains("zstd"), "{err}");

    // A push destination with a digest is refused up front.
    assert!(
        RegistrySink::parse(
            &format!("{}/e/app@{}", reg.host(), image.manifest_digest()),
            opts()
        )
        .is_err()
    );
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
    assert_eq!(&out.digest, image.manifest_digest());
    let after = std::fs::read_to_string(&toml_path).unwrap();
    assert_eq!(
        after,
        text.replace(
            "/pin/base:3.12\"",
            &format!("/pin/base:3.12@{}\"", image.manifest_digest())
        )
    );
    let again = lambda_img::pin::pin_base(&toml_path, Architecture::X86_64, &opts(), &Silent).unwrap();
    assert!(!again.changed);
    let r = Reference::parse(&format!("{}/pin/base:3.12", reg.host())).unwrap();
    assert!(!r.is_pinned());
    assert_eq!(
        &lambda_img::registry::resolve_digest(&r, &opts(), &Silent).unwrap(),
        image.manifest_digest()
    );
    // A local base has nothing to pin.
    std::fs::write(&toml_path, "[base]\nimage = \"oci:./base\"\n").unwrap();
    let err = lambda_img::pin::pin_base(&toml_path, Architecture::X86_64, &opts(), &Silent).unwrap_err();
    assert!(err.to_string().contains("not a registry reference"), "{err}");
}
