//! A speed and memory check of the layer writer, run by hand (timings vary
//! too much on shared machines to assert on):
//!
//! ```text
//! cargo test --release --test it layer_bench -- --ignored --nocapture
//! LAYER_BENCH_DIR=/some/tree LAYER_BENCH_THREADS=2 cargo test --release ...
//! ```
//!
//! `LAYER_BENCH_UMOCI=0` skips the umoci comparison; `LAYER_BENCH_PHASES=0` skips the per-phase timings (which allocate
//! nothing big, but take time), e.g. for a peak-RSS check on a 2 GB tree.
//!
//! Without `LAYER_BENCH_DIR` it copies files from /usr into a temp tree of
//! `LAYER_BENCH_MB` (default 220) MB. Prints the cold build time and MB/s,
//! the no-op rebuild time and the process's peak RSS; with `umoci` installed
//! it times `umoci insert` of the same tree for comparison.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use lambda_img::cache::Cache;
use lambda_img::layer::{LayerInput, LayerSettings, LayerSpec, build_layer};
use lambda_img::report::Silent;

fn fill_from_usr(dest: &Path, budget: u64) -> (u64, usize) {
    let (mut total, mut files) = (0u64, 0usize);
    for e in walkdir::WalkDir::new("/usr").into_iter().filter_map(Result::ok) {
        if total >= budget {
            break;
        }
        if !e.file_type().is_file() {
            continue;
        }
        let Ok(m) = e.metadata() else { continue };
        if m.len() > 4 << 20 {
            continue;
        }
        let rel = e.path().strip_prefix("/usr").unwrap();
        let to = dest.join(rel);
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        if fs::copy(e.path(), &to).is_ok() {
            total += m.len();
            files += 1;
        }
    }
    (total, files)
}

/// User + system CPU seconds of this process so far (all threads).
fn cpu_secs() -> f64 {
    let stat = fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = after
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    // Fields 14 and 15 of the file (utime, stime) in clock ticks of 1/100 s.
    (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / 100.0
}

struct Clock(Instant, f64);
impl Clock {
    fn start() -> Clock {
        Clock(Instant::now(), cpu_secs())
    }
    fn show(&self) -> String {
        format!(
            "{:.2} s wall, {:.2} s cpu",
            self.0.elapsed().as_secs_f64(),
            cpu_secs() - self.1
        )
    }
}

fn peak_rss_kib() -> String {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .unwrap_or("VmHWM: ?")
        .to_string()
}

/// Times each phase on its own (in a scratch cache), to see where time goes.
fn phases(spec: &LayerSpec, settings: &LayerSettings, cache: &Cache) {
    use lambda_img::layer::{cache_key, pgzip, select, tar_writer};
    let t = Clock::start();
    let entries = select::select(spec).unwrap();
    eprintln!("  select: {} ({} entries)", t.show(), entries.len());
    let t = Clock::start();
    tar_writer::write_tar(&entries, 1, std::io::sink()).unwrap();
    eprintln!("  tar to /dev/null: {}", t.show());
    let t = Clock::start();
    let scratch = Cache::open(cache.root().join("scratch")).unwrap();
    cache_key::content_digests(&entries, &scratch, "x", settings.threads).unwrap();
    eprintln!("  hash contents: {}", t.show());
    for threads in [1, settings.threads] {
        let t = Clock::start();
        let noop = |_: u64| {};
        let (_, s) = pgzip::parallel_gzip(6, threads, std::io::sink(), Path::new("-"), &noop, |sink| {
            tar_writer::write_tar(&entries, 1, sink).map(|_| ())
        })
        .unwrap();
        let secs = t.0.elapsed().as_secs_f64();
        eprintln!(
            "  tar + gzip, {threads} threads: {}, {:.1} MB/s, {}",
            t.show(),
            s.uncompressed_size as f64 / 1e6 / secs,
            s.compressed_digest
        );
    }
    let t = Clock::start();
    cache_key::content_digests(&entries, &scratch, "x", settings.threads).unwrap();
    eprintln!("  stat-index lookup: {}", t.show());
}

#[test]
#[ignore = "manual speed/memory check; see the module comment for how to run it"]
fn layer_bench() {
    let tmp = tempfile::tempdir().unwrap();
    let src = match std::env::var("LAYER_BENCH_DIR") {
        Ok(d) => d.into(),
        Err(_) => {
            let mb: u64 = std::env::var("LAYER_BENCH_MB")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(220);
            let dir = tmp.path().join("src");
            let (bytes, files) = fill_from_usr(&dir, mb << 20);
            eprintln!("tree: {files} files, {:.1} MB", bytes as f64 / 1e6);
            dir
        }
    };
    let threads = std::env::var("LAYER_BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| LayerSettings::default().threads);
    let settings = LayerSettings {
        threads,
        ..LayerSettings::default()
    };
    let spec = LayerSpec {
        name: "bench".into(),
        inputs: vec![LayerInput::all(&src, "/var/task")],
    };
    std::thread::sleep(std::time::Duration::from_millis(200)); // past the stat index's racy window
    let cache = Cache::open(tmp.path().join("cache")).unwrap();
    if std::env::var("LAYER_BENCH_PHASES").as_deref() != Ok("0") {
        phases(&spec, &settings, &cache);
    }
    let t = Clock::start();
    let layer = build_layer(&spec, &settings, &cache, &Silent).unwrap();
    let cold = t.0.elapsed().as_secs_f64();
    eprintln!(
        "cold build, {threads} threads: {}, {:.1} MB/s uncompressed, {} → {} bytes, {}",
        t.show(),
        layer.uncompressed_size as f64 / 1e6 / cold,
        layer.uncompressed_size,
        layer.descriptor.size,
        layer.descriptor.digest
    );
    let t = Clock::start();
    let again = build_layer(&spec, &settings, &cache, &Silent).unwrap();
    eprintln!("no-op rebuild: {}", t.show());
    assert_eq!(again.descriptor, layer.descriptor);
    eprintln!("peak RSS of this test process: {}", peak_rss_kib());

    let want_umoci = std::env::var("LAYER_BENCH_UMOCI").as_deref() != Ok("0");
    if want_umoci && Command::new("umoci").arg("--version").output().is_ok() {
        let oci = tmp.path().join("oci");
        let ok = Command::new("umoci")
            .args(["init", "--layout"])
            .arg(&oci)
            .status()
            .unwrap()
            .success()
            && Command::new("umoci")
                .args(["new", "--image"])
                .arg(format!("{}:x", oci.display()))
                .status()
                .unwrap()
                .success();
        assert!(ok);
        let t = Instant::now();
        let st = Command::new("/usr/bin/time")
            .args([
                "-f",
                "umoci insert: %e s wall, %U s user, %S s sys, %M KiB peak RSS",
            ])
            .args(["umoci", "insert", "--image"])
            .arg(format!("{}:x", oci.display()))
            .arg(&src)
            .arg("/var/task")
            .status()
            .unwrap();
        assert!(st.success());
        eprintln!(
            "umoci insert of the same tree: {:.2} s",
            t.elapsed().as_secs_f64()
        );
    }
}
