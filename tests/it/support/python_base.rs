//! A Python base image for end-to-end tests, made from the host's Debian
//! Python (`/usr/bin/python3.X`, its standard library and the shared
//! libraries `ldd` lists), built by lambda-img itself into an OCI layout.
//! Built once per `cargo test` target dir and reused (the layout is keyed by
//! the Python version and written to a temp dir, then renamed into place).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{lambda_img, run_ok, stdout};

/// The host's Python: the interpreter path and its `3.X` minor version.
pub struct HostPython {
    pub exe: PathBuf,
    pub minor: u8,
}

/// `/usr/bin/python3` resolved to its real file, when it exists with a stdlib under /usr/lib.
pub fn host_python() -> Option<HostPython> {
    let exe = std::fs::canonicalize("/usr/bin/python3").ok()?;
    let out = Command::new(&exe)
        .args(["-c", "import sys; print(sys.version_info[1])"])
        .output()
        .ok()?;
    let minor: u8 = stdout(&out).trim().parse().ok()?;
    Path::new(&format!("/usr/lib/python3.{minor}"))
        .is_dir()
        .then_some(HostPython { exe, minor })
}

/// Parts of the standard library a function never needs (smaller base, faster tests).
const SKIP: &[&str] = &[
    "test",
    "idlelib",
    "tkinter",
    "turtledemo",
    "ensurepip",
    "lib2to3",
    "__pycache__",
    "sitecustomize.py",
];

const MANYLINUX_LIBS: &[&str] = &[
    "libc.so.6",
    "libm.so.6",
    "libdl.so.2",
    "libpthread.so.0",
    "librt.so.1",
    "libutil.so.1",
    "libresolv.so.2",
    "libcrypt.so.1",
    "libgcc_s.so.1",
    "libstdc++.so.6",
    "libz.so.1",
    "libexpat.so.1",
];

/// An OCI layout holding the Python base (tag `base`); returns `oci:PATH:base`.
pub fn python_base(py: &HostPython) -> String {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("python3.{}-base-v2", py.minor));
    let reference = format!("oci:{}:base", root.join("layout").display());
    if root.join("layout/index.json").is_file() {
        return reference;
    }
    std::fs::create_dir_all(root.parent().unwrap()).unwrap();
    let work = tempfile::tempdir_in(root.parent().unwrap()).unwrap();
    let rootfs = work.path().join("project/rootfs");
    let stdlib = format!("/usr/lib/python3.{}", py.minor);
    copy_tree(Path::new(&stdlib), &rootfs.join(&stdlib[1..]));
    copy_file(&py.exe, &rootfs.join("usr/bin/python3"));
    std::fs::create_dir_all(rootfs.join("tmp")).unwrap();

    // The interpreter's and every extension module's shared libraries.
    let mut objects = vec![py.exe.clone()];
    for entry in std::fs::read_dir(Path::new(&stdlib).join("lib-dynload")).unwrap() {
        objects.push(entry.unwrap().path());
    }
    let mut libs = BTreeSet::new();
    for obj in &objects {
        let out = Command::new("ldd").arg(obj).output().unwrap();
        for line in stdout(&out).lines() {
            // "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
            let path = match line.split_once("=> ") {
                Some((_, rest)) => rest.split_whitespace().next(),
                None => line.split_whitespace().next(),
            };
            if let Some(p) = path.filter(|p| p.starts_with('/')) {
                libs.insert(p.to_string());
            }
        }
    }
    // The libraries the manylinux policy lets wheels link against, as every
    // real Linux base image has them.
    let libc_dir = libs
        .iter()
        .find(|l| l.ends_with("/libc.so.6"))
        .map(|l| Path::new(l).parent().unwrap().to_path_buf());
    if let Some(dir) = libc_dir {
        for name in MANYLINUX_LIBS {
            let lib = dir.join(name);
            if lib.exists() {
                libs.insert(lib.display().to_string());
            }
        }
    }
    for lib in &libs {
        copy_file(Path::new(lib), &rootfs.join(&lib[1..]));
    }

    let project = work.path().join("project");
    std::fs::write(
        project.join("lambda-img.toml"),
        "[function]\nname = \"python-base\"\nruntime = \"provided.al2023\"\n\n[base]\nimage = \"scratch\"\n\n\
         [[layer]]\nname = \"rootfs\"\nsources = [\"rootfs\"]\ndestination = \"/\"\n\n[code]\nsources = []\n\n\
         [image]\nentrypoint = [\"/usr/bin/python3\"]\nenv = { LANG = \"C.UTF-8\" }\n",
    )
    .unwrap();
    let cache = work.path().join("cache");
    let layout = work.path().join("layout");
    run_ok(lambda_img(&cache).arg("-C").arg(&project).args([
        "build",
        "--gzip-level",
        "1",
        "--output",
        &format!("oci:{}:base", layout.display()),
    ]));
    let done = work.path().join("done");
    std::fs::create_dir(&done).unwrap();
    std::fs::rename(&layout, done.join("layout")).unwrap();
    // Another test may have finished first: either result is the same base.
    if std::fs::rename(&done, &root).is_err() && !root.join("layout/index.json").is_file() {
        panic!("cannot place the Python base at {}", root.display());
    }
    reference
}

fn copy_file(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("copy {} → {}: {e}", from.display(), to.display()));
}

/// Copies a directory; symlinks to files become copies, other symlinks are skipped.
fn copy_tree(from: &Path, to: &Path) {
    let mut walk = walkdir::WalkDir::new(from).into_iter();
    while let Some(entry) = walk.next() {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(from).unwrap();
        let name = entry.file_name().to_string_lossy();
        if entry.depth() > 0 && (SKIP.contains(&name.as_ref()) || name.starts_with("config-3.")) {
            if entry.file_type().is_dir() {
                walk.skip_current_dir();
            }
            continue;
        }
        let dest = to.join(rel);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else if std::fs::metadata(entry.path()).is_ok_and(|m| m.is_file()) {
            copy_file(entry.path(), &dest);
        }
    }
}
