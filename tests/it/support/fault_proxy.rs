//! A small HTTP/1.1 proxy (std::net, one request per connection) in front of
//! the real registry. Faults injected by rule: a status instead of the answer
//! (503, 429 with Retry-After), a connection dropped half-way through a body,
//! or a body with one byte changed. Also the plumbing for the bearer proxy.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One parsed request.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or(&self.target)
    }
}

/// One buffered response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// A HEAD answer: keep Content-Length, send no body.
    pub head: bool,
}

impl Response {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: body.into(),
            head: false,
        }
    }
    pub fn with_header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }
}

/// Reads one request (Content-Length bodies only: what our client and skopeo send).
pub fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut r = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let mut req = Request {
        method,
        target,
        headers,
        body: Vec::new(),
    };
    if req
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        req.body = read_chunked(&mut r)?;
        req.headers
            .retain(|(k, _)| !k.eq_ignore_ascii_case("transfer-encoding"));
        let n = req.body.len().to_string();
        req.headers.push(("Content-Length".into(), n));
    } else if let Some(n) = req.header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        let mut body = vec![0; n];
        r.read_exact(&mut body).ok()?;
        req.body = body;
    }
    Some(req)
}

fn read_chunked(r: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let mut size = String::new();
        r.read_line(&mut size).ok()?;
        let n = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
        if n == 0 {
            let mut end = String::new();
            r.read_line(&mut end).ok()?;
            return Some(out);
        }
        let mut chunk = vec![0; n + 2];
        r.read_exact(&mut chunk).ok()?;
        out.extend_from_slice(&chunk[..n]);
    }
}

