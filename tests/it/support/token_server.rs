//! The bearer-token flow: a token endpoint plus a proxy in front of an
//! anonymous Distribution registry that demands `Authorization: Bearer` with a
//! token covering the repository and action (pull for GET/HEAD, push
//! otherwise). Chosen over Distribution's `auth: token:` (which needs a signing
//! cert bundle) because it exercises the same client code with less set-up.

use std::collections::HashMap;
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;

use super::fault_proxy::{Response, Server, forward, read_request, write_response};

pub struct BearerProxy {
    pub server: Server,
    /// Every scope list a token was issued for.
    pub issued: Arc<Mutex<Vec<String>>>,
    /// The port its challenges name as the realm (its own, unless moved by
    /// [`BearerProxy::realm_at`]).
    realm_port: Arc<Mutex<u16>>,
}

impl BearerProxy {
    /// `credentials`: when set, the token endpoint demands them (Basic);
    /// otherwise it issues tokens anonymously (like Docker Hub or ECR Public).
    pub fn start(upstream: u16, credentials: Option<(&str, &str)>) -> BearerProxy {
        let expected = credentials.map(|(u, p)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        });
        let tokens: Arc<Mutex<HashMap<String, Vec<String>>>> = Arc::default();
        let issued: Arc<Mutex<Vec<String>>> = Arc::default();
        let counter = Arc::new(AtomicU64::new(0));
        let own_port = Arc::new(Mutex::new(0u16));
        let (t2, i2, p2) = (tokens.clone(), issued.clone(), own_port.clone());
        let server = Server::start(Arc::new(move |stream: TcpStream| {
            let Some(req) = read_request(&stream) else { return };
            if req.path() == "/token" {
                if let Some(exp) = &expected
                    && req.header("authorization") != Some(exp.as_str())
                {
                    return write_response(
                        stream,
                        &Response::new(401, r#"{"details":"bad credentials"}"#),
                        None,
                    );
                }
                let scopes: Vec<String> = req
                    .target
                    .split_once('?')
                    .map(|(_, q)| q)
                    .unwrap_or("")
                    .split('&')
                    .filter_map(|kv| kv.strip_prefix("scope="))
                    .map(decode)
                    .collect();
                let token = format!("tok{}", counter.fetch_add(1, Ordering::SeqCst));
                i2.lock().unwrap().push(scopes.join(" "));
                t2.lock().unwrap().insert(token.clone(), scopes);
                let body = format!(r#"{{"token":"{token}","expires_in":300}}"#);
                return write_response(stream, &Response::new(200, body), None);
            }
            let port = *p2.lock().unwrap();
            let challenge = |scope: Option<String>| {
                let mut v =
                    format!(r#"Bearer realm="http://127.0.0.1:{port}/token",service="test-registry""#);
                if let Some(s) = scope {
                    v.push_str(&format!(r#",scope="{s}""#));
                }
                Response::new(
                    401,
                    r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
                )
                .with_header("WWW-Authenticate", &v)
                .with_header("Content-Type", "application/json")
            };
            let needed = required_scope(&req.method, req.path());
            let granted = req
                .header("authorization")
                .and_then(|a| a.strip_prefix("Bearer "))
                .and_then(|t| t2.lock().unwrap().get(t).cloned());
            let ok = match (&granted, &needed) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(scopes), Some((repo, action))) => scopes.iter().any(|s| covers(s, repo, action)),
            };
            if !ok {
                let scope = needed.map(|(r, a)| format!("repository:{r}:{a}"));
                return write_response(stream, &challenge(scope), None);
            }
            match forward(upstream, &req) {
                Ok(resp) => write_response(stream, &resp, None),
                Err(_) => write_response(stream, &Response::new(502, "upstream down"), None),
            }
        }));
        *own_port.lock().unwrap() = server.port;
        BearerProxy {
            server,
            issued,
            realm_port: own_port,
        }
    }

    /// Names `127.0.0.1:port` as the token realm in every challenge from
    /// now on: a token server on another host (which must pass `/token`
    /// on to this proxy, as a recording proxy does).
    pub fn realm_at(&self, port: u16) {
        *self.realm_port.lock().unwrap() = port;
    }

    pub fn host(&self) -> String {
        self.server.host()
    }
}

/// (repository, action) a registry API request needs; `None` for `/v2/`.
fn required_scope(method: &str, path: &str) -> Option<(String, &'static str)> {
    let rest = path.strip_prefix("/v2/")?;
    let idx = ["/blobs/", "/manifests/", "/tags/"]
        .iter()
        .filter_map(|m| rest.find(m))
        .min()?;
    let action = if method == "GET" || method == "HEAD" {
        "pull"
    } else {
        "push"
    };
    Some((rest[..idx].to_string(), action))
}

fn covers(scope: &str, repo: &str, action: &str) -> bool {
    let mut parts = scope.splitn(3, ':');
    parts.next() == Some("repository")
        && parts.next() == Some(repo)
        && parts
            .next()
            .is_some_and(|acts| acts.split(',').any(|a| a == action))
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
