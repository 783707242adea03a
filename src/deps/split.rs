//! `split = N`: top-level entries of an installed tree grouped into N layers.
//!
//! Each entry goes to the group `sha256(owner) mod N`, its owner being the
//! package it belongs to. The assignment depends on the package's name only,
//! so bumping, adding or removing one package changes one group's layer and
//! leaves the others byte for byte (and already uploaded).

use std::collections::BTreeMap;

use sha2::{Digest as _, Sha256};

/// Group index (0-based) of a package.
pub fn group_of(owner: &str, n: u32) -> usize {
    let h = Sha256::digest(owner.as_bytes());
    let v = u64::from_be_bytes(h[..8].try_into().expect("8 bytes"));
    (v % u64::from(n.max(1))) as usize
}

/// `entries` (top-level path → owner) in `n` groups of include globs; empty
/// groups stay empty (the caller skips them, keeping the others' numbers).
pub fn groups(entries: &BTreeMap<String, String>, n: u32) -> Vec<Vec<String>> {
    let mut out = vec![Vec::new(); n.max(1) as usize];
    for (path, owner) in entries {
        out[group_of(owner, n)].push(globset::escape(path));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_package_keeps_its_group() {
        let mut e = BTreeMap::new();
        for p in ["numpy", "pandas", "six", "pytz", "dateutil"] {
            e.insert(p.to_string(), p.to_string());
        }
        e.insert("numpy-2.0.dist-info".to_string(), "numpy".to_string());
        let g = groups(&e, 3);
        let numpy = group_of("numpy", 3);
        assert!(
            g[numpy].contains(&"numpy".to_string()) && g[numpy].contains(&"numpy-2.0.dist-info".to_string())
        );
        assert_eq!(g.iter().map(Vec::len).sum::<usize>(), 6);
        // Adding a package moves nobody else.
        e.insert("requests".to_string(), "requests".to_string());
        let g2 = groups(&e, 3);
        for (i, grp) in g.iter().enumerate() {
            for p in grp {
                assert!(g2[i].contains(p));
            }
        }
    }
}
