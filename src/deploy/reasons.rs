//! What a failed `UpdateFunctionCode` means in `check`'s terms: Lambda's
//! `LastUpdateStatusReasonCode` mapped to the rules that would have caught it.

use crate::rules::{Rule, rule};

/// The rules of `check` that cover a reason code, and advice when none does
/// (access and lifecycle problems are not properties of the image).
pub struct ReasonMapping {
    pub rules: Vec<&'static Rule>,
    pub advice: &'static str,
}

/// Maps Lambda's reason code (as Lambda spells it) to check rules.
pub fn map_reason(code: &str) -> ReasonMapping {
    let (ids, advice): (&[&str], &str) = match code {
        "InvalidImage" => (
            &[
                "index-not-manifest",
                "manifest-media-type",
                "media-type-mix",
                "layer-not-gzip",
                "config-invalid",
            ],
            "Lambda could not read the image: run `lambda-img check` on it",
        ),
        "UnsupportedImageLayerDetected" => (
            &["layer-not-gzip", "hard-link", "missing-parent"],
            "a layer is in a form Lambda's unpacker refuses",
        ),
        "ImageDeleted" => (
            &[],
            "the image was deleted from ECR before Lambda pulled it: push it again and keep the previous image until the update succeeds",
        ),
        "ImageAccessDenied" => (
            &[],
            "Lambda may not pull from the repository: the ECR repository policy must allow lambda.amazonaws.com (ecr:BatchGetImage, ecr:GetDownloadUrlForLayer), and a KMS-encrypted repository its key",
        ),
        "FunctionError.InvalidEntryPoint" => (
            &[
                "no-entrypoint",
                "entrypoint-not-absolute",
                "entrypoint-symlink",
                "entrypoint-missing",
                "entrypoint-not-executable",
                "handler-not-found",
            ],
            "the entrypoint or handler cannot be started",
        ),
        "FunctionError.InvalidWorkingDirectory" => (
            &["unenterable-dir"],
            "the image's WorkingDir does not exist or cannot be entered by the function's user",
        ),
        "FunctionError.PermissionDenied" => (
            &["entrypoint-not-executable", "unreadable-file", "unenterable-dir"],
            "the function's (non-root) user cannot read or run a file it needs",
        ),
        _ => (&[], "see Lambda's reason above"),
    };
    ReasonMapping {
        rules: ids.iter().filter_map(|id| rule(id)).collect(),
        advice,
    }
}

/// One paragraph for an error message: Lambda's words, then the rules.
pub fn explain(code: &str, reason: &str) -> String {
    let mapping = map_reason(code);
    let mut text = format!("Lambda: {code}: {reason}\n{}", mapping.advice);
    for r in &mapping.rules {
        text.push_str(&format!(
            "\n  covered by {} {}: {} (fix: {})",
            r.id, r.name, r.summary, r.fix
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_reason_maps_to_known_rules() {
        for code in [
            "InvalidImage",
            "UnsupportedImageLayerDetected",
            "FunctionError.InvalidEntryPoint",
            "FunctionError.InvalidWorkingDirectory",
            "FunctionError.PermissionDenied",
        ] {
            let m = map_reason(code);
            assert!(!m.rules.is_empty(), "{code} maps to no rule");
        }
        assert_eq!(map_reason("FunctionError.InvalidEntryPoint").rules[0].id, "LI030");
        assert!(map_reason("ImageAccessDenied").rules.is_empty());
        let text = explain("FunctionError.PermissionDenied", "EACCES /var/task/app");
        assert!(text.contains("Lambda: FunctionError.PermissionDenied: EACCES"));
        assert!(text.contains("LI050 unreadable-file"));
    }
}
