//! One registry's API: requests with auth (anonymous, basic, bearer tokens per
//! scope) and retries. Higher-level calls live in `blobs` and `manifests`.

use std::path::Path;
use std::sync::Mutex;
use std::thread::sleep;
use std::time::{Duration, Instant};

use ureq::http::{self, Method, Response, StatusCode};

use super::auth::{AuthState, Challenge, parse_challenge, token_from_response};
use super::credentials::{self, Credentials};
use super::retry::{parse_retry_after, retryable_error, retryable_status};
use super::{AuthRefusal, Diagnostics, RegistryError, RegistryOptions, RetryPolicy, is_plain_http};
use crate::reference::registry::api_host;
use crate::report::Reporter;

/// A connection to one registry (one host), shared by threads.
pub struct Client {
    registry: String,
    base: String,
    agent: ureq::Agent,
    creds: Option<Credentials>,
    retry: RetryPolicy,
    insecure: Vec<String>,
    auth: Mutex<AuthState>,
    pub(crate) limits: TransferLimits,
    /// See [`RegistryOptions::show_requests`].
    show_requests: bool,
}

/// How long transfers may take: see [`RegistryOptions`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct TransferLimits {
    pub idle: Duration,
    pub deadline: Duration,
    pub min_rate: u64,
}

impl TransferLimits {
    /// What the limits are, for an error saying what was tried.
    pub fn describe(&self) -> String {
        format!(
            "each attempt allowed {} s without progress and at least {} bytes/s, attempts stop after {} s",
            self.idle.as_secs_f64(),
            self.min_rate,
            self.deadline.as_secs_f64()
        )
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("registry", &self.registry)
            .field("base", &self.base)
            .field("creds", &self.creds)
            .finish_non_exhaustive()
    }
}

/// A request body that can be sent again on a retry.
pub(crate) enum ReqBody<'a> {
    Empty,
    Bytes(&'a [u8]),
    File(&'a Path),
}

/// One API request: what it is for (`manifest x`, `blob y`) and the token scopes it needs.
pub(crate) struct Req<'a> {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: ReqBody<'a>,
    pub scopes: Vec<String>,
    pub what: String,
    /// The caller streams the answer's body (a blob) and bounds it itself.
    pub streamed: bool,
}

impl<'a> Req<'a> {
    pub fn new(method: Method, url: String, scopes: Vec<String>, what: impl Into<String>) -> Self {
        Req {
            method,
            url,
            headers: Vec::new(),
            body: ReqBody::Empty,
            scopes,
            what: what.into(),
            streamed: false,
        }
    }
    pub fn streamed(mut self) -> Self {
        self.streamed = true;
        self
    }
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    pub fn body(mut self, body: ReqBody<'a>) -> Self {
        self.body = body;
        self
    }
}

pub(crate) fn pull_scope(repository: &str) -> String {
    format!("repository:{repository}:pull")
}

pub(crate) fn push_scope(repository: &str) -> String {
    format!("repository:{repository}:pull,push")
}

impl Client {
    /// A client for `registry`, with the explicit credentials of `options`
    /// when they are scoped to it, else Docker's config (or the fallback).
    pub fn new(
        registry: &str,
        options: &RegistryOptions,
        reporter: &dyn Reporter,
    ) -> Result<Client, RegistryError> {
        // The one place explicit credentials meet a registry: they go to
        // their own host only (see `ScopedCredentials`).
        let explicit = options
            .credentials
            .as_ref()
            .and_then(|c| c.for_registry(registry));
        let creds = match explicit {
            Some(c) => Some(c.clone()),
            None => credentials::lookup(
                registry,
                options.docker_config_dir.as_deref(),
                options.helper_path.as_deref(),
                options.fallback.as_deref(),
                reporter,
            )?,
        };
        Ok(Client::with_credentials(registry, options, creds))
    }

