//! A Debian bookworm base image for the `[system]` tests: a minbase rootfs
//! made by Debian's own `debootstrap` from the mirror the host's apt uses,
//! packed by GNU tar (hard links written as files, device nodes left out)
//! into a one-layer OCI layout. Built once per `cargo test` target dir and
//! shared by every test (written to a temp dir, then renamed into place).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use super::crafted::{one_layer_manifest_for, put_blob, sha256_hex, write_index};
use super::{require_tool, run_ok};

/// The Debian mirror the host's apt sources name (deb.debian.org otherwise).
pub fn debian_mirror() -> String {
    let mut texts = Vec::new();
    for dir in ["/etc/apt/sources.list.d", "/etc/apt"] {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.ends_with(".sources") || name.ends_with(".list") {
                    texts.push(std::fs::read_to_string(e.path()).unwrap_or_default());
                }
            }
        }
    }
    for text in &texts {
        for line in text.lines() {
            let url = line.strip_prefix("URIs:").map(str::trim).or_else(|| {
                line.strip_prefix("deb ")
                    .and_then(|r| r.split_whitespace().next())
            });
            if let Some(url) = url.filter(|u| u.ends_with("/debian") && u.starts_with("http")) {
                return url.to_string();
            }
        }
    }
    "http://deb.debian.org/debian".into()
}

/// `oci:PATH:base` of the Debian bookworm minbase image; `None` (skipped
/// loudly, a failure under CI=true) without debootstrap.
pub fn debian_base() -> Option<String> {
    if !require_tool("debootstrap") || !require_tool("tar") || !require_tool("gzip") {
        return None;
    }
    static MAKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    Some(made_once(&MAKING, "debian-bookworm-minbase-v1", |work| {
        let rootfs = work.join("rootfs");
        run_ok(
            Command::new("debootstrap")
                .args(["--variant=minbase", "bookworm"])
                .arg(&rootfs)
                .arg(debian_mirror()),
        );
        // What apt downloaded for debootstrap is not part of an image.
        for dir in ["var/cache/apt/archives", "var/lib/apt/lists"] {
            let _ = std::fs::remove_dir_all(rootfs.join(dir));
            std::fs::create_dir_all(rootfs.join(dir)).unwrap();
        }
        write_layout(&rootfs, "amd64", &work.join("layout"), work);
    }))
}

