//! Node.js dependencies: `npm ci --omit=dev --os=linux --cpu=x64|arm64
//! --ignore-scripts` in a staging copy of package.json + package-lock.json.
//!
//! `--ignore-scripts`: install scripts (node-gyp builds, postinstall
//! downloads) would run on the build machine for the build machine's
//! platform, and their output is neither reproducible nor fit for the
//! function's architecture. Packages with native code ship prebuilt
//! platform packages (`@scope/pkg-linux-arm64`), which `--os/--cpu` select.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::DepsError;
use super::installer::{self, Installer, PackageInstaller, RunEnv, clean_command, find_on_path};
use crate::cache::Cache;
use crate::image::Architecture;
use crate::report::Reporter;

/// A package.json and its lock installed with `npm ci` for an architecture.
pub struct Npm<'a> {
    pub package_json: &'a Path,
    pub package_lock: &'a Path,
    pub arch: Architecture,
    /// Where the dependencies go in the image (`node_modules` is put below it).
    pub destination: &'a str,
}

impl PackageInstaller for Npm<'_> {
    fn name(&self) -> &'static str {
        "npm"
    }

    fn probe(&self, _cache: &Cache) -> Option<Installer> {
        probe()
    }

    fn looked_for(&self) -> &'static str {
        "npm"
    }

    fn hint(&self) -> &'static str {
        "install Node.js with npm 10.2 or newer, or put it on PATH"
    }

    fn install(
        &self,
        installer: &Installer,
        staging: &Path,
        env: &RunEnv,
        reporter: &dyn Reporter,
    ) -> Result<(PathBuf, String), DepsError> {
        install(
            installer,
            self.package_json,
            self.package_lock,
            self.arch,
            staging,
            env,
            reporter,
        )?;
        let nm = staging.join("node_modules");
        if nm.is_dir() {
            normalise(&nm)?;
        }
        Ok((
            nm,
            format!("{}/node_modules", self.destination.trim_end_matches('/')),
        ))
    }

    fn owners(&self, tree: &Path) -> Result<BTreeMap<String, String>, DepsError> {
        owners(tree)
    }
}

/// npm's `--cpu` for a Lambda architecture.
pub fn cpu(arch: Architecture) -> &'static str {
    match arch {
        Architecture::X86_64 => "x64",
        Architecture::Arm64 => "arm64",
    }
}

/// Finds `npm` on PATH. Its version comes from npm's own package.json
/// (found from the real path of the `npm` script) without starting Node;
/// `npm --version` when that layout is not recognised.
pub fn probe() -> Option<Installer> {
    let npm = find_on_path("npm")?;
    let from_package = std::fs::canonicalize(&npm).ok().and_then(|real| {
        real.ancestors().skip(1).take(3).find_map(|dir| {
            let text = fs::read_to_string(dir.join("package.json")).ok()?;
            let v: serde_json::Value = serde_json::from_str(&text).ok()?;
            (v["name"] == "npm").then(|| v["version"].as_str().map(String::from))?
        })
    });
    let version = match from_package {
        Some(v) => v,
        None => {
            let out = Command::new(&npm).arg("--version").output().ok()?;
            if !out.status.success() {
                return None;
            }
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        }
    };
    (!version.is_empty()).then(|| Installer {
        name: "npm",
        program: npm,
        prefix: Vec::new(),
        version,
    })
}

/// `--os`/`--cpu` arrived in npm 10.2.
fn check_version(npm: &Installer) -> Result<(), DepsError> {
    let mut parts = npm.version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if (major, minor) < (10, 2) {
        return Err(DepsError::InstallerTooOld {
            installer: "npm",
            version: npm.version.clone(),
            need: "installing for another platform needs npm 10.2 or newer (--os/--cpu): upgrade npm (npm install -g npm@10)",
        });
    }
    Ok(())
}

/// Installs the lock's production dependencies into `work/node_modules`.
pub fn install(
    npm: &Installer,
    package_json: &Path,
    package_lock: &Path,
    arch: Architecture,
    work: &Path,
    env: &RunEnv,
    reporter: &dyn Reporter,
) -> Result<(), DepsError> {
    check_version(npm)?;
    for (from, name) in [
        (package_json, "package.json"),
        (package_lock, "package-lock.json"),
    ] {
        fs::copy(from, work.join(name)).map_err(|source| DepsError::Read {
            path: from.to_path_buf(),
            source,
        })?;
    }
    let mut cmd = clean_command(npm, env.home);
    cmd.env("npm_config_cache", env.home.join("npm-cache"))
        .env("npm_config_update_notifier", "false")
        .env("npm_config_fund", "false")
        .env("npm_config_audit", "false")
        .args(["ci", "--omit=dev", "--os=linux", &format!("--cpu={}", cpu(arch))])
        .args(["--ignore-scripts", "--no-audit", "--no-fund"])
        .current_dir(work);
    let command = installer::describe(&cmd);
    let out = installer::run(cmd, reporter, env.timeout, package_lock)?;
    if out.success {
        return Ok(());
    }
    Err(out.failure("npm", command, package_lock))
}

/// Drops what npm writes that is not part of the packages: its hidden
/// lockfile (`node_modules/.package-lock.json`, a cache of the install) and
/// `.cache` directories.
pub fn normalise(node_modules: &Path) -> Result<(), DepsError> {
    let hidden = node_modules.join(".package-lock.json");
    if hidden.exists() {
        fs::remove_file(&hidden).map_err(|source| DepsError::Read { path: hidden, source })?;
    }
    let cache = node_modules.join(".cache");
    if cache.exists() {
        fs::remove_dir_all(&cache).map_err(|source| DepsError::Read { path: cache, source })?;
    }
    Ok(())
}

/// Top-level units of `node_modules` (`@scope/name` counts as one) and their owner (themselves).
pub fn owners(node_modules: &Path) -> Result<BTreeMap<String, String>, DepsError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DepsError::Read { path, source }
    };
    let mut out = BTreeMap::new();
    for entry in fs::read_dir(node_modules).map_err(io(node_modules))? {
        let entry = entry.map_err(io(node_modules))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('@') && entry.path().is_dir() {
            for sub in fs::read_dir(entry.path()).map_err(io(&entry.path()))? {
                let sub = sub.map_err(io(&entry.path()))?;
                let unit = format!("{name}/{}", sub.file_name().to_string_lossy());
                out.insert(unit.clone(), unit);
            }
        } else {
            out.insert(name.clone(), name);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoped_packages_are_one_unit_and_npm_metadata_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let nm = dir.path();
        for d in ["@aws/a", "@aws/b", "ms", ".bin", ".cache/x"] {
            fs::create_dir_all(nm.join(d)).unwrap();
        }
        fs::write(nm.join(".package-lock.json"), "{}").unwrap();
        normalise(nm).unwrap();
        assert!(!nm.join(".package-lock.json").exists() && !nm.join(".cache").exists());
        let units: Vec<String> = owners(nm).unwrap().into_keys().collect();
        assert_eq!(units, [".bin", "@aws/a", "@aws/b", "ms"]);
    }

    #[test]
    fn npm_before_10_2_is_refused() {
        let npm = |v: &str| Installer {
            name: "npm",
            program: "npm".into(),
            prefix: Vec::new(),
            version: v.into(),
        };
        assert!(
            check_version(&npm("9.2.0"))
                .unwrap_err()
                .to_string()
                .contains("10.2")
        );
        check_version(&npm("10.2.0")).unwrap();
        check_version(&npm("11.19.1")).unwrap();
    }
}
