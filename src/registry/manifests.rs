//! Manifests: GET/HEAD with Accept for both families and indexes, PUT of exact bytes.

use ureq::http::{Method, Response, StatusCode};

use super::RegistryError;
use super::client::{Client, Req, ReqBody, pull_scope, push_scope, read_small};
use crate::image::Digest;

/// Every manifest and index type lambda-img can read, for `Accept`.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// Manifests above this size are refused (registries cap them at 4 MiB).
const MAX_MANIFEST: u64 = crate::bounded_read::MAX_MANIFEST;

/// A manifest or index as the registry served it.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    /// The exact bytes; `digest` is their sha256.
    pub bytes: Vec<u8>,
    pub digest: Digest,
    /// The Content-Type the registry sent.
    pub media_type: Option<String>,
}

impl Client {
    /// Fetches the manifest `reference` (a tag or a digest) of `repository`.
    /// When `reference` is a digest, the bytes are checked against it.
    pub fn get_manifest(&self, repository: &str, reference: &str) -> Result<FetchedManifest, RegistryError> {
        let what = format!("manifest {repository}:{reference}");
        let req = Req::new(
            Method::GET,
            self.url(&format!("/v2/{repository}/manifests/{reference}")),
            vec![pull_scope(repository)],
            what.clone(),
        )
        .header("accept", MANIFEST_ACCEPT);
        let mut resp = self.send(req)?;
        if resp.status() != StatusCode::OK {
            return Err(self.status_error(resp, &what, 1));
        }
        let media_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(';').next().unwrap_or(s).trim().to_string());
        let header_digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.parse::<Digest>().ok());
        let promised = resp
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let too_large = || RegistryError::DocumentTooLarge {
            registry: self.registry().to_string(),
            what: what.clone(),
            limit: MAX_MANIFEST,
        };
        if promised.is_some_and(|n| n > MAX_MANIFEST) {
            return Err(too_large());
        }
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(MAX_MANIFEST)
            .read_to_vec()
            .map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(_) => too_large(),
                e => RegistryError::Unreachable {
                    registry: self.registry().to_string(),
                    what: what.clone(),
                    attempts: 1,
                    message: e.to_string(),
                },
            })?;
        let digest = Digest::of(&bytes);
        let expected = reference.parse::<Digest>().ok().or(header_digest);
        if let Some(expected) = expected
            && expected != digest
        {
            return Err(RegistryError::DigestMismatch {
                registry: self.registry().to_string(),
                what,
                expected,
                actual: digest,
            });
        }
        Ok(FetchedManifest {
            bytes,
            digest,
            media_type,
        })
    }

    /// The digest of manifest `reference` without downloading it, when the
    /// registry says (`Docker-Content-Digest`); `None` when it does not.
    pub fn head_manifest(&self, repository: &str, reference: &str) -> Result<Option<Digest>, RegistryError> {
        let what = format!("manifest {repository}:{reference}");
        let req = Req::new(
            Method::HEAD,
            self.url(&format!("/v2/{repository}/manifests/{reference}")),
            vec![pull_scope(repository)],
            what.clone(),
        )
        .header("accept", MANIFEST_ACCEPT);
        let resp = self.send(req)?;
        if resp.status() != StatusCode::OK {
            return Err(self.status_error(resp, &what, 1));
        }
        Ok(resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.parse().ok()))
    }

    /// Pushes `bytes` exactly as given as manifest `reference` (tag or digest).
    /// Returns the digest of the bytes (checked against the registry's answer).
    pub fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest, RegistryError> {
        let digest = Digest::of(bytes);
        let what = format!("manifest {repository}:{reference}");
        let mut resp = self.put_manifest_bytes(repository, reference, media_type, bytes, &what)?;
        if let Some(answered) = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.parse::<Digest>().ok())
            && answered != digest
        {
            return Err(RegistryError::Protocol {
                registry: self.registry().to_string(),
                message: format!("{what}: stored as {answered}, but the bytes sent have digest {digest}"),
            });
        }
        let _ = read_small(&mut resp);
        Ok(digest)
    }

    /// PUTs manifest `bytes` as `repository:reference`; the registry's answer
    /// once it stored them (201 or 200).
    ///
    /// A manifest is pushed only after each blob it names was uploaded or
    /// found, so a refusal naming a blob unknown together with an unreadable
    /// digest ([`blob_link_being_rewritten`]) is the registry's passing state,
    /// not ours: the PUT is sent again, with the client's backoff.
    pub(crate) fn put_manifest_bytes(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
        what: &str,
    ) -> Result<Response<ureq::Body>, RegistryError> {
        let attempts = self.retry_policy().attempts.max(1);
        for attempt in 0..attempts {
            let req = Req::new(
                Method::PUT,
                self.url(&format!("/v2/{repository}/manifests/{reference}")),
                vec![push_scope(repository)],
                what,
            )
            .header("content-type", media_type)
            .body(ReqBody::Bytes(bytes));
            let resp = self.send(req)?;
            let status = resp.status();
            if status == StatusCode::CREATED || status == StatusCode::OK {
                return Ok(resp);
            }
            let error = self.status_error(resp, what, attempt + 1);
            if attempt + 1 == attempts || !blob_link_being_rewritten(&error) {
                return Err(error);
            }
            std::thread::sleep(self.retry_policy().delay(attempt, None));
        }
        unreachable!("the last attempt always returns")
    }
}

