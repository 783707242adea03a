//! Python dependencies: `pip install --platform ... --only-binary=:all:
//! --target STAGING -r requirements.txt` for the function's platform, then
//! the staging tree made deterministic.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use super::DepsError;
use super::installer::{
    self, IncludedFile, Installer, PackageInstaller, RunEnv, clean_command, find_on_path,
};
use super::probe_cache;
use crate::cache::Cache;
use crate::image::Architecture;
use crate::report::Reporter;
use crate::sbom::KnownArchive;

/// A requirements file installed with pip for a Python minor version and architecture.
pub struct Pip<'a> {
    pub requirements: &'a Path,
    pub minor: u8,
    pub arch: Architecture,
    /// Where the installed tree goes in the image.
    pub destination: &'a str,
}

impl PackageInstaller for Pip<'_> {
    fn name(&self) -> &'static str {
        "pip"
    }

    fn probe(&self, cache: &Cache) -> Option<Installer> {
        let on_path = find_on_path("python3").or_else(|| find_on_path("pip3"));
        probe_cache::probe_cached(cache, "pip", on_path, probe)
    }

    fn looked_for(&self) -> &'static str {
        "python3 -m pip, pip3"
    }

    fn hint(&self) -> &'static str {
        "install pip (e.g. apt-get install python3-pip) or put the Python that has it on PATH"
    }

    fn included_files(&self) -> Result<Vec<IncludedFile>, DepsError> {
        included_files(self.requirements)
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
            self.requirements,
            self.minor,
            self.arch,
            staging,
            env,
            reporter,
        )?;
        normalise(staging)?;
        Ok((staging.to_path_buf(), self.destination.to_string()))
    }

    fn archives(&self, staging: &Path) -> Result<Vec<KnownArchive>, DepsError> {
        let path = report_path(staging);
        match fs::read(&path) {
            Ok(bytes) => report_archives(&bytes).map_err(|message| DepsError::Report { path, message }),
            // An older pip writes no report: the hashes are not known.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(source) => Err(DepsError::Read { path, source }),
        }
    }

    fn owners(&self, tree: &Path) -> Result<BTreeMap<String, String>, DepsError> {
        owners(tree)
    }
}

/// pip's platform tag for a Lambda architecture.
pub fn platform_tag(arch: Architecture) -> &'static str {
    match arch {
        Architecture::X86_64 => "manylinux2014_x86_64",
        Architecture::Arm64 => "manylinux2014_aarch64",
    }
}

/// Finds pip: `python3 -m pip` (the interpreter resolved to its real path, so
/// the clean environment needs no shims), else `pip3`. Returns the installer
/// and a file inside pip's package that changes when pip is upgraded.
pub fn probe() -> Option<(Installer, PathBuf)> {
    if let Some(python) = find_on_path("python3") {
        let out = Command::new(&python)
            .args([
                "-c",
                "import sys, pip; print(sys.executable); print(pip.__version__); print(pip.__file__)",
            ])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        if let (true, Some(exe), Some(version), Some(file)) =
            (out.status.success(), lines.next(), lines.next(), lines.next())
        {
            let installer = Installer {
                name: "pip",
                program: exe.into(),
                prefix: vec!["-m".into(), "pip".into()],
                version: version.trim().to_string(),
            };
            return Some((installer, PathBuf::from(file.trim())));
        }
    }
    let pip3 = find_on_path("pip3")?;
    let out = Command::new(&pip3).arg("--version").output().ok()?;
    // "pip 23.2.1 from /.../pip (python 3.11)"
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.split_whitespace().nth(1)?.to_string();
    let witness = text
        .split(" from ")
        .nth(1)
        .and_then(|r| r.split(" (python").next())
        .map(|d| Path::new(d.trim()).join("__init__.py"))
        .unwrap_or_else(|| pip3.clone());
    out.status.success().then(|| {
        let installer = Installer {
            name: "pip",
            program: pip3,
            prefix: Vec::new(),
            version,
        };
        (installer, witness)
    })
}

