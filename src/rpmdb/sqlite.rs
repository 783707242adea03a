//! rpm's SQLite backend (rpm 4.16 and later; Amazon Linux 2023, Fedora 33+):
//! a table `Packages (hnum INTEGER PRIMARY KEY, blob BLOB)`, one header blob
//! per installed package. rpm keeps the database in WAL mode, so changes not
//! yet checkpointed (a `[system]` install's, say) live in `rpmdb.sqlite-wal`
//! beside it: both are copied into a private directory and SQLite replays
//! the log when it opens them, as rpm would.

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};

use super::{RpmPackage, RpmdbError, header};

/// The packages of the database `db` (bytes of `rpmdb.sqlite`) with its
/// write-ahead log `wal`; `path` names the file in errors.
pub fn read(path: &str, db: &[u8], wal: Option<&[u8]>) -> Result<Vec<RpmPackage>, RpmdbError> {
    let io = |source| RpmdbError::Io {
        path: path.to_string(),
        source,
    };
    let dir = tempfile::tempdir().map_err(io)?;
    let file = dir.path().join("rpmdb.sqlite");
    std::fs::write(&file, db).map_err(io)?;
    if let Some(wal) = wal {
        std::fs::write(dir.path().join("rpmdb.sqlite-wal"), wal).map_err(io)?;
    }
    let sqlite = |source| RpmdbError::Sqlite {
        path: path.to_string(),
        source,
    };
    // Read-write only so SQLite may replay the log into the private copy;
    // nothing here writes. The file came from an image: defensive mode and
    // an untrusted schema keep a crafted database from running anything.
    let conn = Connection::open_with_flags(
        &file,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)
        .map_err(sqlite)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false)
        .map_err(sqlite)?;
    let mut statement = conn
        .prepare("SELECT hnum, blob FROM Packages ORDER BY hnum")
        .map_err(sqlite)?;
    let mut rows = statement.query([]).map_err(sqlite)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(sqlite)? {
        let record: i64 = row.get(0).map_err(sqlite)?;
        let blob = row.get_ref(1).map_err(sqlite)?;
        let blob = blob.as_blob().map_err(|e| sqlite(e.into()))?;
        out.push(header::parse(blob).map_err(|why| RpmdbError::Header {
            path: path.to_string(),
            record: record as u64,
            why,
        })?);
    }
    Ok(out)
}
