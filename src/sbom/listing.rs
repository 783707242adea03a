//! The packages an SBOM document lists, read back from its JSON (SPDX 2.3 or
//! CycloneDX 1.6, as this module writes them or as another tool did), for
//! `inspect --sbom`.

use serde::Serialize;
use serde_json::Value;

/// One package as `inspect --sbom` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listed {
    pub name: String,
    pub version: Option<String>,
    pub purl: Option<String>,
    pub license: Option<String>,
}

/// The packages of an SPDX or CycloneDX JSON document (the image itself,
/// the document's subject, is not one of them).
pub fn packages(document: &[u8]) -> Result<Vec<Listed>, String> {
    let doc: Value = serde_json::from_slice(document).map_err(|e| format!("the SBOM is not JSON: {e}"))?;
    let text = |v: &Value| v.as_str().map(str::to_string);
    if doc.get("spdxVersion").is_some() {
        let described: Vec<&Value> = doc["relationships"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["relationshipType"] == "DESCRIBES")
            .map(|r| &r["relatedSpdxElement"])
            .collect();
        return Ok(doc["packages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| !described.contains(&&p["SPDXID"]))
            .map(|p| Listed {
                name: text(&p["name"]).unwrap_or_default(),
                version: text(&p["versionInfo"]),
                purl: p["externalRefs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|r| r["referenceType"] == "purl")
                    .and_then(|r| text(&r["referenceLocator"])),
                license: text(&p["licenseDeclared"]),
            })
            .collect());
    }
    if doc["bomFormat"] == "CycloneDX" {
        return Ok(doc["components"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| Listed {
                name: match text(&c["group"]) {
                    Some(g) => format!("{g}/{}", c["name"].as_str().unwrap_or_default()),
                    None => text(&c["name"]).unwrap_or_default(),
                },
                version: text(&c["version"]),
                purl: text(&c["purl"]),
                license: c["licenses"].get(0).and_then(|l| {
                    text(&l["expression"])
                        .or_else(|| text(&l["license"]["id"]))
                        .or_else(|| text(&l["license"]["name"]))
                }),
            })
            .collect());
    }
    Err("the SBOM is neither SPDX (spdxVersion) nor CycloneDX (bomFormat) JSON".into())
}

/// The packages as a table: name, version, purl, licence.
pub fn render(packages: &[Listed]) -> String {
    let rows: Vec<[&str; 4]> = packages
        .iter()
        .map(|p| {
            [
                p.name.as_str(),
                p.version.as_deref().unwrap_or("-"),
                p.purl.as_deref().unwrap_or("-"),
                p.license.as_deref().unwrap_or("-"),
            ]
        })
        .collect();
    let header = ["NAME", "VERSION", "PURL", "LICENSE"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    std::iter::once(header)
        .chain(rows)
        .map(|row| {
            let cells: Vec<String> = row.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
            cells.join("  ").trim_end().to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Digest;
    use crate::sbom::{Ecosystem, Package, Subject, cyclonedx_json, spdx_json};

    #[test]
    fn both_formats_list_the_same_library_and_not_the_image() {
        let subject = Subject {
            name: "f".into(),
            manifest_digest: Digest::of(b"m"),
            base: None,
            code_layer: None,
            epoch: 0,
        };
        let package = Package {
            ecosystem: Ecosystem::Npm,
            name: "@scope/left-pad".into(),
            version: "1.3.0".into(),
            license: Some("MIT".into()),
            purl: "pkg:npm/%40scope/left-pad@1.3.0".into(),
            path: "var/task/node_modules/@scope/left-pad/package.json".into(),
            layer: Digest::of(b"l"),
            checksum: None,
            integrity: None,
            download: None,
        };
        for doc in [
            spdx_json(&subject, std::slice::from_ref(&package)),
            cyclonedx_json(&subject, std::slice::from_ref(&package)),
        ] {
            let listed = packages(&doc).unwrap();
            let lib = listed
                .iter()
                .find(|p| p.version.as_deref() == Some("1.3.0"))
                .unwrap();
            assert_eq!(lib.purl.as_deref(), Some("pkg:npm/%40scope/left-pad@1.3.0"));
            assert_eq!(lib.license.as_deref(), Some("MIT"));
            assert!(!listed.iter().any(|p| p.name == "f"), "{listed:?}");
        }
        assert!(packages(b"{}").is_err());
        assert!(render(&packages(&spdx_json(&subject, &[package])).unwrap()).starts_with("NAME"));
    }
}
