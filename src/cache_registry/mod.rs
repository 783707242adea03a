//! `--cache-registry REPO`: the layer and dependency caches shared by every
//! machine that can reach one registry repository, as the second level
//! behind the local cache ([`crate::cache::SecondLevel`]).
//!
//! After a layer or dependency set is built, its blobs and a record (see
//! [`record`]) are pushed to REPO, tagged by the input key. Before building
//! one, a build whose local cache misses asks REPO for that tag; on a hit the
//! blobs are pulled (verified by digest, and by diff_id and size after
//! decompression) into the local cache and nothing is installed or
//! compressed. Blobs known to be in REPO are mounted, not uploaded again,
//! when the image is pushed to another repository of the same registry.
//! The SBOM document of a built image is shared the same way, as a document
//! record (one blob, verified by digest only) under the key the local cache
//! remembers it by, so a machine that builds the same image does not walk
//! its layers again to make the same bytes.
//!
//! The cache registry is never a reason for a build to fail or to differ: a
//! registry that is down or too slow is warned about once and not asked
//! again this run; a record that is missing blobs, has blobs of other bytes,
//! is malformed or of another format version is warned about and the layer
//! is built; a write refused with 401/403 turns the cache read-only for the
//! run. Credentials are those of REPO's host (Docker's config, helpers, or
//! `--username`), sent to that host only, as for every registry.

mod prefetch;
pub mod record;
mod repair;

pub use prefetch::Prefetch;

use std::collections::BTreeSet;
use std::io::Read;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::cache::{Cache, CacheBucket, Inflated, SecondLevel, SharedLayer, SharedRecord};
use crate::image::{Descriptor, Digest, HashingReader, OCI_LAYER_GZIP, OCI_MANIFEST};
use crate::registry::{
    BlobBytes, Client, Reference, RegistryError, RegistryOptions, fetch_blob_to_cache, known_blobs,
};
use crate::report::Reporter;

/// How long the cache registry may take for one request with its retries:
/// a stalled cache costs a build at most about this once, then it is not
/// asked again (the build's own `--registry-timeout` still bounds it below).
const CACHE_REGISTRY_DEADLINE: Duration = Duration::from_secs(20);
/// Tries of one request to the cache registry.
const CACHE_REGISTRY_ATTEMPTS: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum CacheRegistryError {
    #[error(
        "--cache-registry {input:?}: {reason}; give a repository such as 123456789012.dkr.ecr.eu-west-1.amazonaws.com/lambda-img-cache or 127.0.0.1:5000/cache"
    )]
    Reference { input: String, reason: String },
}

/// The cache registry of one run.
#[derive(Debug)]
pub struct CacheRegistry {
    registry: String,
    repository: String,
    client: Client,
    /// Set by `--cache-registry-readonly`, or by a refused write.
    readonly: AtomicBool,
    /// Set once the registry did not answer: not asked again this run.
    down: AtomicBool,
    /// Warnings already given, so each is given once.
    warned: Mutex<BTreeSet<String>>,
    /// Blobs this run found served with other bytes than their digests: a
    /// push of the layer replaces them (see `repair`).
    damaged: Mutex<BTreeSet<Digest>>,
    /// Records looked up by [`CacheRegistry::prefetch`] before a build asked.
    ahead: prefetch::AheadOfBuild,
}

/// Which cache registry a build uses: `--cache-registry` (opened once per
/// run, shared by every function of `build --recursive`), else the
/// manifest's `[cache] registry`.
#[derive(Debug, Clone, Default)]
pub struct CacheRegistryChoice {
    pub given: Option<std::sync::Arc<CacheRegistry>>,
    /// `--cache-registry-readonly`: also makes the manifest's read-only.
    pub readonly: bool,
}

