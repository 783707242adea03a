//! The base's OS packages, remembered by the base's layers. Reading dpkg's
//! status (or apk's, or rpm's database) out of the base means decompressing
//! every base layer on every build with an SBOM; the list depends only on
//! those layers, so it is kept in the cache (`base-packages-v1`) under a key
//! of their diff_ids.
//!
//! It is only used when the layers this build wrote leave OS package state
//! alone (no file under a package database's directory or os-release): then
//! the image's OS packages are exactly the base's. A build that changes them
//! (`[system]` packages, a `[[layer]]` with a dpkg status) walks every layer
//! as before.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::SbomError;
use super::discover::{Ecosystem, Package, scan};
use crate::cache::{Cache, CacheBucket, CacheEntry, Found};
use crate::image::{Digest, Image, Layer, LayerOrigin};

const BUCKET: CacheBucket = CacheBucket::BasePackages;

/// The packages of `image`, as [`super::discover`] finds them, with the
/// base's OS packages from `cache` when the build's own layers cannot have
/// changed them. Returns the packages and whether the cache was used.
pub fn discover_with_cache(image: &Image, cache: &Cache) -> Result<(Vec<Package>, bool), SbomError> {
    let layers = image.layers();
    let base = layers
        .iter()
        .take_while(|l| !matches!(l.origin, LayerOrigin::Built { .. }))
        .count();
    // Layers of the base above a built one would be walked by the built
    // scan anyway; only a plain base-then-built image is split.
    let split = base > 0
        && layers[base..]
            .iter()
            .all(|l| matches!(l.origin, LayerOrigin::Built { .. }));
    if !split {
        return Ok((scan(layers)?.packages, false));
    }
    let built = scan(&layers[base..])?;
    if built.os_state {
        return Ok((scan(layers)?.packages, false));
    }
    let found = cache.get_or_build(BUCKET, &key(&layers[..base]), || {
        Ok::<_, SbomError>(BasePackages::of(scan(&layers[..base])?.packages))
    })?;
    let (Found::Hit(record) | Found::BuiltMeanwhile(record) | Found::Built(record) | Found::Shared(record)) =
        found;
    let mut packages = built.packages;
    packages.extend(record.packages.into_iter().map(Package::from));
    packages.sort();
    Ok((packages, true))
}

/// The key: the base layers' diff_ids in order (what the packages are read from).
fn key(layers: &[Layer]) -> String {
    let mut h = Sha256::new();
    h.update(b"lambda-img base packages\0");
    for l in layers {
        h.update(l.diff_id.to_string().as_bytes());
        h.update(b"\0");
    }
    hex::encode(h.finalize())
}

/// The cache record: the OS packages of a base.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct BasePackages {
    packages: Vec<OsPackage>,
}

/// One OS package as the SBOM lists it (OS packages carry no checksum).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OsPackage {
    ecosystem: Ecosystem,
    name: String,
    version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    license: Option<String>,
    purl: String,
    path: String,
    layer: Digest,
}

impl BasePackages {
    /// The OS packages among those a scan of the base found (a base's layers
    /// give nothing else: Python, npm and Maven packages are read from built
    /// layers only).
    fn of(packages: Vec<Package>) -> BasePackages {
        BasePackages {
            packages: packages
                .into_iter()
                .map(|p| OsPackage {
                    ecosystem: p.ecosystem,
                    name: p.name,
                    version: p.version,
                    license: p.license,
                    purl: p.purl,
                    path: p.path,
                    layer: p.layer,
                })
                .collect(),
        }
    }
}

impl From<OsPackage> for Package {
    fn from(p: OsPackage) -> Package {
        Package {
            ecosystem: p.ecosystem,
            name: p.name,
            version: p.version,
            license: p.license,
            purl: p.purl,
            path: p.path,
            layer: p.layer,
            checksum: None,
            integrity: None,
            download: None,
        }
    }
}

impl CacheEntry for BasePackages {
    fn blobs(&self) -> Vec<(&Digest, u64)> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::super::discover::touches_os_state;

    #[test]
    fn package_state_paths_are_told_from_function_files() {
        for p in [
            "var/lib/dpkg/status",
            "var/lib/dpkg/.wh.status",
            "var/lib/rpm/rpmdb.sqlite-wal",
            "usr/lib/sysimage/rpm/rpmdb.sqlite",
            "lib/apk/db/installed",
            "etc/os-release",
        ] {
            assert!(touches_os_state(p), "{p}");
        }
        for p in [
            "var/task/ujson-5.10.0.dist-info/METADATA",
            "opt/lib/x.so",
            "var/runtime/bootstrap",
        ] {
            assert!(!touches_os_state(p), "{p}");
        }
    }
}
