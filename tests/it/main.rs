//! One integration-test binary (ripgrep style): each module tests one area by
//! running the real `lambda-img` binary and checking its outputs with real tools.

mod aws_deploy;
mod aws_signin;
mod base_repair;
mod build;
mod build_flags;
mod check;
mod cli_registry;
mod cli_settings;
mod codebuild;
mod completions;
mod correctness;
mod deps;
mod examples;
mod getting_started;
mod hardening_cache;
mod hardening_creds;
mod hardening_layout;
mod hardening_reads;
mod hardening_rules;
mod init;
mod layer_oci;
mod media;
mod messages;
mod patch;
mod patch_buildspec;
mod patch_deploy;
mod registry;
mod registry_auth;
mod registry_bench;
mod registry_faults;
mod rule_tuning;
mod rules;
mod run;
mod runtime;
mod support;
