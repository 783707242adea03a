//! `[dependencies]` → [`DependenciesModel`]: per-runtime defaults, and which
//! keys fit which runtime.

use std::path::{Path, PathBuf};

use super::model::{DependenciesModel, DependencySet, MAX_DEPENDENCY_LAYERS, Runtime, SourceKind};
use super::schema::{DependenciesTable, SpannedString};
use super::validate::Checker;

pub const DEFAULT_REQUIREMENTS: &str = "requirements.txt";
pub const DEFAULT_PACKAGE_JSON: &str = "package.json";
pub const DEFAULT_PACKAGE_LOCK: &str = "package-lock.json";
pub const DEFAULT_JARS: &str = "target/dependency";
pub const BOOTSTRAP_PATH: &str = "/var/runtime/bootstrap";

/// Validates `[dependencies]` for `rt`. `None`: no dependency layer.
///
/// On by default: without the table, the runtime's dependency file in the
/// project (requirements.txt; package.json with its package-lock.json;
/// target/dependency jars) becomes the dependency layer, as an empty table
/// would. `enabled = false` turns it off (a project that fills a `[[layer]]`
/// with its own tools). Only an explicit table insists on a Node lockfile:
/// without one, a package.json alone is left to the project.
pub(super) fn check(
    c: &mut Checker,
    rt: Runtime,
    t: Option<&DependenciesTable>,
) -> Option<DependenciesModel> {
    let implicit = DependenciesTable::default();
    let explicit = t.is_some();
    let t = t.unwrap_or(&implicit);
    if !explicit && matches!(rt, Runtime::Node { .. }) && !c.project_dir.join(DEFAULT_PACKAGE_LOCK).is_file()
    {
        return None;
    }
    if t.enabled == Some(false) {
        return None;
    }
    // Keys that belong to another runtime are mistakes, not silent no-ops.
    let fits: &[&str] = match rt {
        Runtime::Python { .. } => &["requirements"],
        Runtime::Node { .. } => &["package_json", "package_lock"],
        Runtime::Java { .. } => &["jars"],
        _ => &["bootstrap"],
    };
    let given = [
        ("requirements", t.requirements.as_ref().map(|s| s.span())),
        ("package_json", t.package_json.as_ref().map(|s| s.span())),
        ("package_lock", t.package_lock.as_ref().map(|s| s.span())),
        ("jars", t.jars.as_ref().map(|s| s.span())),
        ("bootstrap", t.bootstrap.as_ref().map(|s| s.span())),
    ];
    for (key, span) in given {
        if let Some(span) = span.filter(|_| !fits.contains(&key)) {
            c.report(
                span,
                format!("dependencies.{key}"),
                format!(
                    "dependencies.{key} does not apply to runtime {rt}: it takes {}",
                    fits.iter()
                        .map(|k| format!("dependencies.{k}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
    }

    let split = match &t.split {
        None => 1,
        Some(s) => {
            let n = *s.get_ref();
            if n < 1 || n > i64::from(MAX_DEPENDENCY_LAYERS) {
                c.report(
                    s.span(),
                    "dependencies.split",
                    format!(
                        "dependencies.split = {n} is out of range: use 1 to {MAX_DEPENDENCY_LAYERS}; every layer adds about 200 bytes to the manifest, whose budget is 25,400 bytes (about 120 layers in all, base layers included), and overlay runtimes stop at 127 layers"
                    ),
                );
            }
            n.clamp(1, i64::from(MAX_DEPENDENCY_LAYERS)) as u32
        }
    };
    if split > 1
        && let (
            Runtime::Java { .. } | Runtime::ProvidedAl2 | Runtime::ProvidedAl2023 | Runtime::None,
            Some(s),
        ) = (rt, &t.split)
    {
        c.report(
            s.span(),
            "dependencies.split",
            format!("dependencies.split applies to python and nodejs runtimes only, not {rt}: remove it"),
        );
    }

    let default_destination = match rt {
        Runtime::Java { .. } => "/var/task/lib",
        Runtime::Python { .. } | Runtime::Node { .. } => "/var/task",
        _ => BOOTSTRAP_PATH,
    };
    let destination = match &t.destination {
        Some(d) => c.image_path(d, "dependencies.destination", "dependencies.destination"),
        None => default_destination.to_string(),
    };

    let set = match rt {
        Runtime::Python { .. } => {
            let requirements = file(
                c,
                t.requirements.as_ref(),
                DEFAULT_REQUIREMENTS,
                "dependencies.requirements",
            )?;
            DependencySet::Python { requirements }
        }
        Runtime::Node { .. } => {
            let package_json = file(
                c,
                t.package_json.as_ref(),
                DEFAULT_PACKAGE_JSON,
                "dependencies.package_json",
            )?;
            let dir = package_json.parent().unwrap_or(Path::new("/")).to_path_buf();
            let package_lock = match &t.package_lock {
                Some(_) => file(
                    c,
                    t.package_lock.as_ref(),
                    DEFAULT_PACKAGE_LOCK,
                    "dependencies.package_lock",
                )?,
                None => {
                    let lock = dir.join(DEFAULT_PACKAGE_LOCK);
                    if !lock.is_file() {
                        let span = t.package_json.as_ref().map(|s| s.span()).unwrap_or(0..0);
                        c.report(
                            span,
                            "dependencies.package_lock",
                            format!(
                                "{} has no package-lock.json beside it: npm ci installs from the lock; run `npm install --package-lock-only`, or set [dependencies] enabled = false",
                                package_json.display()
                            ),
                        );
                        return None;
                    }
                    lock
                }
            };
            DependencySet::Node {
                package_json,
                package_lock,
            }
        }
        Runtime::Java { .. } => {
            let jars = match &t.jars {
                Some(list) => list
                    .get_ref()
                    .iter()
                    .filter_map(|s| c.source(s, "dependencies.jars", "dependencies.jars"))
                    .collect(),
                None => {
                    let dir = c.project_dir.join(DEFAULT_JARS);
                    if !dir.is_dir() {
                        return None;
                    }
                    vec![super::model::SourcePath {
                        path: std::fs::canonicalize(&dir).unwrap_or(dir),
                        kind: SourceKind::Dir,
                    }]
                }
            };
            if jars.is_empty() {
                return None;
            }
            DependencySet::Java { jars }
        }
        _ => {
            // No default: a `bootstrap` in the project already ships in the code layer.
            let s = t.bootstrap.as_ref()?;
            let src = c.source(s, "dependencies.bootstrap", "dependencies.bootstrap")?;
            if src.kind != SourceKind::File {
                c.report(
                    s.span(),
                    "dependencies.bootstrap",
                    format!(
                        "dependencies.bootstrap \"{}\" is a directory: name the executable file",
                        s.get_ref()
                    ),
                );
                return None;
            }
            DependencySet::Bootstrap { path: src.path }
        }
    };
    Some(DependenciesModel {
        set,
        destination,
        split,
    })
}

/// A dependency file: the one named (which must exist), else the default when
/// it exists, else `None` (no dependency layer).
fn file(c: &mut Checker, given: Option<&SpannedString>, default: &str, key: &str) -> Option<PathBuf> {
    match given {
        Some(s) => {
            let src = c.source(s, key, key)?;
            if src.kind != SourceKind::File {
                c.report(
                    s.span(),
                    key,
                    format!("{key} \"{}\" is a directory: name the file", s.get_ref()),
                );
                return None;
            }
            Some(src.path)
        }
        None => {
            let p = c.project_dir.join(default);
            p.is_file().then(|| std::fs::canonicalize(&p).unwrap_or(p))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::manifest::{DependenciesModel, DependencySet, ManifestError, SourceKind, parse_str};

    fn head(runtime: &str) -> String {
        format!(
            "[function]\nname = \"f\"\nruntime = \"{runtime}\"\nhandler = \"app.handler\"\n[base]\nimage = \"scratch\"\n[image]\nentrypoint = [\"/x\"]\n"
        )
    }

    fn parse(
        text: &str,
        files: &[&str],
    ) -> (
        tempfile::TempDir,
        Result<Option<DependenciesModel>, ManifestError>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "x").unwrap();
        }
        let r = parse_str(text, Path::new("lambda-img.toml"), dir.path()).map(|m| m.dependencies);
        (dir, r)
    }

    fn error(text: &str, files: &[&str]) -> String {
        parse(text, files).1.unwrap_err().to_string()
    }

    #[test]
    fn defaults_follow_the_runtime_and_the_files_present() {
        let with_table = |rt: &str| format!("{}[dependencies]\n", head(rt));
        let (dir, m) = parse(&with_table("python3.12"), &["requirements.txt"]);
        let root = std::fs::canonicalize(dir.path()).unwrap();
        assert_eq!(
            m.unwrap(),
            Some(DependenciesModel {
                set: DependencySet::Python {
                    requirements: root.join("requirements.txt")
                },
                destination: "/var/task".into(),
                split: 1,
            })
        );
        assert_eq!(
            parse(&with_table("python3.12"), &[]).1.unwrap(),
            None,
            "no file, no layer"
        );
        let (dir, implicit) = parse(&head("python3.12"), &["requirements.txt"]);
        assert_eq!(
            implicit.unwrap().map(|m| m.set),
            Some(DependencySet::Python {
                requirements: std::fs::canonicalize(dir.path())
                    .unwrap()
                    .join("requirements.txt")
            }),
            "no table: the same defaults as an empty table"
        );
        let no_table_node = head("nodejs20.x").replace("app.handler", "index.handler");
        assert!(matches!(
            parse(&no_table_node, &["package.json", "package-lock.json"])
                .1
                .unwrap()
                .unwrap()
                .set,
            DependencySet::Node { .. }
        ));
        assert_eq!(
            parse(&no_table_node, &["package.json"]).1.unwrap(),
            None,
            "no table and no lock: nothing, and no error"
        );
        assert_eq!(
            parse(&head("provided.al2023"), &["bootstrap"]).1.unwrap(),
            None,
            "a custom runtime has no default"
        );
        let off = format!("{}[dependencies]\nenabled = false\n", head("python3.12"));
        assert_eq!(parse(&off, &["requirements.txt"]).1.unwrap(), None);

        let node = with_table("nodejs20.x").replace("app.handler", "index.handler");
        let m = parse(&node, &["package.json", "package-lock.json"])
            .1
            .unwrap()
            .unwrap();
        assert!(matches!(m.set, DependencySet::Node { .. }));
        let java = with_table("java21").replace("app.handler", "example.H::handle");
        let m = parse(&java, &["target/dependency/a.jar"]).1.unwrap().unwrap();
        let DependencySet::Java { jars } = &m.set else {
            panic!()
        };
        assert_eq!(
            (jars[0].kind, m.destination.as_str()),
            (SourceKind::Dir, "/var/task/lib")
        );
        let custom = format!(
            "{}[dependencies]\nbootstrap = \"bin/boot\"\n",
            head("provided.al2023")
        );
        let m = parse(&custom, &["bin/boot"]).1.unwrap().unwrap();
        assert_eq!(m.destination, "/var/runtime/bootstrap");
    }

    #[test]
    fn mistakes_are_named_at_their_line() {
        let node = head("nodejs20.x").replace("app.handler", "index.handler");
        let err = error(&format!("{node}[dependencies]\n"), &["package.json"]);
        assert!(
            err.contains("package-lock.json") && err.contains("npm install --package-lock-only"),
            "{err}"
        );
        let wrong = format!("{node}[dependencies]\nrequirements = \"r.txt\"\n");
        let err = error(&wrong, &["package.json", "package-lock.json", "r.txt"]);
        assert!(
            err.contains("lambda-img.toml:10:") && err.contains("does not apply to runtime nodejs20.x"),
            "{err}"
        );
        let missing = format!(
            "{}[dependencies]\nrequirements = \"reqs/prod.txt\"\n",
            head("python3.12")
        );
        let err = error(&missing, &[]);
        assert!(
            err.contains("lambda-img.toml:10:") && err.contains("reqs/prod.txt"),
            "{err}"
        );
        let split = format!("{}[dependencies]\nsplit = 0\n", head("python3.12"));
        assert!(error(&split, &["requirements.txt"]).contains("1 to 64"));
        let arm = format!(
            "{}[dependencies]\nbootstrap = \"boot\"\nsplit = 2\n",
            head("provided.al2023")
        );
        assert!(error(&arm, &["boot"]).contains("python and nodejs runtimes only"));
        let typo = format!("{}[dependencies]\nrequirement = \"r.txt\"\n", head("python3.12"));
        assert!(error(&typo, &[]).contains("unknown key"));
    }
}
