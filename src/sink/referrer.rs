//! Attaching an artifact (the SBOM) to the image an output holds, as an OCI
//! 1.1 referrer: an artifact manifest with the empty config, the document as
//! its one layer and the image manifest as its `subject`. The image's tag is
//! never touched, so it stays one image manifest (an index there is what
//! Lambda refuses).
//!
//! - A registry gets the blobs, then the manifest by digest. When the answer
//!   carries `OCI-Subject` the registry's referrers API lists it; otherwise
//!   the `sha256-<hex>` index tag of the referrers tag schema is updated.
//! - An OCI layout gets the blobs and an untagged index.json entry (as the
//!   image-layout spec has referrers), replacing referrers of images the
//!   layout no longer holds.
//! - A docker-archive has nowhere to put one.

use std::collections::HashSet;
use std::io::Write;

use serde::Serialize;

use super::oci_layout::{OciLayoutSink, as_oci};
use super::{SinkError, SinkOptions, SinkReport};
use crate::image::{Descriptor, Digest, Image, OCI_MANIFEST};
use crate::registry::referrers::{
    EMPTY_BLOB, Referrer, artifact_manifest, empty_descriptor, subject_of, tag_schema_tag,
};
use crate::registry::{BlobBytes, Client, Reference, RegistryOptions};
use crate::report::Reporter;

/// What to attach: the document's bytes and its media type (the manifest's
/// `artifactType` and the layer's `mediaType`).
#[derive(Debug, Clone, Copy)]
pub struct Artifact<'a> {
    pub artifact_type: &'a str,
    pub bytes: &'a [u8],
}

impl Artifact<'_> {
    fn descriptor(&self) -> Descriptor {
        Descriptor::new(
            self.artifact_type,
            Digest::of(self.bytes),
            self.bytes.len() as u64,
        )
    }
}

