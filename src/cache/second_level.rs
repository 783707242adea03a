//! A second level behind the local cache (`--cache-registry`): records and
//! blobs another machine made, looked up when the local cache misses and fed
//! with what this machine built. The level itself (a registry) lives above
//! this module; here is only the shape the layer and dependency caches use.

use serde::{Deserialize, Serialize};

use super::{Cache, CacheBucket};
use crate::image::{Descriptor, Digest};
use crate::report::Reporter;

/// One layer of a shared record: what a build needs to use the blob
/// without making it (the digest and size name the blob, the diff_id and
/// uncompressed size go into the image config and the size checks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedLayer {
    /// `dependencies`, `dependencies-2`, or the layer's own name.
    pub name: String,
    pub digest: Digest,
    pub size: u64,
    pub diff_id: Digest,
    pub uncompressed_size: u64,
}

/// What one cache record (`layers-v1/<key>`, `deps-v1/<key>`) says, in the
/// form both levels share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedRecord {
    /// The installer that made a dependency set (`pip 24.0`); none for a layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installer: Option<String>,
    pub layers: Vec<SharedLayer>,
    /// What the entry keeps beside its layers, as JSON text the store
    /// carries without reading it (a dependency set: the archives it was
    /// installed from, whose hashes the SBOM names). `None` when the entry
    /// keeps nothing or the record was written before this was shared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<String>,
}

/// Shown each verified blob's uncompressed bytes: the blob's place in its
/// record, its (verified) digest, and a reader of its tar.
pub type Inflated<'a> = dyn Fn(usize, &Digest, &mut dyn std::io::Read) + 'a;

/// A store of records and blobs shared between machines. Every fault of the
/// store (down, slow, refusing, lying) is its own business: it warns and
/// answers a miss, so a build falls back to making the layer itself.
pub trait SecondLevel: Send + Sync + std::fmt::Debug {
    /// The record `bucket`/`key` when the store has one that `accept`s, with
    /// every blob it names now in `cache`, verified (digest, diff_id, sizes).
    fn fetch(
        &self,
        cache: &Cache,
        bucket: CacheBucket,
        key: &str,
        accept: &dyn Fn(&SharedRecord) -> bool,
        reporter: &dyn Reporter,
    ) -> Option<SharedRecord>;

    /// [`SecondLevel::fetch`], showing `inflated` the uncompressed bytes of
    /// each blob (by its place in the record) when the store inflates them
    /// to verify them, so a caller that reads them anyway (the rules' scan)
    /// need not inflate them a second time. What `inflated` leaves unread
    /// the store still reads. A store that inflates nothing ignores it.
    fn fetch_inflating(
        &self,
        cache: &Cache,
        bucket: CacheBucket,
        key: &str,
        accept: &dyn Fn(&SharedRecord) -> bool,
        reporter: &dyn Reporter,
        inflated: &Inflated<'_>,
    ) -> Option<SharedRecord> {
        let _ = inflated;
        self.fetch(cache, bucket, key, accept, reporter)
    }

    /// Shares `record`, whose blobs are in `cache`. A store that cannot
    /// take it (read-only, refused, down) says so once and carries on.
    fn publish(
        &self,
        cache: &Cache,
        bucket: CacheBucket,
        key: &str,
        record: &SharedRecord,
        reporter: &dyn Reporter,
    );

    /// The document (one blob that is not a layer: an SBOM) shared as
    /// `bucket`/`key`, now in `cache` and verified by its digest, which is
    /// returned. A store that keeps no documents answers a miss.
    fn fetch_document(
        &self,
        cache: &Cache,
        bucket: CacheBucket,
        key: &str,
        reporter: &dyn Reporter,
    ) -> Option<Digest> {
        let _ = (cache, bucket, key, reporter);
        None
    }

    /// Shares the document `document` names (its blob in `cache`) as
    /// `bucket`/`key`; faults as [`SecondLevel::publish`].
    fn publish_document(
        &self,
        cache: &Cache,
        bucket: CacheBucket,
        key: &str,
        document: &Descriptor,
        reporter: &dyn Reporter,
    ) {
        let _ = (cache, bucket, key, document, reporter);
    }
}
