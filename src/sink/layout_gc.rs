//! Dropping the blobs of an OCI layout that no image in its index.json uses
//! any more (what `umoci gc` does), so repeated builds into one directory do
//! not pile up old layers. Runs after the new index.json is in place, under
//! the layout's lock.

use std::collections::HashSet;
use std::fs;
use std::path::Path;

use crate::bounded_read::{MAX_JSON, read_capped};
use crate::image::{Descriptor, Document, MediaKind, classify, parse_document};

/// More documents than any real layout holds: a crafted one cannot keep us walking.
const MAX_DOCUMENTS: usize = 100_000;

/// Removes every `blobs/sha256/<hex>` not reachable from `entries`. When any
/// manifest or index cannot be read or understood, nothing is removed (a blob
/// it names might be lost) and the reason is returned.
pub(super) fn collect(dir: &Path, entries: &[Descriptor]) -> Result<usize, String> {
    let blobs = dir.join("blobs").join("sha256");
    let mut reachable: HashSet<String> = HashSet::new();
    let mut queue: Vec<Descriptor> = entries.to_vec();
    let mut documents = 0;
    while let Some(d) = queue.pop() {
        if d.digest.algorithm() != "sha256" || !reachable.insert(d.digest.hex().to_string()) {
            continue;
        }
        if !matches!(
            classify(&d.media_type),
            MediaKind::Manifest(_) | MediaKind::Index(_)
        ) {
            continue;
        }
        documents += 1;
        if documents > MAX_DOCUMENTS {
            return Err(format!("index.json reaches more than {MAX_DOCUMENTS} manifests"));
        }
        let path = blobs.join(d.digest.hex());
        let bytes =
            read_capped(&path, MAX_JSON, "a manifest").map_err(|e| format!("{}: {e}", path.display()))?;
        match parse_document(&bytes, Some(&d.media_type), &path.display().to_string()) {
            Ok(Document::Manifest(m)) => {
                queue.push(m.config.clone());
                queue.extend(m.layers.iter().cloned());
            }
            Ok(Document::Index(i)) => queue.extend(i.manifests.iter().cloned()),
            Err(e) => return Err(e.to_string()),
        }
    }
    let listing = fs::read_dir(&blobs).map_err(|e| format!("{}: {e}", blobs.display()))?;
    let mut removed = 0;
    for entry in listing.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_blob_name = name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit());
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_blob_name && !is_dir && !reachable.contains(&name) && fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}
