//! The cache's versioned buckets, each named once.
//!
//! A bucket's directory name carries its format version (`layers-v1`): a
//! change of format gets a new version instead of misreading old entries, and
//! the directories of versions no longer current are what `cache prune`
//! removes (see [`is_outdated`]).

use std::path::Path;

/// A directory directly under the cache root that holds one kind of entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CacheBucket {
    /// `blobs-v1/sha256/<hex>`: blob bytes named by their digest.
    Blobs,
    /// Built layers: input key → blob facts (`layer::LayerRecord`).
    Layers,
    /// Per-layer-spec stat index, so unchanged files are not read to hash
    /// them: `<spec>.bin`, a binary file of its own format (`layer::cache_key`).
    LayerStat,
    /// Installed dependency sets: key → their layers.
    Deps,
    /// The installer version found on PATH, remembered by its files' stat.
    InstallerProbe,
    /// A docker-archive base's uncompressed layer → its gzipped blob.
    ArchiveGzip,
    /// What a base layer holds that the rules need (by blob digest).
    LayerFacts,
    /// Repaired base layers (`--repair-base`).
    RepairedBase,
    /// Rule findings of a whole image.
    Checks,
    /// What the rules read from one layer. v2: the nodes keep links and
    /// heads boxed aside (a v1 record would parse and lose them).
    LayerScans,
    /// `rootfs-v1/<key>/`: root filesystems `run` materialized (directories).
    Rootfs,
    /// `[system]` package layers: base, packages, manager, repositories → the layer.
    SystemLayers,
    /// The OS packages the SBOM lists for a base, by its layers' diff_ids.
    BasePackages,
    /// SBOM documents: format, subject and lockfile → the document's blob.
    SbomDocuments,
}

impl CacheBucket {
    /// Every bucket this build of lambda-img reads or writes.
    pub const ALL: [CacheBucket; 14] = [
        CacheBucket::Blobs,
        CacheBucket::Layers,
        CacheBucket::LayerStat,
        CacheBucket::Deps,
        CacheBucket::InstallerProbe,
        CacheBucket::ArchiveGzip,
        CacheBucket::LayerFacts,
        CacheBucket::RepairedBase,
        CacheBucket::Checks,
        CacheBucket::LayerScans,
        CacheBucket::Rootfs,
        CacheBucket::SystemLayers,
        CacheBucket::BasePackages,
        CacheBucket::SbomDocuments,
    ];

    /// The directory name under the cache root, version included.
    pub const fn dir_name(self) -> &'static str {
        match self {
            CacheBucket::Blobs => "blobs-v1",
            CacheBucket::Layers => "layers-v1",
            CacheBucket::LayerStat => "layer-stat-v3",
            CacheBucket::Deps => "deps-v1",
            CacheBucket::InstallerProbe => "installer-probe-v1",
            CacheBucket::ArchiveGzip => "archive-gzip-v2",
            CacheBucket::LayerFacts => "layer-facts-v1",
            CacheBucket::RepairedBase => "repaired-base-v1",
            CacheBucket::Checks => "checks-v1",
            CacheBucket::LayerScans => "layer-scans-v2",
            CacheBucket::Rootfs => "rootfs-v1",
            CacheBucket::SystemLayers => "system-layers-v1",
            CacheBucket::BasePackages => "base-packages-v1",
            CacheBucket::SbomDocuments => "sbom-documents-v1",
        }
    }

    /// Whether the bucket holds small records (`<key>.json`, the stat
    /// index's `<spec>.bin`), as opposed to blobs or directory trees.
    pub const fn holds_records(self) -> bool {
        !matches!(self, CacheBucket::Blobs | CacheBucket::Rootfs)
    }

    /// The current bucket with this directory name.
    pub fn from_dir_name(name: &str) -> Option<CacheBucket> {
        CacheBucket::ALL.into_iter().find(|b| b.dir_name() == name)
    }
}

impl AsRef<Path> for CacheBucket {
    fn as_ref(&self) -> &Path {
        Path::new(self.dir_name())
    }
}

impl std::fmt::Display for CacheBucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.dir_name())
    }
}

/// Whether `name`, a directory under the cache root, is a bucket of another
/// format version (`layers-v0`, `archive-gzip-v1`, or any `<name>-v<N>` this
/// build does not use): nothing here reads it again.
pub fn is_outdated(name: &str) -> bool {
    let Some((stem, version)) = name.rsplit_once("-v") else {
        return false;
    };
    let versioned = !stem.is_empty()
        && stem
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !version.is_empty()
        && version.bytes().all(|b| b.is_ascii_digit());
    versioned && CacheBucket::from_dir_name(name).is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bucket_is_named_once_and_old_versions_are_outdated() {
        let names: std::collections::BTreeSet<_> = CacheBucket::ALL.iter().map(|b| b.dir_name()).collect();
        assert_eq!(names.len(), CacheBucket::ALL.len());
        for b in CacheBucket::ALL {
            assert_eq!(CacheBucket::from_dir_name(b.dir_name()), Some(b));
            assert!(!is_outdated(b.dir_name()), "{b}");
        }
        for old in [
            "layers-v0",
            "layer-stat-v1",
            "layer-stat-v2",
            "layer-scans-v1",
            "archive-gzip-v1",
            "gone-bucket-v3",
            "layers-v12",
        ] {
            assert!(is_outdated(old), "{old}");
        }
        for other in [
            "tmp",
            "locks",
            "CACHEDIR.TAG",
            "layers-v",
            "-v1",
            "layers-vx",
            "My-v1",
            "x.v1",
        ] {
            assert!(!is_outdated(other), "{other}");
        }
    }
}