impl CacheRegistryChoice {
    /// The cache registry of a build of a function with `settings`.
    pub fn for_function(
        &self,
        settings: &crate::manifest::CacheSettings,
        options: &RegistryOptions,
        reporter: &dyn Reporter,
    ) -> Result<Option<std::sync::Arc<CacheRegistry>>, CacheRegistryError> {
        if let Some(given) = &self.given {
            return Ok(Some(given.clone()));
        }
        let Some(input) = &settings.registry else {
            return Ok(None);
        };
        let readonly = self.readonly || settings.readonly;
        Ok(Some(std::sync::Arc::new(CacheRegistry::open(
            input, readonly, options, reporter,
        )?)))
    }
}

impl CacheRegistry {
    /// The cache registry `input` (`host/repository`, no tag or digest).
    /// `readonly`: look records up, never push (untrusted builds).
    pub fn open(
        input: &str,
        readonly: bool,
        options: &RegistryOptions,
        reporter: &dyn Reporter,
    ) -> Result<CacheRegistry, CacheRegistryError> {
        let fail = |reason: String| CacheRegistryError::Reference {
            input: input.to_string(),
            reason,
        };
        let reference = Reference::parse(input).map_err(|e| fail(e.reason))?;
        if reference.tag.is_some() || reference.digest.is_some() {
            return Err(fail(
                "it names a repository only: records are tagged by their input keys".into(),
            ));
        }
        let deadline = options.deadline.min(CACHE_REGISTRY_DEADLINE);
        let mut options = options.clone().with_registry_timeout(deadline);
        // The cache is an optimisation: one retry, then build instead.
        options.retry.attempts = options.retry.attempts.min(CACHE_REGISTRY_ATTEMPTS);
        let client = match Client::new(&reference.registry, &options, reporter) {
            Ok(c) => c,
            Err(e) => {
                reporter.warn(&format!(
                    "cache registry {input}: cannot use its credentials ({e}); reading it anonymously"
                ));
                Client::with_credentials(&reference.registry, &options, None)
            }
        };
        Ok(CacheRegistry {
            registry: reference.registry,
            repository: reference.repository,
            client,
            readonly: AtomicBool::new(readonly),
            down: AtomicBool::new(false),
            warned: Mutex::new(BTreeSet::new()),
            damaged: Mutex::new(BTreeSet::new()),
            ahead: Default::default(),
        })
    }

