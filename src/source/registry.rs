//! A base image pulled from a registry: manifest (index resolved to the
//! function's platform), then config and layers into the cache, verified.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{ImageSource, LayerVerification, SourceError, assemble_base_with, select_platform};
use crate::cache::Cache;
use crate::image::{
    Architecture, Compression, Descriptor, Digest, Document, ManifestView, MediaKind, classify,
    parse_document,
};
use crate::registry::{Client, Reference, RegistryError, RegistryOptions, fetch_blob_to_cache, mirror};
use crate::report::Reporter;

/// `[registry/]repository[:tag][@sha256:...]` as an image source.
#[derive(Debug, Clone)]
pub struct RegistrySource {
    reference: Reference,
    options: RegistryOptions,
}

impl RegistrySource {
    pub fn new(reference: Reference, options: RegistryOptions) -> Self {
        RegistrySource { reference, options }
    }

    pub fn parse(input: &str, options: RegistryOptions) -> Result<Self, RegistryError> {
        Ok(RegistrySource::new(Reference::parse(input)?, options))
    }

    pub fn reference(&self) -> &Reference {
        &self.reference
    }
}

impl ImageSource for RegistrySource {
    fn describe(&self) -> String {
        self.reference.to_string()
    }

    fn top_media_type(&self, reporter: &dyn Reporter) -> Result<Option<String>, SourceError> {
        let fetch = self.fetch_reference();
        let top = Client::new(&fetch.registry, &self.options, reporter)
            .and_then(|client| client.get_manifest(&fetch.repository, &self.reference.manifest_ref()))
            .map_err(|e| self.explain(e, reporter))?;
        let what = format!("the manifest of {}", self.describe());
        let declared = match parse_document(&top.bytes, top.media_type.as_deref(), &what)? {
            Document::Index(index) => index.media_type.or(top.media_type),
            Document::Manifest(m) => m.media_type.or(top.media_type),
        };
        Ok(declared)
    }

    fn resolve_with(
        &self,
        arch: Architecture,
        cache: &Cache,
        reporter: &dyn Reporter,
        verification: LayerVerification,
    ) -> Result<Image, SourceError> {
        let fetch = self.fetch_reference();
        self.resolve_from(&fetch, arch, cache, reporter, verification)
            .map_err(|e| self.explained(e, reporter))
    }

    /// The manifest and the config only: no layer is downloaded.
    fn diff_ids(
        &self,
        arch: Architecture,
        cache: &Cache,
        reporter: &dyn Reporter,
    ) -> Result<Vec<Digest>, SourceError> {
        let fetch = self.fetch_reference();
        let docs = self
            .documents_from(&fetch, arch, cache, reporter)
            .map_err(|e| self.explained(e, reporter))?;
        super::base::config_diff_ids(&docs.config, docs.manifest.layers.len(), &self.describe())
    }
}

impl RegistrySource {
    /// Where the requests go: the reference itself, or its `--registry-mirror`.
    fn fetch_reference(&self) -> Reference {
        match mirror::route(&self.options.mirrors, &self.reference) {
            Some((routed, _)) => routed,
            None => self.reference.clone(),
        }
    }

    fn explained(&self, error: SourceError, reporter: &dyn Reporter) -> SourceError {
        match error {
            SourceError::Registry(e) => self.explain(e, reporter),
            other => other,
        }
    }

    /// An unreachable registry becomes an error that says what to do.
    fn explain(&self, error: RegistryError, reporter: &dyn Reporter) -> SourceError {
        let routed = mirror::route(&self.options.mirrors, &self.reference).map(|(r, _)| r);
        let detail = |d: &str| reporter.detail(d);
        match mirror::explain(
            error,
            &self.reference,
            routed.as_ref(),
            &self.options.insecure,
            &detail,
        ) {
            Ok(other) => SourceError::Registry(other),
            Err(unreachable) => SourceError::BaseUnreachable(unreachable),
        }
    }

