//! Just enough HTTP/1.1 for the Runtime API and the invoke endpoint:
//! persistent connections, Content-Length or chunked bodies (with trailers),
//! and a body limit that stops reading at the limit.

use std::io::{self, BufRead, Read, Write};

pub struct Head {
    pub method: String,
    /// The path without its query string.
    pub path: String,
    /// Names lower-cased.
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn chunked(&self) -> bool {
        self.header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    }
}

/// A request body, or how it went wrong.
pub enum Body {
    Complete {
        bytes: Vec<u8>,
        trailers: Vec<(String, String)>,
    },
    /// Longer than the limit; the rest was not read (close the connection).
    TooLarge,
}

const MAX_HEAD: usize = 64 * 1024;

fn read_line(reader: &mut impl BufRead, line: &mut String) -> io::Result<usize> {
    line.clear();
    let n = reader.by_ref().take(MAX_HEAD as u64).read_line(line)?;
    if n == MAX_HEAD && !line.ends_with('\n') {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "header line too long"));
    }
    Ok(n)
}

/// Reads a request line and headers; `None` at a clean end of the connection.
pub fn read_head(reader: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut line = String::new();
    if read_line(reader, &mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "bad request line"));
    };
    let path = target.split('?').next().unwrap_or(target).to_string();
    let method = method.to_string();
    let mut headers = Vec::new();
    loop {
        if read_line(reader, &mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let t = line.trim_end();
        if t.is_empty() {
            break;
        }
        if let Some((k, v)) = t.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    Ok(Some(Head {
        method,
        path,
        headers,
    }))
}

/// Reads the body `head` announces, at most `limit` bytes of it. `on_chunk`
/// sees each piece as it arrives (a streamed response is passed on live).
pub fn read_body(
    reader: &mut impl BufRead,
    head: &Head,
    limit: usize,
    on_chunk: &mut dyn FnMut(&[u8]),
) -> io::Result<Body> {
    let mut bytes = Vec::new();
    let mut trailers = Vec::new();
    if head.chunked() {
        let mut line = String::new();
        loop {
            read_line(reader, &mut line)?;
            let size_text = line.trim().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
            if size == 0 {
                loop {
                    if read_line(reader, &mut line)? == 0 || line.trim_end().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = line.trim_end().split_once(':') {
                        trailers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                    }
                }
                break;
            }
            if bytes.len() + size > limit {
                return Ok(Body::TooLarge);
            }
            let start = bytes.len();
            bytes.resize(start + size, 0);
            reader.read_exact(&mut bytes[start..])?;
            on_chunk(&bytes[start..]);
            let mut crlf = [0u8; 2];
            reader.read_exact(&mut crlf)?;
        }
    } else if let Some(len) = head.header("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad Content-Length"))?;
        if len > limit {
            return Ok(Body::TooLarge);
        }
        bytes.resize(len, 0);
        reader.read_exact(&mut bytes)?;
        on_chunk(&bytes);
    }
    Ok(Body::Complete { bytes, trailers })
}

/// Writes a whole response.
pub fn write_response(
    w: &mut impl Write,
    status: u16,
    headers: &[(&str, String)],
    body: &[u8],
    close: bool,
) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Length: {}\r\n",
        reason(status),
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    w.write_all(&out)?;
    w.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Request Entity Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        _ => "Status",
    }
}
