//! rpm's package database read without rpm: real `rpm` (Debian's 4.18, the
//! SQLite backend) installs test RPMs made by `rpmbuild` into a database with
//! `--justdb`; an image whose layer holds it lists the same packages as
//! `rpm -qa` in `inspect` and, with purls, in the SBOM (which `pyspdxtools`
//! still accepts). Berkeley DB's own `db5.3_load` writes the same header
//! blobs as an Amazon Linux 2 style hash `Packages` file for the bdb reader.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::project::Project;
use crate::support::{require_tool, run_ok, stderr, stdout};

/// One test package: name, epoch, version, release, arch, licence, and how
/// long a description (a long one makes a header bigger than a bdb page).
struct Spec {
    name: &'static str,
    epoch: Option<u32>,
    version: &'static str,
    release: &'static str,
    arch: &'static str,
    license: &'static str,
    description: usize,
}

const SPECS: [Spec; 3] = [
    Spec {
        name: "alpha-tool",
        epoch: Some(2),
        version: "1.2.3",
        release: "4.amzn2023",
        arch: "noarch",
        license: "MIT AND Apache-2.0",
        description: 40,
    },
    Spec {
        name: "beta-lib",
        epoch: None,
        version: "0.9",
        release: "1.amzn2023.0.1",
        arch: "x86_64",
        license: "GPL-2.0-or-later",
        description: 40,
    },
    Spec {
        name: "gamma-data",
        epoch: Some(0),
        version: "20241010",
        release: "7",
        arch: "noarch",
        license: "BSD-3-Clause",
        description: 30_000,
    },
];

/// Builds the test RPMs with rpmbuild under `top`; returns their paths.
fn build_rpms(top: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(top).unwrap();
    let mut rpms = Vec::new();
    for s in &SPECS {
        let epoch = s.epoch.map(|e| format!("Epoch: {e}\n")).unwrap_or_default();
        let description = "rpm database test package. ".repeat(s.description / 27 + 1);
        let spec = top.join(format!("{}.spec", s.name));
        std::fs::write(
            &spec,
            format!(
                "Name: {}\n{epoch}Version: {}\nRelease: {}\nSummary: a test package\nLicense: {}\n\
                 BuildArch: {}\nAutoReqProv: no\n\n%description\n{description}\n\n\
                 %install\nmkdir -p %{{buildroot}}/usr/share/{0}\necho {0} > %{{buildroot}}/usr/share/{0}/README\n\n\
                 %files\n/usr/share/{0}/README\n",
                s.name, s.version, s.release, s.license, s.arch
            ),
        )
        .unwrap();
        rpmbuild(top, &spec, Some(s.arch));
        rpms.push(top.join(format!(
            "RPMS/{2}/{0}-{1}-{3}.{2}.rpm",
            s.name, s.version, s.arch, s.release
        )));
    }
    rpms
}

/// A database at `dbpath` made by real rpm, holding the test RPMs.
fn rpm_database(dbpath: &Path, rpms: &[PathBuf]) {
    std::fs::create_dir_all(dbpath).unwrap();
    run_ok(Command::new("rpm").arg("--dbpath").arg(dbpath).arg("--initdb"));
    run_ok(
        Command::new("rpm")
            .arg("--dbpath")
            .arg(dbpath)
            .args(["-i", "--nodeps", "--justdb", "--ignorearch"])
            .args(rpms),
    );
}

/// `rpm -qa` of `dbpath` as sorted (name, epochnum, version, release, arch) rows.
fn rpm_qa(dbpath: &Path, backend: Option<&str>) -> Vec<[String; 5]> {
    let mut cmd = Command::new("rpm");
    if let Some(backend) = backend {
        cmd.args(["--define", &format!("_db_backend {backend}")]);
    }
    let out = run_ok(cmd.arg("--dbpath").arg(dbpath).args([
        "-qa",
        "--qf",
        "%{NAME}\t%{EPOCHNUM}\t%{VERSION}\t%{RELEASE}\t%{ARCH}\n",
    ]));
    let mut rows: Vec<[String; 5]> = stdout(&out)
        .lines()
        .map(|l| {
            let f: Vec<String> = l.split('\t').map(str::to_string).collect();
            f.try_into().unwrap_or_else(|f| panic!("not five fields: {f:?}"))
        })
        .collect();
    rows.sort();
    rows
}

