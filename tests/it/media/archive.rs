//! docker-archives: our sink loaded by skopeo and podman, our source on archives
//! written by skopeo and on a Docker 25 style archive made by hand.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use lambda_img::image::{Architecture, DOCKER_LAYER_GZIP, Digest, Image, MediaFamily};
use lambda_img::report::{Reporter, Silent};
use lambda_img::sink::{DockerArchiveSink, ImageSink, OciLayoutSink, SinkError};
use lambda_img::source::{DockerArchiveSource, ImageSource, OciLayoutSource, SourceError};

use super::{Env, diff_ids, gzip_layer, image_with, layer_tar, sample_image, skopeo, temp_files};
use crate::support::registry::with_layer_facts;
use crate::support::{require_tool, run_ok};

const X86: Architecture = Architecture::X86_64;

/// podman with storage and configuration private to one test.
struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    fn new() -> Podman {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        fs::write(
            p.join("containers.conf"),
            "[containers]\nnetns = \"none\"\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n\
             [engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n",
        )
        .unwrap();
        fs::write(
            p.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\nrunroot = \"{}\"\ngraphroot = \"{}\"\n",
                p.join("run").display(),
                p.join("root").display()
            ),
        )
        .unwrap();
        Podman { dir }
    }

    fn cmd(&self) -> Command {
        let p = self.dir.path();
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", p.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", p.join("storage.conf"))
            .args(["--root", p.join("root").to_str().unwrap()])
            .args(["--runroot", p.join("run").to_str().unwrap()])
            .args(["--storage-driver", "vfs"]);
        c
    }
}

/// Records compression tasks, to see whether a layer was compressed again.
#[derive(Default)]
struct Tasks(Mutex<Vec<String>>);

impl Reporter for Tasks {
    fn step(&self, _: &str) {}
    fn task_start(&self, _: &str, label: &str, _: Option<u64>) {
        self.0.lock().unwrap().push(label.to_string());
    }
    fn task_progress(&self, _: &str, _: u64) {}
    fn task_done(&self, _: &str, _: &str) {}
    fn warn(&self, _: &str) {}
}

fn write_archive(image: &Image, spec: &str) {
    DockerArchiveSink::parse(spec)
        .unwrap()
        .write(image, &Silent)
        .unwrap();
}

#[test]
fn docker_archive_sink_loads_in_skopeo_and_podman() {
    if !require_tool("skopeo") || !require_tool("podman") {
        return;
    }
    let env = Env::new();
    let image = sample_image(&env, X86, MediaFamily::Docker);
    let file = env.path("out/app.tar");
    write_archive(&image, &format!("{}:lambda-img-test/app:v1", file.display()));

    // Same image, same bytes.
    let again = env.path("again.tar");
    write_archive(&image, &format!("{}:lambda-img-test/app:v1", again.display()));
    assert_eq!(fs::read(&file).unwrap(), fs::read(&again).unwrap());

    let out = run_ok(skopeo().args(["inspect", &format!("docker-archive:{}", file.display())]));
    let inspect: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(inspect["Architecture"], "amd64");
    let layers: Vec<String> = serde_json::from_value(inspect["Layers"].clone()).unwrap();
    assert_eq!(
        layers,
        diff_ids(&image).iter().map(|d| d.to_string()).collect::<Vec<_>>()
    );
    let config = run_ok(skopeo().args([
        "inspect",
        "--config",
        "--raw",
        &format!("docker-archive:{}", file.display()),
    ]));
    assert_eq!(config.stdout, image.config(), "the config travels byte for byte");

    // skopeo can turn it into an OCI layout, which our source reads.
    let layout = env.path("from-archive");
    run_ok(skopeo().args([
        "copy",
        &format!("docker-archive:{}", file.display()),
        &format!("oci:{}:x", layout.display()),
    ]));
    let back = OciLayoutSource::parse(&format!("{}:x", layout.display())).unwrap();
    let back = back.resolve(X86, &env.cache, &Silent).unwrap();
    assert_eq!(diff_ids(&back), diff_ids(&image));
    assert_eq!(back.config(), image.config());

    let podman = Podman::new();
    run_ok(podman.cmd().args(["load", "-i", file.to_str().unwrap()]));
    let out = run_ok(
        podman
            .cmd()
            .args(["image", "inspect", "localhost/lambda-img-test/app:v1"]),
    );
    let inspect: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let loaded = &inspect[0];
    assert_eq!(loaded["Architecture"], "amd64");
    assert_eq!(loaded["Id"], image.config_descriptor().digest.hex());
    let rootfs: Vec<String> = serde_json::from_value(loaded["RootFS"]["Layers"].clone()).unwrap();
    assert_eq!(
        rootfs,
        diff_ids(&image).iter().map(|d| d.to_string()).collect::<Vec<_>>()
    );

    // And what podman saves, our source reads back to the same config and layers.
    let saved = env.path("podman-saved.tar");
    run_ok(podman.cmd().args([
        "save",
        "--format",
        "docker-archive",
        "-o",
        saved.to_str().unwrap(),
        "localhost/lambda-img-test/app:v1",
    ]));
    let read = DockerArchiveSource::parse(saved.to_str().unwrap()).unwrap();
    let read = read.resolve(X86, &env.cache, &Silent).unwrap();
    assert_eq!(read.config(), image.config());
    assert_eq!(diff_ids(&read), diff_ids(&image));
}

