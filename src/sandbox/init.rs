//! The sandbox's init: runs in a fresh single-threaded lambda-img process
//! (see the module comment of `sandbox`), so it may unshare a user namespace,
//! fork freely and end the process on any error.

use std::ffi::{CString, OsStr};
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::{Bind, EXEC_FAILED, SETUP_FAILED, SPEC_VAR, SandboxSpec};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Device nodes bound from the host into the sandbox's /dev.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

fn fail(message: &str) -> ! {
    eprintln!("lambda-img sandbox: {message}");
    std::process::exit(SETUP_FAILED);
}

fn os_err(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

fn cstr(p: impl AsRef<OsStr>) -> CString {
    CString::new(p.as_ref().as_bytes()).unwrap_or_else(|_| fail("a path holds a NUL byte"))
}

/// Entry point of `lambda-img __sandbox-init`; never returns.
pub fn init_main() -> ! {
    let probe = std::env::args().any(|a| a == "--probe");
    let spec: SandboxSpec = match std::env::var(SPEC_VAR).map(|j| serde_json::from_str(&j)) {
        Ok(Ok(spec)) => spec,
        _ => fail("started without a valid spec"),
    };
    // SAFETY: single-threaded here (nothing has started a thread yet).
    unsafe { std::env::remove_var(SPEC_VAR) };
    // SAFETY: prctl with integer arguments; getuid/getgid have no preconditions.
    let (outer_uid, outer_gid) = unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        (libc::getuid(), libc::getgid())
    };
    let user_ns = outer_uid != 0;
    if user_ns {
        // SAFETY: unshare takes flags only.
        if unsafe { libc::unshare(libc::CLONE_NEWUSER) } != 0 {
            fail(&os_err("cannot create a user namespace (unshare CLONE_NEWUSER)"));
        }
        let write = |file: &str, text: String| {
            if let Err(e) = std::fs::write(file, text) {
                fail(&format!("cannot write {file}: {e}"));
            }
        };
        write("/proc/self/setgroups", "deny".into());
        write("/proc/self/uid_map", format!("{} {outer_uid} 1", spec.uid));
        write("/proc/self/gid_map", format!("{} {outer_gid} 1", spec.gid));
    }
    let flags = libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS;
    // SAFETY: unshare takes flags only.
    if unsafe { libc::unshare(flags) } != 0 {
        fail(&os_err("cannot create mount, PID, IPC and UTS namespaces"));
    }
    if probe {
        if let Some(overlay) = &spec.overlay {
            probe_overlay(&spec.root, overlay, user_ns);
        }
        std::process::exit(0);
    }
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        fail(&os_err("pipe"));
    }
    // SAFETY: both descriptors are new and owned here.
    let (status_r, status_w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: single-threaded, so the child may run any code.
    match unsafe { libc::fork() } {
        -1 => fail(&os_err("fork")),
        0 => {
            drop(status_r);
            pid_one(&spec, user_ns, std::fs::File::from(status_w))
        }
        child => {
            drop(status_w);
            relay(child, std::fs::File::from(status_r))
        }
    }
}

/// Waits for PID 1 and ends as its program ended: the same exit code, or
/// killed by the same signal.
fn relay(child: libc::pid_t, mut status: std::fs::File) -> ! {
    let mut report = String::new();
    let _ = status.read_to_string(&mut report);
    let mut raw = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(child, &mut raw, 0) };
    if let Some(sig) = report.strip_prefix('S').and_then(|s| s.parse::<i32>().ok()) {
        // SAFETY: resetting a handler and signalling ourselves.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::kill(libc::getpid(), sig);
        }
    }
    match report.strip_prefix('E').and_then(|s| s.parse::<i32>().ok()) {
        Some(code) => std::process::exit(code),
        None => std::process::exit(SETUP_FAILED),
    }
}

