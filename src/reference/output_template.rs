//! `--output` as given, where `{function}` may stand for each function's
//! name (`build --recursive`). The placeholder does not parse as part of a
//! registry name, so the kind is parsed once here and the name is put into
//! the rest, which then parses as that function's [`OutputRef`].

use std::fmt;

use super::output_ref::{OutputKind, OutputRef, OutputRefError};

/// Replaced in each `--output` by the function's name.
pub const FUNCTION_PLACEHOLDER: &str = "{function}";

/// An output that may name its function with [`FUNCTION_PLACEHOLDER`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputTemplate {
    kind: OutputKind,
    /// What follows the kind's prefix, placeholder and all.
    rest: String,
}

impl OutputTemplate {
    /// Parses `text`; it must parse as the output of a function named
    /// `function`, so a malformed output is refused before any build.
    pub fn parse(text: &str) -> Result<OutputTemplate, OutputRefError> {
        let (kind, rest) = OutputKind::split(text)?;
        let template = OutputTemplate {
            kind,
            rest: rest.to_string(),
        };
        template.for_function("function")?;
        Ok(template)
    }

    /// True when the output names its function (so functions do not share it).
    pub fn names_function(&self) -> bool {
        self.rest.contains(FUNCTION_PLACEHOLDER)
    }

    /// The output of the function named `name`.
    pub fn for_function(&self, name: &str) -> Result<OutputRef, OutputRefError> {
        OutputRef::of_kind(self.kind, &self.rest.replace(FUNCTION_PLACEHOLDER, name))
    }

    /// The output exactly as written (a build of one function leaves
    /// `{function}` as it is).
    pub fn as_written(&self) -> Result<OutputRef, OutputRefError> {
        OutputRef::of_kind(self.kind, &self.rest)
    }
}

impl fmt::Display for OutputTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.kind.prefix(), self.rest)
    }
}

/// As the text, the way `--print-settings` shows it.
impl serde::Serialize for OutputTemplate {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::OutputTarget;

    #[test]
    fn each_function_gets_its_own_output_of_the_kind_parsed_once() {
        let t = OutputTemplate::parse("registry:127.0.0.1:5000/team/{function}:1").unwrap();
        assert!(t.names_function());
        assert_eq!(t.to_string(), "registry:127.0.0.1:5000/team/{function}:1");
        let out = t.for_function("orders").unwrap();
        assert_eq!(out.as_str(), "registry:127.0.0.1:5000/team/orders:1");
        let OutputTarget::Registry(r) = out.target() else {
            panic!("{out:?}")
        };
        assert_eq!(r.repository, "team/orders");
        assert!(t.as_written().is_err(), "braces are no registry name");

        let oci = OutputTemplate::parse("oci:out/{function}").unwrap();
        assert_eq!(
            oci.for_function("a").unwrap().target(),
            &OutputTarget::Oci {
                dir: "out/a".into(),
                tag: "latest".into()
            }
        );
        assert_eq!(oci.as_written().unwrap().as_str(), "oci:out/{function}");
        assert!(
            !OutputTemplate::parse("docker-archive:x.tar")
                .unwrap()
                .names_function()
        );
    }

    #[test]
    fn a_template_that_no_function_could_write_is_refused() {
        for bad in [
            "out.tar",
            "oci:",
            "registry:{function}@sha256:00",
            "registry:Team/{function}",
        ] {
            assert!(OutputTemplate::parse(bad).is_err(), "{bad}");
        }
        let name = OutputTemplate::parse("registry:r.io/{function}:1").unwrap();
        assert!(name.for_function("Upper").is_err(), "a name the registry refuses");
    }
}
