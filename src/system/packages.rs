//! The packages a manager's database lists, parsed from its query output,
//! and which of them an install added or changed.

use std::collections::BTreeMap;

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct InstalledPackage {
    pub name: String,
    /// As the manager writes it (`1.6-2.1`, `1:2.39.2-1`).
    pub version: String,
    pub arch: String,
}

/// `STATUS\tNAME\tVERSION\tARCH` lines (dpkg-query, rpm): the installed ones
/// (`ii` for dpkg; every rpm line is written as `ii`).
pub fn parse_table(text: &str) -> Vec<InstalledPackage> {
    let mut out: Vec<InstalledPackage> = text
        .lines()
        .filter_map(|line| {
            let mut fields = line.split('\t');
            let status = fields.next()?;
            let (name, version, arch) = (fields.next()?, fields.next()?, fields.next()?);
            (status.trim() == "ii").then(|| InstalledPackage {
                name: name.to_string(),
                version: version.to_string(),
                arch: arch.to_string(),
            })
        })
        .collect();
    out.sort();
    out
}

/// An rpm package as rpm's query prints it: `EPOCH:VERSION-RELEASE` (the
/// epoch only when set), the architecture (empty for gpg-pubkey entries).
pub fn installed_rpm(p: &crate::rpmdb::RpmPackage) -> InstalledPackage {
    InstalledPackage {
        name: p.name.clone(),
        version: p.evr(),
        arch: p.arch.clone().unwrap_or_default(),
    }
}

/// apk's `/lib/apk/db/installed`: blank-line separated records of `P:` name, `V:` version, `A:` arch.
pub fn parse_apk(text: &str) -> Vec<InstalledPackage> {
    let mut out = Vec::new();
    for record in text.split("\n\n") {
        let field = |key: &str| {
            record
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .map(str::to_string)
        };
        if let (Some(name), Some(version)) = (field("P:"), field("V:")) {
            out.push(InstalledPackage {
                name,
                version,
                arch: field("A:").unwrap_or_default(),
            });
        }
    }
    out.sort();
    out
}

/// dpkg's `/var/lib/dpkg/status`: the records whose `Status` ends in `installed`.
pub fn parse_dpkg_status(text: &str) -> Vec<InstalledPackage> {
    let mut out = Vec::new();
    for record in text.split("\n\n") {
        let field = |key: &str| {
            record
                .lines()
                .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
        };
        let installed = field("Status:").is_some_and(|s| s.ends_with(" installed"));
        if let (true, Some(name), Some(version)) = (installed, field("Package:"), field("Version:")) {
            out.push(InstalledPackage {
                name,
                version,
                arch: field("Architecture:").unwrap_or_default(),
            });
        }
    }
    out.sort();
    out
}

/// The packages of `after` that `before` did not hold in that version.
pub fn installed_by(before: &[InstalledPackage], after: &[InstalledPackage]) -> Vec<InstalledPackage> {
    let old: BTreeMap<(&str, &str), &str> = before
        .iter()
        .map(|p| ((p.name.as_str(), p.arch.as_str()), p.version.as_str()))
        .collect();
    after
        .iter()
        .filter(|p| old.get(&(p.name.as_str(), p.arch.as_str())) != Some(&p.version.as_str()))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_rpm_and_apk_listings_parse() {
        let dpkg = parse_table("ii \tjq\t1.6-2.1\tamd64\nrc \told\t1\tamd64\nii \tlibjq1\t1.6-2.1\tamd64\n");
        assert_eq!(
            dpkg.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["jq", "libjq1"]
        );
        assert_eq!(dpkg[0].version, "1.6-2.1");
        let apk = parse_apk("C:Q1x\nP:musl\nV:1.2.4-r2\nA:x86_64\n\nP:jq\nV:1.7-r0\nA:x86_64\n");
        assert_eq!(apk[0].name, "jq");
        assert_eq!(apk[1].version, "1.2.4-r2");
        let status = parse_dpkg_status(
            "Package: jq\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.6-2.1\n\n\
             Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n",
        );
        assert_eq!(status.len(), 1);
        assert_eq!(
            (status[0].name.as_str(), status[0].version.as_str()),
            ("jq", "1.6-2.1")
        );
    }

    #[test]
    fn only_new_or_changed_packages_count_as_installed() {
        let p = |n: &str, v: &str| InstalledPackage {
            name: n.into(),
            version: v.into(),
            arch: "amd64".into(),
        };
        let before = [p("libc6", "2.36-9"), p("zlib1g", "1:1.2.13")];
        let after = [p("jq", "1.6-2.1"), p("libc6", "2.36-9"), p("zlib1g", "1:1.2.14")];
        assert_eq!(
            installed_by(&before, &after),
            [p("jq", "1.6-2.1"), p("zlib1g", "1:1.2.14")]
        );
    }
}