/// Installs `requirements` into `staging` for CPython 3.`minor` on `arch`.
pub fn install(
    pip: &Installer,
    requirements: &Path,
    minor: u8,
    arch: Architecture,
    staging: &Path,
    env: &RunEnv,
    reporter: &dyn Reporter,
) -> Result<(), DepsError> {
    let platform = platform_tag(arch);
    let mut cmd = clean_command(pip, env.home);
    cmd.env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .env("PIP_NO_INPUT", "1")
        .env("PIP_ROOT_USER_ACTION", "ignore")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .args([
            "install",
            "--no-compile",
            "--no-warn-script-location",
            "--platform",
            platform,
        ])
        .args([
            "--implementation",
            "cp",
            "--python-version",
            &format!("3.{minor}"),
        ])
        .args(["--only-binary=:all:", "--target"])
        .arg(staging)
        .arg("-r")
        .arg(requirements);
    // The report names the archive of every distribution installed (the
    // SBOM's wheel hashes); it is written beside the staging tree, not in it,
    // so the layer's bytes do not change.
    if writes_report(&pip.version) {
        cmd.arg("--report").arg(report_path(staging));
    }
    // pip resolves relative paths in the requirements file against its working directory.
    if let Some(dir) = requirements.parent() {
        cmd.current_dir(dir);
    }
    let command = installer::describe(&cmd);
    let out = installer::run(cmd, reporter, env.timeout, requirements)?;
    if out.success {
        return Ok(());
    }
    if installer::looks_like_network_failure(&out.text) {
        return Err(out.failure("pip", command, requirements));
    }
    if let Some(requirement) = out
        .text
        .lines()
        .find_map(|l| l.split("No matching distribution found for ").nth(1))
    {
        // `docopt==0.6.2` → `docopt`
        let requirement = requirement.trim();
        let end = requirement
            .find(|c: char| "=<>!~;[ (@".contains(c))
            .unwrap_or(requirement.len());
        return Err(DepsError::NoWheel {
            package: requirement[..end].to_string(),
            requirement: requirement.to_string(),
            platform: format!("{platform}, CPython 3.{minor}"),
            file: requirements.to_path_buf(),
            output: out.tail(30),
        });
    }
    Err(out.failure("pip", command, requirements))
}

/// Where `install` has pip write its installation report: beside `staging`.
fn report_path(staging: &Path) -> PathBuf {
    staging.with_file_name("pip-report.json")
}

/// `pip install --report` came with pip 22.2.
fn writes_report(version: &str) -> bool {
    let mut parts = version.trim().split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    (major, minor) >= (22, 2)
}

/// The archives of pip's installation report (format version 1): for each
/// installed distribution, its name and version and the sha256 of the
/// archive it came from (`download_info.archive_info.hashes`). Entries
/// without a sha256 (a directory, a VCS checkout) are left out.
fn report_archives(bytes: &[u8]) -> Result<Vec<KnownArchive>, String> {
    let report: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let install = report["install"].as_array().ok_or("it has no `install` list")?;
    let mut out: Vec<KnownArchive> = install
        .iter()
        .filter_map(|item| {
            let info = &item["download_info"];
            let archive = &info["archive_info"];
            // `hashes` (pip 23+) or the older single `hash: "sha256=HEX"`.
            let sha256 = archive["hashes"]["sha256"]
                .as_str()
                .map(str::to_string)
                .or_else(|| {
                    archive["hash"]
                        .as_str()
                        .and_then(|h| h.strip_prefix("sha256="))
                        .map(str::to_string)
                })?;
            let is_hex = sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit());
            Some(KnownArchive {
                name: item["metadata"]["name"].as_str()?.to_string(),
                version: item["metadata"]["version"].as_str()?.to_string(),
                sha256: is_hex.then(|| sha256.to_ascii_lowercase())?,
                url: info["url"].as_str().map(without_credentials),
            })
        })
        .collect();
    out.sort();
    Ok(out)
}

