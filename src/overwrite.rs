//! Outputs never replace inputs: before a build does any work, every local
//! output path is compared with the manifest and the layer sources, and an
//! existing file is only replaced when it is what the output writes (a
//! docker-archive), or with `--force`.
//!
//! An output that does not exist yet may lie inside a source directory
//! (`--output oci:out` beside lambda-img.toml): the plan leaves it out of
//! every layer, so it never replaces an input.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// `path` made absolute against the current directory, resolving symlinks in
/// the part that exists so it compares equal to canonical source paths.
pub fn absolute(path: PathBuf) -> PathBuf {
    let path = std::path::absolute(&path).unwrap_or(path);
    match (
        path.parent().and_then(|p| p.canonicalize().ok()),
        path.file_name(),
    ) {
        (Some(parent), Some(name)) => parent.join(name),
        _ => path,
    }
}

/// Why an output would replace an input, naming both paths and the way out.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OverwriteError {
    #[error("output {output} would replace the manifest {path}: write the image somewhere else")]
    Manifest { output: String, path: PathBuf },
    #[error(
        "output {output} would replace {path}, a source of layer `{layer}`: write the image somewhere else"
    )]
    Source {
        output: String,
        path: PathBuf,
        layer: String,
    },
    #[error(
        "output {output}: {path} exists and is not a docker-archive ({reason}); \
         write to a new file, or pass --force to replace it"
    )]
    NotAnArchive {
        output: String,
        path: PathBuf,
        reason: String,
    },
    #[error(
        "output {output}: {path} exists and is not an OCI image layout ({reason}); \
         write to a new or empty directory, or to an existing layout"
    )]
    NotALayout {
        output: String,
        path: PathBuf,
        reason: String,
    },
}

/// Why a file the build writes besides the image (`--sbom`, `--metadata-file`)
/// would replace an input.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SideFileError {
    #[error(
        "{path} (--sbom or --metadata-file) would replace the manifest {manifest}: write it somewhere else"
    )]
    Manifest { path: PathBuf, manifest: PathBuf },
    #[error(
        "{path} (--sbom or --metadata-file) would replace {source_path}, a source of layer `{layer}`: write it somewhere else"
    )]
    Source {
        path: PathBuf,
        source_path: PathBuf,
        layer: String,
    },
    #[error(
        "{path} (--sbom or --metadata-file) exists inside {source_path}, a source of layer `{layer}`, and is not an SBOM or build report lambda-img wrote: writing it would replace an input; write it outside the layer sources"
    )]
    InsideSource {
        path: PathBuf,
        source_path: PathBuf,
        layer: String,
    },
}

/// Refuses a side file (`--sbom`, `--metadata-file`) that is the manifest
/// or a directory holding it, is or holds a layer source, or is an existing
/// file inside a source directory other than a document of ours (the
/// previous build's SBOM or report, which the build replaces and keeps out
/// of the layers). A new file inside a source is fine: the plan leaves it
/// out of every layer, as it does a local image output.
pub fn refuse_side_overwrites(
    files: &[PathBuf],
    manifest: &Path,
    sources: &[(&str, &Path)],
) -> Result<(), SideFileError> {
    let manifest = canonical(manifest);
    for file in files {
        let path = canonical(file);
        if path == manifest || manifest.starts_with(&path) {
            return Err(SideFileError::Manifest {
                path,
                manifest: manifest.clone(),
            });
        }
        for (layer, source) in sources {
            let source = canonical(source);
            let layer = layer.to_string();
            if source.starts_with(&path) {
                return Err(SideFileError::Source {
                    path,
                    source_path: source,
                    layer,
                });
            }
            if path.starts_with(&source) && path.exists() && !is_our_document(&path) {
                return Err(SideFileError::InsideSource {
                    path,
                    source_path: source,
                    layer,
                });
            }
        }
    }
    Ok(())
}

/// Whether `path` is a JSON document lambda-img writes beside an image: an
/// SPDX or CycloneDX SBOM, a build report, or `--recursive`'s list of them.
fn is_our_document(path: &Path) -> bool {
    // Our documents are small; anything larger (or unreadable) is not one.
    let mut bytes = Vec::new();
    let read = File::open(path).and_then(|f| f.take(32 << 20).read_to_end(&mut bytes));
    if read.is_err() {
        return false;
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return false;
    };
    let ours = |v: &serde_json::Value| {
        ["spdxVersion", "bomFormat"].iter().any(|k| v.get(k).is_some())
            || (v.get("outputs").is_some() && v.get("platform").is_some())
            || v.get("manifest").is_some() && (v.get("report").is_some() || v.get("error").is_some())
    };
    match &value {
        serde_json::Value::Array(items) => items.iter().all(ours),
        other => ours(other),
    }
}

/// A local output: the text the user wrote, the absolute path it writes and
/// what it writes there.
pub struct LocalOutput<'a> {
    pub output: &'a str,
    pub path: &'a Path,
    pub kind: LocalKind,
}

/// What a local output writes (it may replace only one of its own kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalKind {
    /// An OCI layout directory.
    Layout,
    /// A docker-archive tar file.
    Archive,
}

