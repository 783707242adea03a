//! The SBOM attached to every build as an OCI 1.1 referrer, read back with
//! tools nobody here wrote: Distribution 2.8 (no referrers API, so the
//! `sha256-<hex>` tag schema) and skopeo for registries; skopeo and umoci for
//! OCI layouts. A registry that has the referrers API is stood in by a shim in
//! front of the real registry that answers what the distribution spec 1.1
//! says (no such registry is installable here).

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::support::fault_proxy::{Request, Response, Server, forward, read_request, write_response};
use crate::support::project::Project;
use crate::support::registry::TestRegistry;
use crate::support::{require_tool, run_fail, run_ok, stderr, stdout};

const SPDX: &str = "application/spdx+json";

/// A java21 function on scratch (offline) whose code holds one Python
/// distribution, so the SBOM lists a package.
fn project() -> Project {
    Project::new(
        "[function]\nname = \"j\"\nruntime = \"java21\"\nhandler = \"example.Handler::handleRequest\"\n[base]\nimage = \"scratch\"\n[[layer]]\nname = \"jvm\"\nsources = [\"fake/java\"]\ndestination = \"/usr/bin/java\"\nmode = \"0755\"\n[code]\nsources = [\"classes\"]\n[image]\nentrypoint = [\"/usr/bin/java\"]\n[dependencies]\n",
        &[
            ("classes/example/Handler.class", "class"),
            ("fake/java", "stand-in interpreter, never run\n"),
            (
                "classes/six-1.16.0.dist-info/METADATA",
                "Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\nLicense: MIT\n",
            ),
        ],
    )
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(bytes)))
}

/// `skopeo inspect --raw` of `image` (`docker://...` or `oci:...`).
fn skopeo_raw(image: &str) -> Vec<u8> {
    run_ok(Command::new("skopeo").args(["inspect", "--tls-verify=false", "--raw", image])).stdout
}

/// `GET http://host/v2/...` through curl: status and body.
fn curl(url: &str) -> (u16, Vec<u8>) {
    let out = run_ok(Command::new("curl").args(["-s", "-w", "\n%{http_code}", url]));
    let text = out.stdout;
    let cut = text.iter().rposition(|b| *b == b'\n').unwrap();
    let status = String::from_utf8_lossy(&text[cut + 1..]).trim().parse().unwrap();
    (status, text[..cut].to_vec())
}

/// `build --json` with `args`; returns the report.
fn build_json(p: &Project, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    json(&p.build_ok(&all).stdout)
}

fn validate_spdx(bytes: &[u8]) {
    // pyspdxtools tells the format by the file name.
    let file = tempfile::Builder::new().suffix(".spdx.json").tempfile().unwrap();
    std::fs::write(file.path(), bytes).unwrap();
    let out = Command::new("pyspdxtools")
        .arg("-i")
        .arg(file.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pyspdxtools rejects the attached SBOM: {}{}",
        stdout(&out),
        stderr(&out)
    );
}

