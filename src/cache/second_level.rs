//! A second level behind the local cache (`--cache-registry`): records and
//! blobs another machine made, looked up when the local cache misses and fed
//! with what this machine built. The level itself (a registry) lives above
//! this module; here is only the shape the layer and dependency caches use.

use serde::{Deserialize, Serialize};

use super::{Cache, CacheBucket};
use crate::image::Digest;
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
}

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
}
