//! What can go wrong while making dependency layers; every message names the
//! file, package or program at fault and says what to do.

use std::io;
use std::path::PathBuf;

use crate::layer::LayerError;

#[derive(Debug, thiserror::Error)]
pub enum DepsError {
    #[error("cannot read dependency file {path}: {source}")]
    Read { path: PathBuf, source: io::Error },

    #[error("pip's installation report {path} is not what pip 22.2+ writes ({message})")]
    Report { path: PathBuf, message: String },

    #[error("{installer} is needed to install {file} but was not found on PATH (tried {tried}): {hint}")]
    InstallerMissing {
        installer: &'static str,
        file: PathBuf,
        tried: String,
        hint: &'static str,
    },

    #[error("{installer} {version} is too old: {need}")]
    InstallerTooOld {
        installer: &'static str,
        version: String,
        need: &'static str,
    },

    #[error(
        "no wheel of `{package}` (`{requirement}`) for {platform}: lambda-img installs binary wheels only (no builds on this machine for another platform); pin a version of `{package}` that publishes a wheel for {platform}, or drop it from {file}\n--- pip output (last lines)\n{output}"
    )]
    NoWheel {
        package: String,
        requirement: String,
        platform: String,
        file: PathBuf,
        output: String,
    },

    #[error(
        "{installer} could not reach its package index while installing {file}: check the network, a proxy (HTTPS_PROXY) or the index setting, then build again\n--- {installer} output (last lines)\n{output}"
    )]
    Network {
        installer: &'static str,
        file: PathBuf,
        output: String,
    },

    #[error("`{command}` failed ({status}) while installing {file}\n--- output (last lines)\n{output}")]
    InstallFailed {
        command: String,
        status: String,
        file: PathBuf,
        output: String,
    },

    #[error(
        "`{command}` did not finish within {seconds} s while installing {file} and was stopped: check the network or the index, or allow more time with --install-timeout SECONDS (LAMBDA_IMG_INSTALL_TIMEOUT)\n--- output (last lines)\n{output}"
    )]
    TimedOut {
        command: String,
        seconds: u64,
        file: PathBuf,
        output: String,
    },

    #[error("cannot run {program}: {source}")]
    Spawn { program: PathBuf, source: io::Error },

    #[error(
        "{path} is built for {found}, but the function's architecture is {arch} (expected {expected}): build the bootstrap for {expected} or change function.architecture"
    )]
    WrongMachine {
        path: PathBuf,
        found: String,
        expected: String,
        arch: String,
    },

    #[error("{path} is not a Linux executable (ELF): {why}; a bootstrap must be a program built for Linux")]
    NotElf { path: PathBuf, why: String },

    #[error("cannot use the cache directory {path}: {source}")]
    Cache { path: PathBuf, source: io::Error },

    #[error(transparent)]
    Layer(#[from] LayerError),
}
