//! The operating system's packages, from the package databases the image's
//! layers hold: dpkg's `var/lib/dpkg/status` (Debian, Ubuntu) and apk's
//! `lib/apk/db/installed` (Alpine). The namespace of a purl is the
//! distribution's `ID` from os-release. rpm's database (Amazon Linux, the
//! AWS base images) is read by `rpmdb`; its packages become purls here.

use super::discover::{Ecosystem, Package};
use crate::image::Digest;

/// Where each package database lives in an image (no leading `/`).
pub const DPKG_STATUS: &str = "var/lib/dpkg/status";
pub const APK_INSTALLED: &str = "lib/apk/db/installed";
/// os-release, in both places it is found.
pub const OS_RELEASE: [&str; 2] = ["etc/os-release", "usr/lib/os-release"];

/// Which database a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Database {
    Dpkg,
    Apk,
}

impl Database {
    pub fn at(path: &str) -> Option<Database> {
        match path {
            DPKG_STATUS => Some(Database::Dpkg),
            APK_INSTALLED => Some(Database::Apk),
            _ => None,
        }
    }
}

/// A system package as its database records it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SystemPackage {
    pub name: String,
    pub version: String,
    pub arch: Option<String>,
    pub license: Option<String>,
}

/// The installed packages a database file lists.
pub fn parse(database: Database, text: &str) -> Vec<SystemPackage> {
    match database {
        Database::Dpkg => dpkg_status(text),
        Database::Apk => apk_installed(text),
    }
}

/// dpkg's status file: RFC 822-style stanzas separated by blank lines; only
/// stanzas whose `Status` ends in `installed` are installed packages (a
/// removed package keeps a `deinstall ok config-files` stanza).
pub fn dpkg_status(text: &str) -> Vec<SystemPackage> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k == name).then(|| v.trim().to_string())
            })
        };
        let installed = field("Status").is_some_and(|s| s.split_whitespace().last() == Some("installed"));
        if let (true, Some(name), Some(version)) = (installed, field("Package"), field("Version")) {
            out.push(SystemPackage {
                name,
                version,
                arch: field("Architecture"),
                // dpkg records no licence; it is in /usr/share/doc/*/copyright as prose.
                license: None,
            });
        }
    }
    out.sort();
    out
}

/// apk's installed database: stanzas of `X:value` lines (`P` name, `V`
/// version, `A` architecture, `L` licence) separated by blank lines.
pub fn apk_installed(text: &str) -> Vec<SystemPackage> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let field = |key: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(':').map(str::to_string))
        };
        if let (Some(name), Some(version)) = (field("P"), field("V")) {
            out.push(SystemPackage {
                name,
                version,
                arch: field("A"),
                license: field("L").filter(|l| !l.is_empty()),
            });
        }
    }
    out.sort();
    out
}

/// `ID` from an os-release file (`debian`, `ubuntu`, `alpine`).
pub fn os_release_id(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let v = l.strip_prefix("ID=")?;
        Some(v.trim().trim_matches('"').to_ascii_lowercase()).filter(|v| !v.is_empty())
    })
}

/// The purl of `p` from `database`: `pkg:deb/ID/NAME@VERSION?arch=ARCH`,
/// `pkg:apk/ID/NAME@VERSION?arch=ARCH`; `id` defaults to debian / alpine.
pub fn purl(database: Database, id: Option<&str>, p: &SystemPackage) -> String {
    let (kind, default) = match database {
        Database::Dpkg => ("deb", "debian"),
        Database::Apk => ("apk", "alpine"),
    };
    let encode = |s: &str| super::discover::percent_encode(s, b"-._~+");
    let mut purl = format!(
        "pkg:{kind}/{}/{}@{}",
        encode(id.unwrap_or(default)),
        encode(&p.name),
        encode(&p.version)
    );
    if let Some(arch) = &p.arch {
        purl.push_str(&format!("?arch={}", encode(arch)));
    }
    purl
}

