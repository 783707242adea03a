//! Manifest errors with `FILE:LINE:COL` positions, and the helpers that turn
//! toml's byte spans into them.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One thing wrong with a manifest, at a position in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The manifest as named to the user.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub col: usize,
    /// The dotted key the problem is about (`function.handler`, `layer[1].sources[0]`),
    /// when known.
    pub key: Option<String>,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.message
        )
    }
}

/// Why a manifest could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error(
        "cannot read {}: {source}; run lambda-img in the directory holding lambda-img.toml, or pass -C DIR or --manifest PATH",
        path.display()
    )]
    Read { path: PathBuf, source: std::io::Error },
    /// Every problem found, in file order; at least one.
    #[error("{}", render(problems))]
    Invalid { path: PathBuf, problems: Vec<Problem> },
}

impl ManifestError {
    /// The positioned problems (empty for a read error).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ManifestError::Read { .. } => &[],
            ManifestError::Invalid { problems, .. } => problems,
        }
    }

    /// The manifest file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            ManifestError::Read { path, .. } | ManifestError::Invalid { path, .. } => path,
        }
    }
}

fn render(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(Problem::to_string).collect();
    lines.join("\n")
}

/// 1-based line and character column of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line = before.matches('\n').count() + 1;
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

/// The dotted path of the innermost key whose key or value covers byte
/// `offset` (`image.env.LOG_LEVEL`, `layer[0].mode`), found by re-reading the
/// text with toml_edit, which keeps spans. None when the text does not parse.
pub fn key_at(text: &str, offset: usize) -> Option<String> {
    let doc = toml_edit::Document::parse(text).ok()?;
    let mut path = String::new();
    find_in_table(doc.as_table(), offset, &mut path);
    (!path.is_empty()).then_some(path)
}

fn covers(span: Option<Range<usize>>, offset: usize) -> bool {
    // An empty span (a missing value at end of input) still counts at its start.
    span.is_some_and(|r| r.start <= offset && (offset < r.end || r.start == r.end && offset == r.start))
}

fn push_key(path: &mut String, key: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
}

fn find_in_table(table: &toml_edit::Table, offset: usize, path: &mut String) {
    for (key, item) in table.iter() {
        let key_span = table.key(key).and_then(|k| k.span());
        match item {
            toml_edit::Item::Table(t) => {
                // A [header] table's span is its header only; its body follows.
                let mut probe = path.clone();
                push_key(&mut probe, key);
                let mut inner = probe.clone();
                find_in_table(t, offset, &mut inner);
                if inner != probe || covers(t.span(), offset) {
                    *path = inner;
                    return;
                }
            }
            toml_edit::Item::ArrayOfTables(arr) => {
                for (i, t) in arr.iter().enumerate() {
                    let probe = if path.is_empty() {
                        format!("{key}[{i}]")
                    } else {
                        format!("{path}.{key}[{i}]")
                    };
                    let mut inner = probe.clone();
                    find_in_table(t, offset, &mut inner);
                    if inner != probe || covers(t.span(), offset) {
                        *path = inner;
                        return;
                    }
                }
            }
            toml_edit::Item::Value(v) => {
                if covers(key_span.clone(), offset) || covers(v.span(), offset) {
                    push_key(path, key);
                    find_in_value(v, offset, path);
                    return;
                }
            }
            toml_edit::Item::None => {}
        }
    }
}

fn find_in_value(value: &toml_edit::Value, offset: usize, path: &mut String) {
    match value {
        toml_edit::Value::Array(arr) => {
            for (i, v) in arr.iter().enumerate() {
                if covers(v.span(), offset) {
                    path.push_str(&format!("[{i}]"));
                    find_in_value(v, offset, path);
                    return;
                }
            }
        }
        toml_edit::Value::InlineTable(t) => {
            for (key, v) in t.iter() {
                let key_span = t.key(key).and_then(|k| k.span());
                if covers(key_span, offset) || covers(v.span(), offset) {
                    push_key(path, key);
                    find_in_value(v, offset, path);
                    return;
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters_from_one() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        // "bé = " is 6 bytes but 5 characters.
        assert_eq!(line_col(text, 12), (2, 6));
        assert_eq!(line_col(text, 999), (3, 1));
    }

    #[test]
    fn key_at_names_nested_keys() {
        let text = "[function]\nname = 3\n[[layer]]\nname = 'a'\n[[layer]]\nsources = ['x', 4]\n[image]\nenv = { A = 'b', C = 1 }\n";
        let at = |needle: &str| key_at(text, text.find(needle).unwrap()).unwrap();
        assert_eq!(at("3"), "function.name");
        assert_eq!(at("4"), "layer[1].sources[1]");
        assert_eq!(at("1 }"), "image.env.C");
    }
}