    /// `host/repository`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    pub fn is_readonly(&self) -> bool {
        self.readonly.load(Ordering::Relaxed)
    }

    fn warn_once(&self, reporter: &dyn Reporter, message: String) {
        let mut warned = self.warned.lock().unwrap_or_else(|e| e.into_inner());
        if warned.insert(message.clone()) {
            reporter.warn(&message);
        }
    }

    /// A fault of the registry itself (not of one record): an unreachable
    /// one is not asked again; the warning says what happens instead.
    fn registry_fault(&self, reporter: &dyn Reporter, doing: &str, error: &RegistryError) {
        let down = matches!(
            error,
            RegistryError::Unreachable { .. } | RegistryError::HostNotFound { .. }
        ) || matches!(error, RegistryError::Status { status, .. } if status.is_server_error());
        if down {
            self.down.store(true, Ordering::Relaxed);
            self.warn_once(
                reporter,
                format!(
                    "cache registry {} failed while {doing} ({error}); building locally and not using it again in this run",
                    self.name()
                ),
            );
        } else {
            self.warn_once(
                reporter,
                format!(
                    "cache registry {} failed while {doing} ({error}); building locally",
                    self.name()
                ),
            );
        }
    }

    fn record_fault(&self, reporter: &dyn Reporter, tag: &str, why: &str) {
        self.warn_once(
            reporter,
            format!(
                "cache registry {}: record {tag} not used: {why}; building it here instead",
                self.name()
            ),
        );
    }

    /// The manifest of record `tag` (from the prefetch when it looked it
    /// up); `None` when there is none or the registry failed (said so).
    fn look_up(&self, tag: &str, reporter: &dyn Reporter) -> Option<Vec<u8>> {
        let looked_up = match self.ahead.take(tag) {
            Some(prefetch::Ahead::Record(bytes)) => Ok(bytes),
            Some(prefetch::Ahead::Missing) => Err(RegistryError::NotFound {
                registry: self.registry.clone(),
                what: format!("manifest {}:{tag}", self.repository),
                diagnostics: Default::default(),
            }),
            None => self.client.get_manifest(&self.repository, tag).map(|m| m.bytes),
        };
        match looked_up {
            Ok(bytes) => Some(bytes),
            Err(RegistryError::NotFound { .. }) => {
                reporter.detail(&format!("cache registry {}: no record {tag}", self.name()));
                None
            }
            Err(e @ RegistryError::DigestMismatch { .. }) => {
                self.record_fault(reporter, tag, &e.to_string());
                None
            }
            Err(e) => {
                self.registry_fault(reporter, &format!("looking up record {tag}"), &e);
                None
            }
        }
    }

    /// Pulls the blob `desc` into `cache`, verified by digest and size;
    /// `Err` says why not (empty: a fault of the registry, already said).
    fn pull_blob(
        &self,
        cache: &Cache,
        desc: &Descriptor,
        reporter: &dyn Reporter,
    ) -> Result<std::path::PathBuf, String> {
        match fetch_blob_to_cache(&self.client, &self.repository, desc, cache, reporter) {
            Ok(p) => Ok(p),
            Err(RegistryError::NotFound { .. }) => {
                Err(format!("its blob {} is missing from the registry", desc.digest))
            }
            Err(e @ (RegistryError::DigestMismatch { .. } | RegistryError::TooLarge { .. })) => {
                self.damaged
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(desc.digest.clone());
                Err(format!("its blob was refused: {e}"))
            }
            Err(e) => {
                self.registry_fault(reporter, &format!("pulling blob {}", desc.digest), &e);
                Err(String::new())
            }
        }
    }

    /// Pushes the blob `digest` (of `size` bytes, in `cache`) to the cache
    /// repository: mounted when another repository of the registry has it,
    /// put back when this run found it damaged there.
    fn push_blob(
        &self,
        cache: &Cache,
        digest: &Digest,
        size: u64,
        reporter: &dyn Reporter,
    ) -> Result<(), RegistryError> {
        let repo = &self.repository;
        let damaged = self
            .damaged
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(digest);
        if damaged {
            self.replace_damaged_blob(cache, digest, size, reporter)?;
        } else {
            let path = cache.blob_path(digest);
            let mount_from = known_blobs::repository_with(&self.registry, digest, repo);
            self.client
                .push_blob(repo, digest, BlobBytes::File(&path), mount_from.as_deref())?;
        }
        known_blobs::remember(&self.registry, digest, repo);
        Ok(())
    }

    /// Says how a push of record `tag` went (a refused write turns the
    /// cache read-only for the run).
    fn pushed(&self, tag: &str, result: Result<(), RegistryError>, reporter: &dyn Reporter) {
        match result {
            Ok(()) => reporter.detail(&format!("cache registry {}: pushed record {tag}", self.name())),
            Err(e @ (RegistryError::Unauthorized { .. } | RegistryError::ForeignAuth { .. })) => {
                self.readonly.store(true, Ordering::Relaxed);
                self.warn_once(
                    reporter,
                    format!(
                        "cache registry {} refused a write ({e}); reading it only for the rest of this run (--cache-registry-readonly says so up front)",
                        self.name()
                    ),
                );
            }
            Err(e) => self.registry_fault(reporter, &format!("pushing record {tag}"), &e),
        }
    }

    /// Pulls every blob of `record` into `cache`, verified, showing
    /// `inflated` each one's tar on the way; `Err` says why not.
    fn pull_blobs(
        &self,
        cache: &Cache,
        record: &SharedRecord,
        reporter: &dyn Reporter,
        inflated: &Inflated<'_>,
    ) -> Result<(), String> {
        for (n, layer) in record.layers.iter().enumerate() {
            let desc = Descriptor::new(OCI_LAYER_GZIP, layer.digest.clone(), layer.size);
            let path = self.pull_blob(cache, &desc, reporter)?;
            // The digest proves the bytes are the blob the record names, not
            // that the record's diff_id and size describe them: a lie there
            // would put a wrong config into the image.
            let read = |tar: &mut dyn Read| inflated(n, &layer.digest, tar);
            if let Err(why) = check_uncompressed(&path, layer, read) {
                crate::cache::evict_corrupt_blob(&path);
                return Err(why);
            }
            known_blobs::remember(&self.registry, &layer.digest, &self.repository);
        }
        Ok(())
    }

    fn push_record(
        &self,
        cache: &Cache,
        tag: &str,
        bucket: CacheBucket,
        key: &str,
        record: &SharedRecord,
        reporter: &dyn Reporter,
    ) -> Result<(), RegistryError> {
        for layer in &record.layers {
            self.push_blob(cache, &layer.digest, layer.size, reporter)?;
        }
        self.put_record(tag, &record::encode(bucket.dir_name(), key, record))
    }

    /// Puts the record manifest `bytes` (its blobs pushed) under `tag`.
    fn put_record(&self, tag: &str, bytes: &[u8]) -> Result<(), RegistryError> {
        let repo = &self.repository;
        let empty = record::empty_descriptor();
        self.client
            .push_blob(repo, &empty.digest, BlobBytes::Memory(record::EMPTY_BLOB), None)?;
        self.client.put_manifest(repo, tag, OCI_MANIFEST, bytes)?;
        Ok(())
    }
}

