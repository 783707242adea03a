//! The SBOM of a built image: the packages lambda-img put into its layers
//! (Python distributions, npm packages, Maven jars), the base it was built on
//! and the code layer, as an SPDX 2.3 or CycloneDX 1.6 JSON document whose
//! bytes depend only on the image (fixed key order, a fixed timestamp, an id
//! derived from the image digest), so two builds of the same inputs give the
//! same SBOM.
//!
//! Packages are found by streaming the built layers' blobs from the cache with
//! the rules' tar walker: the SBOM lists what the image holds, not what the
//! source tree happens to hold.

mod base_packages;
mod cyclonedx;
mod discover;
mod license;
pub mod listing;
mod npm_lock;
pub mod os_packages;
mod spdx;
pub mod wheels;
mod zip;

use std::path::{Path, PathBuf};

use crate::image::base_record::BaseRecord;
use crate::image::{Descriptor, Digest, Image, LayerOrigin};
use crate::rules::CheckError;

pub use cyclonedx::cyclonedx_json;
pub use discover::{Ecosystem, Package, StreamedLayer, discover, remember_streamed, scan_built_stream};
pub use spdx::spdx_json;
pub use wheels::KnownArchive;

/// The document formats `--sbom-format` offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SbomFormat {
    /// SPDX 2.3 JSON.
    #[default]
    Spdx,
    /// CycloneDX 1.6 JSON.
    CycloneDx,
}

