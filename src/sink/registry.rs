//! Pushing an image to a registry: blobs first (HEAD → skip, mount from the
//! base's repository when it is in the same registry, else one-request
//! upload), the manifest last so a failed push never moves the tag.

use super::{BlobReport, ImageSink, SinkError, SinkReport};
use crate::image::{BlobLocation, Descriptor, Digest, Image, LayerOrigin};
use crate::reference::OutputRef;
use crate::registry::{BlobBytes, Client, Reference, RegistryError, RegistryOptions, StatusCode};
use crate::report::Reporter;

/// `--output registry:REF`.
#[derive(Debug, Clone)]
pub struct RegistrySink {
    reference: Reference,
    options: RegistryOptions,
}

impl RegistrySink {
    /// `reference` names where to push; it must not carry a digest (the digest
    /// is the image's own).
    pub fn new(reference: Reference, options: RegistryOptions) -> Result<Self, RegistryError> {
        Ok(RegistrySink {
            reference: OutputRef::push_destination(reference)?,
            options,
        })
    }

    pub fn parse(input: &str, options: RegistryOptions) -> Result<Self, RegistryError> {
        RegistrySink::new(Reference::parse(input)?, options)
    }

    pub fn reference(&self) -> &Reference {
        &self.reference
    }
}

impl ImageSink for RegistrySink {
    fn output(&self) -> OutputRef {
        OutputRef::registry(&self.reference)
    }

    fn attach_referrer(
        &self,
        image: &Image,
        artifact: super::referrer::Artifact<'_>,
        reporter: &dyn Reporter,
    ) -> Result<Option<super::referrer::ReferrerReport>, SinkError> {
        let subject = Descriptor::new(
            manifest_media_type(image),
            image.manifest_digest().clone(),
            image.manifest().len() as u64,
        );
        super::referrer::push_to_registry(&self.reference, &self.options, &subject, artifact, reporter)
            .map(Some)
    }

    fn write(&self, image: &Image, reporter: &dyn Reporter) -> Result<SinkReport, SinkError> {
        let r = &self.reference;
        let repo = &r.repository;
        reporter.step(&format!("pushing to {r}"));
        let client = Client::new(&r.registry, &self.options, reporter)?;
        let same_registry = format!("{}/", r.registry);
        let mut blobs = Vec::new();
        for layer in image.layers() {
            let BlobLocation::File(path) = &layer.location;
            let mount_from = match &layer.origin {
                LayerOrigin::Base {
                    mount_from: Some(from),
                    ..
                } => from.strip_prefix(&same_registry),
                _ => None,
            };
            let d = &layer.descriptor;
            let seen = pushed_to(&r.registry, &d.digest, repo);
            let mount_from = mount_from.or(seen.as_deref());
            let task = format!("push-{}", d.digest.short());
            reporter.task_start(&task, &format!("pushing {}", d.digest.short()), Some(d.size));
            let action = match client.push_blob(repo, &d.digest, BlobBytes::File(path), mount_from) {
                Ok(action) => action,
                // The registry refused the bytes (DIGEST_INVALID): when they are a
                // damaged cache blob, it is evicted so the next build rebuilds it.
                Err(e) if e.status() == Some(StatusCode::BAD_REQUEST) => {
                    if !blob_matches(path, &d.digest) && crate::cache::evict_corrupt_blob(path) {
                        return Err(SinkError::CorruptCacheBlob {
                            path: path.clone(),
                            expected: d.digest.clone(),
                        });
                    }
                    return Err(e.into());
                }
                Err(e) => return Err(e.into()),
            };
            remember_push(&r.registry, &d.digest, repo);
            reporter.task_progress(&task, d.size);
            reporter.task_done(&task, &format!("{} {}", action_word(action), d.digest.short()));
            blobs.push(BlobReport {
                digest: d.digest.clone(),
                size: d.size,
                kind: "layer",
                action,
            });
        }
        let c = &image.config_descriptor();
        let action = client.push_blob(repo, &c.digest, BlobBytes::Memory(image.config()), None)?;
        reporter.detail(&format!("config {}: {}", c.digest.short(), action_word(action)));
        blobs.push(BlobReport {
            digest: c.digest.clone(),
            size: c.size,
            kind: "config",
            action,
        });
        let target = r
            .tag
            .clone()
            .unwrap_or_else(|| image.manifest_digest().to_string());
        let media_type = manifest_media_type(image);
        let digest = client.put_manifest(repo, &target, &media_type, image.manifest())?;
        let reference = r.with_digest(digest).to_string();
        reporter.step(&format!("pushed {reference}"));
        Ok(SinkReport {
            output: self.output(),
            reference: Some(reference),
            blobs: Some(blobs),
        })
    }
}

/// Where a pushed blob can be mounted from next time: see [`known_blobs`](crate::registry::known_blobs).
fn pushed_to(registry: &str, digest: &Digest, not_repo: &str) -> Option<String> {
    crate::registry::known_blobs::repository_with(registry, digest, not_repo)
}

fn remember_push(registry: &str, digest: &Digest, repo: &str) {
    crate::registry::known_blobs::remember(registry, digest, repo);
}

fn action_word(a: crate::registry::BlobAction) -> &'static str {
    match a {
        crate::registry::BlobAction::Skipped => "already present",
        crate::registry::BlobAction::Mounted => "mounted",
        crate::registry::BlobAction::Uploaded => "uploaded",
    }
}

/// The manifest's own mediaType field when it has one, else its family's.
fn manifest_media_type(image: &Image) -> String {
    serde_json::from_slice::<serde_json::Value>(image.manifest())
        .ok()
        .and_then(|v| v.get("mediaType").and_then(|m| m.as_str()).map(str::to_string))
        .unwrap_or_else(|| image.family().manifest().to_string())
}

/// Whether the file at `path` hashes to `digest`.
fn blob_matches(path: &std::path::Path, digest: &Digest) -> bool {
    std::fs::File::open(path)
        .and_then(|f| Digest::of_reader(std::io::BufReader::with_capacity(1 << 20, f)))
        .is_ok_and(|(d, _)| &d == digest)
}