#[test]
fn docker_archive_source_reads_a_skopeo_archive_and_compresses_once() {
    if !require_tool("skopeo") {
        return;
    }
    let env = Env::new();
    let image = sample_image(&env, X86, MediaFamily::Oci);
    let layout = env.path("layout");
    OciLayoutSink::parse(&format!("{}:v1", layout.display()))
        .unwrap()
        .write(&image, &Silent)
        .unwrap();
    let file = env.path("skopeo.tar");
    run_ok(skopeo().args([
        "copy",
        &format!("oci:{}:v1", layout.display()),
        &format!("docker-archive:{}:repo/x:t", file.display()),
    ]));

    let source = DockerArchiveSource::parse(file.to_str().unwrap()).unwrap();
    let tasks = Tasks::default();
    let read = source.resolve(X86, &env.cache, &tasks).unwrap();
    assert_eq!(read.family(), MediaFamily::Docker);
    assert_eq!(diff_ids(&read), diff_ids(&image));
    assert_eq!(read.uncompressed_size(), image.uncompressed_size());
    assert!(
        read.layers()
            .iter()
            .all(|l| l.descriptor.media_type == DOCKER_LAYER_GZIP)
    );
    assert_eq!(
        tasks.0.lock().unwrap().len(),
        2,
        "skopeo stores uncompressed layers: both are gzipped"
    );

    // A second read reuses the cached gzip blobs, with the same digests.
    let tasks2 = Tasks::default();
    let again = source.resolve(X86, &env.cache, &tasks2).unwrap();
    assert!(
        tasks2.0.lock().unwrap().is_empty(),
        "{:?}",
        tasks2.0.lock().unwrap()
    );
    assert_eq!(again.manifest_digest(), read.manifest_digest());

    // The image ID pins it; a wrong one is a DigestMismatch.
    let id = read.config_descriptor().digest.clone();
    let pinned = DockerArchiveSource::parse(&format!("{}@{id}", file.display())).unwrap();
    assert_eq!(
        pinned
            .resolve(X86, &env.cache, &Silent)
            .unwrap()
            .manifest_digest(),
        read.manifest_digest()
    );
    let wrong = DockerArchiveSource::parse(&format!("{}@{}", file.display(), Digest::of(b"x"))).unwrap();
    let err = wrong.resolve(X86, &env.cache, &Silent).unwrap_err();
    assert!(matches!(err, SourceError::DigestMismatch { .. }), "{err:?}");

    // The image read from the archive is writable and loads again (gzip blobs from the cache).
    let out = env.path("out");
    OciLayoutSink::parse(out.to_str().unwrap())
        .unwrap()
        .write(&read, &Silent)
        .unwrap();
    // It has Docker media types: the layout gets the OCI form of the same image.
    let oci = lambda_img::sink::as_oci(&read).unwrap();
    let raw = run_ok(skopeo().args(["inspect", "--raw", &format!("oci:{}:latest", out.display())]));
    assert_eq!(raw.stdout, oci.manifest());
    let config = run_ok(skopeo().args([
        "inspect",
        "--config",
        "--raw",
        &format!("oci:{}:latest", out.display()),
    ]));
    assert_eq!(config.stdout, read.config());
    let back = OciLayoutSource::parse(&format!("{}@{}", out.display(), oci.manifest_digest())).unwrap();
    assert_eq!(
        diff_ids(&back.resolve(X86, &env.cache, &Silent).unwrap()),
        diff_ids(&read)
    );
}

