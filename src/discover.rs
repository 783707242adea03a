//! Finding every function of a monorepo: each `lambda-img.toml` under some
//! directories. Shared by the commands that act on many functions at once
//! (`pin --recursive`, `build --recursive`).
//!
//! Directories that hold no functions of the user's own are not entered:
//! `.git`, `node_modules`, `target`, `.lambda-img`, and caches, which can be
//! large: a directory tagged `CACHEDIR.TAG`, or a lambda-img cache (it holds
//! the blob bucket, `CacheBucket::Blobs`; examples/monorepo keeps one beside
//! its functions).
//! Symbolic links are not followed, so a link loop cannot hang the walk.

use std::path::{Path, PathBuf};

use crate::cache::{CACHEDIR_TAG, CacheBucket};

/// The file name of a function manifest.
pub const MANIFEST_NAME: &str = "lambda-img.toml";

/// Directory names never entered.
pub const SKIPPED_DIRS: [&str; 4] = [".git", "node_modules", "target", ".lambda-img"];

#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("{path} is not a directory to search for lambda-img.toml files")]
    NotADirectory { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Walk { path: PathBuf, source: std::io::Error },
    #[error("no lambda-img.toml under {}", list(.roots))]
    NoneFound { roots: Vec<PathBuf> },
}

fn list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every `lambda-img.toml` under `roots` (`.` when empty), sorted by path and
/// each listed once even when the roots overlap. Paths keep the form the
/// roots were given in (relative stays relative). Finding none is an error:
/// a typo in a directory name must not look like "nothing to do".
pub fn find_manifests(roots: &[PathBuf]) -> Result<Vec<PathBuf>, DiscoverError> {
    let roots: Vec<PathBuf> = if roots.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        roots.to_vec()
    };
    let mut found: Vec<(PathBuf, PathBuf)> = Vec::new();
    for root in &roots {
        if !root.is_dir() {
            return Err(DiscoverError::NotADirectory { path: root.clone() });
        }
        let walker = walkdir::WalkDir::new(root)
            .follow_links(false)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| !(e.file_type().is_dir() && e.depth() > 0 && skipped(e.path())));
        for entry in walker {
            let entry = entry.map_err(|e| DiscoverError::Walk {
                path: e.path().unwrap_or(root).to_path_buf(),
                source: e
                    .into_io_error()
                    .unwrap_or_else(|| std::io::Error::other("file system loop")),
            })?;
            if entry.file_type().is_file() && entry.file_name() == MANIFEST_NAME {
                let path = entry.into_path();
                let key = path.canonicalize().unwrap_or_else(|_| path.clone());
                found.push((key, clean(&path)));
            }
        }
    }
    found.sort();
    found.dedup_by(|a, b| a.0 == b.0);
    if found.is_empty() {
        return Err(DiscoverError::NoneFound { roots });
    }
    let mut out: Vec<PathBuf> = found.into_iter().map(|(_, p)| p).collect();
    out.sort();
    Ok(out)
}

/// `[function] name` of the manifest text, read leniently: reports and
/// output names need it even when the rest of the manifest is broken.
pub fn function_name(text: &str) -> Option<String> {
    let doc: toml_edit::DocumentMut = text.parse().ok()?;
    doc.get("function")?.get("name")?.as_str().map(str::to_string)
}

/// True for a directory the walk does not enter.
fn skipped(dir: &Path) -> bool {
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
    SKIPPED_DIRS.contains(&name)
        || dir.join(CACHEDIR_TAG).is_file()
        || dir.join(CacheBucket::Blobs.dir_name()).is_dir()
}

/// `./a/b` → `a/b`, so the paths in reports read as the user would write them.
fn clean(path: &Path) -> PathBuf {
    path.strip_prefix(".")
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(root: &Path, rel: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, "").unwrap();
    }

    #[test]
    fn finds_manifests_and_skips_what_is_not_the_users() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        for rel in [
            "lambda-img.toml",
            "functions/a/lambda-img.toml",
            "functions/b/deep/er/lambda-img.toml",
            "functions/a/node_modules/pkg/lambda-img.toml",
            ".git/x/lambda-img.toml",
            "target/debug/lambda-img.toml",
            "functions/a/.lambda-img/lambda-img.toml",
            "cache/lambda-img.toml",
            "cache/CACHEDIR.TAG",
            ".lambda-img-cache/blobs-v1/sha256/x",
            ".lambda-img-cache/tmp/lambda-img.toml",
            "functions/c/lambda-img.toml.bak",
        ] {
            touch(root, rel);
        }
        std::os::unix::fs::symlink(root, root.join("functions/loop")).unwrap();
        let found = find_manifests(&[root.to_path_buf()]).unwrap();
        let rel: Vec<String> = found
            .iter()
            .map(|p| p.strip_prefix(root).unwrap().display().to_string())
            .collect();
        assert_eq!(
            rel,
            [
                "functions/a/lambda-img.toml",
                "functions/b/deep/er/lambda-img.toml",
                "lambda-img.toml"
            ]
        );
        // Overlapping roots list each manifest once.
        let twice = find_manifests(&[root.to_path_buf(), root.join("functions")]).unwrap();
        assert_eq!(twice.len(), 3);
    }

    #[test]
    fn a_root_without_manifests_or_that_is_not_a_directory_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let err = find_manifests(&[tmp.path().to_path_buf()]).unwrap_err();
        assert!(matches!(err, DiscoverError::NoneFound { .. }), "{err}");
        let missing = tmp.path().join("nope");
        let err = find_manifests(std::slice::from_ref(&missing)).unwrap_err();
        assert!(err.to_string().contains(&missing.display().to_string()), "{err}");
    }
}
