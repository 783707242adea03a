//! Lambda's rules, remembered in the cache: the findings of an image (named
//! by its manifest digest) and the rules' scans of its layers, so an
//! unchanged rebuild reads no layer again.

use crate::cache::{Cache, CacheBucket};
use crate::image::{Digest, Image};
use crate::rules::{CheckContext, CheckError, Finding, LayerScan, ScanMemo, check_image_with};

/// What a cached check remembers: the rule id and message of each finding.
#[derive(serde::Serialize, serde::Deserialize)]
struct CheckRecord {
    findings: Vec<(String, String)>,
}

const CHECKS_BUCKET: CacheBucket = CacheBucket::Checks;
pub(super) const SCANS_BUCKET: CacheBucket = CacheBucket::LayerScans;

/// Layer scans kept in the cache, so the rules read only layers they have not seen.
pub(super) struct CachedScans<'a>(pub(super) &'a Cache);

impl ScanMemo for CachedScans<'_> {
    fn get(&self, key: &str) -> Option<LayerScan> {
        self.0.get_record(SCANS_BUCKET, key)
    }
    fn put(&self, key: &str, scan: &LayerScan) {
        // A failed write only costs a re-read next time.
        let _ = self.0.put_record(SCANS_BUCKET, key, scan);
    }
    fn put_json(&self, key: &str, json: &mut dyn std::io::Read) {
        // As `put`: the record is the JSON, copied in as it is read.
        let _ = self.0.put_file(SCANS_BUCKET, &format!("{key}.json"), |out| {
            std::io::copy(json, out).map(|_| ())
        });
    }
}

/// `check_image`, remembered in the cache: the findings are a function of the
/// image's bytes (named by its manifest digest), the context and the rules,
/// so an unchanged rebuild does not read its layers again.
pub(super) fn checked_image(
    image: &Image,
    context: &CheckContext,
    cache: &Cache,
) -> Result<Vec<Finding>, CheckError> {
    let key = Digest::of(
        serde_json::json!({
            "manifest": image.manifest_digest(),
            "context": context,
            "rules": crate::rules::catalog::catalog_key(),
        })
        .to_string()
        .as_bytes(),
    );
    if let Some(record) = cache.get_record::<CheckRecord>(CHECKS_BUCKET, key.hex()) {
        let restored: Option<Vec<Finding>> = record
            .findings
            .iter()
            .map(|(id, message)| crate::rules::rule(id).map(|rule| Finding::new(rule, message.clone())))
            .collect();
        if let Some(findings) = restored {
            return Ok(findings);
        }
    }
    // The layers' scans and the flattened view hold a few hundred bytes a
    // file in small allocations; once freed, the allocator keeps their pages
    // unless asked. Given back before the check (the scans made while the
    // layers were compressed, on their own threads) and after it, the next
    // step (the SBOM's walk of the layers) does not start from that peak.
    release_freed_memory();
    let findings = check_image_with(image, context, Some(&CachedScans(cache)));
    release_freed_memory();
    let findings = findings?;
    let record = CheckRecord {
        findings: findings
            .iter()
            .map(|f| (f.rule_id.to_string(), f.message.clone()))
            .collect(),
    };
    // A failed write only costs a re-check next time.
    let _ = cache.put_record(CHECKS_BUCKET, key.hex(), &record);
    Ok(findings)
}

/// Returns the allocator's free pages to the system (glibc keeps them).
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}
