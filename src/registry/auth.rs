//! Registry auth challenges (`WWW-Authenticate`) and bearer tokens.

use std::collections::HashMap;

/// What a registry asked for in its 401.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// How this client currently authenticates to one registry.
#[derive(Default)]
pub struct AuthState {
    /// Learned from the first 401; `None` until then (try anonymous first).
    pub challenge: Option<Challenge>,
    /// Bearer tokens by the scopes they were issued for (never logged).
    pub tokens: HashMap<String, String>,
}

/// Names the scopes tokens are held for, never the tokens.
impl std::fmt::Debug for AuthState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut scopes: Vec<&String> = self.tokens.keys().collect();
        scopes.sort();
        f.debug_struct("AuthState")
            .field("challenge", &self.challenge)
            .field("token_scopes", &scopes)
            .finish()
    }
}

/// Parses a `WWW-Authenticate` header value.
pub fn parse_challenge(value: &str) -> Option<Challenge> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parse_params(rest);
    Some(Challenge::Bearer {
        realm: params.get("realm")?.clone(),
        service: params.get("service").cloned(),
        scope: params.get("scope").cloned(),
    })
}

/// `key="value", key2=value2` (quoted values may contain commas).
fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    out
}

/// Picks the token out of a token server's JSON answer (`token` or `access_token`).
pub fn token_from_response(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.get("token")
        .or_else(|| v.get("access_token"))
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_and_basic() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/python:pull,push""#,
        )
        .unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/python:pull,push".into()),
            }
        );
        assert_eq!(parse_challenge(r#"Basic realm="r""#), Some(Challenge::Basic));
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(
            token_from_response(br#"{"access_token":"t"}"#).as_deref(),
            Some("t")
        );
        assert_eq!(token_from_response(br#"{"x":1}"#), None);
    }

    #[test]
    fn debug_names_token_scopes_never_tokens() {
        let mut state = AuthState::default();
        state
            .tokens
            .insert("repository:a:pull".into(), "tok-secret-123".into());
        let text = format!("{state:?}");
        assert!(text.contains("repository:a:pull"), "{text}");
        assert!(!text.contains("tok-secret-123"), "{text}");
    }
}
