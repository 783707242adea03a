//! `.dockerignore` matching with Docker's documented rules (not gitignore's):
//!
//! - patterns are relative to the root of the copied directory; a leading `/`
//!   is dropped and each pattern is cleaned like Go's `filepath.Clean`;
//! - `*` and `?` never cross a `/`; `**` matches any number of directories,
//!   including none; `[...]` is a character class and `\` escapes;
//! - a pattern that matches a directory matches everything below it;
//! - `!` makes an exception, and the last pattern that matches a path decides;
//! - lines starting with `#` are comments; blank lines are skipped.
//!
//! So `__pycache__` matches only at the root and `**/__pycache__` at any depth.

use std::path::Path;

use super::LayerError;

/// The patterns of one ignore file, in order.
#[derive(Debug, Clone, Default)]
pub struct DockerIgnore {
    patterns: Vec<Pattern>,
}

#[derive(Debug, Clone)]
struct Pattern {
    /// `!pattern`: takes matching paths back in.
    exception: bool,
    tokens: Vec<Tok>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Lit(char),
    /// `*`: any run of characters other than `/`.
    Star,
    /// `?`: one character other than `/`.
    Quest,
    /// `[...]`: one character in (or, negated, not in) the ranges.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    /// `**` followed by more pattern: nothing, or anything ending in `/`.
    Dirs,
    /// `**` at the end: anything at all.
    All,
}

impl DockerIgnore {
    /// Reads an ignore file. `Ok(None)`-like emptiness is an empty matcher.
    pub fn from_file(path: &Path) -> Result<DockerIgnore, LayerError> {
        let text = std::fs::read(path).map_err(LayerError::io(path))?;
        let text = String::from_utf8(text).map_err(|_| LayerError::BadPattern {
            pattern: String::new(),
            file: path.display().to_string(),
            reason: "the ignore file is not valid UTF-8".into(),
        })?;
        DockerIgnore::parse(&text, &path.display().to_string())
    }

    /// Parses ignore-file text; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &str) -> Result<DockerIgnore, LayerError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut patterns = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') {
                continue;
            }
            let mut pattern = line.trim();
            if pattern.is_empty() {
                continue;
            }
            let exception = pattern.starts_with('!');
            if exception {
                pattern = pattern[1..].trim();
            }
            if pattern.is_empty() {
                return Err(bad(line, origin, "an exception `!` needs a pattern after it"));
            }
            let mut cleaned = clean(pattern);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
            let tokens = compile(&cleaned).map_err(|reason| bad(line, origin, reason))?;
            patterns.push(Pattern { exception, tokens });
        }
        Ok(DockerIgnore { patterns })
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// True when some `!` pattern exists, so an ignored directory may still
    /// hold files that are taken back in and must be walked.
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exception)
    }

    /// Whether `rel` (a `/`-separated path relative to the root, no leading `/`)
    /// is ignored: the last pattern matching it or one of its parents decides.
    pub fn is_ignored(&self, rel: &str) -> bool {
        if self.patterns.is_empty() {
            return false; // the common case: no ignore file, and no text to split per path
        }
        let text: Vec<char> = rel.chars().collect();
        let mut ignored = false;
        for p in &self.patterns {
            // An exception can only change an ignored path and vice versa.
            if p.exception != ignored {
                continue;
            }
            if p.matches_self_or_parent(&text) {
                ignored = !p.exception;
            }
        }
        ignored
    }
}

fn bad(pattern: &str, origin: &str, reason: &str) -> LayerError {
    LayerError::BadPattern {
        pattern: pattern.to_string(),
        file: origin.to_string(),
        reason: reason.to_string(),
    }
}

impl Pattern {
    fn matches_self_or_parent(&self, text: &[char]) -> bool {
        if glob_match(&self.tokens, text) {
            return true;
        }
        text.iter()
            .enumerate()
            .filter(|(_, c)| **c == '/')
            .any(|(i, _)| glob_match(&self.tokens, &text[..i]))
    }
}

/// Go's `filepath.Clean` on a `/`-separated pattern.
fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if matches!(parts.last(), Some(p) if *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

fn compile(pattern: &str) -> Result<Vec<Tok>, &'static str> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                // `**/` counts as `**`: the slash is part of the wildcard.
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                toks.push(if i == chars.len() { Tok::All } else { Tok::Dirs });
                continue;
            }
            '*' => toks.push(Tok::Star),
            '?' => toks.push(Tok::Quest),
            '\\' => {
                i += 1;
                toks.push(Tok::Lit(*chars.get(i).unwrap_or(&'\\')));
            }
            '[' => {
                let (tok, next) = compile_class(&chars, i + 1)?;
                toks.push(tok);
                i = next;
                continue;
            }
            c => toks.push(Tok::Lit(c)),
        }
        i += 1;
    }
    Ok(toks)
}

/// Parses a class body starting after `[`; returns the token and the index after `]`.
fn compile_class(chars: &[char], mut i: usize) -> Result<(Tok, usize), &'static str> {
    let negated = chars.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    loop {
        let mut c = *chars.get(i).ok_or("unterminated character class `[`")?;
        if c == ']' && !ranges.is_empty() {
            return Ok((Tok::Class { negated, ranges }, i + 1));
        }
        if c == '\\' {
            i += 1;
            c = *chars.get(i).ok_or("unterminated character class `[`")?;
        }
        i += 1;
        if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|n| *n != ']') {
            let mut hi = chars[i + 1];
            i += 2;
            if hi == '\\' {
                hi = *chars.get(i).ok_or("unterminated character class `[`")?;
                i += 1;
            }
            if hi < c {
                return Err("character class range is out of order");
            }
            ranges.push((c, hi));
        } else {
            ranges.push((c, c));
        }
    }
}

/// Whole-string match of `toks` against `text`, memoised so it stays
/// polynomial whatever the pattern.
fn glob_match(toks: &[Tok], text: &[char]) -> bool {
    let width = text.len() + 1;
    let mut memo = vec![None; (toks.len() + 1) * width];
    go(toks, text, 0, 0, &mut memo)
}

fn go(toks: &[Tok], text: &[char], p: usize, t: usize, memo: &mut [Option<bool>]) -> bool {
    let key = p * (text.len() + 1) + t;
    if let Some(v) = memo[key] {
        return v;
    }
    let result = match toks.get(p) {
        None => t == text.len(),
        Some(Tok::Lit(c)) => text.get(t) == Some(c) && go(toks, text, p + 1, t + 1, memo),
        Some(Tok::Quest) => text.get(t).is_some_and(|c| *c != '/') && go(toks, text, p + 1, t + 1, memo),
        Some(Tok::Class { negated, ranges }) => {
            text.get(t)
                .is_some_and(|c| ranges.iter().any(|(lo, hi)| lo <= c && c <= hi) != *negated)
                && go(toks, text, p + 1, t + 1, memo)
        }
        Some(Tok::Star) => {
            go(toks, text, p + 1, t, memo)
                || (text.get(t).is_some_and(|c| *c != '/') && go(toks, text, p, t + 1, memo))
        }
        Some(Tok::All) => (t..=text.len()).any(|k| go(toks, text, p + 1, k, memo)),
        Some(Tok::Dirs) => {
            go(toks, text, p + 1, t, memo)
                || (t..text.len()).any(|k| text[k] == '/' && go(toks, text, p + 1, k + 1, memo))
        }
    };
    memo[key] = Some(result);
    result
}

#[cfg(test)]
#[path = "ignore_tests.rs"]
mod tests;