#[test]
fn sbom_referrer_on_distribution_2_8_uses_the_tag_schema_and_leaves_the_tag_one_manifest() {
    if !require_tool("skopeo") || !require_tool("curl") || !require_tool("pyspdxtools") {
        return;
    }
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let host = registry.host();
    let p = project();
    let out = format!("registry:{host}/fn:v1");
    let report = build_json(&p, &["--output", &out]);
    let sbom = &report["sbom"];
    let referrer = &sbom["referrers"][0];
    assert_eq!(referrer["indexed_by"], "tag-schema", "{report:#}");
    let subject = referrer["subject"].as_str().unwrap().to_string();
    let artifact = referrer["manifest"].as_str().unwrap().to_string();
    let hex = subject.trim_start_matches("sha256:");

    // The function's tag is still the one image manifest (LI001 stays clean).
    let tagged = skopeo_raw(&format!("docker://{host}/fn:v1"));
    assert_eq!(lambda_img::image::Digest::of(&tagged).to_string(), subject);
    let tagged = json(&tagged);
    assert_eq!(tagged["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert!(tagged.get("manifests").is_none() && tagged.get("subject").is_none());

    // Distribution 2.8 has no referrers API...
    let (status, _) = curl(&format!("http://{host}/v2/fn/referrers/{subject}"));
    assert_eq!(status, 404);
    // ...so the fallback tag lists the artifact manifest with its type.
    let index = json(&skopeo_raw(&format!("docker://{host}/fn:sha256-{hex}")));
    assert_eq!(index["mediaType"], "application/vnd.oci.image.index.v1+json");
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{index:#}");
    assert_eq!(entries[0]["digest"], artifact.as_str());
    assert_eq!(entries[0]["artifactType"], SPDX);
    assert_eq!(
        referrer["tag"],
        format!("{host}/fn:sha256-{hex}").as_str(),
        "the report names the fallback tag"
    );

    // The artifact manifest: its subject is the image, its layer the SBOM.
    let manifest = json(&skopeo_raw(&format!("docker://{host}/fn@{artifact}")));
    assert_eq!(manifest["artifactType"], SPDX);
    assert_eq!(manifest["subject"]["digest"], subject.as_str());
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.empty.v1+json"
    );
    assert_eq!(manifest["layers"][0]["mediaType"], SPDX);
    assert_eq!(manifest["layers"][0]["digest"], sbom["digest"]);
    let (status, document) = curl(&format!(
        "http://{host}/v2/fn/blobs/{}",
        sbom["digest"].as_str().unwrap()
    ));
    assert_eq!(status, 200);
    validate_spdx(&document);
    let doc = json(&document);
    assert!(
        doc["packages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "six" && p["versionInfo"] == "1.16.0"),
        "{doc:#}"
    );

    // `check` of the tag is clean; `inspect --sbom` finds the document.
    let checked = run_ok(&mut p.cmd(&["check", &format!("{host}/fn:v1")]));
    assert!(!stdout(&checked).contains("LI001"), "{}", stdout(&checked));
    let listed = stdout(&run_ok(&mut p.cmd(&[
        "inspect",
        "--sbom",
        &format!("{host}/fn:v1"),
    ])));
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("six ") && l.contains("pkg:pypi/six@1.16.0")),
        "{listed}"
    );
    let raw = run_ok(&mut p.cmd(&["inspect", "--sbom", "--json", &format!("{host}/fn:v1")])).stdout;
    assert_eq!(json(&raw), doc);

    // The same build again: the read-modify-write keeps one entry, not two.
    build_json(&p, &["--output", &out]);
    let index = json(&skopeo_raw(&format!("docker://{host}/fn:sha256-{hex}")));
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1, "{index:#}");

    // --no-sbom: a new image gets no fallback tag.
    std::fs::write(p.join("classes/more.txt"), "more").unwrap();
    let report = build_json(&p, &["--output", &out, "--no-sbom"]);
    assert!(report.get("sbom").is_none(), "{report:#}");
    let digest = report["outputs"][0]["reference"]
        .as_str()
        .unwrap()
        .rsplit_once('@')
        .unwrap()
        .1
        .to_string();
    let (status, _) = curl(&format!(
        "http://{host}/v2/fn/manifests/sha256-{}",
        digest.trim_start_matches("sha256:")
    ));
    assert_eq!(status, 404);
    let none = run_fail(&mut p.cmd(&["inspect", "--sbom", &format!("{host}/fn:v1")]));
    assert!(stderr(&none).contains("carries no SBOM"), "{}", stderr(&none));
}

/// What the shim recorded: the descriptors of pushed manifests with a
/// `subject`, by subject digest.
type Referrers = Arc<Mutex<BTreeMap<String, Vec<Value>>>>;

