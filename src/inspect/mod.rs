//! `inspect`: what an image holds (manifest, config essentials, a summary
//! per layer) and which layers two images share. Layers stream through the
//! same walker as the rules, once each.

mod render;

use serde::Serialize;

pub use render::{render_diff, render_table};

use crate::image::base_record::BaseRecord;
use crate::image::{Digest, Image};
use crate::rules::{CheckError, HistoryEntry, ImageConfig};
use crate::tar_walk::{EntryKind, WalkError, walk_layer};

/// Paths listed per layer in "largest".
const LARGEST: usize = 5;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathSize {
    pub path: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerSummary {
    pub digest: Digest,
    pub diff_id: Digest,
    pub media_type: String,
    pub compressed_size: u64,
    pub uncompressed_size: u64,
    /// Tar entries of every kind; `None` when the layer could not be read (zstd).
    pub entries: Option<u64>,
    /// Regular files (whiteout markers not counted).
    pub files: Option<u64>,
    /// Whiteout markers: paths this layer deletes from the layers below.
    pub whiteouts: Option<u64>,
    /// The largest regular files, largest first.
    pub largest: Vec<PathSize>,
    /// The history entry of this layer (empty_layer entries skipped), if any.
    pub history: Option<HistoryEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageSummary {
    pub manifest_digest: Digest,
    pub manifest_media_type: String,
    pub manifest_size: u64,
    pub config_digest: Digest,
    pub config: ImageConfig,
    pub layers: Vec<LayerSummary>,
    pub compressed_size: u64,
    pub uncompressed_size: u64,
    /// The base the image records (`org.opencontainers.image.base.*`), if any.
    pub base: Option<BaseRecord>,
    /// The packages the image's package database lists (dpkg's status file,
    /// apk's database or rpm's, as the topmost layer holding one has it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packages: Option<PackageDatabase>,
}

/// An image's package database, as found in its layers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageDatabase {
    /// `dpkg`, `apk` or `rpm`.
    pub manager: &'static str,
    /// Its path in the image.
    pub path: String,
    pub installed: Vec<crate::system::InstalledPackage>,
}

/// Package databases in text form, by image path; the larger cap is dpkg's
/// status file of a big image.
const PACKAGE_DATABASES: &[(&str, &str)] =
    &[("var/lib/dpkg/status", "dpkg"), ("lib/apk/db/installed", "apk")];
const PACKAGE_DATABASE_LIMIT: usize = 64 << 20;

fn package_database(path: &str, text: &[u8]) -> Option<PackageDatabase> {
    let (at, manager) = PACKAGE_DATABASES.iter().find(|(p, _)| *p == path)?;
    let text = String::from_utf8_lossy(text);
    let installed = match *manager {
        "dpkg" => crate::system::parse_dpkg_status(&text),
        _ => crate::system::parse_apk(&text),
    };
    Some(PackageDatabase {
        manager,
        path: format!("/{at}"),
        installed,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("image config {digest} cannot be read: {why}")]
    Config { digest: Digest, why: String },
    #[error(transparent)]
    Layer(#[from] CheckError),
    #[error("reading the image's rpm database: {0}")]
    Rpmdb(#[from] crate::rpmdb::RpmdbError),
}

/// Summarises an image, reading each layer once.
pub fn summarize(image: &Image) -> Result<ImageSummary, InspectError> {
    let config = ImageConfig::parse(image.config()).map_err(|why| InspectError::Config {
        digest: image.config_descriptor().digest.clone(),
        why,
    })?;
    let history = config.layer_history(image.layers().len());
    let mut layers = Vec::with_capacity(image.layers().len());
    // The topmost database wins: (layer number, database).
    let mut packages: Option<(usize, PackageDatabase)> = None;
    let mut rpm = crate::rpmdb::LayerFiles::default();
    let mut rpm_error = None;
    for (n, (layer, history)) in image.layers().iter().zip(history).enumerate() {
        let mut files = 0u64;
        let mut whiteouts = 0u64;
        let mut largest: Vec<PathSize> = Vec::new();
        rpm.next_layer(n);
        let walked = walk_layer(layer, |entry, reader| {
            if entry.kind == EntryKind::File && PACKAGE_DATABASES.iter().any(|(p, _)| *p == entry.path) {
                let text = crate::tar_walk::read_head(reader, PACKAGE_DATABASE_LIMIT)?;
                packages = package_database(&entry.path, &text).map(|db| (n, db));
            } else if entry.kind == EntryKind::File
                && crate::rpmdb::LayerFiles::<usize>::wants(&entry.path)
                && let Err(e) = rpm.take(&entry.path, entry.size, reader)
            {
                rpm_error.get_or_insert(e);
            }
            let name = entry.path.rsplit('/').next().unwrap_or("");
            if name.starts_with(".wh.") {
                whiteouts += 1;
            } else if entry.kind == EntryKind::File {
                files += 1;
                let smallest = largest.last().map(|p| p.size).unwrap_or(0);
                if largest.len() < LARGEST || entry.size > smallest {
                    let at = largest.partition_point(|p| p.size >= entry.size);
                    largest.insert(
                        at,
                        PathSize {
                            path: format!("/{}", entry.path),
                            size: entry.size,
                        },
                    );
                    largest.truncate(LARGEST);
                }
            }
            Ok(())
        });
        let entries = match walked {
            Ok(stats) => Some(stats.entries),
            Err(WalkError::Unreadable { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        layers.push(LayerSummary {
            digest: layer.descriptor.digest.clone(),
            diff_id: layer.diff_id.clone(),
            media_type: layer.descriptor.media_type.clone(),
            compressed_size: layer.descriptor.size,
            uncompressed_size: layer.uncompressed_size,
            files: entries.map(|_| files),
            whiteouts: entries.map(|_| whiteouts),
            entries,
            largest,
            history,
        });
    }
    if let Some(e) = rpm_error {
        return Err(e.into());
    }
    if let Some((db, n)) = rpm.read()?
        && packages.as_ref().is_none_or(|(at, _)| *at <= n)
    {
        let installed = db.packages.iter().map(crate::system::installed_rpm).collect();
        packages = Some((
            n,
            PackageDatabase {
                manager: "rpm",
                path: db.path,
                installed,
            },
        ));
    }
    Ok(ImageSummary {
        manifest_digest: image.manifest_digest().clone(),
        manifest_media_type: image.family().manifest().to_string(),
        manifest_size: image.manifest().len() as u64,
        config_digest: image.config_descriptor().digest.clone(),
        compressed_size: layers.iter().map(|l| l.compressed_size).sum(),
        uncompressed_size: image.uncompressed_size(),
        config,
        layers,
        base: BaseRecord::read(image),
        packages: packages.map(|(_, db)| db),
    })
}

/// A layer in a diff, with its 1-based position in each image that has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiffLayer {
    pub digest: Digest,
    pub position_a: Option<usize>,
    pub position_b: Option<usize>,
    pub compressed_size: u64,
    pub uncompressed_size: u64,
}

/// A config field that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    pub field: &'static str,
    pub a: String,
    pub b: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerDiff {
    pub a: Digest,
    pub b: Digest,
    /// How many leading layers the images have in common (what a pull reuses).
    pub common_prefix: usize,
    /// In a's order.
    pub shared: Vec<DiffLayer>,
    /// In a's order.
    pub only_a: Vec<DiffLayer>,
    /// In b's order.
    pub only_b: Vec<DiffLayer>,
    pub config_changes: Vec<FieldChange>,
}

/// Which layers (by compressed digest) two images share, and what config changed.
pub fn diff(a: &ImageSummary, b: &ImageSummary) -> LayerDiff {
    let position = |s: &ImageSummary, d: &Digest| s.layers.iter().position(|l| &l.digest == d).map(|i| i + 1);
    let entry = |l: &LayerSummary| DiffLayer {
        digest: l.digest.clone(),
        position_a: position(a, &l.digest),
        position_b: position(b, &l.digest),
        compressed_size: l.compressed_size,
        uncompressed_size: l.uncompressed_size,
    };
    let (shared, only_a): (Vec<_>, Vec<_>) = a.layers.iter().map(entry).partition(|d| d.position_b.is_some());
    let only_b = b
        .layers
        .iter()
        .map(entry)
        .filter(|d| d.position_a.is_none())
        .collect();
    let common_prefix = a
        .layers
        .iter()
        .zip(&b.layers)
        .take_while(|(x, y)| x.digest == y.digest)
        .count();
    let show = |v: &[String]| serde_json::to_string(v).unwrap_or_default();
    let fields: [(&'static str, String, String); 6] = [
        (
            "entrypoint",
            show(&a.config.entrypoint),
            show(&b.config.entrypoint),
        ),
        ("cmd", show(&a.config.cmd), show(&b.config.cmd)),
        (
            "workdir",
            a.config.workdir.clone().unwrap_or_default(),
            b.config.workdir.clone().unwrap_or_default(),
        ),
        ("env", show(&a.config.env), show(&b.config.env)),
        (
            "architecture",
            a.config.architecture.clone().unwrap_or_default(),
            b.config.architecture.clone().unwrap_or_default(),
        ),
        (
            "os",
            a.config.os.clone().unwrap_or_default(),
            b.config.os.clone().unwrap_or_default(),
        ),
    ];
    let config_changes = fields
        .into_iter()
        .filter(|(_, x, y)| x != y)
        .map(|(field, a, b)| FieldChange { field, a, b })
        .collect();
    LayerDiff {
        a: a.manifest_digest.clone(),
        b: b.manifest_digest.clone(),
        common_prefix,
        shared,
        only_a,
        only_b,
        config_changes,
    }
}