/// Whether a manifest PUT was refused the way Distribution 2.8 refuses it
/// while another client commits one of its blobs to the same repository:
/// 400 with `DIGEST_INVALID` and `MANIFEST_BLOB_UNKNOWN`. Its filesystem
/// driver rewrites the repository's link to the blob in place (truncate, then
/// write), and the manifest's check reads an empty link in between (its
/// digest does not parse). The link is whole again a moment later.
fn blob_link_being_rewritten(error: &RegistryError) -> bool {
    error.status() == Some(StatusCode::BAD_REQUEST)
        && error
            .diagnostics()
            .is_some_and(|d| d.has_code("MANIFEST_BLOB_UNKNOWN") && d.has_code("DIGEST_INVALID"))
}

/// The digest `reference` currently points at (its tag resolved; a digest is
/// returned as is). Used to tell a user what to pin. Asks with HEAD and falls
/// back to GET when the registry does not send `Docker-Content-Digest`.
pub fn resolve_digest(
    reference: &super::Reference,
    options: &super::RegistryOptions,
    reporter: &dyn crate::report::Reporter,
) -> Result<Digest, RegistryError> {
    if let Some(d) = &reference.digest {
        return Ok(d.clone());
    }
    let client = Client::new(&reference.registry, options, reporter)?;
    let tag = reference.manifest_ref();
    if let Some(d) = client.head_manifest(&reference.repository, &tag)? {
        return Ok(d);
    }
    Ok(client.get_manifest(&reference.repository, &tag)?.digest)
}

#[cfg(test)]
mod tests {
    #[test]
    fn accept_names_every_type() {
        use crate::image::{DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST};
        for t in [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST] {
            assert!(super::MANIFEST_ACCEPT.contains(t));
        }
    }

    #[test]
    fn only_a_blob_unknown_with_an_unreadable_digest_is_sent_again() {
        use super::super::{Diagnostic, Diagnostics};
        use super::{RegistryError, StatusCode};
        let refusal = |status: u16, codes: &[&str]| RegistryError::Status {
            registry: "r".into(),
            what: "manifest fn:v1".into(),
            status: StatusCode::from_u16(status).unwrap(),
            attempts: 1,
            diagnostics: Diagnostics(
                codes
                    .iter()
                    .map(|c| Diagnostic {
                        code: c.to_string(),
                        message: String::new(),
                    })
                    .collect(),
            ),
        };
        let both = ["DIGEST_INVALID", "MANIFEST_BLOB_UNKNOWN"];
        assert!(super::blob_link_being_rewritten(&refusal(400, &both)));
        // A blob that is missing, or bytes that do not match their digest: ours to fix.
        assert!(!super::blob_link_being_rewritten(&refusal(
            400,
            &["MANIFEST_BLOB_UNKNOWN"]
        )));
        assert!(!super::blob_link_being_rewritten(&refusal(
            400,
            &["DIGEST_INVALID"]
        )));
        assert!(!super::blob_link_being_rewritten(&refusal(500, &both)));
    }
}
