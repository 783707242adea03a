//! What a registry says when it refuses a request: the HTTP status and the
//! entries of its error document (`{"errors":[{"code","message"}]}`), kept
//! typed so callers decide on them rather than on rendered text.

use std::fmt;

/// One entry of a registry error document: `DIGEST_INVALID`, `UNAUTHORIZED`, ...
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub code: String,
    pub message: String,
}

/// The entries of a registry error document, in the order it gave them
/// (empty when the body was not one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Reads an error document; anything else (HTML, nothing) gives no entries.
    pub fn parse(body: &[u8]) -> Diagnostics {
        #[derive(serde::Deserialize)]
        struct Errors {
            errors: Vec<Item>,
        }
        #[derive(serde::Deserialize)]
        struct Item {
            #[serde(default)]
            code: String,
            #[serde(default)]
            message: String,
        }
        match serde_json::from_slice::<Errors>(body) {
            Ok(e) => Diagnostics(
                e.errors
                    .into_iter()
                    .map(|i| Diagnostic {
                        code: i.code,
                        message: i.message,
                    })
                    .collect(),
            ),
            Err(_) => Diagnostics::default(),
        }
    }

    /// Whether the registry gave the error code `code` (e.g. `DIGEST_INVALID`).
    pub fn has_code(&self, code: &str) -> bool {
        self.0.iter().any(|d| d.code == code)
    }
}

/// ` (CODE message; CODE message)`, or nothing when there are no entries:
/// the tail of an error message.
impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return Ok(());
        }
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|d| format!("{} {}", d.code, d.message).trim().to_string())
            .collect();
        write!(f, " ({})", parts.join("; "))
    }
}

/// Why a registry (or its token server) refused access, as far as we know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthRefusal {
    /// The registry refused what we sent; its error document says why.
    Refused(Diagnostics),
    /// No credentials were found for the registry.
    NoCredentials,
    /// The registry asks for basic auth, and no credentials were found for it.
    BasicWithoutCredentials,
    /// The token server rejected the credentials.
    TokenRejected,
    /// The token server refused anonymous access.
    AnonymousRefused,
}

/// The tail of the "refused access" message.
impl fmt::Display for AuthRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthRefusal::Refused(d) => d.fmt(f),
            AuthRefusal::NoCredentials => f.write_str(" (no credentials were found for it)"),
            AuthRefusal::BasicWithoutCredentials => {
                f.write_str(" (it asks for a user name and password, and no credentials were found for it)")
            }
            AuthRefusal::TokenRejected => f.write_str(" (the token server rejected the credentials)"),
            AuthRefusal::AnonymousRefused => f.write_str(" (anonymous access was refused)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_document_becomes_entries_and_renders_as_before() {
        let body = br#"{"errors":[{"code":"DIGEST_INVALID","message":"provided digest did not match"},{"code":"UNKNOWN"}]}"#;
        let d = Diagnostics::parse(body);
        assert!(d.has_code("DIGEST_INVALID") && !d.has_code("NAME_UNKNOWN"));
        assert_eq!(d.0[1].message, "");
        assert_eq!(
            d.to_string(),
            " (DIGEST_INVALID provided digest did not match; UNKNOWN)"
        );
        for other in [&b"<html>502</html>"[..], b"", br#"{"errors":[]}"#] {
            assert_eq!(Diagnostics::parse(other).to_string(), "");
        }
    }
}
