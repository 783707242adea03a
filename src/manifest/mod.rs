//! The `lambda-img.toml` schema, its validation and the resolved model.
//!
//! `schema` holds the serde types of the file as written, `validate` checks
//! them (collecting every problem, each at its `FILE:LINE:COL`) and resolves
//! paths, `model` is what the rest of the program reads. See docs/manifest.md.

mod cache;
mod check_keys;
mod deploy;
mod deps;
mod error;
mod execution;
mod forms;
mod model;
pub mod schema;
mod system;
mod validate;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use cache::CacheSettings;
pub use check_keys::read_rule_policy;
pub use deploy::{
    DeploySettings, alias_name, deploy_settings_of, function_ref, read_deploy_settings, region_name,
};
pub use deps::{DEFAULT_PACKAGE_JSON, DEFAULT_PACKAGE_LOCK, DEFAULT_REQUIREMENTS};
pub use error::{ManifestError, Problem, line_col};
pub use forms::check_handler;
pub use model::{
    CodeModel, DependenciesModel, DependencySet, ExecutionSettings, FunctionModel, ImageSettings,
    JAVA_MAJORS, LayerModel, MAX_DEPENDENCY_LAYERS, NODE_MAJORS, PYTHON_MINORS, Runtime, SourceKind,
    SourcePath,
};
pub use system::{PackageManager, SystemModel};
pub use validate::{DEFAULT_CODE_DESTINATION, DEFAULT_IGNORE_FILE};

/// The manifest's file name in a project directory.
pub const MANIFEST_FILE_NAME: &str = "lambda-img.toml";

/// Reads and validates the manifest at `path`. Relative paths in it resolve
/// against its directory; messages name `path` as given.
pub fn load(path: &Path) -> Result<FunctionModel, ManifestError> {
    let read_err = |source| ManifestError::Read {
        path: path.to_path_buf(),
        source,
    };
    let text = std::fs::read_to_string(path).map_err(read_err)?;
    load_text(&text, path)
}

/// [`load`] of a manifest already read into `text` from `path`.
pub fn load_text(text: &str, path: &Path) -> Result<FunctionModel, ManifestError> {
    let read_err = |source| ManifestError::Read {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let project_dir = std::fs::canonicalize(&dir).map_err(read_err)?;
    parse_str(text, path, &project_dir)
}

/// The function's architecture alone, read without validating the rest:
/// `pin` needs it before the sources the manifest names exist (`make prepare`
/// may create them after the base is pinned).
pub fn read_architecture(path: &Path) -> Result<crate::image::Architecture, ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let file: schema::ManifestFile = toml::from_str(&text).map_err(|e| ManifestError::Invalid {
        path: path.to_path_buf(),
        problems: vec![de_problem(&e, &text, path)],
    })?;
    let name = file
        .function
        .architecture
        .as_ref()
        .map(|a| a.get_ref().as_str())
        .unwrap_or("x86_64");
    crate::image::Architecture::parse(name).ok_or_else(|| ManifestError::Invalid {
        path: path.to_path_buf(),
        problems: vec![Problem {
            file: path.to_path_buf(),
            line: 1,
            col: 1,
            key: Some("function.architecture".into()),
            message: format!("function.architecture {name:?} is not x86_64 or arm64"),
        }],
    })
}

/// Parses and validates manifest text. `path_for_messages` names the file in
/// problems; `project_dir` is where relative paths resolve (made absolute and
/// canonical here when it exists).
pub fn parse_str(
    text: &str,
    path_for_messages: &Path,
    project_dir: &Path,
) -> Result<FunctionModel, ManifestError> {
    let invalid = |problems| ManifestError::Invalid {
        path: path_for_messages.to_path_buf(),
        problems,
    };
    let file: schema::ManifestFile =
        toml::from_str(text).map_err(|e| invalid(vec![de_problem(&e, text, path_for_messages)]))?;
    let project_dir = std::fs::canonicalize(project_dir)
        .or_else(|_| std::path::absolute(project_dir))
        .unwrap_or_else(|_| project_dir.to_path_buf());
    validate::validate(file, text, path_for_messages, &project_dir).map_err(invalid)
}

/// `path` as seen from the project directory, with `..` for a source beside
/// the project (a monorepo's shared folder): history and reports are part of
/// the config's bytes, so neither may name the checkout path.
pub fn project_relative(path: &Path, project_dir: &Path) -> String {
    let from: Vec<_> = project_dir.components().collect();
    let to: Vec<_> = path.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut rel = PathBuf::new();
    for _ in common..from.len() {
        rel.push("..");
    }
    for c in &to[common..] {
        rel.push(c);
    }
    if rel.as_os_str().is_empty() {
        ".".into()
    } else {
        rel.display().to_string()
    }
}

/// Turns a toml/serde error into a positioned problem that names the key.
fn de_problem(e: &toml::de::Error, text: &str, file: &Path) -> Problem {
    let span = e.span().unwrap_or(0..0);
    let (line, col) = line_col(text, span.start);
    let msg = e.message();
    let syntax_ok = toml_edit::Document::parse(text).is_ok();
    let at = error::key_at(text, span.start).filter(|_| !span.is_empty());
    let join = |parent: Option<&str>, k: &str| match parent {
        Some(p) => format!("{p}.{k}"),
        None => k.to_string(),
    };
    let (key, message) = if !syntax_ok {
        let snippet = text
            .get(span.clone())
            .filter(|s| !s.is_empty() && !s.contains('\n'));
        let message = match (msg, snippet) {
            ("duplicate key", Some(k)) => format!("duplicate key `{k}`: each key may appear once per table"),
            _ => format!("invalid TOML: {msg}"),
        };
        (at, message)
    } else if let Some(rest) = msg.strip_prefix("unknown field `") {
        let (field, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let key = at.unwrap_or_else(|| field.to_string());
        let hint = match key.as_str() {
            "build" => {
                format!("; the [{key}] section is not supported by this version of lambda-img")
            }
            _ => "; remove it or fix its spelling".to_string(),
        };
        (Some(key.clone()), format!("unknown key `{key}`{expected}{hint}"))
    } else if let Some(rest) = msg.strip_prefix("missing field `") {
        // The span is the table that lacks the key (empty at the top level).
        let field = rest.trim_end_matches('`');
        let key = join(at.as_deref(), field);
        (
            Some(key.clone()),
            format!("missing key `{key}`: add it{}", missing_hint(&key)),
        )
    } else if let Some(rest) = msg.strip_prefix("invalid type: ") {
        let message = match rest.rsplit_once(", expected ") {
            Some((found, expected)) => format!("expected {expected}, found {found}"),
            None => rest.to_string(),
        };
        match at {
            Some(key) => (Some(key.clone()), format!("`{key}`: {message}")),
            None => (None, message),
        }
    } else {
        match at {
            Some(key) => (Some(key.clone()), format!("`{key}`: {msg}")),
            None => (None, msg.to_string()),
        }
    };
    Problem {
        file: file.to_path_buf(),
        line,
        col,
        key,
        message,
    }
}

fn missing_hint(key: &str) -> String {
    let rt = Runtime::known_names().join(", ");
    match key {
        "function" => " ([function] with name, runtime and handler)".to_string(),
        "function.name" => ", e.g. name = \"hello\"".to_string(),
        "function.runtime" => format!(", one of {rt}"),
        "base" => " ([base] with image = \"scratch\", \"oci:PATH\" or a registry reference)".to_string(),
        "base.image" => ", e.g. image = \"public.ecr.aws/lambda/python:3.12@sha256:...\"".to_string(),
        _ => String::new(),
    }
}
