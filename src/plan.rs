//! The build plan: every layer of the image, in image order, with what it is
//! made of, its source description and its history text. Pure: no I/O.
//!
//! Layer order is the base's layers, the manifest's `[[layer]]`s as written
//! (static to dynamic), the dependency layers, then the code layer last, so a
//! code edit invalidates only the top layer. The build is a loop over
//! [`BuildPlan::layers`] (as go-containerregistry's `mutate.Append(base,
//! addenda...)`); `lambda-img plan` walks the same list for its input keys.
//!
//! Adding a layer kind (say, system packages between the base and the user
//! layers) is: a [`LayerKind`] variant, one `push` at its place in [`plan`],
//! and its arm in the loops of `build::assemble` and `plan_fleet`, which the
//! compiler points to (the matches are exhaustive).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::image::{Architecture, MediaFamily};
use crate::layer::{LayerInput, LayerSpec};
use crate::manifest::{DependencySet, FunctionModel, SourceKind, SourcePath};
use crate::reference::ImageRef;

/// The name of the code layer in reports and history.
pub const CODE_LAYER: &str = "code";

/// The name of the base's entry in the plan (its layers keep their own history).
pub const BASE_LAYERS: &str = "base";

/// The name of the dependencies' entry: `deps::DEPENDENCIES_LAYER`, written
/// out because `deps` is a peer of this module (a build test keeps the two equal).
pub const DEPENDENCIES_LAYERS: &str = "dependencies";

/// Directories excluded from the code layer at any depth: version control
/// metadata and Python's bytecode caches (host-specific, rebuilt at run time).
pub const DEFAULT_EXCLUDED_ANYWHERE: &[&str] = &[".git", ".hg", ".svn", "__pycache__"];

/// Directories excluded from the code layer at the root of each code source:
/// lambda-img's own working directory and a local virtualenv (host binaries;
/// dependencies belong in their own layer).
pub const DEFAULT_EXCLUDED_AT_ROOT: &[&str] = &[".lambda-img", ".venv"];

/// Changes to the base image's config.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigEdit {
    /// `None` keeps the base's.
    pub entrypoint: Option<Vec<String>>,
    /// `None` keeps the base's; `Some(vec![])` clears it.
    pub cmd: Option<Vec<String>>,
    pub workdir: Option<String>,
    /// Set over the base's env in this order; the manifest wins on a clash.
    pub env: Vec<(String, String)>,
    /// Added over the base's labels.
    pub labels: BTreeMap<String, String>,
}

/// What a plan entry becomes in the image. The order of a plan is the order
/// of these kinds (user layers among themselves as the manifest lists them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    /// The base image's layers, reused byte for byte (under the output's media types).
    Base,
    /// A `[[layer]]` of the manifest.
    User,
    /// The layers `deps` installs or copies: one, or several when split.
    Dependencies,
    /// `[code]`: the function's own files.
    Code,
}

/// One entry of the plan: a layer (or, for the base and the dependencies,
/// the layers it stands for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedLayer {
    pub kind: LayerKind,
    /// `base`, the `[[layer]]` name, `dependencies`, `code`.
    pub name: String,
    /// The files it is made of: `Some` for the kinds built from the project (user, code).
    pub spec: Option<LayerSpec>,
    /// What it is made from, for the report and the history: the base
    /// reference, or `src → /var/task, assets → /opt/assets` with paths
    /// relative to the project (the history is part of the config bytes, and
    /// a checkout path must not change the digest). `None` for the
    /// dependencies: the installer describes each layer it makes.
    pub source: Option<String>,
    /// The config history's `created_by` of the new layer; `None` for the base
    /// (its layers keep the base's history) and for the dependencies
    /// ([`created_by`] of each layer the installer makes).
    pub history: Option<String>,
}

impl PlannedLayer {
    fn files(kind: LayerKind, spec: LayerSpec, project_dir: &Path) -> PlannedLayer {
        let source = describe_inputs(&spec, project_dir);
        PlannedLayer {
            kind,
            name: spec.name.clone(),
            history: Some(created_by(&spec.name, &source)),
            source: Some(source),
            spec: Some(spec),
        }
    }
}

/// The history `created_by` of a new layer named `name` made from `source`.
pub fn created_by(name: &str, source: &str) -> String {
    format!("lambda-img: {name} layer from {source}")
}