/// Refuses any output that would replace the manifest, a layer source (or a
/// directory holding one), or an existing file or directory of another kind.
/// `sources` are (layer name, absolute source path); paths are compared
/// after resolving symlinks where they exist.
pub fn refuse_overwrites(
    outputs: &[LocalOutput],
    manifest: &Path,
    sources: &[(&str, &Path)],
    force: bool,
) -> Result<(), OverwriteError> {
    let manifest = canonical(manifest);
    for out in outputs {
        let path = canonical(out.path);
        if path == manifest || manifest.starts_with(&path) {
            return Err(OverwriteError::Manifest {
                output: out.output.to_string(),
                path: manifest,
            });
        }
        for (layer, source) in sources {
            let source = canonical(source);
            if source.starts_with(&path) {
                return Err(OverwriteError::Source {
                    output: out.output.to_string(),
                    path: source,
                    layer: layer.to_string(),
                });
            }
        }
        if out.kind == LocalKind::Archive {
            if let Some(reason) = not_an_archive(&path)
                && (!force || path.is_dir())
            {
                return Err(OverwriteError::NotAnArchive {
                    output: out.output.to_string(),
                    path,
                    reason,
                });
            }
        } else if let Some(reason) = not_a_layout(&path) {
            return Err(OverwriteError::NotALayout {
                output: out.output.to_string(),
                path,
                reason,
            });
        }
    }
    Ok(())
}

/// `path` with symlinks resolved in the part that exists.
fn canonical(path: &Path) -> PathBuf {
    if let Ok(p) = path.canonicalize() {
        return p;
    }
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => canonical(parent).join(name),
        _ => path.to_path_buf(),
    }
}

/// Why an existing `path` is not a docker-archive (`None`: absent, or one).
fn not_an_archive(path: &Path) -> Option<String> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if meta.is_dir() {
        return Some("it is a directory".into());
    }
    if !meta.is_file() {
        return Some("it is not a regular file".into());
    }
    let Ok(file) = File::open(path) else {
        return Some("it cannot be read".into());
    };
    let mut archive = tar::Archive::new(file);
    let Ok(entries) = archive.entries_with_seek() else {
        return Some("it is not a tar file".into());
    };
    for entry in entries {
        let Ok(entry) = entry else {
            return Some("it is not a tar file".into());
        };
        let name = entry.path_bytes();
        if name.as_ref() == b"manifest.json" || name.as_ref() == b"./manifest.json" {
            return None;
        }
    }
    Some("it is a tar file without manifest.json".into())
}

/// Why an existing `path` cannot take an OCI layout (`None`: absent, empty or one).
fn not_a_layout(path: &Path) -> Option<String> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.is_dir() {
        return Some("it is a file".into());
    }
    let empty = std::fs::read_dir(path).ok()?.next().is_none();
    if empty || path.join("oci-layout").is_file() {
        return None;
    }
    Some("it is not empty and has no oci-layout file".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out<'a>(output: &'a str, path: &'a Path) -> LocalOutput<'a> {
        // The fixtures are written out; which kind each is, is said here.
        let kind = match output.split_once(':') {
            Some(("docker-archive", _)) => LocalKind::Archive,
            _ => LocalKind::Layout,
        };
        LocalOutput { output, path, kind }
    }

    #[test]
    fn the_manifest_a_source_and_strange_files_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().canonicalize().unwrap();
        let manifest = root.join("lambda-img.toml");
        std::fs::write(&manifest, "x").unwrap();
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::write(root.join("notes.txt"), "keep me").unwrap();
        let sources = [("code", root.join("src"))];
        let sources: Vec<(&str, &Path)> = sources.iter().map(|(n, p)| (*n, p.as_path())).collect();
        let check = |o: &str, p: &Path, force| refuse_overwrites(&[out(o, p)], &manifest, &sources, force);

        let err = check("docker-archive:lambda-img.toml", &manifest, true).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "output docker-archive:lambda-img.toml would replace the manifest {}: write the image somewhere else",
                manifest.display()
            )
        );
        assert!(matches!(
            check("oci:.", &root, false),
            Err(OverwriteError::Manifest { .. })
        ));
        assert!(matches!(
            check("oci:src", &root.join("src"), false),
            Err(OverwriteError::Source { .. })
        ));
        let notes = root.join("notes.txt");
        let err = check("docker-archive:notes.txt", &notes, false).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "output docker-archive:notes.txt: {} exists and is not a docker-archive (it is not a tar file); \
                 write to a new file, or pass --force to replace it",
                notes.display()
            )
        );
        assert_eq!(check("docker-archive:notes.txt", &notes, true), Ok(()));
        assert!(matches!(
            check("oci:notes.txt", &notes, true),
            Err(OverwriteError::NotALayout { .. })
        ));
        // New paths, even inside a source directory, are fine.
        assert_eq!(check("oci:src/out", &root.join("src/out"), false), Ok(()));
        assert_eq!(
            check("docker-archive:new.tar", &root.join("new.tar"), false),
            Ok(())
        );
    }

    #[test]
    fn an_existing_docker_archive_may_be_replaced() {
        let d = tempfile::tempdir().unwrap();
        let tar_path = d.path().join("img.tar");
        let mut builder = tar::Builder::new(File::create(&tar_path).unwrap());
        let mut header = tar::Header::new_gnu();
        header.set_size(2);
        header.set_mode(0o644);
        builder
            .append_data(&mut header, "manifest.json", &b"[]"[..])
            .unwrap();
        builder.finish().unwrap();
        drop(builder);
        let manifest = d.path().join("lambda-img.toml");
        assert_eq!(
            refuse_overwrites(&[out("docker-archive:img.tar", &tar_path)], &manifest, &[], false),
            Ok(())
        );
    }
}
