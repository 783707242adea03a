//! Who may have written the cache. Its records are trusted (a layer record
//! names the blob that goes into an image), so a cache another user can
//! write is a way to ship their bytes: before use, the cache directory and
//! its buckets must belong to the current user and be writable by nobody else.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::CacheError;

/// The current effective user id.
pub fn current_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The cache root when neither `LAMBDA_IMG_CACHE`, `XDG_CACHE_HOME` nor
/// `HOME` says where: one per user under the temp directory, never a shared
/// predictable path another user could create first.
pub fn per_user_temp_root() -> PathBuf {
    std::env::temp_dir().join(format!("lambda-img-{}", current_uid()))
}

/// Creates `path` (and missing parents) with mode 0700: cache directories
/// hold nothing other users need.
pub fn create_private_dir(path: &Path) -> std::io::Result<()> {
    fs::DirBuilder::new().recursive(true).mode(0o700).create(path)
}

/// Refuses `path` unless it is a directory owned by the current user and not
/// writable by group or others. `follow`: whether a symlink there is followed
/// (a user may point `~/.cache` at another disk; the shared temp fallback
/// must not be a link someone else planted).
pub fn check_private_dir(path: &Path, follow: bool) -> Result<(), CacheError> {
    let meta = if follow {
        fs::metadata(path)
    } else {
        fs::symlink_metadata(path)
    }
    .map_err(|source| CacheError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let unsafe_dir = |problem: String, fix: String| CacheError::Unsafe {
        path: path.to_path_buf(),
        problem,
        fix,
    };
    let another_cache = "or point LAMBDA_IMG_CACHE (or --cache-dir) at a directory of your own";
    if meta.file_type().is_symlink() {
        return Err(unsafe_dir(
            "it is a symbolic link in a shared directory".into(),
            format!("remove it, {another_cache}"),
        ));
    }
    if !meta.is_dir() {
        return Err(unsafe_dir(
            "it is not a directory".into(),
            format!("remove it, {another_cache}"),
        ));
    }
    let uid = current_uid();
    if meta.uid() != uid {
        return Err(unsafe_dir(
            format!("it is owned by uid {}, not by you (uid {uid})", meta.uid()),
            format!("use a cache of your own: {another_cache}"),
        ));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(unsafe_dir(
            format!(
                "it is writable by {} (mode {mode:04o}), so another user could plant blobs or records in it",
                if mode & 0o002 != 0 {
                    "every user"
                } else {
                    "its group"
                }
            ),
            format!("chmod 700 {}, {another_cache}", path.display()),
        ));
    }
    Ok(())
}

/// Checks the root and every bucket directory directly under it (and the
/// `sha256` directory of each blob bucket).
pub fn check_cache_tree(root: &Path, follow_root: bool) -> Result<(), CacheError> {
    check_private_dir(root, follow_root)?;
    let entries = fs::read_dir(root).map_err(|source| CacheError::Io {
        path: root.to_path_buf(),
        source,
    })?;
    for entry in entries.flatten() {
        let path = entry.path();
        if !entry.file_type().is_ok_and(|t| t.is_dir() || t.is_symlink()) {
            continue;
        }
        check_private_dir(&path, false)?;
        let algo = path.join("sha256");
        if entry.file_name().to_string_lossy().starts_with("blobs-") && algo.exists() {
            check_private_dir(&algo, false)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_or_world_writable_or_linked_dirs_are_refused_with_a_fix() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("c");
        create_private_dir(&root.join("layers-v1")).unwrap();
        assert_eq!(fs::metadata(&root).unwrap().permissions().mode() & 0o777, 0o700);
        check_cache_tree(&root, true).unwrap();

        fs::set_permissions(root.join("layers-v1"), fs::Permissions::from_mode(0o775)).unwrap();
        let msg = check_cache_tree(&root, true).unwrap_err().to_string();
        assert!(
            msg.contains("layers-v1") && msg.contains("its group") && msg.contains("chmod 700"),
            "{msg}"
        );
        fs::set_permissions(root.join("layers-v1"), fs::Permissions::from_mode(0o700)).unwrap();

        fs::set_permissions(&root, fs::Permissions::from_mode(0o777)).unwrap();
        let msg = check_cache_tree(&root, true).unwrap_err().to_string();
        assert!(
            msg.contains("every user") && msg.contains("LAMBDA_IMG_CACHE"),
            "{msg}"
        );
        fs::set_permissions(&root, fs::Permissions::from_mode(0o700)).unwrap();

        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&root, &link).unwrap();
        check_cache_tree(&link, true).unwrap();
        let msg = check_cache_tree(&link, false).unwrap_err().to_string();
        assert!(msg.contains("symbolic link"), "{msg}");
    }
}