/// The rows of `rpm -qa` as `inspect` prints versions: `E:V-R` with the epoch
/// only when the header has one (rpm's `%{EPOCHNUM}` is 0 for none and for 0,
/// so the specs say which).
fn expected_inspect(rows: &[[String; 5]]) -> Vec<(String, String, String)> {
    rows.iter()
        .map(|[name, epoch, version, release, arch]| {
            let spec = SPECS.iter().find(|s| s.name == name).unwrap();
            assert_eq!(spec.epoch.unwrap_or(0).to_string(), *epoch);
            let evr = match spec.epoch {
                Some(e) => format!("{e}:{version}-{release}"),
                None => format!("{version}-{release}"),
            };
            (name.clone(), evr, arch.clone())
        })
        .collect()
}

/// `inspect --json IMAGE`'s packages, sorted (name, version, arch), after
/// checking they come from rpm's database at `path`.
fn inspect_rpm(p: &Project, image: &str, path: &str) -> Vec<(String, String, String)> {
    let inspected = run_ok(&mut p.cmd(&["inspect", "--json", image]));
    let db = serde_json::from_str::<Value>(&stdout(&inspected)).unwrap()["packages"].clone();
    assert_eq!(db["manager"], "rpm", "{db:#}");
    assert_eq!(db["path"], path);
    let mut listed: Vec<(String, String, String)> = db["installed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let s = |k: &str| p[k].as_str().unwrap().to_string();
            (s("name"), s("version"), s("arch"))
        })
        .collect();
    listed.sort();
    listed
}

/// `rpm -qa` of `dbpath` as sorted (name, `E:V-R` with the epoch only when set, arch).
fn rpm_qa_evr(dbpath: &Path) -> Vec<(String, String, String)> {
    let out = run_ok(Command::new("rpm").arg("--dbpath").arg(dbpath).args([
        "-qa",
        "--qf",
        "%{NAME}\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\t%{ARCH}\n",
    ]));
    let mut rows: Vec<(String, String, String)> = stdout(&out)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].to_string(), f[1].to_string(), f[2].to_string())
        })
        .collect();
    rows.sort();
    rows
}

/// rpmbuild `-bb` of `spec` under `top`, for `target` when given.
fn rpmbuild(top: &Path, spec: &Path, target: Option<&str>) {
    let mut cmd = Command::new("rpmbuild");
    cmd.arg("--define")
        .arg(format!("_topdir {}", top.display()))
        .args(["--define", "source_date_epoch_from_changelog 0"]);
    if let Some(target) = target {
        cmd.args(["--target", target]);
    }
    run_ok(cmd.arg("-bb").arg(spec));
}

fn tools() -> bool {
    require_tool("rpm") && require_tool("rpmbuild") && require_tool("pyspdxtools") && require_tool("busybox")
}

/// A project building a scratch-based image whose `os` layer is `root/`,
/// with busybox as `/bin/sh`, the entrypoint.
fn os_project(name: &str, files: &[(&str, &str)]) -> Project {
    let p = Project::new(
        &format!(
            "[function]\nname = \"{name}\"\nruntime = \"provided.al2023\"\n[base]\nimage = \"scratch\"\n\
             [[layer]]\nname = \"os\"\nsources = [\"root\"]\ndestination = \"/\"\n[code]\nsources = []\n\
             [image]\nentrypoint = [\"/bin/sh\"]\n"
        ),
        files,
    );
    p.copy_in(Path::new("/bin/busybox"), "root/bin/sh");
    p
}

