//! The Runtime API server of one execution environment.

use std::io::{BufReader, BufWriter};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;

use super::http::{Body, Head, read_body, read_head, write_response};
use super::{MAX_PAYLOAD, MAX_STREAMED, error_body};

/// One event handed to the function.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    pub payload: Vec<u8>,
    pub timeout: Duration,
    pub function_arn: String,
    pub trace_id: String,
    /// JSON, as `Lambda-Runtime-Client-Context` carries it.
    pub client_context: Option<String>,
    pub cognito_identity: Option<String>,
}

/// What the function answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Response {
        body: Vec<u8>,
        streamed: bool,
    },
    /// A function error (or one Lambda itself reports, such as an oversize response).
    Error {
        error_type: String,
        body: Vec<u8>,
    },
}

/// Why an invocation got no answer from the function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The runtime reported an init error (`POST /runtime/init/error`).
    InitError { error_type: String, body: Vec<u8> },
    /// The process ended, described as Lambda does (`exit status 1`, `signal: killed`).
    Exited { during_invoke: bool, status: String },
    /// The deadline passed: the function's timeout, or init not done in time.
    Timeout { during_init: bool },
}

#[derive(Default)]
struct State {
    first_next: Option<Instant>,
    pending: Option<Invocation>,
    /// The invocation handed out, and when.
    current: Option<(String, Instant)>,
    /// Like `current`, but kept after the answer (for the duration).
    handed: Option<(String, Instant)>,
    outcome: Option<(String, Outcome, Instant)>,
    init_error: Option<(String, Vec<u8>)>,
    exited: Option<String>,
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    started: Instant,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A Runtime API on 127.0.0.1; stops when dropped.
pub struct RuntimeApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl RuntimeApi {
    pub fn start() -> std::io::Result<RuntimeApi> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            started: Instant::now(),
        });
        let accept = shared.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accept.lock().closed {
                    break;
                }
                if let Ok(stream) = stream {
                    let shared = accept.clone();
                    std::thread::spawn(move || serve(stream, &shared));
                }
            }
        });
        Ok(RuntimeApi { addr, shared })
    }

    /// `127.0.0.1:PORT`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// From the server's start to the runtime's first `next`: the init phase.
    pub fn init_duration(&self) -> Option<Duration> {
        self.shared
            .lock()
            .first_next
            .map(|t| t.duration_since(self.shared.started))
    }

    /// The environment's process ended (`status` as Lambda words it).
    pub fn process_exited(&self, status: String) {
        self.shared.lock().exited = Some(status);
        self.shared.changed.notify_all();
    }

    /// Hands `invocation` to the runtime and waits for its end: the init
    /// phase may take `init_limit` (counted from now), the invocation its own
    /// timeout from when the runtime picks it up. Returns the outcome and
    /// the invocation's duration.
    pub fn invoke(
        &self,
        invocation: Invocation,
        init_limit: Duration,
    ) -> (Result<Outcome, Failure>, Duration) {
        let id = invocation.request_id.clone();
        let timeout = invocation.timeout;
        let queued = Instant::now();
        let mut state = self.shared.lock();
        state.outcome = None;
        state.pending = Some(invocation);
        self.shared.changed.notify_all();
        loop {
            let picked = state.handed.as_ref().filter(|(c, _)| *c == id).map(|(_, t)| *t);
            let elapsed = || picked.map_or(Duration::ZERO, |t| t.elapsed());
            if let Some((done_id, _, _)) = &state.outcome
                && *done_id == id
            {
                let (_, outcome, at) = state.outcome.take().expect("checked above");
                let took = picked.map_or(Duration::ZERO, |t| at.duration_since(t));
                return (Ok(outcome), took);
            }
            if let Some((error_type, body)) = state.init_error.clone() {
                state.pending = None;
                return (Err(Failure::InitError { error_type, body }), elapsed());
            }
            if let Some(status) = state.exited.clone() {
                state.pending = None;
                let failure = Failure::Exited {
                    during_invoke: picked.is_some(),
                    status,
                };
                return (Err(failure), elapsed());
            }
            let deadline = match picked {
                Some(t) => t + timeout,
                None => queued + init_limit,
            };
            let now = Instant::now();
            if now >= deadline {
                state.pending = None;
                let failure = Failure::Timeout {
                    during_init: picked.is_none(),
                };
                return (Err(failure), elapsed());
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.changed.notify_all();
        // Wake the accept loop so its thread ends.
        let _ = TcpStream::connect(self.addr);
    }
}

type Reply = (u16, Vec<(&'static str, String)>, Vec<u8>, bool);

fn accepted() -> Reply {
    (
        202,
        vec![("Content-Type", "application/json".into())],
        br#"{"status":"OK"}"#.to_vec(),
        false,
    )
}

fn client_error(status: u16, error_type: &str, message: &str, close: bool) -> Reply {
    (
        status,
        vec![("Content-Type", "application/json".into())],
        error_body(error_type, message),
        close,
    )
}

fn serve(stream: TcpStream, shared: &Shared) {
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let mut writer = BufWriter::new(write_half);
    let mut reader = BufReader::new(stream);
    while let Ok(Some(head)) = read_head(&mut reader) {
        let (status, headers, body, close) = handle(&head, &mut reader, shared);
        if write_response(&mut writer, status, &headers, &body, close).is_err() || close {
            return;
        }
    }
}

fn handle(head: &Head, reader: &mut BufReader<TcpStream>, shared: &Shared) -> Reply {
    let path = head.path.strip_prefix("/2018-06-01").unwrap_or(&head.path);
    match (head.method.as_str(), path) {
        ("GET", "/runtime/invocation/next") => next(shared),
        ("POST", "/runtime/init/error") => {
            let body = match read_body(reader, head, MAX_PAYLOAD, &mut |_| {}) {
                Ok(Body::Complete { bytes, .. }) => bytes,
                _ => return client_error(413, "RequestEntityTooLarge", "init error too large", true),
            };
            let error_type = head
                .header("lambda-runtime-function-error-type")
                .unwrap_or("Runtime.Unknown")
                .to_string();
            shared.lock().init_error = Some((error_type, body));
            shared.changed.notify_all();
            accepted()
        }
        ("POST", p) if p.starts_with("/runtime/invocation/") => {
            let rest = &p["/runtime/invocation/".len()..];
            let Some((id, kind)) = rest.split_once('/') else {
                return client_error(404, "NotFound", "no such path", false);
            };
            answer(head, reader, shared, id, kind)
        }
        _ => client_error(404, "NotFound", "no such path", false),
    }
}

/// `GET /runtime/invocation/next`: blocks until an event is queued.
fn next(shared: &Shared) -> Reply {
    let mut state = shared.lock();
    state.first_next.get_or_insert_with(Instant::now);
    shared.changed.notify_all();
    let invocation = loop {
        if state.closed {
            return client_error(500, "ServiceStopped", "the environment is stopping", true);
        }
        if let Some(inv) = state.pending.take() {
            break inv;
        }
        state = shared.changed.wait(state).unwrap_or_else(|e| e.into_inner());
    };
    let now = Instant::now();
    state.current = Some((invocation.request_id.clone(), now));
    state.handed = Some((invocation.request_id.clone(), now));
    drop(state);
    shared.changed.notify_all();
    let deadline = SystemTime::now()
        .checked_add(invocation.timeout)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis());
    let mut headers = vec![
        ("Content-Type", "application/json".to_string()),
        ("Lambda-Runtime-Aws-Request-Id", invocation.request_id),
        ("Lambda-Runtime-Deadline-Ms", deadline.to_string()),
        ("Lambda-Runtime-Invoked-Function-Arn", invocation.function_arn),
        ("Lambda-Runtime-Trace-Id", invocation.trace_id),
    ];
    if let Some(c) = invocation.client_context {
        headers.push(("Lambda-Runtime-Client-Context", c));
    }
    if let Some(c) = invocation.cognito_identity {
        headers.push(("Lambda-Runtime-Cognito-Identity", c));
    }
    (200, headers, invocation.payload, false)
}

/// `POST /runtime/invocation/{id}/response` and `.../error`.
fn answer(head: &Head, reader: &mut BufReader<TcpStream>, shared: &Shared, id: &str, kind: &str) -> Reply {
    if !matches!(kind, "response" | "error") {
        return client_error(404, "NotFound", "no such path", false);
    }
    let is_current = shared.lock().current.as_ref().is_some_and(|(c, _)| c == id);
    if !is_current {
        // Read the body anyway so the connection stays usable.
        let _ = read_body(reader, head, MAX_STREAMED, &mut |_| {});
        return client_error(400, "InvalidRequestID", "Invalid request ID", false);
    }
    let streamed = head
        .header("lambda-runtime-function-response-mode")
        .is_some_and(|m| m.eq_ignore_ascii_case("streaming"));
    let limit = if streamed { MAX_STREAMED } else { MAX_PAYLOAD };
    let (outcome, reply) = match read_body(reader, head, limit, &mut |_| {}) {
        Err(_) => return client_error(400, "InvalidRequest", "unreadable body", true),
        Ok(Body::TooLarge) => (
            Outcome::Error {
                error_type: "Function.ResponseSizeTooLarge".into(),
                body: error_body(
                    "Function.ResponseSizeTooLarge",
                    &format!("Response payload size exceeded maximum allowed payload size ({limit} bytes)."),
                ),
            },
            client_error(
                413,
                "RequestEntityTooLarge",
                &format!("Exceeded maximum allowed payload size ({limit} bytes)."),
                true,
            ),
        ),
        Ok(Body::Complete { bytes, trailers }) => {
            let trailer = |name: &str| trailers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
            let outcome = if kind == "error" {
                let error_type = head
                    .header("lambda-runtime-function-error-type")
                    .unwrap_or("Unhandled")
                    .to_string();
                Outcome::Error {
                    body: error_json(&error_type, bytes),
                    error_type,
                }
            } else if let Some(error_type) = trailer("lambda-runtime-function-error-type") {
                // A streamed response that failed midway names its error in trailers.
                let body = trailer("lambda-runtime-function-error-body")
                    .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                    .unwrap_or_default();
                Outcome::Error {
                    body: error_json(&error_type, body),
                    error_type,
                }
            } else {
                Outcome::Response {
                    body: bytes,
                    streamed,
                }
            };
            (outcome, accepted())
        }
    };
    let mut state = shared.lock();
    state.outcome = Some((id.to_string(), outcome, Instant::now()));
    state.current = None;
    drop(state);
    shared.changed.notify_all();
    reply
}

/// The error body as given when it is JSON, else wrapped as Lambda would.
fn error_json(error_type: &str, body: Vec<u8>) -> Vec<u8> {
    if serde_json::from_slice::<serde_json::Value>(&body).is_ok() {
        body
    } else {
        error_body(error_type, String::from_utf8_lossy(&body).trim())
    }
}

#[cfg(test)]
mod tests {
    //! curl (a real HTTP client) plays the runtime here, for what no runtime
    //! client in the test images does: streamed answers, wrong ids, oversize bodies.

    use super::*;

    fn curl_available() -> bool {
        let found = std::process::Command::new("curl")
            .arg("--version")
            .output()
            .is_ok();
        if !found {
            assert!(std::env::var("CI").is_err(), "CI needs curl");
            eprintln!("!!! SKIPPING: curl is not installed");
        }
        found
    }

    fn curl(args: &[&str]) -> String {
        let out = std::process::Command::new("curl")
            .args(["-s", "-i"])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn invocation(id: &str) -> Invocation {
        Invocation {
            request_id: id.into(),
            payload: br#"{"k":1}"#.to_vec(),
            timeout: Duration::from_secs(30),
            function_arn: "arn:aws:lambda:us-east-1:012345678912:function:f".into(),
            trace_id: "Root=1-0-0".into(),
            client_context: Some(r#"{"custom":{"a":"b"}}"#.into()),
            cognito_identity: None,
        }
    }

    #[test]
    fn a_streamed_answer_a_wrong_id_and_an_oversize_body() {
        if !curl_available() {
            return;
        }
        let api = Arc::new(RuntimeApi::start().unwrap());
        let base = format!("http://{}/2018-06-01/runtime/invocation", api.addr());
        let invoker = {
            let api = api.clone();
            std::thread::spawn(move || {
                let first = api.invoke(invocation("id-1"), Duration::from_secs(30)).0;
                let second = api.invoke(invocation("id-2"), Duration::from_secs(30)).0;
                (first, second)
            })
        };
        let next = curl(&[&format!("{base}/next")]);
        assert!(next.contains("Lambda-Runtime-Aws-Request-Id: id-1"), "{next}");
        assert!(
            next.contains("Lambda-Runtime-Client-Context: {\"custom\":{\"a\":\"b\"}}"),
            "{next}"
        );
        assert!(next.contains("Lambda-Runtime-Deadline-Ms: "), "{next}");
        assert!(next.ends_with(r#"{"k":1}"#), "{next}");
        let wrong = curl(&["-d", "{}", &format!("{base}/id-9/response")]);
        assert!(
            wrong.starts_with("HTTP/1.1 400") && wrong.contains("InvalidRequestID"),
            "{wrong}"
        );
        let streamed = curl(&[
            "-H",
            "Lambda-Runtime-Function-Response-Mode: streaming",
            "-H",
            "Transfer-Encoding: chunked",
            "--data-binary",
            "part one, part two",
            &format!("{base}/id-1/response"),
        ]);
        assert!(streamed.starts_with("HTTP/1.1 202"), "{streamed}");

        let next = curl(&[&format!("{base}/next")]);
        assert!(next.contains("Lambda-Runtime-Aws-Request-Id: id-2"), "{next}");
        let big = "x".repeat(crate::runtime_api::MAX_PAYLOAD + 1);
        let path = std::env::temp_dir().join(format!("lambda-img-big-{}", std::process::id()));
        std::fs::write(&path, big).unwrap();
        let refused = curl(&[
            "--data-binary",
            &format!("@{}", path.display()),
            &format!("{base}/id-2/response"),
        ]);
        let _ = std::fs::remove_file(&path);
        assert!(
            refused.starts_with("HTTP/1.1 413") && refused.contains("RequestEntityTooLarge"),
            "{refused}"
        );

        let (first, second) = invoker.join().unwrap();
        assert_eq!(
            first,
            Ok(Outcome::Response {
                body: b"part one, part two".to_vec(),
                streamed: true
            })
        );
        match second {
            Ok(Outcome::Error { error_type, body }) => {
                assert_eq!(error_type, "Function.ResponseSizeTooLarge");
                assert!(String::from_utf8_lossy(&body).contains("6291556 bytes"));
            }
            other => panic!("{other:?}"),
        }
    }
}