/// `url` without a user or password (a private index's `https://user:token@host/`)
/// and without its query: the URL goes into the cache record and the SBOM.
fn without_credentials(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or(url);
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let host = match rest[..authority_end].rfind('@') {
        Some(at) => at + 1,
        None => 0,
    };
    format!("{scheme}://{}", &rest[host..])
}

/// Files a requirements file includes with `-r`/`--requirement` and
/// `-c`/`--constraint`, recursively, each with its contents (paths relative
/// to the including file, as pip reads them). They change what is installed,
/// so they are part of the cache key.
pub fn included_files(requirements: &Path) -> Result<Vec<IncludedFile>, DepsError> {
    let mut out = Vec::new();
    let mut todo = vec![requirements.to_path_buf()];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(file) = todo.pop() {
        if !seen.insert(file.clone()) {
            continue;
        }
        let text = fs::read_to_string(&file).map_err(|source| DepsError::Read {
            path: file.clone(),
            source,
        })?;
        for line in text.lines() {
            let line = line.trim();
            let rest = ["-r", "--requirement", "-c", "--constraint"]
                .iter()
                .find_map(|flag| line.strip_prefix(flag))
                .filter(|r| {
                    r.starts_with([' ', '=', '\t']) || line.starts_with("-r") || line.starts_with("-c")
                });
            let Some(rest) = rest else { continue };
            let name = rest.trim_start_matches(['=', ' ', '\t']).trim();
            if name.is_empty() || name.contains("://") {
                continue;
            }
            let path = file.parent().unwrap_or(Path::new(".")).join(name);
            let bytes = fs::read(&path).map_err(|source| DepsError::Read {
                path: path.clone(),
                source,
            })?;
            out.push(IncludedFile {
                name: name.to_string(),
                path: path.clone(),
                bytes,
            });
            todo.push(path);
        }
    }
    Ok(out)
}

/// Makes a pip `--target` tree deterministic and fit for the image:
/// - `__pycache__`/`*.pyc` are dropped (compiled for the host's Python);
/// - `direct_url.json` is dropped (it records the host path of a local install);
/// - console scripts in `bin/` get `#!/usr/bin/env python3` instead of the
///   host interpreter's path, and their RECORD rows get the new hash and size.
///
/// RECORD rows of dropped files are removed; the rest of RECORD (sorted by pip,
/// hashes of wheel contents) and INSTALLER (`pip`) are deterministic already.
pub fn normalise(staging: &Path) -> Result<(), DepsError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DepsError::Read { path, source }
    };
    let mut dropped = Vec::new();
    let mut rewritten: BTreeMap<String, (String, u64)> = BTreeMap::new();
    let mut walk = walkdir::WalkDir::new(staging).min_depth(1).into_iter();
    while let Some(item) = walk.next() {
        let item = item.map_err(|e| DepsError::Read {
            path: staging.to_path_buf(),
            source: e.into(),
        })?;
        let rel = item.path().strip_prefix(staging).unwrap_or(item.path());
        let rel_s = rel.to_string_lossy().into_owned();
        let name = item.file_name().to_string_lossy();
        if item.file_type().is_dir() && name == "__pycache__" {
            walk.skip_current_dir();
            fs::remove_dir_all(item.path()).map_err(io(item.path()))?;
            dropped.push(format!("{rel_s}/"));
        } else if item.file_type().is_file() && (name.ends_with(".pyc") || name == "direct_url.json") {
            fs::remove_file(item.path()).map_err(io(item.path()))?;
            dropped.push(rel_s);
        } else if item.file_type().is_file() && rel.starts_with("bin") {
            let bytes = fs::read(item.path()).map_err(io(item.path()))?;
            if let Some(new) = fix_shebang(&bytes) {
                fs::write(item.path(), &new).map_err(io(item.path()))?;
                let hash = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(&new));
                rewritten.insert(rel_s, (format!("sha256={hash}"), new.len() as u64));
            }
        }
    }
    for entry in fs::read_dir(staging).map_err(io(staging))? {
        let entry = entry.map_err(io(staging))?;
        let record = entry.path().join("RECORD");
        if entry.file_name().to_string_lossy().ends_with(".dist-info") && record.is_file() {
            let text = fs::read_to_string(&record).map_err(io(&record))?;
            let fixed = fix_record(&text, &dropped, &rewritten);
            if fixed != text {
                fs::write(&record, fixed).map_err(io(&record))?;
            }
        }
    }
    Ok(())
}

