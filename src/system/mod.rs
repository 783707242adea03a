//! `[system] packages`: the base image's own package manager, run once in
//! the sandbox over the base's root filesystem, and what it wrote captured
//! as one deterministic layer.
//!
//! The install runs as root inside the sandbox (a user namespace when
//! lambda-img is not root), with the host's network, over an overlay whose
//! lower layer is the base's materialized snapshot (never written) and whose
//! upper directory collects every change. That directory becomes the layer
//! (see `capture`): normalized like every layer (sorted, ancestors first,
//! one mtime, owner 0:0, hard links as files), modes kept as the manager set
//! them. The package database is part of it, updated by the manager itself,
//! so `rpm -qa` or `dpkg -l` in the image see the packages.
//!
//! The layer is cached by its inputs (the base's layers, the manager, the
//! package list, the repositories, the releasever and the layer settings):
//! unchanged inputs never run the manager again. The record also keeps the
//! packages the install added, read from the manager's database, for
//! `--json`, `inspect` and the SBOM.

mod capture;
mod manager;
mod packages;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;

pub use capture::EXCLUDED;
pub use manager::{Failure, classify, detect};
pub use packages::{
    InstalledPackage, installed_by, installed_rpm, parse_apk, parse_dpkg_status, parse_table,
};

use crate::cache::Cache;
use crate::image::{Architecture, BlobLocation, Descriptor, Digest, Layer, LayerOrigin};
use crate::layer::{LayerError, LayerSettings};
use crate::manifest::{PackageManager, SystemModel};
use crate::report::Reporter;
use crate::rootfs::{Ownership, RootfsError};
use crate::sandbox::{Bind, Overlay, Sandbox, SandboxError, SandboxSpec};

/// The layer's name in reports and history.
pub const SYSTEM_LAYER: &str = "system";
const BUCKET: crate::cache::CacheBucket = crate::cache::CacheBucket::SystemLayers;
/// How much of a failed command's output an error quotes.
const TAIL_LINES: usize = 15;

