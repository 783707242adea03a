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
use super::cache_key::{ContentHash, HashingReader};
use super::select::{Entry, EntryKind, FileStat, Selection};

/// How many bytes a file read moves at a time.
const READ_BUF: usize = 1 << 20;

/// Writes `entries` as a tar stream (with the two zero end blocks) to `out`.
pub fn write_tar<W: Write>(entries: &Selection, mtime: u64, out: W) -> Result<W, LayerError> {
    let mut buf = vec![0u8; READ_BUF];
    write_tar_with(entries, mtime, out, |file, n, out| {
        copy_buffered(file, n, &mut buf, out)
    })
}

/// [`write_tar`] straight into the compressor's blocks: file contents are
/// read into the blocks themselves, not through a buffer and a second copy
/// (on the build thread, which feeds every compression worker, that copy
/// was a tenth of its time).
pub fn write_tar_into_blocks(
    entries: &Selection,
    mtime: u64,
    sink: &mut crate::gzip::BlockSink<'_>,
) -> Result<(), LayerError> {
    write_tar_with(entries, mtime, sink, |file, n, sink| sink.fill_from(file, n)).map(|_| ())
}

/// [`write_tar_into_blocks`], hashing each file's contents on the way (as
/// the layer cache key hashes them): `each` is called with every entry once
/// it is written, in order, and a file's hash.
pub fn write_tar_into_blocks_hashing(
    entries: &Selection,
    mtime: u64,
    sink: &mut crate::gzip::BlockSink<'_>,
    each: &mut dyn FnMut(&Entry<'_>, Option<&ContentHash>),
) -> Result<(), LayerError> {
    let hash = std::cell::Cell::new(None);
    write_tar_each(
        entries,
        mtime,
        sink,
        |file, n, sink| {
            let mut reader = HashingReader::new(file);
            let copied = sink.fill_from(&mut reader, n)?;
            hash.set(Some(reader.finish()));
            Ok(copied)
        },
        |entry| each(entry, hash.take().as_ref()),
    )
    .map(|_| ())
}

/// Up to `n` bytes of `file` copied to `out` through `buf`; fewer only at
/// the file's end.
fn copy_buffered(file: &mut File, n: u64, buf: &mut [u8], out: &mut impl Write) -> io::Result<u64> {
    let mut copied = 0;
    while copied < n {
        let want = (buf.len() as u64).min(n - copied) as usize;
        let got = match file.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(got) => got,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        out.write_all(&buf[..got])?;
        copied += got as u64;
    }
    Ok(copied)
}

/// [`write_tar`], copying each file's contents with `copy` (see [`copy_buffered`]).
fn write_tar_with<W: Write>(
    entries: &Selection,
    mtime: u64,
    out: W,
    copy: impl FnMut(&mut File, u64, &mut W) -> io::Result<u64>,
) -> Result<W, LayerError> {
    write_tar_each(entries, mtime, out, copy, |_| {})
}

/// [`write_tar_with`], calling `each` with every entry once it is written.
fn write_tar_each<W: Write>(
    entries: &Selection,
    mtime: u64,
    out: W,
    mut copy: impl FnMut(&mut File, u64, &mut W) -> io::Result<u64>,
    mut each: impl FnMut(&Entry<'_>),
) -> Result<W, LayerError> {
    let mut builder = Builder::new(out);
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
                copy_file(&source.path(), &stat, builder.get_mut(), &mut copy)?;
            }
        }
        each(&entry);
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

/// Copies exactly `stat.size` bytes of `source` (with `copy`) plus the zero
/// padding to a 512-byte boundary; a file that changed since it was
/// selected is an error.
fn copy_file<W: Write>(
    source: &std::path::Path,
    stat: &FileStat,
    out: &mut W,
    copy: &mut impl FnMut(&mut File, u64, &mut W) -> io::Result<u64>,
) -> Result<(), LayerError> {
    let changed = || LayerError::FileChanged {
        path: source.to_path_buf(),
    };
    let written = |e: io::Error| LayerError::Compress {
        message: format!("writing {}: {e}", source.display()),
    };
    let mut file = File::open(source).map_err(LayerError::io(source))?;
    let copied = copy(&mut file, stat.size, out).map_err(|e| match e.kind() {
        // The compression pipeline (or the writer) stopped: not the file's fault.
        io::ErrorKind::BrokenPipe | io::ErrorKind::WriteZero => written(e),
        _ => LayerError::io(source)(e),
    })?;
    if copied != stat.size {
        return Err(changed());
    }
    let now = FileStat::of(&fs::metadata(source).map_err(LayerError::io(source))?);
    if now.size != stat.size || now.mtime_ns != stat.mtime_ns || now.ctime_ns != stat.ctime_ns {
        return Err(changed());
    }
    let pad = (512 - stat.size % 512) % 512;
    out.write_all(&[0u8; 512][..pad as usize]).map_err(written)?;
    Ok(())
}

#[cfg(test)]
#[path = "tar_writer_tests.rs"]
mod tests;