impl SbomFormat {
    /// The name `--sbom-format` takes.
    pub fn name(self) -> &'static str {
        match self {
            SbomFormat::Spdx => "spdx",
            SbomFormat::CycloneDx => "cyclonedx",
        }
    }

    /// The document's media type (for an OCI referrer's `artifactType`).
    pub fn media_type(self) -> &'static str {
        match self {
            SbomFormat::Spdx => "application/spdx+json",
            SbomFormat::CycloneDx => "application/vnd.cyclonedx+json",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SbomError {
    #[error("reading a layer for the SBOM: {0}")]
    Layer(#[from] CheckError),
    #[error("reading the image's rpm database for the SBOM: {0}; --no-sbom builds without an SBOM")]
    Rpmdb(#[from] crate::rpmdb::RpmdbError),
    #[error("cannot write the SBOM to {}: {source}; check that its directory exists and is writable", .path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("the base's package list: {0}")]
    Cache(#[from] crate::cache::CacheIoError),
}

/// The image-level facts an SBOM names besides its packages.
#[derive(Debug, Clone)]
pub struct Subject {
    /// The function's name (the document's and the root package's name).
    pub name: String,
    pub manifest_digest: Digest,
    /// The base by name and, when pinned, digest; `None` for scratch.
    pub base: Option<BaseRecord>,
    /// The code layer's compressed blob digest, when the image has one.
    pub code_layer: Option<Digest>,
    /// SOURCE_DATE_EPOCH or the build's fixed default: the document's `created`.
    pub epoch: u64,
}

impl Subject {
    /// The facts of `image` as built from a base named `base` (`scratch` or
    /// a reference), at `epoch`.
    pub fn of(name: &str, image: &Image, base: &str, epoch: u64) -> Subject {
        let base = BaseRecord::read(image).or_else(|| {
            let scratch = crate::reference::ImageRef::parse(base).is_ok_and(|r| r.is_scratch());
            (!scratch).then(|| BaseRecord {
                name: base.to_string(),
                digest: None,
            })
        });
        // `code` is plan::CODE_LAYER; plan sits above this module, so the
        // name is written out (the SBOM tests fail if the two drift apart).
        let code_layer = image
            .layers()
            .iter()
            .rev()
            .find(|l| matches!(&l.origin, LayerOrigin::Built { name, .. } if name == "code"))
            .map(|l| l.descriptor.digest.clone());
        Subject {
            name: name.to_string(),
            manifest_digest: image.manifest_digest().clone(),
            base,
            code_layer,
            epoch,
        }
    }
}

/// The SBOM of `image` in `format` (packages discovered in its built layers).
pub fn document(format: SbomFormat, subject: &Subject, image: &Image) -> Result<Vec<u8>, SbomError> {
    document_with(format, subject, image, Known::default(), None)
}

/// What the build knows about its installed packages besides the layers:
/// npm's `package-lock.json` it installed from (integrity and resolved URL)
/// and the wheels pip installed (sha256 and URL, from pip's report).
#[derive(Debug, Clone, Copy, Default)]
pub struct Known<'a> {
    pub npm_lock: Option<&'a [u8]>,
    pub wheels: &'a [KnownArchive],
}

/// [`document`], with what the build knows about the installed packages
/// added to them, and the base's OS packages kept in `cache` (read from the
/// base's layers once per base).
pub fn document_with(
    format: SbomFormat,
    subject: &Subject,
    image: &Image,
    known: Known<'_>,
    cache: Option<&crate::cache::Cache>,
) -> Result<Vec<u8>, SbomError> {
    let mut packages = match cache {
        Some(cache) => base_packages::discover_with_cache(image, cache)?.0,
        None => discover(image)?,
    };
    if let Some(lock) = known.npm_lock {
        npm_lock::enrich(&mut packages, lock);
    }
    wheels::enrich(&mut packages, known.wheels);
    Ok(match format {
        SbomFormat::Spdx => spdx_json(subject, &packages),
        SbomFormat::CycloneDx => cyclonedx_json(subject, &packages),
    })
}

/// The format version of remembered documents: bumped when the same image
/// would give other bytes (a new package kind, a changed document layout).
const DOCUMENT_MEMO_VERSION: u32 = 1;

/// What the cache keeps of a document: its bytes are the blob `digest`.
#[derive(serde::Serialize, serde::Deserialize)]
struct DocumentMemo {
    digest: Digest,
}

/// [`document_with`], remembered in `cache` by everything its bytes depend
/// on: the format, the subject (whose manifest digest names every layer and
/// the config) and the lockfile. A rebuild of an unchanged image would
/// otherwise inflate and walk every layer again to list the same packages
/// (most of a no-op rebuild of a tree of many small files).
///
/// With a second level behind `cache` (`--cache-registry`), a document this
/// cache lacks is asked of it by the same key, and one made here is shared
/// through it: the machines of a CI fleet that build the same image make
/// its SBOM once (on the one that built the image first), and their
/// documents are the same bytes since the key names everything they hold.
/// A shared document is trusted as the shared layers are, and checked
/// against its digest; a fault there (warned about by the level) only
/// means the document is made here.
pub fn document_remembered(
    format: SbomFormat,
    subject: &Subject,
    image: &Image,
    known: Known<'_>,
    cache: &crate::cache::Cache,
    reporter: &dyn crate::report::Reporter,
) -> Result<Vec<u8>, SbomError> {
    let key = memo_key(format, subject, &known);
    let bucket = crate::cache::CacheBucket::SbomDocuments;
    let kept = |digest: &Digest| {
        std::fs::read(cache.blob_path(digest))
            .ok()
            .filter(|bytes| Digest::of(bytes) == *digest)
    };
    if let Some(memo) = cache.get_record::<DocumentMemo>(bucket, &key)
        && let Some(bytes) = kept(&memo.digest)
    {
        return Ok(bytes);
    }
    let level = cache.second_level();
    if let Some(level) = level
        && let Some(digest) = level.fetch_document(cache, bucket, &key, reporter)
        && let Some(bytes) = kept(&digest)
    {
        // Only saves work, as below.
        let _ = cache.put_record(bucket, &key, &DocumentMemo { digest });
        return Ok(bytes);
    }
    let bytes = document_with(format, subject, image, known, Some(cache))?;
    let digest = Digest::of(&bytes);
    // Only saves work: a failed write costs a walk of the layers next time.
    let remember = || -> std::io::Result<()> {
        let mut tmp = cache.temp_file()?;
        std::io::Write::write_all(&mut tmp, &bytes)?;
        cache.commit_blob(tmp, &digest)?;
        cache.put_record(
            bucket,
            &key,
            &DocumentMemo {
                digest: digest.clone(),
            },
        )
    };
    if remember().is_ok()
        && let Some(level) = level
    {
        let document = Descriptor::new(format.media_type(), digest, bytes.len() as u64);
        level.publish_document(cache, bucket, &key, &document, reporter);
    }
    Ok(bytes)
}

fn memo_key(format: SbomFormat, subject: &Subject, known: &Known<'_>) -> String {
    let base = subject.base.as_ref();
    let text = serde_json::json!({
        "version": DOCUMENT_MEMO_VERSION,
        "format": format.name(),
        "name": subject.name,
        "manifest": subject.manifest_digest,
        "base": base.map(|b| &b.name),
        "base_digest": base.and_then(|b| b.digest.as_ref()),
        "code_layer": subject.code_layer,
        "epoch": subject.epoch,
        "lock": known.npm_lock.map(Digest::of),
        "wheels": known.wheels,
    })
    .to_string();
    Digest::of(text.as_bytes()).hex().to_string()
}

/// Writes the SBOM of `image` to `path` whole or not at all.
pub fn write(path: &Path, format: SbomFormat, subject: &Subject, image: &Image) -> Result<(), SbomError> {
    write_bytes(path, &document(format, subject, image)?)
}

/// Writes an SBOM document to `path` whole or not at all (mode 0644).
pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<(), SbomError> {
    crate::atomic_file::write(path, bytes, crate::atomic_file::Mode::Fixed(0o644)).map_err(|source| {
        SbomError::Write {
            path: path.to_path_buf(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Cache;
    use crate::image::{BlobLocation, Layer, MediaFamily};

    /// An image whose one built layer is the gzip blob at `blob`.
    fn image(blob: &Path) -> Image {
        let bytes = std::fs::read(blob).unwrap_or_default();
        let layer = Layer {
            descriptor: Descriptor::new(
                MediaFamily::Oci.layer_gzip(),
                Digest::of(&bytes),
                bytes.len() as u64,
            ),
            diff_id: Digest::of(b"tar"),
            uncompressed_size: 0,
            location: BlobLocation::File(blob.to_path_buf()),
            origin: LayerOrigin::Built {
                name: "code".into(),
                source: "src → /var/task".into(),
                cached: false,
                from_cache_registry: false,
            },
        };
        Image::new(MediaFamily::Oci, b"{}".to_vec(), vec![layer], None)
    }

    #[test]
    fn a_remembered_document_is_not_made_again_and_a_damaged_one_is() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path().join("cache")).unwrap();
        // An empty tar (two zero blocks), gzipped.
        let blob = dir.path().join("layer.tar.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, &[0u8; 1024]).unwrap();
        std::fs::write(&blob, gz.finish().unwrap()).unwrap();
        let image = image(&blob);
        let subject = Subject::of("f", &image, "scratch", 0);
        let made = document_remembered(
            SbomFormat::Spdx,
            &subject,
            &image,
            Known::default(),
            &cache,
            &crate::report::Silent,
        )
        .unwrap();
        assert_eq!(made, document(SbomFormat::Spdx, &subject, &image).unwrap());

        // The layer is gone: only the remembered document can answer.
        std::fs::remove_file(&blob).unwrap();
        assert!(document(SbomFormat::Spdx, &subject, &image).is_err());
        let again = document_remembered(
            SbomFormat::Spdx,
            &subject,
            &image,
            Known::default(),
            &cache,
            &crate::report::Silent,
        )
        .unwrap();
        assert_eq!(again, made);
        // Another format or lockfile is another document.
        assert!(
            document_remembered(
                SbomFormat::CycloneDx,
                &subject,
                &image,
                Known::default(),
                &cache,
                &crate::report::Silent
            )
            .is_err()
        );
        assert!(
            document_remembered(
                SbomFormat::Spdx,
                &subject,
                &image,
                Known {
                    npm_lock: Some(b"{}"),
                    wheels: &[]
                },
                &cache,
                &crate::report::Silent
            )
            .is_err()
        );

        // A damaged blob is not trusted: the document is made again.
        std::fs::write(cache.blob_path(&Digest::of(&made)), b"damaged").unwrap();
        assert!(
            document_remembered(
                SbomFormat::Spdx,
                &subject,
                &image,
                Known::default(),
                &cache,
                &crate::report::Silent
            )
            .is_err()
        );
    }
}

#[cfg(test)]
mod document_bytes {
    use super::npm_lock::Integrity;
    use super::*;

    /// One package of every shape the documents write differently.
    fn packages() -> Vec<Package> {
        let layer = Digest::of(b"layer");
        let one = |ecosystem, name: &str, license: Option<&str>, purl: &str, path: &str| Package {
            ecosystem,
            name: name.into(),
            version: "1.0".into(),
            license: license.map(str::to_string),
            purl: purl.into(),
            path: path.into(),
            layer: layer.clone(),
            checksum: None,
            integrity: None,
            download: None,
        };
        let integrity = Integrity {
            algorithm: "SHA512",
            hex: "ab".repeat(64),
        };
        let mut locked = one(
            Ecosystem::Npm,
            "@types/node",
            Some("MIT"),
            "pkg:npm/%40types/node@1.0",
            "var/task/node_modules/@types/node/package.json",
        );
        locked.integrity = Some(integrity.clone());
        locked.download = Some("https://registry.npmjs.org/@types/node/-/node-1.0.tgz".into());
        let mut boot = one(
            Ecosystem::Generic,
            "bootstrap",
            None,
            "pkg:generic/bootstrap",
            "var/task/bootstrap",
        );
        boot.checksum = Some(Digest::of(b"bootstrap"));
        let mut both = boot.clone();
        both.integrity = Some(integrity);
        vec![
            locked,
            boot,
            both,
            one(
                Ecosystem::Pypi,
                "Foo_Bar",
                Some("Copyright \"Foo\"\nRedistribution ..."),
                "pkg:pypi/foo-bar@1.0",
                "var/task/Foo_Bar-1.0.dist-info/METADATA",
            ),
            one(
                Ecosystem::Maven,
                "org.example/lib",
                Some("MIT OR Apache-2.0"),
                "pkg:maven/org.example/lib@1.0",
                "var/task/lib/lib.jar!META-INF/maven/org.example/lib/pom.properties",
            ),
            one(
                Ecosystem::Deb,
                "libc6",
                Some("BSD License"),
                "pkg:deb/debian/libc6@1.0",
                "var/lib/dpkg/status",
            ),
        ]
    }

    #[test]
    fn every_kind_of_package_gives_the_documents_their_fixed_bytes() {
        let subject = Subject {
            name: "Fn".into(),
            manifest_digest: Digest::of(b"manifest"),
            base: Some(BaseRecord {
                name: "127.0.0.1:5000/lambda/python:3.12".into(),
                digest: Some(Digest::of(b"base")),
            }),
            code_layer: Some(Digest::of(b"code")),
            epoch: 315_532_800,
        };
        let bare = Subject {
            base: None,
            code_layer: None,
            ..subject.clone()
        };
        let digests: Vec<String> = [&subject, &bare]
            .into_iter()
            .flat_map(|s| {
                [
                    Digest::of(&spdx_json(s, &packages())).hex().to_string(),
                    Digest::of(&cyclonedx_json(s, &packages())).hex().to_string(),
                ]
            })
            .collect();
        // The bytes the documents had when they were built as JSON value
        // trees (before 2026-12-02): the typed writers must keep them.
        assert_eq!(
            digests,
            [
                "dd0654239dcfe1e3c47c4a9870613b8ccd3c4613efc883e2970acdea24dd8ec3",
                "81959420419f68b5e78b93a049409527b32d8c7b900f016b673c1931a365c617",
                "20e3463225a2fa96abf15e1a14bb09e06f69b56c829b5242588d2abe7e682772",
                "5b2c7e1d344703b5e205168fb88464299836bd72709f46f1de79483f4c9f24ec",
            ]
        );
    }
}
