//! What is fuzzed: each target is a name, seed inputs and a function that
//! feeds one input to the library. Results are ignored; only panics, hangs
//! and runaway memory count.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lambda_img::cache::Cache;
use lambda_img::image::{
    Architecture, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST, parse_document,
};
use lambda_img::report::Silent;
use lambda_img::source::{DockerArchiveSource, ImageSource, OciLayoutSource};
use serde_json::json;

/// Feeds one input to the library.
type Run = Box<dyn Fn(&[u8])>;

pub struct Target {
    name: &'static str,
    seeds: Vec<Vec<u8>>,
    run: Run,
}

impl Target {
    pub fn name(&self) -> &'static str {
        self.name
    }
    pub fn seeds(&self) -> &[Vec<u8>] {
        &self.seeds
    }
    pub fn run(&self, input: &[u8]) {
        (self.run)(input)
    }
}

pub fn all(work: &Path) -> Vec<Target> {
    let cache = Cache::open(work.join("cache")).unwrap();
    vec![
        manifest(work),
        documents(),
        config(),
        tar_scanner(),
        dockerignore(),
        docker_archive(work, cache.clone()),
        oci_index(work, cache),
    ]
}

/// The repository's own manifests (examples and templates) as seeds.
fn manifest(work: &Path) -> Target {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seeds: Vec<Vec<u8>> = walkdir::WalkDir::new(root.join("examples"))
        .into_iter()
        .chain(walkdir::WalkDir::new(root.join("templates")))
        .flatten()
        .filter(|e| e.file_name() == "lambda-img.toml")
        .filter_map(|e| std::fs::read(e.path()).ok())
        .collect();
    seeds.push(b"[function]\nname = \"f\"\nruntime = \"python3.12\"\nhandler = \"app.handler\"\n[base]\nimage = \"scratch\"\n[[layer]]\nname = \"x\"\nsources = [\"src\"]\ndestination = \"/opt/x\"\n".to_vec());
    let project = work.join("project");
    std::fs::create_dir_all(project.join("src")).unwrap();
    std::fs::write(project.join("src/app.py"), "def handler(e, c): pass\n").unwrap();
    let path = project.join("lambda-img.toml");
    Target {
        name: "manifest",
        seeds,
        run: Box::new(move |input| {
            let text = String::from_utf8_lossy(input);
            let _ = lambda_img::manifest::parse_str(&text, &path, &project);
        }),
    }
}

fn descriptor(media_type: &str, n: u8) -> serde_json::Value {
    json!({"mediaType": media_type, "digest": format!("sha256:{}", format!("{n:02x}").repeat(32)), "size": 100 + n as u64})
}

fn documents() -> Target {
    let oci = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.oci.image.config.v1+json", 1),
        "layers": [descriptor("application/vnd.oci.image.layer.v1.tar+gzip", 2)],
        "annotations": {"a": "b"}});
    let mut child = descriptor(OCI_MANIFEST, 3);
    child["platform"] = json!({"architecture": "arm64", "os": "linux", "variant": "v8"});
    let index =
        json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [child, descriptor(OCI_INDEX, 4)]});
    let docker = json!({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": descriptor("application/vnd.docker.container.image.v1+json", 5),
        "layers": [descriptor("application/vnd.docker.image.rootfs.diff.tar.gzip", 6)]});
    let list = json!({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST_LIST, "manifests": [descriptor(DOCKER_MANIFEST, 7)]});
    let types = [
        None,
        Some(OCI_MANIFEST),
        Some(OCI_INDEX),
        Some(DOCKER_MANIFEST),
        Some(DOCKER_MANIFEST_LIST),
    ];
    Target {
        name: "oci-docker-documents",
        seeds: [oci, index, docker, list]
            .iter()
            .map(|v| serde_json::to_vec(v).unwrap())
            .collect(),
        run: Box::new(move |input| {
            let declared = types[input.len() % types.len()];
            let _ = parse_document(input, declared, "fuzz");
        }),
    }
}

fn config_seed() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/usr/bin", "A=b=c"], "Entrypoint": ["/lambda-entrypoint.sh"], "Cmd": ["app.handler"],
                   "WorkingDir": "/var/task", "Labels": {"x": "y"}, "User": "1000", "ExposedPorts": {"80/tcp": {}}},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", "ab".repeat(32))]},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "x"}, {"empty_layer": true}],
    }))
    .unwrap()
}

fn config() -> Target {
    Target {
        name: "image-config",
        seeds: vec![
            config_seed(),
            br#"{"architecture":"arm64","os":"linux","config":null}"#.to_vec(),
        ],
        run: Box::new(|input| {
            let _ = lambda_img::rules::ImageConfig::parse(input);
            let labels = BTreeMap::from([("k".to_string(), "v".to_string())]);
            let env = [("A".to_string(), "1".to_string())];
            let entry = ["/x".to_string()];
            let changes = lambda_img::image::config::ConfigChanges {
                architecture: Architecture::X86_64,
                created: "1980-01-01T00:00:00Z".into(),
                entrypoint: Some(&entry),
                cmd: None,
                workdir: Some("/var/task"),
                env: &env,
                labels: &labels,
                new_layers: &[],
            };
            let _ = lambda_img::image::config::edit_config(input, &changes);
        }),
    }
}

