//! rpm's package database, read without rpm: the SQLite backend
//! (`rpmdb.sqlite` and its write-ahead log; Amazon Linux 2023) and the
//! Berkeley DB hash backend (`Packages`; Amazon Linux 2), each a store of
//! header blobs, one per installed package. Used by the SBOM, `inspect` and
//! `[system]` (which need the same list, so they read it the same way).
//!
//! The files come from images: every malformed input is an error naming the
//! file (and the record), never a panic.

mod bdb;
mod header;
mod sqlite;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// The directories rpm keeps its database in (no leading `/`): Amazon
/// Linux, RHEL and older Fedora use the first; Fedora 36+ and openSUSE the
/// second (with the first a symlink to it).
pub const DIRS: [&str; 2] = ["var/lib/rpm", "usr/lib/sysimage/rpm"];
const SQLITE: &str = "rpmdb.sqlite";
const SQLITE_WAL: &str = "rpmdb.sqlite-wal";
const BDB: &str = "Packages";
const FILES: [&str; 3] = [SQLITE, SQLITE_WAL, BDB];
/// Databases larger than this are not read (Amazon Linux 2023's is a few MiB;
/// a full Fedora workstation's about 100 MiB).
const LIMIT: u64 = 512 << 20;

/// One installed package as its header records it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RpmPackage {
    pub name: String,
    /// `None` when the header has no EPOCH tag (rpm's `%{EPOCHNUM}` is 0 then).
    pub epoch: Option<u32>,
    pub version: String,
    pub release: String,
    /// `None` for gpg-pubkey pseudo-packages.
    pub arch: Option<String>,
    pub license: Option<String>,
    /// The source package it was built from (`bash-5.2.15-1.amzn2023.src.rpm`).
    pub source_rpm: Option<String>,
}