#[test]
fn an_rpm_database_made_by_rpm_is_listed_by_inspect_and_the_sbom_with_purls() {
    if !tools() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let rpms = build_rpms(&work.path().join("top"));
    let dbpath = work.path().join("db");
    rpm_database(&dbpath, &rpms);
    let rows = rpm_qa(&dbpath, None);
    assert_eq!(rows.len(), SPECS.len(), "{rows:?}");

    // A base whose layer holds the database where Amazon Linux 2023 keeps it.
    let base = os_project(
        "al-base",
        &[(
            "root/etc/os-release",
            "NAME=\"Amazon Linux\"\nVERSION=\"2023\"\nID=\"amzn\"\nID_LIKE=\"fedora\"\nVERSION_ID=\"2023\"\n",
        )],
    );
    for file in ["rpmdb.sqlite", "rpmdb.sqlite-wal"] {
        if dbpath.join(file).is_file() {
            base.copy_in(&dbpath.join(file), &format!("root/var/lib/rpm/{file}"));
        }
    }
    let layout = base.cache.path().join("base");
    base.build_ok(&["--no-sbom", "--output", &format!("oci:{}:v1", layout.display())]);

    let f = Project::new(
        &format!(
            "[function]\nname = \"f\"\nruntime = \"provided.al2023\"\n[base]\nimage = \"oci:{}:v1\"\n\
             [code]\nsources = []\n[image]\nentrypoint = [\"/bin/sh\"]\n",
            layout.display()
        ),
        &[],
    );
    let out = f.cache.path().join("out");
    let sbom = f.cache.path().join("sbom.spdx.json");
    f.build_ok(&[
        "--sbom",
        sbom.to_str().unwrap(),
        "--output",
        &format!("oci:{}:fn", out.display()),
    ]);

    // inspect: the rpm database, the packages rpm -qa lists.
    let listed = inspect_rpm(
        &f,
        &format!("oci:{}:fn", out.display()),
        "/var/lib/rpm/rpmdb.sqlite",
    );
    assert_eq!(listed, expected_inspect(&rows));
    let table = run_ok(&mut f.cmd(&["inspect", &format!("oci:{}:fn", out.display())]));
    assert!(
        stdout(&table).contains("/var/lib/rpm/rpmdb.sqlite"),
        "{}",
        stdout(&table)
    );

    // The SBOM: every package with its purl, version and licence; valid SPDX.
    crate::sbom::validate(&sbom);
    let doc: Value = serde_json::from_slice(&std::fs::read(&sbom).unwrap()).unwrap();
    let mut purls: Vec<String> = crate::sbom::purls(&doc)
        .into_iter()
        .filter(|p| p.starts_with("pkg:rpm/"))
        .collect();
    purls.sort();
    let expected: Vec<String> = rows
        .iter()
        .map(|[name, _, version, release, arch]| {
            let spec = SPECS.iter().find(|s| s.name == name).unwrap();
            let epoch = spec.epoch.map(|e| format!("&epoch={e}")).unwrap_or_default();
            format!(
                "pkg:rpm/amzn/{name}@{version}-{release}?arch={arch}{epoch}&upstream={name}-{version}-{release}.src.rpm"
            )
        })
        .collect();
    assert_eq!(purls, expected);
    if crate::sbom::require_cyclonedx_validator() {
        let cdx = f.cache.path().join("sbom.cdx.json");
        f.build_ok(&["--sbom-format", "cyclonedx", "--sbom", cdx.to_str().unwrap()]);
        crate::sbom::validate_cyclonedx(&cdx);
        let doc: Value = serde_json::from_slice(&std::fs::read(&cdx).unwrap()).unwrap();
        let mut cdx_purls: Vec<String> = doc["components"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| {
                c["purl"]
                    .as_str()
                    .filter(|p| p.starts_with("pkg:rpm/"))
                    .map(str::to_string)
            })
            .collect();
        cdx_purls.sort();
        assert_eq!(cdx_purls, purls, "CycloneDX lists the same rpm packages");
    }
    let alpha = crate::sbom::by_name(&doc, "alpha-tool");
    assert_eq!(alpha["versionInfo"], "2:1.2.3-4.amzn2023");
    assert_eq!(alpha["licenseDeclared"], "MIT AND Apache-2.0", "{alpha:#}");
    assert!(
        alpha["comment"]
            .as_str()
            .unwrap()
            .contains("/var/lib/rpm/rpmdb.sqlite"),
        "{alpha:#}"
    );
}

