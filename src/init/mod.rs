//! `init`: writes a starter function project from the templates embedded in
//! the binary (templates/<runtime>/), with placeholders filled in.
//!
//! Every file is checked before any is written, so a refusal (existing files
//! without `force`) leaves the directory untouched; each file is written to a
//! temporary file beside it and renamed into place.

mod node_lock;
mod templates;

pub use node_lock::LockWriter;
pub use templates::{TemplateFile, files as template_files};

use std::fmt;
use std::path::{Path, PathBuf};

use crate::image::Architecture;

/// The runtimes `init` has a template for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateRuntime {
    Python312,
    Nodejs20,
    Java21,
    ProvidedAl2023,
}

impl TemplateRuntime {
    pub const ALL: [TemplateRuntime; 4] = [
        TemplateRuntime::Python312,
        TemplateRuntime::Nodejs20,
        TemplateRuntime::Java21,
        TemplateRuntime::ProvidedAl2023,
    ];

    /// Lambda's name for the runtime (`python3.12`), also the template's directory.
    pub fn lambda_name(self) -> &'static str {
        match self {
            TemplateRuntime::Python312 => "python3.12",
            TemplateRuntime::Nodejs20 => "nodejs20.x",
            TemplateRuntime::Java21 => "java21",
            TemplateRuntime::ProvidedAl2023 => "provided.al2023",
        }
    }

    pub fn parse(name: &str) -> Option<TemplateRuntime> {
        Self::ALL.into_iter().find(|r| r.lambda_name() == name)
    }

    /// The official AWS base image for this runtime.
    pub fn base(self) -> &'static BaseImage {
        BASES
            .iter()
            .find(|b| b.runtime == self)
            .expect("every runtime has a base in BASES")
    }
}

impl fmt::Display for TemplateRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.lambda_name())
    }
}

/// An official base image and the digest `init` pins it to.
#[derive(Debug, Clone, Copy)]
pub struct BaseImage {
    pub runtime: TemplateRuntime,
    /// Repository without tag, e.g. `public.ecr.aws/lambda/python`.
    pub repository: &'static str,
    pub tag: &'static str,
    /// The digest the tag had when it was recorded (see [`BASES`]).
    pub digest: Option<&'static str>,
    /// `None`: `digest` names the multi-architecture index. `Some(arch)`: it
    /// names that architecture's image only, so it is written for that
    /// architecture alone (another gets the tag, to be pinned).
    pub single_platform: Option<Architecture>,
}

impl BaseImage {
    /// `repository:tag@digest` for `arch` when a digest fits it, else `repository:tag`.
    pub fn reference_for(&self, arch: Architecture) -> String {
        match self.digest_for(arch) {
            Some(d) => format!("{}:{}@{d}", self.repository, self.tag),
            None => format!("{}:{}", self.repository, self.tag),
        }
    }

    /// The built-in digest, when it has an image for `arch`.
    pub fn digest_for(&self, arch: Architecture) -> Option<&'static str> {
        match self.single_platform {
            Some(only) if only != arch => None,
            _ => self.digest,
        }
    }
}

/// The bases `init` writes into lambda-img.toml, and how each digest was
/// obtained. This machine cannot reach ECR, so none was resolved here; each
/// is the digest of the tag as published on ECR Public and written down by
/// other public projects:
///
/// - python:3.12, java:21, provided:al2023: the multi-architecture index, as
///   pinned in public Dockerfiles (`FROM public.ecr.aws/lambda/...@sha256:...`,
///   which docker resolves to the index digest).
/// - nodejs:20: `sha256:b1d950b9...`, the `Docker-Content-Digest` ECR Public
///   answered for `GET /v2/lambda/nodejs/manifests/20` asked with only the
///   Docker V2.2 manifest media type accepted (a public project's
///   `get-lambda-bootstrap-digest.sh`). A registry asked that way answers
///   with the x86_64 image, not the index, so it is written for x86_64 only;
///   an arm64 project gets the tag and `init` (or `lambda-img pin`) pins it.
///
/// AWS republishes these tags about weekly, so a digest here is real but not
/// the newest: `init` resolves the tag again when the registry (or a
/// `--registry-mirror`) answers, and `lambda-img pin` moves it at any time.
pub const BASES: &[BaseImage] = &[
    BaseImage {
        runtime: TemplateRuntime::Python312,
        repository: "public.ecr.aws/lambda/python",
        tag: "3.12",
        digest: Some("sha256:0628ddc11919f85f4261517d356392dbbc6b3181568d87a376ae2e814464c230"),
        single_platform: None,
    },
    BaseImage {
        runtime: TemplateRuntime::Nodejs20,
        repository: "public.ecr.aws/lambda/nodejs",
        tag: "20",
        digest: Some("sha256:b1d950b97aaedc054c6c9c5409c98cf5c8f29de370a6f344113e1aeeaa441707"),
        single_platform: Some(Architecture::X86_64),
    },
    BaseImage {
        runtime: TemplateRuntime::Java21,
        repository: "public.ecr.aws/lambda/java",
        tag: "21",
        digest: Some("sha256:1dac9793c19eba748139fa1b9c722b36242425b61936419dea33e3d122e6e336"),
        single_platform: None,
    },
    BaseImage {
        runtime: TemplateRuntime::ProvidedAl2023,
        repository: "public.ecr.aws/lambda/provided",
        tag: "al2023",
        digest: Some("sha256:5f3ae3216e07bb3677cc4dfa0c7867973f7e536abb114d6b44a7b8c558824812"),
        single_platform: None,
    },
];

