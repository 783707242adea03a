//! `pin --recursive` and `pin --check`: the patch cadence of a monorepo.
//! Every function's base tag is resolved (each distinct tag once), compared
//! with the digest its manifest pins, and, unless only checking, the digests
//! that moved are written back in place the way `pin` writes one.
//!
//! One function's failure (an unreachable registry, a broken manifest) is a
//! row marked `failed`; the others are still resolved and written.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::image::{Architecture, Digest};
use crate::pin::{
    PinError, ResolvedTag, base_image, registry_base, resolve_tag, rewrite_base_image, write_atomic,
};
use crate::registry::{Reference, RegistryOptions};
use crate::report::Reporter;
use crate::source::SourceError;

/// What happened to one function's base.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PinStatus {
    /// The tag names another digest than the manifest pins (or the base was
    /// not pinned at all): the function lags its base.
    Moved,
    /// The manifest pins what the tag names.
    Unchanged,
    /// The base could not be resolved or the manifest not read or written.
    Failed,
    /// Nothing to follow: a local or scratch base, or a digest with no tag.
    Skipped,
}

impl PinStatus {
    fn word(self) -> &'static str {
        match self {
            PinStatus::Moved => "moved",
            PinStatus::Unchanged => "unchanged",
            PinStatus::Failed => "failed",
            PinStatus::Skipped => "skipped",
        }
    }
}

/// One row of the report: one function.
#[derive(Debug, Clone, Serialize)]
pub struct PinRow {
    /// `[function] name`, when the manifest has one.
    pub function: Option<String>,
    pub manifest: PathBuf,
    /// `registry/repository:tag` the base follows.
    pub base_tag: Option<String>,
    /// The digest the manifest pinned (none for an unpinned base).
    pub old_digest: Option<Digest>,
    /// What the tag names now.
    pub new_digest: Option<Digest>,
    pub status: PinStatus,
    /// True when the manifest was rewritten (never under `--check`).
    pub written: bool,
    /// Why a row failed or was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The rows of every function, in manifest order.
#[derive(Debug, Clone, Serialize)]
pub struct RepinReport {
    /// True under `--check`: nothing was written.
    pub check: bool,
    pub functions: Vec<PinRow>,
}

impl RepinReport {
    pub fn count(&self, status: PinStatus) -> usize {
        self.functions.iter().filter(|r| r.status == status).count()
    }
}

/// Resolves the base of every manifest in `manifests` and, unless
/// `check_only`, rewrites each manifest whose base moved. An index must have
/// an image for `arch`, else for each manifest's own architecture.
pub fn repin(
    manifests: &[PathBuf],
    check_only: bool,
    arch: Option<Architecture>,
    options: &RegistryOptions,
    reporter: &dyn Reporter,
) -> RepinReport {
    // One answer per distinct tag, failures included; and a registry that did
    // not answer is not asked again (with its retries) for its other tags.
    let mut tags = TagAnswers::default();
    let functions = manifests
        .iter()
        .map(|path| {
            let mut row = PinRow {
                function: None,
                manifest: path.clone(),
                base_tag: None,
                old_digest: None,
                new_digest: None,
                status: PinStatus::Failed,
                written: false,
                message: None,
            };
            if let Err(message) = repin_one(path, check_only, arch, options, reporter, &mut tags, &mut row) {
                row.status = PinStatus::Failed;
                row.message = Some(message);
            }
            row
        })
        .collect();
    RepinReport {
        check: check_only,
        functions,
    }
}

/// Fills `row` for one manifest; an `Err` is the message of a failed row.
fn repin_one(
    path: &Path,
    check_only: bool,
    arch: Option<Architecture>,
    options: &RegistryOptions,
    reporter: &dyn Reporter,
    tags: &mut TagAnswers,
    row: &mut PinRow,
) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
    row.function = crate::discover::function_name(&text);
    let before = base_image(&text, path).map_err(|e| e.to_string())?;
    let Some((base, reference)) = registry_base(&before).map_err(|e| e.to_string())? else {
        row.status = PinStatus::Skipped;
        row.message = Some(format!("base {before:?} is not a registry image"));
        return Ok(());
    };
    row.old_digest = reference.digest.clone();
    let Some(tag) = reference.tag.clone() else {
        row.status = PinStatus::Skipped;
        row.message = Some(format!(
            "base {before:?} is pinned by digest with no tag to follow"
        ));
        return Ok(());
    };
    let tag_name = format!("{}:{tag}", reference.name());
    row.base_tag = Some(tag_name.clone());
    let arch = match arch {
        Some(arch) => arch,
        None => crate::manifest::read_architecture(path).map_err(|e| e.to_string())?,
    };
    let resolved = tags.resolve(&reference, &tag, options, reporter)?;
    resolved
        .check_platform(arch, &tag_name)
        .map_err(|e| e.to_string())?;
    row.new_digest = Some(resolved.digest.clone());
    if reference.digest.as_ref() == Some(&resolved.digest) {
        row.status = PinStatus::Unchanged;
        return Ok(());
    }
    row.status = PinStatus::Moved;
    if !check_only {
        let after = base.pinned_to(&resolved.digest).expect("a registry base");
        let new_text = rewrite_base_image(&text, &after, path).map_err(|e| e.to_string())?;
        write_atomic(path, new_text.as_bytes()).map_err(|e: PinError| e.to_string())?;
        row.written = true;
    }
    Ok(())
}