#[test]
fn a_damaged_rpm_database_is_an_error_naming_the_file_and_the_record() {
    if !tools() || !require_tool("sqlite3") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let rpms = build_rpms(&work.path().join("top"));
    let dbpath = work.path().join("db");
    rpm_database(&dbpath, &rpms);
    // rpm's own database with one header blob cut short, by SQLite's shell.
    let db = dbpath.join("rpmdb.sqlite");
    run_ok(Command::new("sqlite3").arg(&db).arg(
        "UPDATE Packages SET blob = substr(blob, 1, 100) WHERE hnum = (SELECT min(hnum) FROM Packages)",
    ));
    let p = os_project("damaged", &[]);
    p.copy_in(&db, "root/var/lib/rpm/rpmdb.sqlite");
    let out = p.cache.path().join("out");
    let failed = p.build_fail(&["--output", &format!("oci:{}:v1", out.display())]);
    let expected = "/var/lib/rpm/rpmdb.sqlite: package record 1 is not a valid rpm header";
    let message = stderr(&failed);
    assert!(
        message.contains(expected) && message.contains("truncated") && message.contains("--no-sbom"),
        "{message}"
    );
    // The SBOM is made before any output is written: a failed build leaves
    // no image behind without its SBOM.
    assert!(!out.exists(), "the failed build wrote its output");
    // inspect of the same image (built without an SBOM) says the same.
    p.build_ok(&["--no-sbom", "--output", &format!("oci:{}:v1", out.display())]);
    let inspected = crate::support::run_fail(&mut p.cmd(&["inspect", &format!("oci:{}:v1", out.display())]));
    assert!(stderr(&inspected).contains(expected), "{}", stderr(&inspected));
}

/// `bytes` in db_load's printable form: every byte as `\xx`.
fn printable(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:02x}")).collect()
}

/// An Amazon Linux 2 style `Packages` (Berkeley DB hash, 512-byte pages so
/// headers run over chains of overflow pages) written by Berkeley DB's own
/// `db5.3_load` from the header blobs of the SQLite database at `sqlite`:
/// keys are package numbers in the host's byte order, and key 0 holds rpm's
/// next-number counter, as rpm's bdb backend writes them.
fn bdb_packages(sqlite: &Path, out: &Path) {
    let rows = stdout(&run_ok(
        Command::new("sqlite3")
            .arg(sqlite)
            .arg("SELECT hnum, hex(blob) FROM Packages ORDER BY hnum"),
    ));
    let mut input = String::new();
    let mut last = 0u32;
    for row in rows.lines() {
        let (hnum, hex) = row.split_once('|').unwrap();
        let hnum: u32 = hnum.parse().unwrap();
        last = last.max(hnum);
        let blob: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        input.push_str(&format!(
            "{}\n{}\n",
            printable(&hnum.to_ne_bytes()),
            printable(&blob)
        ));
    }
    input.push_str(&format!(
        "{}\n{}\n",
        printable(&0u32.to_ne_bytes()),
        printable(&(last + 1).to_ne_bytes())
    ));
    let text = out.with_extension("txt");
    std::fs::write(&text, input).unwrap();
    run_ok(
        Command::new("db5.3_load")
            .args(["-T", "-t", "hash", "-c", "db_pagesize=512", "-f"])
            .arg(&text)
            .arg(out),
    );
}

