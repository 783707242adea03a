//! The forms single values must take: handler per runtime, names, env keys,
//! file modes, image paths. Each check returns what was expected on failure.

use super::model::Runtime;

/// Lambda's limit on a handler string (`[^\s]+`, up to 128 characters).
const HANDLER_MAX: usize = 128;

/// Checks `handler` against the form `runtime` loads, returning the expected
/// form and an example when it does not fit.
pub fn check_handler(runtime: Runtime, handler: &str) -> Result<(), String> {
    if handler.is_empty() || handler.chars().any(char::is_whitespace) || handler.chars().count() > HANDLER_MAX
    {
        return Err(format!(
            "expected 1 to {HANDLER_MAX} characters without spaces{}",
            example(runtime)
                .map(|e| format!(", e.g. {e}"))
                .unwrap_or_default()
        ));
    }
    let fits = match runtime {
        Runtime::Python { .. } => python_handler(handler),
        Runtime::Node { .. } => node_handler(handler),
        Runtime::Java { .. } => java_handler(handler),
        Runtime::ProvidedAl2023 | Runtime::ProvidedAl2 | Runtime::None => true,
    };
    if fits {
        return Ok(());
    }
    Err(match runtime {
        Runtime::Python { .. } => {
            "expected module.function (the module may be a dotted or slashed path: pkg.mod.fn), e.g. app.lambda_handler"
        }
        Runtime::Node { .. } => "expected file.export (the file may sit in a directory: src/index.handler), e.g. index.handler",
        Runtime::Java { .. } => "expected package.Class::method or package.Class, e.g. example.Handler::handleRequest",
        _ => unreachable!("custom runtimes accept any handler"),
    }
    .to_string())
}

/// An example handler for messages.
pub fn example(runtime: Runtime) -> Option<&'static str> {
    match runtime {
        Runtime::Python { .. } => Some("app.lambda_handler"),
        Runtime::Node { .. } => Some("index.handler"),
        Runtime::Java { .. } => Some("example.Handler::handleRequest"),
        _ => None,
    }
}

fn identifier(s: &str, extra: &[char]) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_' || extra.contains(&c))
        && chars.all(|c| c.is_alphanumeric() || c == '_' || extra.contains(&c))
}

/// `module.function`; the module is a path of identifiers joined by `.` or `/`
/// (the Python runtime client turns `/` into `.`).
fn python_handler(h: &str) -> bool {
    let Some((module, function)) = h.rsplit_once('.') else {
        return false;
    };
    identifier(function, &[]) && module.split(['.', '/']).all(|seg| identifier(seg, &[]))
}

/// `file.export[.nested]`, optionally below directories; the Node runtime
/// client splits the last path segment at its first `.` and refuses `..`.
fn node_handler(h: &str) -> bool {
    if h.contains("..") || h.starts_with('/') {
        return false;
    }
    let (dirs, base) = h.rsplit_once('/').unwrap_or(("", h));
    let dirs_ok = dirs.is_empty() || dirs.split('/').all(|d| !d.is_empty());
    let Some((file, export)) = base.split_once('.') else {
        return false;
    };
    dirs_ok && !file.is_empty() && export.split('.').all(|seg| identifier(seg, &['$']))
}

/// `pkg.Class::method` or `pkg.Class` (a class implementing RequestHandler).
fn java_handler(h: &str) -> bool {
    let (class, method) = match h.split_once("::") {
        Some((class, method)) => (class, Some(method)),
        None => (h, None),
    };
    class.split('.').all(|seg| identifier(seg, &['$'])) && method.is_none_or(|m| identifier(m, &['$']))
}

/// Lambda function names: letters, digits, `-` and `_`, 1 to 64 characters.
pub fn function_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Layer names appear in reports and history: letters, digits, `.`, `-`, `_`.
pub fn layer_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Environment variable names as shells and Lambda accept them.
pub fn env_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// An absolute path in the image: starts with `/`, no `.`/`..` segments, no NUL.
pub fn image_path(path: &str) -> Result<(), &'static str> {
    if !path.starts_with('/') {
        return Err("must be an absolute path in the image, starting with /");
    }
    if path.contains('\0') {
        return Err("must not contain a NUL character");
    }
    if path.split('/').any(|seg| seg == "." || seg == "..") {
        return Err("must not contain . or .. segments");
    }
    Ok(())
}

