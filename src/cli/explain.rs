//! Rules from the command line: `--allow`/`--deny`/`--strict` (on `build`
//! and `check`), `check --list-rules` and `lambda-img explain ID`.

use clap::Args;

use super::print_data;
use crate::rules::{RULES, Rule, RulePolicy, rule_id};

/// Rule tuning flags shared by `build` and `check`.
#[derive(Debug, Clone, Default, Args)]
pub struct RuleArgs {
    /// A rule (id or name) whose findings never fail: they print as info.
    /// Repeat or separate with commas; wins over lambda-img.toml's [check].
    #[arg(long, value_name = "RULE", value_delimiter = ',', value_parser = rule_id)]
    pub allow: Vec<&'static str>,
    /// A rule (id or name) whose findings are errors.
    #[arg(long, value_name = "RULE", value_delimiter = ',', value_parser = rule_id)]
    pub deny: Vec<&'static str>,
    /// Every warning is an error.
    #[arg(long)]
    pub strict: bool,
}

impl RuleArgs {
    pub fn policy(&self) -> anyhow::Result<RulePolicy> {
        if let Some(both) = self.allow.iter().find(|id| self.deny.contains(id)) {
            return Err(
                super::UsageError(format!("{both} is given to both --allow and --deny: keep one")).into(),
            );
        }
        Ok(RulePolicy {
            allow: self.allow.iter().copied().collect(),
            deny: self.deny.iter().copied().collect(),
            strict: self.strict,
        })
    }
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// A rule id or name (`LI040`, `hard-link`).
    #[arg(value_parser = rule_id)]
    pub rule: &'static str,
}

/// The full text of one rule, with where the fact comes from.
pub fn explain_text(rule: &Rule) -> String {
    format!(
        "{} {} (default severity: {})\n\n{}.\n\nfix: {}\nsource: {}\n\nTune it with --allow {0} or --deny {0} \
         (build, check), or in lambda-img.toml: [check] allow = [\"{0}\"] / deny = [\"{0}\"].",
        rule.id, rule.name, rule.severity, rule.summary, rule.fix, rule.source
    )
}

/// One line per rule: id, default severity, name and why.
pub fn list_text() -> String {
    RULES
        .iter()
        .map(|r| {
            format!(
                "{}  {:<7}  {:<24}  {}",
                r.id,
                r.severity.to_string(),
                r.name,
                r.summary
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn run_explain(args: ExplainArgs) -> anyhow::Result<()> {
    let rule = crate::rules::rule(args.rule).expect("the parser resolved it");
    print_data(&explain_text(rule))
}

pub fn print_rules(json: bool) -> anyhow::Result<()> {
    if json {
        print_data(&serde_json::to_string_pretty(RULES)?)
    } else {
        print_data(&list_text())
    }
}
