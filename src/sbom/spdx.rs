//! The SPDX 2.3 JSON document. Keys are written in a fixed order
//! (the order of the `Serialize` impls below), packages are sorted, and nothing
//! depends on the clock or the machine: `created` is the build's epoch and the
//! namespace is derived from the image's manifest digest.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use super::Subject;
use super::discover::Package;
use super::license::Declared;
use crate::image::Digest;
use crate::image::config::rfc3339;

const IMAGE_ID: &str = "SPDXRef-Image";
const BASE_ID: &str = "SPDXRef-Base";
const CODE_ID: &str = "SPDXRef-CodeLayer";

/// The document's bytes: pretty JSON with a final newline.
///
/// Serialized straight from typed views of `packages` (no `serde_json::Value`
/// tree: at 20,000 packages the tree cost ~7 KB a package, several times the
/// document's own bytes).
pub fn spdx_json(subject: &Subject, packages: &[Package]) -> Vec<u8> {
    // The licence texts behind each `LicenseRef-`, once each, in id order.
    let mut extracted: BTreeMap<String, String> = BTreeMap::new();
    for p in packages {
        if let Declared::Reference { id, text } = Declared::of(p.license.as_deref()) {
            extracted.insert(id, text);
        }
    }
    let (image_purl, base_purl) = oci_purls(subject);
    let doc = Document {
        subject,
        image_purl,
        base_purl,
        packages,
        extracted,
    };
    let mut bytes = serde_json::to_vec_pretty(&doc).expect("an SBOM document serializes");
    bytes.push(b'\n');
    bytes
}

/// The whole document; its members are written in this order.
struct Document<'a> {
    subject: &'a Subject,
    image_purl: String,
    base_purl: Option<String>,
    packages: &'a [Package],
    extracted: BTreeMap<String, String>,
}

impl Serialize for Document<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let subject = self.subject;
        let digest = &subject.manifest_digest;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("spdxVersion", "SPDX-2.3")?;
        m.serialize_entry("dataLicense", "CC0-1.0")?;
        m.serialize_entry("SPDXID", "SPDXRef-DOCUMENT")?;
        m.serialize_entry("name", &subject.name)?;
        m.serialize_entry(
            "documentNamespace",
            &format!(
                "https://spdx.org/spdxdocs/lambda-img/{}-{}",
                subject.name,
                digest.hex()
            ),
        )?;
        m.serialize_entry(
            "creationInfo",
            &CreationInfo {
                created: rfc3339(subject.epoch),
                creators: [concat!("Tool: lambda-img-", env!("CARGO_PKG_VERSION"))],
            },
        )?;
        m.serialize_entry("packages", &Each(|| self.entries()))?;
        if !self.extracted.is_empty() {
            let infos = self.extracted.iter().map(|(id, text)| ExtractedInfo {
                license_id: id,
                extracted_text: text,
                name: id,
            });
            m.serialize_entry("hasExtractedLicensingInfos", &Each(|| infos.clone()))?;
        }
        m.serialize_entry("relationships", &Each(|| self.relationships()))?;
        m.end()
    }
}

impl<'a> Document<'a> {
    /// The image, its base and code layer, then one entry per package.
    fn entries(&'a self) -> impl Iterator<Item = Entry<'a>> + 'a {
        let subject = self.subject;
        let digest = &subject.manifest_digest;
        let image = Entry {
            id: IMAGE_ID.into(),
            name: subject.name.as_str().into(),
            version: Some(digest.to_string()),
            download: "NOASSERTION",
            checksum: Some(Checksum::sha256(digest)),
            late_checksum: None,
            declared: Declared::NoAssertion,
            purl: Some(self.image_purl.as_str()),
            purpose: "CONTAINER",
            comment: None,
        };
        let base = subject.base.as_ref().map(|base| Entry {
            id: BASE_ID.into(),
            name: base.name.as_str().into(),
            version: base.digest.as_ref().map(Digest::to_string),
            download: "NOASSERTION",
            checksum: base.digest.as_ref().map(Checksum::sha256),
            late_checksum: None,
            declared: Declared::NoAssertion,
            purl: self.base_purl.as_deref(),
            purpose: "CONTAINER",
            comment: Some("the base image; its own packages are not listed".into()),
        });
        let code = subject.code_layer.as_ref().map(|code| Entry {
            id: CODE_ID.into(),
            name: format!("{} code layer", subject.name).into(),
            version: Some(code.to_string()),
            download: "NOASSERTION",
            checksum: Some(Checksum::sha256(code)),
            late_checksum: None,
            declared: Declared::NoAssertion,
            purl: None,
            purpose: "ARCHIVE",
            comment: Some("the function's code layer, by its blob digest".into()),
        });
        let packages = self.packages.iter().enumerate().map(|(i, p)| {
            let purpose = match p.ecosystem {
                super::Ecosystem::Generic => "APPLICATION",
                _ => "LIBRARY",
            };
            // The lockfile's integrity replaces the file's checksum where
            // there is one and otherwise comes last (where the document's
            // first layout, a JSON object filled in this order, put it).
            let integrity = p.integrity.as_ref().map(|i| Checksum {
                algorithm: i.algorithm,
                value: i.hex.as_str(),
            });
            let (checksum, late_checksum) = match p.checksum.as_ref() {
                Some(d) => (Some(integrity.unwrap_or(Checksum::sha256(d))), None),
                None => (None, integrity),
            };
            Entry {
                id: package_id(p, i).into(),
                name: p.name.as_str().into(),
                version: Some(p.version.clone()),
                download: p.download.as_deref().unwrap_or("NOASSERTION"),
                checksum,
                late_checksum,
                declared: Declared::of(p.license.as_deref()),
                purl: Some(p.purl.as_str()),
                purpose,
                comment: Some(format!("found at /{} in layer {}", p.path, p.layer).into()),
            }
        });
        std::iter::once(image).chain(base).chain(code).chain(packages)
    }