/// A registry with the referrers API: the real registry behind a shim that
/// answers `OCI-Subject` for a manifest with a subject and serves
/// `GET /v2/<name>/referrers/<digest>` from what it saw (distribution spec 1.1).
fn referrers_shim(upstream: u16, seen: Referrers, api_gets: Arc<Mutex<usize>>) -> Server {
    Server::start(Arc::new(move |stream| {
        let Some(req): Option<Request> = read_request(&stream) else {
            return;
        };
        let path = req.path().to_string();
        if req.method == "GET"
            && let Some((_, digest)) = path.split_once("/referrers/")
        {
            *api_gets.lock().unwrap() += 1;
            let listed = seen.lock().unwrap().get(digest).cloned().unwrap_or_default();
            let body = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": listed,
            });
            let resp = Response::new(200, serde_json::to_vec(&body).unwrap())
                .with_header("Content-Type", "application/vnd.oci.image.index.v1+json");
            write_response(stream, &resp, None);
            return;
        }
        let Ok(mut resp) = forward(upstream, &req) else {
            return;
        };
        if req.method == "PUT"
            && path.contains("/manifests/")
            && resp.status == 201
            && let Ok(m) = serde_json::from_slice::<Value>(&req.body)
            && let Some(subject) = m["subject"]["digest"].as_str()
        {
            let entry = serde_json::json!({
                "mediaType": m["mediaType"],
                "digest": lambda_img::image::Digest::of(&req.body).to_string(),
                "size": req.body.len(),
                "artifactType": m["artifactType"],
            });
            seen.lock()
                .unwrap()
                .entry(subject.to_string())
                .or_default()
                .push(entry);
            resp = resp.with_header("OCI-Subject", subject);
        }
        write_response(stream, &resp, None);
    }))
}

#[test]
fn sbom_referrer_uses_the_referrers_api_when_the_registry_answers_oci_subject() {
    if !require_tool("curl") {
        return;
    }
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let seen: Referrers = Arc::default();
    let api_gets = Arc::new(Mutex::new(0));
    let shim = referrers_shim(registry.port, seen.clone(), api_gets.clone());
    let host = shim.host();
    let p = project();
    let report = build_json(
        &p,
        &[
            "--output",
            &format!("registry:{host}/fn:v1"),
            "--sbom-format",
            "cyclonedx",
        ],
    );
    let referrer = &report["sbom"]["referrers"][0];
    assert_eq!(referrer["indexed_by"], "referrers-api", "{report:#}");
    assert!(referrer.get("tag").is_none());
    let subject = referrer["subject"].as_str().unwrap();
    let listed = seen.lock().unwrap().get(subject).cloned().unwrap_or_default();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["artifactType"], "application/vnd.cyclonedx+json");
    // No fallback tag was made on the real registry behind the shim.
    let (_, tags) = curl(&format!("http://{}/v2/fn/tags/list", registry.host()));
    assert_eq!(json(&tags)["tags"], serde_json::json!(["v1"]));
    // inspect --sbom asks the API and finds the CycloneDX document.
    let out = run_ok(&mut p.cmd(&["inspect", "--sbom", &format!("{host}/fn:v1")]));
    assert!(stdout(&out).contains("pkg:pypi/six@1.16.0"), "{}", stdout(&out));
    assert!(*api_gets.lock().unwrap() >= 1);
}