impl SecondLevel for CacheRegistry {
    fn fetch(
        &self,
        cache: &Cache,
        bucket: CacheBucket,
        key: &str,
        accept: &dyn Fn(&SharedRecord) -> bool,
        reporter: &dyn Reporter,
    ) -> Option<SharedRecord> {
        self.fetch_inflating(cache, bucket, key, accept, reporter, &|_, _, _| {})
    }

    fn fetch_inflating(
        &self,
        cache: &Cache,
        bucket: CacheBucket,
        key: &str,
        accept: &dyn Fn(&SharedRecord) -> bool,
        reporter: &dyn Reporter,
        inflated: &Inflated<'_>,
    ) -> Option<SharedRecord> {
        if self.down.load(Ordering::Relaxed) {
            return None;
        }
        let tag = record::tag(bucket.dir_name(), key)?;
        let manifest = self.look_up(&tag, reporter)?;
        let record = match record::decode(&manifest, bucket.dir_name(), key) {
            Ok(r) => r,
            Err(fault) => {
                self.record_fault(reporter, &tag, &fault.to_string());
                return None;
            }
        };
        if !accept(&record) {
            reporter.detail(&format!(
                "cache registry {}: record {tag} does not fit this build (made by {})",
                self.name(),
                record.installer.as_deref().unwrap_or("another build")
            ));
            return None;
        }
        match self.pull_blobs(cache, &record, reporter, inflated) {
            Ok(()) => Some(record),
            Err(why) => {
                if !why.is_empty() {
                    self.record_fault(reporter, &tag, &why);
                }
                None
            }
        }
    }

    fn publish(
        &self,
        cache: &Cache,
        bucket: CacheBucket,
        key: &str,
        record: &SharedRecord,
        reporter: &dyn Reporter,
    ) {
        if self.is_readonly() || self.down.load(Ordering::Relaxed) {
            return;
        }
        let Some(tag) = record::tag(bucket.dir_name(), key) else {
            return;
        };
        let pushed = self.push_record(cache, &tag, bucket, key, record, reporter);
        self.pushed(&tag, pushed, reporter);
    }

