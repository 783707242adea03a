//! The validated function model: what the rest of the program reads.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use crate::image::{Architecture, MediaFamily};

/// A function's runtime, with the version the dependency installers need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Runtime {
    /// `python3.<minor>`
    Python { minor: u8 },
    /// `nodejs<major>.x`
    Node { major: u8 },
    /// `java<major>`
    Java { major: u8 },
    /// `provided.al2023`: a custom runtime on Amazon Linux 2023.
    ProvidedAl2023,
    /// `provided.al2`
    ProvidedAl2,
    /// `none`: no language runtime; the image's entrypoint is the function.
    None,
}

/// Versions lambda-img knows, per family. Adding one is one number here.
pub const PYTHON_MINORS: &[u8] = &[9, 10, 11, 12, 13];
pub const NODE_MAJORS: &[u8] = &[18, 20, 22];
pub const JAVA_MAJORS: &[u8] = &[11, 17, 21];

impl Runtime {
    /// Parses a runtime name as Lambda spells it (`python3.12`, `nodejs20.x`,
    /// `java21`, `provided.al2023`, `provided.al2`) or `none`.
    pub fn parse(name: &str) -> Option<Runtime> {
        let num = |s: &str| {
            s.parse::<u8>()
                .ok()
                .filter(|_| !s.starts_with('0') && !s.starts_with('+'))
        };
        let rt = if let Some(minor) = name.strip_prefix("python3.") {
            let minor = num(minor)?;
            PYTHON_MINORS
                .contains(&minor)
                .then_some(Runtime::Python { minor })?
        } else if let Some(rest) = name.strip_prefix("nodejs") {
            let major = num(rest.strip_suffix(".x")?)?;
            NODE_MAJORS.contains(&major).then_some(Runtime::Node { major })?
        } else if let Some(major) = name.strip_prefix("java") {
            let major = num(major)?;
            JAVA_MAJORS.contains(&major).then_some(Runtime::Java { major })?
        } else {
            match name {
                "provided.al2023" => Runtime::ProvidedAl2023,
                "provided.al2" => Runtime::ProvidedAl2,
                "none" => Runtime::None,
                _ => return None,
            }
        };
        Some(rt)
    }

    /// Every runtime name [`Runtime::parse`] accepts, for messages and docs.
    pub fn known_names() -> Vec<String> {
        let mut names: Vec<String> = PYTHON_MINORS.iter().map(|m| format!("python3.{m}")).collect();
        names.extend(NODE_MAJORS.iter().map(|m| format!("nodejs{m}.x")));
        names.extend(JAVA_MAJORS.iter().map(|m| format!("java{m}")));
        names.extend(["provided.al2023", "provided.al2", "none"].map(String::from));
        names
    }

    /// Whether Lambda needs a handler string for this runtime.
    pub fn needs_handler(self) -> bool {
        matches!(
            self,
            Runtime::Python { .. } | Runtime::Node { .. } | Runtime::Java { .. }
        )
    }

    /// A custom runtime (`provided.*`) or none: the image brings its own bootstrap.
    pub fn is_custom(self) -> bool {
        matches!(
            self,
            Runtime::ProvidedAl2023 | Runtime::ProvidedAl2 | Runtime::None
        )
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Runtime::Python { minor } => write!(f, "python3.{minor}"),
            Runtime::Node { major } => write!(f, "nodejs{major}.x"),
            Runtime::Java { major } => write!(f, "java{major}"),
            Runtime::ProvidedAl2023 => f.write_str("provided.al2023"),
            Runtime::ProvidedAl2 => f.write_str("provided.al2"),
            Runtime::None => f.write_str("none"),
        }
    }
}

/// Whether a source path was a file or a directory when the manifest was loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    File,
    Dir,
}

/// A layer or code source, resolved against the manifest's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePath {
    /// Absolute and canonical (symlinks resolved).
    pub path: PathBuf,
    pub kind: SourceKind,
}

/// One `[[layer]]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerModel {
    pub name: String,
    pub sources: Vec<SourcePath>,
    /// Absolute path in the image, as written (a trailing `/` is kept).
    pub destination: String,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    /// A mode forced on regular files, 0..=0o777.
    pub mode: Option<u32>,
}

