//! Finding packages in layer tar streams: `*.dist-info/METADATA` (Python),
//! the `package.json` at the root of each installed `node_modules` package
//! (npm), and `META-INF/maven/*/*/pom.properties` inside jars or unpacked
//! (Maven). Only the layers this build wrote are read: the base's packages
//! are its own (the base is named by digest instead), and so are the
//! `[system]` layer's, which its package database lists.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Mutex;

use super::SbomError;
use super::os_packages::{Database, OS_RELEASE, os_release_id, parse, purl as os_purl};
use crate::image::{Digest, Image, Layer, LayerOrigin};
use crate::tar_walk::{EntryKind, TarEntry, read_head, walk_layer, walk_tar_skipping};

/// Metadata files larger than this are not package metadata we can use.
const METADATA_LIMIT: usize = 1 << 20;
/// Jars are read whole to find their central directory; bigger ones are skipped.
const JAR_LIMIT: u64 = 256 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ecosystem {
    Maven,
    Npm,
    Pypi,
    /// A dpkg package of the OS (base or a layer that installed some).
    Deb,
    /// An apk package of the OS.
    Apk,
    /// An rpm package of the OS (Amazon Linux, the AWS base images).
    Rpm,
    /// A file known by its digest alone: a custom runtime's `bootstrap`.
    Generic,
}

impl Ecosystem {
    pub fn as_str(self) -> &'static str {
        match self {
            Ecosystem::Maven => "maven",
            Ecosystem::Npm => "npm",
            Ecosystem::Pypi => "pypi",
            Ecosystem::Deb => "deb",
            Ecosystem::Apk => "apk",
            Ecosystem::Rpm => "rpm",
            Ecosystem::Generic => "generic",
        }
    }
}

/// One package found in a layer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Package {
    pub ecosystem: Ecosystem,
    pub name: String,
    pub version: String,
    /// The licence as the package declares it (free text or an SPDX expression).
    pub license: Option<String>,
    pub purl: String,
    /// Where its metadata is in the image (`JAR!entry` for a jar's pom.properties).
    pub path: String,
    /// The blob digest of the layer that holds it.
    pub layer: Digest,
    /// The file's own sha256, when the package is one file (the bootstrap).
    pub checksum: Option<Digest>,
    /// The lockfile's digest of the package's archive (npm `integrity`).
    pub integrity: Option<super::npm_lock::Integrity>,
    /// Where the lockfile says it was downloaded from (npm `resolved`).
    pub download: Option<String>,
}

/// The packages in the layers `image`'s build wrote, sorted, one per
/// metadata path (a later layer's file replaces an earlier one's), plus the
/// OS packages of the package databases in any layer (the base's included;
/// the last layer's copy of a database is the one that counts) and a custom
/// runtime's `bootstrap` by digest.
pub fn discover(image: &Image) -> Result<Vec<Package>, SbomError> {
    Ok(scan(image.layers())?.packages)
}

/// What [`scan`] found in some layers.
pub(super) struct Scan {
    /// As [`discover`] returns them, for these layers alone.
    pub packages: Vec<Package>,
    /// Whether a layer has (or deletes) a file where OS package state lives
    /// ([`touches_os_state`]): then these layers change the OS packages of
    /// the layers below them.
    pub os_state: bool,
}

/// Paths under which OS package state lives: package databases (dpkg, apk,
/// rpm's old and new places) and os-release. Broad on purpose: a layer that
/// matches by mistake only costs a walk of the base (`base_packages`).
const OS_STATE: [&str; 5] = [
    "var/lib/",
    "lib/apk/",
    "usr/lib/sysimage/",
    "etc/os-release",
    "usr/lib/os-release",
];

/// See [`OS_STATE`]. A whiteout (`.wh.NAME`, `.wh..wh..opq`) counts when it
/// removes such a path or a directory above one (`var/.wh.lib`).
pub(super) fn touches_os_state(path: &str) -> bool {
    if OS_STATE.iter().any(|p| path.starts_with(p)) {
        return true;
    }
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    let removed = match name.strip_prefix(".wh.") {
        Some(".wh..opq") => dir.to_string(),
        Some(target) if dir.is_empty() => target.to_string(),
        Some(target) => format!("{dir}/{target}"),
        None => return false,
    };
    OS_STATE
        .iter()
        .any(|p| p.starts_with(&format!("{removed}/")) || p.starts_with(&removed))
}