    fn fetch_document(
        &self,
        cache: &Cache,
        bucket: CacheBucket,
        key: &str,
        reporter: &dyn Reporter,
    ) -> Option<Digest> {
        if self.down.load(Ordering::Relaxed) {
            return None;
        }
        let tag = record::tag(bucket.dir_name(), key)?;
        let manifest = self.look_up(&tag, reporter)?;
        let document = match record::decode_document(&manifest, bucket.dir_name(), key) {
            Ok(d) => d,
            Err(fault) => {
                self.record_fault(reporter, &tag, &fault.to_string());
                return None;
            }
        };
        match self.pull_blob(cache, &document, reporter) {
            Ok(_) => {
                known_blobs::remember(&self.registry, &document.digest, &self.repository);
                Some(document.digest)
            }
            Err(why) => {
                if !why.is_empty() {
                    self.record_fault(reporter, &tag, &why);
                }
                None
            }
        }
    }

    fn publish_document(
        &self,
        cache: &Cache,
        bucket: CacheBucket,
        key: &str,
        document: &Descriptor,
        reporter: &dyn Reporter,
    ) {
        if self.is_readonly() || self.down.load(Ordering::Relaxed) {
            return;
        }
        let Some(tag) = record::tag(bucket.dir_name(), key) else {
            return;
        };
        let pushed = self
            .push_blob(cache, &document.digest, document.size, reporter)
            .and_then(|()| self.put_record(&tag, &record::encode_document(bucket.dir_name(), key, document)));
        self.pushed(&tag, pushed, reporter);
    }
}

/// Decompresses the blob at `path` and checks it is the tar `layer` says
/// (diff_id and size), showing `read` the tar first: whatever it reads is
/// hashed on the way and the rest is read after it, so the blob is
/// inflated once. Layers of several gzip members are read whole.
fn check_uncompressed(
    path: &std::path::Path,
    layer: &SharedLayer,
    read: impl FnOnce(&mut dyn Read),
) -> Result<(), String> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot read its blob {}: {e}", layer.digest))?;
    let gz = flate2::read::MultiGzDecoder::new(std::io::BufReader::with_capacity(1 << 20, file));
    let mut tar = FirstError::new(HashingReader::new(gz));
    read(&mut tar);
    std::io::copy(&mut tar, &mut std::io::sink())
        .map_err(|e| format!("its blob {} is not a gzip stream: {e}", layer.digest))?;
    let (diff_id, size) = tar.inner.finish();
    if diff_id != layer.diff_id || size != layer.uncompressed_size {
        return Err(format!(
            "its blob {} uncompresses to {diff_id} ({size} bytes), not the {} ({} bytes) the record says",
            layer.digest, layer.diff_id, layer.uncompressed_size
        ));
    }
    Ok(())
}

/// A reader that, once it has failed, fails again with the same error, so
/// an error the hand-over to [`check_uncompressed`]'s `read` met (and may
/// have dropped) is not taken for the end of the stream afterwards.
struct FirstError<R> {
    inner: R,
    failed: Option<(std::io::ErrorKind, String)>,
}

impl<R: Read> FirstError<R> {
    fn new(inner: R) -> FirstError<R> {
        FirstError { inner, failed: None }
    }
}