/// Sends `req` to 127.0.0.1:`port` and reads the whole answer.
pub fn forward(port: u16, req: &Request) -> std::io::Result<Response> {
    let mut up = TcpStream::connect(("127.0.0.1", port))?;
    up.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!("{} {} HTTP/1.1\r\n", req.method, req.target);
    for (k, v) in &req.headers {
        if !k.eq_ignore_ascii_case("connection") {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str("Connection: close\r\n\r\n");
    up.write_all(head.as_bytes())?;
    up.write_all(&req.body)?;
    let mut r = BufReader::new(up);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(502);
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked"));
    let head_req = req.method == "HEAD";
    let body = if head_req || status == 204 || status == 304 {
        Vec::new()
    } else if chunked {
        read_chunked(&mut r).unwrap_or_default()
    } else {
        let mut b = Vec::new();
        r.read_to_end(&mut b)?;
        b
    };
    headers.retain(|(k, _)| {
        !k.eq_ignore_ascii_case("transfer-encoding") && !k.eq_ignore_ascii_case("connection")
    });
    Ok(Response {
        status,
        headers,
        body,
        head: head_req,
    })
}

/// Writes `resp` and closes. With `cut_after`, only that many body bytes are
/// sent before the connection is dropped (Content-Length still promises all).
pub fn write_response(mut stream: TcpStream, resp: &Response, cut_after: Option<usize>) {
    let mut head = format!("HTTP/1.1 {} X\r\n", resp.status);
    let mut has_len = false;
    for (k, v) in &resp.headers {
        if k.eq_ignore_ascii_case("content-length") {
            has_len = true;
            if !resp.head {
                continue;
            }
        }
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !resp.head || !has_len {
        head.push_str(&format!("Content-Length: {}\r\n", resp.body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    let _ = stream.write_all(head.as_bytes());
    if !resp.head {
        let n = cut_after.unwrap_or(resp.body.len()).min(resp.body.len());
        let _ = stream.write_all(&resp.body[..n]);
    }
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Both);
}

/// A listener on a free loopback port calling `handler` per connection, on its
/// own thread; stopped when dropped.
pub struct Server {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    pub fn start(handler: Arc<dyn Fn(TcpStream) + Send + Sync>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let h = handler.clone();
                std::thread::spawn(move || h(conn));
            }
        });
        Server {
            port,
            stop,
            thread: Some(thread),
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What to do to a matching request.
#[derive(Debug, Clone)]
pub enum FaultKind {
    /// Answer this status instead of forwarding (503, 500, ...).
    Status(u16),
    /// Answer 429 with `Retry-After: secs`.
    TooMany { retry_after: u64 },
    /// Forward, then send only half of the body and drop the connection.
    DropMidBody,
    /// Forward, then change one byte of the body (same length).
    Corrupt,
    /// Say nothing for this long, then close (a hung connection).
    Stall(Duration),
    /// Forward, then send the body `bytes` at a time with a pause of
    /// `every` between writes (a trickling registry), until the client leaves.
    Trickle { bytes: usize, every: Duration },
    /// Forward, but announce `extra` more bytes in Content-Length than the
    /// body has, send the body and close.
    LongerLength(u64),
}

/// Writes the status line and headers of `resp` with `Content-Length: len`.
fn write_head(stream: &mut TcpStream, resp: &Response, len: u64) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {} X\r\n", resp.status);
    for (k, v) in &resp.headers {
        if !k.eq_ignore_ascii_case("content-length") {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str(&format!("Content-Length: {len}\r\nConnection: close\r\n\r\n"));
    stream.write_all(head.as_bytes())
}

/// Sends `resp` slowly: see [`FaultKind::Trickle`].
fn write_trickle(mut stream: TcpStream, resp: &Response, bytes: usize, every: Duration) {
    if write_head(&mut stream, resp, resp.body.len() as u64).is_err() {
        return;
    }
    for chunk in resp.body.chunks(bytes.max(1)) {
        if stream.write_all(chunk).and_then(|_| stream.flush()).is_err() {
            return;
        }
        std::thread::sleep(every);
    }
}

/// A fault for the next `times` requests whose method and path match.
#[derive(Debug, Clone)]
pub struct Fault {
    pub method: &'static str,
    /// A substring of the path (`/blobs/sha256:`, `/manifests/`).
    pub path_contains: String,
    pub times: usize,
    pub kind: FaultKind,
}

/// A request's target and its `Authorization` header (`None`: it had none).
pub type SeenAuthorization = (String, Option<String>);

/// The fault proxy in front of a registry on `upstream` port.
pub struct FaultProxy {
    pub server: Server,
    faults: Arc<Mutex<Vec<Fault>>>,
    /// Every request seen: (method, path, status sent or 0 when cut).
    pub log: Arc<Mutex<Vec<(String, String, u16)>>>,
    /// Every request's target and `Authorization` header (`None`: it had none).
    pub authorizations: Arc<Mutex<Vec<SeenAuthorization>>>,
}

impl FaultProxy {
    pub fn start(upstream: u16) -> FaultProxy {
        let faults: Arc<Mutex<Vec<Fault>>> = Arc::default();
        let log: Arc<Mutex<Vec<(String, String, u16)>>> = Arc::default();
        let authorizations: Arc<Mutex<Vec<SeenAuthorization>>> = Arc::default();
        let (f2, l2, a2) = (faults.clone(), log.clone(), authorizations.clone());
        let server = Server::start(Arc::new(move |stream: TcpStream| {
            let Some(req) = read_request(&stream) else { return };
            a2.lock().unwrap().push((
                req.target.clone(),
                req.header("authorization").map(str::to_string),
            ));
            let fault = {
                let mut faults = f2.lock().unwrap();
                let pos = faults.iter().position(|f| {
                    f.times > 0 && f.method == req.method && req.path().contains(&f.path_contains)
                });
                pos.map(|i| {
                    faults[i].times -= 1;
                    faults[i].kind.clone()
                })
            };
            let record = |status| {
                l2.lock()
                    .unwrap()
                    .push((req.method.clone(), req.target.clone(), status))
            };
            match fault {
                Some(FaultKind::Status(s)) => {
                    record(s);
                    write_response(stream, &Response::new(s, "injected fault"), None)
                }
                Some(FaultKind::Stall(d)) => {
                    record(0);
                    std::thread::sleep(d);
                    drop(stream);
                }
                Some(FaultKind::TooMany { retry_after }) => {
                    record(429);
                    let resp =
                        Response::new(429, "slow down").with_header("Retry-After", &retry_after.to_string());
                    write_response(stream, &resp, None)
                }
                other => match forward(upstream, &req) {
                    Ok(mut resp) => {
                        let mut cut = None;
                        match other {
                            Some(FaultKind::DropMidBody) => cut = Some(resp.body.len() / 2),
                            Some(FaultKind::Corrupt) => {
                                if let Some(b) = resp.body.get_mut(0) {
                                    *b ^= 0xff;
                                }
                            }
                            _ => {}
                        }
                        record(if cut.is_some() { 0 } else { resp.status });
                        match other {
                            Some(FaultKind::Trickle { bytes, every }) => {
                                write_trickle(stream, &resp, bytes, every)
                            }
                            Some(FaultKind::LongerLength(extra)) => {
                                let mut stream = stream;
                                let _ = write_head(&mut stream, &resp, resp.body.len() as u64 + extra);
                                let _ = stream.write_all(&resp.body);
                                let _ = stream.shutdown(Shutdown::Both);
                            }
                            _ => write_response(stream, &resp, cut),
                        }
                    }
                    Err(_) => write_response(stream, &Response::new(502, "upstream down"), None),
                },
            }
        }));
        FaultProxy {
            server,
            faults,
            log,
            authorizations,
        }
    }

    pub fn host(&self) -> String {
        self.server.host()
    }

    pub fn add(&self, fault: Fault) {
        self.faults.lock().unwrap().push(fault);
    }

    /// How many requests matched `method` and a path containing `part`.
    pub fn count(&self, method: &str, part: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, p, _)| m == method && p.contains(part))
            .count()
    }
}