/// Everything the build needs from the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildPlan {
    /// The base reference; a relative path in `oci:` or `docker-archive:` is
    /// made absolute against the manifest's directory.
    pub base: String,
    pub arch: Architecture,
    /// Every layer in image order: the base, user layers, the dependencies
    /// (when the function has any), `code` (when it has sources).
    pub layers: Vec<PlannedLayer>,
    pub config: ConfigEdit,
    /// `None`: the base's family (OCI for scratch).
    pub format: Option<MediaFamily>,
    /// The history comment of every new layer: `function NAME`.
    pub comment: String,
    /// `[system]`: the layer of packages from the base's manager, right
    /// above the base (it changes least after the base).
    pub system: Option<crate::manifest::SystemModel>,
}

/// Turns a validated model into a plan.
pub fn plan(model: &FunctionModel) -> BuildPlan {
    let base = resolve_local_base(&model.base, &model.project_dir);
    let mut layers = vec![PlannedLayer {
        kind: LayerKind::Base,
        name: BASE_LAYERS.to_string(),
        spec: None,
        source: Some(base.clone()),
        history: None,
    }];
    for l in &model.layers {
        let spec = LayerSpec {
            name: l.name.clone(),
            inputs: l
                .sources
                .iter()
                .map(|s| LayerInput {
                    source: s.path.clone(),
                    destination: destination_for(s, &l.destination, l.sources.len()),
                    include: l.include.clone(),
                    exclude: l.exclude.clone(),
                    ignore_file: None,
                    file_mode: l.mode,
                })
                .collect(),
        };
        layers.push(PlannedLayer::files(LayerKind::User, spec, &model.project_dir));
    }
    if model.dependencies.is_some() {
        layers.push(PlannedLayer {
            kind: LayerKind::Dependencies,
            name: DEPENDENCIES_LAYERS.to_string(),
            spec: None,
            source: None,
            history: None,
        });
    }
    if let Some(spec) = code_layer(model) {
        layers.push(PlannedLayer::files(LayerKind::Code, spec, &model.project_dir));
    }

    let image = &model.image;
    BuildPlan {
        base,
        arch: model.architecture,
        layers,
        config: ConfigEdit {
            entrypoint: image.entrypoint.clone(),
            cmd: image
                .cmd
                .clone()
                .or_else(|| model.handler.clone().map(|h| vec![h])),
            workdir: image.workdir.clone(),
            env: image.env.clone(),
            labels: image.labels.clone(),
        },
        format: image.format,
        system: model.system.clone(),
        comment: format!("function {}", model.name),
    }
}

/// The code layer of `model`; `None` when `[code]` has no sources.
fn code_layer(model: &FunctionModel) -> Option<LayerSpec> {
    let code = &model.code;
    if code.sources.is_empty() {
        return None;
    }
    let manifest = model
        .project_dir
        .join(model.manifest_path.file_name().unwrap_or_default());
    let provided = provided_by_dependencies(model);
    let inputs = code
        .sources
        .iter()
        .map(|s| {
            let mut exclude = code.exclude.clone();
            if code.default_excludes && s.kind == SourceKind::Dir {
                exclude.extend(default_excludes(&s.path, &manifest));
            }
            exclude.extend(provided.iter().cloned());
            LayerInput {
                source: s.path.clone(),
                destination: code_destination(s, &code.destination),
                include: code.include.clone(),
                exclude,
                ignore_file: code.ignore_file.clone(),
                file_mode: None,
            }
        })
        .collect();
    Some(LayerSpec {
        name: CODE_LAYER.to_string(),
        inputs,
    })
}

/// Globs the code layer leaves out because a dependency layer provides
/// them: a local `node_modules` (host binaries, dev dependencies).
fn provided_by_dependencies(model: &FunctionModel) -> Vec<String> {
    match model.dependencies.as_ref().map(|d| &d.set) {
        Some(DependencySet::Node { .. }) => vec!["node_modules".into(), "node_modules/**".into()],
        _ => Vec::new(),
    }
}

impl BuildPlan {
    /// The layers built from the project's files (user layers and code), in image order.
    pub fn specs(&self) -> impl Iterator<Item = &LayerSpec> {
        self.layers.iter().filter_map(|l| l.spec.as_ref())
    }

