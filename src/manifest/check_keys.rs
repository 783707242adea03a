//! `[check]` keys: rule ids or names to allow or deny, and `strict`. Each
//! unknown id is a problem at its line and column.

use std::path::Path;

use serde::Deserialize;

use super::ManifestError;
use super::schema::{CheckTable, SpannedString};
use super::validate::Checker;
use crate::rules::{RulePolicy, rule_id};

pub(super) fn check_rules(c: &mut Checker, table: Option<&CheckTable>) -> RulePolicy {
    let Some(table) = table else {
        return RulePolicy::default();
    };
    let mut ids = |list: &[SpannedString], key: &str| {
        let mut out = std::collections::BTreeSet::new();
        for (i, s) in list.iter().enumerate() {
            match rule_id(s.get_ref()) {
                Ok(id) => {
                    out.insert(id);
                }
                Err(why) => c.report(
                    s.span(),
                    format!("check.{key}[{i}]"),
                    format!("check.{key}: {why}"),
                ),
            }
        }
        out
    };
    let allow = ids(&table.allow, "allow");
    let deny = ids(&table.deny, "deny");
    for (i, s) in table.deny.iter().enumerate() {
        if let Ok(id) = rule_id(s.get_ref())
            && allow.contains(id)
        {
            c.report(
                s.span(),
                format!("check.deny[{i}]"),
                format!("check.deny: {id} is also in check.allow; keep it in one list"),
            );
        }
    }
    RulePolicy {
        allow,
        deny,
        strict: table.strict.unwrap_or(false),
    }
}

/// Only the `[check]` table of the manifest at `path`, for `lambda-img check`
/// run in a project (the rest is not validated: its sources need not exist).
pub fn read_rule_policy(path: &Path) -> Result<RulePolicy, ManifestError> {
    #[derive(Deserialize)]
    struct Partial {
        #[serde(default)]
        check: Option<CheckTable>,
    }
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let partial: Partial = toml::from_str(&text).map_err(|e| ManifestError::Invalid {
        path: path.to_path_buf(),
        problems: vec![super::de_problem(&e, &text, path)],
    })?;
    let mut c = Checker::new(&text, path, Path::new("."));
    let policy = check_rules(&mut c, partial.check.as_ref());
    let problems = c.into_problems();
    if problems.is_empty() {
        Ok(policy)
    } else {
        Err(ManifestError::Invalid {
            path: path.to_path_buf(),
            problems,
        })
    }
}
