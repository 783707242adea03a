use std::path::Path;

use super::super::{ManifestError, parse_str};
use super::{PackageManager, SystemModel};

const HEAD: &str =
    "[function]\nname = \"f\"\nruntime = \"provided.al2023\"\n\n[base]\nimage = \"oci:base\"\n\n[system]\n";

fn parse(system: &str) -> Result<Option<SystemModel>, ManifestError> {
    let dir = tempfile::tempdir().unwrap();
    parse_str(
        &format!("{HEAD}{system}"),
        Path::new("lambda-img.toml"),
        dir.path(),
    )
    .map(|m| m.system)
}

/// Each problem as `LINE:COL key: message`.
fn problems(system: &str) -> Vec<String> {
    match parse(system) {
        Ok(m) => panic!("expected problems, got {m:?}"),
        Err(e) => e
            .problems()
            .iter()
            .map(|p| {
                format!(
                    "{}:{} {}: {}",
                    p.line,
                    p.col,
                    p.key.clone().unwrap_or_default(),
                    p.message
                )
            })
            .collect(),
    }
}

#[test]
fn a_full_system_table_gives_the_model() {
    let m = parse(
        "packages = [\"git\", \"poppler-utils\"]\nmanager = \"dnf\"\nreleasever = \"2023.6.20241010\"\n\
         repositories = [\"https://mirror.example/al2023/\"]\n",
    )
    .unwrap();
    assert_eq!(
        m,
        Some(SystemModel {
            packages: vec!["git".into(), "poppler-utils".into()],
            manager: Some(PackageManager::Dnf),
            repositories: vec!["https://mirror.example/al2023/".into()],
            releasever: Some("2023.6.20241010".into()),
        })
    );
    assert_eq!(
        parse("packages = [\"jq\"]\nmanager = \"apt\"\n")
            .unwrap()
            .unwrap()
            .manager,
        Some(PackageManager::AptGet)
    );
}

#[test]
fn bad_values_are_named_at_their_line_and_column() {
    let ps = problems("packages = [\"jq\", \"-y\", \"a b\", \"jq\"]\n");
    assert_eq!(ps.len(), 3, "{ps:#?}");
    assert!(
        ps[0].starts_with("9:19 system.packages[1]: ") && ps[0].contains("option"),
        "{}",
        ps[0]
    );
    assert!(
        ps[1].starts_with("9:25 system.packages[2]: ") && ps[1].contains("whitespace"),
        "{}",
        ps[1]
    );
    assert!(
        ps[2].starts_with("9:32 system.packages[3]: ") && ps[2].contains("twice"),
        "{}",
        ps[2]
    );

    let ps = problems("packages = []\n");
    assert!(
        ps[0].starts_with("9:12 system.packages: ") && ps[0].contains("empty"),
        "{ps:?}"
    );

    let ps = problems("packages = [\"jq\"]\nmanager = \"pacman\"\n");
    assert!(
        ps[0].starts_with("10:11 system.manager: ") && ps[0].contains("dnf, microdnf, yum, apt-get, apk"),
        "{ps:?}"
    );

    let ps = problems("packages = [\"jq\"]\nrepositories = [\"mirror.internal/debian\"]\n");
    assert!(
        ps[0].starts_with("10:17 system.repositories[0]: ") && ps[0].contains("URL"),
        "{ps:?}"
    );

    let ps = problems("packages = [\"jq\"]\nmanager = \"apt-get\"\nreleasever = \"12\"\n");
    assert!(
        ps[0].starts_with("11:14 system.releasever: ") && ps[0].contains("snapshot URL"),
        "{ps:?}"
    );

    let ps = problems("packages = [\"jq\"]\nrelease = \"12\"\n");
    assert!(ps[0].contains("release"), "unknown keys are refused: {ps:?}");
}
