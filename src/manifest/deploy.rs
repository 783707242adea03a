//! The deploy side of a manifest (`[deploy]`, `[registry]`, the function's
//! name and architecture), read without validating the build tables: `deploy`
//! runs where the sources a build needs may not exist.

use std::path::Path;

use toml::Spanned;

use super::error::{Problem, line_col};
use super::schema::ManifestFile;
use super::{ManifestError, forms};
use crate::image::Architecture;

/// Deploy defaults from `lambda-img.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeploySettings {
    /// `[deploy] function`, else `function.name`.
    pub function: Option<String>,
    pub region: Option<String>,
    pub alias: Option<String>,
    pub publish: bool,
    /// `[registry] aws_auth` hosts.
    pub aws_auth: Vec<String>,
    pub architecture: Option<Architecture>,
}

/// Reads the deploy settings of the manifest at `path`; `Ok(None)` when there is no file.
pub fn read_deploy_settings(path: &Path) -> Result<Option<DeploySettings>, ManifestError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ManifestError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    deploy_settings_of(&text, path).map(Some)
}

/// The deploy settings of a manifest already read into `text` from `path`.
pub fn deploy_settings_of(text: &str, path: &Path) -> Result<DeploySettings, ManifestError> {
    let file: ManifestFile = toml::from_str(text).map_err(|e| ManifestError::Invalid {
        path: path.to_path_buf(),
        problems: vec![super::de_problem(&e, text, path)],
    })?;
    let mut problems = Vec::new();
    let mut report = |span: std::ops::Range<usize>, key: &str, message: String| {
        let (line, col) = line_col(text, span.start);
        problems.push(Problem {
            file: path.to_path_buf(),
            line,
            col,
            key: Some(key.to_string()),
            message,
        });
    };
    let mut settings = DeploySettings {
        function: Some(file.function.name.get_ref().clone()),
        architecture: file
            .function
            .architecture
            .as_ref()
            .map_or(Some(Architecture::X86_64), |a| Architecture::parse(a.get_ref())),
        ..Default::default()
    };
    if let Some(deploy) = &file.deploy {
        if let Some(f) = &deploy.function {
            if !function_ref(f.get_ref()) {
                report(
                    f.span(),
                    "deploy.function",
                    format!(
                        "deploy.function {:?} is not a Lambda function name or ARN: use 1 to 64 letters, digits, - or _, or arn:aws:lambda:REGION:ACCOUNT:function:NAME",
                        f.get_ref()
                    ),
                );
            }
            settings.function = Some(f.get_ref().clone());
        }
        if let Some(r) = &deploy.region {
            check(
                &mut report,
                r,
                "deploy.region",
                region_name,
                "an AWS region name such as us-east-1",
            );
            settings.region = Some(r.get_ref().clone());
        }
        if let Some(a) = &deploy.alias {
            check(
                &mut report,
                a,
                "deploy.alias",
                alias_name,
                "1 to 128 letters, digits, - or _, not all digits",
            );
            settings.alias = Some(a.get_ref().clone());
        }
        settings.publish = deploy.publish.unwrap_or(false);
    }
    if let Some(hosts) = file.registry.as_ref().and_then(|r| r.aws_auth.as_ref()) {
        for (i, h) in hosts.iter().enumerate() {
            let key = format!("registry.aws_auth[{i}]");
            check(
                &mut report,
                h,
                &key,
                host_name,
                "a registry host such as vpce-1.dkr.ecr.us-east-1.vpce.amazonaws.com or 127.0.0.1:5000",
            );
            settings.aws_auth.push(h.get_ref().clone());
        }
    }
    if problems.is_empty() {
        Ok(settings)
    } else {
        Err(ManifestError::Invalid {
            path: path.to_path_buf(),
            problems,
        })
    }
}

fn check(
    report: &mut impl FnMut(std::ops::Range<usize>, &str, String),
    value: &Spanned<String>,
    key: &str,
    ok: fn(&str) -> bool,
    expected: &str,
) {
    if !ok(value.get_ref()) {
        report(
            value.span(),
            key,
            format!("{key} {:?} is not valid: use {expected}", value.get_ref()),
        );
    }
}

/// A function name, or a function ARN (possibly qualified).
pub fn function_ref(s: &str) -> bool {
    forms::function_name(s) || (s.starts_with("arn:aws") && s.contains(":function:") && s.len() <= 170)
}

pub fn region_name(s: &str) -> bool {
    (4..=32).contains(&s.len())
        && s.contains('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

pub fn alias_name(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && !s.bytes().all(|b| b.is_ascii_digit())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn host_name(s: &str) -> bool {
    !s.is_empty()
        && !s.contains('/')
        && !s.contains("://")
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "[function]\nname = \"fn-a\"\nruntime = \"python3.12\"\nhandler = \"app.handler\"\n[base]\nimage = \"scratch\"\n";

    fn read(extra: &str) -> Result<Option<DeploySettings>, ManifestError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lambda-img.toml");
        std::fs::write(&path, format!("{BASE}{extra}")).unwrap();
        read_deploy_settings(&path)
    }

    #[test]
    fn defaults_come_from_the_function_table() {
        let s = read("").unwrap().unwrap();
        assert_eq!(s.function.as_deref(), Some("fn-a"));
        assert!(!s.publish);
        assert_eq!(s.architecture, Some(Architecture::X86_64));
    }

    #[test]
    fn deploy_and_registry_tables_are_read() {
        let s = read("[deploy]\nfunction = \"other\"\nregion = \"eu-west-1\"\nalias = \"live\"\npublish = true\n[registry]\naws_auth = [\"127.0.0.1:5000\"]\n")
            .unwrap()
            .unwrap();
        assert_eq!(s.function.as_deref(), Some("other"));
        assert_eq!(s.region.as_deref(), Some("eu-west-1"));
        assert_eq!(s.alias.as_deref(), Some("live"));
        assert!(s.publish);
        assert_eq!(s.aws_auth, vec!["127.0.0.1:5000".to_string()]);
    }

    #[test]
    fn bad_values_name_line_and_key() {
        let err = read("[deploy]\nalias = \"123\"\nregion = \"Mars\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("lambda-img.toml:8:9: deploy.alias \"123\""), "{err}");
        assert!(err.contains(":9:10: deploy.region \"Mars\""), "{err}");
        let err = read("[deploy]\nfunktion = \"x\"\n").unwrap_err().to_string();
        assert!(err.contains("funktion"), "{err}");
    }

    #[test]
    fn a_missing_manifest_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_deploy_settings(&dir.path().join("nope.toml")).unwrap(), None);
    }
}
