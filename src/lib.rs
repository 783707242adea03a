//! lambda-img: build AWS Lambda container images without Docker.
//!
//! The flow: `manifest` (lambda-img.toml → model) → `plan` (ordered layer
//! specs) → `source` (the base image) + `layer` (new layers) → `build`
//! (assembled image) → `rules` (Lambda's limits) → `sink` (outputs).

pub mod atomic_file;
pub mod aws;
pub mod bounded_read;
pub mod build;
pub mod build_all;
pub mod build_report;
pub mod cache;
pub mod cache_registry;
pub mod check;
pub mod cli;
pub mod deploy;
pub mod deps;
pub mod discover;
pub mod elf;
pub mod git_changes;
pub mod gzip;
pub mod image;
pub mod init;
pub mod inspect;
pub mod layer;
pub mod manifest;
pub mod overwrite;
pub mod pin;
pub mod plan;
pub mod plan_fleet;
pub mod read_ahead;
pub mod reference;
pub mod registry;
pub mod repair;
pub mod repin;
pub mod report;
pub mod rootfs;
pub mod rpmdb;
pub mod rules;
pub mod run;
pub mod runtime_api;
pub mod sandbox;
pub mod sbom;
pub mod sink;
pub mod source;
pub mod system;
pub mod tar_walk;