/// What each base tag named, asked once per tag, and the registries that did
/// not answer (with the first tag they did not answer for).
#[derive(Default)]
struct TagAnswers {
    tags: HashMap<String, Result<ResolvedTag, String>>,
    down: HashMap<String, String>,
}

impl TagAnswers {
    fn resolve(
        &mut self,
        reference: &Reference,
        tag: &str,
        options: &RegistryOptions,
        reporter: &dyn Reporter,
    ) -> Result<ResolvedTag, String> {
        let key = format!("{}:{tag}", reference.name());
        if let Some(answer) = self.tags.get(&key) {
            return answer.clone();
        }
        if let Some(first) = self.down.get(&reference.registry) {
            return Err(format!(
                "not asked: registry {} did not answer for {first} (see its row)",
                reference.registry
            ));
        }
        let answer = resolve_tag(reference, tag, options, reporter).map_err(|e| {
            let unreachable = match &e {
                PinError::Source(SourceError::BaseUnreachable(_)) => true,
                PinError::Registry(e) => crate::registry::mirror::is_unreachable(e),
                _ => false,
            };
            if unreachable {
                self.down.insert(reference.registry.clone(), key.clone());
            }
            e.to_string()
        });
        self.tags.insert(key, answer.clone());
        answer
    }
}

/// The human table: one row per function, digests shortened, reasons below.
pub fn render_table(report: &RepinReport) -> String {
    let short = |d: &Option<Digest>| {
        d.as_ref()
            .map_or("-".to_string(), |d| format!("sha256:{}", d.short()))
    };
    let rows: Vec<[String; 6]> = report
        .functions
        .iter()
        .map(|r| {
            [
                r.function.clone().unwrap_or_else(|| "?".into()),
                r.manifest.display().to_string(),
                r.base_tag.clone().unwrap_or_else(|| "-".into()),
                short(&r.old_digest),
                short(&r.new_digest),
                r.status.word().to_string(),
            ]
        })
        .collect();
    let header = [
        "function",
        "manifest",
        "base tag",
        "old digest",
        "new digest",
        "status",
    ]
    .map(String::from);
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String; 6]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    let mut out = vec![line(&header)];
    out.extend(rows.iter().map(line));
    for r in &report.functions {
        if let Some(message) = &r.message {
            out.push(format!(
                "{} ({}): {message}",
                r.manifest.display(),
                r.status.word()
            ));
        }
    }
    let moved = report.count(PinStatus::Moved);
    out.push(match (report.check, moved) {
        (_, 0) if report.count(PinStatus::Failed) == 0 => "every base is current".to_string(),
        (_, 0) => "no base found lagging".to_string(),
        (true, n) => format!("{n} function(s) lag their base tag; nothing was written (--check)"),
        (false, n) => format!("{n} manifest(s) re-pinned: rebuild them (lambda-img build --recursive)"),
    });
    let failed = report.count(PinStatus::Failed);
    if failed > 0 {
        out.push(format!("{failed} function(s) failed: see above"));
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, base: &str) -> PathBuf {
        let p = dir.join(rel).join("lambda-img.toml");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(
            &p,
            format!(
                "[function]\nname = \"{rel}\"\nruntime = \"provided.al2023\"\n\n[base]\nimage = \"{base}\"\n"
            ),
        )
        .unwrap();
        p
    }

    #[test]
    fn local_bases_are_skipped_and_unreachable_ones_fail_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let d = Digest::of(b"x");
        // Port 9 on loopback: nothing listens, so the connection is refused at once.
        let down = format!("127.0.0.1:9/lambda/base:1@{d}");
        let paths = vec![
            write(tmp.path(), "a", "scratch"),
            write(tmp.path(), "b", &down),
            write(tmp.path(), "c", &format!("127.0.0.1:9/other@{d}")),
            write(tmp.path(), "d", &down),
            write(tmp.path(), "e", &format!("127.0.0.1:9/lambda/base:2@{d}")),
        ];
        let before: Vec<String> = paths
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect();
        let options = RegistryOptions {
            retry: crate::registry::RetryPolicy::quick(),
            ..RegistryOptions::default()
        };
        let report = repin(&paths, false, None, &options, &crate::report::Silent);
        let statuses: Vec<PinStatus> = report.functions.iter().map(|r| r.status).collect();
        assert_eq!(
            statuses,
            [
                PinStatus::Skipped,
                PinStatus::Failed,
                PinStatus::Skipped,
                PinStatus::Failed,
                PinStatus::Failed
            ]
        );
        // Another tag on the registry that did not answer is not asked.
        assert_eq!(
            report.functions[4].message.as_deref(),
            Some(
                "not asked: registry 127.0.0.1:9 did not answer for 127.0.0.1:9/lambda/base:1 (see its row)"
            )
        );
        assert!(
            report.functions[1]
                .message
                .as_deref()
                .unwrap()
                .contains("127.0.0.1:9"),
            "{:?}",
            report.functions[1].message
        );
        assert_eq!(
            report.functions[1].base_tag.as_deref(),
            Some("127.0.0.1:9/lambda/base:1")
        );
        assert_eq!(report.functions[1].old_digest, Some(d));
        let after: Vec<String> = paths
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect();
        assert_eq!(before, after, "nothing is written for failed or skipped rows");
        let table = render_table(&report);
        assert!(
            table.contains("3 function(s) failed") && !table.contains("every base is current"),
            "{table}"
        );
    }
}