/// A file mode written as a string of octal digits (`"0755"`, `"755"`), or an
/// integer whose literal in the file is octal (`0o755`); `raw` is the literal
/// as written. Returns the mode, or what to write instead.
pub fn file_mode(value: &toml::Value, raw: &str) -> Result<u32, String> {
    let mode = match value {
        toml::Value::String(s) => {
            if s.is_empty() || !s.chars().all(|c| c.is_digit(8)) {
                return Err(format!(
                    "mode \"{s}\" is not octal: write it like \"0755\" or 0o755"
                ));
            }
            u32::from_str_radix(s, 8)
                .map_err(|_| format!("mode \"{s}\" is too large: write it like \"0755\""))?
        }
        toml::Value::Integer(i) => {
            if !raw.trim_start_matches('+').starts_with("0o") {
                return Err(format!(
                    "mode {raw} is a decimal integer ({i:#o} in octal): write \"{raw}\" or 0o{raw} for an octal mode"
                ));
            }
            u32::try_from(*i).map_err(|_| format!("mode {raw} is negative: write it like \"0755\""))?
        }
        other => {
            return Err(format!(
                "mode must be a string of octal digits like \"0755\" or an octal integer like 0o755, not a {}",
                other.type_str()
            ));
        }
    };
    if mode > 0o777 {
        return Err(format!(
            "mode {mode:#o} sets setuid, setgid or sticky bits: use permission bits only, like \"0755\""
        ));
    }
    if mode & 0o444 != 0o444 {
        return Err(format!(
            "mode {mode:04o} leaves files unreadable to Lambda's non-root user: every file needs read for all, like \"0644\" or \"0755\""
        ));
    }
    Ok(mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handlers_per_runtime() {
        let py = Runtime::Python { minor: 12 };
        for ok in ["app.lambda_handler", "pkg.mod.handler", "src/app.handler", "_x.y"] {
            assert!(check_handler(py, ok).is_ok(), "{ok}");
        }
        for bad in [
            "app",
            "app.",
            ".handler",
            "app.lambda-handler",
            "1app.h",
            "a b.c",
            "",
        ] {
            assert!(check_handler(py, bad).is_err(), "{bad}");
        }
        let node = Runtime::Node { major: 20 };
        for ok in [
            "index.handler",
            "src/index.handler",
            "index.handlers.main",
            "my-file.$h",
        ] {
            assert!(check_handler(node, ok).is_ok(), "{ok}");
        }
        for bad in [
            "index",
            "../index.handler",
            "/abs/index.handler",
            "index.",
            ".handler",
            "a//b.c",
        ] {
            assert!(check_handler(node, bad).is_err(), "{bad}");
        }
        let java = Runtime::Java { major: 21 };
        for ok in [
            "example.Handler::handleRequest",
            "example.Handler",
            "Handler::run",
            "a.B$Inner::m",
        ] {
            assert!(check_handler(java, ok).is_ok(), "{ok}");
        }
        for bad in [
            "example.Handler::",
            "example..Handler",
            "example.Handler::a::b",
            "9x.Y",
        ] {
            assert!(check_handler(java, bad).is_err(), "{bad}");
        }
        assert!(check_handler(Runtime::ProvidedAl2023, "anything-goes").is_ok());
        assert!(check_handler(Runtime::None, "has space").is_err());
        assert!(check_handler(Runtime::None, &"x".repeat(129)).is_err());
    }

    #[test]
    fn modes() {
        let s = |v: &str| file_mode(&toml::Value::String(v.into()), v);
        assert_eq!(s("0755"), Ok(0o755));
        assert_eq!(s("644"), Ok(0o644));
        assert!(s("0700").unwrap_err().contains("unreadable"));
        assert!(s("4755").unwrap_err().contains("setuid"));
        assert!(s("0x755").unwrap_err().contains("not octal"));
        assert_eq!(file_mode(&toml::Value::Integer(0o755), "0o755"), Ok(0o755));
        assert!(
            file_mode(&toml::Value::Integer(755), "755")
                .unwrap_err()
                .contains("decimal")
        );
        assert!(
            file_mode(&toml::Value::Boolean(true), "true")
                .unwrap_err()
                .contains("boolean")
        );
    }

    #[test]
    fn image_paths() {
        assert!(image_path("/var/task").is_ok());
        assert!(image_path("/opt/assets/").is_ok());
        assert!(image_path("var/task").is_err());
        assert!(image_path("/var/../etc").is_err());
    }
}