/// [`discover`] of `layers` (in image order).
pub(super) fn scan(layers: &[Layer]) -> Result<Scan, SbomError> {
    let mut found: BTreeMap<String, Package> = BTreeMap::new();
    let mut databases: BTreeMap<String, (Database, String, Digest)> = BTreeMap::new();
    let mut os_id: Option<String> = None;
    // rpm's database is binary and may come with a write-ahead log: the
    // files are stacked as the layers stack them and read once at the end.
    let mut os_state = false;
    let mut rpm = crate::rpmdb::LayerFiles::default();
    let mut rpm_error = None;
    for layer in layers {
        // The `[system]` layer (system::SYSTEM_LAYER; system sits above this
        // module, so the name is written out) is read like the base: what
        // the OS package manager installed is listed once, from its database,
        // not again from the files its packages hold (a python3-* RPM's
        // dist-info, say). tests/it/rpmdb.rs fails if the two names drift.
        let built = matches!(&layer.origin, LayerOrigin::Built { name, .. } if name != "system");
        let digest = &layer.descriptor.digest;
        rpm.next_layer(digest.clone());
        if built && let Some(streamed) = streamed(digest) {
            os_state |= streamed.os_state;
            for p in streamed.packages {
                found.insert(p.path.clone(), p);
            }
            continue;
        }
        walk_layer(layer, |entry, reader| {
            os_state |= touches_os_state(entry.path.as_str());
            if entry.kind != EntryKind::File {
                return Ok(());
            }
            let path = entry.path.as_str();
            if crate::rpmdb::LayerFiles::<Digest>::wants(path) {
                if let Err(e) = rpm.take(path, entry.size, reader) {
                    rpm_error.get_or_insert(e);
                }
                return Ok(());
            }
            if let Some(database) = Database::at(path) {
                let text = String::from_utf8_lossy(&read_head(reader, DATABASE_LIMIT)?).into_owned();
                databases.insert(path.to_string(), (database, text, digest.clone()));
                return Ok(());
            }
            if OS_RELEASE.contains(&path) {
                let text = String::from_utf8_lossy(&read_head(reader, METADATA_LIMIT)?).into_owned();
                os_id = os_release_id(&text).or(os_id.take());
                return Ok(());
            }
            if !built {
                return Ok(());
            }
            if BOOTSTRAPS.contains(&path) {
                let (checksum, _) = Digest::of_reader(reader)?;
                found.insert(path.to_string(), bootstrap(path, checksum, digest));
                return Ok(());
            }
            for p in packages_of(entry, reader, digest)? {
                found.insert(p.path.clone(), p);
            }
            Ok(())
        })?;
    }
    let mut packages: Vec<Package> = found.into_values().collect();
    if let Some(e) = rpm_error {
        return Err(e.into());
    }
    if let Some((db, layer)) = rpm.read()? {
        packages.extend(super::os_packages::rpm_packages(&db, os_id.as_deref(), &layer));
    }
    for (path, (database, text, layer)) in databases {
        let ecosystem = match database {
            Database::Dpkg => Ecosystem::Deb,
            Database::Apk => Ecosystem::Apk,
        };
        packages.extend(parse(database, &text).into_iter().map(|p| Package {
            ecosystem,
            purl: os_purl(database, os_id.as_deref(), &p),
            name: p.name,
            version: p.version,
            license: p.license,
            path: path.clone(),
            layer: layer.clone(),
            checksum: None,
            integrity: None,
            download: None,
        }));
    }
    packages.sort();
    Ok(Scan { packages, os_state })
}

