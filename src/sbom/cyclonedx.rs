//! The CycloneDX 1.6 JSON document: the same facts as the SPDX one, in the
//! same deterministic way (fixed key order, the build's time, a serial
//! number derived from the image's manifest digest).

use serde_json::{Value, json};

use super::Subject;
use super::discover::{Ecosystem, Package};
use super::license::Declared;
use super::spdx::oci_purls;
use crate::image::Digest;
use crate::image::config::rfc3339;

/// The document's bytes: pretty JSON with a final newline.
pub fn cyclonedx_json(subject: &Subject, packages: &[Package]) -> Vec<u8> {
    let digest = &subject.manifest_digest;
    let (image_purl, base_purl) = oci_purls(subject);
    let mut components = Vec::new();
    if let Some(base) = &subject.base {
        let mut c = json!({ "type": "container", "bom-ref": "base", "name": base.name });
        if let Some(d) = &base.digest {
            c["version"] = d.to_string().into();
            c["hashes"] = hashes(d);
        }
        if let Some(purl) = base_purl {
            c["purl"] = purl.into();
        }
        c["properties"] = json!([{ "name": "lambda-img:role", "value": "base image" }]);
        components.push(c);
    }
    if let Some(code) = &subject.code_layer {
        components.push(json!({
            "type": "file",
            "bom-ref": "code-layer",
            "name": format!("{} code layer", subject.name),
            "version": code.to_string(),
            "hashes": hashes(code),
            "properties": [{ "name": "lambda-img:role", "value": "code layer" }],
        }));
    }
    for (i, p) in packages.iter().enumerate() {
        // Maven's group and npm's scope are CycloneDX's `group`.
        let split = match p.ecosystem {
            Ecosystem::Maven => p.name.split_once('/'),
            Ecosystem::Npm => p.name.split_once('/').filter(|(s, _)| s.starts_with('@')),
            Ecosystem::Pypi | Ecosystem::Deb | Ecosystem::Apk | Ecosystem::Rpm | Ecosystem::Generic => None,
        };
        let kind = match p.ecosystem {
            Ecosystem::Generic => "application",
            _ => "library",
        };
        let mut c = json!({ "type": kind, "bom-ref": format!("{}-{}", p.ecosystem.as_str(), i + 1) });
        if let Some(d) = &p.checksum {
            c["hashes"] = hashes(d);
        }
        if let Some(i) = &p.integrity {
            c["hashes"] = json!([{ "alg": i.cyclonedx_algorithm(), "content": i.hex }]);
        }
        if let Some(url) = &p.download {
            c["externalReferences"] = json!([{ "type": "distribution", "url": url }]);
        }
        match split {
            Some((group, name)) => {
                c["group"] = group.into();
                c["name"] = name.into();
            }
            None => c["name"] = p.name.clone().into(),
        }
        c["version"] = p.version.clone().into();
        match Declared::of(p.license.as_deref()) {
            Declared::NoAssertion => {}
            Declared::Expression(e) => c["licenses"] = json!([{ "expression": e }]),
            Declared::Reference { text, .. } => {
                let name = text.lines().next().unwrap_or_default();
                c["licenses"] = json!([{ "license": { "name": name, "text": { "content": text } } }]);
            }
        }
        c["purl"] = p.purl.clone().into();
        c["properties"] = json!([
            { "name": "lambda-img:path", "value": format!("/{}", p.path) },
            { "name": "lambda-img:layer", "value": p.layer.to_string() },
        ]);
        components.push(c);
    }
    let refs: Vec<Value> = components.iter().map(|c| c["bom-ref"].clone()).collect();
    let doc = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": serial_number(digest),
        "version": 1,
        "metadata": {
            "timestamp": rfc3339(subject.epoch),
            "tools": { "components": [{
                "type": "application",
                "name": "lambda-img",
                "version": env!("CARGO_PKG_VERSION"),
            }] },
            "component": {
                "type": "container",
                "bom-ref": "image",
                "name": subject.name,
                "version": digest.to_string(),
                "hashes": hashes(digest),
                "purl": image_purl,
            },
        },
        "components": components,
        "dependencies": [{ "ref": "image", "dependsOn": refs }],
    });
    let mut bytes = serde_json::to_vec_pretty(&doc).expect("a JSON value serializes");
    bytes.push(b'\n');
    bytes
}

fn hashes(d: &Digest) -> Value {
    json!([{ "alg": "SHA-256", "content": d.hex() }])
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
