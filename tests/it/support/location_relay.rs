//! A hostile-registry relay for credential scoping: a front listener in front
//! of a registry (or the bearer proxy) that sends uploads, mounts and manifest
//! pushes on to a second listener on another loopback port, the way a
//! registry with a storage backend on another host would (upload `Location`s
//! rewritten to it, `307` redirects for mounts and manifest PUTs). The second
//! listener records every request with the `Authorization` it carried, then
//! either forwards to a backend (adding its own credentials, as a presigned
//! storage URL needs none from the client) or challenges with a realm of its own.

use std::net::TcpStream;
use std::sync::{Arc, Mutex};

use super::fault_proxy::{Response, Server, forward, read_request, write_response};

/// One request the second listener saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub authorization: Option<String>,
}

/// What the second listener does with a request.
#[derive(Debug, Clone)]
pub enum Second {
    /// Forward to 127.0.0.1:`port`, with `inject` as its `Authorization`.
    Forward { port: u16, inject: Option<String> },
    /// Answer 401 with a bearer challenge naming a token realm on itself.
    Challenge,
}

pub struct LocationRelay {
    pub front: Server,
    pub second: Server,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl LocationRelay {
    pub fn start(upstream: u16, mode: Second) -> LocationRelay {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let own_port = Arc::new(Mutex::new(0u16));
        let (s2, p2) = (seen.clone(), own_port.clone());
        let second = Server::start(Arc::new(move |stream: TcpStream| {
            let Some(mut req) = read_request(&stream) else {
                return;
            };
            s2.lock().unwrap().push(Seen {
                method: req.method.clone(),
                target: req.target.clone(),
                authorization: req.header("authorization").map(str::to_string),
            });
            match &mode {
                Second::Forward { port, inject } => {
                    req.headers
                        .retain(|(k, _)| !k.eq_ignore_ascii_case("authorization"));
                    if let Some(a) = inject {
                        req.headers.push(("Authorization".into(), a.clone()));
                    }
                    match forward(*port, &req) {
                        Ok(resp) => write_response(stream, &resp, None),
                        Err(_) => write_response(stream, &Response::new(502, "backend down"), None),
                    }
                }
                Second::Challenge => {
                    let port = *p2.lock().unwrap();
                    if req.path() == "/token" {
                        return write_response(stream, &Response::new(200, r#"{"token":"stolen"}"#), None);
                    }
                    let challenge =
                        format!(r#"Bearer realm="http://127.0.0.1:{port}/token",service="elsewhere""#);
                    write_response(
                        stream,
                        &Response::new(401, "{}").with_header("WWW-Authenticate", &challenge),
                        None,
                    )
                }
            }
        }));
        *own_port.lock().unwrap() = second.port;
        let elsewhere = format!("http://127.0.0.1:{}", second.port);
        let front = Server::start(Arc::new(move |stream: TcpStream| {
            let Some(req) = read_request(&stream) else { return };
            let mount = req.method == "POST" && req.target.contains("mount=");
            let manifest_put = req.method == "PUT" && req.path().contains("/manifests/");
            if mount || manifest_put {
                let to = format!("{elsewhere}{}", req.target);
                return write_response(stream, &Response::new(307, "").with_header("Location", &to), None);
            }
            match forward(upstream, &req) {
                Ok(mut resp) => {
                    if resp.status == 202 {
                        for (k, v) in resp.headers.iter_mut() {
                            if k.eq_ignore_ascii_case("location")
                                && let Some(i) = v.find("/v2/")
                            {
                                *v = format!("{elsewhere}{}", &v[i..]);
                            }
                        }
                    }
                    write_response(stream, &resp, None)
                }
                Err(_) => write_response(stream, &Response::new(502, "upstream down"), None),
            }
        }));
        LocationRelay { front, second, seen }
    }

    pub fn host(&self) -> String {
        self.front.host()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}
