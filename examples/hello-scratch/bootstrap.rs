//! A Lambda custom runtime in plain std Rust: it polls the Runtime API
//! (version 2018-06-01) and answers each event with a greeting. Built as a
//! static binary, it runs on a scratch image with nothing else in it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

fn main() {
    let api = std::env::var("AWS_LAMBDA_RUNTIME_API").expect("AWS_LAMBDA_RUNTIME_API is not set");
    let greeting = std::env::var("GREETING").unwrap_or_else(|_| "hello".to_string());
    loop {
        let (headers, event) = request(&api, "GET", "/2018-06-01/runtime/invocation/next", b"");
        let id = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("lambda-runtime-aws-request-id"))
            .map(|(_, v)| v.clone())
            .expect("the Runtime API sent no request id");
        let event = String::from_utf8_lossy(&event);
        let body = format!("{{\"greeting\":\"{greeting}\",\"event_bytes\":{}}}", event.len());
        request(&api, "POST", &format!("/2018-06-01/runtime/invocation/{id}/response"), body.as_bytes());
    }
}

/// One HTTP/1.1 request with `Connection: close`; returns headers and body.
fn request(api: &str, method: &str, path: &str, body: &[u8]) -> (Vec<(String, String)>, Vec<u8>) {
    let mut stream = TcpStream::connect(api).expect("cannot reach the Runtime API");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {api}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(body)).expect("write to the Runtime API");
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).expect("read status line");
    let mut headers = Vec::new();
    let mut length = None;
    loop {
        line.clear();
        reader.read_line(&mut line).expect("read header");
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((k, v)) = trimmed.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse::<usize>().ok();
            }
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let mut data = Vec::new();
    match length {
        Some(n) => {
            data.resize(n, 0);
            reader.read_exact(&mut data).expect("read body");
        }
        None => {
            reader.read_to_end(&mut data).expect("read body");
        }
    }
    (headers, data)
}
