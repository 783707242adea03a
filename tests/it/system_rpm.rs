//! `[system]` with dnf: test RPMs made by rpmbuild into two repository
//! snapshots (createrepo_c) served on 127.0.0.1 by Python's http.server;
//! the pinned `releasever` picks the snapshot, `rpm -q` inside the image
//! (through `lambda-img run`) finds the package, and two builds in fresh
//! caches give the same layer.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command};

use serde_json::Value;

use crate::support::debian_base::dnf_base;
use crate::support::project::Project;
use crate::support::{require_tool, run_ok, stderr, stdout};

/// `python3 -m http.server` on a free loopback port; stopped by its PID when dropped.
pub(crate) struct StaticServer {
    child: Child,
    pub(crate) port: u16,
}

impl StaticServer {
    pub(crate) fn start(dir: &Path) -> StaticServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let server = StaticServer { child, port };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("http.server did not start on 127.0.0.1:{port}");
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A noarch RPM `hello-lambda-img-VERSION-1` holding one file, built by rpmbuild.
pub(crate) fn build_rpm(top: &Path, version: &str, out: &Path) {
    let spec = top.join(format!("hello-{version}.spec"));
    std::fs::write(
        &spec,
        format!(
            "Name: hello-lambda-img\nVersion: {version}\nRelease: 1\nSummary: a test package\nLicense: MIT\n\
             BuildArch: noarch\nAutoReqProv: no\n\n%description\nA test package of lambda-img.\n\n\
             %install\nmkdir -p %{{buildroot}}/usr/share/hello-lambda-img\n\
             echo 'hello {version}' > %{{buildroot}}/usr/share/hello-lambda-img/hello.txt\n\n\
             %files\n/usr/share/hello-lambda-img/hello.txt\n"
        ),
    )
    .unwrap();
    run_ok(
        Command::new("rpmbuild")
            .arg("--define")
            .arg(format!("_topdir {}", top.display()))
            .args(["--define", "source_date_epoch_from_changelog 0", "-bb"])
            .arg(&spec),
    );
    std::fs::create_dir_all(out).unwrap();
    let rpm = format!("hello-lambda-img-{version}-1.noarch.rpm");
    std::fs::copy(top.join("RPMS/noarch").join(&rpm), out.join(&rpm)).unwrap();
    run_ok(Command::new("createrepo_c").arg(out));
}

const BOOTSTRAP: &str = r#"#!/bin/sh
set -eu
api="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
while true; do
  headers=$(mktemp)
  curl -sS -D "$headers" -o /dev/null "$api/invocation/next"
  id=$(grep -i '^lambda-runtime-aws-request-id:' "$headers" | cut -d' ' -f2 | tr -d '\r')
  printf '{"rpm":"%s","file":"%s"}' "$(rpm -q hello-lambda-img 2>&1)" "$(cat /usr/share/hello-lambda-img/hello.txt)" \
    | curl -sS -X POST --data-binary @- "$api/invocation/$id/response" >/dev/null
  rm -f "$headers"
done
"#;

pub(crate) fn system_layer(out: &std::process::Output) -> Value {
    let report: Value = serde_json::from_str(&stdout(out)).unwrap();
    report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "system")
        .cloned()
        .unwrap_or_else(|| panic!("no system layer: {report:#}"))
}

