//! `build --recursive` with a cache registry: while the functions build in
//! turn, one background thread looks up the records of every function's
//! layers and pulls their blobs (verified by digest) into the local cache,
//! ahead of the build that needs them. A CI runner's time after the first
//! function is then mostly the decompression it cannot skip, not waiting on
//! the network. The build's own lookup takes the record from here (no
//! second GET), finds the blobs committed in this run (no second read to
//! hash them) and inflates each once to check it and scan it for the rules.
//!
//! The prefetch never warns or decides anything: a fault makes it stop, and
//! the build's own lookup meets the fault and says so, as without it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use super::{CacheRegistry, record};
use crate::cache::{Cache, CacheBucket};
use crate::image::{Descriptor, OCI_LAYER_GZIP};
use crate::registry::{RegistryError, fetch_blob_to_cache};

/// What a lookup ahead of the build found for a record's tag.
#[derive(Debug)]
pub(super) enum Ahead {
    /// The record's manifest bytes, as the registry sent them.
    Record(Vec<u8>),
    /// The registry has no such record.
    Missing,
}

/// Lookups made ahead of the build, taken once each. A lookup under way is
/// marked, so a build asking for the same record waits for its answer
/// instead of sending the same GET a second time.
#[derive(Debug, Default)]
pub(super) struct AheadOfBuild {
    slots: Mutex<BTreeMap<String, Slot>>,
    settled: Condvar,
}

#[derive(Debug)]
enum Slot {
    UnderWay,
    Found(Ahead),
    /// The build asked for it (before or after the prefetch): the prefetch
    /// must not look it up again.
    Taken,
}

impl AheadOfBuild {
    fn slots(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks `tag` as being looked up; false when it already was.
    fn begin(&self, tag: &str) -> bool {
        let mut slots = self.slots();
        if slots.contains_key(tag) {
            return false;
        }
        slots.insert(tag.to_string(), Slot::UnderWay);
        true
    }

    fn put(&self, tag: String, found: Ahead) {
        self.slots().insert(tag, Slot::Found(found));
        self.settled.notify_all();
    }

    /// The lookup of `tag` ended without an answer to hand on: the build
    /// asks itself (and meets the fault, if there is one).
    fn abandon(&self, tag: &str) {
        self.slots().remove(tag);
        self.settled.notify_all();
    }

    /// The lookup of `tag` made ahead, if one was; waits while it is under
    /// way. Either way the tag is left marked taken: a build that asked
    /// before the prefetch came to it looks it up itself, and the prefetch,
    /// coming to it later, must not send the same GET again.
    pub(super) fn take(&self, tag: &str) -> Option<Ahead> {
        let mut slots = self.slots();
        while matches!(slots.get(tag), Some(Slot::UnderWay)) {
            slots = self.settled.wait(slots).unwrap_or_else(|e| e.into_inner());
        }
        match slots.insert(tag.to_string(), Slot::Taken) {
            Some(Slot::Found(found)) => Some(found),
            _ => None,
        }
    }
}

/// The background prefetch; dropping it stops it after the request under
/// way and waits for the thread.
#[derive(Debug)]
pub struct Prefetch {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl CacheRegistry {
    /// Starts looking up `wanted` (bucket, input key; in the order the
    /// builds will ask) and pulling their blobs into `cache`. Records the
    /// local cache has are skipped. Read-only or not, nothing is written.
    pub fn prefetch(self: &Arc<Self>, cache: &Cache, wanted: Vec<(CacheBucket, String)>) -> Prefetch {
        let stop = Arc::new(AtomicBool::new(false));
        let registry = Arc::clone(self);
        let cache = cache.local_only();
        let stopped = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("cache-registry-prefetch".into())
            .spawn(move || registry.fetch_ahead(&cache, &wanted, &stopped))
            .ok();
        Prefetch { stop, thread }
    }

    fn fetch_ahead(&self, cache: &Cache, wanted: &[(CacheBucket, String)], stop: &AtomicBool) {
        let silent = crate::report::Silent;
        for (bucket, key) in wanted {
            if stop.load(Ordering::Relaxed) || self.down.load(Ordering::Relaxed) {
                return;
            }
            if cache.get_record::<serde_json::Value>(*bucket, key).is_some() {
                continue;
            }
            let Some(tag) = record::tag(bucket.dir_name(), key) else {
                continue;
            };
            if !self.ahead.begin(&tag) {
                continue;
            }
            let bytes = match self.client.get_manifest(&self.repository, &tag) {
                Ok(m) => m.bytes,
                Err(RegistryError::NotFound { .. }) => {
                    self.ahead.put(tag, Ahead::Missing);
                    continue;
                }
                // The build's own lookup meets it and says so.
                Err(_) => {
                    self.ahead.abandon(&tag);
                    return;
                }
            };
            let Ok(found) = record::decode(&bytes, bucket.dir_name(), key) else {
                self.ahead.abandon(&tag);
                continue;
            };
            self.ahead.put(tag, Ahead::Record(bytes));
            for layer in &found.layers {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let desc = Descriptor::new(OCI_LAYER_GZIP, layer.digest.clone(), layer.size);
                if fetch_blob_to_cache(&self.client, &self.repository, &desc, cache, &silent).is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_the_build_asked_for_first_is_not_looked_up_ahead_again() {
        let ahead = AheadOfBuild::default();
        // The build came first (the prefetch, on a loaded machine, had not
        // reached this record yet): it looks the record up itself.
        assert!(ahead.take("layers-v1-a").is_none());
        assert!(
            !ahead.begin("layers-v1-a"),
            "the prefetch would send the same GET again"
        );
        // A lookup made ahead is handed over once, and not made again.
        assert!(ahead.begin("layers-v1-b"));
        ahead.put("layers-v1-b".into(), Ahead::Missing);
        assert!(matches!(ahead.take("layers-v1-b"), Some(Ahead::Missing)));
        assert!(ahead.take("layers-v1-b").is_none());
        assert!(!ahead.begin("layers-v1-b"));
    }
}