/// PID 1 of the sandbox: sets up the filesystem, starts the program, reaps.
fn pid_one(spec: &SandboxSpec, user_ns: bool, mut status: std::fs::File) -> ! {
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    setup_root(spec, user_ns);
    if !user_ns && spec.uid != 0 {
        // SAFETY: dropping privileges; each call checked.
        unsafe {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(spec.gid) != 0
                || libc::setuid(spec.uid) != 0
            {
                fail(&os_err("cannot change to the function's user"));
            }
        }
    }
    if std::env::set_current_dir(&spec.cwd).is_err() {
        fail(&format!(
            "the working directory {} does not exist in the image",
            spec.cwd
        ));
    }
    let program = resolve_program(spec);
    let argv: Vec<CString> = spec.argv.iter().map(cstr).collect();
    let envp: Vec<CString> = spec.env.iter().map(|(k, v)| cstr(format!("{k}={v}"))).collect();
    // SAFETY: single-threaded, so the child may run any code.
    let program_pid = match unsafe { libc::fork() } {
        -1 => fail(&os_err("fork")),
        0 => exec(&program, &argv, &envp),
        pid => pid,
    };
    loop {
        let mut raw = 0;
        // SAFETY: reaping any child of PID 1 (orphans are re-parented here).
        let pid = unsafe { libc::waitpid(-1, &mut raw, 0) };
        if pid == program_pid {
            let report = if libc::WIFSIGNALED(raw) {
                format!("S{}", libc::WTERMSIG(raw))
            } else {
                format!("E{}", libc::WEXITSTATUS(raw))
            };
            let _ = status.write_all(report.as_bytes());
            // Leaving PID 1 kills whatever the program left behind.
            std::process::exit(0);
        }
        if pid < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            std::process::exit(SETUP_FAILED);
        }
    }
}

fn exec(program: &CString, argv: &[CString], envp: &[CString]) -> ! {
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|a| a.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    // SAFETY: NUL-terminated arrays of valid C strings that outlive the call.
    unsafe {
        // No setuid binary in an image may gain privileges.
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        libc::execve(program.as_ptr(), argv_p.as_ptr(), envp_p.as_ptr());
    }
    eprintln!(
        "lambda-img sandbox: cannot run {}: {}",
        program.to_string_lossy(),
        std::io::Error::last_os_error()
    );
    std::process::exit(EXEC_FAILED);
}

/// `argv[0]`, or the first executable of that name on the program's PATH.
fn resolve_program(spec: &SandboxSpec) -> CString {
    let Some(name) = spec.argv.first() else {
        fail("nothing to run: the image has no ENTRYPOINT or CMD");
    };
    if name.contains('/') {
        return cstr(name);
    }
    let path = spec
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map_or(DEFAULT_PATH, |(_, v)| v.as_str());
    for dir in path.split(':') {
        let candidate = Path::new(dir).join(name);
        if candidate.is_file() {
            return cstr(candidate);
        }
    }
    cstr(name)
}

fn mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) {
    let source_c = source.map(cstr);
    let target_c = cstr(target);
    let fstype_c = fstype.map(cstr);
    let data_c = data.map(cstr);
    let ptr = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: valid C strings or nulls, as mount(2) takes them.
    let rc = unsafe {
        libc::mount(
            ptr(&source_c),
            target_c.as_ptr(),
            ptr(&fstype_c),
            flags,
            ptr(&data_c).cast(),
        )
    };
    if rc != 0 {
        fail(&os_err(&format!(
            "cannot mount {} on {}",
            source.map_or_else(|| fstype.unwrap_or("-").to_string(), |s| s.display().to_string()),
            target.display()
        )));
    }
}

/// The flags a remount must keep: a user namespace may not clear what the
/// outer mount locked (nosuid, nodev, noexec, atime settings).
fn locked_flags(path: &Path) -> libc::c_ulong {
    let c = cstr(path);
    // SAFETY: statvfs fills the struct it is given.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return 0;
    }
    let pairs = [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ];
    pairs
        .iter()
        .filter(|(st_flag, _)| st.f_flag & st_flag != 0)
        .fold(0, |acc, (_, ms)| acc | ms)
}

fn read_only(target: &Path) {
    let flags = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | locked_flags(target);
    mount(None, target, None, flags, None);
}

/// Creates `path` (and parents) as a directory, or as an empty file to bind a file on.
fn mount_point(path: &Path, file: bool) {
    let made = if file {
        path.parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|_| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map(|_| ())
            })
    } else {
        std::fs::create_dir_all(path)
    };
    if let Err(e) = made {
        fail(&format!("cannot make mount point {}: {e}", path.display()));
    }
}

