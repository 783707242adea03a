//! One integration-test binary (ripgrep style): each module tests one area by
//! running the real `lambda-img` binary and checking its outputs with real tools.

mod build;
mod check;
mod cli_registry;
mod cli_settings;
mod codebuild;
mod deps;
mod examples;
mod init;
mod layer_oci;
mod media;
mod registry;
mod registry_auth;
mod registry_bench;
mod registry_faults;
mod rules;
mod run;
mod run_env;
mod run_serve;
mod runtime;
mod support;