#[test]
fn sbom_referrer_in_an_oci_layout_index_follows_the_image() {
    if !require_tool("skopeo") || !require_tool("umoci") || !require_tool("pyspdxtools") {
        return;
    }
    let p = project();
    let layout = p.cache.path().join("out");
    let out = format!("oci:{}:v1", layout.display());
    let index = || json(&std::fs::read(layout.join("index.json")).unwrap());
    let blob = |d: &str| layout.join("blobs/sha256").join(d.trim_start_matches("sha256:"));
    let report = build_json(&p, &["--output", &out]);
    let first = report["sbom"]["referrers"][0].clone();
    assert_eq!(first["indexed_by"], "index.json", "{report:#}");
    let entries = index()["manifests"].as_array().unwrap().clone();
    assert_eq!(entries.len(), 2, "the image and its referrer: {entries:#?}");
    let untagged: Vec<&Value> = entries
        .iter()
        .filter(|e| e.get("annotations").is_none())
        .collect();
    assert_eq!(untagged.len(), 1);
    assert_eq!(untagged[0]["digest"], first["manifest"]);
    let manifest = json(&std::fs::read(blob(first["manifest"].as_str().unwrap())).unwrap());
    assert_eq!(manifest["subject"]["digest"], first["subject"]);
    // image-spec 1.1: the index's descriptor of an artifact carries its type.
    assert_eq!(
        untagged[0]["artifactType"], "application/spdx+json",
        "{entries:#?}"
    );
    assert_eq!(untagged[0]["artifactType"], manifest["artifactType"]);
    assert!(
        entries
            .iter()
            .all(|e| e.get("annotations").is_none() || e.get("artifactType").is_none())
    );
    validate_spdx(&std::fs::read(blob(manifest["layers"][0]["digest"].as_str().unwrap())).unwrap());

    // skopeo and umoci still read the tagged image.
    let tagged = skopeo_raw(&out);
    assert_eq!(
        lambda_img::image::Digest::of(&tagged).to_string(),
        first["subject"].as_str().unwrap()
    );
    let bundle = p.cache.path().join("bundle");
    run_ok(
        Command::new("umoci")
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:v1", layout.display()))
            .arg(&bundle),
    );
    assert!(
        bundle
            .join("rootfs/var/task/six-1.16.0.dist-info/METADATA")
            .is_file()
    );
    let listed = stdout(&run_ok(&mut p.cmd(&["inspect", "--sbom", &out])));
    assert!(listed.contains("pkg:pypi/six@1.16.0"), "{listed}");
    // umoci's own index reader lists the one tag (the artifact entry has none).
    let tags = stdout(&run_ok(
        Command::new("umoci").args(["ls", "--layout"]).arg(&layout),
    ));
    assert_eq!(tags.trim(), "v1");

    // A new image under the tag: its referrer replaces the old one, whose
    // blobs the layout's gc removes.
    std::fs::write(p.join("classes/more.txt"), "more").unwrap();
    let report = build_json(&p, &["--output", &out]);
    let second = &report["sbom"]["referrers"][0];
    assert_ne!(second["subject"], first["subject"]);
    let entries = index()["manifests"].as_array().unwrap().clone();
    assert_eq!(entries.len(), 2, "{entries:#?}");
    assert!(entries.iter().any(|e| e["digest"] == second["manifest"]));
    // The rewritten index keeps the type (entries are read back and written).
    assert!(
        entries
            .iter()
            .any(|e| e["digest"] == second["manifest"] && e["artifactType"] == "application/spdx+json"),
        "{entries:#?}"
    );
    assert_eq!(
        lambda_img::image::Digest::of(&skopeo_raw(&out)).to_string(),
        second["subject"].as_str().unwrap()
    );
    assert!(
        !blob(first["manifest"].as_str().unwrap()).exists(),
        "the old referrer was collected"
    );

    // --no-sbom leaves the layout with the image alone.
    let bare = p.cache.path().join("bare");
    p.build_ok(&["--no-sbom", "--output", &format!("oci:{}:v1", bare.display())]);
    let entries = json(&std::fs::read(bare.join("index.json")).unwrap());
    assert_eq!(entries["manifests"].as_array().unwrap().len(), 1);

    // A docker-archive cannot carry a referrer: built, and said so.
    let archive = p.cache.path().join("img.tar");
    let built = p.build_ok(&["-v", "--output", &format!("docker-archive:{}", archive.display())]);
    assert!(
        stderr(&built).contains("cannot carry an OCI referrer"),
        "{}",
        stderr(&built)
    );
}

