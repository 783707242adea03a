//! Each package manager's command lines: detection in a root filesystem,
//! the install (non-interactive, no weak dependencies, no docs), the
//! repository files that replace the base's for the install, and the query
//! that lists what is installed.

use std::path::Path;

use crate::manifest::{PackageManager, SystemModel};

/// Where the generated repository files are bound inside the sandbox (under
/// /tmp, a tmpfs: nothing of it reaches the layer).
pub const CONFIG_DIR: &str = "/tmp/lambda-img-system";

/// The first manager found in `root` (a materialized base), in
/// [`PackageManager::ALL`] order.
pub fn detect(root: &Path) -> Option<PackageManager> {
    PackageManager::ALL.into_iter().find(|m| {
        ["usr/bin", "bin", "usr/sbin", "sbin"]
            .iter()
            .any(|dir| std::fs::symlink_metadata(root.join(dir).join(m.program())).is_ok())
    })
}

/// One program run of the install, in order (apt-get needs an index update first).
pub fn install_steps(manager: PackageManager, system: &SystemModel) -> Vec<Vec<String>> {
    let owned = |args: &[&str]| args.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let packages = system.packages.iter().cloned();
    match manager {
        PackageManager::AptGet => {
            let mut options = owned(&["-o", "APT::Sandbox::User=root"]);
            if !system.repositories.is_empty() {
                options.extend(owned(&[
                    "-o",
                    &format!("Dir::Etc::SourceList={CONFIG_DIR}/sources.list"),
                    "-o",
                    &format!("Dir::Etc::SourceParts={CONFIG_DIR}/sources.list.d"),
                ]));
            }
            let mut update = owned(&["apt-get", "update", "--error-on=any"]);
            update.extend(options.iter().cloned());
            let mut install = owned(&["apt-get", "install", "-y", "--no-install-recommends"]);
            install.extend(options);
            install.push("--".into());
            install.extend(packages);
            vec![update, install]
        }
        PackageManager::Dnf | PackageManager::Microdnf | PackageManager::Yum => {
            let mut argv = vec![manager.program().to_string(), "install".into(), "-y".into()];
            argv.extend(owned(&["--setopt=install_weak_deps=False", "--nodocs"]));
            if manager != PackageManager::Microdnf {
                // microdnf keeps no cache it would need this for.
                argv.push("--setopt=keepcache=False".into());
            }
            if let Some(rv) = &system.releasever {
                argv.push(format!("--releasever={rv}"));
            }
            if !system.repositories.is_empty() {
                argv.push(format!("--setopt=reposdir={CONFIG_DIR}"));
            }
            argv.push("--".into());
            argv.extend(packages);
            vec![argv]
        }
        PackageManager::Apk => {
            let mut argv = owned(&["apk", "add", "--no-cache", "--no-progress"]);
            if !system.repositories.is_empty() {
                argv.push(format!("--repositories-file={CONFIG_DIR}/repositories"));
            }
            argv.push("--".into());
            argv.extend(packages);
            vec![argv]
        }
    }
}

/// The repository files `repositories` become (file name, contents), for [`CONFIG_DIR`].
pub fn repository_files(manager: PackageManager, repositories: &[String]) -> Vec<(String, String)> {
    if repositories.is_empty() {
        return Vec::new();
    }
    match manager {
        PackageManager::AptGet => {
            let lines: String = repositories.iter().map(|r| format!("deb {r}\n")).collect();
            vec![("sources.list".into(), lines)]
        }
        PackageManager::Dnf | PackageManager::Microdnf | PackageManager::Yum => {
            let mut text = String::new();
            for (i, url) in repositories.iter().enumerate() {
                text.push_str(&format!(
                    "[lambda-img-{i}]\nname=lambda-img repository {i}\nbaseurl={url}\nenabled=1\n\n"
                ));
            }
            vec![("lambda-img.repo".into(), text)]
        }
        PackageManager::Apk => {
            let lines: String = repositories.iter().map(|r| format!("{r}\n")).collect();
            vec![("repositories".into(), lines)]
        }
    }
}

/// The program that lists installed packages, one `NAME\tVERSION\tARCH` line each
/// (apk: its database file, parsed by `packages::parse_apk`).
pub fn query(manager: PackageManager) -> Vec<String> {
    let argv: &[&str] = match manager {
        PackageManager::AptGet => &[
            "dpkg-query",
            "-W",
            "-f=${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\n",
        ],
        PackageManager::Dnf | PackageManager::Microdnf | PackageManager::Yum => &[
            "rpm",
            "-qa",
            "--qf",
            "ii \t%{NAME}\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\t%{ARCH}\n",
        ],
        PackageManager::Apk => &["cat", "/lib/apk/db/installed"],
    };
    argv.iter().map(|a| a.to_string()).collect()
}

