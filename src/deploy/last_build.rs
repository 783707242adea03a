//! The image the last `build` of a project pushed, so `deploy` without IMAGE
//! deploys it: `.lambda-img/last-build.json` in the project directory, the
//! same report `build --json` prints (and `--metadata-file` writes), written
//! atomically. Reports hold digests and references only, never a secret.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::reference::OutputRef;

/// Where a project's record lives.
pub fn path(project_dir: &Path) -> PathBuf {
    project_dir.join(".lambda-img").join("last-build.json")
}

#[derive(Debug, thiserror::Error)]
pub enum LastBuildError {
    #[error(
        "no IMAGE given and {} does not exist: pass IMAGE (REPO@sha256:...), or run `lambda-img build --output registry:REF` (or `build --deploy`) in this project first",
        path.display()
    )]
    Missing { path: PathBuf },
    #[error("cannot use {}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
}

/// Writes `report` (the `build --json` report's bytes) as the project's record.
pub fn record(project_dir: &Path, report_json: &str) -> Result<PathBuf, LastBuildError> {
    let path = path(project_dir);
    let dir = path.parent().expect("has a parent").to_path_buf();
    let io = |source| LastBuildError::Write {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(io)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".last-build.")
        .tempfile_in(&dir)
        .map_err(io)?;
    tmp.write_all(report_json.as_bytes()).map_err(io)?;
    tmp.write_all(b"\n").map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(&path).map_err(|e| io(e.error))?;
    Ok(path)
}

/// The parts of the build report deploy reads.
#[derive(Debug, Deserialize)]
struct Report {
    digest: String,
    #[serde(default)]
    outputs: Vec<Output>,
}

#[derive(Debug, Deserialize)]
struct Output {
    output: String,
    #[serde(default)]
    reference: Option<String>,
}

/// The `REPO@sha256:...` the last build pushed (the first registry output).
pub fn pushed_image(project_dir: &Path) -> Result<String, LastBuildError> {
    let path = path(project_dir);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(LastBuildError::Missing { path }),
        Err(e) => {
            return Err(LastBuildError::Invalid {
                path,
                message: e.to_string(),
            });
        }
    };
    let report: Report = serde_json::from_slice(&bytes).map_err(|e| LastBuildError::Invalid {
        path: path.clone(),
        message: format!("not a build report ({e}); delete it and build again"),
    })?;
    report
        .outputs
        .iter()
        .filter(|o| OutputRef::parse(&o.output).is_ok_and(|o| o.is_registry()))
        .find_map(|o| o.reference.clone())
        .ok_or_else(|| LastBuildError::Invalid {
            path,
            message: format!(
                "the last build ({}) pushed to no registry: build with --output registry:REF",
                report.digest
            ),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_then_read_the_pushed_reference() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            pushed_image(dir.path()),
            Err(LastBuildError::Missing { .. })
        ));
        let report = r#"{"digest":"sha256:ab","outputs":[{"output":"oci:x"},{"output":"registry:h/r:1","reference":"h/r@sha256:ab"}]}"#;
        record(dir.path(), report).unwrap();
        assert_eq!(pushed_image(dir.path()).unwrap(), "h/r@sha256:ab");
        record(
            dir.path(),
            r#"{"digest":"sha256:cd","outputs":[{"output":"oci:x"}]}"#,
        )
        .unwrap();
        let err = pushed_image(dir.path()).unwrap_err().to_string();
        assert!(err.contains("pushed to no registry"), "{err}");
    }
}