fn tar_seed(long: bool) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, kind: tar::EntryType, data: &[u8], link: Option<&str>| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        h.set_mtime(1);
        if let Some(l) = link {
            h.set_link_name(l).unwrap();
        }
        b.append_data(&mut h, name, data).unwrap();
    };
    add("var/", tar::EntryType::Directory, b"", None);
    add("var/task/", tar::EntryType::Directory, b"", None);
    add(
        "var/task/app.py",
        tar::EntryType::Regular,
        b"def handler(e, c):\n  return 1\n",
        None,
    );
    add(
        "var/task/bootstrap",
        tar::EntryType::Regular,
        b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0",
        None,
    );
    add("var/task/link", tar::EntryType::Symlink, b"", Some("app.py"));
    add(
        "var/task/hard",
        tar::EntryType::Link,
        b"",
        Some("var/task/app.py"),
    );
    if long {
        add(
            &format!("var/task/{}", "n".repeat(200)),
            tar::EntryType::Regular,
            b"x",
            None,
        );
    }
    b.into_inner().unwrap()
}

fn tar_scanner() -> Target {
    let plan = lambda_img::rules::ScanPlan::new(&config_seed(), &lambda_img::rules::CheckContext::default())
        .expect("the seed config parses");
    Target {
        name: "layer-tar-scanner",
        seeds: vec![tar_seed(false), tar_seed(true)],
        run: Box::new(move |input| {
            // Skipping by seeking (the build's block stream) and by reading
            // (an inflater) must agree on every input.
            let seeking = plan.scan_tar(std::io::Cursor::new(input), 0).is_ok();
            let reading = plan
                .scan_tar(lambda_img::tar_walk::SkipByReading::new(input), 0)
                .is_ok();
            assert_eq!(seeking, reading, "the two ways of skipping disagree");
            let _ = lambda_img::tar_walk::walk_tar(input, |_, content| {
                let mut buf = [0u8; 64];
                let _ = content.read(&mut buf);
                Ok(())
            });
        }),
    }
}

fn dockerignore() -> Target {
    let seeds = vec![
        b"node_modules\n*.pyc\n!keep.pyc\n**/__pycache__\n# comment\n/build/**\n\0src/a.pyc\nnode_modules/x\nkeep.pyc\nbuild/a/b\n".to_vec(),
        b"*\n!src/**/*.py\n[a-z]?.txt\n\\#literal\n\0src/x/y.py\nab.txt\n#literal\n".to_vec(),
    ];
    Target {
        name: "dockerignore",
        seeds,
        run: Box::new(|input| {
            let split = input.iter().position(|b| *b == 0).unwrap_or(input.len());
            let patterns = String::from_utf8_lossy(&input[..split]);
            let paths = String::from_utf8_lossy(input.get(split + 1..).unwrap_or(&[]));
            if let Ok(ignore) = lambda_img::layer::DockerIgnore::parse(&patterns, ".dockerignore") {
                for p in paths.lines().take(64) {
                    let _ = ignore.is_ignored(p);
                }
            }
        }),
    }
}

/// A one-layer image's parts: (uncompressed layer tar, config bytes).
fn small_image() -> (Vec<u8>, Vec<u8>) {
    let layer = tar_seed(false);
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux", "config": {"Entrypoint": ["/var/task/bootstrap"]},
        "rootfs": {"type": "layers", "diff_ids": [lambda_img::image::Digest::of(&layer).to_string()]},
    }))
    .unwrap();
    (layer, config)
}

fn docker_archive(work: &Path, cache: Cache) -> Target {
    let (layer, config) = small_image();
    let seed = serde_json::to_vec(
        &json!([{"Config": "config.json", "RepoTags": ["img:1"], "Layers": ["layer.tar"]}]),
    )
    .unwrap();
    let path: PathBuf = work.join("fuzz-archive.tar");
    Target {
        name: "docker-archive-manifest",
        seeds: vec![seed],
        run: Box::new(move |input| {
            let mut b = tar::Builder::new(std::fs::File::create(&path).unwrap());
            for (name, data) in [
                ("manifest.json", input),
                ("config.json", &config[..]),
                ("layer.tar", &layer[..]),
            ] {
                let mut h = tar::Header::new_gnu();
                h.set_size(data.len() as u64);
                h.set_mode(0o644);
                h.set_cksum();
                b.append_data(&mut h, name, data).unwrap();
            }
            b.finish().unwrap();
            drop(b);
            if let Ok(source) = DockerArchiveSource::parse(path.to_str().unwrap()) {
                let _ = source.resolve(Architecture::X86_64, &cache, &Silent);
            }
        }),
    }
}

fn oci_index(work: &Path, cache: Cache) -> Target {
    let dir = work.join("fuzz-layout");
    let (layer, config) = small_image();
    let put = |bytes: &[u8]| {
        let d = lambda_img::image::Digest::of(bytes);
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("blobs/sha256").join(d.hex()), bytes).unwrap();
        d.to_string()
    };
    let layer_d = put(&layer);
    let config_d = put(&config);
    let manifest = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_d, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_d, "size": layer.len()}]}))
    .unwrap();
    let manifest_d = put(&manifest);
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let seed = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": manifest_d, "size": manifest.len(),
         "platform": {"architecture": "amd64", "os": "linux"},
         "annotations": {"org.opencontainers.image.ref.name": "t"}}]}))
    .unwrap();
    Target {
        name: "oci-layout-index",
        seeds: vec![seed],
        run: Box::new(move |input| {
            std::fs::write(dir.join("index.json"), input).unwrap();
            if let Ok(source) = OciLayoutSource::parse(dir.to_str().unwrap()) {
                let _ = source.resolve(Architecture::X86_64, &cache, &Silent);
            }
        }),
    }
}
