//! Which registry host a command's `--username` + `--password-stdin` belong
//! to: the host of what the command pushes to or reads by name (build's
//! `registry:` outputs, the REF of check/inspect/run/deploy, pin's and
//! init's base, login's host). One password belongs to one host, so a
//! command with none (a build to an OCI layout only) or with several
//! (outputs on two registries) refuses the flags with a usage error rather
//! than guess; every other host a command talks to (a base elsewhere, a
//! cache registry, a mirror) gets Docker's config, helpers or ECR sign-in.

use std::path::Path;

use super::UsageError;
use crate::reference::{ImageRef, ImageTarget, OutputTarget, OutputTemplate};

/// The registry hosts a command's explicit credentials may be for, found
/// from its arguments before the password is read.
#[derive(Debug, Clone)]
pub struct CredentialTarget {
    /// The command, for messages (`build`, `check`, ...).
    command: &'static str,
    /// Each host with what named it (`--output registry:...`), in order.
    hosts: Vec<(String, String)>,
    /// Why there is no host, when there is none (said in the refusal).
    none: String,
    /// Why no one host can be named at all (said in the refusal).
    problem: Option<String>,
}

impl CredentialTarget {
    /// No registry target, for the reason given (`it writes no registry: output`).
    pub fn none(command: &'static str, why: impl Into<String>) -> CredentialTarget {
        CredentialTarget {
            command,
            hosts: Vec::new(),
            none: why.into(),
            problem: None,
        }
    }

    /// Adds `host`, named by `what`.
    pub fn with_host(mut self, host: &str, what: impl Into<String>) -> CredentialTarget {
        self.hosts.push((host.to_string(), what.into()));
        self
    }

    /// Adds the registry host of an image `source` (`oci:`, `docker-archive:`
    /// and `scratch` name none); one that does not parse is left to the
    /// command, which reports it.
    pub fn with_image(self, source: &str) -> CredentialTarget {
        match ImageRef::parse(source).map(|r| r.target().clone()) {
            Ok(ImageTarget::Registry(reference)) => {
                let host = reference.registry.clone();
                self.with_host(&host, source.to_string())
            }
            _ => self,
        }
    }

    /// `build`: the hosts of its `registry:` outputs. `{function}` of
    /// `--recursive` may stand in the repository; in the host it would make
    /// the host differ per function, which is refused.
    pub fn of_outputs(outputs: &[OutputTemplate]) -> CredentialTarget {
        let mut target = CredentialTarget::none(
            "build",
            "it writes no registry: output (oci: and docker-archive: outputs need no registry credentials)",
        );
        let placeholder = crate::build_all::FUNCTION_PLACEHOLDER;
        for output in outputs {
            let host_for = |name: &str| match output.for_function(name) {
                Ok(parsed) => match parsed.target() {
                    OutputTarget::Registry(reference) => Some(reference.registry.clone()),
                    _ => None,
                },
                Err(_) => None,
            };
            let Some(host) = host_for("function") else {
                continue;
            };
            if host_for("other") != Some(host.clone()) {
                target.problem = Some(format!(
                    "--username/--password-stdin: the registry host of --output {output} depends on {placeholder}, so the credentials would have no one host; put {placeholder} in the repository path, or drop the flags and log in to each host with `lambda-img login HOST`"
                ));
            }
            target = target.with_host(&host, format!("--output {output}"));
        }
        target
    }

    /// `pin`, `init`: the host of each manifest's `[base] image` (a local
    /// or unreadable base names none; the command reports that itself).
    pub fn of_bases(command: &'static str, manifests: &[&Path]) -> CredentialTarget {
        let mut target = CredentialTarget::none(command, "no manifest it reads has a registry base image");
        for path in manifests {
            let Ok(text) = std::fs::read_to_string(path) else {
                continue;
            };
            let Ok(base) = crate::pin::base_image(&text, path) else {
                continue;
            };
            let before = target.hosts.len();
            target = target.with_image(&base);
            if let Some((_, what)) = target.hosts.get_mut(before) {
                *what = format!("the base {what} of {}", path.display());
            }
        }
        target
    }

