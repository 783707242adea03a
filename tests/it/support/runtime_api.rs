//! A Lambda Runtime API (2018-06-01) on 127.0.0.1 for tests: a function in a
//! container polls it like the real service, and the test invokes it.
//!
//! Serves `GET /runtime/invocation/next` (blocking until an event is queued),
//! `POST /runtime/invocation/{id}/response`, `POST .../{id}/error` and
//! `POST /runtime/init/error`, over persistent HTTP/1.1 connections with
//! Content-Length or chunked bodies (hyper and libcurl clients use both).

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// What the function answered.
pub type Answer = Result<String, String>;

#[derive(Default)]
struct State {
    queue: Mutex<VecDeque<(String, String)>>,
    queued: Condvar,
    answers: Mutex<HashMap<String, Answer>>,
    init_error: Mutex<Option<String>>,
    answered: Condvar,
    stop: AtomicBool,
}

pub struct RuntimeApi {
    addr: SocketAddr,
    state: Arc<State>,
    next_id: AtomicU64,
}

impl RuntimeApi {
    pub fn start() -> RuntimeApi {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the Runtime API");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let accept_state = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accept_state.stop.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    let state = accept_state.clone();
                    std::thread::spawn(move || serve(stream, &state));
                }
            }
        });
        RuntimeApi {
            addr,
            state,
            next_id: AtomicU64::new(1),
        }
    }

    /// `127.0.0.1:PORT`, the value of AWS_LAMBDA_RUNTIME_API.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// Queues `event` and waits for the function's answer.
    pub fn invoke(&self, event: &str, timeout: Duration) -> Answer {
        let id = format!("req-{}", self.next_id.fetch_add(1, Ordering::SeqCst));
        self.state
            .queue
            .lock()
            .unwrap()
            .push_back((id.clone(), event.to_string()));
        self.state.queued.notify_all();
        let deadline = Instant::now() + timeout;
        let mut answers = self.state.answers.lock().unwrap();
        loop {
            if let Some(answer) = answers.remove(&id) {
                return answer;
            }
            if let Some(init) = self.state.init_error.lock().unwrap().clone() {
                return Err(format!("init error: {init}"));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("no answer to {id} within {timeout:?}"));
            }
            answers = self
                .state
                .answered
                .wait_timeout(answers, left.min(Duration::from_millis(200)))
                .unwrap()
                .0;
        }
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        self.state.queued.notify_all();
        // Wake the accept loop so its thread ends.
        let _ = TcpStream::connect(self.addr);
    }
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn serve(stream: TcpStream, state: &State) {
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut reader = BufReader::new(stream);
    while let Some(req) = read_request(&mut reader) {
        let (status, headers, body) = handle(&req, state);
        let mut head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        if writer
            .write_all(head.as_bytes())
            .and_then(|_| writer.write_all(&body))
            .is_err()
        {
            return;
        }
        if state.stop.load(Ordering::SeqCst) {
            return;
        }
    }
}

fn read_request(reader: &mut impl BufRead) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let t = line.trim_end();
        if t.is_empty() {
            break;
        }
        let (k, v) = t.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            line.clear();
            reader.read_line(&mut line).ok()?;
            let size = usize::from_str_radix(line.trim().split(';').next()?, 16).ok()?;
            if size == 0 {
                // Trailers, then the blank line.
                loop {
                    line.clear();
                    reader.read_line(&mut line).ok()?;
                    if line.trim_end().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..]).ok()?;
            let mut crlf = [0u8; 2];
            reader.read_exact(&mut crlf).ok()?;
        }
    } else if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(len, 0);
        reader.read_exact(&mut body).ok()?;
    }
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

fn handle(req: &Request, state: &State) -> (&'static str, Vec<(String, String)>, Vec<u8>) {
    let path = req.path.strip_prefix("/2018-06-01").unwrap_or(&req.path);
    let accepted = (
        "202 Accepted",
        vec![("Content-Type".into(), "application/json".into())],
        b"{}".to_vec(),
    );
    match (req.method.as_str(), path) {
        ("GET", "/runtime/invocation/next") => {
            let mut queue = state.queue.lock().unwrap();
            let (id, event) = loop {
                if let Some(item) = queue.pop_front() {
                    break item;
                }
                if state.stop.load(Ordering::SeqCst) {
                    return ("503 Service Unavailable", Vec::new(), Vec::new());
                }
                queue = state
                    .queued
                    .wait_timeout(queue, Duration::from_millis(200))
                    .unwrap()
                    .0;
            };
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
                + 60_000;
            let headers = vec![
                ("Content-Type".into(), "application/json".into()),
                ("Lambda-Runtime-Aws-Request-Id".into(), id),
                ("Lambda-Runtime-Deadline-Ms".into(), deadline.to_string()),
                (
                    "Lambda-Runtime-Invoked-Function-Arn".into(),
                    "arn:aws:lambda:us-east-1:123456789012:function:test".into(),
                ),
                (
                    "Lambda-Runtime-Trace-Id".into(),
                    "Root=1-00000000-000000000000000000000000;Sampled=0".into(),
                ),
            ];
            ("200 OK", headers, event.into_bytes())
        }
        ("POST", "/runtime/init/error") => {
            *state.init_error.lock().unwrap() = Some(String::from_utf8_lossy(&req.body).into_owned());
            state.answered.notify_all();
            accepted
        }
        ("POST", p) if p.starts_with("/runtime/invocation/") => {
            let rest = &p["/runtime/invocation/".len()..];
            let Some((id, kind)) = rest.split_once('/') else {
                return ("404 Not Found", Vec::new(), Vec::new());
            };
            let body = String::from_utf8_lossy(&req.body).into_owned();
            let answer = match kind {
                "response" => Ok(body),
                "error" => {
                    let kind = req
                        .headers
                        .iter()
                        .find(|(k, _)| k == "lambda-runtime-function-error-type")
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default();
                    Err(format!("{kind} {body}"))
                }
                _ => return ("404 Not Found", Vec::new(), Vec::new()),
            };
            state.answers.lock().unwrap().insert(id.to_string(), answer);
            state.answered.notify_all();
            accepted
        }
        _ => ("404 Not Found", Vec::new(), Vec::new()),
    }
}
