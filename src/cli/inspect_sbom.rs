//! `lambda-img inspect --sbom IMAGE`: the SBOM attached to an image.

use super::print_data;
use crate::cache::Cache;
use crate::image::Architecture;
use crate::registry::RegistryOptions;
use crate::report::Reporter;

/// Prints the packages of the SBOM attached to `image` (with `json`, the
/// document's own bytes); stderr says which referrer it came from. For an
/// index, the SBOM is its `arch` child's.
pub fn run(
    image: &str,
    arch: Architecture,
    json: bool,
    options: &RegistryOptions,
    cache: &Cache,
    reporter: &dyn Reporter,
) -> anyhow::Result<()> {
    let found = crate::sink::attached::find(image, arch, options, cache, reporter)?;
    let picked = match &found.index {
        Some(index) => format!(" (linux/{arch} of index {index})"),
        None => String::new(),
    };
    reporter.step(&format!(
        "{image}: SBOM {} in referrer {} of {}{picked}",
        found.artifact_type, found.referrer, found.subject
    ));
    if json {
        return print_data(String::from_utf8_lossy(&found.document).trim_end());
    }
    let packages = crate::sbom::listing::packages(&found.document)
        .map_err(|e| anyhow::anyhow!("{image}: referrer {}: {e}", found.referrer))?;
    print_data(&crate::sbom::listing::render(&packages))
}
