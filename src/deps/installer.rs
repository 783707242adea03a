//! The installers of installed dependency sets (pip, npm): the
//! [`PackageInstaller`] trait each implements, and running one with a clean,
//! explicit environment, capturing its output for errors and `--verbose`.

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use super::DepsError;
use crate::cache::Cache;
use crate::report::Reporter;

/// What differs between the installers of a dependency set; `deps::installed`
/// does the rest (cache key and record, staging, layers, split) alike for all.
pub trait PackageInstaller {
    /// `pip`, `npm`: part of the set's cache key and of messages.
    fn name(&self) -> &'static str;

    /// The installer on PATH (and its version), or `None`.
    fn probe(&self, cache: &Cache) -> Option<Installer>;

    /// What [`probe`](Self::probe) looks for, for the error when it finds none.
    fn looked_for(&self) -> &'static str;

    /// How to get the installer, for the same error.
    fn hint(&self) -> &'static str;

    /// The error when [`probe`](Self::probe) found no installer for `file`.
    fn missing(&self, file: &Path) -> DepsError {
        DepsError::InstallerMissing {
            installer: self.name(),
            file: file.to_path_buf(),
            tried: self.looked_for().into(),
            hint: self.hint(),
        }
    }

    /// Files the dependency files pull in (pip's `-r`/`-c`); they are part of
    /// the cache key.
    fn included_files(&self) -> Result<Vec<IncludedFile>, DepsError> {
        Ok(Vec::new())
    }

    /// Installs the set into `staging` and makes it deterministic; returns
    /// the tree to put in the layers and where it goes in the image.
    fn install(
        &self,
        installer: &Installer,
        staging: &Path,
        env: &RunEnv,
        reporter: &dyn Reporter,
    ) -> Result<(PathBuf, String), DepsError>;

    /// The archives [`install`](Self::install) installed from, with their
    /// hashes, when the installer reported them (pip's `--report`).
    fn archives(&self, _staging: &Path) -> Result<Vec<crate::sbom::KnownArchive>, DepsError> {
        Ok(Vec::new())
    }

    /// The package owning each file of the installed `tree` (what `split`
    /// groups by).
    fn owners(&self, tree: &Path) -> Result<BTreeMap<String, String>, DepsError>;
}

/// A file a dependency file includes (a requirements file's `-r`/`-c`).
#[derive(Debug)]
pub struct IncludedFile {
    /// As the including file names it (relative to that file): the cache key's form.
    pub name: String,
    /// Where it is on disk.
    pub path: PathBuf,
    pub bytes: Vec<u8>,
}

/// A located installer: the program, the arguments that come before the
/// installer's own (`-m pip`), and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installer {
    pub name: &'static str,
    pub program: PathBuf,
    pub prefix: Vec<String>,
    pub version: String,
}

impl Installer {
    /// `pip 23.2.1` — recorded with the layers it made.
    pub fn id(&self) -> String {
        format!("{} {}", self.name, self.version)
    }
}

/// Variables that pass through to the installer: where the package index is,
/// how to reach it (proxies, certificates), and which Python pyenv picks.
/// Everything else (PIP_TARGET, PIP_USER, npm_config_global, PYTHONPATH, ...)
/// is dropped, so a user's shell settings cannot change what gets installed.
const PASS_THROUGH: &[&str] = &[
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_TRUSTED_HOST",
    "PIP_CERT",
    "PIP_CLIENT_CERT",
    "PIP_DEFAULT_TIMEOUT",
    "PIP_FIND_LINKS",
    "PIP_NO_INDEX",
    "NPM_CONFIG_REGISTRY",
    "npm_config_registry",
    "NPM_CONFIG_CAFILE",
    "npm_config_cafile",
    "PYENV_ROOT",
    "PYENV_VERSION",
];

/// The first executable `name` on the user's PATH.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Where and for how long an installer runs: a private HOME (no user
/// config, no user caches) and the time after which it is stopped.
pub struct RunEnv<'a> {
    pub home: &'a Path,
    pub timeout: Duration,
}