/// `#!/host/path/python3.11` → `#!/usr/bin/env python3`; `None` when not a Python shebang.
fn fix_shebang(bytes: &[u8]) -> Option<Vec<u8>> {
    let end = bytes.iter().position(|&b| b == b'\n')?;
    let first = std::str::from_utf8(&bytes[..end]).ok()?;
    let interp = first.strip_prefix("#!")?.split_whitespace().next()?;
    let base = interp.rsplit('/').next()?;
    if !base.starts_with("python") || first == "#!/usr/bin/env python3" {
        return None;
    }
    let mut out = b"#!/usr/bin/env python3".to_vec();
    out.extend_from_slice(&bytes[end..]);
    Some(out)
}

/// RECORD rows are `path,hash,size`; paths are relative to the target dir
/// (`../../bin/x` style paths do not occur with `--target`).
fn fix_record(text: &str, dropped: &[String], rewritten: &BTreeMap<String, (String, u64)>) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let path = line.split(',').next().unwrap_or("");
        let is_dropped = dropped
            .iter()
            .any(|d| path == d || (d.ends_with('/') && path.starts_with(d.as_str())))
            || path.contains("__pycache__/")
            || path.ends_with(".pyc");
        if is_dropped {
            continue;
        }
        match rewritten.get(path) {
            Some((hash, size)) => out.push_str(&format!("{path},{hash},{size}")),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// Top-level entries of a pip target tree and the distribution that owns
/// each (from the RECORD files), so `split` keeps a package's files together.
pub fn owners(staging: &Path) -> Result<BTreeMap<String, String>, DepsError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DepsError::Read { path, source }
    };
    let mut owner_of = BTreeMap::new();
    let mut names = Vec::new();
    for entry in fs::read_dir(staging).map_err(io(staging))? {
        names.push(
            entry
                .map_err(io(staging))?
                .file_name()
                .to_string_lossy()
                .into_owned(),
        );
    }
    names.sort();
    for name in &names {
        let Some(stem) = name.strip_suffix(".dist-info") else {
            continue;
        };
        // `MarkupSafe-3.0.2` → `markupsafe`
        let dist = stem
            .split('-')
            .next()
            .unwrap_or(stem)
            .to_lowercase()
            .replace(['-', '.'], "_");
        let record = staging.join(name).join("RECORD");
        if let Ok(text) = fs::read_to_string(&record) {
            for line in text.lines() {
                let top = line
                    .split(',')
                    .next()
                    .unwrap_or("")
                    .split('/')
                    .next()
                    .unwrap_or("");
                if !top.is_empty() && top != "bin" && !top.starts_with("..") {
                    owner_of.entry(top.to_string()).or_insert_with(|| dist.clone());
                }
            }
        }
        owner_of.insert(name.clone(), dist);
    }
    Ok(names
        .into_iter()
        .map(|n| {
            let owner = owner_of.get(&n).cloned().unwrap_or_else(|| n.clone());
            (n, owner)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_names_each_archive_by_its_sha256() {
        let report = br#"{"version": "1", "pip_version": "23.2.1", "install": [
            {"download_info": {"url": "https://files.example/ujson-5.10.0-cp312-cp312-manylinux_2_17_x86_64.whl",
              "archive_info": {"hash": "sha256=AB", "hashes": {"sha256": "ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB"}}},
             "metadata": {"name": "ujson", "version": "5.10.0"}},
            {"download_info": {"url": "file:///src/pkg", "dir_info": {}}, "metadata": {"name": "pkg", "version": "1"}},
            {"download_info": {"url": "https://x/old-1.0.tar.gz", "archive_info": {"hash": "sha256=cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"}},
             "metadata": {"name": "old", "version": "1.0"}}
        ]}"#;
        let archives = report_archives(report).unwrap();
        assert_eq!(archives.len(), 2, "{archives:?}");
        assert_eq!(archives[0].name, "old");
        assert_eq!(archives[0].sha256, "cd".repeat(32));
        assert_eq!(archives[1].sha256, "ab".repeat(32));
        assert!(archives[1].url.as_deref().unwrap().ends_with(".whl"));
        assert!(report_archives(b"[]").is_err());
        assert_eq!(
            without_credentials("https://me:s3cret@pypi.example/a/b-1.whl?token=x#sha256=1"),
            "https://pypi.example/a/b-1.whl"
        );
        assert!(writes_report("23.2.1") && writes_report("22.2") && !writes_report("22.1.2"));
    }

    #[test]
    fn included_requirement_files_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path();
        fs::create_dir_all(t.join("reqs")).unwrap();
        fs::write(
            t.join("requirements.txt"),
            "six\n-r reqs/base.txt\n--constraint=c.txt\n",
        )
        .unwrap();
        fs::write(t.join("reqs/base.txt"), "idna\n-r more.txt\n").unwrap();
        fs::write(t.join("reqs/more.txt"), "certifi\n").unwrap();
        fs::write(t.join("c.txt"), "idna==3.10\n").unwrap();
        let mut names: Vec<String> = included_files(&t.join("requirements.txt"))
            .unwrap()
            .into_iter()
            .map(|f| f.name)
            .collect();
        names.sort();
        assert_eq!(names, ["c.txt", "more.txt", "reqs/base.txt"]);
        fs::write(t.join("requirements.txt"), "-r missing.txt\n").unwrap();
        let err = included_files(&t.join("requirements.txt"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.txt"), "{err}");
    }

    #[test]
    fn shebangs_and_records_are_normalised() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path();
        fs::create_dir_all(t.join("pkg/__pycache__")).unwrap();
        fs::create_dir_all(t.join("pkg-1.0.dist-info")).unwrap();
        fs::create_dir_all(t.join("bin")).unwrap();
        fs::write(t.join("pkg/__init__.py"), "x = 1\n").unwrap();
        fs::write(t.join("pkg/__pycache__/__init__.cpython-311.pyc"), "junk").unwrap();
        fs::write(
            t.join("pkg-1.0.dist-info/direct_url.json"),
            "{\"url\": \"file:///home/me\"}",
        )
        .unwrap();
        fs::write(
            t.join("bin/tool"),
            "#!/root/.pyenv/versions/3.11.7/bin/python3.11\nimport pkg\n",
        )
        .unwrap();
        fs::write(
            t.join("pkg-1.0.dist-info/RECORD"),
            "../../bin/x,,\nbin/tool,sha256=old,10\npkg/__init__.py,sha256=abc,6\npkg/__pycache__/__init__.cpython-311.pyc,,\npkg-1.0.dist-info/direct_url.json,sha256=d,5\npkg-1.0.dist-info/RECORD,,\n",
        )
        .unwrap();
        normalise(t).unwrap();
        assert!(!t.join("pkg/__pycache__").exists());
        assert!(!t.join("pkg-1.0.dist-info/direct_url.json").exists());
        let tool = fs::read_to_string(t.join("bin/tool")).unwrap();
        assert_eq!(tool, "#!/usr/bin/env python3\nimport pkg\n");
        let record = fs::read_to_string(t.join("pkg-1.0.dist-info/RECORD")).unwrap();
        let hash = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(tool.as_bytes()));
        assert_eq!(
            record,
            format!(
                "../../bin/x,,\nbin/tool,sha256={hash},{}\npkg/__init__.py,sha256=abc,6\npkg-1.0.dist-info/RECORD,,\n",
                tool.len()
            )
        );
        let owners = owners(t).unwrap();
        assert_eq!(owners["pkg"], "pkg");
        assert_eq!(owners["pkg-1.0.dist-info"], "pkg");
        assert_eq!(owners["bin"], "bin");
    }
}
