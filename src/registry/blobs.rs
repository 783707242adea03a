//! Blobs: verified downloads into the cache, HEAD checks, cross-repository
//! mounts and one-request uploads (ECR mishandles multi-chunk PATCH uploads).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::Instant;

use ureq::http::{Method, StatusCode};

use super::RegistryError;
use super::client::{Client, Req, ReqBody, encode, pull_scope, push_scope, read_small};
use crate::cache::Cache;
use crate::image::{Descriptor, Digest, HashingWriter};
use crate::report::Reporter;

/// What a push did with one blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobAction {
    /// The registry already had it (HEAD said so).
    Skipped,
    /// Mounted from another repository of the same registry.
    Mounted,
    Uploaded,
}

/// Where the bytes of a blob to push are.
#[derive(Debug, Clone, Copy)]
pub enum BlobBytes<'a> {
    File(&'a Path),
    Memory(&'a [u8]),
}

impl Client {
    /// Whether `repository` has blob `digest` (HEAD).
    pub fn blob_exists(&self, repository: &str, digest: &Digest, push: bool) -> Result<bool, RegistryError> {
        let what = format!("blob {digest} in {repository}");
        let scope = if push {
            push_scope(repository)
        } else {
            pull_scope(repository)
        };
        let resp = self.send(Req::new(
            Method::HEAD,
            self.url(&format!("/v2/{repository}/blobs/{digest}")),
            vec![scope],
            what.clone(),
        ))?;
        match resp.status() {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.status_error(resp, &what, 1)),
        }
    }

    /// Deletes blob `digest` from `repository` (a registry may keep its data
    /// for other repositories, or for good); `Ok(false)` when it had none.
    pub fn delete_blob(&self, repository: &str, digest: &Digest) -> Result<bool, RegistryError> {
        let what = format!("deletion of blob {digest} from {repository}");
        let resp = self.send(Req::new(
            Method::DELETE,
            self.url(&format!("/v2/{repository}/blobs/{digest}")),
            vec![push_scope(repository)],
            what.clone(),
        ))?;
        match resp.status() {
            StatusCode::ACCEPTED | StatusCode::OK | StatusCode::NO_CONTENT => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.status_error(resp, &what, 1)),
        }
    }

    /// Downloads blob `descriptor` of `repository` into the cache, verifying its
    /// size and digest while streaming. Broken connections are retried; bytes
    /// that do not match are refused and never committed.
    pub fn download_blob(
        &self,
        repository: &str,
        descriptor: &Descriptor,
        cache: &Cache,
        reporter: &dyn Reporter,
    ) -> Result<PathBuf, RegistryError> {
        let digest = &descriptor.digest;
        let what = format!("blob {digest} of {repository}");
        let policy = self.retry_policy().clone();
        let attempts = policy.attempts.max(1);
        let cache_io = |source| RegistryError::Io {
            path: cache.root().join("tmp"),
            source,
        };
        let task = digest.short().to_string();
        reporter.task_start(
            &task,
            &format!("pulling {}", digest.short()),
            Some(descriptor.size),
        );
        let mut last_error = String::new();
        let limits = self.limits;
        let started = Instant::now();
        let mut tried = 0;
        for attempt in 0..attempts {
            // No new attempt once the deadline has passed (one always runs).
            if attempt > 0 && started.elapsed() >= limits.deadline {
                break;
            }
            tried = attempt + 1;
            let mut resp = self.send(
                Req::new(
                    Method::GET,
                    self.url(&format!("/v2/{repository}/blobs/{digest}")),
                    vec![pull_scope(repository)],
                    what.clone(),
                )
                .streamed(),
            )?;
            if resp.status() != StatusCode::OK {
                return Err(self.status_error(resp, &what, attempt + 1));
            }
            let promised = resp
                .headers()
                .get("content-length")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let tmp = cache.temp_file().map_err(cache_io)?;
            let mut out = HashingWriter::new(tmp);
            let mut reader = resp.body_mut().as_reader();
            let mut buf = vec![0u8; 256 * 1024];
            let mut broken = None;
            // A trickle never trips the idle timeout: the body must also
            // average `min_rate` over each window of `idle`.
            let mut window = (Instant::now(), 0u64);
            let window_min = (limits.min_rate as f64 * limits.idle.as_secs_f64()) as u64;
            loop {
                if window.0.elapsed() >= limits.idle {
                    if window.1 < window_min {
                        broken = Some(format!(
                            "the transfer made {} bytes in {:.0} s, below the minimum of {} bytes/s",
                            window.1,
                            window.0.elapsed().as_secs_f64(),
                            limits.min_rate
                        ));
                        break;
                    }
                    window = (Instant::now(), 0);
                }
                match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        window.1 += n as u64;
                        if out.bytes_written() + n as u64 > descriptor.size {
                            return Err(RegistryError::TooLarge {
                                registry: self.registry().to_string(),
                                what,
                                expected: descriptor.size,
                            });
                        }
                        out.write_all(&buf[..n]).map_err(cache_io)?;
                        reporter.task_progress(&task, n as u64);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        broken = Some(e.to_string());
                        break;
                    }
                }
            }
            let received = out.bytes_written();
            // Everything the descriptor promises arrived: the digest decides,
            // whatever the connection did after (or claimed in Content-Length).
            if received == descriptor.size {
                broken = None;
            } else if broken.is_none() {
                broken = Some("the connection ended early".into());
            }
            if let Some(message) = broken {
                let sent_promise = match promised {
                    Some(p) if p != descriptor.size => format!(", the registry announced {p}"),
                    _ => String::new(),
                };
                last_error = format!(
                    "{message}: received {received} of the {} bytes the descriptor gives{sent_promise} ({})",
                    descriptor.size,
                    limits.describe()
                );
                reporter.detail(&format!("{what}: {last_error}; retrying"));
                if attempt + 1 < attempts {
                    sleep(policy.delay(attempt, None));
                }
                continue;
            }
            let (tmp, (actual, _)) = out.finish();
            if &actual != digest {
                // `tmp` is dropped here, which deletes it: nothing enters the cache.
                return Err(RegistryError::DigestMismatch {
                    registry: self.registry().to_string(),
                    what,
                    expected: digest.clone(),
                    actual,
                });
            }
            let path = cache.commit_blob(tmp, digest).map_err(cache_io)?;
            reporter.task_done(
                &task,
                &format!("pulled {} ({} bytes)", digest.short(), descriptor.size),
            );
            return Ok(path);
        }
        Err(RegistryError::Unreachable {
            registry: self.registry().to_string(),
            what,
            attempts: tried,
            message: last_error,
        })
    }

    /// Pushes one blob: HEAD (skip when present), then a mount from `mount_from`
    /// (a repository of this registry) when given, else one-request upload.
    /// A refused mount falls back to an upload.
    pub fn push_blob(
        &self,
        repository: &str,
        digest: &Digest,
        bytes: BlobBytes<'_>,
        mount_from: Option<&str>,
    ) -> Result<BlobAction, RegistryError> {
        if self.blob_exists(repository, digest, true)? {
            return Ok(BlobAction::Skipped);
        }
        let mut session = None;
        if let Some(from) = mount_from.filter(|f| *f != repository) {
            match self.try_mount(repository, digest, from) {
                Ok(MountResult::Mounted) => return Ok(BlobAction::Mounted),
                Ok(MountResult::Upload(location)) => session = Some(location),
                // A mount is an optimisation: any refusal means "upload instead".
                Err(_) => {}
            }
        }
        // A session can be spent by a failed PUT: one fresh session on failure.
        let first = self.upload(repository, digest, bytes, session);
        match first {
            Err(RegistryError::Unauthorized { .. })
            | Err(RegistryError::ForeignAuth { .. })
            | Err(RegistryError::HostNotFound { .. })
            | Ok(_) => first.map(|_| BlobAction::Uploaded),
            Err(_) => self
                .upload(repository, digest, bytes, None)
                .map(|_| BlobAction::Uploaded),
        }
    }

    fn try_mount(&self, repository: &str, digest: &Digest, from: &str) -> Result<MountResult, RegistryError> {
        let what = format!("mount of blob {digest} from {from} into {repository}");
        let url = self.url(&format!(
            "/v2/{repository}/blobs/uploads/?mount={}&from={}",
            encode(&digest.to_string()),
            encode(from)
        ));
        let mut resp = self.send(
            Req::new(
                Method::POST,
                url,
                vec![push_scope(repository), pull_scope(from)],
                what.clone(),
            )
            .body(ReqBody::Bytes(&[])),
        )?;
        match resp.status() {
            StatusCode::CREATED => {
                let _ = read_small(&mut resp);
                Ok(MountResult::Mounted)
            }
            StatusCode::ACCEPTED => match location(&resp) {
                Some(l) => Ok(MountResult::Upload(self.resolve_location(&l))),
                None => Err(self.missing_location(&what)),
            },
            _ => Err(self.status_error(resp, &what, 1)),
        }
    }

    /// POST (unless a session is given) then PUT `?digest=` with the whole blob.
    fn upload(
        &self,
        repository: &str,
        digest: &Digest,
        bytes: BlobBytes<'_>,
        session: Option<String>,
    ) -> Result<(), RegistryError> {
        let what = format!("upload of blob {digest} to {repository}");
        let scopes = vec![push_scope(repository)];
        let location = match session {
            Some(l) => l,
            None => {
                let resp = self.send(
                    Req::new(
                        Method::POST,
                        self.url(&format!("/v2/{repository}/blobs/uploads/")),
                        scopes.clone(),
                        what.clone(),
                    )
                    .body(ReqBody::Bytes(&[])),
                )?;
                if resp.status() != StatusCode::ACCEPTED {
                    return Err(self.status_error(resp, &what, 1));
                }
                match location(&resp) {
                    Some(l) => self.resolve_location(&l),
                    None => return Err(self.missing_location(&what)),
                }
            }
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let url = format!("{location}{sep}digest={}", encode(&digest.to_string()));
        let body = match bytes {
            BlobBytes::File(p) => ReqBody::File(p),
            BlobBytes::Memory(b) => ReqBody::Bytes(b),
        };
        let mut resp = self.send(
            Req::new(Method::PUT, url, scopes, what.clone())
                .header("content-type", "application/octet-stream")
                .body(body),
        )?;
        match resp.status() {
            StatusCode::CREATED | StatusCode::NO_CONTENT => {
                let _ = read_small(&mut resp);
                Ok(())
            }
            _ => Err(self.status_error(resp, &what, 1)),
        }
    }

    fn missing_location(&self, what: &str) -> RegistryError {
        RegistryError::Protocol {
            registry: self.registry().to_string(),
            message: format!("{what}: the answer has no Location header"),
        }
    }
}

