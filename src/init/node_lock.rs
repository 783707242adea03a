//! The Node starter's package-lock.json: `lambda-img build` installs Node
//! dependencies with `npm ci`, which needs a lock. The template ships one for
//! its (empty) dependency set, byte for byte what npm writes; when npm is on
//! PATH, `init` lets npm write it instead, so the file is npm's own for the
//! npm the user has.

use std::path::Path;
use std::process::{Command, Stdio};

/// Who wrote the project's package-lock.json.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockWriter {
    /// `npm install --package-lock-only` (no network: nothing to resolve).
    Npm,
    /// The template's lockfile stayed, with the reason npm did not write it.
    Template { reason: String },
}

/// Runs `npm install --package-lock-only` in `dir` (which holds the written
/// package.json and the template's package-lock.json). On any failure the
/// template's lockfile `template_lock` is put back, so the project always
/// ends with a valid lock.
pub fn write_lockfile(dir: &Path, npm: &Path, template_lock: &str) -> LockWriter {
    let out = Command::new(npm)
        .args([
            "install",
            "--package-lock-only",
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ])
        .current_dir(dir)
        // No version check against the registry: with no dependencies to
        // resolve, this runs without the network.
        .env("NPM_CONFIG_UPDATE_NOTIFIER", "false")
        .stdin(Stdio::null())
        .output();
    let reason = match out {
        Ok(o) if o.status.success() && valid_lock(&dir.join("package-lock.json")) => return LockWriter::Npm,
        Ok(o) => format!(
            "npm install --package-lock-only failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => format!("cannot run {}: {e}", npm.display()),
    };
    match std::fs::write(dir.join("package-lock.json"), template_lock) {
        Ok(()) => LockWriter::Template { reason },
        Err(e) => LockWriter::Template {
            reason: format!("{reason}; and rewriting the template's lockfile failed: {e}"),
        },
    }
}

/// npm on PATH, if any.
pub fn find_npm() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("npm"))
        .find(|p| p.is_file())
}

fn valid_lock(path: &Path) -> bool {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|v| v.get("lockfileVersion").is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_npm_leaves_the_templates_lock() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("package-lock.json"), "broken").unwrap();
        let writer = write_lockfile(
            dir.path(),
            Path::new("/nonexistent/npm"),
            "{\"lockfileVersion\": 3}\n",
        );
        assert!(matches!(writer, LockWriter::Template { ref reason } if reason.contains("/nonexistent/npm")));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("package-lock.json")).unwrap(),
            "{\"lockfileVersion\": 3}\n"
        );
    }
}