    /// The one host the credentials are for, or why the flags are refused.
    pub fn host(&self) -> Result<String, UsageError> {
        if let Some(problem) = &self.problem {
            return Err(UsageError(problem.clone()));
        }
        let mut distinct: Vec<&(String, String)> = Vec::new();
        for entry in &self.hosts {
            let canonical = crate::registry::ScopedCredentials::canonical_host(&entry.0);
            if !distinct
                .iter()
                .any(|(h, _)| crate::registry::ScopedCredentials::canonical_host(h) == canonical)
            {
                distinct.push(entry);
            }
        }
        match distinct.as_slice() {
            [(host, _)] => Ok(host.clone()),
            [] => Err(UsageError(format!(
                "--username/--password-stdin: {} talks to no registry they could be for: {}. Explicit credentials go only to the registry a command pushes to or reads by name; drop the flags (other registries use Docker's config, credential helpers or ECR sign-in; `lambda-img login HOST` stores credentials there)",
                self.command, self.none
            ))),
            several => Err(UsageError(format!(
                "--username/--password-stdin: {} talks to several registries ({}), and one password belongs to one host; drop the flags and store each host's credentials with `lambda-img login HOST` (Docker's config.json), or push to one registry per run",
                self.command,
                several
                    .iter()
                    .map(|(h, what)| format!("{h} for {what}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }
}

/// Commands that talk to no registry refuse `--password-stdin`, which
/// they would otherwise ignore (a password read and dropped is a mistake
/// the user should hear of). `LAMBDA_IMG_USERNAME` alone, set for a whole
/// CI job, is not refused.
pub fn refuse_unused(global: &super::GlobalArgs, command: &super::Command) -> Result<(), UsageError> {
    use super::Command as C;
    let name = match command {
        C::Cache(_) => "cache",
        C::Completions(_) => "completions",
        C::Man(_) => "man",
        C::Explain(_) => "explain",
        C::Plan(_) => "plan",
        _ => return Ok(()),
    };
    if !global.password_stdin {
        return Ok(());
    }
    Err(UsageError(format!(
        "--password-stdin: `lambda-img {name}` talks to no registry; drop --username and --password-stdin"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outputs(list: &[&str]) -> Vec<OutputTemplate> {
        list.iter().map(|s| OutputTemplate::parse(s).unwrap()).collect()
    }

    #[test]
    fn a_build_is_scoped_to_its_one_registry_output_host() {
        let t = CredentialTarget::of_outputs(&outputs(&[
            "oci:out",
            "registry:reg.b:5000/app:1",
            "registry:reg.b:5000/app:latest",
        ]));
        assert_eq!(t.host().unwrap(), "reg.b:5000");
        // `{function}` in the repository keeps one host.
        let t = CredentialTarget::of_outputs(&outputs(&["registry:reg.b:5000/fleet/{function}:1"]));
        assert_eq!(t.host().unwrap(), "reg.b:5000");
    }

    #[test]
    fn no_registry_target_or_several_hosts_are_refused() {
        let none = CredentialTarget::of_outputs(&outputs(&["oci:out", "docker-archive:x.tar"]));
        let msg = none.host().unwrap_err().0;
        assert!(msg.contains("build") && msg.contains("no registry"), "{msg}");
        let two = CredentialTarget::of_outputs(&outputs(&["registry:a:1/x", "registry:b:2/x"]));
        let msg = two.host().unwrap_err().0;
        assert!(msg.contains("a:1") && msg.contains("b:2"), "{msg}");
        let varying = CredentialTarget::of_outputs(&outputs(&["registry:{function}.example.com/x:1"]));
        assert!(varying.host().unwrap_err().0.contains("{function}"));
    }

    #[test]
    fn image_sources_name_their_registry_and_local_ones_none() {
        let t = CredentialTarget::none("inspect", "local")
            .with_image("oci:dir")
            .with_image("docker-archive:x.tar")
            .with_image("127.0.0.1:5000/app:1");
        assert_eq!(t.host().unwrap(), "127.0.0.1:5000");
        let t = t.with_image("registry:127.0.0.1:5000/other@sha256:".to_string().as_str());
        // An unparsable reference adds nothing; the command reports it.
        assert_eq!(t.host().unwrap(), "127.0.0.1:5000");
        let t = t.with_image("docker.io/library/python:3");
        assert!(t.host().is_err());
        assert_eq!(
            CredentialTarget::none("check", "x")
                .with_image("python:3")
                .host()
                .unwrap(),
            "docker.io"
        );
    }
}