enum MountResult {
    Mounted,
    Upload(String),
}

fn location(resp: &ureq::http::Response<ureq::Body>) -> Option<String> {
    resp.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Makes sure blob `descriptor` is in the cache, verified: a cached entry is
/// re-hashed, a corrupt one is deleted and fetched again. Holds the cache lock
/// `blob-<hex>` while downloading so concurrent builds fetch each blob once.
pub fn fetch_blob_to_cache(
    client: &Client,
    repository: &str,
    descriptor: &Descriptor,
    cache: &Cache,
    reporter: &dyn Reporter,
) -> Result<PathBuf, RegistryError> {
    let path = cache.blob_path(&descriptor.digest);
    // A blob this run committed (pulled or built) and nothing touched since
    // is not read again: a fleet's functions share their base's blobs. (Its
    // mtime is the commit's: touching it would only make it look changed.)
    if cache.unchanged_since_commit(&path, &descriptor.digest) {
        return Ok(path);
    }
    if cached_blob_ok(&path, descriptor) {
        touch(&path);
        return Ok(path);
    }
    let _lock = cache
        .lock(&format!("blob-{}", descriptor.digest.hex()))
        .map_err(|source| RegistryError::Io {
            path: cache.root().join("locks"),
            source,
        })?;
    // Another build (or this run's prefetch) may have fetched it while we
    // waited for the lock.
    if cache.unchanged_since_commit(&path, &descriptor.digest) || cached_blob_ok(&path, descriptor) {
        reporter.detail(&format!("blob {} found in the cache", descriptor.digest.short()));
        return Ok(path);
    }
    if path.exists() {
        reporter.warn(&format!(
            "cached blob {} is corrupt; deleting it and fetching it again",
            descriptor.digest
        ));
        crate::cache::evict_corrupt_blob(&path);
    }
    client.download_blob(repository, descriptor, cache, reporter)
}

/// Marks a cache entry as recently used (`cache prune` drops the least recently used).
fn touch(path: &Path) {
    if let Ok(f) = std::fs::File::options().append(true).open(path) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
}

/// Whether the file at `path` has exactly the size and digest of `descriptor`.
fn cached_blob_ok(path: &Path, descriptor: &Descriptor) -> bool {
    match std::fs::metadata(path) {
        Ok(m) if m.len() == descriptor.size => {}
        _ => return false,
    }
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    matches!(Digest::of_reader(std::io::BufReader::with_capacity(1 << 20, file)), Ok((d, _)) if d == descriptor.digest)
}