#[test]
fn an_amazon_linux_2_berkeley_db_packages_file_lists_what_rpm_lists() {
    if !tools() || !require_tool("sqlite3") || !require_tool("db5.3_load") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let rpms = build_rpms(&work.path().join("top"));
    let dbpath = work.path().join("db");
    rpm_database(&dbpath, &rpms);
    let rows = rpm_qa(&dbpath, None);
    let bdb = work.path().join("bdb");
    std::fs::create_dir_all(&bdb).unwrap();
    bdb_packages(&dbpath.join("rpmdb.sqlite"), &bdb.join("Packages"));
    // rpm's own read-only bdb backend reads the file as rpm -qa would on Amazon Linux 2.
    assert_eq!(rpm_qa(&bdb, Some("bdb_ro")), rows);

    let p = os_project(
        "al2",
        &[(
            "root/etc/os-release",
            "NAME=\"Amazon Linux\"\nVERSION=\"2\"\nID=\"amzn\"\nVERSION_ID=\"2\"\n",
        )],
    );
    p.copy_in(&bdb.join("Packages"), "root/var/lib/rpm/Packages");
    let out = p.cache.path().join("out");
    let sbom = p.cache.path().join("sbom.spdx.json");
    p.build_ok(&[
        "--sbom",
        sbom.to_str().unwrap(),
        "--output",
        &format!("oci:{}:v1", out.display()),
    ]);
    let listed = inspect_rpm(&p, &format!("oci:{}:v1", out.display()), "/var/lib/rpm/Packages");
    assert_eq!(listed, expected_inspect(&rows));
    crate::sbom::validate(&sbom);
    let doc: Value = serde_json::from_slice(&std::fs::read(&sbom).unwrap()).unwrap();
    let rpm_purls = crate::sbom::purls(&doc)
        .into_iter()
        .filter(|p| p.starts_with("pkg:rpm/amzn/"))
        .count();
    assert_eq!(rpm_purls, rows.len());

    // The same file cut short anywhere: an error naming it, never a panic.
    let bytes = std::fs::read(bdb.join("Packages")).unwrap();
    let cut = work.path().join("cut");
    std::fs::create_dir_all(cut.join("var/lib/rpm")).unwrap();
    for len in (0..bytes.len()).step_by(97) {
        std::fs::write(cut.join("var/lib/rpm/Packages"), &bytes[..len]).unwrap();
        let e = lambda_img::rpmdb::read_roots(&[cut.as_path()]).expect_err(&format!("cut at {len} bytes"));
        assert!(e.to_string().starts_with("/var/lib/rpm/Packages: "), "{e}");
    }
}

/// An RPM `python3-inrpm-1:2.0-3` that installs a Python distribution's
/// `dist-info` (as Amazon Linux's python3-* packages do), added to the
/// repository at `repo`.
fn python_rpm(top: &Path, repo: &Path) {
    let spec = top.join("python3-inrpm.spec");
    std::fs::write(
        &spec,
        "Name: python3-inrpm\nEpoch: 1\nVersion: 2.0\nRelease: 3\nSummary: a Python package as an RPM\n\
         License: MIT\nBuildArch: noarch\nAutoReqProv: no\n\n%description\nA dist-info inside an RPM.\n\n\
         %install\nmkdir -p %{buildroot}/usr/lib/python3/site-packages/inrpm-2.0.dist-info\n\
         printf 'Metadata-Version: 2.1\\nName: inrpm\\nVersion: 2.0\\n' \
         > %{buildroot}/usr/lib/python3/site-packages/inrpm-2.0.dist-info/METADATA\n\n\
         %files\n/usr/lib/python3/site-packages/inrpm-2.0.dist-info/METADATA\n",
    )
    .unwrap();
    rpmbuild(top, &spec, None);
    let rpm = "python3-inrpm-2.0-3.noarch.rpm";
    std::fs::copy(top.join("RPMS/noarch").join(rpm), repo.join(rpm)).unwrap();
    run_ok(Command::new("createrepo_c").arg(repo));
}

/// The rpm database files in the layer `layer` (a report entry) of the
/// layout at `dir`, written into `to` (a `--dbpath` for the host's rpm).
fn rpm_files_of_layer(dir: &Path, layer: &Value, to: &Path) -> Vec<String> {
    let digest = layer["digest"].as_str().unwrap().trim_start_matches("sha256:");
    let blob = std::fs::File::open(dir.join("blobs/sha256").join(digest)).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(blob));
    std::fs::create_dir_all(to).unwrap();
    let mut found = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        if let Some(name) = path
            .strip_prefix("var/lib/rpm/")
            .filter(|n| n.starts_with("rpmdb.sqlite"))
        {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
            std::fs::write(to.join(name), &bytes).unwrap();
            found.push(format!("{name} ({} bytes)", bytes.len()));
        }
    }
    found
}

