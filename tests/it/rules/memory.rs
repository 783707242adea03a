//! Checking streams: a 1 GiB layer is checked and inspected with bounded
//! memory. The test re-runs itself in a child process (so other tests'
//! memory does not count) and reads the child's peak RSS (VmHWM).

use std::fs::File;
use std::io::{self, Read, Write};
use std::process::Command;

use flate2::{Compression as Level, GzBuilder};
use lambda_img::image::{BlobLocation, Descriptor, Digest, HashingWriter, OCI_LAYER_GZIP};
use lambda_img::rules::{CheckContext, check_image};

use super::fixture::aws_like;
use crate::support::registry::with_layer_facts;

const CHILD: &str = "LAMBDA_IMG_TEST_MEMORY_CHILD";
const CHUNK: u64 = 16 << 20;
const CHUNKS: u64 = 64; // 1 GiB of file content

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = GzBuilder::new().write(Vec::new(), Level::new(1));
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// Writes a gzip layer holding one 1 GiB file of zeros, as concatenated gzip
/// members (one header, 64 copies of one 16 MiB member, the end blocks) so it
/// takes no time to make. Returns the blob path, its digest, size and the tar size.
fn big_layer(dir: &std::path::Path) -> (std::path::PathBuf, Digest, u64, u64) {
    let mut header = tar::Header::new_ustar();
    header.set_path("var/task/big.bin").unwrap();
    header.set_size(CHUNK * CHUNKS);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let path = dir.join("big.gz");
    let mut out = HashingWriter::new(File::create(&path).unwrap());
    out.write_all(&gzip(header.as_bytes())).unwrap();
    let mut gz = GzBuilder::new().write(Vec::new(), Level::new(1));
    io::copy(&mut io::repeat(0).take(CHUNK), &mut gz).unwrap();
    let zeros = gz.finish().unwrap();
    for _ in 0..CHUNKS {
        out.write_all(&zeros).unwrap();
    }
    out.write_all(&gzip(&[0u8; 1024])).unwrap();
    let (_, (digest, size)) = out.finish();
    (path, digest, size, 512 + CHUNK * CHUNKS + 1024)
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn child() {
    let dir = tempfile::tempdir().unwrap();
    let mut builder = aws_like();
    let image = builder.build();
    let (path, digest, size, tar_size) = big_layer(dir.path());
    let mut layer = image.layers()[3].clone();
    layer.descriptor = Descriptor::new(OCI_LAYER_GZIP, digest, size);
    layer.uncompressed_size = tar_size;
    layer.location = BlobLocation::File(path);
    let image = with_layer_facts(&image, |layers| layers.push(layer));
    let before = peak_rss_kib();
    // The parent dir var/task/ is missing from the big layer: one finding.
    let findings = check_image(&image, &CheckContext::default()).unwrap();
    let ids: Vec<_> = findings.iter().map(|f| f.rule_id).collect();
    assert_eq!(ids, ["LI041"], "{findings:#?}");
    let report = std::env::var_os(CHILD).unwrap();
    std::fs::write(report, format!("{before} {}", peak_rss_kib())).unwrap();
}

#[test]
fn a_1_gib_layer_is_checked_with_bounded_memory() {
    if std::env::var_os(CHILD).is_some() {
        return child();
    }
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("rss");
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "rules::memory::a_1_gib_layer_is_checked_with_bounded_memory",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, &report)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = std::fs::read_to_string(&report).unwrap_or_else(|e| panic!("no measurement ({e}):\n{stdout}"));
    let (before, after) = line.split_once(' ').unwrap();
    let (before, after): (u64, u64) = (before.parse().unwrap(), after.parse().unwrap());
    // A walker that held a layer (or the 1 GiB file) in memory would peak past 1 GiB.
    assert!(
        after < 64 * 1024,
        "peak RSS {after} KiB (before the check: {before} KiB) while checking a 1 GiB layer"
    );
}