/// Where a referrer went, for the build report.
#[derive(Debug, Clone, Serialize)]
pub struct ReferrerReport {
    /// The output as the user wrote it.
    pub output: String,
    /// The image manifest it refers to.
    pub subject: Digest,
    /// The artifact manifest's digest.
    pub manifest: Digest,
    /// `referrers-api`, `tag-schema` or `index.json`.
    pub indexed_by: &'static str,
    /// The tag schema's `REPO:sha256-<hex>` when that was used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

/// Attaches `artifact` to the image each of `outputs` holds. Outputs that
/// cannot carry a referrer (docker-archive) are named in a detail line.
pub fn attach_to_outputs(
    outputs: &[SinkReport],
    image: &Image,
    artifact: Artifact<'_>,
    options: &SinkOptions,
    reporter: &dyn Reporter,
) -> Result<Vec<ReferrerReport>, SinkError> {
    let mut reports = Vec::new();
    for output in outputs {
        let sink = super::open_ref(&output.output, options)?;
        match sink.attach_referrer(image, artifact, reporter)? {
            Some(report) => reports.push(report),
            None => reporter.detail(&format!(
                "{}: a docker-archive cannot carry an OCI referrer, so the SBOM is not attached there (write it with --sbom FILE)",
                output.output
            )),
        }
    }
    Ok(reports)
}

/// Pushes the referrer of `subject` (the manifest just pushed) to `reference`'s repository.
pub(super) fn push_to_registry(
    reference: &Reference,
    options: &RegistryOptions,
    subject: &Descriptor,
    artifact: Artifact<'_>,
    reporter: &dyn Reporter,
) -> Result<ReferrerReport, SinkError> {
    let repo = &reference.repository;
    let client = Client::new(&reference.registry, options, reporter)?;
    let empty = empty_descriptor();
    client.push_blob(repo, &empty.digest, BlobBytes::Memory(EMPTY_BLOB), None)?;
    let blob = artifact.descriptor();
    client.push_blob(repo, &blob.digest, BlobBytes::Memory(artifact.bytes), None)?;
    let manifest = artifact_manifest(artifact.artifact_type, &blob, subject);
    let (digest, indexed) = client.put_referrer_manifest(repo, &manifest)?;
    let by_api = indexed.as_ref() == Some(&subject.digest);
    let tag = match by_api {
        true => None,
        false => {
            let entry = Referrer {
                media_type: OCI_MANIFEST.to_string(),
                digest: digest.clone(),
                size: manifest.len() as u64,
                artifact_type: Some(artifact.artifact_type.to_string()),
                annotations: None,
            };
            client.add_to_referrers_tag(repo, &subject.digest, entry)?;
            Some(format!(
                "{}/{repo}:{}",
                reference.registry,
                tag_schema_tag(&subject.digest)
            ))
        }
    };
    let how = match &tag {
        None => "the registry's referrers API lists it".to_string(),
        Some(tag) => format!("no referrers API: the index tag {tag} lists it"),
    };
    reporter.step(&format!(
        "attached the SBOM to {}/{repo}@{} as {digest} ({how})",
        reference.registry, subject.digest
    ));
    Ok(ReferrerReport {
        output: crate::reference::OutputRef::registry(reference).to_string(),
        subject: subject.digest.clone(),
        manifest: digest,
        indexed_by: if by_api { "referrers-api" } else { "tag-schema" },
        tag,
    })
}

/// Adds the referrer of `image` (as the layout holds it: OCI media types) to
/// the layout's index.json.
pub(super) fn add_to_layout(
    sink: &OciLayoutSink,
    image: &Image,
    artifact: Artifact<'_>,
    reporter: &dyn Reporter,
) -> Result<ReferrerReport, SinkError> {
    let converted = as_oci(image);
    let subject = converted.as_ref().unwrap_or(image).manifest_descriptor();
    let (mut entries, _lock) = sink.prepare()?;
    let blob = artifact.descriptor();
    sink.put_bytes(EMPTY_BLOB, &empty_descriptor().digest)?;
    sink.put_bytes(artifact.bytes, &blob.digest)?;
    let manifest = artifact_manifest(artifact.artifact_type, &blob, &subject);
    let digest = Digest::of(&manifest);
    sink.put_bytes(&manifest, &digest)?;
    // Referrers whose image left the index go with it (their blobs to gc).
    let subjects: Vec<Option<Digest>> = entries.iter().map(|e| sink.subject_of_entry(e)).collect();
    let images: HashSet<Digest> = entries
        .iter()
        .zip(&subjects)
        .filter(|(_, s)| s.is_none())
        .map(|(e, _)| e.digest.clone())
        .collect();
    let mut keep = subjects
        .iter()
        .map(|s| s.as_ref().is_none_or(|s| images.contains(s)));
    entries.retain(|e| keep.next().unwrap_or(true) && e.digest != digest);
    // image-spec 1.1: an index's descriptor of an artifact manifest carries
    // its `artifactType`, so a reader can pick the SBOM without opening it.
    entries.push(Descriptor {
        artifact_type: Some(artifact.artifact_type.to_string()),
        ..Descriptor::new(OCI_MANIFEST, digest.clone(), manifest.len() as u64)
    });
    let index = crate::image::write_index(&entries);
    sink.write_atomically(&sink.dir.join("index.json"), |f| f.write_all(&index))?;
    if sink.gc {
        sink.collect_garbage(&entries, reporter);
    }
    reporter.detail(&format!(
        "{}: the SBOM is referrer {digest} of {}",
        super::ImageSink::describe(sink),
        subject.digest
    ));
    Ok(ReferrerReport {
        output: super::ImageSink::describe(sink),
        subject: subject.digest,
        manifest: digest,
        indexed_by: "index.json",
        tag: None,
    })
}

impl OciLayoutSink {
    /// The subject of an untagged index.json entry that is an artifact
    /// manifest; `None` for images (and anything unreadable, which is kept).
    fn subject_of_entry(&self, entry: &Descriptor) -> Option<Digest> {
        if entry
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(super::oci_layout::REF_NAME))
            || entry.media_type != OCI_MANIFEST
        {
            return None;
        }
        let path = self.dir.join("blobs").join("sha256").join(entry.digest.hex());
        let bytes =
            crate::bounded_read::read_capped(&path, crate::bounded_read::MAX_MANIFEST, "a manifest").ok()?;
        subject_of(&bytes).map(|(d, _)| d)
    }
}
