//! Progress bars as a user sees them: `lambda-img build` runs in a real
//! terminal (a detached tmux pane), and the screen left behind is read with
//! `tmux capture-pane`. Plain-pipe output is covered elsewhere; only a
//! terminal draws bars, so only a terminal can show a stale one.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::project::{Project, scratch_manifest};
use crate::support::{bin, require_tool};

/// A private tmux server (its own socket) that is killed when dropped.
struct Tmux {
    socket: tempfile::TempDir,
}

impl Tmux {
    fn start(command: &str) -> Tmux {
        let socket = tempfile::tempdir().unwrap();
        let tmux = Tmux { socket };
        let status = tmux
            .cmd()
            .args(["new-session", "-d", "-x", "160", "-y", "60", command])
            .status()
            .expect("start tmux");
        assert!(status.success(), "tmux new-session failed");
        tmux
    }

    fn cmd(&self) -> Command {
        let mut cmd = Command::new("tmux");
        cmd.arg("-S")
            .arg(self.socket.path().join("s"))
            .arg("-f")
            .arg("/dev/null");
        cmd
    }

    /// The pane's screen and scrollback, as text.
    fn screen(&self) -> String {
        let out = self
            .cmd()
            .args(["capture-pane", "-p", "-S", "-"])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the pane shows `marker` (the command's end), at most two minutes.
    fn wait_for(&self, marker: &str) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if screen.contains(marker) {
                return screen;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "the command in tmux did not finish; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").status();
    }
}

/// Runs `lambda-img build` of `project` in a terminal and returns its exit
/// status and the screen it left.
fn build_in_terminal(project: &Project, out_dir: &Path) -> (i32, String) {
    let script = format!(
        "env -u SOURCE_DATE_EPOCH LAMBDA_IMG_CACHE='{cache}' TERM=xterm '{bin}' -C '{dir}' build \
         --output 'oci:{out}:latest'; echo \"EXIT:$?:END\"; sleep 600",
        cache = project.cache.path().display(),
        bin = bin().display(),
        dir = project.path().display(),
        out = out_dir.display(),
    );
    let tmux = Tmux::start(&script);
    let screen = tmux.wait_for(":END");
    let code = screen
        .split("EXIT:")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse().ok())
        .expect("exit status on screen");
    (code, screen)
}

/// Lines that are a progress bar, or the byte counters of one.
fn bar_lines(screen: &str) -> Vec<&str> {
    screen
        .lines()
        .filter(|l| l.contains("B/s") || l.contains("[=") || l.contains("> ]") || l.contains("[ "))
        .collect()
}

fn project_with_big_code(entrypoint: &str) -> Project {
    let manifest = scratch_manifest("\n[code]\nsources = [\"busybox\", \"data\"]\n")
        .replace("/var/task/busybox", entrypoint);
    let p = Project::new(&manifest, &[]);
    p.copy_in(Path::new("/bin/busybox"), "busybox");
    // Incompressible bytes, so the layer takes long enough to draw a bar.
    let mut data = vec![0u8; 48 << 20];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    std::fs::create_dir_all(p.join("data")).unwrap();
    std::fs::write(p.join("data/blob.bin"), &data).unwrap();
    p
}

#[test]
fn a_finished_build_leaves_no_progress_bar_on_the_terminal() {
    if !require_tool("tmux") || !require_tool("busybox") {
        return;
    }
    let p = project_with_big_code("/var/task/busybox");
    let out = tempfile::tempdir().unwrap();
    let (code, screen) = build_in_terminal(&p, &out.path().join("img"));
    assert_eq!(code, 0, "build failed in the terminal:\n{screen}");
    // The layer's summary line is there, in human sizes ...
    assert!(
        screen.lines().any(|l| l.contains("code") && l.contains("MiB")),
        "no layer summary line in MiB:\n{screen}"
    );
    // ... and no bar, nor a `0 B/… 0 B/s` counter, is left behind.
    assert!(
        bar_lines(&screen).is_empty(),
        "stale progress bar(s) on screen: {:?}\nscreen:\n{screen}",
        bar_lines(&screen)
    );
    assert!(
        screen.lines().any(|l| l.starts_with("sha256:")),
        "no digest line on stdout:\n{screen}"
    );
}

#[test]
fn a_build_that_fails_after_its_layers_leaves_no_progress_bar() {
    if !require_tool("tmux") || !require_tool("busybox") {
        return;
    }
    // The entrypoint is missing: the rules that run after the layers are
    // built (their bars drawn) refuse the image.
    let p = project_with_big_code("/var/task/missing");
    let out = tempfile::tempdir().unwrap();
    let (code, screen) = build_in_terminal(&p, &out.path().join("img"));
    assert_eq!(code, 1, "the build should have failed with a finding:\n{screen}");
    assert!(
        screen.contains("LI033"),
        "no entrypoint-missing finding:\n{screen}"
    );
    assert!(
        bar_lines(&screen).is_empty(),
        "stale progress bar(s) after a failure: {:?}\nscreen:\n{screen}",
        bar_lines(&screen)
    );
}
