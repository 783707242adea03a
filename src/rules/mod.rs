//! Lambda's rules as data, and pure checks that return findings.
//!
//! Two entry points: [`check_limits`] is cheap (manifest, config and
//! descriptor facts only) and runs before a build writes anything;
//! [`check_image`] adds the filesystem rules, streaming each layer once.
//! Neither prints: the caller renders the [`Finding`]s.

mod base;
pub mod catalog;
mod config;
mod content;
mod flat;
mod handler;
mod limits;
mod links;
pub mod policy;
mod programs;

use serde::Serialize;

pub use base::base_lag_finding;
pub use catalog::{RULES, rule};
pub use config::HistoryEntry;
pub use config::ImageConfig;
use content::Examples;
pub use content::{LayerScan, ScanMemo, ScanPlan, TarScan, elf_machine};
pub use flat::{FlatView, LayerDelta, Node, NodeKind, flatten};
pub use limits::{check_limits, index_finding};
pub use policy::{RulePolicy, rule_id};

use crate::image::Architecture;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// One rule: what it checks and where the fact comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rule {
    /// Stable id (`LI040`), never reused.
    pub id: &'static str,
    /// Stable readable name (`hard-link`).
    pub name: &'static str,
    pub severity: Severity,
    pub summary: &'static str,
    pub fix: &'static str,
    /// Where the fact comes from (AWS documentation or field reports).
    pub source: &'static str,
}

/// One broken rule in one image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule_id: &'static str,
    pub rule_name: &'static str,
    pub severity: Severity,
    /// One line naming the object and the figures.
    pub message: String,
    pub fix: &'static str,
}

impl Finding {
    pub fn new(rule: &Rule, message: impl Into<String>) -> Finding {
        Finding {
            rule_id: rule.id,
            rule_name: rule.name,
            severity: rule.severity,
            message: message.into(),
            fix: rule.fix,
        }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}[{} {}]: {}\n  fix: {}",
            self.severity, self.rule_id, self.rule_name, self.message, self.fix
        )
    }
}

/// Whether any finding is an error (the build stops, `check` exits non-zero).
pub fn has_errors(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity == Severity::Error)
}

/// The human view of findings: one block per finding, errors first.
pub fn render_findings(findings: &[Finding]) -> String {
    let mut sorted: Vec<&Finding> = findings.iter().collect();
    sorted.sort_by_key(|f| std::cmp::Reverse(f.severity));
    let mut out = String::new();
    for f in sorted {
        out.push_str(&f.to_string());
        out.push('\n');
    }
    out
}

/// `2 errors, 1 warning, 0 info` (or `no findings`), for the last line of a report.
pub fn summary(findings: &[Finding]) -> String {
    if findings.is_empty() {
        return "no findings".into();
    }
    let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
    let (e, w, i) = (
        count(Severity::Error),
        count(Severity::Warning),
        count(Severity::Info),
    );
    format!(
        "{e} error{}, {w} warning{}, {i} info",
        if e == 1 { "" } else { "s" },
        if w == 1 { "" } else { "s" }
    )
}

/// Limits a build or check enforces; the CLI may override each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Total uncompressed layer bytes (10 GiB).
    pub max_uncompressed: u64,
    /// Manifest bytes.
    pub max_manifest_bytes: u64,
    /// More layers than this is a warning.
    pub layer_warning: usize,
    /// More layers than this is an error.
    pub layer_error: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_uncompressed: 10_737_418_240,
            max_manifest_bytes: 25_400,
            layer_warning: 100,
            layer_error: 127,
        }
    }
}

/// What the caller knows about the function the image is for.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckContext {
    /// The function's architecture; `None` checks ELF binaries against the config's.
    pub arch: Option<Architecture>,
    /// Lambda runtime id (`python3.12`, `nodejs20.x`); `None` infers it from
    /// `AWS_EXECUTION_ENV` in the config, else skips the handler rule.
    pub runtime: Option<String>,
    /// The handler (`app.lambda_handler`); `None` takes CMD[0].
    pub handler: Option<String>,
    pub limits: Limits,
}

pub use crate::tar_walk::StreamDigests;
/// Why the rules could not check an image: a layer they could not walk (the
/// rules themselves only return findings).
pub use crate::tar_walk::WalkError as CheckError;

/// Every rule: [`check_limits`] plus the filesystem rules, which stream each
/// layer once (never unpacked to disk; memory grows with the number of paths,
/// not with layer bytes).
pub fn check_image(image: &crate::image::Image, ctx: &CheckContext) -> Result<Vec<Finding>, CheckError> {
    check_image_with(image, ctx, None)
}

/// [`check_image`], keeping each layer's scan in `memo`: a rebuild that
/// changed only the code layer reads only that layer again.
pub fn check_image_with(
    image: &crate::image::Image,
    ctx: &CheckContext,
    memo: Option<&dyn ScanMemo>,
) -> Result<Vec<Finding>, CheckError> {
    let mut findings = check_limits(image, &ctx.limits, ctx.arch);
    findings.extend(content::check_content(image, ctx, memo, None)?);
    Ok(findings)
}

/// The filesystem rules alone (no [`check_limits`]), hashing on the way the
/// layers `reads` asks for: `check` verifies a blob on the read that scans it
/// instead of inflating it twice.
pub fn check_content_reading(
    image: &crate::image::Image,
    ctx: &CheckContext,
    reads: &LayerReads,
) -> Result<Vec<Finding>, CheckError> {
    content::check_content(image, ctx, None, Some(reads))
}

/// Which layers a scan hashes ([`check_content_reading`]), and the digests
/// those reads found, by layer index. Two layers are read at once, on two
/// threads, hence the lock.
pub struct LayerReads {
    hash: Vec<bool>,
    found: std::sync::Mutex<Vec<Option<StreamDigests>>>,
}

impl LayerReads {
    /// Hashes layer `i` where `hash[i]`.
    pub fn new(hash: Vec<bool>) -> LayerReads {
        let found = std::sync::Mutex::new(vec![None; hash.len()]);
        LayerReads { hash, found }
    }

    fn wants(&self, index: usize) -> bool {
        self.hash.get(index).copied().unwrap_or(false)
    }

    fn found(&self, index: usize, digests: StreamDigests) {
        let mut found = self.found.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = found.get_mut(index) {
            *slot = Some(digests);
        }
    }

    /// The digests of each layer hashed and read to its end (`None` for the
    /// others, and for a layer whose read failed or was never made).
    pub fn digests(self) -> Vec<Option<StreamDigests>> {
        self.found.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}
