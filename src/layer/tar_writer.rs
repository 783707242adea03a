//! Writing selected entries as a deterministic tar stream.
//!
//! Every header field is set here rather than taken from the disk: owner 0:0
//! with empty names, one fixed mtime, normalised modes, no atime/ctime, no
//! xattrs, no sparse entries. Hard links are written as regular files (each
//! path gets its own copy) because Lambda rejects hard-link entries. Entries
//! arrive sorted with their ancestors first (see `select`). Names longer than
//! the header's 100 bytes use the GNU long-name extension.

use std::fs::{self, File};
use std::io::{self, Read, Write};

use tar::{Builder, EntryType, Header};

use super::LayerError;
use super::select::{EntryKind, FileStat, Selection};

/// How many bytes a file read moves at a time.
const READ_BUF: usize = 1 << 20;

/// Writes `entries` as a tar stream (with the two zero end blocks) to `out`.
pub fn write_tar<W: Write>(entries: &Selection, mtime: u64, out: W) -> Result<W, LayerError> {
    let mut builder = Builder::new(out);
    let mut buf = vec![0u8; READ_BUF];
    for entry in entries.iter() {
        let mut header = Header::new_gnu();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(mtime);
        header.set_mode(entry.mode);
        let werr = |e: io::Error| LayerError::Compress {
            message: format!("writing {}: {e}", entry.path),
        };
        match entry.kind {
            EntryKind::Dir => {
                header.set_entry_type(EntryType::Directory);
                header.set_size(0);
                builder
                    .append_data(&mut header, format!("{}/", entry.path), io::empty())
                    .map_err(werr)?;
            }
            EntryKind::Symlink { target } => {
                header.set_entry_type(EntryType::Symlink);
                header.set_size(0);
                builder
                    .append_link(&mut header, entry.path, target)
                    .map_err(werr)?;
            }
            EntryKind::File { source, stat } => {
                header.set_entry_type(EntryType::Regular);
                header.set_size(stat.size);
                // Header now, contents below: read in big chunks, checked against the stat.
                builder
                    .append_data(&mut header, entry.path, io::empty())
                    .map_err(werr)?;
                copy_file(&source.path(), &stat, &mut buf, builder.get_mut())?;
            }
        }
    }
    builder.into_inner().map_err(|e| LayerError::Compress {
        message: format!("finishing tar: {e}"),
    })
}

/// The exact length of the tar [`write_tar`] writes for `entries`, from the
/// selection alone (sizes and framing, nothing read): a 512-byte header per
/// entry, contents padded to 512, a GNU long-name entry for a name or link
/// target over 100 bytes, and the two end blocks. Lets a build refuse an
/// oversized image before compressing anything.
pub fn tar_size(entries: &Selection) -> u64 {
    let long = |len: usize| {
        if len > 100 {
            512 + (len as u64 + 1).div_ceil(512) * 512
        } else {
            0
        }
    };
    let body: u64 = entries
        .iter()
        .map(|e| match e.kind {
            EntryKind::Dir => 512 + long(e.path.len() + 1),
            EntryKind::Symlink { target } => 512 + long(e.path.len()) + long(target.len()),
            EntryKind::File { stat, .. } => 512 + long(e.path.len()) + stat.size.div_ceil(512) * 512,
        })
        .sum();
    body + 1024
}

/// Copies exactly `stat.size` bytes of `source` plus the zero padding to a
/// 512-byte boundary; a file that changed since it was selected is an error.
fn copy_file(
    source: &std::path::Path,
    stat: &FileStat,
    buf: &mut [u8],
    out: &mut impl Write,
) -> Result<(), LayerError> {
    let changed = || LayerError::FileChanged {
        path: source.to_path_buf(),
    };
    let mut file = File::open(source).map_err(LayerError::io(source))?;
    let mut left = stat.size;
    while left > 0 {
        let want = (buf.len() as u64).min(left) as usize;
        let n = match file.read(&mut buf[..want]) {
            Ok(0) => return Err(changed()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(LayerError::io(source)(e)),
        };
        out.write_all(&buf[..n]).map_err(|e| LayerError::Compress {
            message: format!("writing {}: {e}", source.display()),
        })?;
        left -= n as u64;
    }
    let now = FileStat::of(&fs::metadata(source).map_err(LayerError::io(source))?);
    if now.size != stat.size || now.mtime_ns != stat.mtime_ns || now.ctime_ns != stat.ctime_ns {
        return Err(changed());
    }
    let pad = (512 - stat.size % 512) % 512;
    out.write_all(&[0u8; 512][..pad as usize])
        .map_err(|e| LayerError::Compress {
            message: format!("writing {}: {e}", source.display()),
        })?;
    Ok(())
}

#[cfg(test)]
#[path = "tar_writer_tests.rs"]
mod tests;