/// `[code]`, validated, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeModel {
    /// Empty when the manifest sets `sources = []`: no code layer.
    pub sources: Vec<SourcePath>,
    pub destination: String,
    pub include: Vec<String>,
    /// The user's excludes; the plan adds the default ones when `default_excludes`.
    pub exclude: Vec<String>,
    pub default_excludes: bool,
    /// Absolute path of a `.dockerignore`-syntax file, if one applies.
    pub ignore_file: Option<PathBuf>,
}

/// `[image]`, validated. `None` means "keep the base image's value".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageSettings {
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub workdir: Option<String>,
    /// In file order; merged over the base's env, the manifest winning.
    pub env: Vec<(String, String)>,
    pub labels: BTreeMap<String, String>,
    pub format: Option<MediaFamily>,
}

/// What the dependency layers are made from, by runtime family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DependencySet {
    /// `pip install -r requirements` for the target platform.
    Python { requirements: PathBuf },
    /// `npm ci` of package.json + package-lock.json for the target platform.
    Node {
        package_json: PathBuf,
        package_lock: PathBuf,
    },
    /// Jar files (directories are searched for `*.jar`), copied as they are.
    Java { jars: Vec<SourcePath> },
    /// A custom runtime's bootstrap executable.
    Bootstrap { path: PathBuf },
}

/// `[dependencies]`, validated, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DependenciesModel {
    pub set: DependencySet,
    /// Absolute image path the installed tree goes to (`/var/task`,
    /// `/var/task/lib` for jars, `/var/runtime/bootstrap` for a bootstrap).
    pub destination: String,
    /// Number of dependency layers, 1..=[`MAX_DEPENDENCY_LAYERS`].
    pub split: u32,
}

/// The most dependency layers `split` may ask for: every layer adds about 200
/// bytes to the manifest (budget 25,400 bytes, so about 120 layers in all,
/// base layers included) and overlay runtimes stop at 127 layers.
pub const MAX_DEPENDENCY_LAYERS: u32 = 64;

/// `[function]` keys for `run`; `None` means Lambda's default.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecutionSettings {
    pub memory: Option<u32>,
    pub timeout: Option<u32>,
    pub ephemeral_storage: Option<u32>,
    /// In file order.
    pub environment: Vec<(String, String)>,
}

/// A validated `lambda-img.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionModel {
    pub name: String,
    pub runtime: Runtime,
    pub handler: Option<String>,
    pub architecture: Architecture,
    /// The base reference exactly as written (`scratch`, `oci:...`, ...).
    pub base: String,
    pub layers: Vec<LayerModel>,
    pub code: CodeModel,
    pub image: ImageSettings,
    /// `None`: no dependency layer (disabled, or no dependency files found).
    pub dependencies: Option<DependenciesModel>,
    /// `[check]`: rules allowed, denied, strict.
    pub check: crate::rules::RulePolicy,
    /// `[base] repair`: rewrite base layers with hard links or missing parents.
    pub base_repair: bool,
    /// How `run` executes the function.
    pub execution: ExecutionSettings,
    /// `[cache]`: the registry shared as a layer cache.
    pub cache: super::CacheSettings,
    /// `[system]`: packages installed by the base's package manager.
    pub system: Option<super::SystemModel>,
    /// The manifest's directory, absolute and canonical: relative paths resolve here.
    pub project_dir: PathBuf,
    /// The manifest file as named to the user (used in messages).
    pub manifest_path: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_names_round_trip() {
        for name in Runtime::known_names() {
            let rt = Runtime::parse(&name).unwrap_or_else(|| panic!("{name} should parse"));
            assert_eq!(rt.to_string(), name);
        }
        assert_eq!(Runtime::parse("python3.12"), Some(Runtime::Python { minor: 12 }));
        assert_eq!(Runtime::parse("nodejs20.x"), Some(Runtime::Node { major: 20 }));
        for bad in [
            "python3.8",
            "python3.012",
            "python2.7",
            "nodejs20",
            "java8",
            "provided",
            "",
            "Python3.12",
        ] {
            assert_eq!(Runtime::parse(bad), None, "{bad}");
        }
    }
}