    fn relationships(&'a self) -> impl Iterator<Item = Relationship<'a>> + 'a {
        let subject = self.subject;
        let head = [
            Some(Relationship::new(
                "SPDXRef-DOCUMENT",
                "DESCRIBES",
                IMAGE_ID.into(),
            )),
            subject
                .base
                .as_ref()
                .map(|_| Relationship::new(IMAGE_ID, "DESCENDANT_OF", BASE_ID.into())),
            subject
                .code_layer
                .as_ref()
                .map(|_| Relationship::new(IMAGE_ID, "CONTAINS", CODE_ID.into())),
        ];
        let packages = self
            .packages
            .iter()
            .enumerate()
            .map(|(i, p)| Relationship::new(IMAGE_ID, "CONTAINS", package_id(p, i).into()));
        head.into_iter().flatten().chain(packages)
    }
}

fn package_id(p: &Package, i: usize) -> String {
    format!("SPDXRef-Package-{}-{}", p.ecosystem.as_str(), i + 1)
}

/// A sequence serialized from an iterator made on demand: the document's
/// arrays are written as they are made, never held whole.
pub(super) struct Each<F>(pub(super) F);

impl<F, I> Serialize for Each<F>
where
    F: Fn() -> I,
    I: Iterator<Item: Serialize>,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq((self.0)())
    }
}

#[derive(Serialize)]
struct CreationInfo {
    created: String,
    creators: [&'static str; 1],
}

#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
struct ExtractedInfo<'a> {
    license_id: &'a str,
    extracted_text: &'a str,
    name: &'a str,
}

#[derive(Serialize, Clone, Copy)]
struct Checksum<'a> {
    algorithm: &'a str,
    #[serde(rename = "checksumValue")]
    value: &'a str,
}

impl<'a> Checksum<'a> {
    fn sha256(d: &'a Digest) -> Checksum<'a> {
        Checksum {
            algorithm: "SHA256",
            value: d.hex(),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExternalRef<'a> {
    reference_category: &'static str,
    reference_type: &'static str,
    reference_locator: &'a str,
}

/// One entry of `packages`.
struct Entry<'a> {
    id: Cow<'a, str>,
    name: Cow<'a, str>,
    version: Option<String>,
    download: &'a str,
    /// `checksums` in its place after `filesAnalyzed` ...
    checksum: Option<Checksum<'a>>,
    /// ... or last (a lockfile's integrity of a package without a file checksum).
    late_checksum: Option<Checksum<'a>>,
    declared: Declared,
    purl: Option<&'a str>,
    purpose: &'static str,
    comment: Option<Cow<'a, str>>,
}

impl Serialize for Entry<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("SPDXID", &self.id)?;
        m.serialize_entry("name", &self.name)?;
        if let Some(v) = &self.version {
            m.serialize_entry("versionInfo", v)?;
        }
        m.serialize_entry("downloadLocation", self.download)?;
        m.serialize_entry("filesAnalyzed", &false)?;
        if let Some(c) = &self.checksum {
            m.serialize_entry("checksums", &[c])?;
        }
        m.serialize_entry("licenseConcluded", "NOASSERTION")?;
        m.serialize_entry("licenseDeclared", self.declared.value())?;
        m.serialize_entry("copyrightText", "NOASSERTION")?;
        if let Some(purl) = self.purl {
            let reference = ExternalRef {
                reference_category: "PACKAGE-MANAGER",
                reference_type: "purl",
                reference_locator: purl,
            };
            m.serialize_entry("externalRefs", &[reference])?;
        }
        m.serialize_entry("primaryPackagePurpose", self.purpose)?;
        if let Some(c) = &self.comment {
            m.serialize_entry("comment", c)?;
        }
        if let Some(c) = &self.late_checksum {
            m.serialize_entry("checksums", &[c])?;
        }
        m.end()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Relationship<'a> {
    #[serde(rename = "spdxElementId")]
    from: &'static str,
    relationship_type: &'static str,
    #[serde(rename = "relatedSpdxElement")]
    to: Cow<'a, str>,
}

impl<'a> Relationship<'a> {
    fn new(from: &'static str, kind: &'static str, to: Cow<'a, str>) -> Relationship<'a> {
        Relationship {
            from,
            relationship_type: kind,
            to,
        }
    }
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
    use serde_json::Value;

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