/// The SBOM packages of an rpm database found in `layer`, without the
/// `gpg-pubkey` entries (signing keys rpm records as pseudo-packages).
pub(super) fn rpm_packages(db: &crate::rpmdb::Database, id: Option<&str>, layer: &Digest) -> Vec<Package> {
    db.packages
        .iter()
        .filter(|p| p.name != "gpg-pubkey")
        .map(|p| Package {
            ecosystem: Ecosystem::Rpm,
            name: p.name.clone(),
            version: p.evr(),
            license: p.license.clone(),
            purl: rpm_purl(id, p),
            path: db.path.trim_start_matches('/').to_string(),
            layer: layer.clone(),
            checksum: None,
            integrity: None,
            download: None,
        })
        .collect()
}

/// `pkg:rpm/ID/NAME@VERSION-RELEASE?arch=ARCH&epoch=EPOCH&upstream=SRPM`
/// (qualifiers sorted, each only when the header has it; no namespace
/// without an os-release `ID`).
pub fn rpm_purl(id: Option<&str>, p: &crate::rpmdb::RpmPackage) -> String {
    let encode = |s: &str| super::discover::percent_encode(s, b"-._~+");
    let namespace = id.map(|id| format!("{}/", encode(id))).unwrap_or_default();
    let mut purl = format!(
        "pkg:rpm/{namespace}{}@{}",
        encode(&p.name),
        encode(&format!("{}-{}", p.version, p.release))
    );
    let qualifiers: Vec<String> = [
        ("arch", p.arch.clone()),
        ("epoch", p.epoch.map(|e| e.to_string())),
        ("upstream", p.source_rpm.clone()),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| format!("{k}={}", encode(&v))))
    .collect();
    if !qualifiers.is_empty() {
        purl.push('?');
        purl.push_str(&qualifiers.join("&"));
    }
    purl
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_lists_installed_packages_only() {
        let status = "Package: libc6\nStatus: install ok installed\nPriority: optional\nArchitecture: amd64\nVersion: 2.36-9+deb12u4\nDescription: GNU C Library\n multi-line: not a field\n\nPackage: old\nStatus: deinstall ok config-files\nVersion: 1\n\nPackage: tzdata\nStatus: install ok installed\nArchitecture: all\nVersion: 2024a-0+deb12u1\n";
        let found = dpkg_status(status);
        assert_eq!(
            found.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["libc6", "tzdata"]
        );
        assert_eq!(
            purl(Database::Dpkg, Some("debian"), &found[0]),
            "pkg:deb/debian/libc6@2.36-9+deb12u4?arch=amd64"
        );
    }

    #[test]
    fn apk_reads_name_version_arch_and_licence() {
        let db = "C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\nT:the musl c library\n\nC:Q1def=\nP:busybox\nV:1.36.1-r5\nA:x86_64\nL:GPL-2.0-only\n";
        let found = apk_installed(db);
        assert_eq!(found.len(), 2);
        assert_eq!(found[1].license.as_deref(), Some("MIT"));
        assert_eq!(
            purl(
                Database::Apk,
                os_release_id("NAME=\"Alpine Linux\"\nID=alpine\n").as_deref(),
                &found[1]
            ),
            "pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64"
        );
    }

    #[test]
    fn rpm_purls_carry_arch_epoch_and_the_source_package() {
        let mut p = crate::rpmdb::RpmPackage {
            name: "bash".into(),
            epoch: None,
            version: "5.2.15".into(),
            release: "1.amzn2023.0.2".into(),
            arch: Some("x86_64".into()),
            license: Some("GPLv3+".into()),
            source_rpm: Some("bash-5.2.15-1.amzn2023.0.2.src.rpm".into()),
        };
        assert_eq!(
            rpm_purl(Some("amzn"), &p),
            "pkg:rpm/amzn/bash@5.2.15-1.amzn2023.0.2?arch=x86_64&upstream=bash-5.2.15-1.amzn2023.0.2.src.rpm"
        );
        p.epoch = Some(1);
        p.source_rpm = None;
        assert_eq!(
            rpm_purl(None, &p),
            "pkg:rpm/bash@5.2.15-1.amzn2023.0.2?arch=x86_64&epoch=1"
        );
    }
}