/// Appends a regular file or a symlink to a tar being built by hand.
fn add(tar: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    tar.append_data(&mut h, name, data).unwrap();
}

#[test]
fn docker_archive_source_reads_a_docker25_layout_with_links_and_gzip_layers() {
    let env = Env::new();
    let tar1 = layer_tar(&[("etc/one", b"1")]);
    let tar2 = layer_tar(&[("etc/two", b"2")]);
    let gz2 = super::gzip(&tar2);
    let (d1, d2) = (Digest::of(&tar1), Digest::of(&tar2));
    // Layers: tar1, tar2 (stored gzipped), tar1 again through a symlink.
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "arm64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [d1, d2, d1]}
    }))
    .unwrap();
    let cfg = Digest::of(&config);
    let blob = |d: &Digest| format!("blobs/sha256/{}", d.hex());
    let manifest = serde_json::json!([{
        "Config": blob(&cfg),
        "RepoTags": ["example/app:v1"],
        "Layers": [blob(&d1), blob(&Digest::of(&gz2)), "extra/dup.tar"]
    }]);
    let mut tar = tar::Builder::new(Vec::new());
    add(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    add(&mut tar, "index.json", br#"{"schemaVersion":2,"manifests":[]}"#);
    add(&mut tar, &blob(&cfg), &config);
    add(&mut tar, &blob(&d1), &tar1);
    add(&mut tar, &blob(&Digest::of(&gz2)), &gz2);
    let mut link = tar::Header::new_ustar();
    link.set_size(0);
    link.set_entry_type(tar::EntryType::Symlink);
    tar.append_link(&mut link, "extra/dup.tar", format!("../{}", blob(&d1)))
        .unwrap();
    add(&mut tar, "manifest.json", &serde_json::to_vec(&manifest).unwrap());
    let file = env.path("docker25.tar");
    fs::write(&file, tar.into_inner().unwrap()).unwrap();

    let tasks = Tasks::default();
    let image = DockerArchiveSource::parse(file.to_str().unwrap())
        .unwrap()
        .resolve(Architecture::Arm64, &env.cache, &tasks)
        .unwrap();
    assert_eq!(diff_ids(&image), vec![d1.clone(), d2, d1]);
    assert_eq!(image.config(), config);
    assert_eq!(
        image.layers()[1].descriptor.digest,
        Digest::of(&gz2),
        "a gzip layer is kept as it is"
    );
    assert_eq!(image.layers()[0].descriptor, image.layers()[2].descriptor);
    assert_eq!(
        tasks.0.lock().unwrap().len(),
        1,
        "tar1 is compressed once, the link reuses it"
    );

    // A layer tar that does not match its diff_id is refused.
    let mut bad = tar::Builder::new(Vec::new());
    let wrong = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [Digest::of(b"other")]}
    }))
    .unwrap();
    add(&mut bad, "c.json", &wrong);
    add(&mut bad, "l/layer.tar", &layer_tar(&[("z", b"z")]));
    add(
        &mut bad,
        "manifest.json",
        br#"[{"Config":"c.json","RepoTags":null,"Layers":["l/layer.tar"]}]"#,
    );
    let bad_file = env.path("bad.tar");
    fs::write(&bad_file, bad.into_inner().unwrap()).unwrap();
    let err = DockerArchiveSource::parse(bad_file.to_str().unwrap())
        .unwrap()
        .resolve(X86, &env.cache, &Silent)
        .unwrap_err();
    assert!(matches!(err, SourceError::DigestMismatch { .. }), "{err:?}");
    assert!(temp_files(env.path("cache").as_path()).is_empty());
    let tmp_left = fs::read_dir(env.path("cache/tmp")).unwrap().count();
    assert_eq!(tmp_left, 0, "the half-written gzip is removed");
}

