//! A package's declared licence as SPDX wants it: a licence expression made
//! of SPDX list identifiers, or else a `LicenseRef-` whose text the document
//! carries (Python's `License:` field is free text, often a whole licence).
//! The identifiers accepted as-is are a short list of those packages use;
//! any other text is kept verbatim behind a LicenseRef, never guessed at.

use sha2::{Digest as _, Sha256};

/// SPDX licence list identifiers that are accepted as written.
const KNOWN: &[&str] = &[
    "0BSD",
    "AFL-2.1",
    "AFL-3.0",
    "AGPL-3.0-only",
    "AGPL-3.0-or-later",
    "Apache-1.1",
    "Apache-2.0",
    "Artistic-2.0",
    "BlueOak-1.0.0",
    "BSD-1-Clause",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "BSL-1.0",
    "CC-BY-3.0",
    "CC-BY-4.0",
    "CC0-1.0",
    "CDDL-1.0",
    "CDDL-1.1",
    "EPL-1.0",
    "EPL-2.0",
    "GPL-2.0-only",
    "GPL-2.0-or-later",
    "GPL-3.0-only",
    "GPL-3.0-or-later",
    "HPND",
    "ISC",
    "LGPL-2.1-only",
    "LGPL-2.1-or-later",
    "LGPL-3.0-only",
    "LGPL-3.0-or-later",
    "MIT",
    "MIT-0",
    "MPL-1.1",
    "MPL-2.0",
    "PSF-2.0",
    "Python-2.0",
    "Unicode-3.0",
    "Unicode-DFS-2016",
    "Unlicense",
    "UPL-1.0",
    "W3C",
    "WTFPL",
    "Zlib",
    "ZPL-2.1",
];
/// Exceptions accepted after `WITH`.
const EXCEPTIONS: &[&str] = &["Classpath-exception-2.0", "LLVM-exception"];

/// What goes into `licenseDeclared`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Declared {
    /// No licence given.
    NoAssertion,
    /// A valid expression of known identifiers.
    Expression(String),
    /// `LicenseRef-ID` standing for free text.
    Reference { id: String, text: String },
}

impl Declared {
    pub fn of(license: Option<&str>) -> Declared {
        let Some(text) = license.map(str::trim).filter(|t| !t.is_empty()) else {
            return Declared::NoAssertion;
        };
        if is_expression(text) {
            return Declared::Expression(text.split_whitespace().collect::<Vec<_>>().join(" "));
        }
        // Named by the text's hash: the same text gives the same id in every document.
        let hash = hex::encode(Sha256::digest(text.as_bytes()));
        Declared::Reference {
            id: format!("LicenseRef-{}", &hash[..16]),
            text: text.to_string(),
        }
    }

    /// The field's value.
    pub fn value(&self) -> &str {
        match self {
            Declared::NoAssertion => "NOASSERTION",
            Declared::Expression(e) => e,
            Declared::Reference { id, .. } => id,
        }
    }
}

/// Whether `text` is an expression of known identifiers, `AND`/`OR`/`WITH`
/// and balanced parentheses (no precedence check is needed for validity).
fn is_expression(text: &str) -> bool {
    let spaced = text.replace('(', " ( ").replace(')', " ) ");
    let mut depth = 0i32;
    // true when the next token must be an identifier (or an opening parenthesis).
    let mut want_operand = true;
    let mut after_with = false;
    for token in spaced.split_whitespace() {
        match token {
            "(" if want_operand => depth += 1,
            ")" if !want_operand => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            "AND" | "OR" if !want_operand => want_operand = true,
            "WITH" if !want_operand => {
                want_operand = true;
                after_with = true;
            }
            id if want_operand => {
                let known = match after_with {
                    true => EXCEPTIONS.contains(&id),
                    false => KNOWN.contains(&id.strip_suffix('+').unwrap_or(id)),
                };
                if !known {
                    return false;
                }
                want_operand = false;
                after_with = false;
            }
            _ => return false,
        }
    }
    depth == 0 && !want_operand
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions_of_known_ids_are_kept_and_free_text_is_referenced() {
        assert_eq!(Declared::of(Some("MIT")).value(), "MIT");
        assert_eq!(
            Declared::of(Some("(MIT OR Apache-2.0) AND BSD-3-Clause")).value(),
            "(MIT OR Apache-2.0) AND BSD-3-Clause"
        );
        assert_eq!(Declared::of(None), Declared::NoAssertion);
        for text in [
            "BSD License",
            "MIT OR",
            "(MIT",
            "Copyright 2010 Pallets\nRedistribution ...",
        ] {
            let d = Declared::of(Some(text));
            assert!(d.value().starts_with("LicenseRef-"), "{text}: {d:?}");
            assert_eq!(d, Declared::of(Some(text)), "stable id");
        }
    }
}