/// What the manager's output says went wrong, when it is one of the
/// failures a user can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    NoSuchPackage,
    Unreachable,
}

/// Reads a failed install's output for the two failures worth naming.
pub fn classify(output: &str) -> Option<Failure> {
    const MISSING: &[&str] = &[
        "Unable to locate package",
        "has no installation candidate",
        "No match for argument",
        "Unable to find a match",
        "No package matches",
        "(no such package)",
    ];
    const UNREACHABLE: &[&str] = &[
        "Failed to fetch",
        "Could not resolve",
        "Temporary failure resolving",
        "Could not connect",
        "Failed to download metadata",
        "Cannot download repomd.xml",
        "Curl error",
        "Cannot prepare internal mirrorlist",
        "network error",
        "temporary error (try again later)",
    ];
    // Unreachable first: apt-get says both when the index could not be fetched.
    if UNREACHABLE.iter().any(|p| output.contains(p)) {
        Some(Failure::Unreachable)
    } else if MISSING.iter().any(|p| output.contains(p)) {
        Some(Failure::NoSuchPackage)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn system(packages: &[&str], repositories: &[&str], releasever: Option<&str>) -> SystemModel {
        SystemModel {
            packages: packages.iter().map(|p| p.to_string()).collect(),
            manager: None,
            repositories: repositories.iter().map(|r| r.to_string()).collect(),
            releasever: releasever.map(String::from),
        }
    }

    #[test]
    fn commands_are_non_interactive_without_weak_dependencies_or_docs() {
        let apt = install_steps(PackageManager::AptGet, &system(&["jq"], &[], None));
        assert_eq!(apt[0][..3], ["apt-get", "update", "--error-on=any"]);
        assert!(apt[1].contains(&"--no-install-recommends".to_string()));
        assert_eq!(apt[1].last().map(String::as_str), Some("jq"));

        let dnf = install_steps(
            PackageManager::Dnf,
            &system(
                &["git", "poppler-utils"],
                &["http://127.0.0.1:1/repo"],
                Some("2023.6"),
            ),
        );
        assert_eq!(dnf.len(), 1);
        for arg in [
            "-y",
            "--setopt=install_weak_deps=False",
            "--nodocs",
            "--releasever=2023.6",
            "--setopt=reposdir=/tmp/lambda-img-system",
        ] {
            assert!(dnf[0].contains(&arg.to_string()), "{arg} in {:?}", dnf[0]);
        }
        assert_eq!(dnf[0][dnf[0].len() - 3..], ["--", "git", "poppler-utils"]);
    }

    #[test]
    fn repositories_replace_the_bases_for_the_install() {
        let files = repository_files(PackageManager::Dnf, &["http://127.0.0.1:8/a".into()]);
        assert_eq!(files[0].0, "lambda-img.repo");
        assert!(files[0].1.contains("baseurl=http://127.0.0.1:8/a\n"));
        let apt = repository_files(
            PackageManager::AptGet,
            &["http://snapshot.debian.org/archive/debian/20241010T000000Z bookworm main".into()],
        );
        assert_eq!(
            apt[0].1,
            "deb http://snapshot.debian.org/archive/debian/20241010T000000Z bookworm main\n"
        );
        let steps = install_steps(
            PackageManager::AptGet,
            &system(&["jq"], &["http://m bookworm main"], None),
        );
        assert!(
            steps[1].contains(&"Dir::Etc::SourceParts=/tmp/lambda-img-system/sources.list.d".to_string())
        );
        assert!(repository_files(PackageManager::Apk, &[]).is_empty());
    }

    #[test]
    fn failures_are_classified_from_the_managers_words() {
        assert_eq!(
            classify("E: Unable to locate package nosuch"),
            Some(Failure::NoSuchPackage)
        );
        assert_eq!(
            classify("No match for argument: nosuch\nError: Unable to find a match: nosuch"),
            Some(Failure::NoSuchPackage)
        );
        assert_eq!(
            classify("E: Failed to fetch http://127.0.0.1:9/dists/bookworm/InRelease  Could not connect"),
            Some(Failure::Unreachable)
        );
        assert_eq!(
            classify("Error: Failed to download metadata for repo 'x'"),
            Some(Failure::Unreachable)
        );
        assert_eq!(classify("dpkg: error processing package"), None);
    }
}