#[derive(Debug, thiserror::Error)]
pub enum SystemError {
    #[error(
        "[system] packages: the base has no package manager lambda-img knows (looked for {}); \
         use a base that has one, or set [system] manager if it is installed under another name",
        PackageManager::ALL.map(|m| m.program()).join(", ")
    )]
    NoManager,
    #[error(
        "[system] manager = \"{0}\", but the base has no {0}: remove the key to detect the base's manager"
    )]
    ManagerMissing(PackageManager),
    #[error(
        "[system] packages: {manager} found no package {packages} in its repositories; nothing was written. \
         Check the names (they are the manager's package names) and the repositories. {manager} said:\n{output}"
    )]
    NoSuchPackage {
        manager: PackageManager,
        packages: String,
        output: String,
    },
    #[error(
        "[system] packages: {manager} could not reach its repositories; nothing was written. \
         Check the network, or point [system] repositories at a reachable mirror. {manager} said:\n{output}"
    )]
    Unreachable { manager: PackageManager, output: String },
    #[error("[system] packages: `{command}` failed ({status}); nothing was written. It said:\n{output}")]
    Failed {
        command: String,
        status: String,
        output: String,
    },
    #[error(
        "[system] packages: the base is linux/{} but this machine is {}, and binfmt_misc has no {} registered; \
         install it (Debian: apt-get install qemu-user-static binfmt-support) to run the base's package manager through qemu",
        .0.image, .0.host, .0.qemu
    )]
    ForeignArch(crate::sandbox::ForeignArch),
    #[error(
        "[system] packages: the base's package manager runs in lambda-img's sandbox (Linux namespaces), \
         which could not be made here; nothing was written. Build as root, or where unprivileged user \
         namespaces are allowed (`build` has no container-engine option for the install). The sandbox said:\n{0}"
    )]
    NoSandbox(String),
    #[error("[system] packages: {0}")]
    Rootfs(#[from] RootfsError),
    #[error("[system] packages: {0}")]
    Sandbox(#[from] SandboxError),
    #[error("[system] packages: {0}")]
    Layer(#[from] LayerError),
    #[error("[system] packages: reading rpm's database after the install: {0}")]
    Rpmdb(#[from] crate::rpmdb::RpmdbError),
    #[error("[system] packages: {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SystemError {
    let what = what.into();
    move |source| SystemError::Io { what, source }
}

/// What the cache keeps about a system layer.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct SystemRecord {
    digest: Digest,
    size: u64,
    diff_id: Digest,
    uncompressed_size: u64,
    manager: PackageManager,
    packages: Vec<InstalledPackage>,
}

/// The system layer and what is in it.
#[derive(Debug, Clone)]
pub struct SystemLayer {
    pub layer: Layer,
    pub manager: PackageManager,
    /// The packages the install added or changed, from the manager's database.
    pub packages: Vec<InstalledPackage>,
    /// True when the layer came from the cache (the manager did not run).
    pub cached: bool,
}

/// The layer's input key: everything that decides what the manager installs
/// and how the layer's bytes are written. The base is named by its layers'
/// uncompressed digests (`base`), which `plan` reads from the base's config.
/// The media-type family is not in it: it changes the descriptor, not the
/// bytes (as for every layer key).
pub fn system_key(
    system: &SystemModel,
    base: &[Digest],
    arch: Architecture,
    settings: &LayerSettings,
) -> String {
    let mut packages = system.packages.clone();
    packages.sort();
    let text = serde_json::json!({
        "v": 2,
        "base": base,
        "arch": arch.oci_name(),
        "manager": system.manager,
        "packages": packages,
        "repositories": system.repositories,
        "releasever": system.releasever,
        "mtime": settings.mtime,
        "gzip_level": settings.gzip_level,
        "excluded": EXCLUDED,
    })
    .to_string();
    Digest::of(text.as_bytes()).hex().to_string()
}

/// Installs `system` over `base` (its layers in order) and returns the
/// layer, from the cache when its inputs were seen before. On any failure
/// nothing is recorded: the next build tries again.
pub fn system_layer(
    system: &SystemModel,
    base: &[Layer],
    arch: Architecture,
    settings: &LayerSettings,
    cache: &Cache,
    reporter: &dyn Reporter,
) -> Result<SystemLayer, SystemError> {
    let diff_ids: Vec<Digest> = base.iter().map(|l| l.diff_id.clone()).collect();
    let key = system_key(system, &diff_ids, arch, settings);
    let found = |rec: SystemRecord| from_record(rec, settings, cache, true);
    if let Some(rec) = lookup(cache, &key) {
        reporter.detail(&format!("layer {SYSTEM_LAYER}: cache hit {}", rec.digest));
        return Ok(found(rec));
    }
    let _lock = cache
        .lock(&format!("system-{key}"))
        .map_err(io_err("cannot lock the cache"))?;
    if let Some(rec) = lookup(cache, &key) {
        return Ok(found(rec));
    }
    crate::sandbox::arch_support(arch).map_err(SystemError::ForeignArch)?;
    reporter.step("materializing the base for [system] packages");
    // As root the snapshot keeps the layers' owners; otherwise uid 0 in the
    // user namespace stands for them and the modes stay as written.
    let rootfs = crate::rootfs::materialize(base, Ownership::for_user(0, 0), cache)?;
    let manager = match system.manager {
        Some(m) if detect_one(&rootfs.path, m) => m,
        Some(m) => return Err(SystemError::ManagerMissing(m)),
        None => detect(&rootfs.path).ok_or(SystemError::NoManager)?,
    };
    let rec = install(system, manager, &rootfs.path, settings, cache, reporter)?;
    cache
        .put_record(BUCKET, &key, &rec)
        .map_err(io_err("cannot record the system layer in the cache"))?;
    Ok(from_record(rec, settings, cache, false))
}

fn detect_one(root: &Path, manager: PackageManager) -> bool {
    ["usr/bin", "bin", "usr/sbin", "sbin"]
        .iter()
        .any(|dir| std::fs::symlink_metadata(root.join(dir).join(manager.program())).is_ok())
}

fn lookup(cache: &Cache, key: &str) -> Option<SystemRecord> {
    cache
        .get_record::<SystemRecord>(BUCKET, key)
        .filter(|r| cache.has_blob(&r.digest))
}

fn from_record(rec: SystemRecord, settings: &LayerSettings, cache: &Cache, cached: bool) -> SystemLayer {
    let names: Vec<&str> = rec.packages.iter().map(|p| p.name.as_str()).collect();
    let layer = Layer {
        descriptor: Descriptor::new(settings.family.layer_gzip(), rec.digest.clone(), rec.size),
        diff_id: rec.diff_id.clone(),
        uncompressed_size: rec.uncompressed_size,
        location: BlobLocation::File(cache.blob_path(&rec.digest)),
        origin: LayerOrigin::Built {
            name: SYSTEM_LAYER.to_string(),
            source: format!("{} install {}", rec.manager, names.join(" ")),
            cached,
            from_cache_registry: false,
        },
    };
    SystemLayer {
        layer,
        manager: rec.manager,
        packages: rec.packages,
        cached,
    }
}

/// Runs the install over `root` and writes the layer blob.
fn install(
    system: &SystemModel,
    manager: PackageManager,
    root: &Path,
    settings: &LayerSettings,
    cache: &Cache,
    reporter: &dyn Reporter,
) -> Result<SystemRecord, SystemError> {
    let tmp = cache.root().join("tmp");
    let work = tempfile::Builder::new()
        .prefix("system-")
        .tempdir_in(&tmp)
        .map_err(io_err(format!(
            "cannot make a work directory in {}",
            tmp.display()
        )))?;
    let work = WorkDir(work.keep());
    let dir = |name: &str| {
        let p = work.0.join(name);
        std::fs::create_dir(&p)
            .map(|_| p)
            .map_err(io_err("cannot make a work directory"))
    };
    let (upper, overlay_work, config) = (dir("upper")?, dir("work")?, dir("config")?);
    std::fs::create_dir(config.join("sources.list.d"))
        .map_err(io_err("cannot write the repository files"))?;
    for (name, text) in manager::repository_files(manager, &system.repositories) {
        std::fs::write(config.join(name), text).map_err(io_err("cannot write the repository files"))?;
    }
    let empty = work.0.join("empty");
    std::fs::write(&empty, b"").map_err(io_err("cannot write a work file"))?;
    let log = work.0.join("output.log");

    // Queries need no network and no repository files; installs get both.
    let base_spec = |overlay: Option<Overlay>, argv: Vec<String>| {
        let writable = overlay.as_ref().is_some_and(|o| !o.read_only);
        SandboxSpec {
            root: root.to_path_buf(),
            writable_root: writable,
            overlay,
            uid: 0,
            gid: 0,
            tmp_size_mb: Some(1024),
            binds: if writable { binds(&config) } else { Vec::new() },
            argv,
            env: environment(settings.mtime),
            cwd: "/".into(),
            hostname: "lambda-img-system".into(),
        }
    };
    // A base whose database does not exist yet (rpm on a Debian-made base)
    // holds no packages of that manager: the query's failure says just that.
    let before = listing(
        manager,
        &[root],
        || base_spec(None, manager::query(manager)),
        &log,
    )
    .unwrap_or_default();
    for argv in manager::install_steps(manager, system) {
        let command = argv.join(" ");
        reporter.step(&format!("[system] {command}"));
        let overlay = Overlay {
            upper: upper.clone(),
            work: overlay_work.clone(),
            read_only: false,
        };
        let (status, output) = run(base_spec(Some(overlay), argv), &log)?;
        if let Some(reason) = sandbox_failure(status, &output) {
            return Err(SystemError::NoSandbox(reason));
        }
        for line in output.lines() {
            reporter.detail(&redact(line));
        }
        if !status.success() {
            return Err(failure(manager, system, command, status, &output));
        }
    }
    // The database as the install left it: the upper over the base, read-only.
    let view = Overlay {
        upper: upper.clone(),
        work: overlay_work.clone(),
        read_only: true,
    };
    let after = listing(
        manager,
        &[&upper, root],
        || base_spec(Some(view), manager::query(manager)),
        &log,
    )?;
    let packages = installed_by(&before, &after);

    let captured = capture::capture(&upper, &empty).map_err(io_err("cannot read what the install wrote"))?;
    for path in &captured.skipped {
        reporter.warn(&format!(
            "[system] packages: /{path} is a socket, FIFO or device node, which a layer cannot hold; left out"
        ));
    }
    reporter.step(&format!(
        "layer {SYSTEM_LAYER}: {} entries, {} packages",
        captured.entries.len(),
        packages.len()
    ));
    let (reader, writer) = std::io::pipe().map_err(io_err("cannot make a pipe"))?;
    let summary = std::thread::scope(|s| {
        let entries = &captured.entries;
        let mtime = settings.mtime;
        let tar = s.spawn(move || crate::layer::tar_writer::write_tar(entries, mtime, writer).map(|_| ()));
        let blob = crate::gzip::compress_into_cache(reader, settings.gzip_level, settings.threads, cache);
        let tar = tar.join().expect("tar thread panicked");
        tar.map_err(SystemError::Layer)?;
        blob.map_err(|e| SystemError::Layer(e.into()))
    })?;
    Ok(SystemRecord {
        digest: summary.compressed_digest,
        size: summary.compressed_size,
        diff_id: summary.uncompressed_digest,
        uncompressed_size: summary.uncompressed_size,
        manager,
        packages,
    })
}

/// Removes the work directory (root-owned files, whiteout devices) when dropped.
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = crate::rootfs::remove_tree(&self.0);
    }
}

