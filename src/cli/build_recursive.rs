//! `lambda-img build --recursive [DIR...]`.

use std::path::PathBuf;

use serde::Serialize;

use super::{ExitStatus, print_data};
use crate::build::BuildOptions;
use crate::build_all::build_all;
use crate::cache::Cache;
use crate::report::Reporter;
use crate::report::metadata::{build_report, write_metadata_file};

/// One function in the JSON report: its build report, or why it failed.
#[derive(Serialize)]
struct FunctionReport<'a> {
    function: Option<&'a str>,
    manifest: &'a std::path::Path,
    /// What `build --json` prints for this function alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Builds every function found under `dirs`; prints `function REF@digest`
/// lines (or the JSON array) on stdout and each failure on stderr. The
/// `--metadata-file` gets the JSON array.
pub fn run(
    dirs: &[PathBuf],
    json: bool,
    metadata_file: Option<&std::path::Path>,
    options: &BuildOptions,
    cache: &Cache,
    reporter: &dyn Reporter,
) -> anyhow::Result<()> {
    let manifests = crate::discover::find_manifests(dirs)?;
    let builds = build_all(&manifests, options, cache, reporter)?;
    let mut lines = Vec::new();
    let mut reports = Vec::new();
    let mut failed = 0;
    for b in &builds {
        let name = b.function.as_deref().unwrap_or("?");
        match &b.result {
            Ok(outcome) => {
                let pushed: Vec<&str> = outcome
                    .outputs
                    .iter()
                    .filter_map(|o| o.reference.as_deref())
                    .collect();
                let what = if pushed.is_empty() {
                    outcome.image.manifest_digest.to_string()
                } else {
                    pushed.join(" ")
                };
                lines.push(format!("{name} {what}"));
                reports.push(FunctionReport {
                    function: b.function.as_deref(),
                    manifest: &b.manifest,
                    report: Some(build_report(
                        &outcome.image,
                        &outcome.base,
                        &outcome.outputs,
                        &outcome.output_digests,
                        &outcome.repaired,
                        &outcome.findings,
                    )),
                    error: None,
                });
            }
            Err(e) => {
                failed += 1;
                reporter.warn(&format!("{name} ({}) failed: {}", b.manifest.display(), chain(e)));
                reports.push(FunctionReport {
                    function: b.function.as_deref(),
                    manifest: &b.manifest,
                    report: None,
                    error: Some(chain(e)),
                });
            }
        }
    }
    if let Some(path) = metadata_file {
        write_metadata_file(path, &serde_json::to_value(&reports)?)?;
    }
    if json {
        print_data(&serde_json::to_string_pretty(&reports)?)?;
    } else if !lines.is_empty() {
        print_data(&lines.join("\n"))?;
    }
    if failed > 0 {
        reporter.warn(&format!(
            "{failed} of {} function(s) failed to build",
            builds.len()
        ));
        return Err(ExitStatus(1).into());
    }
    Ok(())
}

/// The error and its causes on one line, outermost first.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}
