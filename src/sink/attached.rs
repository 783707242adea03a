//! Finding the SBOM attached to an image (`inspect --sbom`): the referrers
//! [`super::referrer`] writes, read back from a registry (referrers API, else
//! the `sha256-<hex>` tag) or from an OCI layout's index.json.

use std::path::Path;

use crate::bounded_read::{MAX_JSON, MAX_MANIFEST, read_capped};
use crate::cache::Cache;
use crate::image::{Architecture, Descriptor, Digest, Document, parse_document};
use crate::reference::{ImageRef, ImageRefError, ImageTarget};
use crate::registry::referrers::{Referrer, subject_of};
use crate::registry::{Client, Reference, RegistryError, RegistryOptions};
use crate::report::Reporter;
use crate::source::{OciLayoutSource, SourceError, select_platform};

/// The artifact types `inspect --sbom` recognises, preferred first.
pub const SBOM_TYPES: [&str; 2] = ["application/spdx+json", "application/vnd.cyclonedx+json"];

/// An SBOM found attached to an image.
#[derive(Debug, Clone)]
pub struct AttachedSbom {
    /// The image manifest it describes.
    pub subject: Digest,
    /// The index the image was picked from (`--arch`), when the reference named one.
    pub index: Option<Digest>,
    /// The artifact manifest holding it.
    pub referrer: Digest,
    pub artifact_type: String,
    pub document: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum AttachedError {
    #[error(
        "{image} carries no SBOM: no referrer of {subject} has an SBOM artifact type ({}); build it with lambda-img (without --no-sbom) to attach one",
        SBOM_TYPES.join(", ")
    )]
    None { image: String, subject: Digest },
    #[error(
        "{0}: a docker-archive cannot carry an SBOM referrer; inspect the registry or OCI-layout output instead"
    )]
    DockerArchive(String),
    #[error("{image}: {message}")]
    Invalid { image: String, message: String },
    #[error(
        "{image} is an index with no image for linux/{arch} (it has: {available}); pass --arch with one of them"
    )]
    NoPlatform {
        image: String,
        arch: Architecture,
        available: String,
    },
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Source(#[from] crate::source::SourceError),
}

/// The SBOM attached to `image` (`oci:DIR[:TAG]` or a registry reference);
/// for an index, to its child for `arch`.
pub fn find(
    image: &str,
    arch: Architecture,
    options: &RegistryOptions,
    cache: &Cache,
    reporter: &dyn Reporter,
) -> Result<AttachedSbom, AttachedError> {
    let parsed = match ImageRef::parse(image) {
        Ok(parsed) => parsed,
        Err(ImageRefError::Registry(e)) => return Err(RegistryError::from(e).into()),
        Err(e) => return Err(crate::source::SourceError::from(e).into()),
    };
    match parsed.target() {
        ImageTarget::Oci { path, tag, digest } => {
            in_layout(image, arch, &OciLayoutSource::new(&parsed, path, tag, digest))
        }
        ImageTarget::DockerArchive { .. } => Err(AttachedError::DockerArchive(image.to_string())),
        ImageTarget::Registry(reference) => in_registry(image, arch, reference, options, cache, reporter),
        ImageTarget::Scratch => Err(AttachedError::Invalid {
            image: image.to_string(),
            message: "the empty image carries no SBOM".into(),
        }),
    }
}

/// The image manifest `digest` (with `bytes`) stands for on `arch`: itself,
/// or the index's child for that platform. The referrers an SBOM is found
/// among are the image's, not the index's (a build attaches it to the image).
fn platform_subject(
    image: &str,
    bytes: &[u8],
    digest: Digest,
    arch: Architecture,
) -> Result<(Digest, Option<Digest>), AttachedError> {
    let Ok(Document::Index(index)) = parse_document(bytes, None, image) else {
        return Ok((digest, None));
    };
    match select_platform(&index, arch, image) {
        Ok(child) => Ok((child.digest, Some(digest))),
        Err(SourceError::NoPlatform { available, .. }) => Err(AttachedError::NoPlatform {
            image: image.to_string(),
            arch,
            available,
        }),
        Err(e) => Err(e.into()),
    }
}

/// The preferred SBOM among `referrers`.
fn pick(referrers: &[Referrer]) -> Option<&Referrer> {
    SBOM_TYPES
        .iter()
        .find_map(|t| referrers.iter().find(|r| r.artifact_type.as_deref() == Some(*t)))
}

fn in_registry(
    image: &str,
    arch: Architecture,
    reference: &Reference,
    options: &RegistryOptions,
    cache: &Cache,
    reporter: &dyn Reporter,
) -> Result<AttachedSbom, AttachedError> {
    let client = Client::new(&reference.registry, options, reporter)?;
    let repo = &reference.repository;
    let named = client.get_manifest(repo, &reference.manifest_ref())?;
    let (subject, index) = platform_subject(image, &named.bytes, named.digest, arch)?;
    let referrers = client.referrers(repo, &subject)?;
    let Some(chosen) = pick(&referrers) else {
        return Err(AttachedError::None {
            image: image.to_string(),
            subject,
        });
    };
    let manifest = client.get_manifest(repo, &chosen.digest.to_string())?;
    let layer = sbom_layer(image, &manifest.bytes, &subject)?;
    let path = client.download_blob(repo, &layer, cache, reporter)?;
    let document = read_capped(&path, MAX_JSON, "the SBOM").map_err(|e| AttachedError::Invalid {
        image: image.to_string(),
        message: format!("cannot read the downloaded SBOM {}: {e}", path.display()),
    })?;
    Ok(AttachedSbom {
        subject,
        index,
        referrer: chosen.digest.clone(),
        artifact_type: layer.media_type,
        document,
    })
}