impl<R: Read> Read for FirstError<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let Some((kind, message)) = &self.failed {
            return Err(std::io::Error::new(*kind, message.clone()));
        }
        self.inner.read(buf).inspect_err(|e| {
            if e.kind() != std::io::ErrorKind::Interrupted {
                self.failed = Some((e.kind(), e.to_string()));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Digest;

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, bytes).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn a_blob_is_used_only_when_it_uncompresses_to_what_the_record_says() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let tar = vec![7u8; 5000];
        let blob = gz(&tar);
        std::fs::write(&path, &blob).unwrap();
        let layer = SharedLayer {
            name: "code".into(),
            digest: Digest::of(&blob),
            size: blob.len() as u64,
            diff_id: Digest::of(&tar),
            uncompressed_size: tar.len() as u64,
        };
        // Whatever the hand-over reads (nothing, a part, all) is the tar,
        // and the check still sees every byte of it.
        check_uncompressed(&path, &layer, |_| {}).unwrap();
        check_uncompressed(&path, &layer, |t| {
            let mut head = [0u8; 100];
            t.read_exact(&mut head).unwrap();
            assert_eq!(head[..], tar[..100]);
        })
        .unwrap();
        check_uncompressed(&path, &layer, |t| {
            let mut all = Vec::new();
            t.read_to_end(&mut all).unwrap();
            assert_eq!(all, tar);
        })
        .unwrap();
        let lie = SharedLayer {
            diff_id: Digest::of(b"another tar"),
            ..layer.clone()
        };
        assert!(
            check_uncompressed(&path, &lie, |_| {})
                .unwrap_err()
                .contains("not the")
        );
        let short = SharedLayer {
            uncompressed_size: 4999,
            ..layer.clone()
        };
        assert!(check_uncompressed(&path, &short, |_| {}).is_err());
        std::fs::write(&path, b"not gzip").unwrap();
        assert!(
            check_uncompressed(&path, &layer, |t| {
                // The hand-over meets the error and drops it; the check does not.
                let _ = t.read_to_end(&mut Vec::new());
            })
            .unwrap_err()
            .contains("not a gzip stream")
        );
    }

    #[test]
    fn only_a_repository_names_a_cache_registry() {
        let silent = crate::report::Silent;
        let opts = RegistryOptions::default();
        let ok = CacheRegistry::open("127.0.0.1:5000/team/cache", false, &opts, &silent).unwrap();
        assert_eq!(ok.name(), "127.0.0.1:5000/team/cache");
        assert!(!ok.is_readonly());
        assert!(
            CacheRegistry::open("127.0.0.1:5000/cache", true, &opts, &silent)
                .unwrap()
                .is_readonly()
        );
        for bad in [
            "127.0.0.1:5000/cache:latest",
            "",
            "127.0.0.1:5000/cache@sha256:00",
        ] {
            let e = CacheRegistry::open(bad, false, &opts, &silent)
                .unwrap_err()
                .to_string();
            assert!(e.contains("--cache-registry") && e.contains("repository"), "{e}");
        }
    }

    #[test]
    fn an_unreachable_registry_is_asked_once_and_warned_about_once() {
        #[derive(Default)]
        struct Warnings(Mutex<Vec<String>>);
        impl Reporter for Warnings {
            fn step(&self, _: &str) {}
            fn task_start(&self, _: &str, _: &str, _: Option<u64>) {}
            fn task_progress(&self, _: &str, _: u64) {}
            fn task_done(&self, _: &str, _: &str) {}
            fn warn(&self, m: &str) {
                self.0.lock().unwrap().push(m.to_string());
            }
        }
        // A port nothing listens on: connections are refused at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let opts = RegistryOptions {
            retry: crate::registry::RetryPolicy::quick(),
            ..RegistryOptions::default()
        };
        let warnings = Warnings::default();
        let reg = CacheRegistry::open(&format!("127.0.0.1:{port}/cache"), false, &opts, &warnings).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let key = "ab".repeat(32);
        assert!(
            reg.fetch(&cache, CacheBucket::Layers, &key, &|_| true, &warnings)
                .is_none()
        );
        assert!(
            reg.fetch(&cache, CacheBucket::Layers, &key, &|_| true, &warnings)
                .is_none()
        );
        let record = SharedRecord {
            installer: None,
            layers: Vec::new(),
            extra: None,
        };
        reg.publish(&cache, CacheBucket::Layers, &key, &record, &warnings);
        let w = warnings.0.lock().unwrap();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("not using it again"), "{}", w[0]);
    }
}