fn setup_root(spec: &SandboxSpec, user_ns: bool) {
    let root = spec.root.as_path();
    mount(None, Path::new("/"), None, libc::MS_REC | libc::MS_PRIVATE, None);
    match &spec.overlay {
        // Mounted on the lower directory itself: the lower is resolved before
        // the overlay covers it, and the rest of the setup needs no other path.
        Some(overlay) => {
            let mut options = if overlay.read_only {
                format!("lowerdir={}:{}", overlay_path(&overlay.upper), overlay_path(root))
            } else {
                format!(
                    "lowerdir={},upperdir={},workdir={}",
                    overlay_path(root),
                    overlay_path(&overlay.upper),
                    overlay_path(&overlay.work)
                )
            };
            // In a user namespace the overlay keeps its whiteout markers in
            // user.* xattrs (trusted.* needs real root).
            if user_ns {
                options.push_str(",userxattr");
            }
            mount(None, root, Some("overlay"), 0, Some(&options));
        }
        None => mount(Some(root), root, None, libc::MS_BIND | libc::MS_REC, None),
    }
    if let Some(size) = spec.tmp_size_mb {
        mount(
            None,
            &root.join("tmp"),
            Some("tmpfs"),
            libc::MS_NOSUID | libc::MS_NODEV,
            Some(&format!("size={size}m,mode=1777")),
        );
    }
    let proc = root.join("proc");
    mount(
        None,
        &proc,
        Some("proc"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        None,
    );
    setup_dev(&root.join("dev"));
    for bind in &spec.binds {
        setup_bind(root, bind);
    }
    if !spec.writable_root {
        let flags = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NOSUID | locked_flags(root);
        mount(None, root, None, flags, None);
    }
    if std::env::set_current_dir(root).is_err() {
        fail(&format!("cannot enter {}", root.display()));
    }
    let dot = cstr(".");
    // SAFETY: pivot_root(".", ".") stacks the old root on the new one, which
    // the detached unmount then removes.
    unsafe {
        if libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) != 0 {
            fail(&os_err("pivot_root"));
        }
        if libc::umount2(dot.as_ptr(), libc::MNT_DETACH) != 0 {
            fail(&os_err("cannot detach the host's root"));
        }
    }
    let _ = std::env::set_current_dir("/");
    let host = cstr(&spec.hostname);
    // SAFETY: a valid buffer and its length.
    unsafe { libc::sethostname(host.as_ptr(), spec.hostname.len()) };
}

/// A path as an overlay mount option: `,` and `:` separate options and
/// layers, so they (and `\\`) are escaped with a backslash.
fn overlay_path(path: &Path) -> String {
    let mut out = String::new();
    for c in path.to_string_lossy().chars() {
        if matches!(c, ',' | ':' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Mounts `overlay` read-only over `root` in this (new) mount namespace, as
/// [`setup_root`] would, and fails with the kernel's reason when it cannot.
fn probe_overlay(root: &Path, overlay: &super::Overlay, user_ns: bool) {
    mount(None, Path::new("/"), None, libc::MS_REC | libc::MS_PRIVATE, None);
    let mut options = format!("lowerdir={}:{}", overlay_path(&overlay.upper), overlay_path(root));
    if user_ns {
        options.push_str(",userxattr");
    }
    mount(None, root, Some("overlay"), libc::MS_RDONLY, Some(&options));
}

fn setup_dev(dev: &Path) {
    mount(
        None,
        dev,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some("mode=755,size=1m"),
    );
    for name in DEVICES {
        let host = PathBuf::from("/dev").join(name);
        let target = dev.join(name);
        // /dev/tty exists only with a controlling terminal.
        if std::fs::OpenOptions::new().read(true).open(&host).is_err() && *name == "tty" {
            continue;
        }
        mount_point(&target, true);
        mount(Some(&host), &target, None, libc::MS_BIND, None);
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let _ = std::os::unix::fs::symlink(target, dev.join(link));
    }
    let shm = dev.join("shm");
    mount_point(&shm, false);
    mount(
        None,
        &shm,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("mode=1777,size=64m"),
    );
}

fn setup_bind(root: &Path, bind: &Bind) {
    let target = root.join(bind.target.trim_start_matches('/'));
    mount_point(&target, bind.source.is_file());
    mount(
        Some(&bind.source),
        &target,
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    );
    if !bind.writable {
        read_only(&target);
    }
}