    /// Leaves `outputs` (absolute paths of files or directories this run
    /// writes) out of every layer whose source directory holds them, so a
    /// build never packs its own earlier output.
    pub fn exclude_outputs(&mut self, outputs: &[PathBuf]) {
        let specs = self.layers.iter_mut().filter_map(|l| l.spec.as_mut());
        for input in specs.flat_map(|s| s.inputs.iter_mut()) {
            for out in outputs {
                if let Some(rel) = relative_glob(&input.source, out) {
                    input.exclude.push(format!("{rel}/**"));
                    input.exclude.push(rel);
                }
            }
        }
    }
}

/// `src → /var/task, assets → /opt/assets`, with paths relative to the project.
fn describe_inputs(spec: &LayerSpec, project_dir: &Path) -> String {
    spec.inputs
        .iter()
        .map(|input| {
            let rel = crate::manifest::project_relative(&input.source, project_dir);
            format!("{rel} → {}", input.destination)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A file source among several goes inside the destination directory; a lone
/// file source is written at the destination unless it ends with `/`.
fn destination_for(source: &SourcePath, destination: &str, count: usize) -> String {
    if source.kind == SourceKind::File && count > 1 && !destination.ends_with('/') {
        format!("{destination}/")
    } else {
        destination.to_string()
    }
}

/// `[code]` always has directory semantics: its destination is the function's
/// directory (`/var/task`), so a file source goes inside it. Written at the
/// destination itself, `sources = ["app.py"]` would replace `/var/task` with a
/// file and hide every dependency layer below it.
fn code_destination(source: &SourcePath, destination: &str) -> String {
    if source.kind == SourceKind::File && !destination.ends_with('/') {
        format!("{destination}/")
    } else {
        destination.to_string()
    }
}

/// The code layer's default excludes for source directory `dir`.
fn default_excludes(dir: &Path, manifest: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for name in DEFAULT_EXCLUDED_ANYWHERE {
        out.push(format!("**/{name}"));
        out.push(format!("**/{name}/**"));
    }
    for name in DEFAULT_EXCLUDED_AT_ROOT {
        out.push((*name).to_string());
        out.push(format!("{name}/**"));
    }
    out.extend(relative_glob(dir, manifest));
    out
}

/// `path` relative to `dir` as an escaped glob, when `path` lies below `dir`.
fn relative_glob(dir: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(dir).ok()?;
    let rel = rel.to_str()?;
    (!rel.is_empty()).then(|| globset::escape(rel))
}

/// Makes the path of a local base (`oci:`, `docker-archive:`) absolute
/// against the project. A reference that does not parse is kept as written:
/// opening it reports what is wrong.
fn resolve_local_base(base: &str, project_dir: &Path) -> String {
    ImageRef::parse(base).map_or_else(|_| base.to_string(), |r| r.relative_to(project_dir).to_string())
}

impl BuildPlan {
    /// The directory or file of a local base (`oci:`, `docker-archive:`), absolute.
    pub fn local_base(&self) -> Option<PathBuf> {
        ImageRef::parse(&self.base)
            .ok()?
            .local_path()
            .map(Path::to_path_buf)
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use globset::GlobBuilder;

    use super::*;
    use crate::manifest::parse_str;

    const HEAD: &str = "[function]\nname = \"hello\"\nruntime = \"python3.12\"\nhandler = \"app.lambda_handler\"\n[base]\nimage = \"oci:base:latest\"\n";

    fn with_project(text: &str, f: impl FnOnce(&Path, BuildPlan)) {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        for d in ["assets", "src"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("config.json"), b"{}").unwrap();
        std::fs::write(root.join(".dockerignore"), b"*.md\n").unwrap();
        let model = parse_str(text, Path::new("lambda-img.toml"), &root).unwrap();
        f(&root, plan(&model));
    }

    fn matches(patterns: &[String], path: &str) -> bool {
        patterns.iter().any(|p| {
            GlobBuilder::new(p)
                .literal_separator(true)
                .build()
                .unwrap()
                .compile_matcher()
                .is_match(path)
        })
    }

    #[test]
    fn user_layers_in_order_then_code_last() {
        let text = format!(
            "{HEAD}[[layer]]\nname = \"assets\"\nsources = [\"assets\", \"config.json\"]\ndestination = \"/opt/assets\"\nmode = \"0755\"\n\
             [[layer]]\nname = \"conf\"\nsources = [\"config.json\"]\ndestination = \"/etc/app.json\"\n\
             [code]\nsources = [\"src\"]\nexclude = [\"*.md\"]\n[image]\nenv = {{ B = \"1\", A = \"2\" }}\nformat = \"oci\"\n"
        );
        with_project(&text, |root, plan| {
            assert_eq!(plan.base, format!("oci:{}:latest", root.join("base").display()));
            assert_eq!(plan.arch, Architecture::X86_64);
            let names: Vec<(LayerKind, &str)> =
                plan.layers.iter().map(|l| (l.kind, l.name.as_str())).collect();
            assert_eq!(
                names,
                [
                    (LayerKind::Base, BASE_LAYERS),
                    (LayerKind::User, "assets"),
                    (LayerKind::User, "conf"),
                    (LayerKind::Code, CODE_LAYER)
                ]
            );
            assert_eq!(plan.layers[0].source.as_deref(), Some(plan.base.as_str()));
            assert_eq!(plan.layers[3].source.as_deref(), Some("src → /var/task"));
            assert_eq!(
                plan.layers[3].history.as_deref(),
                Some("lambda-img: code layer from src → /var/task")
            );
            let specs: Vec<&LayerSpec> = plan.specs().collect();
            let assets = &specs[0].inputs;
            assert_eq!(assets[0].source, root.join("assets"));
            assert_eq!(assets[0].destination, "/opt/assets");
            // A file among several sources goes inside the destination directory...
            assert_eq!(assets[1].destination, "/opt/assets/");
            assert_eq!(assets[1].file_mode, Some(0o755));
            // ...a lone file source is written at the destination itself.
            assert_eq!(specs[1].inputs[0].destination, "/etc/app.json");
            let code = &specs[2].inputs[0];
            assert_eq!(code.source, root.join("src"));
            assert_eq!(code.destination, "/var/task");
            assert_eq!(code.ignore_file, Some(root.join(".dockerignore")));
            assert_eq!(code.exclude[0], "*.md");
            assert!(matches(&code.exclude, ".git/config"));
            assert_eq!(
                plan.config,
                ConfigEdit {
                    entrypoint: None,
                    cmd: Some(vec!["app.lambda_handler".into()]),
                    workdir: None,
                    env: vec![("B".into(), "1".into()), ("A".into(), "2".into())],
                    labels: BTreeMap::new(),
                }
            );
            assert_eq!(plan.format, Some(MediaFamily::Oci));
        });
    }

    #[test]
    fn default_code_layer_leaves_out_vcs_caches_and_the_manifest() {
        with_project(HEAD, |root, plan| {
            let [code] = plan.specs().collect::<Vec<_>>()[..] else {
                panic!("{plan:?}")
            };
            let input = &code.inputs[0];
            assert_eq!(input.source, root);
            for out in [
                ".git",
                ".git/HEAD",
                "pkg/.git/x",
                "a/__pycache__/m.pyc",
                ".hg/x",
                ".svn",
                "lambda-img.toml",
                ".lambda-img/cache",
                ".venv/bin/python",
            ] {
                assert!(matches(&input.exclude, out), "{out} should be excluded");
            }
            for kept in [
                "app.py",
                "pkg/.venv/x",
                "sub/lambda-img.toml",
                "sub/.lambda-img",
                ".gitignore",
                "data.tar",
            ] {
                assert!(!matches(&input.exclude, kept), "{kept} should be kept");
            }
        });
        let off = format!("{HEAD}[code]\ndefault_excludes = false\nexclude = [\"x\"]\n");
        with_project(&off, |_, plan| {
            assert_eq!(plan.specs().next().unwrap().inputs[0].exclude, ["x"])
        });
    }

    #[test]
    fn dependencies_sit_between_the_user_layers_and_the_code_they_leave_out() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(root.join("assets")).unwrap();
        for f in ["package.json", "package-lock.json"] {
            std::fs::write(root.join(f), b"{}").unwrap();
        }
        let text = "[function]\nname = \"n\"\nruntime = \"nodejs20.x\"\nhandler = \"index.handler\"\n\
                    [base]\nimage = \"oci:base:latest\"\n[[layer]]\nname = \"assets\"\nsources = [\"assets\"]\ndestination = \"/opt/assets\"\n";
        let plan = plan(&parse_str(text, Path::new("lambda-img.toml"), &root).unwrap());
        let kinds: Vec<LayerKind> = plan.layers.iter().map(|l| l.kind).collect();
        assert_eq!(
            kinds,
            [
                LayerKind::Base,
                LayerKind::User,
                LayerKind::Dependencies,
                LayerKind::Code
            ]
        );
        let dependencies = &plan.layers[2];
        assert_eq!(
            (dependencies.spec.as_ref(), dependencies.history.as_ref()),
            (None, None)
        );
        let code = plan.layers[3].spec.as_ref().unwrap();
        assert!(matches(&code.inputs[0].exclude, "node_modules/x/index.js"));
        assert!(!matches(
            &plan.layers[1].spec.as_ref().unwrap().inputs[0].exclude,
            "node_modules"
        ));
        assert_eq!(plan.comment, "function n");
    }

    #[test]
    fn cmd_defaults_to_the_handler() {
        with_project(
            &format!("{HEAD}[image]\ncmd = [\"other.handler\"]\n"),
            |_, plan| {
                assert_eq!(plan.config.cmd, Some(vec!["other.handler".to_string()]));
            },
        );
        with_project(&format!("{HEAD}[image]\ncmd = []\n"), |_, plan| {
            assert_eq!(plan.config.cmd, Some(vec![]))
        });
        let custom = "[function]\nname = \"f\"\nruntime = \"provided.al2023\"\n[base]\nimage = \"scratch\"\n[image]\nentrypoint = [\"/var/runtime/bootstrap\"]\n";
        with_project(custom, |_, plan| {
            assert_eq!(plan.base, "scratch");
            assert_eq!(plan.config.cmd, None);
            assert_eq!(
                plan.config.entrypoint,
                Some(vec!["/var/runtime/bootstrap".to_string()])
            );
        });
    }

    #[test]
    fn a_lone_code_file_goes_inside_the_destination() {
        with_project(
            &format!("{HEAD}[code]\nsources = [\"config.json\"]\n"),
            |_, plan| {
                let code = plan.specs().next().unwrap();
                assert_eq!(code.inputs[0].destination, "/var/task/");
                let layer = crate::layer::select::select(code).unwrap();
                let paths: Vec<&str> = layer.iter().map(|e| e.path).collect();
                assert_eq!(paths, ["var", "var/task", "var/task/config.json"]);
            },
        );
    }

    #[test]
    fn empty_code_sources_mean_no_code_layer() {
        with_project(&format!("{HEAD}[code]\nsources = []\n"), |_, plan| {
            assert_eq!(plan.specs().count(), 0)
        });
    }

    #[test]
    fn outputs_inside_a_source_are_excluded() {
        with_project(HEAD, |root, mut plan| {
            plan.exclude_outputs(&[root.join("out/image.tar"), PathBuf::from("/elsewhere/x.tar")]);
            let exclude = &plan.specs().next().unwrap().inputs[0].exclude;
            assert!(matches(exclude, "out/image.tar"));
            assert!(!matches(exclude, "x.tar"));
        });
    }

    #[test]
    fn local_base_paths_resolve_against_the_project() {
        let dir = Path::new("/p");
        assert_eq!(resolve_local_base("oci:base", dir), "oci:/p/base");
        assert_eq!(resolve_local_base("oci:./base:t", dir), "oci:/p/base:t");
        let d = crate::image::Digest::of(b"b");
        assert_eq!(
            resolve_local_base(&format!("oci:b@{d}"), dir),
            format!("oci:/p/b@{d}")
        );
        assert_eq!(
            resolve_local_base("oci:b@sha256:ab", dir),
            "oci:b@sha256:ab",
            "opening says what is wrong"
        );
        assert_eq!(
            resolve_local_base("docker-archive:img.tar:repo:tag", dir),
            "docker-archive:/p/img.tar:repo:tag"
        );
        assert_eq!(resolve_local_base("oci:/abs:t", dir), "oci:/abs:t");
        assert_eq!(
            resolve_local_base("public.ecr.aws/lambda/python:3.12", dir),
            "public.ecr.aws/lambda/python:3.12"
        );
    }
}