/// What the walk of one built layer adds to [`scan`] when the layer holds
/// no OS package database, rpm file or os-release (whose readings stack
/// across layers): its packages by metadata path, and whether it touches
/// OS package state. Made from the layer's tar as the build compresses it
/// ([`scan_built_stream`]), so the SBOM does not inflate and read a new
/// layer a second time after the build (on two cores that was a serial
/// tenth of a 2 GB cold build).
#[derive(Debug, Clone)]
pub struct StreamedLayer {
    packages: Vec<Package>,
    os_state: bool,
}

/// Layers of this process's builds, scanned as they were compressed, by
/// blob digest: the SBOM made after the build finds them here. In memory
/// only (a few packages each, the last [`STREAMED_KEPT`] layers): a later
/// process walks the layer as before (or finds the whole document
/// remembered in the cache).
static STREAMED: Mutex<Vec<(Digest, StreamedLayer)>> = Mutex::new(Vec::new());
/// More layers than one build of a fleet (`build --recursive`) makes before
/// its SBOMs are made; a long-running process keeps no more than this.
const STREAMED_KEPT: usize = 64;

/// The packages of a built layer's uncompressed tar, as [`scan`]'s walk of
/// it would find them; `None` when the layer is one to leave to that walk
/// (it holds OS package state read across layers) or the tar is unreadable
/// (the walk then says why).
pub fn scan_built_stream(tar: impl Read + std::io::Seek) -> Option<StreamedLayer> {
    // The blob digest is not known until the layer is compressed:
    // `remember_streamed` names it.
    let unnamed = Digest::of(b"");
    let mut found: BTreeMap<String, Package> = BTreeMap::new();
    let mut os_state = false;
    let mut plain = true;
    let walked = walk_tar_skipping(tar, |entry, reader| {
        os_state |= touches_os_state(entry.path.as_str());
        let path = entry.path.as_str();
        if entry.kind != EntryKind::File || !plain {
            return Ok(());
        }
        if crate::rpmdb::LayerFiles::<Digest>::wants(path)
            || Database::at(path).is_some()
            || OS_RELEASE.contains(&path)
        {
            plain = false;
            return Ok(());
        }
        if BOOTSTRAPS.contains(&path) {
            let (checksum, _) = Digest::of_reader(reader)?;
            found.insert(path.to_string(), bootstrap(path, checksum, &unnamed));
            return Ok(());
        }
        for p in packages_of(entry, reader, &unnamed)? {
            found.insert(p.path.clone(), p);
        }
        Ok(())
    });
    (walked.is_ok() && plain).then(|| StreamedLayer {
        packages: found.into_values().collect(),
        os_state,
    })
}

/// Keeps `layer`, the stream scan of the built layer whose blob is `digest`,
/// for the SBOM [`scan`] of an image that holds it.
pub fn remember_streamed(digest: &Digest, mut layer: StreamedLayer) {
    for p in &mut layer.packages {
        p.layer = digest.clone();
    }
    let mut kept = STREAMED.lock().unwrap_or_else(|e| e.into_inner());
    kept.retain(|(d, _)| d != digest);
    if kept.len() >= STREAMED_KEPT {
        kept.remove(0);
    }
    kept.push((digest.clone(), layer));
}

fn streamed(digest: &Digest) -> Option<StreamedLayer> {
    let kept = STREAMED.lock().unwrap_or_else(|e| e.into_inner());
    kept.iter().find(|(d, _)| d == digest).map(|(_, l)| l.clone())
}

/// Where a custom runtime's bootstrap is looked for (LAMBDA_TASK_ROOT, then /var/runtime).
const BOOTSTRAPS: [&str; 2] = ["var/task/bootstrap", "var/runtime/bootstrap"];
/// Package databases larger than this are not read (dpkg's status of a full
/// Debian system is a few MiB).
const DATABASE_LIMIT: usize = 64 << 20;

/// The bootstrap binary as a package: its name, its digest as version and
/// checksum, `pkg:generic/bootstrap?checksum=sha256:HEX`.
fn bootstrap(path: &str, checksum: Digest, layer: &Digest) -> Package {
    Package {
        ecosystem: Ecosystem::Generic,
        name: "bootstrap".to_string(),
        version: checksum.to_string(),
        license: None,
        purl: format!("pkg:generic/bootstrap?checksum=sha256:{}", checksum.hex()),
        path: path.to_string(),
        layer: layer.clone(),
        checksum: Some(checksum),
        integrity: None,
        download: None,
    }
}

