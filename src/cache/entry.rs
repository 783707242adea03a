//! Entries built once: lookup → lock → re-check → build → commit, in one place.
//!
//! An entry is a JSON record in a bucket that names blobs of the cache (a
//! built layer, an installed dependency set, a gzipped docker-archive layer).
//! It is usable only while every blob it names is present with its size; a
//! record whose blob went away (pruned, evicted as corrupt) is dropped and
//! the entry built again.

use std::io;
use std::path::PathBuf;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Cache, CacheBucket, SharedRecord};
use crate::image::Digest;
use crate::report::Reporter;

/// A record that names blobs of the cache.
pub trait CacheEntry: Serialize + DeserializeOwned {
    /// The blobs the entry needs, with their sizes.
    fn blobs(&self) -> Vec<(&Digest, u64)>;

    /// The entry as a second level shares it; `None` (the default) for an
    /// entry kept on this machine only.
    fn to_shared(&self) -> Option<SharedRecord> {
        None
    }

    /// The entry a second level's record describes, when it can be one.
    fn from_shared(_shared: SharedRecord) -> Option<Self> {
        None
    }
}

/// How [`Cache::get_or_build`] came by an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found<T> {
    /// It was in the cache.
    Hit(T),
    /// Another process built it while this one waited for the lock.
    BuiltMeanwhile(T),
    /// This call built and committed it.
    Built(T),
    /// The cache's second level had it (its blobs are now local, verified).
    Shared(T),
}

impl<T> Found<T> {
    pub fn into_inner(self) -> T {
        match self {
            Found::Hit(t) | Found::BuiltMeanwhile(t) | Found::Built(t) | Found::Shared(t) => t,
        }
    }

    /// Whether the entry came from the cache rather than from this call's build.
    pub fn cached(&self) -> bool {
        !matches!(self, Found::Built(_))
    }
}

/// A cache file that could not be locked or written while building an entry.
#[derive(Debug, thiserror::Error)]
#[error("cannot use cache file {path}: {source}")]
pub struct CacheIoError {
    pub path: PathBuf,
    pub source: io::Error,
}

impl Cache {
    /// The entry `key` of `bucket` when its record and every blob it names
    /// are there; a record whose blobs are gone is removed.
    pub fn entry<T: CacheEntry>(&self, bucket: CacheBucket, key: &str) -> Option<T> {
        let entry: T = self.get_record(bucket, key)?;
        let whole = entry.blobs().into_iter().all(|(digest, size)| {
            std::fs::metadata(self.blob_path(digest)).is_ok_and(|m| m.is_file() && m.len() == size)
        });
        if !whole {
            self.remove_record(bucket, key);
            return None;
        }
        Some(entry)
    }

    /// The entry `key` of `bucket`, built by `build` when the cache has none.
    /// Two builds sharing the cache do not build the same entry at once: the
    /// second waits for the first's lock and then finds its entry. The record
    /// is committed (atomically) only after `build` succeeded, so a failed
    /// build leaves no entry; blobs `build` committed stay, named by their digest.
    pub fn get_or_build<T, E>(
        &self,
        bucket: CacheBucket,
        key: &str,
        build: impl FnOnce() -> Result<T, E>,
    ) -> Result<Found<T>, E>
    where
        T: CacheEntry,
        E: From<CacheIoError>,
    {
        self.get_or_build_if(bucket, key, |_| true, build)
    }

    /// [`Cache::get_or_build`], using an entry only when `accept` says so (a
    /// dependency set installed by another installer version is built again).
    pub fn get_or_build_if<T, E>(
        &self,
        bucket: CacheBucket,
        key: &str,
        accept: impl Fn(&T) -> bool,
        build: impl FnOnce() -> Result<T, E>,
    ) -> Result<Found<T>, E>
    where
        T: CacheEntry,
        E: From<CacheIoError>,
    {
        self.get_or_build_with(bucket, key, accept, None, build)
    }

    /// [`Cache::get_or_build_if`], with the cache's second level (when it has
    /// one) asked after a local miss, under the lock, and given what `build`
    /// made. Its faults are its own: it warns on `reporter` and answers a
    /// miss, so the entry is built here. A shared hit is committed locally.
    pub fn get_or_build_shared<T, E>(
        &self,
        bucket: CacheBucket,
        key: &str,
        accept: impl Fn(&T) -> bool,
        reporter: &dyn Reporter,
        build: impl FnOnce() -> Result<T, E>,
    ) -> Result<Found<T>, E>
    where
        T: CacheEntry,
        E: From<CacheIoError>,
    {
        self.get_or_build_with(bucket, key, accept, Some(reporter), build)
    }