#[test]
fn sbom_and_metadata_file_paths_never_replace_an_input() {
    let p = project();
    let manifest = std::fs::read(p.join("lambda-img.toml")).unwrap();
    let handler = p.join("classes/example/Handler.class");
    for (flag, path, says) in [
        ("--sbom", p.join("lambda-img.toml"), "would replace the manifest"),
        (
            "--metadata-file",
            p.join("lambda-img.toml"),
            "would replace the manifest",
        ),
        ("--sbom", p.path().to_path_buf(), "would replace the manifest"),
        ("--metadata-file", p.join("classes"), "a source of layer `code`"),
        ("--sbom", p.join("fake/java"), "a source of layer `jvm`"),
        (
            "--sbom",
            handler.clone(),
            "is not an SBOM or build report lambda-img wrote",
        ),
    ] {
        let out = p.build_fail(&[flag, path.to_str().unwrap()]);
        assert!(
            stderr(&out).contains(says),
            "{flag} {}: {}",
            path.display(),
            stderr(&out)
        );
        assert!(
            stderr(&out).contains(&path.display().to_string()),
            "{}",
            stderr(&out)
        );
    }
    assert_eq!(std::fs::read(p.join("lambda-img.toml")).unwrap(), manifest);
    assert_eq!(std::fs::read(&handler).unwrap(), b"class");

    // New files inside a source are fine and stay out of the layers: the
    // second build (which replaces them) makes the same image.
    let args = [
        "--sbom",
        "classes/sbom.spdx.json",
        "--metadata-file",
        "classes/build.json",
        "--json",
    ];
    let first = json(&p.build_ok(&args).stdout);
    let second = json(&p.build_ok(&args).stdout);
    assert!(first["digest"].is_string(), "{first:#}");
    assert_eq!(first["digest"], second["digest"], "{first:#}\n{second:#}");
    assert!(p.join("classes/sbom.spdx.json").is_file() && p.join("classes/build.json").is_file());
}

/// `build --recursive --sbom DIR/{function}.spdx.json`: one SBOM per
/// function, each attached to that function's own output; a path without
/// `{function}` is refused before anything is built.
#[test]
fn sbom_with_recursive_writes_one_file_per_function() {
    let root = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    for name in ["alpha", "beta"] {
        let p = project();
        let dir = root.path().join("functions").join(name);
        std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
        crate::support::write_files(
            &dir,
            &[
                ("classes/example/Handler.class", "class"),
                ("fake/java", "stand-in interpreter, never run\n"),
                (
                    "lambda-img.toml",
                    &std::fs::read_to_string(p.join("lambda-img.toml"))
                        .unwrap()
                        .replace("name = \"j\"", &format!("name = \"{name}\"")),
                ),
            ],
        );
    }
    let out = root.path().join("out");
    let recursive = |sbom: &str| {
        let mut cmd = crate::support::lambda_img(cache.path());
        cmd.current_dir(root.path()).args([
            "build",
            "--recursive",
            "--json",
            "--output",
            &format!("oci:{}/{{function}}:v1", out.display()),
            "--sbom",
            sbom,
        ]);
        cmd
    };
    let refused = run_fail(&mut recursive("sbom.spdx.json"));
    assert!(
        stderr(&refused).contains("put {function} in it"),
        "{}",
        stderr(&refused)
    );
    assert!(!out.exists(), "nothing was built");

    std::fs::create_dir(root.path().join("sboms")).unwrap();
    let report = json(&run_ok(&mut recursive("sboms/{function}.spdx.json")).stdout);
    for (i, name) in ["alpha", "beta"].iter().enumerate() {
        let file = root.path().join(format!("sboms/{name}.spdx.json"));
        let doc = json(&std::fs::read(&file).unwrap());
        assert_eq!(doc["name"], *name);
        let entry = report
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["function"] == *name)
            .unwrap();
        let sbom = &entry["report"]["sbom"];
        assert_eq!(
            sbom["digest"],
            lambda_img::image::Digest::of(&std::fs::read(&file).unwrap()).to_string()
        );
        assert_eq!(
            sbom["referrers"][0]["output"],
            format!("oci:{}/{name}:v1", out.display()).as_str(),
            "function {i}"
        );
    }
}

