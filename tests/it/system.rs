//! `[system] packages`: the base's own package manager (Debian's apt-get on
//! a debootstrap base, reaching Debian's mirror) installs into a layer;
//! umoci unpacks the image, dpkg's database lists the packages, and
//! `lambda-img run` answers through a handler that calls the installed jq.

use std::process::Output;

use serde_json::Value;

use crate::support::debian_base::{debian_arm64_base, debian_base};
use crate::support::project::Project;
use crate::support::{require_tool, run_ok, stderr, stdout};

/// A custom runtime in sh: curl talks to the Runtime API, jq does the work.
const BOOTSTRAP: &str = r#"#!/bin/sh
set -eu
api="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
while true; do
  headers=$(mktemp)
  body=$(curl -sS -D "$headers" "$api/invocation/next")
  id=$(grep -i '^lambda-runtime-aws-request-id:' "$headers" | cut -d' ' -f2 | tr -d '\r')
  printf '%s' "$body" | jq -c '{sum: (.a + .b), jq: "yes"}' \
    | curl -sS -X POST --data-binary @- "$api/invocation/$id/response" >/dev/null
  rm -f "$headers"
done
"#;

fn manifest(base: &str, system: &str) -> String {
    format!(
        "[function]\nname = \"jq-fn\"\nruntime = \"provided.al2023\"\n\n[base]\nimage = \"{base}\"\n\n\
         [system]\n{system}\n\n[code]\nsources = [\"bootstrap\"]\ndestination = \"/var/runtime\"\n\n\
         [image]\nentrypoint = [\"/var/runtime/bootstrap\"]\n"
    )
}

fn project(system: &str) -> Option<Project> {
    if !require_tool("umoci") {
        return None;
    }
    let base = debian_base()?;
    Some(project_of(&manifest(&base, system)))
}

