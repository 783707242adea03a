//! Schema → model: checks every value, resolves paths against the manifest's
//! directory and collects every problem rather than stopping at the first.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::error::{Problem, line_col};
use super::forms;
use super::model::{CodeModel, FunctionModel, ImageSettings, LayerModel, Runtime, SourceKind, SourcePath};
use super::schema::{CodeTable, ImageTable, LayerTable, ManifestFile, SpannedString};
use crate::image::{Architecture, MediaFamily};
use crate::reference::{ImageRef, ImageRefError};

/// The code layer's image path unless `[code] destination` says otherwise.
pub const DEFAULT_CODE_DESTINATION: &str = "/var/task";
/// The ignore file picked up from the project directory when `ignore_file` is unset.
pub const DEFAULT_IGNORE_FILE: &str = ".dockerignore";

pub(super) struct Checker<'a> {
    pub(super) text: &'a str,
    file: &'a Path,
    pub(super) project_dir: &'a Path,
    problems: Vec<Problem>,
}

impl<'a> Checker<'a> {
    pub(super) fn new(text: &'a str, file: &'a Path, project_dir: &'a Path) -> Checker<'a> {
        Checker {
            text,
            file,
            project_dir,
            problems: Vec::new(),
        }
    }

    pub(super) fn into_problems(self) -> Vec<Problem> {
        self.problems
    }

    pub(super) fn report(&mut self, span: Range<usize>, key: impl Into<String>, message: impl Into<String>) {
        let (line, col) = line_col(self.text, span.start);
        self.problems.push(Problem {
            file: self.file.to_path_buf(),
            line,
            col,
            key: Some(key.into()),
            message: message.into(),
        });
    }

    /// Resolves a source path and checks that it exists.
    pub(super) fn source(&mut self, s: &SpannedString, key: &str, owner: &str) -> Option<SourcePath> {
        let raw = s.get_ref();
        if raw.is_empty() {
            self.report(
                s.span(),
                key,
                format!("{owner}: a source path is empty: name a file or directory"),
            );
            return None;
        }
        let joined = self.project_dir.join(raw);
        match std::fs::metadata(&joined) {
            Ok(meta) => {
                let path = std::fs::canonicalize(&joined).unwrap_or(joined);
                let kind = if meta.is_dir() {
                    SourceKind::Dir
                } else {
                    SourceKind::File
                };
                Some(SourcePath { path, kind })
            }
            Err(e) => {
                let why = if e.kind() == std::io::ErrorKind::NotFound {
                    "does not exist".to_string()
                } else {
                    format!("cannot be read ({e})")
                };
                self.report(
                    s.span(),
                    key,
                    format!(
                        "{owner}: source \"{raw}\" {why} at {}: create it or fix the path (relative paths start at the manifest's directory)",
                        joined.display()
                    ),
                );
                None
            }
        }
    }

    /// Checks an absolute image path; `label` names it in the message.
    pub(super) fn image_path(&mut self, s: &SpannedString, key: &str, label: &str) -> String {
        if let Err(why) = forms::image_path(s.get_ref()) {
            self.report(s.span(), key, format!("{label} \"{}\" {why}", s.get_ref()));
        }
        s.get_ref().clone()
    }

    fn globs(&mut self, globs: &[SpannedString], key: &str) -> Vec<String> {
        for g in globs {
            if let Err(e) = globset::Glob::new(g.get_ref()) {
                self.report(
                    g.span(),
                    key,
                    format!(
                        "{key} pattern \"{}\" is not a valid glob: {}",
                        g.get_ref(),
                        e.kind()
                    ),
                );
            }
        }
        globs.iter().map(|g| g.get_ref().clone()).collect()
    }
}

/// Validates a parsed manifest. `project_dir` should be absolute.
pub fn validate(
    file: ManifestFile,
    text: &str,
    manifest_path: &Path,
    project_dir: &Path,
) -> Result<FunctionModel, Vec<Problem>> {
    let mut c = Checker {
        text,
        file: manifest_path,
        project_dir,
        problems: Vec::new(),
    };
    let f = &file.function;

    let name = f.name.get_ref().clone();
    if !forms::function_name(&name) {
        c.report(
            f.name.span(),
            "function.name",
            format!(
                "function.name \"{name}\" is not a Lambda function name: use 1 to 64 letters, digits, - or _"
            ),
        );
    }

    let runtime = Runtime::parse(f.runtime.get_ref());
    if runtime.is_none() {
        c.report(
            f.runtime.span(),
            "function.runtime",
            format!(
                "function.runtime \"{}\" is not a runtime lambda-img knows: use one of {}",
                f.runtime.get_ref(),
                Runtime::known_names().join(", ")
            ),
        );
    }
    let handler = f.handler.as_ref().map(|h| h.get_ref().clone());
    if let Some(rt) = runtime {
        match &f.handler {
            Some(h) => {
                if let Err(expected) = forms::check_handler(rt, h.get_ref()) {
                    c.report(
                        h.span(),
                        "function.handler",
                        format!(
                            "function.handler \"{}\" does not fit runtime {rt}: {expected}",
                            h.get_ref()
                        ),
                    );
                }
            }
            None if rt.needs_handler() => c.report(
                f.runtime.span(),
                "function.handler",
                format!(
                    "function.handler is missing: runtime {rt} needs one, e.g. handler = \"{}\"",
                    forms::example(rt).unwrap_or_default()
                ),
            ),
            None => {}
        }
    }

    let architecture = match &f.architecture {
        None => Architecture::X86_64,
        Some(a) => match a.get_ref().as_str() {
            "x86_64" => Architecture::X86_64,
            "arm64" => Architecture::Arm64,
            other => {
                let hint = match Architecture::parse(other) {
                    Some(arch) => format!(": Lambda calls it \"{arch}\""),
                    None => String::new(),
                };
                c.report(
                    a.span(),
                    "function.architecture",
                    format!("function.architecture \"{other}\" is not x86_64 or arm64{hint}"),
                );
                Architecture::X86_64
            }
        },
    };

    let base = file.base.image.get_ref().clone();
    check_base(&mut c, &file.base.image, file.image.as_ref());

    let layers = check_layers(&mut c, &file.layers);
    let code = check_code(&mut c, file.code.as_ref());
    let image = check_image(&mut c, file.image.as_ref());
    let dependencies = runtime.and_then(|rt| super::deps::check(&mut c, rt, file.dependencies.as_ref()));
    let check = super::check_keys::check_rules(&mut c, file.check.as_ref());
    let execution = super::execution::check(&mut c, &file.function);
    let cache = super::cache::check(&mut c, file.cache.as_ref());
    let system = super::system::check(&mut c, file.system.as_ref());

    if !c.problems.is_empty() {
        let mut problems = c.problems;
        problems.sort_by_key(|p| (p.line, p.col));
        return Err(problems);
    }
    Ok(FunctionModel {
        name,
        runtime: runtime.expect("checked above"),
        handler,
        architecture,
        base,
        layers,
        code,
        image,
        dependencies,
        check,
        base_repair: file.base.repair.unwrap_or(false),
        execution,
        cache,
        system,
        project_dir: project_dir.to_path_buf(),
        manifest_path: manifest_path.to_path_buf(),
    })
}

fn check_base(c: &mut Checker, image: &SpannedString, settings: Option<&ImageTable>) {
    let base = image.get_ref();
    if base.is_empty() || base.chars().any(char::is_whitespace) {
        c.report(
            image.span(),
            "base.image",
            format!("base.image \"{base}\" is not an image reference: use \"scratch\", \"oci:PATH[:TAG]\", \"docker-archive:PATH\" or a registry reference pinned by digest"),
        );
        return;
    }
    // Only a local reference without a path is refused here; the rest of the
    // grammar (registry names, digests) is checked when the base is opened,
    // where the message can say which digest to pin.
    let parsed = ImageRef::parse(base);
    if let Err(ImageRefError::EmptyPath { prefix, .. }) = &parsed {
        c.report(
            image.span(),
            "base.image",
            format!("base.image \"{base}\" names no path after {prefix}"),
        );
    }
    let has_entrypoint = settings.is_some_and(|s| s.entrypoint.is_some());
    if parsed.is_ok_and(|r| r.is_scratch()) && !has_entrypoint {
        c.report(
            image.span(),
            "base.image",
            "base.image is \"scratch\", which has no entrypoint: set image.entrypoint to the program Lambda starts, e.g. entrypoint = [\"/var/runtime/bootstrap\"]",
        );
    }
}

fn check_layers(c: &mut Checker, tables: &[LayerTable]) -> Vec<LayerModel> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        let name = t.name.get_ref().clone();
        let key = |k: &str| format!("layer[{i}].{k}");
        if !forms::layer_name(&name) {
            c.report(
                t.name.span(),
                key("name"),
                format!("layer name \"{name}\" must be 1 to 64 letters, digits, ., - or _"),
            );
        } else if name == "code" || name.starts_with("dependencies") {
            c.report(
                t.name.span(),
                key("name"),
                format!("layer name \"{name}\" is reserved for the layers lambda-img makes itself: pick another name"),
            );
        } else if !seen.insert(name.clone()) {
            c.report(
                t.name.span(),
                key("name"),
                format!("layer name \"{name}\" is used twice: layer names must be unique"),
            );
        }
        let owner = format!("layer \"{name}\"");
        if t.sources.get_ref().is_empty() {
            c.report(
                t.sources.span(),
                key("sources"),
                format!("{owner}: sources is empty: list at least one file or directory"),
            );
        }
        let sources = t
            .sources
            .get_ref()
            .iter()
            .filter_map(|s| c.source(s, &key("sources"), &owner))
            .collect();
        let destination = c.image_path(
            &t.destination,
            &key("destination"),
            &format!("{owner}: destination"),
        );
        let include = c.globs(&t.include, &key("include"));
        let exclude = c.globs(&t.exclude, &key("exclude"));
        let mode = t
            .mode
            .as_ref()
            .and_then(|m| check_mode(c, m, &key("mode"), &owner));
        out.push(LayerModel {
            name,
            sources,
            destination,
            include,
            exclude,
            mode,
        });
    }
    out
}