/// The packages one tar entry describes (none for most entries).
fn packages_of(entry: &TarEntry, reader: &mut dyn Read, layer: &Digest) -> std::io::Result<Vec<Package>> {
    if entry.kind != EntryKind::File {
        return Ok(Vec::new());
    }
    let path = entry.path.as_str();
    let make = |ecosystem, fields: Option<Fields>, path: String| {
        fields.map(|f| Package {
            ecosystem,
            purl: purl(ecosystem, &f),
            name: f.name,
            version: f.version,
            license: f.license,
            path,
            layer: layer.clone(),
            checksum: None,
            integrity: None,
            download: None,
        })
    };
    if is_dist_info_metadata(path) {
        let text = read_head(reader, METADATA_LIMIT)?;
        return Ok(make(Ecosystem::Pypi, python_metadata(&text), path.to_string())
            .into_iter()
            .collect());
    }
    if is_installed_package_json(path) {
        let text = read_head(reader, METADATA_LIMIT)?;
        return Ok(make(Ecosystem::Npm, npm_package(&text), path.to_string())
            .into_iter()
            .collect());
    }
    if is_pom_properties(path) {
        let text = read_head(reader, METADATA_LIMIT)?;
        return Ok(make(Ecosystem::Maven, pom_properties(&text), path.to_string())
            .into_iter()
            .collect());
    }
    if path.ends_with(".jar") && entry.size <= JAR_LIMIT {
        let mut bytes = Vec::with_capacity(entry.size as usize);
        reader.read_to_end(&mut bytes)?;
        let mut out = Vec::new();
        // A jar that is not a readable zip holds no coordinates we can trust.
        for (name, data) in super::zip::entries(&bytes, is_pom_properties, METADATA_LIMIT).unwrap_or_default()
        {
            out.extend(make(
                Ecosystem::Maven,
                pom_properties(&data),
                format!("{path}!{name}"),
            ));
        }
        return Ok(out);
    }
    Ok(Vec::new())
}

/// The fields every ecosystem gives.
struct Fields {
    /// Maven: `group/artifact`; npm: `@scope/name` or `name`.
    name: String,
    version: String,
    license: Option<String>,
}

/// `.../NAME-VERSION.dist-info/METADATA`.
fn is_dist_info_metadata(path: &str) -> bool {
    path.strip_suffix("/METADATA")
        .and_then(|dir| dir.rsplit('/').next())
        .is_some_and(|d| d.ends_with(".dist-info"))
}

/// `.../node_modules/NAME/package.json` or `.../node_modules/@SCOPE/NAME/package.json`:
/// a package's root, not a `package.json` deeper inside it.
fn is_installed_package_json(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    let Some(nm) = parts.iter().rposition(|p| *p == "node_modules") else {
        return false;
    };
    let rest = &parts[nm + 1..];
    match rest {
        [name, "package.json"] => !name.starts_with('.') && !name.starts_with('@'),
        [scope, name, "package.json"] => scope.starts_with('@') && !name.starts_with('.'),
        _ => false,
    }
}

/// `META-INF/maven/GROUP/ARTIFACT/pom.properties`, at any depth.
fn is_pom_properties(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    parts.len() >= 5
        && parts[parts.len() - 5..parts.len() - 3] == ["META-INF", "maven"]
        && parts[parts.len() - 1] == "pom.properties"
}