    /// A client using exactly `creds` (`None`: anonymous).
    pub fn with_credentials(registry: &str, options: &RegistryOptions, creds: Option<Credentials>) -> Client {
        let scheme = if is_plain_http(registry, &options.insecure) {
            "http"
        } else {
            "https"
        };
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(options.timeout))
            .timeout_per_read(Some(options.timeout))
            .timeout_recv_response(Some(options.timeout))
            // Redirects are followed by `send`, which decides per target
            // whether credentials may go along.
            .max_redirects(0)
            .user_agent(concat!("lambda-img/", env!("CARGO_PKG_VERSION")))
            .build();
        Client {
            registry: registry.to_string(),
            base: origin_of(&format!("{scheme}://{}", api_host(registry)))
                .unwrap_or_else(|| format!("{scheme}://{}", api_host(registry))),
            agent: ureq::Agent::new_with_config(config),
            creds,
            retry: options.retry.clone(),
            insecure: options.insecure.clone(),
            auth: Mutex::new(AuthState::default()),
            show_requests: options.show_requests,
            limits: TransferLimits {
                idle: options.timeout,
                deadline: options.deadline,
                min_rate: options.min_rate,
            },
        }
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }

    pub fn has_credentials(&self) -> bool {
        self.creds.is_some()
    }

    pub(crate) fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// `scheme://host` + `path` (path starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Resolves an upload `Location` (absolute, or relative to the registry).
    pub(crate) fn resolve_location(&self, location: &str) -> String {
        resolve_against(&format!("{}/", self.base), location)
    }

    /// `GET /v2/` with auth: proves the registry speaks the API and, with
    /// credentials, that they are accepted (used by `login`).
    pub fn ping(&self) -> Result<(), RegistryError> {
        let resp = self.send(Req::new(
            Method::GET,
            self.url("/v2/"),
            Vec::new(),
            "the API root /v2/",
        ))?;
        if resp.status() == StatusCode::OK {
            return Ok(());
        }
        Err(self.status_error(resp, "the API root /v2/", 1))
    }

    /// Sends a request: authenticates on a 401 (once), retries transient
    /// failures and follows redirects itself, so that credentials go only to
    /// this registry's own origin (scheme, host and port), as docker scopes
    /// them. A `Location` or redirect elsewhere is sent without credentials.
    pub(crate) fn send(&self, req: Req<'_>) -> Result<Response<ureq::Body>, RegistryError> {
        let mut req = req;
        for _ in 0..=MAX_REDIRECTS {
            let resp = if origin_of(&req.url).as_deref() == Some(self.base.as_str()) {
                self.send_own(&req)
            } else {
                self.send_foreign(&req)
            }
            .map_err(|e| self.name_request(e, &req))?;
            let status = resp.status();
            let Some(target) = redirect_target(&resp, &req.url) else {
                return Ok(resp);
            };
            drop(resp);
            if status == StatusCode::SEE_OTHER {
                req.method = Method::GET;
                req.body = ReqBody::Empty;
            }
            req.url = target;
        }
        Err(RegistryError::Protocol {
            registry: self.registry.clone(),
            message: format!("{}: more than {MAX_REDIRECTS} redirects", req.what),
        })
    }

    /// With `-v`, a network failure or an unexpected status names the
    /// request: `PUT https://HOST/v2/REPO/blobs/uploads/ID`. The query is
    /// left out (an upload URL's carries the registry's upload state).
    fn name_request(&self, error: RegistryError, req: &Req<'_>) -> RegistryError {
        if !self.show_requests {
            return error;
        }
        let url = req.url.split(['?', '#']).next().unwrap_or_default();
        let request = format!("failed request: {} {url}", req.method);
        match error {
            RegistryError::Unreachable {
                registry,
                what,
                attempts,
                message,
            } => RegistryError::Unreachable {
                registry,
                what,
                attempts,
                message: format!("{message}; {request}"),
            },
            RegistryError::Status {
                registry,
                what,
                status,
                attempts,
                diagnostics,
            } => RegistryError::Status {
                registry,
                what: format!("{what} ({request})"),
                status,
                attempts,
                diagnostics,
            },
            other => other,
        }
    }

    /// A request to a host other than the registry (an upload `Location` or a
    /// redirect): never with credentials, and a 401 there is an error naming
    /// both hosts rather than a challenge to answer with this registry's secrets.
    fn send_foreign(&self, req: &Req<'_>) -> Result<Response<ureq::Body>, RegistryError> {
        let resp = self.retrying(&req.what, || self.attempt(req, None))?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            return Err(RegistryError::ForeignAuth {
                registry: self.registry.clone(),
                other: origin_of(&req.url).unwrap_or_else(|| req.url.clone()),
                what: req.what.clone(),
            });
        }
        Ok(resp)
    }

    /// A request to the registry itself, with its credentials or tokens.
    fn send_own(&self, req: &Req<'_>) -> Result<Response<ureq::Body>, RegistryError> {
        let mut reauthed = false;
        loop {
            self.ensure_token(&req.scopes)?;
            let auth = self.auth_header(&req.scopes);
            let resp = self.retrying(&req.what, || self.attempt(req, auth.as_deref()))?;
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
            let challenge = resp
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .and_then(parse_challenge);
            let had_auth = auth.is_some();
            if reauthed || challenge.is_none() || (had_auth && !self.is_token_auth()) {
                let reason = if self.creds.is_none() {
                    AuthRefusal::NoCredentials
                } else {
                    AuthRefusal::Refused(diagnostics(resp))
                };
                return Err(RegistryError::Unauthorized {
                    registry: self.registry.clone(),
                    what: req.what.clone(),
                    reason,
                });
            }
            reauthed = true;
            let challenge = challenge.expect("checked");
            {
                let mut state = self.auth.lock().expect("auth state lock");
                state.challenge = Some(challenge.clone());
                // A token that was refused (expired, too narrow) is dropped.
                state.tokens.remove(&req.scopes.join(" "));
            }
            if let Challenge::Basic = challenge
                && self.creds.is_none()
            {
                return Err(RegistryError::Unauthorized {
                    registry: self.registry.clone(),
                    what: req.what.clone(),
                    reason: AuthRefusal::BasicWithoutCredentials,
                });
            }
        }
    }

    fn is_token_auth(&self) -> bool {
        matches!(
            self.auth.lock().expect("auth state lock").challenge,
            Some(Challenge::Bearer { .. })
        )
    }

    fn auth_header(&self, scopes: &[String]) -> Option<String> {
        let state = self.auth.lock().expect("auth state lock");
        match &state.challenge {
            None => None,
            Some(Challenge::Basic) => self.creds.as_ref().map(Credentials::basic_header),
            Some(Challenge::Bearer { .. }) => {
                state.tokens.get(&scopes.join(" ")).map(|t| format!("Bearer {t}"))
            }
        }
    }

    /// With a known bearer challenge, fetches a token for `scopes` when none is held.
    fn ensure_token(&self, scopes: &[String]) -> Result<(), RegistryError> {
        let key = scopes.join(" ");
        let (realm, service, challenge_scope) = {
            let state = self.auth.lock().expect("auth state lock");
            match &state.challenge {
                Some(Challenge::Bearer {
                    realm,
                    service,
                    scope,
                }) if !state.tokens.contains_key(&key) => (realm.clone(), service.clone(), scope.clone()),
                _ => return Ok(()),
            }
        };
        let mut query = Vec::new();
        if let Some(s) = &service {
            query.push(format!("service={}", encode(s)));
        }
        let scopes: Vec<String> = if scopes.is_empty() {
            challenge_scope.into_iter().collect()
        } else {
            scopes.to_vec()
        };
        for s in &scopes {
            query.push(format!("scope={}", encode(s)));
        }
        let url = if query.is_empty() {
            realm.clone()
        } else {
            format!(
                "{realm}{}{}",
                if realm.contains('?') { "&" } else { "?" },
                query.join("&")
            )
        };
        let realm_plain = realm.starts_with("http://");
        let realm_host = realm
            .split("://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .unwrap_or("");
        if realm_plain && self.creds.is_some() && !is_plain_http(realm_host, &self.insecure) {
            return Err(RegistryError::Protocol {
                registry: self.registry.clone(),
                message: format!(
                    "its token server {realm_host} uses plain HTTP; credentials are not sent there (name it with --insecure-registry if that is intended)"
                ),
            });
        }
        let what = format!("a token from {realm_host}");
        // The token server may be another host: it gets this registry's
        // credentials (as docker and containerd send them) because the
        // challenge naming it came from this registry's own origin (`send_own`
        // records challenges only from there; a 401 from elsewhere is
        // `ForeignAuth`), and `self.creds` are this registry's alone.
        let mut req = Req::new(Method::GET, url, Vec::new(), what.clone());
        if let Some(c) = &self.creds {
            req = req.header("authorization", c.basic_header());
        }
        let mut resp = self.retrying(&what, || self.attempt(&req, None))?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(RegistryError::Unauthorized {
                registry: self.registry.clone(),
                what: format!("a token for {}", scopes.join(" ")),
                reason: if self.creds.is_some() {
                    AuthRefusal::TokenRejected
                } else {
                    AuthRefusal::AnonymousRefused
                },
            });
        }
        if status != StatusCode::OK {
            return Err(self.status_error(resp, &what, 1));
        }
        let body = read_small(&mut resp);
        let token = token_from_response(&body).ok_or_else(|| RegistryError::Protocol {
            registry: self.registry.clone(),
            message: format!("{what}: the answer holds no token"),
        })?;
        self.auth
            .lock()
            .expect("auth state lock")
            .tokens
            .insert(key, token);
        Ok(())
    }

    fn attempt(&self, req: &Req<'_>, auth: Option<&str>) -> Result<Response<ureq::Body>, ureq::Error> {
        let mut b = http::Request::builder().method(req.method.clone()).uri(&req.url);
        for (k, v) in &req.headers {
            b = b.header(*k, v);
        }
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        match req.body {
            ReqBody::Empty => self.agent.run(self.bounded(b.body(())?, 0, req.streamed)),
            ReqBody::Bytes(bytes) => {
                let len = bytes.len() as u64;
                self.agent.run(self.bounded(b.body(bytes)?, len, req.streamed))
            }
            ReqBody::File(path) => {
                let file = std::fs::File::open(path)?;
                let len = file.metadata()?.len();
                self.agent.run(self.bounded(b.body(file)?, len, req.streamed))
            }
        }
    }

    /// Gives one attempt its time limits: sending `body_len` bytes may take the
    /// idle timeout plus what the minimum rate allows, and a response body
    /// read whole (anything but a streamed blob, whose reader enforces the
    /// rate itself) must arrive within the idle timeout.
    fn bounded<S: ureq::AsSendBody>(
        &self,
        r: http::Request<S>,
        body_len: u64,
        streamed: bool,
    ) -> http::Request<S> {
        let l = &self.limits;
        let send = l.idle + Duration::from_secs_f64(body_len as f64 / l.min_rate.max(1) as f64);
        self.agent
            .configure_request(r)
            .timeout_send_body(Some(send))
            .timeout_recv_body(if streamed { None } else { Some(l.idle) })
            .build()
    }

    /// Runs `f` until it gives a non-transient answer or the tries run out.
    pub(crate) fn retrying(
        &self,
        what: &str,
        mut f: impl FnMut() -> Result<Response<ureq::Body>, ureq::Error>,
    ) -> Result<Response<ureq::Body>, RegistryError> {
        let attempts = self.retry.attempts.max(1);
        let started = Instant::now();
        for attempt in 0..attempts {
            // No new attempt once the request's deadline has passed.
            let last = attempt + 1 == attempts || started.elapsed() >= self.limits.deadline;
            match f() {
                Ok(resp) if retryable_status(resp.status()) => {
                    if last {
                        return Err(self.status_error(resp, what, attempts));
                    }
                    let retry_after = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(parse_retry_after);
                    drop(resp);
                    sleep(self.retry.delay(attempt, retry_after));
                }
                Ok(resp) => return Ok(resp),
                Err(ureq::Error::HostNotFound) => {
                    return Err(RegistryError::HostNotFound {
                        registry: self.registry.clone(),
                    });
                }
                // std reports a name the resolver does not know (EAI_NONAME)
                // as an io error; retrying it only makes the user wait.
                Err(ureq::Error::Io(e)) if unknown_host(&e) => {
                    return Err(RegistryError::HostNotFound {
                        registry: self.registry.clone(),
                    });
                }
                Err(e) if retryable_error(&e) && !last => sleep(self.retry.delay(attempt, None)),
                Err(e) => {
                    return Err(RegistryError::Unreachable {
                        registry: self.registry.clone(),
                        what: what.to_string(),
                        attempts: attempt + 1,
                        message: format!("{e} ({})", self.limits.describe()),
                    });
                }
            }
        }
        unreachable!("the last attempt always returns")
    }

    /// An error for an unexpected status, with the registry's own error code.
    pub(crate) fn status_error(
        &self,
        resp: Response<ureq::Body>,
        what: &str,
        attempts: u32,
    ) -> RegistryError {
        let status = resp.status();
        let diagnostics = diagnostics(resp);
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => RegistryError::Unauthorized {
                registry: self.registry.clone(),
                what: what.to_string(),
                reason: AuthRefusal::Refused(diagnostics),
            },
            StatusCode::NOT_FOUND => RegistryError::NotFound {
                registry: self.registry.clone(),
                what: what.to_string(),
                diagnostics,
            },
            _ => RegistryError::Status {
                registry: self.registry.clone(),
                what: what.to_string(),
                status,
                attempts,
                diagnostics,
            },
        }
    }
}