fn check_mode(c: &mut Checker, m: &Spanned<toml::Value>, key: &str, owner: &str) -> Option<u32> {
    let raw = c.text.get(m.span()).unwrap_or_default().to_string();
    match forms::file_mode(m.get_ref(), &raw) {
        Ok(mode) => Some(mode),
        Err(why) => {
            c.report(m.span(), key, format!("{owner}: {why}"));
            None
        }
    }
}

fn check_code(c: &mut Checker, table: Option<&CodeTable>) -> CodeModel {
    let project = SourcePath {
        path: c.project_dir.to_path_buf(),
        kind: SourceKind::Dir,
    };
    let Some(t) = table else {
        return CodeModel {
            sources: vec![project],
            destination: DEFAULT_CODE_DESTINATION.to_string(),
            include: Vec::new(),
            exclude: Vec::new(),
            default_excludes: true,
            ignore_file: default_ignore_file(c.project_dir),
        };
    };
    let sources = match &t.sources {
        None => vec![project],
        Some(list) => list
            .get_ref()
            .iter()
            .filter_map(|s| c.source(s, "code.sources", "code"))
            .collect(),
    };
    let destination = match &t.destination {
        None => DEFAULT_CODE_DESTINATION.to_string(),
        Some(d) => c.image_path(d, "code.destination", "code.destination"),
    };
    let ignore_file = match &t.ignore_file {
        None => default_ignore_file(c.project_dir),
        Some(s) if s.get_ref().is_empty() => None,
        Some(s) => {
            let path = c.project_dir.join(s.get_ref());
            if path.is_file() {
                Some(path)
            } else {
                c.report(
                    s.span(),
                    "code.ignore_file",
                    format!(
                        "code.ignore_file \"{}\" is not a file at {}: create it, fix the path, or set ignore_file = \"\" for none",
                        s.get_ref(),
                        path.display()
                    ),
                );
                None
            }
        }
    };
    CodeModel {
        sources,
        destination,
        include: c.globs(&t.include, "code.include"),
        exclude: c.globs(&t.exclude, "code.exclude"),
        default_excludes: t.default_excludes.unwrap_or(true),
        ignore_file,
    }
}