/// In front of the real registry: holds every write of a `sha256-<hex>`
/// referrers tag until two reads of it have arrived, so two builds that
/// attach SBOMs to the same image both read the index before either writes
/// it — the lost update a read-modify-write without a conditional PUT allows
/// (Distribution 2.8 has none). Logs the method of each tag request in order.
fn racing_tag_gate(upstream: u16, log: Arc<Mutex<Vec<String>>>) -> Server {
    Server::start(Arc::new(move |stream| {
        let Some(req): Option<Request> = read_request(&stream) else {
            return;
        };
        let on_tag = req.path().contains("/manifests/sha256-");
        if on_tag && req.method == "PUT" {
            // Bounded, and well inside the client's 30 s wait for an answer:
            // when the other build never reads (it failed), this write goes
            // on within the same attempt. Held for the full 30 s, the client
            // gave up first and sent it again, held again each time: a
            // 2.5-minute stall of the build that was fine.
            for _ in 0..1000 {
                let reads = log.lock().unwrap().iter().filter(|m| *m == "GET").count();
                if reads >= 2 {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        if on_tag {
            log.lock().unwrap().push(req.method.clone());
        }
        match forward(upstream, &req) {
            Ok(resp) => write_response(stream, &resp, None),
            Err(_) => write_response(stream, &Response::new(502, "upstream down"), None),
        }
    }))
}

#[test]
fn two_builds_attaching_sboms_to_one_image_at_once_both_stay_listed_in_the_fallback_tag() {
    if !require_tool("skopeo") {
        return;
    }
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let gate = racing_tag_gate(registry.port, log.clone());
    let p = project();
    let out = format!("registry:{}/fn:v1", gate.host());
    // The same image (same inputs), two SBOM formats: two referrers of one subject.
    let children: Vec<std::process::Child> = ["spdx", "cyclonedx"]
        .iter()
        .map(|format| {
            p.cmd(&["build", "--json", "--output", &out, "--sbom-format", format])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // Both waited for before either is judged: the one that failed is the
    // one to show, not the other (which its failure may have slowed).
    let done: Vec<std::process::Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let failed: Vec<String> = done.iter().filter(|d| !d.status.success()).map(stderr).collect();
    assert!(failed.is_empty(), "{}", failed.join("\n---\n"));
    let reports: Vec<Value> = done.iter().map(|d| json(&d.stdout)).collect();
    let referrer = |r: &Value| r["sbom"]["referrers"][0].clone();
    let (a, b) = (referrer(&reports[0]), referrer(&reports[1]));
    assert_eq!(a["subject"], b["subject"], "one image");
    assert_ne!(a["manifest"], b["manifest"], "two referrers");
    assert_eq!(
        (a["indexed_by"].as_str(), b["indexed_by"].as_str()),
        (Some("tag-schema"), Some("tag-schema"))
    );

    // The race happened: both builds read the index before either wrote it,
    // so one first write lacked the other's entry and had to be repaired.
    let methods = log.lock().unwrap().clone();
    assert_eq!(methods[..2], ["GET", "GET"], "{methods:?}");
    let writes = methods.iter().filter(|m| *m == "PUT").count();
    assert!(writes >= 3, "the lost entry was written again: {methods:?}");

    // Both are listed afterwards, read from the registry itself.
    let hex = a["subject"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let index = json(&skopeo_raw(&format!(
        "docker://{}/fn:sha256-{hex}",
        registry.host()
    )));
    let mut listed: Vec<(String, String)> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["digest"].as_str().unwrap().into(),
                e["artifactType"].as_str().unwrap().into(),
            )
        })
        .collect();
    listed.sort();
    let mut expected = vec![
        (a["manifest"].as_str().unwrap().to_string(), SPDX.to_string()),
        (
            b["manifest"].as_str().unwrap().to_string(),
            "application/vnd.cyclonedx+json".to_string(),
        ),
    ];
    expected.sort();
    assert_eq!(listed, expected, "{index:#}");
}

/// Every `link` file under `dir`, with its content.
fn links_under(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(links_under(&path));
        } else if path.file_name().is_some_and(|n| n == "link") {
            out.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    out
}

/// In front of the real registry: while the first PUT of manifest `fn:v1`
/// is answered, the repository's blob links are empty, as Distribution 2.8's
/// filesystem driver leaves one while another client commits the same blob
/// (it truncates the link, then writes it); they are whole again before the
/// answer goes back. Logs the status of each PUT of `fn:v1`.
fn blob_link_rewriting_gate(upstream: u16, layers: std::path::PathBuf, log: Arc<Mutex<Vec<u16>>>) -> Server {
    Server::start(Arc::new(move |stream| {
        let Some(req): Option<Request> = read_request(&stream) else {
            return;
        };
        let put_v1 = req.method == "PUT" && req.path() == "/v2/fn/manifests/v1";
        let links = if put_v1 && log.lock().unwrap().is_empty() {
            links_under(&layers)
        } else {
            Vec::new()
        };
        for (path, _) in &links {
            std::fs::write(path, b"").unwrap();
        }
        let resp = forward(upstream, &req).unwrap_or_else(|_| Response::new(502, "upstream down"));
        for (path, content) in &links {
            std::fs::write(path, content).unwrap();
        }
        if put_v1 {
            log.lock().unwrap().push(resp.status);
        }
        write_response(stream, &resp, None);
    }))
}

/// Two builds of one image pushing at once both upload its blobs; on
/// Distribution 2.8 the manifest PUT of one can meet the other's commit of a
/// blob mid-way and be refused for a blob it has just uploaded (about one
/// push in thirty of the test above). The refusal is passing: the PUT is sent
/// again and the build succeeds.
#[test]
fn a_manifest_refused_while_another_push_rewrites_a_blob_link_is_sent_again() {
    if !require_tool("skopeo") {
        return;
    }
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let log: Arc<Mutex<Vec<u16>>> = Arc::default();
    let layers = registry
        .storage()
        .join("docker/registry/v2/repositories/fn/_layers");
    let gate = blob_link_rewriting_gate(registry.port, layers, log.clone());
    let p = project();
    let report = build_json(&p, &["--output", &format!("registry:{}/fn:v1", gate.host())]);

    assert_eq!(
        *log.lock().unwrap(),
        [400, 201],
        "refused once by the registry itself, then stored"
    );
    // The image is there, read back from the registry itself by skopeo.
    let pushed = skopeo_raw(&format!("docker://{}/fn:v1", registry.host()));
    assert_eq!(
        report["digest"],
        lambda_img::image::Digest::of(&pushed).to_string().as_str(),
        "{report:#}"
    );
    assert_eq!(report["sbom"]["referrers"][0]["subject"], report["digest"]);
}

/// PUTs an OCI index of `children` (manifest digest, size, GOARCH) as
/// `repo:tag` of the real registry; its children must be there already.
fn put_index(host: &str, repo_tag: (&str, &str), children: &[(&str, usize, &str)]) {
    let manifests: Vec<Value> = children
        .iter()
        .map(|(digest, size, arch)| {
            serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": digest,
                "size": size,
                "platform": { "architecture": arch, "os": "linux" },
            })
        })
        .collect();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    });
    let (repo, tag) = repo_tag;
    let out = run_ok(
        Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT"])
            .args(["-H", "Content-Type: application/vnd.oci.image.index.v1+json"])
            .args(["--data-binary", &index.to_string()])
            .arg(format!("http://{host}/v2/{repo}/manifests/{tag}")),
    );
    assert_eq!(stdout(&out).trim(), "201", "PUT of the index {repo}:{tag}");
}