fn in_layout(
    image: &str,
    arch: Architecture,
    source: &OciLayoutSource,
) -> Result<AttachedSbom, AttachedError> {
    let invalid = |message: String| AttachedError::Invalid {
        image: image.to_string(),
        message,
    };
    let blob = |d: &Digest| source.path.join("blobs").join(d.algorithm()).join(d.hex());
    let index_path = source.path.join("index.json");
    let bytes = read_capped(&index_path, MAX_JSON, "index.json")
        .map_err(|e| invalid(format!("cannot read {}: {e}", index_path.display())))?;
    let entries = match parse_document(&bytes, None, &index_path.display().to_string()) {
        Ok(Document::Index(index)) => index.manifests,
        Ok(Document::Manifest(_)) => return Err(invalid("its index.json is a manifest".into())),
        Err(e) => return Err(invalid(e.to_string())),
    };
    let tag_of = |d: &Descriptor| {
        d.annotations
            .as_ref()
            .and_then(|a| a.get(super::oci_layout::REF_NAME))
            .cloned()
    };
    let tagged: Vec<&Descriptor> = entries.iter().filter(|d| tag_of(d).is_some()).collect();
    let subject = match (&source.digest, &source.tag) {
        (Some(d), _) => d.clone(),
        (None, Some(tag)) => tagged
            .iter()
            .find(|d| tag_of(d).as_deref() == Some(tag))
            .map(|d| d.digest.clone())
            .ok_or_else(|| invalid(format!("its index.json has no tag {tag}")))?,
        (None, None) if tagged.len() == 1 => tagged[0].digest.clone(),
        (None, None) => return Err(invalid("name the image's tag: oci:DIR:TAG".into())),
    };
    let named = read_capped(&blob(&subject), MAX_MANIFEST, "a manifest")
        .map_err(|e| invalid(format!("cannot read manifest {subject}: {e}")))?;
    let (subject, index) = platform_subject(image, &named, subject, arch)?;
    // Untagged entries whose manifest names `subject`.
    let mut referrers = Vec::new();
    for entry in entries.iter().filter(|d| tag_of(d).is_none()) {
        let Ok(manifest) = read_capped(&blob(&entry.digest), MAX_MANIFEST, "a manifest") else {
            continue;
        };
        if let Some((of, artifact_type)) = subject_of(&manifest)
            && of == subject
        {
            referrers.push((
                Referrer {
                    media_type: entry.media_type.clone(),
                    digest: entry.digest.clone(),
                    size: entry.size,
                    artifact_type,
                    annotations: None,
                },
                manifest,
            ));
        }
    }
    let listed: Vec<Referrer> = referrers.iter().map(|(r, _)| r.clone()).collect();
    let Some(chosen) = pick(&listed) else {
        return Err(AttachedError::None {
            image: image.to_string(),
            subject,
        });
    };
    let manifest = &referrers
        .iter()
        .find(|(r, _)| r.digest == chosen.digest)
        .expect("picked from these")
        .1;
    let layer = sbom_layer(image, manifest, &subject)?;
    let path = blob(&layer.digest);
    let document = read_verified(&path, &layer).map_err(invalid)?;
    Ok(AttachedSbom {
        subject,
        index,
        referrer: chosen.digest.clone(),
        artifact_type: layer.media_type,
        document,
    })
}

/// The one layer of an SBOM artifact manifest.
fn sbom_layer(image: &str, manifest: &[u8], subject: &Digest) -> Result<Descriptor, AttachedError> {
    let invalid = |message: String| AttachedError::Invalid {
        image: image.to_string(),
        message,
    };
    match parse_document(manifest, None, "the SBOM referrer") {
        Ok(Document::Manifest(m)) => m
            .layers
            .first()
            .cloned()
            .ok_or_else(|| invalid(format!("the SBOM referrer of {subject} has no layer"))),
        Ok(Document::Index(_)) => Err(invalid(format!("the SBOM referrer of {subject} is an index"))),
        Err(e) => Err(invalid(e.to_string())),
    }
}

/// A layout blob, checked against its descriptor.
fn read_verified(path: &Path, d: &Descriptor) -> Result<Vec<u8>, String> {
    let bytes = read_capped(path, MAX_JSON, "the SBOM").map_err(|e| format!("{}: {e}", path.display()))?;
    if Digest::of(&bytes) != d.digest {
        return Err(format!(
            "{} does not match its digest {}: the layout is damaged",
            path.display(),
            d.digest
        ));
    }
    Ok(bytes)
}
