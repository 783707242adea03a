//! One integration-test binary (ripgrep style): each module tests one area by
//! running the real `lambda-img` binary and checking its outputs with real tools.

mod layer_bench;
mod layer_oci;
mod support;
