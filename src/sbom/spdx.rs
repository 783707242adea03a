//! The SPDX 2.3 JSON document. Keys are written in a fixed order
//! (serde_json keeps insertion order here), packages are sorted, and nothing
//! depends on the clock or the machine: `created` is the build's epoch and the
//! namespace is derived from the image's manifest digest.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::Subject;
use super::discover::Package;
use super::license::Declared;
use crate::image::Digest;
use crate::image::config::rfc3339;

const IMAGE_ID: &str = "SPDXRef-Image";
const BASE_ID: &str = "SPDXRef-Base";
const CODE_ID: &str = "SPDXRef-CodeLayer";

/// The document's bytes: pretty JSON with a final newline.
pub fn spdx_json(subject: &Subject, packages: &[Package]) -> Vec<u8> {
    let digest = &subject.manifest_digest;
    let (image_purl, base_purl) = oci_purls(subject);
    let mut entries = vec![package(
        IMAGE_ID,
        &subject.name,
        Some(digest.to_string()),
        Some(digest),
        "CONTAINER",
        &Declared::NoAssertion,
        Some(image_purl),
        None,
    )];
    let mut relationships = vec![relationship("SPDXRef-DOCUMENT", "DESCRIBES", IMAGE_ID)];
    if let Some(base) = &subject.base {
        entries.push(package(
            BASE_ID,
            &base.name,
            base.digest.as_ref().map(Digest::to_string),
            base.digest.as_ref(),
            "CONTAINER",
            &Declared::NoAssertion,
            base_purl,
            Some("the base image; its own packages are not listed".to_string()),
        ));
        relationships.push(relationship(IMAGE_ID, "DESCENDANT_OF", BASE_ID));
    }
    if let Some(code) = &subject.code_layer {
        entries.push(package(
            CODE_ID,
            &format!("{} code layer", subject.name),
            Some(code.to_string()),
            Some(code),
            "ARCHIVE",
            &Declared::NoAssertion,
            None,
            Some("the function's code layer, by its blob digest".to_string()),
        ));
        relationships.push(relationship(IMAGE_ID, "CONTAINS", CODE_ID));
    }
    let mut extracted: BTreeMap<String, String> = BTreeMap::new();
    for (i, p) in packages.iter().enumerate() {
        let id = format!("SPDXRef-Package-{}-{}", p.ecosystem.as_str(), i + 1);
        let declared = Declared::of(p.license.as_deref());
        if let Declared::Reference { id, text } = &declared {
            extracted.insert(id.clone(), text.clone());
        }
        let purpose = match p.ecosystem {
            super::Ecosystem::Generic => "APPLICATION",
            _ => "LIBRARY",
        };
        entries.push(package(
            &id,
            &p.name,
            Some(p.version.clone()),
            p.checksum.as_ref(),
            purpose,
            &declared,
            Some(p.purl.clone()),
            Some(format!("found at /{} in layer {}", p.path, p.layer)),
        ));
        if let Some(entry) = entries.last_mut() {
            if let Some(i) = &p.integrity {
                entry["checksums"] = json!([{ "algorithm": i.algorithm, "checksumValue": i.hex }]);
            }
            if let Some(url) = &p.download {
                entry["downloadLocation"] = url.clone().into();
            }
        }
        relationships.push(relationship(IMAGE_ID, "CONTAINS", &id));
    }
    let mut doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": subject.name,
        "documentNamespace": format!("https://spdx.org/spdxdocs/lambda-img/{}-{}", subject.name, digest.hex()),
        "creationInfo": {
            "created": rfc3339(subject.epoch),
            "creators": [concat!("Tool: lambda-img-", env!("CARGO_PKG_VERSION"))],
        },
        "packages": entries,
    });
    if !extracted.is_empty() {
        doc["hasExtractedLicensingInfos"] = extracted
            .into_iter()
            .map(|(id, text)| json!({ "licenseId": id, "extractedText": text, "name": id }))
            .collect();
    }
    doc["relationships"] = Value::Array(relationships);
    let mut bytes = serde_json::to_vec_pretty(&doc).expect("a JSON value serializes");
    bytes.push(b'\n');
    bytes
}