/// The repository files, and the host's resolver so the manager can reach
/// its mirrors by name.
fn binds(config: &Path) -> Vec<Bind> {
    let mut binds = vec![Bind {
        source: config.to_path_buf(),
        target: manager::CONFIG_DIR.into(),
        writable: false,
    }];
    if Path::new("/etc/resolv.conf").is_file() {
        binds.push(Bind {
            source: "/etc/resolv.conf".into(),
            target: "/etc/resolv.conf".into(),
            writable: false,
        });
    }
    binds
}

/// A clean environment: non-interactive, C locale, the build's time stamp,
/// and the host's proxy settings (the network is the host's).
fn environment(mtime: u64) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        (
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        ),
        ("HOME", "/root"),
        ("LC_ALL", "C"),
        ("DEBIAN_FRONTEND", "noninteractive"),
        ("DEBCONF_NONINTERACTIVE_SEEN", "true"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.push(("SOURCE_DATE_EPOCH".into(), mtime.to_string()));
    for var in [
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
    ] {
        if let Ok(v) = std::env::var(var) {
            env.push((var.into(), v));
        }
    }
    env
}

/// Runs `spec` to its end with stdout and stderr in `log`; returns the status and the output.
fn run(spec: SandboxSpec, log: &Path) -> Result<(std::process::ExitStatus, String), SystemError> {
    let out = std::fs::File::create(log).map_err(io_err("cannot write the install log"))?;
    let err = out.try_clone().map_err(io_err("cannot write the install log"))?;
    let (done, status) = std::sync::mpsc::channel();
    let sandbox = Sandbox::spawn(
        &spec,
        Stdio::null(),
        Stdio::from(out),
        Stdio::from(err),
        move |s| {
            let _ = done.send(s);
        },
    )?;
    let status = status.recv();
    sandbox.stop();
    let status = status
        .map_err(|_| io_err("the sandbox ended without a status")(std::io::Error::other("no status")))?;
    let mut output = String::new();
    std::fs::File::open(log)
        .and_then(|mut f| f.read_to_string(&mut output))
        .map_err(io_err("cannot read the install log"))?;
    Ok((status, output))
}

