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
pub(super) fn check(
    c: &mut Checker,
    rt: Runtime,
    t: Option<&DependenciesTable>,
) -> Option<DependenciesModel> {
    if t.and_then(|t| t.enabled) == Some(false) {
        return None;
    }
    let empty = DependenciesTable {
        enabled: None,
        requirements: None,
        package_json: None,
        package_lock: None,
        jars: None,
        bootstrap: None,
        destination: None,
        split: None,
    };
    let t = t.unwrap_or(&empty);
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