/// Redirects followed for one request.
const MAX_REDIRECTS: usize = 5;

/// `scheme://host[:port]` of an absolute URL, lower-cased, without a default
/// port; `None` for anything else. Two URLs share credentials only when these match.
pub(crate) fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?;
    // Userinfo in a Location would be a way to smuggle another host past a naive check.
    let authority = authority.rsplit('@').next()?.to_ascii_lowercase();
    if authority.is_empty() {
        return None;
    }
    let default_port = if scheme == "http" { ":80" } else { ":443" };
    let authority = authority.strip_suffix(default_port).unwrap_or(&authority);
    Some(format!("{scheme}://{authority}"))
}

/// Where a 301/302/303/307/308 answer points, resolved against the URL it answered.
fn redirect_target(resp: &Response<ureq::Body>, url: &str) -> Option<String> {
    if !matches!(
        resp.status(),
        StatusCode::MOVED_PERMANENTLY
            | StatusCode::FOUND
            | StatusCode::SEE_OTHER
            | StatusCode::TEMPORARY_REDIRECT
            | StatusCode::PERMANENT_REDIRECT
    ) {
        return None;
    }
    let location = resp.headers().get("location")?.to_str().ok()?;
    Some(resolve_against(url, location))
}

/// Resolves `location` (absolute, absolute-path or relative) against `url`.
pub(crate) fn resolve_against(url: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.to_string();
    }
    let origin = origin_of(url).unwrap_or_default();
    if location.starts_with('/') {
        return format!("{origin}{location}");
    }
    let path = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let path = path.find('/').map(|i| &path[i..]).unwrap_or("/");
    let path = path.split('?').next().unwrap_or(path);
    let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
    format!("{origin}{dir}/{location}")
}

