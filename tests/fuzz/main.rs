//! A fuzz harness for the stable toolchain (no nightly, so no cargo-fuzz):
//! seeds from the repository and hand-made documents, mutated by a seeded
//! generator, fed to every parser that reads untrusted input — the manifest
//! parser and validator, OCI/Docker manifest and index reading, image config
//! parsing and editing, docker-archive `manifest.json` and OCI `index.json`
//! through their sources, the layer tar scanner and the `.dockerignore`
//! matcher.
//!
//! A panic, an execution past [`HANG_LIMIT`] or memory past the address-space
//! cap is a failure; the input is saved under `target/fuzz-failures/`. The
//! budget is `LAMBDA_IMG_FUZZ_SECONDS` (default 3, so `cargo test` runs it
//! briefly); `scripts/fuzz SECONDS` runs it longer. `LAMBDA_IMG_FUZZ_SEED`
//! replays a run.

mod mutate;
mod targets;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mutate::Rng;

/// One execution taking longer than this is a hang.
const HANG_LIMIT: Duration = Duration::from_secs(10);
/// The process may not map more than this: a parser that allocates without
/// bound aborts the run instead of filling the machine.
const ADDRESS_SPACE: u64 = 3 << 30;

#[test]
fn fuzz_every_untrusted_input_parser() {
    let seconds: u64 = std::env::var("LAMBDA_IMG_FUZZ_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let seed: u64 = std::env::var("LAMBDA_IMG_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    cap_address_space();
    let failures_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-failures");
    let work = tempfile::tempdir().unwrap();
    let targets = targets::all(work.path());

    // The watchdog: an execution still running after HANG_LIMIT ends the process.
    let started_ms = Arc::new(AtomicU64::new(0));
    let current: Arc<Mutex<(String, Vec<u8>)>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let epoch = Instant::now();
    let watchdog = {
        let (started_ms, current, done, dir) = (
            started_ms.clone(),
            current.clone(),
            done.clone(),
            failures_dir.clone(),
        );
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(200));
                let s = started_ms.load(Ordering::SeqCst);
                if s != 0 && epoch.elapsed().as_millis() as u64 - s > HANG_LIMIT.as_millis() as u64 {
                    let (name, input) = current.lock().unwrap().clone();
                    let path = save(&dir, &name, "hang", &input);
                    eprintln!(
                        "fuzz: {name} ran past {HANG_LIMIT:?} on {} (seed {seed})",
                        path.display()
                    );
                    std::process::abort();
                }
            }
        })
    };

    // Panics are caught and reported once, not printed per execution.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut rng = Rng::new(seed);
    // Each target gets an equal share of the budget, so quick parsers are
    // not held to the pace of the ones that write files.
    let share = Duration::from_secs(seconds) / targets.len() as u32;
    let mut execs = vec![0u64; targets.len()];
    let mut failures: Vec<String> = Vec::new();
    for (i, target) in targets.iter().enumerate() {
        let deadline = Instant::now() + share;
        let seeds = target.seeds();
        // The seeds themselves first, then mutations until the share is spent.
        let mut queue: Vec<Vec<u8>> = seeds.to_vec();
        while execs[i] < seeds.len() as u64 || Instant::now() < deadline {
            let input = queue.pop().unwrap_or_else(|| {
                let base = &seeds[rng.below(seeds.len())];
                let other = &seeds[rng.below(seeds.len())];
                mutate::mutate(base, other, &mut rng)
            });
            *current.lock().unwrap() = (target.name().to_string(), input.clone());
            started_ms.store((epoch.elapsed().as_millis() as u64).max(1), Ordering::SeqCst);
            let result = catch_unwind(AssertUnwindSafe(|| target.run(&input)));
            started_ms.store(0, Ordering::SeqCst);
            execs[i] += 1;
            if let Err(payload) = result {
                let message = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                let path = save(&failures_dir, target.name(), "panic", &input);
                failures.push(format!(
                    "{}: panicked ({message}) on {}",
                    target.name(),
                    path.display()
                ));
                if failures.len() >= 10 {
                    break;
                }
            }
        }
    }
    std::panic::set_hook(default_hook);
    done.store(true, Ordering::SeqCst);
    let _ = watchdog.join();
    let total: u64 = execs.iter().sum();
    let per: Vec<String> = targets
        .iter()
        .zip(&execs)
        .map(|(t, n)| format!("{} {n}", t.name()))
        .collect();
    eprintln!(
        "fuzz: {total} executions in {seconds} s (seed {seed}): {}",
        per.join(", ")
    );
    assert!(execs.iter().all(|&n| n > 0), "every target ran: {per:?}");
    assert!(
        failures.is_empty(),
        "fuzz findings (seed {seed}):\n{}",
        failures.join("\n")
    );
}

fn save(dir: &std::path::Path, target: &str, kind: &str, input: &[u8]) -> std::path::PathBuf {
    let _ = std::fs::create_dir_all(dir);
    let hex = lambda_img::image::Digest::of(input).hex()[..16].to_string();
    let path = dir.join(format!("{target}-{kind}-{hex}.bin"));
    let _ = std::fs::write(&path, input);
    path
}

fn cap_address_space() {
    let limit = libc::rlimit {
        rlim_cur: ADDRESS_SPACE,
        rlim_max: ADDRESS_SPACE,
    };
    // SAFETY: setrlimit with a valid struct; lowering a limit cannot fail harmfully.
    unsafe {
        libc::setrlimit(libc::RLIMIT_AS, &limit);
    }
}
