//! The SBOM after a build: attached to every registry and OCI-layout output
//! as an OCI 1.1 referrer (unless `--no-sbom`) and written to `--sbom FILE`.
//! A docker-archive cannot carry a referrer; it gets the file only.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::build::{BuildOutcome, Ready};
use crate::build_all::FUNCTION_PLACEHOLDER;
use crate::image::Digest;
use crate::report::Reporter;
use crate::sbom::{SbomFormat, Subject};
use crate::sink::SinkOptions;
use crate::sink::referrer::{Artifact, ReferrerReport, attach_to_outputs};

/// What the command line asked for.
#[derive(Debug, Clone)]
pub struct SbomSettings {
    /// `--sbom PATH` (with `{function}` under `--recursive`).
    pub file: Option<PathBuf>,
    pub format: SbomFormat,
    /// Attach to the outputs (not `--no-sbom`).
    pub attach: bool,
}

/// The build report's `sbom` member.
#[derive(Debug, Serialize)]
struct SbomReport {
    format: &'static str,
    /// The document's sha256 (the referrer's layer).
    digest: Digest,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<PathBuf>,
    referrers: Vec<ReferrerReport>,
}

#[derive(Debug, thiserror::Error)]
pub enum SbomPathError {
    #[error(
        "--sbom {} would be written by every function: put {FUNCTION_PLACEHOLDER} in it (e.g. --sbom sbom/{FUNCTION_PLACEHOLDER}.spdx.json)",
        .0.display()
    )]
    Shared(PathBuf),
}

impl SbomSettings {
    /// `--sbom` for the function `name` (`{function}` replaced).
    pub fn file_for(&self, name: &str) -> Option<PathBuf> {
        let file = self.file.as_ref()?;
        Some(PathBuf::from(
            file.to_string_lossy().replace(FUNCTION_PLACEHOLDER, name),
        ))
    }

    /// Under `--recursive` with more than one function, one path for all
    /// would be overwritten by each: refused before anything is built.
    pub fn check_recursive(&self, functions: usize) -> Result<(), SbomPathError> {
        match &self.file {
            Some(f) if functions > 1 && !f.to_string_lossy().contains(FUNCTION_PLACEHOLDER) => {
                Err(SbomPathError::Shared(f.clone()))
            }
            _ => Ok(()),
        }
    }
}

/// The document of a build, made before its outputs are written.
#[derive(Debug)]
pub struct Document {
    bytes: Vec<u8>,
    file: Option<PathBuf>,
    attach: bool,
}

/// Makes the SBOM of `ready` when one is wanted (a file, or an output that
/// can carry a referrer). Made before any output is written: an image whose
/// SBOM cannot be made (a damaged package database) fails the build with
/// nothing written, not with its outputs in place and no SBOM beside them.
pub fn before_outputs(
    settings: &SbomSettings,
    ready: &Ready,
    manifest: &Path,
    epoch: u64,
    reporter: &dyn Reporter,
) -> anyhow::Result<Option<Document>> {
    let (outcome, outputs) = (&ready.outcome, ready.output_count());
    let file = settings.file_for(&outcome.function);
    let attach = settings.attach && outputs > 0;
    if file.is_none() && !attach {
        return Ok(None);
    }
    let subject = Subject::of(&outcome.function, &outcome.image, &outcome.base, epoch);
    // npm installs from the lockfile beside the manifest (see deps::node).
    let project = manifest.parent().unwrap_or(Path::new(""));
    let lock = std::fs::read(project.join("package-lock.json")).ok();
    let known = crate::sbom::Known {
        npm_lock: lock.as_deref(),
        wheels: &outcome.archives,
    };
    // The build's cache registry, when it had one, shares the document too.
    let cache = ready.cache();
    let bytes =
        crate::sbom::document_remembered(settings.format, &subject, &outcome.image, known, cache, reporter)?;
    Ok(Some(Document { bytes, file, attach }))
}

/// Writes `document` to `--sbom` and attaches it to the outputs `outcome`
/// wrote; returns the report's `sbom` member.
pub fn after_build(
    settings: &SbomSettings,
    document: Option<Document>,
    outcome: &BuildOutcome,
    sink_options: &SinkOptions,
    reporter: &dyn Reporter,
) -> anyhow::Result<Option<serde_json::Value>> {
    let Some(Document { bytes, file, attach }) = document else {
        return Ok(None);
    };
    if let Some(path) = &file {
        crate::sbom::write_bytes(path, &bytes)?;
    }
    let referrers = match attach {
        true => {
            let artifact = Artifact {
                artifact_type: settings.format.media_type(),
                bytes: &bytes,
            };
            attach_to_outputs(&outcome.outputs, &outcome.image, artifact, sink_options, reporter)?
        }
        false => Vec::new(),
    };
    let report = SbomReport {
        format: settings.format.name(),
        digest: Digest::of(&bytes),
        file: file.as_deref().map(Path::to_path_buf),
        referrers,
    };
    Ok(Some(serde_json::to_value(report)?))
}