/// Reads a small body (error documents, tokens); at most 1 MiB.
pub(crate) fn read_small(resp: &mut Response<ureq::Body>) -> Vec<u8> {
    resp.body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_vec()
        .unwrap_or_default()
}

/// The entries of the registry error document in an answer's body, if it is one.
fn diagnostics(mut resp: Response<ureq::Body>) -> Diagnostics {
    Diagnostics::parse(&read_small(&mut resp))
}

/// Percent-encodes a query value.
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether an io error is the resolver saying the name does not exist (as
/// opposed to "try again later", which stays retryable).
fn unknown_host(e: &std::io::Error) -> bool {
    let text = e.to_string();
    text.contains("Name or service not known") || text.contains("No address associated with hostname")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_compare_scheme_host_and_port() {
        assert_eq!(
            origin_of("http://127.0.0.1:5000/v2/x").as_deref(),
            Some("http://127.0.0.1:5000")
        );
        assert_eq!(
            origin_of("https://Reg.Example:443/v2/").as_deref(),
            Some("https://reg.example")
        );
        assert_eq!(
            origin_of("https://reg.example?x").as_deref(),
            Some("https://reg.example")
        );
        assert_eq!(
            origin_of("https://reg.example@evil.example/v2/").as_deref(),
            Some("https://evil.example")
        );
        assert_ne!(
            origin_of("http://reg.example/"),
            origin_of("https://reg.example/")
        );
        assert_eq!(origin_of("ftp://x/"), None);
        assert_eq!(origin_of("/v2/x"), None);
    }

    #[test]
    fn locations_resolve_against_the_answering_url() {
        let u = "http://a:1/v2/r/blobs/uploads/?x=1";
        assert_eq!(resolve_against(u, "http://b:2/p"), "http://b:2/p");
        assert_eq!(
            resolve_against(u, "/v2/r/blobs/uploads/u1"),
            "http://a:1/v2/r/blobs/uploads/u1"
        );
        assert_eq!(
            resolve_against(u, "u1?s=2"),
            "http://a:1/v2/r/blobs/uploads/u1?s=2"
        );
    }
}
