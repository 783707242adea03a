//! The archives pip installed the Python distributions from, as pip's
//! installation report (`pip install --report`) names them: the wheel's
//! sha256 and the URL it came from. The installed `*.dist-info` does not
//! carry either (pip writes no `direct_url.json` for an index download), so
//! the build passes what the install recorded, and the SBOM adds it to the
//! distribution of the same name and version.

use serde::{Deserialize, Serialize};

use super::discover::{Ecosystem, Package};
use super::npm_lock::Integrity;

/// One archive an installer downloaded, by what it installed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct KnownArchive {
    /// The distribution's name as its metadata spells it.
    pub name: String,
    pub version: String,
    /// The archive's sha256 (hex), as the index published it and pip checked it.
    pub sha256: String,
    /// Where it was downloaded from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// PEP 503's normalised form: lowercase, runs of `-`, `_`, `.` as one `-`.
pub fn normalise_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// Adds the archive's sha256 and URL to each Python package of `packages`
/// that `archives` lists by the same (normalised) name and version. Returns
/// how many were matched; a package installed some other way keeps none.
pub fn enrich(packages: &mut [Package], archives: &[KnownArchive]) -> usize {
    let mut matched = 0;
    for p in packages.iter_mut().filter(|p| p.ecosystem == Ecosystem::Pypi) {
        let name = normalise_name(&p.name);
        let Some(a) = archives
            .iter()
            .find(|a| normalise_name(&a.name) == name && a.version == p.version)
        else {
            continue;
        };
        p.integrity = Some(Integrity {
            algorithm: "SHA256",
            hex: a.sha256.clone(),
        });
        p.download.clone_from(&a.url);
        matched += 1;
    }
    matched
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Digest;

    fn pypi(name: &str, version: &str) -> Package {
        Package {
            ecosystem: Ecosystem::Pypi,
            name: name.into(),
            version: version.into(),
            license: None,
            purl: String::new(),
            path: format!("var/task/{name}-{version}.dist-info/METADATA"),
            layer: Digest::of(b"layer"),
            checksum: None,
            integrity: None,
            download: None,
        }
    }

    #[test]
    fn archives_match_by_normalised_name_and_exact_version() {
        let mut packages = vec![pypi("Foo_Bar", "1.0"), pypi("other", "2.0"), pypi("old", "1.0")];
        let archives = vec![
            KnownArchive {
                name: "foo.bar".into(),
                version: "1.0".into(),
                sha256: "ab".repeat(32),
                url: Some("https://files.example/foo_bar-1.0-py3-none-any.whl".into()),
            },
            KnownArchive {
                name: "old".into(),
                version: "1.1".into(),
                sha256: "cd".repeat(32),
                url: None,
            },
        ];
        assert_eq!(enrich(&mut packages, &archives), 1);
        let hash = packages[0].integrity.as_ref().unwrap();
        assert_eq!(
            (hash.algorithm, hash.hex.as_str()),
            ("SHA256", "ab".repeat(32).as_str())
        );
        assert!(packages[0].download.as_deref().unwrap().ends_with(".whl"));
        assert_eq!(packages[1].integrity, None);
        // Another version of the same name is another archive.
        assert_eq!(packages[2].integrity, None);
        assert_eq!(normalise_name("Zope.Interface__x"), "zope-interface-x");
    }
}
