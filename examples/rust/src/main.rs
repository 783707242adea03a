//! A Lambda function on the `lambda_runtime` crate, built as a static
//! `bootstrap` for an empty (scratch) image: it answers `{"name": ...}` with a
//! greeting and echoes the request id the Runtime API gave it.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

async fn handle(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let name = event.payload.get("name").and_then(Value::as_str).unwrap_or("world");
    Ok(json!({
        "greeting": format!("hello, {name}"),
        "request_id": event.context.request_id,
    }))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handle)).await
}
