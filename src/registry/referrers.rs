//! OCI 1.1 referrers: artifact manifests (an SBOM) whose `subject` names an
//! image manifest. A registry with the referrers API answers
//! `GET /v2/<name>/referrers/<digest>` and says so by sending `OCI-Subject`
//! when such a manifest is pushed; one without it (Distribution 2.8, ECR
//! before 2024) is served by the referrers tag schema: an index tagged
//! `sha256-<hex>` listing the artifacts of manifest `sha256:<hex>`, kept up to
//! date by read-modify-write. Either way the image's own tag keeps naming the
//! single image manifest Lambda accepts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use ureq::http::Method;

use super::RegistryError;
use super::client::{Client, Req, pull_scope, read_small};
use crate::image::{Descriptor, Digest, OCI_INDEX, OCI_MANIFEST};

/// The config of an artifact manifest that has none (image-spec 1.1).
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// The bytes of that empty config: `{}`.
pub const EMPTY_BLOB: &[u8] = b"{}";

/// How often the tag schema's index is written before an update gives up.
pub const TAG_ATTEMPTS: u32 = 8;
/// How long after writing the tag schema's index it is read back, at least
/// (twice our own read-and-write when that took longer): longer than a
/// concurrent writer takes between its read and its write, so a stale index
/// it writes is seen.
const TAG_SETTLE: std::time::Duration = std::time::Duration::from_millis(250);

/// Listings (an index of referrers) larger than this are refused.
const MAX_LISTING: u64 = crate::bounded_read::MAX_MANIFEST;

/// One entry of a referrers listing: the artifact manifest and its type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Referrer {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// The referrers tag schema's tag for `subject`: `sha256-<hex>`.
pub fn tag_schema_tag(subject: &Digest) -> String {
    format!("{}-{}", subject.algorithm(), subject.hex())
}

/// The descriptor of the empty config.
pub fn empty_descriptor() -> Descriptor {
    Descriptor::new(EMPTY_MEDIA_TYPE, Digest::of(EMPTY_BLOB), EMPTY_BLOB.len() as u64)
}

/// An artifact manifest: `artifactType`, the empty config, `blob` as its one
/// layer and `subject`. Fixed key order, so the same inputs give the same digest.
pub fn artifact_manifest(artifact_type: &str, blob: &Descriptor, subject: &Descriptor) -> Vec<u8> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Out<'a> {
        schema_version: u32,
        media_type: &'a str,
        artifact_type: &'a str,
        config: &'a Descriptor,
        layers: [&'a Descriptor; 1],
        subject: &'a Descriptor,
    }
    let config = empty_descriptor();
    let subject = Descriptor::new(subject.media_type.clone(), subject.digest.clone(), subject.size);
    serde_json::to_vec(&Out {
        schema_version: 2,
        media_type: OCI_MANIFEST,
        artifact_type,
        config: &config,
        layers: [blob],
        subject: &subject,
    })
    .expect("a manifest always serialises")
}

/// An OCI index listing `referrers` (the tag schema's document).
pub fn listing(referrers: &[Referrer]) -> Vec<u8> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Out<'a> {
        schema_version: u32,
        media_type: &'a str,
        manifests: &'a [Referrer],
    }
    serde_json::to_vec(&Out {
        schema_version: 2,
        media_type: OCI_INDEX,
        manifests: referrers,
    })
    .expect("an index always serialises")
}

/// The entries of a referrers listing (an OCI index).
pub fn parse_listing(bytes: &[u8]) -> Result<Vec<Referrer>, String> {
    #[derive(Deserialize)]
    struct In {
        #[serde(default)]
        manifests: Vec<Referrer>,
    }
    serde_json::from_slice::<In>(bytes)
        .map(|i| i.manifests)
        .map_err(|e| format!("not an OCI index: {e}"))
}

/// `current` with every entry of `seen` and `entry` it lacks appended (by
/// digest), so the index keeps its order and each referrer once.
fn merge(current: &[Referrer], seen: &[Referrer], entry: &Referrer) -> Vec<Referrer> {
    let mut out = current.to_vec();
    for e in seen.iter().chain(std::iter::once(entry)) {
        if !out.iter().any(|o| o.digest == e.digest) {
            out.push(e.clone());
        }
    }
    out
}

