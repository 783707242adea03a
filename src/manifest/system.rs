//! `[system]`: packages installed by the base image's own package manager
//! (see `crate::system`). Checked here: the names are passed to the manager
//! as separate arguments, so a name must not look like an option or hold
//! whitespace; repositories must name a URL the manager can fetch.

use serde::Deserialize;

use super::schema::SpannedString;
use super::validate::Checker;

/// `[system]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemTable {
    pub packages: toml::Spanned<Vec<SpannedString>>,
    #[serde(default)]
    pub manager: Option<SpannedString>,
    #[serde(default)]
    pub repositories: Vec<SpannedString>,
    #[serde(default)]
    pub releasever: Option<SpannedString>,
}

/// The package managers lambda-img can drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PackageManager {
    Dnf,
    Microdnf,
    Yum,
    AptGet,
    Apk,
}

impl PackageManager {
    /// Every manager, in the order detection tries them (dnf before yum:
    /// AL2023 and Fedora ship a `yum` that is dnf).
    pub const ALL: [PackageManager; 5] = [
        PackageManager::Dnf,
        PackageManager::Microdnf,
        PackageManager::Yum,
        PackageManager::AptGet,
        PackageManager::Apk,
    ];

    /// The program's name (also its `manager = "…"` spelling).
    pub fn program(self) -> &'static str {
        match self {
            PackageManager::Dnf => "dnf",
            PackageManager::Microdnf => "microdnf",
            PackageManager::Yum => "yum",
            PackageManager::AptGet => "apt-get",
            PackageManager::Apk => "apk",
        }
    }

    /// `manager = "…"`; `apt` is accepted for `apt-get`.
    pub fn parse(name: &str) -> Option<PackageManager> {
        if name == "apt" {
            return Some(PackageManager::AptGet);
        }
        PackageManager::ALL.into_iter().find(|m| m.program() == name)
    }

    /// Managers of RPM repositories, which `releasever` pins.
    pub fn is_rpm(self) -> bool {
        matches!(
            self,
            PackageManager::Dnf | PackageManager::Microdnf | PackageManager::Yum
        )
    }
}

impl std::fmt::Display for PackageManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.program())
    }
}

/// A validated `[system]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemModel {
    /// In the order written (the install command's order; the cache key sorts them).
    pub packages: Vec<String>,
    /// `None`: detected in the base.
    pub manager: Option<PackageManager>,
    /// Repository URLs that replace the base's configured repositories for
    /// the install (apt: `URL SUITE COMPONENT...`).
    pub repositories: Vec<String>,
    /// dnf/microdnf/yum `--releasever`.
    pub releasever: Option<String>,
}

/// A package name the manager gets as one argument: printable, no
/// whitespace, not an option.
fn package_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("is empty");
    }
    if name.starts_with('-') {
        return Err("starts with '-', which the package manager would read as an option");
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("holds whitespace or a control character: list each package as its own string");
    }
    Ok(())
}

/// `http(s)://…` or `file://…` as the first word (apt adds suite and components after it).
fn repository(entry: &str) -> Result<(), &'static str> {
    let url = entry.split_whitespace().next().unwrap_or("");
    let ok = ["http://", "https://", "file://"]
        .iter()
        .any(|s| url.strip_prefix(s).is_some_and(|rest| !rest.is_empty()));
    if !ok {
        return Err("is not an http://, https:// or file:// URL");
    }
    if entry.chars().any(|c| c.is_control()) {
        return Err("holds a control character");
    }
    Ok(())
}

pub(super) fn check(c: &mut Checker, table: Option<&SystemTable>) -> Option<SystemModel> {
    let table = table?;
    let packages = table.packages.get_ref();
    if packages.is_empty() {
        c.report(
            table.packages.span(),
            "system.packages",
            "system.packages is empty: list at least one package, or remove the [system] table",
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, p) in packages.iter().enumerate() {
        let key = format!("system.packages[{i}]");
        if let Err(why) = package_name(p.get_ref()) {
            c.report(
                p.span(),
                &key,
                format!("system.packages: {:?} {why}", p.get_ref()),
            );
        } else if !seen.insert(p.get_ref().as_str()) {
            c.report(
                p.span(),
                &key,
                format!("system.packages: {:?} is listed twice", p.get_ref()),
            );
        }
    }
    let manager = table.manager.as_ref().and_then(|m| {
        let parsed = PackageManager::parse(m.get_ref());
        if parsed.is_none() {
            let known: Vec<&str> = PackageManager::ALL.iter().map(|m| m.program()).collect();
            c.report(
                m.span(),
                "system.manager",
                format!(
                    "system.manager {:?} is not a package manager lambda-img drives: use one of {} (or leave it out to detect the base's)",
                    m.get_ref(),
                    known.join(", ")
                ),
            );
        }
        parsed
    });
    for (i, r) in table.repositories.iter().enumerate() {
        if let Err(why) = repository(r.get_ref()) {
            c.report(
                r.span(),
                format!("system.repositories[{i}]"),
                format!(
                    "system.repositories: {:?} {why}: give a repository URL (for apt-get: \"URL SUITE COMPONENT...\", e.g. \"http://snapshot.debian.org/archive/debian/20241010T000000Z bookworm main\")",
                    r.get_ref()
                ),
            );
        }
    }
    if let Some(rv) = &table.releasever {
        let v = rv.get_ref();
        if v.is_empty() || v.starts_with('-') || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
            c.report(
                rv.span(),
                "system.releasever",
                format!("system.releasever {v:?} is not a release version such as \"2023.6.20241010\""),
            );
        }
        if manager.is_some_and(|m| !m.is_rpm()) {
            c.report(
                rv.span(),
                "system.releasever",
                format!(
                    "system.releasever pins dnf, microdnf or yum, not {}: pin apt-get with a snapshot URL in system.repositories instead",
                    manager.expect("checked")
                ),
            );
        }
    }
    Some(SystemModel {
        packages: packages.iter().map(|p| p.get_ref().clone()).collect(),
        manager,
        repositories: table.repositories.iter().map(|r| r.get_ref().clone()).collect(),
        releasever: table.releasever.as_ref().map(|r| r.get_ref().clone()),
    })
}

#[cfg(test)]
#[path = "system_tests.rs"]
mod tests;
