//! Built images run for real: podman starts them against a Runtime API served
//! by the test on 127.0.0.1, and the test invokes the function.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::podman::{Container, Podman};
use crate::support::runtime_api::RuntimeApi;
use crate::support::{require_tool, run_ok};

/// The README's example: a std-only custom runtime on scratch, built by
/// rustc as a static binary, answers an invocation through the Runtime API.
#[test]
fn hello_scratch_example_answers_an_invocation() {
    if !require_tool("podman") || !require_tool("rustc") {
        return;
    }
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello-scratch");
    let work = tempfile::tempdir().unwrap();
    // Build in a copy, so the test leaves the checkout as it was.
    for f in ["lambda-img.toml", "bootstrap.rs"] {
        std::fs::copy(example.join(f), work.path().join(f)).unwrap();
    }
    compile_hello_bootstrap(work.path());
    let cache = tempfile::tempdir().unwrap();
    let archive = work.path().join("image.tar");
    run_ok(
        crate::support::lambda_img(cache.path())
            .arg("-C")
            .arg(work.path())
            .args([
                "build",
                "--output",
                &format!("docker-archive:{}:hello-scratch:test", archive.display()),
            ]),
    );

    let podman = Podman::new();
    podman.run_ok(&["load", "-i", archive.to_str().unwrap()]);
    let api = RuntimeApi::start();
    let container = Container::start(&podman, "localhost/hello-scratch:test", &api, &[]);
    let answer = api.invoke(r#"{"name":"world"}"#, Duration::from_secs(60));
    let body = answer.unwrap_or_else(|e| panic!("{e}\n--- container logs\n{}", container.logs()));
    assert_eq!(body, r#"{"greeting":"hello from lambda-img","event_bytes":16}"#);
    // A second invocation on the same container: the runtime loops.
    let again = api.invoke("{}", Duration::from_secs(30)).unwrap();
    assert!(again.contains("\"event_bytes\":2"), "{again}");
}

/// Compiles the hello-scratch example's `bootstrap.rs` in `dir` into
/// `dir/build/bootstrap`, a static binary, as its Makefile does.
pub(crate) fn compile_hello_bootstrap(dir: &Path) {
    std::fs::create_dir(dir.join("build")).unwrap();
    run_ok(Command::new("rustc").current_dir(dir).args([
        "--edition",
        "2021",
        "-O",
        "-C",
        "target-feature=+crt-static",
        "-o",
        "build/bootstrap",
        "bootstrap.rs",
    ]));
}
