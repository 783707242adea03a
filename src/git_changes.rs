//! The files that changed in a git work tree since a revision, as `git`
//! itself reports them: `git diff --name-only --no-renames REV` (commits since
//! REV, staged and unstaged edits, deletions; both sides of a rename) plus
//! the untracked files `git ls-files --others --exclude-standard` lists (a
//! new source file is a change before it is committed). Used by
//! `lambda-img plan --changed-since`.

use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("--changed-since needs git on PATH: {0}")]
    Missing(std::io::Error),
    #[error("{dir} is not inside a git work tree (git said: {stderr})")]
    NotARepository { dir: PathBuf, stderr: String },
    #[error(
        "git cannot compare with {rev}: {stderr}; give a commit this checkout has \
         (a shallow CI clone may need `fetch-depth: 0` or `git fetch origin {rev}`)"
    )]
    Revision { rev: String, stderr: String },
    #[error("`{command}` failed: {stderr}")]
    Failed { command: String, stderr: String },
}

/// Absolute paths of every file changed since `rev` in the work tree holding
/// `dir`, sorted, each once. Paths are under the work tree's canonical root.
pub fn changed_since(dir: &Path, rev: &str) -> Result<Vec<PathBuf>, GitError> {
    let top = git(dir, &["rev-parse", "--show-toplevel"]).map_err(|e| match e {
        GitError::Failed { stderr, .. } => GitError::NotARepository {
            dir: dir.to_path_buf(),
            stderr,
        },
        other => other,
    })?;
    let top = PathBuf::from(top.trim_end_matches('\n'));
    let top = top.canonicalize().unwrap_or(top);
    // `--end-of-options` keeps a revision that starts with `-` from being read as a flag.
    let diffed = git(
        &top,
        &[
            "diff",
            "--name-only",
            "--no-renames",
            "-z",
            "--end-of-options",
            rev,
            "--",
        ],
    )
    .map_err(|e| match e {
        GitError::Failed { stderr, .. } => GitError::Revision {
            rev: rev.to_string(),
            stderr,
        },
        other => other,
    })?;
    let untracked = git(&top, &["ls-files", "--others", "--exclude-standard", "-z"])?;
    let mut paths: Vec<PathBuf> = diffed
        .split('\0')
        .chain(untracked.split('\0'))
        .filter(|p| !p.is_empty())
        .map(|p| top.join(p))
        .collect();
    paths.sort();
    paths.dedup();
    Ok(paths)
}

/// Runs `git -C dir ARGS` with paths printed as they are (no octal quoting).
fn git(dir: &Path, args: &[&str]) -> Result<String, GitError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "core.quotePath=false"])
        .args(args)
        .output()
        .map_err(GitError::Missing)?;
    if !out.status.success() {
        return Err(GitError::Failed {
            command: format!("git {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