/// A pause that differs between writers (by their entry's digest) and
/// grows with each attempt, so two writers that keep colliding drift apart.
/// None after the first write: two writers that collided once both read
/// again after the settle time, and the one that lost its entry writes the
/// merge (the other finds its own entry listed and stops); only a writer
/// that has to write again has collided with more, and drifts from them.
fn jitter(digest: &Digest, attempt: u32) -> std::time::Duration {
    let byte = digest.hex().as_bytes()[attempt as usize % 64];
    let spread = u64::from(byte % 16) * 15;
    std::time::Duration::from_millis(spread * u64::from(attempt))
}

/// `subject` and `artifactType` of an artifact manifest, when it has a subject.
pub fn subject_of(manifest: &[u8]) -> Option<(Digest, Option<String>)> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct In {
        subject: Option<Descriptor>,
        artifact_type: Option<String>,
    }
    let m: In = serde_json::from_slice(manifest).ok()?;
    Some((m.subject?.digest, m.artifact_type))
}

impl Client {
    /// Pushes artifact manifest `bytes` by its digest; returns the digest and
    /// whether the registry indexed it itself (`OCI-Subject` in the answer).
    pub fn put_referrer_manifest(
        &self,
        repository: &str,
        bytes: &[u8],
    ) -> Result<(Digest, Option<Digest>), RegistryError> {
        let digest = Digest::of(bytes);
        let what = format!("referrer manifest {repository}@{digest}");
        let mut resp =
            self.put_manifest_bytes(repository, &digest.to_string(), OCI_MANIFEST, bytes, &what)?;
        let subject = resp
            .headers()
            .get("oci-subject")
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.trim().parse::<Digest>().ok());
        let _ = read_small(&mut resp);
        Ok((digest, subject))
    }

    /// The registry's referrers API listing for `subject`; `None` when the
    /// registry has no such API (it answers 404).
    pub fn referrers_api(
        &self,
        repository: &str,
        subject: &Digest,
    ) -> Result<Option<Vec<Referrer>>, RegistryError> {
        let what = format!("referrers of {repository}@{subject}");
        let path = format!("/v2/{repository}/referrers/{subject}");
        self.get_listing(repository, &path, &what)
    }

    /// The referrers tag schema's listing for `subject`; `None` when the tag
    /// does not exist yet.
    pub fn referrers_tag(
        &self,
        repository: &str,
        subject: &Digest,
    ) -> Result<Option<Vec<Referrer>>, RegistryError> {
        let tag = tag_schema_tag(subject);
        let what = format!("referrers index {repository}:{tag}");
        let path = format!("/v2/{repository}/manifests/{tag}");
        self.get_listing(repository, &path, &what)
    }

    /// Every referrer of `subject`: the API's listing, else the tag schema's
    /// (as the distribution spec tells clients to look).
    pub fn referrers(&self, repository: &str, subject: &Digest) -> Result<Vec<Referrer>, RegistryError> {
        if let Some(found) = self.referrers_api(repository, subject)? {
            return Ok(found);
        }
        Ok(self.referrers_tag(repository, subject)?.unwrap_or_default())
    }

    /// Adds `entry` to the tag schema's index of `subject` (read, add, write).
    /// Entries already there are kept; the same entry is not listed twice.
    ///
    /// The read-modify-write is not atomic and Distribution 2.8 has no
    /// conditional PUT, so two builds attaching SBOMs to the same image can
    /// each write an index without the other's entry. After each write the
    /// index is read again once a writer that read before it would have
    /// written too ([`TAG_SETTLE`]); while our entry (or one we saw listed) is
    /// missing, the index read is merged and written again, at most
    /// [`TAG_ATTEMPTS`] times.
    pub fn add_to_referrers_tag(
        &self,
        repository: &str,
        subject: &Digest,
        entry: Referrer,
    ) -> Result<(), RegistryError> {
        let tag = tag_schema_tag(subject);
        // Every entry seen listed during this update: a concurrent writer's
        // stale index must not drop them either.
        let mut seen: Vec<Referrer> = Vec::new();
        for attempt in 0..=TAG_ATTEMPTS {
            let started = std::time::Instant::now();
            let current = self.referrers_tag(repository, subject)?.unwrap_or_default();
            let merged = merge(&current, &seen, &entry);
            if merged.len() == current.len() {
                // Listed, with everything seen: written by us and still there
                // after the settle time, or there before we came.
                return Ok(());
            }
            if attempt == TAG_ATTEMPTS {
                break;
            }
            seen.clone_from(&merged);
            self.put_manifest(repository, &tag, OCI_INDEX, &listing(&merged))?;
            // Another writer's read-then-write takes about as long as ours
            // did: on a slow link or a loaded registry the wait grows with it.
            let settle = TAG_SETTLE.max(started.elapsed() * 2);
            std::thread::sleep(settle + jitter(&entry.digest, attempt));
        }
        Err(RegistryError::Protocol {
            registry: self.registry().to_string(),
            message: format!(
                "the referrers index {repository}:{tag} lost the entry of {} to concurrent writers {TAG_ATTEMPTS} times; \
                 the image and the artifact manifest are pushed: build again to list it",
                entry.digest
            ),
        })
    }

    /// A small OCI index at `path`; `None` on 404.
    fn get_listing(
        &self,
        repository: &str,
        path: &str,
        what: &str,
    ) -> Result<Option<Vec<Referrer>>, RegistryError> {
        let req = Req::new(
            Method::GET,
            self.url(path),
            vec![pull_scope(repository)],
            what.to_string(),
        )
        .header("accept", OCI_INDEX);
        let mut resp = self.send(req)?;
        match resp.status().as_u16() {
            200 => {}
            404 => return Ok(None),
            _ => return Err(self.status_error(resp, what, 1)),
        }
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(MAX_LISTING)
            .read_to_vec()
            .map_err(|e| RegistryError::Protocol {
                registry: self.registry().to_string(),
                message: format!("{what}: {e}"),
            })?;
        parse_listing(&bytes)
            .map(Some)
            .map_err(|message| RegistryError::Protocol {
                registry: self.registry().to_string(),
                message: format!("{what}: {message}"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_manifest_names_its_subject_and_reads_back() {
        let blob = Descriptor::new("application/spdx+json", Digest::of(b"sbom"), 4);
        let subject = Descriptor::new(OCI_MANIFEST, Digest::of(b"image"), 5);
        let bytes = artifact_manifest("application/spdx+json", &blob, &subject);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with(
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/spdx+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}"#
        ));
        assert_eq!(
            subject_of(&bytes),
            Some((subject.digest.clone(), Some("application/spdx+json".into())))
        );
        assert_eq!(
            tag_schema_tag(&subject.digest),
            format!("sha256-{}", subject.digest.hex())
        );
    }

    #[test]
    fn a_merge_keeps_the_index_and_adds_what_it_lacks_once() {
        let r = |b: &[u8]| Referrer {
            media_type: OCI_MANIFEST.into(),
            digest: Digest::of(b),
            size: 1,
            artifact_type: None,
            annotations: None,
        };
        let (a, b, c) = (r(b"a"), r(b"b"), r(b"c"));
        let merged = merge(std::slice::from_ref(&b), &[a.clone(), b.clone()], &c);
        assert_eq!(merged, vec![b.clone(), a.clone(), c.clone()]);
        assert_eq!(
            merge(&merged, &[], &a),
            merged,
            "nothing to add: nothing to write"
        );
        assert_ne!(jitter(&a.digest, 1), jitter(&c.digest, 1));
    }

    #[test]
    fn listing_round_trips_with_artifact_type() {
        let entry = Referrer {
            media_type: OCI_MANIFEST.into(),
            digest: Digest::of(b"m"),
            size: 9,
            artifact_type: Some("application/vnd.cyclonedx+json".into()),
            annotations: None,
        };
        let bytes = listing(std::slice::from_ref(&entry));
        assert_eq!(parse_listing(&bytes).unwrap(), vec![entry]);
        assert!(parse_listing(b"\"not an index\"").is_err());
    }
}
