//! `[cache]`: the registry repository shared as a layer cache by every
//! machine that builds this function (`--cache-registry` overrides it).

use super::schema::CacheTable;
use super::validate::Checker;

/// `[cache]` as validated; the repository is checked in full when the build
/// opens it (the reference grammar lives with the registry client).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheSettings {
    /// `[cache] registry`: `host/repository`.
    pub registry: Option<String>,
    /// `[cache] readonly`: look records up, never push.
    pub readonly: bool,
}

pub(super) fn check(c: &mut Checker, table: Option<&CacheTable>) -> CacheSettings {
    let Some(table) = table else {
        return CacheSettings::default();
    };
    if let Some(r) = &table.registry {
        let value = r.get_ref();
        if value.is_empty() || value.chars().any(char::is_whitespace) || !value.contains('/') {
            c.report(
                r.span(),
                "cache.registry",
                format!(
                    "cache.registry {value:?} is not a registry repository: use HOST/REPOSITORY, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/lambda-img-cache"
                ),
            );
        }
    }
    CacheSettings {
        registry: table.registry.as_ref().map(|r| r.get_ref().clone()),
        readonly: table.readonly.unwrap_or(false),
    }
}
