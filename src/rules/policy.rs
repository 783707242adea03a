//! Rules users can tune: `allow` (a rule's findings become info and never
//! fail), `deny` (they become errors) and `strict` (every warning becomes an
//! error). Set in `lambda-img.toml` under `[check]` and on the command line
//! (`--allow`, `--deny`, `--strict`); a flag wins over the manifest for the
//! same rule. Applied to findings after the rules ran, so `build` and `check`
//! print the same severity for the same image.

use std::collections::BTreeSet;

use super::{Finding, RULES, Severity};

/// The tuning in effect for one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RulePolicy {
    pub allow: BTreeSet<&'static str>,
    pub deny: BTreeSet<&'static str>,
    pub strict: bool,
}

/// The rule id for an id or a name (`LI040`, `hard-link`), or a message
/// naming the unknown one and where to see them all.
pub fn rule_id(text: &str) -> Result<&'static str, String> {
    let upper = text.to_ascii_uppercase();
    RULES
        .iter()
        .find(|r| r.id == upper || r.name == text)
        .map(|r| r.id)
        .ok_or_else(|| format!("unknown rule {text:?}: `lambda-img check --list-rules` lists every rule id"))
}

impl RulePolicy {
    /// The manifest's `[check]` lists with the command line's over them.
    pub fn merged(manifest: &RulePolicy, flags: &RulePolicy) -> RulePolicy {
        let mut allow = &manifest.allow - &flags.deny;
        let mut deny = &manifest.deny - &flags.allow;
        allow.extend(&flags.allow);
        deny.extend(&flags.deny);
        RulePolicy {
            allow,
            deny,
            strict: manifest.strict || flags.strict,
        }
    }

    /// The findings with the tuning applied; each changed one says why.
    pub fn apply(&self, findings: Vec<Finding>) -> Vec<Finding> {
        findings
            .into_iter()
            .map(|mut f| {
                let (severity, why) = if self.allow.contains(f.rule_id) {
                    (Severity::Info, "allowed")
                } else if self.deny.contains(f.rule_id) {
                    (Severity::Error, "denied")
                } else if self.strict && f.severity == Severity::Warning {
                    (Severity::Error, "--strict")
                } else {
                    return f;
                };
                if severity != f.severity {
                    f.message = format!("{} ({why}; by default {})", f.message, f.severity);
                    f.severity = severity;
                }
                f
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::catalog::{DANGLING_SYMLINK, HARD_LINK, IGNORED_CONFIG};

    fn ids(set: &[&'static str]) -> BTreeSet<&'static str> {
        set.iter().copied().collect()
    }

    #[test]
    fn allow_deny_and_strict_change_severity_and_say_so() {
        let findings = vec![
            Finding::new(&HARD_LINK, "layer 1 has hard links"),
            Finding::new(&DANGLING_SYMLINK, "1 symlink"),
            Finding::new(&IGNORED_CONFIG, "User"),
        ];
        let policy = RulePolicy {
            allow: ids(&["LI040"]),
            deny: ids(&["LI070"]),
            strict: true,
        };
        let tuned = policy.apply(findings);
        let got: Vec<(Severity, &str)> = tuned.iter().map(|f| (f.severity, f.message.as_str())).collect();
        assert_eq!(
            got,
            [
                (
                    Severity::Info,
                    "layer 1 has hard links (allowed; by default error)"
                ),
                (Severity::Error, "1 symlink (--strict; by default warning)"),
                (Severity::Error, "User (denied; by default info)"),
            ]
        );
    }

    #[test]
    fn flags_win_over_the_manifest_and_names_resolve() {
        let manifest = RulePolicy {
            allow: ids(&["LI044"]),
            deny: ids(&["LI070"]),
            strict: false,
        };
        let flags = RulePolicy {
            allow: ids(&["LI070"]),
            deny: ids(&["LI044"]),
            strict: false,
        };
        let merged = RulePolicy::merged(&manifest, &flags);
        assert_eq!(merged.allow, ids(&["LI070"]));
        assert_eq!(merged.deny, ids(&["LI044"]));
        assert_eq!(rule_id("hard-link"), Ok("LI040"));
        assert_eq!(rule_id("li041"), Ok("LI041"));
        assert_eq!(
            rule_id("LI999").unwrap_err(),
            "unknown rule \"LI999\": `lambda-img check --list-rules` lists every rule id"
        );
    }
}
