//! Blobs this process knows a registry holds, and in which repository: a
//! push of the same blob to another repository of that registry then mounts
//! it instead of uploading it again. Fed by pushes (`build --recursive`
//! pushing many functions onto one new base uploads each base layer once)
//! and by the cache registry (its blobs are mounted into the push target).

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::image::Digest;

static KNOWN: Mutex<BTreeMap<(String, Digest), String>> = Mutex::new(BTreeMap::new());

/// Notes that `registry` has `digest` in `repository`.
pub fn remember(registry: &str, digest: &Digest, repository: &str) {
    let mut known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    known.insert((registry.to_string(), digest.clone()), repository.to_string());
}

/// A repository of `registry` other than `not_repository` known to hold `digest`.
pub fn repository_with(registry: &str, digest: &Digest, not_repository: &str) -> Option<String> {
    let known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    known
        .get(&(registry.to_string(), digest.clone()))
        .filter(|repo| repo.as_str() != not_repository)
        .cloned()
}
