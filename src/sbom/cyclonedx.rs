//! The CycloneDX 1.6 JSON document: the same facts as the SPDX one, in the
//! same deterministic way (fixed key order, the build's time, a serial
//! number derived from the image's manifest digest).

use std::borrow::Cow;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use super::Subject;
use super::discover::{Ecosystem, Package};
use super::license::Declared;
use super::spdx::{Each, oci_purls};
use crate::image::Digest;
use crate::image::config::rfc3339;

/// The document's bytes: pretty JSON with a final newline.
///
/// Serialized straight from typed views of `packages`, as the SPDX document
/// is (no `serde_json::Value` tree held whole).
pub fn cyclonedx_json(subject: &Subject, packages: &[Package]) -> Vec<u8> {
    let (image_purl, base_purl) = oci_purls(subject);
    let doc = Document {
        subject,
        image_purl,
        base_purl,
        packages,
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
}

impl Serialize for Document<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let subject = self.subject;
        let digest = &subject.manifest_digest;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("bomFormat", "CycloneDX")?;
        m.serialize_entry("specVersion", "1.6")?;
        m.serialize_entry("serialNumber", &serial_number(digest))?;
        m.serialize_entry("version", &1)?;
        let metadata = Metadata {
            timestamp: rfc3339(subject.epoch),
            tools: Tools {
                components: [Tool {
                    kind: "application",
                    name: "lambda-img",
                    version: env!("CARGO_PKG_VERSION"),
                }],
            },
            component: ImageComponent {
                kind: "container",
                bom_ref: "image",
                name: &subject.name,
                version: digest.to_string(),
                hashes: [Hash::sha256(digest)],
                purl: &self.image_purl,
            },
        };
        m.serialize_entry("metadata", &metadata)?;
        m.serialize_entry("components", &Each(|| self.components()))?;
        let refs = || self.components().map(|c| c.bom_ref);
        m.serialize_entry(
            "dependencies",
            &[Dependency {
                on: "image",
                depends_on: Each(refs),
            }],
        )?;
        m.end()
    }
}

impl<'a> Document<'a> {
    /// The base and code layer, then one component per package.
    fn components(&'a self) -> impl Iterator<Item = Component<'a>> + 'a {
        let subject = self.subject;
        let base = subject.base.as_ref().map(|base| Component {
            kind: "container",
            bom_ref: "base".into(),
            hashes: None,
            late_hashes: base.digest.as_ref().map(Hash::sha256),
            download: None,
            group: None,
            name: base.name.as_str().into(),
            version: base.digest.as_ref().map(Digest::to_string),
            declared: Declared::NoAssertion,
            purl: self.base_purl.as_deref(),
            properties: Properties::Role("base image"),
        });
        let code = subject.code_layer.as_ref().map(|code| Component {
            kind: "file",
            bom_ref: "code-layer".into(),
            hashes: None,
            late_hashes: Some(Hash::sha256(code)),
            download: None,
            group: None,
            name: format!("{} code layer", subject.name).into(),
            version: Some(code.to_string()),
            declared: Declared::NoAssertion,
            purl: None,
            properties: Properties::Role("code layer"),
        });
        let packages = self.packages.iter().enumerate().map(|(i, p)| {
            // Maven's group and npm's scope are CycloneDX's `group`.
            let split = match p.ecosystem {
                Ecosystem::Maven => p.name.split_once('/'),
                Ecosystem::Npm => p.name.split_once('/').filter(|(s, _)| s.starts_with('@')),
                Ecosystem::Pypi | Ecosystem::Deb | Ecosystem::Apk | Ecosystem::Rpm | Ecosystem::Generic => {
                    None
                }
            };
            let (group, name) = match split {
                Some((group, name)) => (Some(group), name),
                None => (None, p.name.as_str()),
            };
            // The lockfile's integrity, when known, over the file's checksum.
            let hashes = match (&p.integrity, &p.checksum) {
                (Some(i), _) => Some(Hash {
                    alg: i.cyclonedx_algorithm().into(),
                    content: &i.hex,
                }),
                (None, Some(d)) => Some(Hash::sha256(d)),
                (None, None) => None,
            };
            Component {
                kind: match p.ecosystem {
                    Ecosystem::Generic => "application",
                    _ => "library",
                },
                bom_ref: format!("{}-{}", p.ecosystem.as_str(), i + 1).into(),
                hashes,
                late_hashes: None,
                download: p.download.as_deref(),
                group,
                name: name.into(),
                version: Some(p.version.clone()),
                declared: Declared::of(p.license.as_deref()),
                purl: Some(&p.purl),
                properties: Properties::Found(p),
            }
        });
        base.into_iter().chain(code).chain(packages)
    }
}

#[derive(Serialize)]
struct Metadata<'a> {
    timestamp: String,
    tools: Tools,
    component: ImageComponent<'a>,
}

#[derive(Serialize)]
struct Tools {
    components: [Tool; 1],
}