#[test]
fn dnf_installs_from_a_pinned_snapshot_rpm_finds_it_and_fresh_caches_agree() {
    if !require_tool("rpmbuild") || !require_tool("createrepo_c") || !require_tool("python3") {
        return;
    }
    let Some(base) = dnf_base() else { return };
    let repos = tempfile::tempdir().unwrap();
    let top = tempfile::tempdir().unwrap();
    // Snapshot 1 holds version 1.0, snapshot 2 version 2.0.
    build_rpm(top.path(), "1.0", &repos.path().join("1"));
    build_rpm(top.path(), "2.0", &repos.path().join("2"));
    let server = StaticServer::start(repos.path());
    let manifest = format!(
        "[function]\nname = \"rpm-fn\"\nruntime = \"provided.al2023\"\n\n[base]\nimage = \"{base}\"\n\n\
         [system]\npackages = [\"hello-lambda-img\"]\nreleasever = \"1\"\n\
         repositories = [\"http://127.0.0.1:{}/$releasever/\"]\n\n\
         [code]\nsources = [\"bootstrap\"]\ndestination = \"/var/runtime\"\n\n\
         [image]\nentrypoint = [\"/var/runtime/bootstrap\"]\n",
        server.port
    );
    let p = Project::new(&manifest, &[("bootstrap", BOOTSTRAP)]);
    std::fs::set_permissions(
        p.join("bootstrap"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let first = p.build_ok(&[
        "--json",
        "--output",
        &format!("oci:{}:fn", p.join("out").display()),
    ]);
    assert!(
        stderr(&first).contains("[system] dnf install"),
        "{}",
        stderr(&first)
    );
    let report: Value = serde_json::from_str(&stdout(&first)).unwrap();
    let packages = report["system_packages"].as_array().cloned().unwrap_or_default();
    assert_eq!(packages.len(), 1, "{report:#}");
    assert_eq!(packages[0]["name"], "hello-lambda-img");
    assert_eq!(packages[0]["version"], "1.0-1", "releasever 1 pins snapshot 1");

    let out = run_ok(&mut p.cmd(&["run", "--event", "{}"]));
    assert_eq!(
        stdout(&out).trim(),
        r#"{"rpm":"hello-lambda-img-1.0-1.noarch","file":"hello 1.0"}"#,
        "{}",
        stderr(&out)
    );

    // A fresh cache installs the same versions from the same snapshot, into
    // the same bytes but for SQLite's WAL index (SOURCE_DATE_EPOCH is rpm's install time).
    let fresh = tempfile::tempdir().unwrap();
    let mut again = p.cmd(&[
        "build",
        "--json",
        "--output",
        &format!("oci:{}:fn", p.join("out2").display()),
    ]);
    again.env("LAMBDA_IMG_CACHE", fresh.path());
    let second = run_ok(&mut again);
    assert!(
        stderr(&second).contains("[system] dnf install"),
        "a fresh cache runs dnf"
    );
    let versions = |out: &std::process::Output| {
        serde_json::from_str::<Value>(&stdout(out)).unwrap()["system_packages"].clone()
    };
    assert_eq!(versions(&second), versions(&first));
    let a = layer_files(&p.join("out"), &system_layer(&first));
    let b = layer_files(&p.join("out2"), &system_layer(&second));
    let paths = |m: &BTreeMap<String, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(paths(&a), paths(&b), "the same files, in the same order");
    let differing: Vec<&str> = a
        .iter()
        .filter(|(path, entry)| b.get(*path) != Some(entry))
        .map(|(path, _)| path.as_str())
        .collect();
    assert_eq!(
        differing, DIFFERING,
        "only SQLite's WAL index differs between two fresh installs"
    );
    if DIFFERING.is_empty() {
        assert_eq!(system_layer(&second)["digest"], system_layer(&first)["digest"]);
    }
    drop(server);
}

/// The files of a system layer that two installs in fresh caches write
/// differently: SQLite's shared-memory WAL index beside rpm's database (its
/// salts and counters change every run; rpm honours SOURCE_DATE_EPOCH, so
/// `rpmdb.sqlite` and its `-wal` are the same bytes). Kept in the layer: a
/// non-root `rpm -q` could not recreate it in the root-owned /var/lib/rpm.
const DIFFERING: &[&str] = &["var/lib/rpm/rpmdb.sqlite-shm"];

/// Each entry of the layer `layer` (a report entry) in the layout at `dir`:
/// path → header bytes and contents.
pub fn layer_files(dir: &Path, layer: &Value) -> BTreeMap<String, Vec<u8>> {
    let digest = layer["digest"].as_str().unwrap().trim_start_matches("sha256:");
    let blob = std::fs::File::open(dir.join("blobs/sha256").join(digest)).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(blob));
    let mut out = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = entry.header().as_bytes().to_vec();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        out.insert(path, bytes);
    }
    out
}
