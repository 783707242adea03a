//! The invoke endpoint, as Lambda's API and AWS's emulator serve it:
//! `POST /2015-03-31/functions/{name}/invocations`. `X-Amz-Invocation-Type:
//! Event` is accepted with 202 and runs later; `DryRun` answers 204.

use std::io::{BufReader, BufWriter};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

use base64::Engine;

use super::MAX_PAYLOAD;
use super::http::{Body, read_body, read_head, write_response};

/// One request to the endpoint.
#[derive(Debug, Clone)]
pub struct InvokeRequest {
    pub function: String,
    pub payload: Vec<u8>,
    /// `Event`: answer at once, run later.
    pub asynchronous: bool,
    /// `X-Amz-Client-Context` decoded from base64 (JSON).
    pub client_context: Option<String>,
}

/// What the endpoint answers.
#[derive(Debug, Clone)]
pub enum InvokeReply {
    Done {
        request_id: String,
        body: Vec<u8>,
        /// `Unhandled` when the function failed (`X-Amz-Function-Error`).
        function_error: Option<String>,
    },
    Accepted,
}

/// Runs invocations for the endpoint.
pub trait Invoker: Send + Sync {
    fn invoke(&self, request: InvokeRequest) -> InvokeReply;
}

/// Serves the endpoint on `listener` until the process ends.
pub fn serve(listener: TcpListener, invoker: Arc<dyn Invoker>) {
    for stream in listener.incoming().flatten() {
        let invoker = invoker.clone();
        std::thread::spawn(move || connection(stream, invoker.as_ref()));
    }
}

fn json_error(kind: &str, message: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "Type": "User", "message": message, "__type": kind }))
        .expect("plain JSON")
}

fn connection(stream: TcpStream, invoker: &dyn Invoker) {
    let Ok(w) = stream.try_clone() else { return };
    let mut writer = BufWriter::new(w);
    let mut reader = BufReader::new(stream);
    while let Ok(Some(head)) = read_head(&mut reader) {
        let json = ("Content-Type", "application/json".to_string());
        let function = head
            .path
            .strip_prefix("/2015-03-31/functions/")
            .and_then(|rest| rest.strip_suffix("/invocations"))
            .map(String::from);
        let Some(function) = function.filter(|_| head.method == "POST") else {
            let _ = read_body(&mut reader, &head, MAX_PAYLOAD, &mut |_| {});
            let body = json_error(
                "ResourceNotFoundException",
                "use POST /2015-03-31/functions/function/invocations",
            );
            if write_response(&mut writer, 404, &[json], &body, false).is_err() {
                return;
            }
            continue;
        };
        let payload = match read_body(&mut reader, &head, MAX_PAYLOAD, &mut |_| {}) {
            Ok(Body::Complete { bytes, .. }) => bytes,
            Ok(Body::TooLarge) => {
                let body = json_error(
                    "RequestTooLargeException",
                    &format!(
                        "Request must be smaller than {MAX_PAYLOAD} bytes for the InvokeFunction operation"
                    ),
                );
                let _ = write_response(&mut writer, 413, &[json], &body, true);
                return;
            }
            Err(_) => return,
        };
        let kind = head.header("x-amz-invocation-type").unwrap_or("RequestResponse");
        if kind == "DryRun" {
            if write_response(&mut writer, 204, &[], b"", false).is_err() {
                return;
            }
            continue;
        }
        let client_context = head
            .header("x-amz-client-context")
            .and_then(|c| base64::engine::general_purpose::STANDARD.decode(c).ok())
            .map(|c| String::from_utf8_lossy(&c).into_owned());
        let request = InvokeRequest {
            function,
            payload,
            asynchronous: kind == "Event",
            client_context,
        };
        let written = match invoker.invoke(request) {
            InvokeReply::Accepted => write_response(&mut writer, 202, &[], b"", false),
            InvokeReply::Done {
                request_id,
                body,
                function_error,
            } => {
                let mut headers = vec![
                    json,
                    ("X-Amzn-RequestId", request_id),
                    ("X-Amz-Executed-Version", "$LATEST".to_string()),
                ];
                if let Some(e) = function_error {
                    headers.push(("X-Amz-Function-Error", e));
                }
                write_response(&mut writer, 200, &headers, &body, false)
            }
        };
        if written.is_err() {
            return;
        }
    }
}