/// `oci:PATH:base` of a Debian bookworm minbase tree for arm64 whose apt-get
/// and dpkg are arm64 programs (run here through qemu-user, binfmt_misc;
/// `.ci/run` registers it). debootstrap's first stage (`--foreign`) unpacks
/// the packages with the host's tools; its second stage would install them
/// all again under qemu, more than 8 minutes on this machine (load ~15), so
/// instead dpkg's database is written here from the packages' own control
/// data and file lists (their maintainer scripts do not run; base-passwd's
/// users are copied and mawk's `awk` alternative made, as their postinsts
/// would). What the tests prove runs on top:
/// the base's own arm64 apt-get and dpkg installing into the `[system]` layer.
/// `None` (skipped loudly, a failure under CI=true) without the tools.
pub fn debian_arm64_base() -> Option<String> {
    if !require_tool("debootstrap") || !require_tool("dpkg-deb") || !require_tool("tar") {
        return None;
    }
    let runs_arm64 =
        std::env::consts::ARCH == "aarch64" || Path::new("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists();
    if !super::require(
        runs_arm64,
        "binfmt_misc has no qemu-aarch64 (install qemu-user-static binfmt-support)",
    ) {
        return None;
    }
    static MAKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    Some(made_once(&MAKING, "debian-bookworm-arm64-minbase-v1", |work| {
        let rootfs = work.join("rootfs");
        let mirror = debian_mirror();
        run_ok(
            Command::new("debootstrap")
                .args(["--variant=minbase", "--arch=arm64", "--foreign", "bookworm"])
                .arg(&rootfs)
                .arg(&mirror),
        );
        write_dpkg_database(&rootfs);
        std::fs::write(
            rootfs.join("etc/apt/sources.list"),
            format!("deb {mirror} bookworm main\n"),
        )
        .unwrap();
        for (master, file) in [("passwd", "passwd"), ("group", "group")] {
            std::fs::copy(
                rootfs.join(format!("usr/share/base-passwd/{master}.master")),
                rootfs.join("etc").join(file),
            )
            .unwrap();
        }
        // mawk's postinst makes `awk` an alternative; apt-key needs it to read
        // the archive's armoured keys.
        std::os::unix::fs::symlink("/usr/bin/mawk", rootfs.join("etc/alternatives/awk")).unwrap();
        std::os::unix::fs::symlink("/etc/alternatives/awk", rootfs.join("usr/bin/awk")).unwrap();
        let _ = std::fs::remove_dir_all(rootfs.join("debootstrap"));
        for dir in ["var/cache/apt/archives", "var/lib/apt/lists"] {
            let _ = std::fs::remove_dir_all(rootfs.join(dir));
            std::fs::create_dir_all(rootfs.join(dir)).unwrap();
        }
        write_layout(&rootfs, "arm64", &work.join("layout"), work);
    }))
}

/// dpkg's status and `info/*.list` for every package debootstrap's first
/// stage unpacked (the `.deb`s it left in `var/cache/apt/archives`), each
/// `install ok installed`.
fn write_dpkg_database(rootfs: &Path) {
    let dpkg = rootfs.join("var/lib/dpkg");
    for dir in ["info", "updates", "triggers", "alternatives"] {
        std::fs::create_dir_all(dpkg.join(dir)).unwrap();
    }
    let mut debs: Vec<PathBuf> = std::fs::read_dir(rootfs.join("var/cache/apt/archives"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    debs.sort();
    assert!(!debs.is_empty(), "debootstrap left no packages");
    let mut status = String::new();
    for deb in &debs {
        let control = super::stdout(&run_ok(Command::new("dpkg-deb").arg("-f").arg(deb)));
        let field = |name: &str| {
            control
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                .map(str::to_string)
        };
        let package = field("Package").unwrap();
        status.push_str(control.trim_end());
        status.push_str("\nStatus: install ok installed\n\n");
        let listing = super::stdout(&run_ok(Command::new("dpkg-deb").arg("--contents").arg(deb)));
        let mut list = String::from("/.\n");
        for line in listing.lines() {
            // `drwxr-xr-x root/root 0 2023-01-01 00:00 ./usr/bin/` (and
            // ` -> TARGET` after a symbolic link, ` link to ./PATH` after a hard one)
            let Some(path) = line.split_once(" ./").map(|(_, p)| p) else {
                continue;
            };
            let path = path.split(" -> ").next().unwrap();
            let path = path.split(" link to ").next().unwrap().trim_end_matches('/');
            if !path.is_empty() {
                list.push_str(&format!("/{path}\n"));
            }
        }
        let name = match field("Multi-Arch").as_deref() {
            Some("same") => format!("{package}:{}", field("Architecture").unwrap()),
            _ => package,
        };
        std::fs::write(dpkg.join("info").join(format!("{name}.list")), list).unwrap();
    }
    std::fs::write(dpkg.join("status"), status).unwrap();
    std::fs::write(dpkg.join("available"), "").unwrap();
}

/// `oci:PATH:base` of the base kept in the test target's tmp directory as
/// `name`, made the first time by `make`, which writes `WORK/layout` in the
/// scratch directory it is given; one test makes it while the others wait
/// on `lock` (same process), and it appears whole (see [`place`]).
fn made_once(lock: &std::sync::Mutex<()>, name: &str, make: impl FnOnce(&Path)) -> String {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let reference = format!("oci:{}:base", root.join("layout").display());
    let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
    if root.join("layout/index.json").is_file() {
        return reference;
    }
    let parent = root.parent().unwrap();
    std::fs::create_dir_all(parent).unwrap();
    let work = tempfile::tempdir_in(parent).unwrap();
    make(work.path());
    place(work.path(), &root);
    reference
}

/// Moves `work/layout` to `root/layout` in one rename (a reader sees all or nothing).
fn place(work: &Path, root: &Path) {
    let done = work.join("done");
    std::fs::create_dir(&done).unwrap();
    std::fs::rename(work.join("layout"), done.join("layout")).unwrap();
    if std::fs::rename(&done, root).is_err() && !root.join("layout/index.json").is_file() {
        panic!("cannot place the base image at {}", root.display());
    }
}

/// Packs `rootfs` as the one layer of an `arch` image in `layout` (tag `base`).
fn write_layout(rootfs: &Path, arch: &str, layout: &Path, scratch: &Path) {
    let tar = scratch.join("layer.tar");
    let mut names: Vec<String> = std::fs::read_dir(rootfs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    run_ok(
        Command::new("tar")
            .arg("-C")
            .arg(rootfs)
            .args([
                "--sort=name",
                "--numeric-owner",
                "--hard-dereference",
                "--mtime=@315532800",
            ])
            .args(["--exclude=dev/*", "--exclude=proc/*", "--exclude=sys/*", "-cf"])
            .arg(&tar)
            .args(&names),
    );
    let tar_bytes = std::fs::read(&tar).unwrap();
    let diff_id = format!("sha256:{}", sha256_hex(&tar_bytes));
    drop(tar_bytes);
    run_ok(Command::new("gzip").args(["-1", "-n"]).arg(&tar));
    let layer = std::fs::read(scratch.join("layer.tar.gz")).unwrap();
    let layer_digest = put_blob(layout, &layer);
    let env = json!({"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]});
    let mut d = one_layer_manifest_for(arch, layout, env, &layer, &layer_digest, &diff_id);
    d["annotations"] = json!({"org.opencontainers.image.ref.name": "base"});
    write_index(layout, vec![d]);
}

/// `oci:PATH:base` of a dnf-capable base: the Debian base plus Debian's
/// dnf, rpm and curl, installed by lambda-img's own `[system]` layer (apt-get).
pub fn dnf_base() -> Option<String> {
    let debian = debian_base()?;
    static MAKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    Some(made_once(&MAKING, "debian-bookworm-dnf-v3", |work| {
        let project = work.join("project");
        // Debian's rpm keeps its database in $HOME/.rpmdb (beside dpkg's); an
        // RPM-based image keeps it in /var/lib/rpm, for every user to read.
        std::fs::create_dir_all(project.join("rpm/etc/rpm")).unwrap();
        std::fs::create_dir_all(project.join("rpm/var/lib/rpm")).unwrap();
        std::fs::write(project.join("rpm/etc/rpm/macros"), "%_dbpath /var/lib/rpm\n").unwrap();
        // The test repository's RPMs are unsigned: this base's dnf does not check
        // signatures (Debian's dnf.conf does; so does AL2023's, with its keys).
        std::fs::create_dir_all(project.join("rpm/etc/dnf")).unwrap();
        std::fs::write(
            project.join("rpm/etc/dnf/dnf.conf"),
            "[main]\ngpgcheck=0\ninstallonly_limit=3\n",
        )
        .unwrap();
        std::fs::write(
            project.join("lambda-img.toml"),
            format!(
                "[function]\nname = \"dnf-base\"\nruntime = \"provided.al2023\"\n\n[base]\nimage = \"{debian}\"\n\n\
                 [system]\npackages = [\"dnf\", \"rpm\", \"curl\"]\n\n\
                 [[layer]]\nname = \"rpm-config\"\nsources = [\"rpm\"]\ndestination = \"/\"\n\n[code]\nsources = []\n\n\
                 [image]\nentrypoint = [\"/usr/bin/dash\"]\n"
            ),
        )
        .unwrap();
        let layout = work.join("layout");
        // A kept cache: a change to this helper does not run apt again.
        run_ok(
            super::lambda_img(&work.parent().unwrap().join("dnf-base-cache"))
                .arg("-C")
                .arg(&project)
                .args(["build", "--gzip-level", "1", "--output"])
                .arg(format!("oci:{}:base", layout.display())),
        );
    }))
}
