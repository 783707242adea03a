//! npm's lockfile (`package-lock.json`, lockfileVersion 2 or 3) beside the
//! manifest: the `integrity` (SRI, usually sha512) and `resolved` URL of each
//! installed package, which the installed `package.json` does not carry. The
//! lockfile itself is not in the image (npm's hidden copy is dropped from the
//! dependency layer), so the build passes the one it installed from.

use std::collections::BTreeMap;

use base64::Engine;

use super::discover::{Ecosystem, Package};

/// A package's digest as SPDX names the algorithm (`SHA512`) and its hex value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Integrity {
    pub algorithm: &'static str,
    pub hex: String,
}

impl Integrity {
    /// An SRI string (`sha512-BASE64`); the strongest listed hash when several are.
    pub fn parse(sri: &str) -> Option<Integrity> {
        sri.split_whitespace()
            .filter_map(|one| {
                let (alg, b64) = one.split_once('-')?;
                let algorithm = match alg {
                    "sha512" => "SHA512",
                    "sha384" => "SHA384",
                    "sha256" => "SHA256",
                    "sha1" => "SHA1",
                    _ => return None,
                };
                let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
                Some(Integrity {
                    algorithm,
                    hex: hex::encode(bytes),
                })
            })
            .max_by_key(|i| i.hex.len())
    }

    /// CycloneDX's name for the algorithm (`SHA-512`).
    pub fn cyclonedx_algorithm(&self) -> String {
        format!("SHA-{}", self.algorithm.trim_start_matches("SHA"))
    }
}

/// Adds `integrity` and `download` to the npm packages of `packages` that the
/// lockfile `lock` lists under the same `node_modules/...` path. Returns how
/// many were matched; a lockfile that is not JSON matches none.
pub fn enrich(packages: &mut [Package], lock: &[u8]) -> usize {
    let Ok(lock) = serde_json::from_slice::<serde_json::Value>(lock) else {
        return 0;
    };
    let Some(entries) = lock["packages"].as_object() else {
        return 0;
    };
    let by_key: BTreeMap<&str, &serde_json::Value> = entries.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut matched = 0;
    for p in packages.iter_mut().filter(|p| p.ecosystem == Ecosystem::Npm) {
        // `var/task/node_modules/ms/package.json` is the lockfile's `node_modules/ms`.
        let Some(key) = p
            .path
            .find("node_modules/")
            .and_then(|i| p.path[i..].strip_suffix("/package.json"))
        else {
            continue;
        };
        let Some(entry) = by_key.get(key) else {
            continue;
        };
        if entry["version"].as_str().is_some_and(|v| v != p.version) {
            continue;
        }
        p.integrity = entry["integrity"].as_str().and_then(Integrity::parse);
        p.download = entry["resolved"].as_str().map(str::to_string);
        matched += 1;
    }
    matched
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sri_becomes_hex_with_its_algorithm() {
        let i = Integrity::parse(
            "sha512-6FlzubTLZG3J2a/NVCAleEhjzq5oxgHyaCU9yYXvcLsvoVaHJq/s5xXI6/XXP6tz7R9xAOtHnSO/tXtF3WRTlA==",
        )
        .unwrap();
        assert_eq!(i.algorithm, "SHA512");
        assert_eq!(i.hex.len(), 128);
        assert!(i.hex.starts_with("e85973b9b4cb646dc9d9afcd54"));
        assert_eq!(i.cyclonedx_algorithm(), "SHA-512");
        assert_eq!(Integrity::parse("md5-xyz"), None);
    }
}