#[test]
fn inspect_sbom_of_an_index_reads_the_referrer_of_the_platform_picked_with_arch() {
    if !require_tool("curl") || !require_tool("skopeo") {
        return;
    }
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    let host = registry.host();
    let p = project();
    // One image per architecture, each with its own SBOM referrer.
    let mut children = Vec::new();
    for (arch, goarch) in [("x86_64", "amd64"), ("arm64", "arm64")] {
        let out = format!("registry:{host}/fn:{arch}");
        let report = build_json(&p, &["--arch", arch, "--output", &out]);
        let referrer = report["sbom"]["referrers"][0].clone();
        let size = skopeo_raw(&format!("docker://{host}/fn:{arch}")).len();
        children.push((referrer, size, goarch));
    }
    let subject = |i: usize| children[i].0["subject"].as_str().unwrap().to_string();
    assert_ne!(subject(0), subject(1));
    let listed: Vec<(String, usize, &str)> = children
        .iter()
        .map(|(r, size, goarch)| (r["subject"].as_str().unwrap().to_string(), *size, *goarch))
        .collect();
    let refs: Vec<(&str, usize, &str)> = listed.iter().map(|(d, s, a)| (d.as_str(), *s, *a)).collect();
    put_index(&host, ("fn", "multi"), &refs);

    for (i, arch) in ["x86_64", "arm64"].iter().enumerate() {
        let out = run_ok(&mut p.cmd(&["inspect", "--sbom", "--arch", arch, &format!("{host}/fn:multi")]));
        assert!(stdout(&out).contains("pkg:pypi/six@1.16.0"), "{}", stdout(&out));
        let said = stderr(&out);
        let referrer = children[i].0["manifest"].as_str().unwrap();
        assert!(
            said.contains(&format!("referrer {referrer} of {}", subject(i))),
            "--arch {arch} reads its own image's referrer: {said}"
        );
        assert!(said.contains(&format!("linux/{arch} of index sha256:")), "{said}");
    }

    // An index without the asked platform: the error names what it has.
    put_index(&host, ("fn", "amd-only"), &refs[..1]);
    let failed = run_fail(&mut p.cmd(&[
        "inspect",
        "--sbom",
        "--arch",
        "arm64",
        &format!("{host}/fn:amd-only"),
    ]));
    let err = stderr(&failed);
    assert!(
        err.contains("no image for linux/arm64") && err.contains("linux/amd64") && err.contains("--arch"),
        "{err}"
    );
    // A single image is still read as itself, whatever --arch says.
    let out = run_ok(&mut p.cmd(&[
        "inspect",
        "--sbom",
        "--arch",
        "arm64",
        &format!("{host}/fn:x86_64"),
    ]));
    assert!(
        stderr(&out).contains(&format!("of {}", subject(0))),
        "{}",
        stderr(&out)
    );
}