/// `[system]` with dnf on the dnf-capable test base (tests/it/system_rpm.rs):
/// the packages the build reports, `inspect` and the SBOM all come from the
/// database dnf left in the system layer (with its write-ahead log), and
/// agree with the host's rpm reading that same database; the SBOM lists the
/// installed RPM once, as an OS package beside the base's dpkg packages.
#[test]
fn a_system_layers_rpm_packages_are_in_inspect_and_the_sbom_once() {
    if !tools() || !require_tool("createrepo_c") || !require_tool("python3") {
        return;
    }
    let Some(base) = crate::support::debian_base::dnf_base() else {
        return;
    };
    let repos = tempfile::tempdir().unwrap();
    let top = tempfile::tempdir().unwrap();
    crate::system_rpm::build_rpm(top.path(), "1.0", &repos.path().join("1"));
    python_rpm(top.path(), &repos.path().join("1"));
    let server = crate::system_rpm::StaticServer::start(repos.path());
    let p = Project::new(
        &format!(
            "[function]\nname = \"rpm-sbom\"\nruntime = \"provided.al2023\"\n\n[base]\nimage = \"{base}\"\n\n\
             [system]\npackages = [\"hello-lambda-img\", \"python3-inrpm\"]\nreleasever = \"1\"\n\
             repositories = [\"http://127.0.0.1:{}/$releasever/\"]\n\n\
             [code]\nsources = []\n\n[image]\nentrypoint = [\"/usr/bin/dash\"]\n",
            server.port
        ),
        &[],
    );
    let out = p.join("out");
    let sbom = p.join("sbom.spdx.json");
    let built = p.build_ok(&[
        "--json",
        "--sbom",
        sbom.to_str().unwrap(),
        "--output",
        &format!("oci:{}:fn", out.display()),
    ]);
    drop(server);
    let report: Value = serde_json::from_str(&stdout(&built)).unwrap();
    let reported = report["system_packages"].clone();
    assert_eq!(
        reported,
        serde_json::json!([
            {"name": "hello-lambda-img", "version": "1.0-1", "arch": "noarch"},
            {"name": "python3-inrpm", "version": "1:2.0-3", "arch": "noarch"}
        ]),
        "{report:#}"
    );

    // The host's rpm reads the database the system layer holds.
    let dbpath = tempfile::tempdir().unwrap();
    let files = rpm_files_of_layer(&out, &crate::system_rpm::system_layer(&built), dbpath.path());
    assert!(files.iter().any(|f| f.starts_with("rpmdb.sqlite ")), "{files:?}");
    let rows = rpm_qa(dbpath.path(), None);

    // The topmost database is rpm's (the base's dpkg status is below it).
    let listed = inspect_rpm(
        &p,
        &format!("oci:{}:fn", out.display()),
        "/var/lib/rpm/rpmdb.sqlite",
    );
    assert_eq!(
        listed,
        rpm_qa_evr(dbpath.path()),
        "inspect lists what rpm -qa lists (layer files: {files:?})"
    );

    crate::sbom::validate(&sbom);
    let doc: Value = serde_json::from_slice(&std::fs::read(&sbom).unwrap()).unwrap();
    let named: Vec<&Value> = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == "hello-lambda-img")
        .collect();
    assert_eq!(named.len(), 1, "listed once: {named:#?}");
    let purls = crate::sbom::purls(&doc);
    assert!(
        purls.contains(
            &"pkg:rpm/debian/hello-lambda-img@1.0-1?arch=noarch&upstream=hello-lambda-img-1.0-1.src.rpm"
                .to_string()
        ),
        "{purls:?}"
    );
    let rpms = purls.iter().filter(|p| p.starts_with("pkg:rpm/")).count();
    assert_eq!(rpms, rows.iter().filter(|r| r[0] != "gpg-pubkey").count());
    // The system layer is read like a base: its RPM's dist-info is not a second package.
    assert!(
        purls.contains(
            &"pkg:rpm/debian/python3-inrpm@2.0-3?arch=noarch&epoch=1&upstream=python3-inrpm-2.0-3.src.rpm"
                .to_string()
        ),
        "{purls:?}"
    );
    assert!(!purls.iter().any(|p| p.starts_with("pkg:pypi/")), "{purls:?}");
    // The base's dpkg packages are still there (dnf itself among them), each once.
    let dnf: Vec<&String> = purls
        .iter()
        .filter(|p| p.starts_with("pkg:deb/debian/dnf@"))
        .collect();
    assert_eq!(dnf.len(), 1, "{purls:?}");
}