#[derive(Serialize)]
struct Tool {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'static str,
    version: &'static str,
}

#[derive(Serialize)]
struct ImageComponent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "bom-ref")]
    bom_ref: &'static str,
    name: &'a str,
    version: String,
    hashes: [Hash<'a>; 1],
    purl: &'a str,
}

#[derive(Serialize)]
struct Dependency<T> {
    #[serde(rename = "ref")]
    on: &'static str,
    #[serde(rename = "dependsOn")]
    depends_on: T,
}

#[derive(Serialize)]
struct Hash<'a> {
    alg: Cow<'a, str>,
    content: &'a str,
}

impl<'a> Hash<'a> {
    fn sha256(d: &'a Digest) -> Hash<'a> {
        Hash {
            alg: "SHA-256".into(),
            content: d.hex(),
        }
    }
}

/// A component's `properties`.
enum Properties<'a> {
    /// `lambda-img:role` of the base or the code layer.
    Role(&'static str),
    /// `lambda-img:path` and `lambda-img:layer` of a found package.
    Found(&'a Package),
}

#[derive(Serialize)]
struct Property<'a> {
    name: &'static str,
    value: Cow<'a, str>,
}

impl Serialize for Properties<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Properties::Role(role) => [Property {
                name: "lambda-img:role",
                value: (*role).into(),
            }]
            .serialize(s),
            Properties::Found(p) => [
                Property {
                    name: "lambda-img:path",
                    value: format!("/{}", p.path).into(),
                },
                Property {
                    name: "lambda-img:layer",
                    value: p.layer.to_string().into(),
                },
            ]
            .serialize(s),
        }
    }
}

/// One entry of `components`.
struct Component<'a> {
    kind: &'static str,
    bom_ref: Cow<'a, str>,
    /// `hashes` after `bom-ref` (a package's) ...
    hashes: Option<Hash<'a>>,
    /// ... or after `version` (the base's and the code layer's).
    late_hashes: Option<Hash<'a>>,
    /// The lockfile's `resolved` URL.
    download: Option<&'a str>,
    group: Option<&'a str>,
    name: Cow<'a, str>,
    version: Option<String>,
    declared: Declared,
    purl: Option<&'a str>,
    properties: Properties<'a>,
}

#[derive(Serialize)]
struct Reference<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    url: &'a str,
}

/// A `licenses` entry: an SPDX expression, or free text by its first line.
#[derive(Serialize)]
enum License<'a> {
    #[serde(rename = "expression")]
    Expression(&'a str),
    #[serde(rename = "license")]
    Named { name: &'a str, text: LicenseText<'a> },
}

#[derive(Serialize)]
struct LicenseText<'a> {
    content: &'a str,
}

impl Serialize for Component<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("type", self.kind)?;
        m.serialize_entry("bom-ref", &self.bom_ref)?;
        if let Some(h) = &self.hashes {
            m.serialize_entry("hashes", &[h])?;
        }
        if let Some(url) = self.download {
            m.serialize_entry(
                "externalReferences",
                &[Reference {
                    kind: "distribution",
                    url,
                }],
            )?;
        }
        if let Some(group) = self.group {
            m.serialize_entry("group", group)?;
        }
        m.serialize_entry("name", &self.name)?;
        if let Some(v) = &self.version {
            m.serialize_entry("version", v)?;
        }
        if let Some(h) = &self.late_hashes {
            m.serialize_entry("hashes", &[h])?;
        }
        match &self.declared {
            Declared::NoAssertion => {}
            Declared::Expression(e) => m.serialize_entry("licenses", &[License::Expression(e)])?,
            Declared::Reference { text, .. } => {
                let name = text.lines().next().unwrap_or_default();
                let text = LicenseText { content: text };
                m.serialize_entry("licenses", &[License::Named { name, text }])?;
            }
        }
        if let Some(purl) = self.purl {
            m.serialize_entry("purl", purl)?;
        }
        m.serialize_entry("properties", &self.properties)?;
        m.end()
    }
}

/// An RFC 4122 name-based (version 5 layout) UUID URN from the digest's
/// first 128 bits: the same image, the same serial number.
fn serial_number(d: &Digest) -> String {
    let mut h: Vec<char> = d.hex()[..32].chars().collect();
    h[12] = '5';
    h[16] = ['8', '9', 'a', 'b'][h[16].to_digit(16).unwrap_or(0) as usize % 4];
    let h: String = h.into_iter().collect();
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_serial_number_is_a_uuid_of_the_digest() {
        let s = serial_number(&Digest::of(b"m"));
        assert_eq!(s.len(), "urn:uuid:".len() + 36);
        assert_eq!(&s[9 + 14..9 + 15], "5");
        assert!("89ab".contains(&s[9 + 19..9 + 20]), "{s}");
        assert_eq!(s, serial_number(&Digest::of(b"m")));
    }
}