#[test]
fn inspect_sbom_of_an_index_in_an_oci_layout_picks_the_platform_with_arch() {
    if !require_tool("umoci") {
        return;
    }
    let p = project();
    let layout = p.cache.path().join("out");
    let mut children = Vec::new();
    for (arch, goarch) in [("x86_64", "amd64"), ("arm64", "arm64")] {
        let report = build_json(
            &p,
            &[
                "--arch",
                arch,
                "--output",
                &format!("oci:{}:{arch}", layout.display()),
            ],
        );
        let referrer = report["sbom"]["referrers"][0].clone();
        let entry = crate::support::oci::index_entry(&layout, arch);
        children.push(serde_json::json!({
            "mediaType": entry["mediaType"],
            "digest": entry["digest"],
            "size": entry["size"],
            "platform": { "architecture": goarch, "os": "linux" },
        }));
        assert_eq!(entry["digest"], referrer["subject"]);
        children.push(referrer);
    }
    // The index as a blob, tagged `multi` beside the two images and their referrers.
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [children[0], children[2]],
    }))
    .unwrap();
    let digest = lambda_img::image::Digest::of(&index);
    std::fs::write(layout.join("blobs/sha256").join(digest.hex()), &index).unwrap();
    let mut top = json(&std::fs::read(layout.join("index.json")).unwrap());
    top["manifests"].as_array_mut().unwrap().push(serde_json::json!({
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": digest.to_string(),
        "size": index.len(),
        "annotations": { "org.opencontainers.image.ref.name": "multi" },
    }));
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    // umoci reads the layout with the index in it.
    let tags = stdout(&run_ok(
        Command::new("umoci").args(["ls", "--layout"]).arg(&layout),
    ));
    assert!(tags.lines().any(|t| t == "multi"), "{tags}");

    let image = format!("oci:{}:multi", layout.display());
    let out = run_ok(&mut p.cmd(&["inspect", "--sbom", "--arch", "arm64", &image]));
    assert!(stdout(&out).contains("pkg:pypi/six@1.16.0"), "{}", stdout(&out));
    let arm = &children[3];
    assert!(
        stderr(&out).contains(&format!(
            "referrer {} of {}",
            arm["manifest"].as_str().unwrap(),
            arm["subject"].as_str().unwrap()
        )),
        "{}",
        stderr(&out)
    );
}