    fn get_or_build_with<T, E>(
        &self,
        bucket: CacheBucket,
        key: &str,
        accept: impl Fn(&T) -> bool,
        reporter: Option<&dyn Reporter>,
        build: impl FnOnce() -> Result<T, E>,
    ) -> Result<Found<T>, E>
    where
        T: CacheEntry,
        E: From<CacheIoError>,
    {
        let usable = || self.entry::<T>(bucket, key).filter(|e| accept(e));
        if let Some(entry) = usable() {
            return Ok(Found::Hit(entry));
        }
        let lock_name = format!("{bucket}-{key}");
        let _lock = self.lock(&lock_name).map_err(|source| CacheIoError {
            path: self.root.join("locks").join(format!("{lock_name}.lock")),
            source,
        })?;
        if let Some(entry) = usable() {
            return Ok(Found::BuiltMeanwhile(entry));
        }
        let commit = |entry: &T| {
            self.put_record(bucket, key, entry)
                .map_err(|source| CacheIoError {
                    path: self.record_path(bucket, key),
                    source,
                })
        };
        let level = self.second_level().zip(reporter);
        if let Some((level, reporter)) = level {
            let fits = |shared: &SharedRecord| T::from_shared(shared.clone()).is_some_and(|e| accept(&e));
            if let Some(entry) = level
                .fetch(self, bucket, key, &fits, reporter)
                .and_then(T::from_shared)
            {
                commit(&entry)?;
                return Ok(Found::Shared(entry));
            }
        }
        let entry = build()?;
        commit(&entry)?;
        if let Some((level, reporter)) = level
            && let Some(shared) = entry.to_shared()
        {
            level.publish(self, bucket, key, &shared, reporter);
        }
        Ok(Found::Built(entry))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
    struct Rec {
        blob: Digest,
        size: u64,
    }

    impl CacheEntry for Rec {
        fn blobs(&self) -> Vec<(&Digest, u64)> {
            vec![(&self.blob, self.size)]
        }
    }

    #[derive(Debug)]
    enum TestError {
        Cache,
        Failed,
    }

    impl From<CacheIoError> for TestError {
        fn from(_: CacheIoError) -> TestError {
            TestError::Cache
        }
    }

    fn put_blob(cache: &Cache, bytes: &[u8]) -> Rec {
        let mut tmp = cache.temp_file().unwrap();
        tmp.write_all(bytes).unwrap();
        let blob = Digest::of(bytes);
        cache.commit_blob(tmp, &blob).unwrap();
        Rec {
            blob,
            size: bytes.len() as u64,
        }
    }

    #[test]
    fn concurrent_builders_build_an_entry_once() {
        let dir = tempfile::tempdir().unwrap();
        let builds = AtomicUsize::new(0);
        let found: Vec<Found<Rec>> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        // A value of its own per thread, as separate processes have.
                        let cache = Cache::open(dir.path()).unwrap();
                        cache
                            .get_or_build(CacheBucket::Layers, "k", || {
                                builds.fetch_add(1, Ordering::SeqCst);
                                // Long enough for the others to reach the lock.
                                std::thread::sleep(std::time::Duration::from_millis(100));
                                Ok::<_, TestError>(put_blob(&cache, b"layer bytes"))
                            })
                            .unwrap()
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        assert_eq!(builds.load(Ordering::SeqCst), 1);
        assert_eq!(found.iter().filter(|f| !f.cached()).count(), 1, "{found:?}");
        let entries: Vec<Rec> = found.into_iter().map(Found::into_inner).collect();
        assert!(entries.windows(2).all(|w| w[0] == w[1]), "{entries:?}");

        let cache = Cache::open(dir.path()).unwrap();
        let again = cache
            .get_or_build(CacheBucket::Layers, "k", || -> Result<Rec, TestError> {
                panic!("an entry in the cache is not built again")
            })
            .unwrap();
        assert!(matches!(again, Found::Hit(_)));
    }

    #[test]
    fn a_failed_build_leaves_no_entry_and_a_missing_blob_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let failed = cache.get_or_build(CacheBucket::Deps, "k", || -> Result<Rec, TestError> {
            Err(TestError::Failed)
        });
        assert!(matches!(failed, Err(TestError::Failed)));
        assert!(!cache.record_path(CacheBucket::Deps, "k").exists());
        assert_eq!(cache.entry::<Rec>(CacheBucket::Deps, "k"), None);

        let built = cache
            .get_or_build(CacheBucket::Deps, "k", || {
                Ok::<_, TestError>(put_blob(&cache, b"x"))
            })
            .unwrap();
        assert!(matches!(built, Found::Built(_)));
        assert_eq!(
            cache.entry::<Rec>(CacheBucket::Deps, "k"),
            Some(built.into_inner())
        );
        // Refused by `accept`: built again, and the new entry replaces it.
        let rebuilt = cache
            .get_or_build_if(
                CacheBucket::Deps,
                "k",
                |r: &Rec| r.size > 1,
                || Ok::<_, TestError>(put_blob(&cache, b"yy")),
            )
            .unwrap();
        assert!(matches!(rebuilt, Found::Built(Rec { size: 2, .. })));

        // The blob goes away: the record is dropped with it.
        std::fs::remove_file(cache.blob_path(&rebuilt.into_inner().blob)).unwrap();
        assert_eq!(cache.entry::<Rec>(CacheBucket::Deps, "k"), None);
        assert!(!cache.record_path(CacheBucket::Deps, "k").exists());
    }
}
