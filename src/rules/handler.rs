//! The handler rule: can the runtime find `module.function`? Python and
//! Node.js are checked; other runtimes are skipped (no false warnings).

use super::catalog::HANDLER_NOT_FOUND;
use super::config::ImageConfig;
use super::flat::FlatView;
use super::{CheckContext, Finding};
use crate::tar_walk::{EntryKind, normalize, parent};

/// Bytes of a Python handler module kept for the `def` search.
pub const MAX_SOURCE: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Language {
    Python,
    Node,
}

/// What the handler rule will look for, decided before the layers stream
/// (so the walk knows which files' content to keep).
#[derive(Debug, Clone)]
pub struct HandlerPlan {
    handler: String,
    runtime: String,
    language: Option<Language>,
    /// Module path without extension (`pkg/app`), and the function.
    module: String,
    function: String,
    /// Directories searched, normalised (`var/task`).
    dirs: Vec<String>,
}

impl HandlerPlan {
    pub fn new(config: &ImageConfig, ctx: &CheckContext) -> HandlerPlan {
        let runtime = ctx
            .runtime
            .clone()
            .or_else(|| {
                config
                    .env_var("AWS_EXECUTION_ENV")
                    .and_then(|v| v.strip_prefix("AWS_Lambda_"))
                    .map(str::to_string)
            })
            .unwrap_or_default();
        // AWS base images: ENTRYPOINT runs the runtime, CMD[0] is the handler.
        let handler = ctx
            .handler
            .clone()
            .or_else(|| {
                config
                    .cmd
                    .first()
                    .filter(|c| !config.entrypoint.is_empty() && !c.starts_with('/'))
                    .cloned()
            })
            .unwrap_or_default();
        let language = if runtime.starts_with("python") {
            Some(Language::Python)
        } else if runtime.starts_with("nodejs") {
            Some(Language::Node)
        } else {
            None
        };
        let (module, function) = handler
            .rsplit_once('.')
            .map(|(m, f)| (m.to_string(), f.to_string()))
            .unwrap_or_default();
        let module = match language {
            Some(Language::Python) => module.replace('.', "/"),
            _ => module,
        };
        let task_root = normalize(config.env_var("LAMBDA_TASK_ROOT").unwrap_or("/var/task"));
        let mut dirs = vec![task_root];
        if language == Some(Language::Python) {
            dirs.extend(["opt/python".to_string(), "var/runtime".to_string()]);
        }
        let language = language.filter(|_| !module.is_empty() && !function.is_empty());
        HandlerPlan {
            handler,
            runtime,
            language,
            module,
            function,
            dirs,
        }
    }

    fn candidates(&self) -> Vec<String> {
        let module = normalize(&self.module);
        let mut out = Vec::new();
        for dir in &self.dirs {
            match self.language {
                Some(Language::Python) => {
                    out.push(format!("{dir}/{module}.py"));
                    out.push(format!("{dir}/{module}/__init__.py"));
                }
                Some(Language::Node) => {
                    for ext in ["js", "mjs", "cjs"] {
                        out.push(format!("{dir}/{module}.{ext}"));
                    }
                }
                None => {}
            }
        }
        out
    }

    /// Paths whose content the walk must keep (Python modules only).
    pub fn wanted_files(&self) -> Vec<String> {
        match self.language {
            Some(Language::Python) => self.candidates(),
            _ => Vec::new(),
        }
    }
}

/// Whether Python source defines or imports `name` at some line.
fn python_defines(source: &str, name: &str) -> bool {
    let is_word = |s: &str| {
        s.starts_with(name) && !s[name.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_')
    };
    source.lines().any(|line| {
        let t = line.trim_start();
        let t = t.strip_prefix("async ").map(str::trim_start).unwrap_or(t);
        if let Some(rest) = t.strip_prefix("def ") {
            return is_word(rest.trim_start());
        }
        // `handler = make_handler()` at module level, or `from x import handler`.
        (line.starts_with(name) && is_word(line) && line[name.len()..].trim_start().starts_with('='))
            || (t.starts_with("from ")
                && t.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .any(|w| w == name))
    })
}

pub fn check_handler(plan: &HandlerPlan, view: &FlatView) -> Vec<Finding> {
    let Some(language) = &plan.language else {
        return Vec::new();
    };
    let label = format!("handler {} ({})", plan.handler, plan.runtime);
    for path in plan.candidates() {
        let Some((found, node)) = view.resolve_file(&path) else {
            continue;
        };
        if node.kind != EntryKind::File {
            continue;
        }
        if *language == Language::Node {
            return Vec::new();
        }
        let Some(head) = node.head() else {
            return Vec::new(); // reached through a link to a file not kept: cannot tell
        };
        let text = String::from_utf8_lossy(head);
        if python_defines(&text, &plan.function) || node.size > head.len() as u64 {
            return Vec::new();
        }
        return vec![Finding::new(
            &HANDLER_NOT_FOUND,
            format!("{label}: /{found} does not define {}", plan.function),
        )];
    }
    // A compiled module (`app.cpython-312-x86_64-linux-gnu.so`, `app.pyc`) also imports.
    if *language == Language::Python {
        let module = normalize(&plan.module);
        let stem = module.rsplit('/').next().unwrap_or("");
        for dir in &plan.dirs {
            let full = format!("{dir}/{module}");
            let compiled = view.under(parent(&full)).any(|(p, n)| {
                let name = p.rsplit('/').next().unwrap_or("");
                n.kind == EntryKind::File
                    && parent(p) == parent(&full)
                    && name.starts_with(&format!("{stem}."))
                    && (name.ends_with(".so") || name.ends_with(".pyc"))
            });
            if compiled {
                return Vec::new();
            }
        }
    }
    let looked: Vec<String> = plan.candidates().iter().map(|c| format!("/{c}")).collect();
    vec![Finding::new(
        &HANDLER_NOT_FOUND,
        format!("{label}: no module found (looked for {})", looked.join(", ")),
    )]
}

#[cfg(test)]
mod tests {
    use super::python_defines;

    #[test]
    fn finds_defs_assignments_and_imports() {
        assert!(python_defines(
            "import json\n\ndef handler(event, context):\n    pass\n",
            "handler"
        ));
        assert!(python_defines("async def handler(e, c): ...", "handler"));
        assert!(python_defines("handler = Mangum(app)\n", "handler"));
        assert!(python_defines("from .impl import handler\n", "handler"));
        assert!(!python_defines("def handler_v2(e, c): ...\n", "handler"));
        assert!(!python_defines("def other(e, c):\n    handler = 1\n", "handler"));
    }
}