/// What the sandbox's init said when it could not set the sandbox up (its
/// own exit status and the lines it prefixes), as opposed to the manager failing.
fn sandbox_failure(status: std::process::ExitStatus, output: &str) -> Option<String> {
    if status.code() != Some(crate::sandbox::SETUP_FAILED) {
        return None;
    }
    let said: Vec<&str> = output
        .lines()
        .filter(|l| l.starts_with("lambda-img sandbox:"))
        .collect();
    (!said.is_empty()).then(|| {
        said.iter()
            .map(|l| format!("  {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    })
}

/// The installed packages of the filesystem `roots` (top first) make. For
/// rpm's managers, rpm's database read directly: the reader `inspect` and
/// the SBOM use, so the three lists agree, and no `rpm` program needs to be
/// in the base; the query `spec` runs only when no database is found (a
/// backend the reader does not know) and for the other managers.
fn listing(
    manager: PackageManager,
    roots: &[&Path],
    spec: impl FnOnce() -> SandboxSpec,
    log: &Path,
) -> Result<Vec<InstalledPackage>, SystemError> {
    if manager.is_rpm()
        && let Some(db) = crate::rpmdb::read_roots(roots)?
    {
        let mut installed: Vec<InstalledPackage> = db.packages.iter().map(installed_rpm).collect();
        installed.sort();
        return Ok(installed);
    }
    query(manager, spec(), log)
}

/// The installed packages `spec` (the manager's query) lists.
fn query(
    manager: PackageManager,
    spec: SandboxSpec,
    log: &Path,
) -> Result<Vec<InstalledPackage>, SystemError> {
    let command = spec.argv.join(" ");
    let (status, output) = run(spec, log)?;
    if !status.success() {
        return Err(SystemError::Failed {
            command,
            status: status.to_string(),
            output: tail(&output),
        });
    }
    Ok(match manager {
        PackageManager::Apk => parse_apk(&output),
        _ => parse_table(&output),
    })
}

fn failure(
    manager: PackageManager,
    system: &SystemModel,
    command: String,
    status: std::process::ExitStatus,
    output: &str,
) -> SystemError {
    let output = tail(output);
    match classify(&output) {
        Some(Failure::NoSuchPackage) => {
            let missing: Vec<&String> = system
                .packages
                .iter()
                .filter(|p| output.contains(p.as_str()))
                .collect();
            let named = if missing.is_empty() {
                system.packages.iter().collect()
            } else {
                missing
            };
            SystemError::NoSuchPackage {
                manager,
                packages: named
                    .iter()
                    .map(|p| format!("\"{p}\""))
                    .collect::<Vec<_>>()
                    .join(", "),
                output,
            }
        }
        Some(Failure::Unreachable) => SystemError::Unreachable { manager, output },
        None => SystemError::Failed {
            command: redact(&command),
            status: status.to_string(),
            output,
        },
    }
}

/// The last lines of a command's output, with credentials in URLs hidden.
/// dnf follows a repository's problem with a dump of its settings: the
/// message ends at the `Problem repository:` line.
fn tail(output: &str) -> String {
    let output = match output.find("Problem repository:") {
        Some(at) => &output[..output[at..].find('\n').map_or(output.len(), |n| at + n)],
        None => output,
    };
    let lines: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(TAIL_LINES);
    lines[start..]
        .iter()
        .map(|l| format!("  {}", redact(l)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `scheme://user:password@host` → `scheme://***@host`: a repository URL's
/// credentials never reach messages or logs.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '/')
            .unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(at) => {
                out.push_str("***");
                out.push_str(&tail[at..end]);
            }
            None => out.push_str(&tail[..end]),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_are_hidden() {
        assert_eq!(
            redact("Err:1 https://u:s3cret@mirror.internal/debian bookworm InRelease"),
            "Err:1 https://***@mirror.internal/debian bookworm InRelease"
        );
        assert_eq!(
            redact("http://127.0.0.1:8/x and more"),
            "http://127.0.0.1:8/x and more"
        );
    }

    #[test]
    fn a_dnf_repository_problem_is_quoted_without_its_settings_dump() {
        let quoted = tail(
            "You have enabled checking of packages via GPG keys.\nProblem repository: [r]\n    gpgcheck: 1\n    retries: 10\n",
        );
        assert!(quoted.ends_with("Problem repository: [r]"), "{quoted}");
        assert!(quoted.contains("GPG keys"), "{quoted}");
    }

    #[test]
    fn the_key_follows_every_input_but_the_package_order() {
        let system = |packages: &[&str]| SystemModel {
            packages: packages.iter().map(|p| p.to_string()).collect(),
            manager: None,
            repositories: vec![],
            releasever: None,
        };
        let settings = LayerSettings::default();
        let arch = Architecture::X86_64;
        let key = |s: &SystemModel| system_key(s, &[], arch, &settings);
        assert_eq!(key(&system(&["jq", "git"])), key(&system(&["git", "jq"])));
        assert_ne!(key(&system(&["jq"])), key(&system(&["jq", "git"])));
        let mut pinned = system(&["jq"]);
        pinned.releasever = Some("2023.6".into());
        assert_ne!(key(&system(&["jq"])), key(&pinned));
        let mut mirrored = system(&["jq"]);
        mirrored.repositories = vec!["http://m/".into()];
        assert_ne!(key(&system(&["jq"])), key(&mirrored));
    }
}
