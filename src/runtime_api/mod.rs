//! The Lambda Runtime API (2018-06-01), served by lambda-img on loopback for
//! a function in a sandbox, and the invoke endpoint `--serve` offers to
//! callers. Owns the invocation lifecycle (init, next, response, error,
//! deadlines, payload limits); knows nothing of images or processes: the
//! environment tells it when its process ended.

mod http;
pub mod ids;
pub mod invoke;
mod server;

pub use server::{Failure, Invocation, Outcome, RuntimeApi};

/// Lambda's limit on synchronous request and response payloads (6 MB as
/// Lambda counts it, quoted in its errors).
pub const MAX_PAYLOAD: usize = 6_291_556;
/// Lambda's limit on a streamed response.
pub const MAX_STREAMED: usize = 20 * 1024 * 1024;

/// A JSON error body as Lambda returns it to the caller.
pub fn error_body(error_type: &str, message: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "errorMessage": message, "errorType": error_type }))
        .expect("plain JSON")
}
