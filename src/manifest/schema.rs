//! The serde types of `lambda-img.toml`, exactly as written (cargo-util-schemas style).
//!
//! Nothing here is checked beyond TOML types and unknown keys: values that
//! validation inspects are wrapped in [`Spanned`] so a problem can name the
//! line and column of the offending value. `validate` turns these into the
//! model.
//!
//! Room for a later section: `[build]` (settings that flags and
//! `LAMBDA_IMG_*` override) becomes a new optional field of [`ManifestFile`];
//! until then it is an unknown key.

use std::fmt;

use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use toml::Spanned;

/// A string value with its position in the file.
pub type SpannedString = Spanned<String>;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    pub function: FunctionTable,
    pub base: BaseTable,
    /// `[[layer]]` tables, in image order (static to dynamic).
    #[serde(default, rename = "layer")]
    pub layers: Vec<LayerTable>,
    #[serde(default)]
    pub code: Option<CodeTable>,
    #[serde(default)]
    pub image: Option<ImageTable>,
    #[serde(default)]
    pub dependencies: Option<DependenciesTable>,
    #[serde(default)]
    pub deploy: Option<DeployTable>,
    #[serde(default)]
    pub registry: Option<RegistryTable>,
    #[serde(default)]
    pub check: Option<CheckTable>,
    #[serde(default)]
    pub cache: Option<CacheTable>,
    /// `[system]`: packages from the base's package manager.
    #[serde(default)]
    pub system: Option<super::system::SystemTable>,
}

/// `[cache]`: the registry shared as a layer cache (`--cache-registry`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheTable {
    #[serde(default)]
    pub registry: Option<SpannedString>,
    #[serde(default)]
    pub readonly: Option<bool>,
}

/// `[check]`: rules tuned for this function (see `rules::policy`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckTable {
    #[serde(default)]
    pub allow: Vec<SpannedString>,
    #[serde(default)]
    pub deny: Vec<SpannedString>,
    #[serde(default)]
    pub strict: Option<bool>,
}

/// `[deploy]`: defaults of `lambda-img deploy` and `build --deploy`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployTable {
    #[serde(default)]
    pub function: Option<SpannedString>,
    #[serde(default)]
    pub region: Option<SpannedString>,
    #[serde(default)]
    pub alias: Option<SpannedString>,
    #[serde(default)]
    pub publish: Option<bool>,
}

/// `[registry]`: how registries are signed in to.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryTable {
    /// Hosts (`host[:port]`) signed in to with ECR's `GetAuthorizationToken`
    /// although they are not of ECR's form (VPC endpoints, proxies).
    #[serde(default)]
    pub aws_auth: Option<Vec<SpannedString>>,
}

/// `[dependencies]`: which keys apply depends on `function.runtime`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DependenciesTable {
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Python: a requirements file.
    #[serde(default)]
    pub requirements: Option<SpannedString>,
    /// Node.js: package.json and its lock.
    #[serde(default)]
    pub package_json: Option<SpannedString>,
    #[serde(default)]
    pub package_lock: Option<SpannedString>,
    /// Java: jar files or directories of jars.
    #[serde(default)]
    pub jars: Option<Spanned<Vec<SpannedString>>>,
    /// Custom runtime: the bootstrap executable.
    #[serde(default)]
    pub bootstrap: Option<SpannedString>,
    #[serde(default)]
    pub destination: Option<SpannedString>,
    #[serde(default)]
    pub split: Option<Spanned<i64>>,
}

/// `[function]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionTable {
    pub name: SpannedString,
    pub runtime: SpannedString,
    #[serde(default)]
    pub handler: Option<SpannedString>,
    #[serde(default)]
    pub architecture: Option<SpannedString>,
    /// For `run`: memory in MB, timeout in seconds, /tmp in MB, variables.
    #[serde(default)]
    pub memory: Option<Spanned<i64>>,
    #[serde(default)]
    pub timeout: Option<Spanned<i64>>,
    #[serde(default)]
    pub ephemeral_storage: Option<Spanned<i64>>,
    #[serde(default)]
    pub environment: OrderedStrings,
}

/// `[base]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseTable {
    pub image: SpannedString,
    /// Rewrite base layers that break a repairable rule (hard links, missing parents).
    #[serde(default)]
    pub repair: Option<bool>,
}

/// One `[[layer]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerTable {
    pub name: SpannedString,
    pub sources: Spanned<Vec<SpannedString>>,
    pub destination: SpannedString,
    #[serde(default)]
    pub include: Vec<SpannedString>,
    #[serde(default)]
    pub exclude: Vec<SpannedString>,
    /// A string of octal digits (`"0755"`) or a TOML octal integer (`0o755`);
    /// kept as a raw value so validation can explain a decimal `755`.
    #[serde(default)]
    pub mode: Option<Spanned<toml::Value>>,
}

/// `[code]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeTable {
    #[serde(default)]
    pub sources: Option<Spanned<Vec<SpannedString>>>,
    #[serde(default)]
    pub destination: Option<SpannedString>,
    #[serde(default)]
    pub include: Vec<SpannedString>,
    #[serde(default)]
    pub exclude: Vec<SpannedString>,
    #[serde(default)]
    pub default_excludes: Option<bool>,
    #[serde(default)]
    pub ignore_file: Option<SpannedString>,
}

/// `[image]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageTable {
    #[serde(default)]
    pub entrypoint: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    pub cmd: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    pub workdir: Option<SpannedString>,
    #[serde(default)]
    pub env: OrderedStrings,
    #[serde(default)]
    pub labels: OrderedStrings,
    #[serde(default)]
    pub format: Option<SpannedString>,
}

/// A table of string values, in the order written. The toml crate hands a
/// table over sorted by key unless built with `preserve_order`, so the entries
/// are put back in file order by their spans.
#[derive(Debug, Default)]
pub struct OrderedStrings(pub Vec<(SpannedString, SpannedString)>);

impl<'de> Deserialize<'de> for OrderedStrings {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OrderedStrings;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table of strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<SpannedString, SpannedString>()? {
                    out.push(entry);
                }
                out.sort_by_key(|(k, _): &(SpannedString, SpannedString)| k.span().start);
                Ok(OrderedStrings(out))
            }
        }
        d.deserialize_map(V)
    }
}