    /// The manifest for `arch` and its config, from `fetch`: everything but the layers.
    fn documents_from(
        &self,
        fetch: &Reference,
        arch: Architecture,
        cache: &Cache,
        reporter: &dyn Reporter,
    ) -> Result<Documents, SourceError> {
        let source_ref = self.describe();
        let repo = &fetch.repository;
        reporter.step(&format!("reading {source_ref}"));
        if fetch != &self.reference {
            reporter.step(&format!("fetching it from the mirror, as {fetch}"));
        }
        let client = Client::new(&fetch.registry, &self.options, reporter)?;
        let top = client.get_manifest(repo, &self.reference.manifest_ref())?;
        let what = format!("the manifest of {source_ref}");
        let (bytes, manifest) = match parse_document(&top.bytes, top.media_type.as_deref(), &what)? {
            Document::Manifest(m) => (top.bytes, m),
            Document::Index(index) => {
                let child = select_platform(&index, arch, &source_ref)?;
                reporter.detail(&format!(
                    "{source_ref}: linux/{} is {}",
                    arch.oci_name(),
                    child.digest
                ));
                let fetched = client.get_manifest(repo, &child.digest.to_string())?;
                let what = format!(
                    "the linux/{} manifest {} of {source_ref}",
                    arch.oci_name(),
                    child.digest
                );
                match parse_document(&fetched.bytes, Some(&child.media_type), &what)? {
                    Document::Manifest(m) => (fetched.bytes, m),
                    Document::Index(_) => {
                        return Err(SourceError::Invalid {
                            source_ref,
                            message: format!("{what} is itself an index; nested indexes are not supported"),
                        });
                    }
                }
            }
        };
        check_media_types(&manifest.config, &manifest.layers, &source_ref)?;
        let max = crate::bounded_read::MAX_CONFIG;
        if manifest.config.size > max {
            return Err(SourceError::Invalid {
                source_ref,
                message: format!(
                    "its config {} is {} bytes by its descriptor, more than the {max}-byte limit for an image config; refused before downloading it",
                    manifest.config.digest, manifest.config.size
                ),
            });
        }
        let config_path = fetch_blob_to_cache(&client, repo, &manifest.config, cache, reporter)?;
        let config = crate::bounded_read::read_capped(&config_path, max, "the config").map_err(|source| {
            SourceError::Io {
                path: config_path.clone(),
                source,
            }
        })?;
        Ok(Documents {
            client,
            manifest_bytes: bytes,
            manifest,
            config,
        })
    }

    /// Reads the image from `fetch` (the reference or its mirror); messages,
    /// the report and history keep the canonical name.
    fn resolve_from(
        &self,
        fetch: &Reference,
        arch: Architecture,
        cache: &Cache,
        reporter: &dyn Reporter,
        verification: LayerVerification,
    ) -> Result<Image, SourceError> {
        let source_ref = self.describe();
        let repo = &fetch.repository;
        let Documents {
            client,
            manifest_bytes,
            manifest,
            config,
        } = self.documents_from(fetch, arch, cache, reporter)?;
        fetch_layers(
            &client,
            repo,
            &manifest.layers,
            cache,
            reporter,
            self.options.parallel_downloads,
        )?;
        let locate = |d: &Descriptor| Ok(cache.blob_path(&d.digest));
        assemble_base_with(
            manifest_bytes,
            &manifest,
            config,
            &locate,
            &source_ref,
            // Where the blobs are known to exist, for a mount on push.
            Some(fetch.name()),
            cache,
            verification,
        )
    }
}

use crate::image::Image;

/// A base's manifest for one platform and its config, read before its layers.
struct Documents {
    client: Client,
    manifest_bytes: Vec<u8>,
    manifest: Box<ManifestView>,
    config: Vec<u8>,
}

/// Refuses, before any download, a config or layer type Lambda cannot run.
fn check_media_types(
    config: &Descriptor,
    layers: &[Descriptor],
    source_ref: &str,
) -> Result<(), SourceError> {
    if !matches!(classify(&config.media_type), MediaKind::Config(_)) {
        return Err(SourceError::Invalid {
            source_ref: source_ref.to_string(),
            message: format!(
                "its config has media type {}, which is not a container image config; is this an image at all (a Helm chart, an artifact)?",
                config.media_type
            ),
        });
    }
    for layer in layers {
        match classify(&layer.media_type) {
            MediaKind::Layer {
                compression: Compression::Gzip | Compression::None,
                ..
            } => {}
            _ => {
                return Err(SourceError::UnsupportedLayer {
                    source_ref: source_ref.to_string(),
                    layer: layer.digest.clone(),
                    media_type: layer.media_type.clone(),
                });
            }
        }
    }
    Ok(())
}

/// Fetches layers with up to `parallel` threads; the first error stops the rest.
fn fetch_layers(
    client: &Client,
    repo: &str,
    layers: &[Descriptor],
    cache: &Cache,
    reporter: &dyn Reporter,
    parallel: usize,
) -> Result<(), RegistryError> {
    let queue = Mutex::new(layers.iter());
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<RegistryError>> = Mutex::new(None);
    let workers = parallel.clamp(1, 16).min(layers.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                while !failed.load(Ordering::SeqCst) {
                    let next = queue.lock().expect("queue lock").next();
                    let Some(descriptor) = next else { break };
                    if let Err(e) = fetch_blob_to_cache(client, repo, descriptor, cache, reporter) {
                        failed.store(true, Ordering::SeqCst);
                        first_error.lock().expect("error lock").get_or_insert(e);
                        break;
                    }
                }
            });
        }
    });
    match first_error.into_inner().expect("error lock") {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