/// The header fields of core metadata (RFC 822 style: continuation lines
/// start with whitespace; the body after the first blank line is the description).
fn python_metadata(bytes: &[u8]) -> Option<Fields> {
    let text = String::from_utf8_lossy(bytes);
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = headers.last_mut() {
                v.push('\n');
                v.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let get = |key: &str| {
        headers
            .iter()
            .find(|(k, v)| k == key && !v.is_empty() && v != "UNKNOWN")
            .map(|(_, v)| v.clone())
    };
    Some(Fields {
        name: get("name")?,
        version: get("version")?,
        // Metadata 2.4's SPDX expression first, the free-text field otherwise.
        license: get("license-expression").or_else(|| get("license")),
    })
}

fn npm_package(bytes: &[u8]) -> Option<Fields> {
    let doc: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let name = doc.get("name")?.as_str()?.to_string();
    let version = doc.get("version")?.as_str()?.to_string();
    // `license` is an SPDX expression; the old `{ "type": ... }` form too.
    let license = match doc.get("license") {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(serde_json::Value::Object(o)) => o.get("type").and_then(|t| t.as_str()).map(str::to_string),
        _ => None,
    };
    Some(Fields {
        name,
        version,
        license,
    })
}

/// Java properties as Maven writes them: `key=value` lines, `#` comments.
fn pom_properties(bytes: &[u8]) -> Option<Fields> {
    let text = String::from_utf8_lossy(bytes);
    let mut props = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with(['#', '!']) {
            continue;
        }
        if let Some((k, v)) = line.split_once(['=', ':']) {
            props.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    let group = props.get("groupId")?;
    let artifact = props.get("artifactId")?;
    Some(Fields {
        name: format!("{group}/{artifact}"),
        version: props.get("version")?.clone(),
        license: None,
    })
}

/// The package URL (purl spec): PyPI names are lowercased with `_` as `-`,
/// npm scopes are percent-encoded `@`, Maven is `group/artifact`.
fn purl(ecosystem: Ecosystem, f: &Fields) -> String {
    let name = match ecosystem {
        Ecosystem::Pypi => encode(&f.name.to_ascii_lowercase().replace(['_', '.'], "-")),
        Ecosystem::Npm => match f.name.split_once('/') {
            Some((scope, name)) if scope.starts_with('@') => format!("{}/{}", encode(scope), encode(name)),
            _ => encode(&f.name),
        },
        Ecosystem::Maven => f.name.split('/').map(encode).collect::<Vec<_>>().join("/"),
        // Their purls are made where they are found (os_packages, bootstrap).
        Ecosystem::Deb | Ecosystem::Apk | Ecosystem::Rpm | Ecosystem::Generic => encode(&f.name),
    };
    format!("pkg:{}/{}@{}", ecosystem.as_str(), name, encode(&f.version))
}

/// Percent-encodes what a purl segment may not hold literally.
fn encode(segment: &str) -> String {
    percent_encode(segment, b"-._~+")
}

/// Percent-encodes every byte of `text` that is not ASCII alphanumeric or in `keep`.
pub(super) fn percent_encode(text: &str, keep: &[u8]) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || keep.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar of `files` (path, bytes), as a build writes it.
    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, bytes) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            builder.append_data(&mut header, path, *bytes).unwrap();
        }
        builder.into_inner().unwrap()
    }

    /// A built layer `name` whose gzip blob is written to `blob`.
    fn built_layer(blob: &std::path::Path, tar: &[u8]) -> Layer {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, tar).unwrap();
        let bytes = gz.finish().unwrap();
        std::fs::write(blob, &bytes).unwrap();
        Layer {
            descriptor: crate::image::Descriptor::new(
                crate::image::MediaFamily::Oci.layer_gzip(),
                Digest::of(&bytes),
                bytes.len() as u64,
            ),
            diff_id: Digest::of(tar),
            uncompressed_size: tar.len() as u64,
            location: crate::image::BlobLocation::File(blob.to_path_buf()),
            origin: LayerOrigin::Built {
                name: "deps".into(),
                source: "deps → /var/task".into(),
                cached: false,
                from_cache_registry: false,
            },
        }
    }

    #[test]
    fn a_layer_scanned_as_it_streamed_lists_what_its_walk_lists() {
        let dir = tempfile::tempdir().unwrap();
        let tar = tar_of(&[
            (
                "var/task/ujson-5.10.0.dist-info/METADATA",
                b"Metadata-Version: 2.1\nName: ujson\nVersion: 5.10.0\nLicense: BSD\n\n",
            ),
            (
                "var/task/node_modules/ms/package.json",
                br#"{"name":"ms","version":"2.1.3","license":"MIT"}"#,
            ),
            ("var/task/bootstrap", b"#!/bin/sh\n"),
            ("var/task/lib/big.bin", &[7u8; 300_000]),
            ("var/lib/stray", b"not a database"),
        ]);
        let blob = dir.path().join("layer.tar.gz");
        let layer = built_layer(&blob, &tar);
        let walked = scan(std::slice::from_ref(&layer)).unwrap();
        assert_eq!(walked.packages.len(), 3, "{:?}", walked.packages);
        assert!(walked.os_state);

        // Fed in odd-sized pieces, as blocks arrive.
        let streamed = scan_built_stream(std::io::BufReader::with_capacity(
            1000,
            std::io::Cursor::new(&tar[..]),
        ))
        .unwrap();
        remember_streamed(&layer.descriptor.digest, streamed);
        // The blob is gone: only the remembered scan can answer, and it
        // answers as the walk did (the layer's digest included).
        std::fs::remove_file(&blob).unwrap();
        let again = scan(std::slice::from_ref(&layer)).unwrap();
        assert_eq!(again.packages, walked.packages);
        assert_eq!(again.os_state, walked.os_state);
    }

    #[test]
    fn a_layer_with_os_package_state_or_a_broken_tar_is_left_to_the_walk() {
        let dpkg = tar_of(&[("var/lib/dpkg/status", b"Package: a\nVersion: 1\n\n")]);
        assert!(scan_built_stream(std::io::Cursor::new(&dpkg[..])).is_none());
        let release = tar_of(&[("etc/os-release", b"ID=debian\n")]);
        assert!(scan_built_stream(std::io::Cursor::new(&release[..])).is_none());
        let mut broken = tar_of(&[("var/task/a.py", b"x = 1\n")]);
        broken[100..108].copy_from_slice(b"garbage!");
        assert!(scan_built_stream(std::io::Cursor::new(&broken[..])).is_none());
        assert!(
            scan_built_stream(std::io::Cursor::new(
                &tar_of(&[("var/task/a.py", b"x = 1\n")])[..]
            ))
            .is_some()
        );
    }

    #[test]
    fn metadata_paths_are_recognised() {
        assert!(is_dist_info_metadata("var/task/ujson-5.10.0.dist-info/METADATA"));
        assert!(!is_dist_info_metadata("var/task/ujson/METADATA"));
        assert!(is_installed_package_json("var/task/node_modules/ms/package.json"));
        assert!(is_installed_package_json(
            "var/task/node_modules/@types/node/package.json"
        ));
        assert!(is_installed_package_json(
            "var/task/node_modules/a/node_modules/b/package.json"
        ));
        assert!(!is_installed_package_json(
            "var/task/node_modules/ms/lib/package.json"
        ));
        assert!(!is_installed_package_json("var/task/package.json"));
        assert!(is_pom_properties("META-INF/maven/org.example/lib/pom.properties"));
        assert!(!is_pom_properties("META-INF/maven/pom.properties"));
    }

    #[test]
    fn python_metadata_reads_headers_not_the_body() {
        let f = python_metadata(
            b"Metadata-Version: 2.1\nName: Foo_Bar\nVersion: 1.0\nLicense: Line one\n  line two\n\nName: body\n",
        )
        .unwrap();
        assert_eq!((f.name.as_str(), f.version.as_str()), ("Foo_Bar", "1.0"));
        assert_eq!(f.license.as_deref(), Some("Line one\nline two"));
        assert_eq!(purl(Ecosystem::Pypi, &f), "pkg:pypi/foo-bar@1.0");
    }

    #[test]
    fn purls_follow_the_spec() {
        let f = npm_package(br#"{"name":"@types/node","version":"20.1.0","license":"MIT"}"#).unwrap();
        assert_eq!(purl(Ecosystem::Npm, &f), "pkg:npm/%40types/node@20.1.0");
        let m = pom_properties(b"#Generated\ngroupId=org.example\nartifactId=lib\nversion=1.2\n").unwrap();
        assert_eq!(purl(Ecosystem::Maven, &m), "pkg:maven/org.example/lib@1.2");
    }
}