/// A project of `manifest` with the shell bootstrap, executable.
fn project_of(manifest: &str) -> Project {
    let p = Project::new(manifest, &[("bootstrap", BOOTSTRAP)]);
    std::fs::set_permissions(
        p.join("bootstrap"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    p
}

fn json(out: &Output) -> Value {
    serde_json::from_str(&stdout(out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(out)))
}

/// The report's `system` layer entry.
fn system_layer(report: &Value) -> Value {
    report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "system")
        .unwrap_or_else(|| panic!("no system layer in {report:#}"))
        .clone()
}

/// The `system` layer's key in `lambda-img plan --json` of the project (it is listed first).
fn system_key_in_plan(p: &Project) -> String {
    let plan = json(&run_ok(&mut p.cmd(&["plan", "--json"])));
    let first = &plan["include"][0]["layers"][0];
    assert_eq!(first["name"], "system", "{plan:#}");
    first["key"].as_str().unwrap().to_string()
}

fn apt_ran(out: &Output) -> bool {
    stderr(out).contains("[system] apt-get install")
}

#[test]
fn debian_packages_land_in_a_layer_run_and_are_cached_by_their_inputs() {
    let Some(p) = project("packages = [\"jq\", \"curl\"]") else {
        return;
    };
    let layout = p.join("out");
    let output = format!("oci:{}:fn", layout.display());
    let first = p.build_ok(&["--json", "--output", &output]);
    assert!(apt_ran(&first), "{}", stderr(&first));
    let report = json(&first);
    let layer = system_layer(&report);
    assert_eq!(layer["cached"], false);
    // The system layer sits right above the base's one layer.
    assert_eq!(report["layers"][1]["name"], "system", "{report:#}");
    let names: Vec<&str> = report["system_packages"]
        .as_array()
        .unwrap_or_else(|| panic!("no system_packages in {report:#}"))
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"jq") && names.contains(&"curl") && names.contains(&"libjq1"),
        "{names:?}"
    );
    // `plan` names the layer by the build's own key: the record this build left.
    let planned = system_key_in_plan(&p);
    assert!(
        p.cache
            .path()
            .join("system-layers-v1")
            .join(format!("{planned}.json"))
            .is_file(),
        "no system layer record under the plan's key {planned}"
    );

    // umoci (not lambda-img) unpacks the image: jq is there, dpkg lists it,
    // and nothing of apt's caches or logs came along.
    let bundle = p.join("bundle");
    run_ok(
        std::process::Command::new("umoci")
            .args(["unpack", "--image", &format!("{}:fn", layout.display())])
            .arg(&bundle),
    );
    let rootfs = bundle.join("rootfs");
    assert!(rootfs.join("usr/bin/jq").is_file());
    let status = std::fs::read_to_string(rootfs.join("var/lib/dpkg/status")).unwrap();
    let jq = status
        .split("\n\n")
        .find(|r| r.starts_with("Package: jq\n"))
        .unwrap_or_else(|| panic!("dpkg status has no jq"));
    assert!(jq.contains("Status: install ok installed"), "{jq}");
    let lists: Vec<_> = std::fs::read_dir(rootfs.join("var/lib/apt/lists"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(lists.is_empty(), "apt's indexes are not in the image: {lists:?}");
    assert!(!rootfs.join("var/log/apt/history.log").exists());

    // inspect reads dpkg's database from the image's layers.
    let inspected = run_ok(&mut p.cmd(&["inspect", "--json", &output]));
    let db = &json(&inspected)["packages"];
    assert_eq!(db["manager"], "dpkg", "{db:#}");
    let jq_version = &report["system_packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "jq")
        .unwrap()["version"];
    assert!(
        db["installed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "jq" && &p["version"] == jq_version),
        "{db:#}"
    );
    let table = stdout(&run_ok(&mut p.cmd(&["inspect", &output])));
    assert!(table.contains("in /var/lib/dpkg/status (dpkg)"), "{table}");

    // The function answers through the installed jq.
    let out = run_ok(&mut p.cmd(&["run", "--event", r#"{"a":2,"b":40}"#]));
    assert_eq!(
        stdout(&out).trim(),
        r#"{"sum":42,"jq":"yes"}"#,
        "{}",
        stderr(&out)
    );

    // Unchanged inputs: the layer comes from the cache and apt does not run.
    let second = p.build_ok(&["--json", "--output", &output]);
    assert!(!apt_ran(&second), "{}", stderr(&second));
    let again = json(&second);
    assert_eq!(system_layer(&again)["cached"], true);
    assert_eq!(system_layer(&again)["digest"], layer["digest"]);
    assert_eq!(again["system_packages"], report["system_packages"]);

    // A changed package list runs apt again and gives another layer.
    std::fs::write(
        p.join("lambda-img.toml"),
        manifest(&debian_base().unwrap(), "packages = [\"jq\"]"),
    )
    .unwrap();
    let third = p.build_ok(&["--json", "--output", &output]);
    assert!(apt_ran(&third), "{}", stderr(&third));
    let changed = system_layer(&json(&third));
    assert_eq!(changed["cached"], false);
    assert_ne!(changed["digest"], layer["digest"]);
    let replanned = system_key_in_plan(&p);
    assert_ne!(replanned, planned);
    assert!(
        p.cache
            .path()
            .join("system-layers-v1")
            .join(format!("{replanned}.json"))
            .is_file()
    );
}

/// An output directory is untouched by a failed build.
fn assert_nothing_written(p: &Project) {
    assert!(!p.join("out").exists(), "a failed build wrote its output");
}

#[test]
fn a_package_that_does_not_exist_names_it_and_writes_nothing() {
    let Some(p) = project("packages = [\"jq\", \"no-such-package-lambda-img\"]") else {
        return;
    };
    let out = p.build_fail(&["--output", &format!("oci:{}:fn", p.join("out").display())]);
    let err = stderr(&out);
    assert!(
        err.contains("found no package \"no-such-package-lambda-img\""),
        "{err}"
    );
    assert!(
        err.contains("Unable to locate package"),
        "apt-get's own words: {err}"
    );
    assert_nothing_written(&p);
}

#[test]
fn an_unreachable_repository_points_at_the_mirror_option_and_writes_nothing() {
    // A port nothing listens on: connection refused, as for a mirror that is down.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let system =
        format!("packages = [\"jq\"]\nrepositories = [\"http://127.0.0.1:{port}/debian bookworm main\"]");
    let Some(p) = project(&system) else { return };
    let out = p.build_fail(&["--output", &format!("oci:{}:fn", p.join("out").display())]);
    let err = stderr(&out);
    assert!(err.contains("could not reach its repositories"), "{err}");
    assert!(err.contains("[system] repositories"), "{err}");
    assert!(
        err.contains(&format!("127.0.0.1:{port}")),
        "apt-get's own words: {err}"
    );
    assert_nothing_written(&p);
}

#[test]
fn a_base_without_a_package_manager_is_refused_and_nothing_is_written() {
    let p = Project::new(
        "[function]\nname = \"f\"\nruntime = \"provided.al2023\"\n\n[base]\nimage = \"scratch\"\n\n\
         [system]\npackages = [\"jq\"]\n\n[code]\nsources = [\"bootstrap\"]\ndestination = \"/var/runtime\"\n\n\
         [image]\nentrypoint = [\"/var/runtime/bootstrap\"]\n",
        &[("bootstrap", "#!/bin/sh\n")],
    );
    let out = p.build_fail(&["--output", &format!("oci:{}:fn", p.join("out").display())]);
    let err = stderr(&out);
    assert!(
        err.contains("the base has no package manager lambda-img knows"),
        "{err}"
    );
    assert!(err.contains("dnf, microdnf, yum, apt-get, apk"), "{err}");
    assert_nothing_written(&p);
}

/// Two builds of the same `[system] packages = ["jq"]` in two empty caches,
/// with the same SOURCE_DATE_EPOCH, run apt twice and write the same layer
/// and the same image: dpkg's status and info files, debconf's caches,
/// `ld.so.cache` and apt's `extended_states` come out byte for byte the same
/// (the versions are the same while the mirror's suite does not move; a
/// snapshot URL in `repositories` fixes them for good). A third build, by an
/// unprivileged user (setpriv to uid 65534: root only inside a user
/// namespace that maps it to that user), installs through the same apt into
/// the same layer.
#[test]
fn apt_installs_in_fresh_caches_and_as_a_non_root_user_write_the_same_layer() {
    let Some(p) = project("packages = [\"jq\"]") else {
        return;
    };
    let build = |n: &str, as_nobody: bool| {
        let cache = tempfile::tempdir().unwrap();
        let output = format!("oci:{}:fn", p.join(n).display());
        let mut cmd = if as_nobody {
            // The cache must belong to the user who builds; the project's
            // directory is where the output goes.
            for dir in [p.path(), cache.path()] {
                run_ok(
                    std::process::Command::new("chown")
                        .args(["-R", "65534:65534"])
                        .arg(dir),
                );
            }
            let mut cmd = crate::support::command("setpriv");
            cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
                .arg(crate::support::bin())
                .arg("-C")
                .arg(p.path())
                .args(["build", "--json", "--output", &output])
                .env("HOME", cache.path());
            cmd
        } else {
            p.cmd(&["build", "--json", "--output", &output])
        };
        cmd.env("LAMBDA_IMG_CACHE", cache.path())
            .env("SOURCE_DATE_EPOCH", "1700000000");
        let out = run_ok(&mut cmd);
        assert!(apt_ran(&out), "an empty cache runs apt: {}", stderr(&out));
        json(&out)
    };
    let first = build("out1", false);
    let a = crate::system_rpm::layer_files(&p.join("out1"), &system_layer(&first));
    for dpkg in [
        "usr/bin/jq",
        "var/lib/dpkg/status",
        "var/lib/apt/extended_states",
        "etc/ld.so.cache",
    ] {
        assert!(a.contains_key(dpkg), "the layer holds {dpkg}: {:?}", a.keys());
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut others = vec![("a fresh cache", build("out2", false), "out2")];
    if !root {
        crate::support::skipped("the non-root build switches to uid 65534 and needs root to do so");
    } else if require_tool("setpriv") {
        others.push(("a non-root user", build("out3", true), "out3"));
    }
    for (what, other, dir) in &others {
        assert_eq!(other["system_packages"], first["system_packages"], "{what}");
        let b = crate::system_rpm::layer_files(&p.join(dir), &system_layer(other));
        let differing: Vec<&String> = a
            .keys()
            .chain(b.keys())
            .filter(|path| a.get(*path) != b.get(*path))
            .collect();
        assert!(differing.is_empty(), "{what}: files that differ: {differing:?}");
        assert_eq!(
            system_layer(other)["digest"],
            system_layer(&first)["digest"],
            "{what}"
        );
        assert_eq!(other["digest"], first["digest"], "{what}: the same image");
    }
}

/// `[system]` on an arm64 base (`architecture = "arm64"`) on an x86_64
/// machine: the base's own arm64 apt-get and dpkg run through qemu-user
/// (binfmt_misc), and the layer holds the arm64 build of the package.
#[test]
fn an_arm64_base_installs_its_arm64_package_through_qemu() {
    let Some(base) = debian_arm64_base() else {
        return;
    };
    let text = manifest(&base, "packages = [\"jq\"]").replace(
        "runtime = \"provided.al2023\"\n",
        "runtime = \"provided.al2023\"\narchitecture = \"arm64\"\n",
    );
    let p = project_of(&text);
    let out = p.build_ok(&[
        "--json",
        "--output",
        &format!("oci:{}:fn", p.join("out").display()),
    ]);
    assert!(apt_ran(&out), "{}", stderr(&out));
    let report = json(&out);
    assert_eq!(report["platform"]["architecture"], "arm64", "{report:#}");
    let jq = report["system_packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "jq")
        .unwrap_or_else(|| panic!("no jq in {report:#}"))
        .clone();
    assert_eq!(jq["arch"], "arm64", "{jq}");
    let files = crate::system_rpm::layer_files(&p.join("out"), &system_layer(&report));
    let binary = files.get("usr/bin/jq").expect("the layer holds /usr/bin/jq");
    // After the 512-byte tar header: an ELF file whose e_machine is 183 (EM_AARCH64).
    let elf = &binary[512..];
    assert_eq!(&elf[..4], b"\x7fELF");
    assert_eq!(
        u16::from_le_bytes([elf[18], elf[19]]),
        183,
        "jq is built for aarch64"
    );
    let status = files.get("var/lib/dpkg/status").expect("dpkg's status");
    let status = String::from_utf8_lossy(&status[512..]);
    let record = status
        .split("\n\n")
        .find(|r| r.starts_with("Package: jq\n"))
        .unwrap_or_else(|| panic!("dpkg status has no jq"));
    assert!(record.contains("Architecture: arm64"), "{record}");
}

/// Where namespaces cannot be made (bwrap forbids nested user namespaces to
/// a non-root user), the install says it is the sandbox, not apt, and what to
/// do (build has no engine option to point at), and writes nothing.
#[test]
fn without_namespaces_the_install_says_why_and_writes_nothing() {
    if !require_tool("bwrap") {
        return;
    }
    let Some(p) = project("packages = [\"jq\"]") else {
        return;
    };
    let out = crate::support::command("bwrap")
        .args(["--dev-bind", "/", "/", "--unshare-user", "--disable-userns"])
        .args(["--uid", "1000", "--gid", "1000", "--"])
        .arg(crate::support::bin())
        .arg("-C")
        .arg(p.path())
        .args([
            "build",
            "--output",
            &format!("oci:{}:fn", p.join("out").display()),
        ])
        .env("LAMBDA_IMG_CACHE", p.cache.path())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("runs in lambda-img's sandbox (Linux namespaces), which could not be made here")
            && err.contains("user namespace")
            && !err.contains("--engine"),
        "{err}"
    );
    assert!(
        !err.contains("exit status: 125"),
        "not reported as apt's failure: {err}"
    );
    assert_nothing_written(&p);
}