impl RpmPackage {
    /// `EPOCH:VERSION-RELEASE`, the epoch only when the header has one (as
    /// `rpm -q --qf '%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}'` prints it).
    pub fn evr(&self) -> String {
        match self.epoch {
            Some(e) => format!("{e}:{}-{}", self.version, self.release),
            None => format!("{}-{}", self.version, self.release),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RpmdbError {
    #[error("{path}: not a readable rpm SQLite database: {source}")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{path}: not a readable rpm Berkeley DB hash database: {why}")]
    Bdb { path: String, why: String },
    #[error("{path}: package record {record} is not a valid rpm header: {why}")]
    Header { path: String, record: u64, why: String },
    #[error("{path}: {size} bytes, larger than the {} MiB an rpm database is read up to", LIMIT >> 20)]
    TooLarge { path: String, size: u64 },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A database found in an image: where it is and what it lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Database {
    /// Its path in the image (`/var/lib/rpm/rpmdb.sqlite`).
    pub path: String,
    /// In the database's order (rpm's install order).
    pub packages: Vec<RpmPackage>,
}

/// The rpm database files of an image as its layers stack them: fed one
/// layer's tar entries at a time, a later layer's file replaces an earlier
/// one's and whiteouts delete (so a database and its write-ahead log are the
/// pair the merged filesystem would hold). `T` names a layer (its digest).
#[derive(Debug)]
pub struct LayerFiles<T> {
    /// Image path → (layer number, the layer's name, bytes).
    files: BTreeMap<String, (usize, T, Vec<u8>)>,
    layer: Option<(usize, T)>,
}

impl<T> Default for LayerFiles<T> {
    fn default() -> Self {
        LayerFiles {
            files: BTreeMap::new(),
            layer: None,
        }
    }
}

impl<T: Clone> LayerFiles<T> {
    /// Starts the next layer, named `name` (whiteouts in it delete what
    /// earlier ones wrote).
    pub fn next_layer(&mut self, name: T) {
        let n = self.layer.as_ref().map_or(0, |(n, _)| n + 1);
        self.layer = Some((n, name));
    }

    /// Whether a tar entry at `path` (a regular file) is one this collects.
    pub fn wants(path: &str) -> bool {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        DIRS.contains(&dir) && (FILES.contains(&name) || name.starts_with(".wh."))
    }

    /// Takes the entry at `path` (one [`LayerFiles::wants`]) of `size` bytes,
    /// in the layer [`LayerFiles::next_layer`] started.
    pub fn take(&mut self, path: &str, size: u64, reader: &mut dyn Read) -> Result<(), RpmdbError> {
        let Some((layer, name)) = self.layer.clone() else {
            return Ok(());
        };
        let (dir, file) = path.rsplit_once('/').unwrap_or(("", path));
        if file == ".wh..wh..opq" {
            self.files
                .retain(|p, (l, _, _)| *l == layer || p.rsplit_once('/').map(|(d, _)| d) != Some(dir));
            return Ok(());
        }
        if let Some(deleted) = file.strip_prefix(".wh.") {
            self.files.remove(&format!("{dir}/{deleted}"));
            return Ok(());
        }
        let bytes = read_capped(path, size, reader)?;
        self.files.insert(path.to_string(), (layer, name, bytes));
        Ok(())
    }

    /// The database the stacked layers hold, if any, with the name of the
    /// layer its main file is in.
    pub fn read(&self) -> Result<Option<(Database, T)>, RpmdbError> {
        let found = read_found(|path| Ok(self.files.get(path).map(|(_, _, b)| b.clone())))?;
        Ok(found.and_then(|db| {
            let name = self.files.get(db.path.trim_start_matches('/'))?.1.clone();
            Some((db, name))
        }))
    }
}

/// The database of a filesystem made of `roots` stacked top first (an
/// overlay's upper directory over its lower one, or one root): for each
/// file the topmost root that has it, an overlay whiteout (a 0/0 character
/// device) counting as deleted.
pub fn read_roots(roots: &[&Path]) -> Result<Option<Database>, RpmdbError> {
    read_found(|path| {
        for root in roots {
            let file = root.join(path);
            let Ok(meta) = std::fs::symlink_metadata(&file) else {
                continue;
            };
            if !meta.is_file() {
                // A whiteout, or something no database is: nothing below counts.
                return Ok(None);
            }
            let mut f = std::fs::File::open(&file).map_err(|source| RpmdbError::Io {
                path: format!("/{path}"),
                source,
            })?;
            return read_capped(path, meta.len(), &mut f).map(Some);
        }
        Ok(None)
    })
}

/// The first database `get` (image path → bytes) finds: SQLite before
/// Berkeley DB in each directory (rpm's rebuild from bdb to sqlite can leave
/// the old `Packages` behind).
fn read_found(
    get: impl Fn(&str) -> Result<Option<Vec<u8>>, RpmdbError>,
) -> Result<Option<Database>, RpmdbError> {
    for dir in DIRS {
        let at = |name: &str| format!("{dir}/{name}");
        if let Some(db) = get(&at(SQLITE))? {
            let path = format!("/{}", at(SQLITE));
            let wal = get(&at(SQLITE_WAL))?;
            let packages = sqlite::read(&path, &db, wal.as_deref())?;
            return Ok(Some(Database { path, packages }));
        }
        if let Some(db) = get(&at(BDB))? {
            let path = format!("/{}", at(BDB));
            let packages = bdb::read(&path, &db)?;
            return Ok(Some(Database { path, packages }));
        }
    }
    Ok(None)
}

fn read_capped(path: &str, size: u64, reader: &mut dyn Read) -> Result<Vec<u8>, RpmdbError> {
    let path = format!("/{}", path.trim_start_matches('/'));
    if size > LIMIT {
        return Err(RpmdbError::TooLarge { path, size });
    }
    let mut bytes = Vec::with_capacity(size.min(64 << 20) as usize);
    reader
        .take(LIMIT + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| RpmdbError::Io { path, source })?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_layers_replace_and_whiteouts_delete() {
        let mut files = LayerFiles::default();
        files.next_layer("one");
        for (path, bytes) in [
            ("var/lib/rpm/rpmdb.sqlite", "db1"),
            ("var/lib/rpm/rpmdb.sqlite-wal", "wal1"),
        ] {
            assert!(LayerFiles::<&str>::wants(path));
            files.take(path, 4, &mut bytes.as_bytes()).unwrap();
        }
        assert!(!LayerFiles::<&str>::wants("var/lib/rpm/Name"));
        assert!(!LayerFiles::<&str>::wants("etc/rpmdb.sqlite"));
        files.next_layer("two");
        files
            .take("var/lib/rpm/.wh.rpmdb.sqlite-wal", 0, &mut &b""[..])
            .unwrap();
        files
            .take("var/lib/rpm/rpmdb.sqlite", 3, &mut &b"db2"[..])
            .unwrap();
        let held: Vec<(&str, &[u8])> = files
            .files
            .iter()
            .map(|(p, (_, _, b))| (p.as_str(), b.as_slice()))
            .collect();
        assert_eq!(held, [("var/lib/rpm/rpmdb.sqlite", &b"db2"[..])]);
        files.next_layer("three");
        files.take("var/lib/rpm/.wh..wh..opq", 0, &mut &b""[..]).unwrap();
        assert!(files.files.is_empty());
        assert_eq!(files.read().unwrap(), None);
    }

    #[test]
    fn a_file_that_is_not_a_database_is_an_error_naming_it() {
        let mut files = LayerFiles::default();
        files.next_layer(());
        files
            .take("var/lib/rpm/rpmdb.sqlite", 9, &mut &b"not a db!"[..])
            .unwrap();
        let e = files.read().unwrap_err().to_string();
        assert!(
            e.starts_with("/var/lib/rpm/rpmdb.sqlite: not a readable rpm SQLite database"),
            "{e}"
        );
    }
}
