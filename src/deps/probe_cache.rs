//! Remembering which installer version is on PATH without running it.
//!
//! Finding pip's version means starting Python (through pyenv's shims that
//! is 0.2 s), which a code-only rebuild should not pay. The first probe
//! records the program found on PATH and a witness file inside the
//! installer's own package (pip's `__init__.py`), with their stat; while both
//! stats still match, the recorded version is used. Upgrading pip rewrites
//! the witness, so the next build probes again.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::installer::Installer;
use crate::cache::{Cache, CacheBucket};
use crate::layer::FileStat;

pub const PROBE_BUCKET: CacheBucket = CacheBucket::InstallerProbe;

#[derive(Debug, Serialize, Deserialize)]
struct ProbeRecord {
    program: PathBuf,
    prefix: Vec<String>,
    version: String,
    on_path: PathBuf,
    on_path_stat: FileStat,
    witness: PathBuf,
    witness_stat: FileStat,
}

fn stat(p: &Path) -> Option<FileStat> {
    std::fs::metadata(p).ok().map(|m| FileStat::of(&m))
}

/// The installer found through `on_path` (the first match on PATH), from the
/// record when its stats still match, else from `probe` (which returns the
/// installer and its witness file) and recorded.
pub fn probe_cached(
    cache: &Cache,
    name: &str,
    on_path: Option<PathBuf>,
    probe: impl FnOnce() -> Option<(Installer, PathBuf)>,
) -> Option<Installer> {
    let on_path = on_path?;
    // pyenv's shims pick the Python by these files: a switch is a new key.
    let pyenv_root = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".pyenv")))
        .unwrap_or_default();
    let pyenv_global = std::fs::read(pyenv_root.join("version")).unwrap_or_default();
    let pyenv_local = std::fs::read(".python-version").unwrap_or_default();
    let key = {
        let mut h = Sha256::new();
        for part in [
            &pyenv_global[..],
            &pyenv_local[..],
            name.as_bytes(),
            on_path.as_os_str().as_encoded_bytes(),
            &std::env::var_os("PYENV_VERSION")
                .unwrap_or_default()
                .into_encoded_bytes(),
            &std::env::current_dir()
                .unwrap_or_default()
                .into_os_string()
                .into_encoded_bytes(),
        ] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        hex::encode(h.finalize())
    };
    if let Some(rec) = cache.get_record::<ProbeRecord>(PROBE_BUCKET, &key)
        && stat(&rec.on_path) == Some(rec.on_path_stat)
        && stat(&rec.witness) == Some(rec.witness_stat)
    {
        return Some(Installer {
            name: if name == "pip" { "pip" } else { "npm" },
            program: rec.program,
            prefix: rec.prefix,
            version: rec.version,
        });
    }
    let (installer, witness) = probe()?;
    if let (Some(on_path_stat), Some(witness_stat)) = (stat(&on_path), stat(&witness)) {
        let rec = ProbeRecord {
            program: installer.program.clone(),
            prefix: installer.prefix.clone(),
            version: installer.version.clone(),
            on_path,
            on_path_stat,
            witness,
            witness_stat,
        };
        // Only saves time next build: a failed write is no failure.
        let _ = cache.put_record(PROBE_BUCKET, &key, &rec);
    }
    Some(installer)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[test]
    fn the_version_is_remembered_until_the_installer_changes() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path().join("cache")).unwrap();
        let on_path = dir.path().join("python3");
        let witness = dir.path().join("pip__init__.py");
        std::fs::write(&on_path, "#!/bin/sh\n").unwrap();
        std::fs::write(&witness, "__version__ = '1'\n").unwrap();
        let calls = Cell::new(0);
        let probe = |v: &str| {
            calls.set(calls.get() + 1);
            let inst = Installer {
                name: "pip",
                program: "/usr/bin/python3".into(),
                prefix: vec!["-m".into(), "pip".into()],
                version: v.into(),
            };
            Some((inst, witness.clone()))
        };
        let get = |v: &str| probe_cached(&cache, "pip", Some(on_path.clone()), || probe(v)).unwrap();
        assert_eq!(get("1").version, "1");
        assert_eq!(get("ignored").version, "1", "from the record");
        assert_eq!(calls.get(), 1);
        // An upgrade rewrites pip's files: probed again.
        std::fs::write(&witness, "__version__ = '2.0'\n").unwrap();
        assert_eq!(get("2").version, "2");
        assert_eq!(calls.get(), 2);
        assert!(probe_cached(&cache, "pip", None, || probe("x")).is_none());
    }
}