/// What `scaffold` writes.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The project directory (created when missing).
    pub dir: PathBuf,
    pub runtime: TemplateRuntime,
    pub architecture: Architecture,
    /// The function name; `None` takes the directory's name.
    pub name: Option<String>,
    /// Overwrite files that exist.
    pub force: bool,
    /// A registry that mirrors ECR Public's `lambda/*` repositories (an ECR
    /// pull-through cache, a company mirror): the base is named there instead.
    pub base_registry: Option<String>,
}

impl InitOptions {
    /// The base reference the new lambda-img.toml names.
    pub fn base_reference(&self) -> String {
        let official = self.runtime.base().reference_for(self.architecture);
        match &self.base_registry {
            Some(host) => official.replacen(OFFICIAL_REGISTRY, host.trim_end_matches('/'), 1),
            None => official,
        }
    }
}

/// Where AWS publishes the Lambda base images.
pub const OFFICIAL_REGISTRY: &str = "public.ecr.aws";

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(
        "{dir}: these files exist and would be overwritten: {}; pass --force to overwrite them, or choose another directory",
        .files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    Exists { dir: PathBuf, files: Vec<PathBuf> },
    #[error(
        "function name {name:?} is not valid: use 1 to 64 of A-Z a-z 0-9 - _ (pass --name to choose one)"
    )]
    InvalidName { name: String },
    #[error("writing {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> InitError + '_ {
    move |source| InitError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes the template for `options.runtime` into `options.dir`; returns the
/// paths written, relative to the directory, in template order.
pub fn scaffold(options: &InitOptions) -> Result<Vec<PathBuf>, InitError> {
    let name = match &options.name {
        Some(n) => n.clone(),
        None => default_name(&options.dir),
    };
    if !valid_name(&name) {
        return Err(InitError::InvalidName { name });
    }
    let files = templates::files(options.runtime);
    let existing: Vec<PathBuf> = files
        .iter()
        .map(|f| PathBuf::from(f.path))
        .filter(|rel| options.dir.join(rel).symlink_metadata().is_ok())
        .collect();
    if !existing.is_empty() && !options.force {
        return Err(InitError::Exists {
            dir: options.dir.clone(),
            files: existing,
        });
    }
    let values = placeholders(options, &name);
    let mut written = Vec::with_capacity(files.len());
    for file in files {
        let path = options.dir.join(file.path);
        let text = substitute(file.contents, &values);
        write_atomic(&path, text.as_bytes(), file.executable)?;
        written.push(PathBuf::from(file.path));
    }
    Ok(written)
}

/// For the Node starter: lets npm (when on PATH) write package-lock.json over
/// the template's; `None` for other runtimes. Call after [`scaffold`].
pub fn lock_node_dependencies(options: &InitOptions) -> Option<LockWriter> {
    if options.runtime != TemplateRuntime::Nodejs20 {
        return None;
    }
    let name = options.name.clone().unwrap_or_else(|| default_name(&options.dir));
    let template = templates::files(options.runtime)
        .into_iter()
        .find(|f| f.path == "package-lock.json")
        .map(|f| substitute(f.contents, &placeholders(options, &name)))?;
    Some(match node_lock::find_npm() {
        Some(npm) => node_lock::write_lockfile(&options.dir, &npm, &template),
        None => LockWriter::Template {
            reason: "npm is not on PATH".into(),
        },
    })
}