#[test]
fn a_failed_archive_write_leaves_the_previous_file_and_no_temp_files() {
    let env = Env::new();
    let dir = env.path("out");
    let file = dir.join("app.tar");
    let good = sample_image(&env, X86, MediaFamily::Docker);
    write_archive(&good, file.to_str().unwrap());
    let before = fs::read(&file).unwrap();

    let changed = image_with(
        &env,
        X86,
        MediaFamily::Docker,
        vec![gzip_layer(&env, MediaFamily::Docker, &[("y", b"2")])],
    );
    let lambda_img::image::BlobLocation::File(path) = &changed.layers()[0].location;
    let mut bytes = fs::read(path).unwrap();
    bytes[10] ^= 0xff;
    fs::write(path, bytes).unwrap();
    let err = DockerArchiveSink::parse(file.to_str().unwrap())
        .unwrap()
        .write(&changed, &Silent)
        .unwrap_err();
    assert!(matches!(err, SinkError::BlobMismatch { .. }), "{err:?}");

    let missing = with_layer_facts(&good, |layers| {
        layers[1].location = lambda_img::image::BlobLocation::File(PathBuf::from("/nonexistent/blob"))
    });
    let err = DockerArchiveSink::parse(file.to_str().unwrap())
        .unwrap()
        .write(&missing, &Silent)
        .unwrap_err();
    assert!(err.to_string().contains("/nonexistent/blob"), "{err}");

    assert_eq!(fs::read(&file).unwrap(), before);
    assert_eq!(entries(&dir), vec!["app.tar".to_string()]);
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn an_archive_with_two_images_must_be_pinned_by_image_id() {
    let env = Env::new();
    let layer = layer_tar(&[("a", b"a")]);
    let config = |arch: &str| {
        serde_json::to_vec(&serde_json::json!({
            "architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": [Digest::of(&layer)]}
        }))
        .unwrap()
    };
    let (amd, arm) = (config("amd64"), config("arm64"));
    let mut tar = tar::Builder::new(Vec::new());
    add(&mut tar, "amd.json", &amd);
    add(&mut tar, "arm.json", &arm);
    add(&mut tar, "l/layer.tar", &layer);
    add(
        &mut tar,
        "manifest.json",
        br#"[{"Config":"amd.json","RepoTags":["x/app:amd"],"Layers":["l/layer.tar"]},
             {"Config":"arm.json","RepoTags":["x/app:arm"],"Layers":["l/layer.tar"]}]"#,
    );
    let file = env.path("two.tar");
    fs::write(&file, tar.into_inner().unwrap()).unwrap();

    let err = DockerArchiveSource::parse(file.to_str().unwrap())
        .unwrap()
        .resolve(X86, &env.cache, &Silent)
        .unwrap_err();
    assert!(
        matches!(err, SourceError::AmbiguousImage { count: 2, .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("x/app:amd") && msg.contains(&Digest::of(&arm).to_string()),
        "{msg}"
    );

    let pinned = DockerArchiveSource::parse(&format!("{}@{}", file.display(), Digest::of(&arm))).unwrap();
    let image = pinned.resolve(Architecture::Arm64, &env.cache, &Silent).unwrap();
    assert_eq!(image.config(), arm);
    let missing = DockerArchiveSource::parse(&format!("{}@{}", file.display(), Digest::of(b"no"))).unwrap();
    let err = missing.resolve(X86, &env.cache, &Silent).unwrap_err();
    assert!(err.to_string().contains("no image has ID"), "{err}");

    let err = DockerArchiveSource::parse(env.path("absent.tar").to_str().unwrap())
        .unwrap()
        .resolve(X86, &env.cache, &Silent)
        .unwrap_err();
    assert!(matches!(err, SourceError::NotAnImage { .. }), "{err:?}");
}