/// The purls of the image (`pkg:oci/NAME@DIGEST`) and of its base
/// (`pkg:oci/REPO@DIGEST?repository_url=...&tag=...`).
pub(super) fn oci_purls(subject: &Subject) -> (String, Option<String>) {
    let image = format!(
        "pkg:oci/{}@{}",
        purl_name(&subject.name),
        purl_digest(&subject.manifest_digest)
    );
    let base = subject.base.as_ref().map(|base| {
        let (repository, tag) = split_tag(&base.name);
        let last = repository.rsplit('/').next().unwrap_or(repository);
        let mut qualifiers = vec![format!("repository_url={}", purl_qualifier(repository))];
        if let Some(tag) = tag {
            qualifiers.push(format!("tag={}", purl_qualifier(tag)));
        }
        let version = base
            .digest
            .as_ref()
            .map(|d| format!("@{}", purl_digest(d)))
            .unwrap_or_default();
        format!("pkg:oci/{}{version}?{}", purl_name(last), qualifiers.join("&"))
    });
    (image, base)
}

#[allow(clippy::too_many_arguments)]
fn package(
    id: &str,
    name: &str,
    version: Option<String>,
    checksum: Option<&Digest>,
    purpose: &str,
    declared: &Declared,
    purl: Option<String>,
    comment: Option<String>,
) -> Value {
    let mut p = json!({ "SPDXID": id, "name": name });
    if let Some(v) = version {
        p["versionInfo"] = v.into();
    }
    p["downloadLocation"] = "NOASSERTION".into();
    p["filesAnalyzed"] = false.into();
    if let Some(d) = checksum {
        p["checksums"] = json!([{ "algorithm": "SHA256", "checksumValue": d.hex() }]);
    }
    p["licenseConcluded"] = "NOASSERTION".into();
    p["licenseDeclared"] = declared.value().into();
    p["copyrightText"] = "NOASSERTION".into();
    if let Some(purl) = purl {
        p["externalRefs"] = json!([{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": purl,
        }]);
    }
    p["primaryPackagePurpose"] = purpose.into();
    if let Some(c) = comment {
        p["comment"] = c.into();
    }
    p
}

fn relationship(from: &str, kind: &str, to: &str) -> Value {
    json!({ "spdxElementId": from, "relationshipType": kind, "relatedSpdxElement": to })
}

/// `registry/repo:tag` as (`registry/repo`, `tag`); a `:` before the last
/// `/` is a registry port, not a tag.
fn split_tag(name: &str) -> (&str, Option<&str>) {
    let slash = name.rfind('/').map(|i| i + 1).unwrap_or(0);
    match name[slash..].rfind(':') {
        Some(i) => (&name[..slash + i], Some(&name[slash + i + 1..])),
        None => (name, None),
    }
}

/// An OCI purl's name is the repository's last segment, lowercased.
fn purl_name(name: &str) -> String {
    purl_qualifier(&name.to_ascii_lowercase())
}

/// `sha256:hex` as a purl version (the `:` encoded).
fn purl_digest(d: &Digest) -> String {
    format!("{}%3A{}", d.algorithm(), d.hex())
}

/// A qualifier value: `/` and `:` (registry ports) stay readable.
fn purl_qualifier(value: &str) -> String {
    super::discover::percent_encode(value, b"-._~/:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_ports_are_told_apart() {
        assert_eq!(
            split_tag("127.0.0.1:5000/lambda/python:3.12"),
            ("127.0.0.1:5000/lambda/python", Some("3.12"))
        );
        assert_eq!(
            split_tag("127.0.0.1:5000/lambda/python"),
            ("127.0.0.1:5000/lambda/python", None)
        );
    }

    #[test]
    fn the_same_subject_gives_the_same_bytes() {
        let subject = Subject {
            name: "fn".into(),
            manifest_digest: Digest::of(b"m"),
            base: None,
            code_layer: Some(Digest::of(b"c")),
            epoch: 315_532_800,
        };
        let a = spdx_json(&subject, &[]);
        assert_eq!(a, spdx_json(&subject, &[]));
        let doc: Value = serde_json::from_slice(&a).unwrap();
        assert_eq!(doc["creationInfo"]["created"], "1980-01-01T00:00:00Z");
        assert!(
            doc["documentNamespace"]
                .as_str()
                .unwrap()
                .ends_with(Digest::of(b"m").hex())
        );
    }
}