/// The `{{key}}` values of a template.
fn placeholders(options: &InitOptions, name: &str) -> Vec<(&'static str, String)> {
    let arm = options.architecture == Architecture::Arm64;
    vec![
        ("name", name.to_string()),
        // Cargo refuses package names that start with a digit.
        (
            "crate_name",
            if name.starts_with(|c: char| c.is_ascii_digit()) {
                format!("fn-{name}")
            } else {
                name.to_string()
            },
        ),
        ("arch", options.architecture.lambda_name().to_string()),
        ("runtime", options.runtime.lambda_name().to_string()),
        ("base", options.base_reference()),
        ("prepare_step", prepare_step(options.runtime).to_string()),
        ("toolchain", toolchain_step(options.runtime).to_string()),
        ("npm_cpu", if arm { "arm64" } else { "x64" }.to_string()),
        (
            "rust_target",
            if arm {
                "aarch64-unknown-linux-gnu"
            } else {
                "x86_64-unknown-linux-gnu"
            }
            .to_string(),
        ),
    ]
}

/// The buildspec's install step for the runtime's compiler or package manager:
/// CodeBuild's standard images carry Python, Node.js and Java; Rust comes with
/// lambda-img's own install step.
fn toolchain_step(runtime: TemplateRuntime) -> &'static str {
    match runtime {
        TemplateRuntime::Python312 => "python3 --version && pip3 --version",
        TemplateRuntime::Nodejs20 => "node --version && npm --version",
        TemplateRuntime::Java21 => "javac -version",
        // Rust is installed by the step that installs lambda-img.
        TemplateRuntime::ProvidedAl2023 => "cargo --version && rustc --version",
    }
}

/// The buildspec's compile step (with its YAML indentation and newline), for
/// the runtimes that compile something; dependencies need none.
fn prepare_step(runtime: TemplateRuntime) -> &'static str {
    match runtime {
        TemplateRuntime::Java21 | TemplateRuntime::ProvidedAl2023 => "      - make prepare\n",
        TemplateRuntime::Python312 | TemplateRuntime::Nodejs20 => "",
    }
}

/// Replaces every `{{key}}`; unknown keys are left as written.
pub fn substitute(text: &str, values: &[(&str, String)]) -> String {
    let mut out = text.to_string();
    for (key, value) in values {
        out = out.replace(&format!("{{{{{key}}}}}"), value);
    }
    out
}

/// The directory's own name made into a valid function name.
fn default_name(dir: &Path) -> String {
    let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let raw = abs
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cleaned: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if cleaned.trim_matches('-').is_empty() {
        "function".to_string()
    } else {
        cleaned
    }
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn write_atomic(path: &Path, bytes: &[u8], executable: bool) -> Result<(), InitError> {
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let mode = if executable { 0o755 } else { 0o644 };
    crate::atomic_file::write(path, bytes, crate::atomic_file::Mode::Fixed(mode)).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitute_fills_known_keys_and_leaves_others() {
        let values = vec![("name", "orders".to_string())];
        assert_eq!(
            substitute("{{name}}/{{name}} {{other}}", &values),
            "orders/orders {{other}}"
        );
    }

    #[test]
    fn default_name_is_the_directory_made_valid() {
        assert_eq!(default_name(Path::new("/x/My Fn.v2")), "My-Fn-v2");
        assert_eq!(default_name(Path::new("/x/...")), "function");
        assert!(valid_name(&default_name(Path::new(&"a".repeat(100)))));
    }

    #[test]
    fn every_template_placeholder_has_a_value() {
        for runtime in TemplateRuntime::ALL {
            for arch in [Architecture::X86_64, Architecture::Arm64] {
                let options = InitOptions {
                    dir: PathBuf::from("/p"),
                    runtime,
                    architecture: arch,
                    name: None,
                    force: false,
                    base_registry: None,
                };
                let values = placeholders(&options, "f");
                for file in templates::files(runtime) {
                    let text = substitute(file.contents, &values);
                    assert!(!text.contains("{{"), "{runtime} {}: {text}", file.path);
                }
            }
        }
    }

    #[test]
    fn pinned_bases_are_well_formed_digests() {
        for base in BASES {
            if let Some(d) = base.digest {
                let hex = d.strip_prefix("sha256:").expect("sha256");
                assert_eq!(hex.len(), 64);
                assert!(
                    hex.chars()
                        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
                );
            }
            for arch in [Architecture::X86_64, Architecture::Arm64] {
                assert!(base.reference_for(arch).starts_with("public.ecr.aws/lambda/"));
            }
            assert!(
                base.digest.is_some(),
                "{}: every runtime init offers has a digest",
                base.runtime
            );
        }
        for runtime in TemplateRuntime::ALL {
            assert_eq!(TemplateRuntime::parse(runtime.lambda_name()), Some(runtime));
            runtime.base();
        }
    }
}
