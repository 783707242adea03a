//! Replacing a small file whole: the bytes go to a temporary file beside it,
//! which is renamed over it, so a reader sees the old file or the new one,
//! never a part (manifests rewritten by `pin`, `init`'s files, the metadata file).

use std::io::Write;
use std::path::Path;

/// The new file's mode: a fixed one, or the mode of the file it replaces
/// (0644 when there is none).
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    Fixed(u32),
    KeepExisting,
}

/// Writes `bytes` to `path` atomically; the parent directory must exist.
pub fn write(path: &Path, bytes: &[u8], mode: Mode) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".lambda-img-write.")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    let permissions = match mode {
        Mode::Fixed(m) => std::fs::Permissions::from_mode(m),
        Mode::KeepExisting => std::fs::metadata(path)
            .map(|m| m.permissions())
            .unwrap_or_else(|_| std::fs::Permissions::from_mode(0o644)),
    };
    tmp.as_file().set_permissions(permissions)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