/// A command for `installer` with a cleared environment: PATH, a private HOME
/// (no user config, no user caches), a fixed locale, and [`PASS_THROUGH`].
pub fn clean_command(installer: &Installer, home: &Path) -> Command {
    let mut cmd = Command::new(&installer.program);
    cmd.args(&installer.prefix);
    cmd.env_clear();
    let path: OsString = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    cmd.env("PATH", path)
        .env("HOME", home)
        .env("TMPDIR", home)
        .env("LANG", "C.UTF-8")
        .env("LC_ALL", "C.UTF-8")
        .env("PYENV_ROOT", pyenv_root());
    for var in PASS_THROUGH {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
    cmd.stdin(std::process::Stdio::null());
    cmd
}

/// pyenv's shims find their root through HOME, which the clean environment replaces.
fn pyenv_root() -> OsString {
    std::env::var_os("PYENV_ROOT").unwrap_or_else(|| {
        let home = std::env::var_os("HOME").unwrap_or_default();
        Path::new(&home).join(".pyenv").into_os_string()
    })
}

/// What an installer run printed.
pub struct RunOutput {
    pub success: bool,
    pub status: String,
    /// stdout then stderr.
    pub text: String,
}

impl RunOutput {
    /// The last `n` lines, for error messages.
    pub fn tail(&self, n: usize) -> String {
        let lines: Vec<&str> = self.text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

/// Runs `cmd` (installing `file`), handing each output line to
/// `reporter.detail` (shown with --verbose). A run still going after
/// `timeout` is stopped, with everything it started, and is an error: a hung
/// index or a prompt must not hold a CI job until its own limit.
pub fn run(
    mut cmd: Command,
    reporter: &dyn Reporter,
    timeout: Duration,
    file: &Path,
) -> Result<RunOutput, DepsError> {
    use std::os::unix::process::CommandExt;
    let program = PathBuf::from(cmd.get_program());
    let command = describe(&cmd);
    // Its own process group, so a timeout also stops what it started (pip's
    // build backends, npm's child processes).
    cmd.process_group(0).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|source| DepsError::Spawn { program, source })?;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            let _ = tx.send(bytes);
        });
        rx
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|source| DepsError::Spawn {
            program: PathBuf::from(&command),
            source,
        })? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            stop_group(child.id());
            // Should the group kill fail, the installer itself still stops.
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // After a stop, a process that left the group could keep a pipe open:
    // take what arrived and do not wait for the rest.
    let collect = |rx: mpsc::Receiver<Vec<u8>>| match status {
        Some(_) => rx.recv().unwrap_or_default(),
        None => rx.recv_timeout(Duration::from_secs(2)).unwrap_or_default(),
    };
    let mut text = String::from_utf8_lossy(&collect(stdout)).into_owned();
    text.push_str(&String::from_utf8_lossy(&collect(stderr)));
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        reporter.detail(&format!("  | {line}"));
    }
    let out = RunOutput {
        success: status.is_some_and(|s| s.success()),
        status: status.map_or_else(|| "stopped".to_string(), |s| s.to_string()),
        text,
    };
    match status {
        Some(_) => Ok(out),
        None => Err(DepsError::TimedOut {
            command,
            seconds: timeout.as_secs(),
            file: file.to_path_buf(),
            output: out.tail(30),
        }),
    }
}

/// Kills process group `pgid` (the installer and everything it started).
fn stop_group(pgid: u32) {
    // SAFETY: kill only reads its integer arguments. The group is the child's
    // own (process_group(0)), and the child has not been reaped yet, so the
    // id cannot have been reused.
    unsafe {
        libc::kill(-(pgid as libc::pid_t), libc::SIGKILL);
    }
}

impl RunOutput {
    /// The error for a failed run: a network failure when the output reads
    /// like one, otherwise the command, its status and the output's tail.
    pub fn failure(&self, installer: &'static str, command: String, file: &Path) -> DepsError {
        let output = self.tail(30);
        if looks_like_network_failure(&self.text) {
            return DepsError::Network {
                installer,
                file: file.to_path_buf(),
                output,
            };
        }
        DepsError::InstallFailed {
            command,
            status: self.status.clone(),
            file: file.to_path_buf(),
            output,
        }
    }
}

/// A printable form of `cmd` for error messages.
pub fn describe(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

/// Whether installer output reads like a failure to reach the index.
pub fn looks_like_network_failure(text: &str) -> bool {
    const SIGNS: &[&str] = &[
        "NewConnectionError",
        "Failed to establish a new connection",
        "Temporary failure in name resolution",
        "Name or service not known",
        "Max retries exceeded",
        "ProxyError",
        "Connection refused",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "Network is unreachable",
        "SSLError",
        "ENOTFOUND",
        "ECONNREFUSED",
        "ECONNRESET",
        "ETIMEDOUT",
        "EAI_AGAIN",
        "ENETUNREACH",
        "SELF_SIGNED_CERT",
        "UNABLE_TO_GET_ISSUER_CERT",
    ];
    SIGNS.iter().any(|s| text.contains(s))
}

#[cfg(test)]
mod tests {
    use super::PackageInstaller;
    use crate::deps::node::Npm;
    use crate::deps::python::Pip;
    use crate::image::Architecture;
    use std::path::Path;

    #[test]
    fn each_installer_names_itself_and_says_how_to_get_it_when_missing() {
        let pip = Pip {
            requirements: Path::new("requirements.txt"),
            minor: 12,
            arch: Architecture::X86_64,
            destination: "/var/task",
        };
        let npm = Npm {
            package_json: Path::new("package.json"),
            package_lock: Path::new("package-lock.json"),
            arch: Architecture::Arm64,
            destination: "/var/task",
        };
        assert_eq!((pip.name(), npm.name()), ("pip", "npm"));
        assert_eq!(
            pip.missing(Path::new("requirements.txt")).to_string(),
            "pip is needed to install requirements.txt but was not found on PATH (tried python3 -m pip, pip3): \
             install pip (e.g. apt-get install python3-pip) or put the Python that has it on PATH"
        );
        assert_eq!(
            npm.missing(Path::new("package.json")).to_string(),
            "npm is needed to install package.json but was not found on PATH (tried npm): \
             install Node.js with npm 10.2 or newer, or put it on PATH"
        );
    }
}
