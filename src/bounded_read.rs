//! Reading files a user or another tool handed us (layout blobs, archives,
//! Docker's `config.json`, an output layout's `index.json`) without being
//! made to wait or to fill memory: only regular files are opened, and JSON
//! documents are read up to a size cap.
//!
//! Shared by `source`, `sink` and `registry`, so it sits below all of them.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Manifests and indexes: registries refuse manifests over 4 MiB; we allow more
/// for local layouts, still far from what a crafted document needs to hurt.
pub const MAX_MANIFEST: u64 = 4 << 20;
/// Image configs (a long history makes them tens of KiB; 32 MiB is generous).
pub const MAX_CONFIG: u64 = 32 << 20;
/// Any other small JSON document (`index.json`, `manifest.json`, `config.json`).
pub const MAX_JSON: u64 = 32 << 20;

/// Opens `path` for reading only when it is a regular file. A FIFO, socket or
/// device is refused at once: opening is non-blocking, so a FIFO with no
/// writer cannot hang us, and the type is checked on the open file itself.
pub fn open_regular(path: &Path) -> io::Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        let what = if kind.is_fifo() {
            "a FIFO (named pipe)"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else if kind.is_dir() {
            "a directory"
        } else {
            "not a regular file"
        };
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("it is {what}, not a regular file; replace it with the file itself"),
        ));
    }
    // Reads of a regular file never block anyway; clearing the flag keeps it a plain file.
    use std::os::fd::AsRawFd;
    // SAFETY: fcntl on an fd we own, with integer flags only.
    unsafe {
        let flags = libc::fcntl(file.as_raw_fd(), libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(file.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK);
        }
    }
    Ok(file)
}

/// Reads the regular file at `path` whole when it is at most `cap` bytes;
/// `what` names it in the error ("index.json", "config").
pub fn read_capped(path: &Path, cap: u64, what: &str) -> io::Result<Vec<u8>> {
    let file = open_regular(path)?;
    read_capped_from(file, cap, what)
}

/// Reads `reader` whole when it holds at most `cap` bytes.
pub fn read_capped_from(reader: impl Read, cap: u64, what: &str) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader.take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(too_large(what, cap));
    }
    Ok(bytes)
}

/// The error for a document over its cap.
pub fn too_large(what: &str, cap: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "{what} is larger than {cap} bytes, the limit for such a document; refused rather than read into memory"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifos_and_devices_are_refused_at_once_and_sizes_capped() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("index.json");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = read_capped(&fifo, 10, "index.json").unwrap_err().to_string();
        assert!(err.contains("FIFO"), "{err}");
        let err = read_capped(Path::new("/dev/zero"), 10, "config")
            .unwrap_err()
            .to_string();
        assert!(err.contains("a device"), "{err}");
        let f = dir.path().join("big");
        std::fs::write(&f, vec![b'x'; 11]).unwrap();
        let err = read_capped(&f, 10, "config").unwrap_err().to_string();
        assert!(err.contains("config is larger than 10 bytes"), "{err}");
        assert_eq!(read_capped(&f, 11, "config").unwrap().len(), 11);
    }
}
