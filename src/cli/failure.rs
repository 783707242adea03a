//! How a failed command ends: its message once on stderr (each cause only
//! when it adds something), a JSON error object on stdout when `--json` was
//! asked for (so CI can read why), and the exit status: 1 when the build or
//! a rule failed, 2 for a command-line mistake.

use std::process::ExitCode;

use serde_json::json;

use super::{ExitStatus, UsageError, print_data};
use crate::build::BuildError;
use crate::rules::Finding;

/// Prints `err` and returns the exit status for it.
pub fn report(err: &anyhow::Error, json: bool) -> ExitCode {
    if let Some(status) = err.downcast_ref::<ExitStatus>() {
        return ExitCode::from(status.0);
    }
    let usage = err.downcast_ref::<UsageError>().is_some();
    let message = message(err);
    eprintln!("error: {message}");
    if json {
        let findings: &[Finding] = match err.downcast_ref::<BuildError>() {
            Some(BuildError::Rules(findings)) => findings,
            _ => &[],
        };
        let value = json!({
            "error": { "kind": kind(err, usage), "message": message },
            "findings": findings,
        });
        let _ = print_data(&serde_json::to_string_pretty(&value).unwrap_or_default());
    }
    ExitCode::from(if usage { 2 } else { 1 })
}

/// The error and its causes, outermost first, leaving out a cause whose text
/// the lines before already hold (`base image: X` then `X`).
pub fn message(err: &anyhow::Error) -> String {
    let mut text = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str("\n  caused by: ");
            text.push_str(&cause);
        }
    }
    text
}

/// A stable word for what failed, for scripts.
fn kind(err: &anyhow::Error, usage: bool) -> &'static str {
    if usage {
        return "usage";
    }
    match err.downcast_ref::<BuildError>() {
        Some(BuildError::Manifest(_)) => "manifest",
        Some(BuildError::Source(_)) => "base",
        Some(BuildError::Layer(_)) => "layer",
        Some(BuildError::Config(_)) => "config",
        Some(BuildError::Rules(_)) => "rules",
        Some(BuildError::Check(_)) => "check",
        Some(BuildError::Sink(_)) => "output",
        Some(BuildError::Overwrite(_)) => "output",
        Some(BuildError::Deps(_)) => "dependencies",
        Some(BuildError::Repair(_)) => "base-repair",
        // Variants added later still get a kind.
        #[allow(unreachable_patterns)]
        Some(_) => "build",
        None if err.downcast_ref::<crate::manifest::ManifestError>().is_some() => "manifest",
        None if err.downcast_ref::<super::settings::ManifestFileError>().is_some() => "manifest",
        None if err.downcast_ref::<crate::check::CheckOpError>().is_some() => "image",
        None => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("base image: {0}")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("registry said 404 for x")]
    struct Inner;

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let err = anyhow::Error::new(Outer(Inner));
        assert_eq!(message(&err), "base image: registry said 404 for x");
        let err = anyhow::Error::new(Inner).context("pushing fn:1");
        assert_eq!(
            message(&err),
            "pushing fn:1\n  caused by: registry said 404 for x"
        );
    }
}
