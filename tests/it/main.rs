//! One integration-test binary (ripgrep style): each module tests one area by
//! running the real `lambda-img` binary and checking its outputs with real tools.

mod aws_signin;
mod build;
mod build_flags;
mod check;
mod cli_registry;
mod cli_settings;
mod codebuild;
mod correctness;
mod deps;
mod examples;
mod getting_started;
mod hardening_cache;
mod hardening_creds;
mod hardening_layout;
mod hardening_reads;
mod init;
mod layer_oci;
mod media;
mod patch;
mod registry;
mod registry_auth;
mod registry_bench;
mod registry_faults;
mod rules;
mod runtime;
mod support;