fn default_ignore_file(project_dir: &Path) -> Option<PathBuf> {
    let path = project_dir.join(DEFAULT_IGNORE_FILE);
    path.is_file().then_some(path)
}

fn check_image(c: &mut Checker, table: Option<&ImageTable>) -> ImageSettings {
    let Some(t) = table else {
        return ImageSettings::default();
    };
    if let Some(ep) = &t.entrypoint {
        match ep.get_ref().first() {
            None => c.report(
                ep.span(),
                "image.entrypoint",
                "image.entrypoint is empty: name the program Lambda starts, e.g. [\"/lambda-entrypoint.sh\"], or remove the key to keep the base's",
            ),
            Some(program) if !program.starts_with('/') => c.report(
                ep.span(),
                "image.entrypoint",
                format!("image.entrypoint program \"{program}\" must be an absolute path: Lambda does not search PATH"),
            ),
            Some(_) => {}
        }
    }
    let workdir = t
        .workdir
        .as_ref()
        .map(|w| c.image_path(w, "image.workdir", "image.workdir"));
    let mut env = Vec::new();
    for (k, v) in &t.env.0 {
        if !forms::env_key(k.get_ref()) {
            c.report(
                k.span(),
                format!("image.env.{}", k.get_ref()),
                format!(
                    "image.env key \"{}\" is not a valid variable name: use letters, digits and _, not starting with a digit",
                    k.get_ref()
                ),
            );
        }
        env.push((k.get_ref().clone(), v.get_ref().clone()));
    }
    let mut labels = BTreeMap::new();
    for (k, v) in &t.labels.0 {
        if k.get_ref().is_empty() {
            c.report(
                k.span(),
                "image.labels",
                "image.labels has an empty key: give every label a name",
            );
        }
        labels.insert(k.get_ref().clone(), v.get_ref().clone());
    }
    let format = t.format.as_ref().and_then(|f| match f.get_ref().as_str() {
        "oci" => Some(MediaFamily::Oci),
        "docker" => Some(MediaFamily::Docker),
        other => {
            c.report(
                f.span(),
                "image.format",
                format!("image.format \"{other}\" is not \"docker\" or \"oci\""),
            );
            None
        }
    });
    ImageSettings {
        entrypoint: t.entrypoint.as_ref().map(|e| e.get_ref().clone()),
        cmd: t.cmd.as_ref().map(|e| e.get_ref().clone()),
        workdir,
        env,
        labels,
        format,
    }
}
