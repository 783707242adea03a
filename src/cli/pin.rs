//! `lambda-img pin`.

use std::path::PathBuf;

use clap::Args;

use super::{GlobalArgs, print_data};
use crate::pin::pin_base;

#[derive(Debug, Args)]
pub struct PinArgs {
    /// The function manifest whose `[base] image` is pinned.
    #[arg(long, value_name = "PATH", default_value = "lambda-img.toml")]
    pub manifest: PathBuf,
    /// The architecture whose image the tag must have, over `function.architecture`.
    #[arg(long, value_parser = super::check::parse_arch, env = "LAMBDA_IMG_ARCH")]
    pub arch: Option<crate::image::Architecture>,
}

pub fn run(global: &GlobalArgs, args: PinArgs) -> anyhow::Result<()> {
    let reporter = global.reporter();
    // The architecture decides which child of an index must exist.
    let arch = match args.arch {
        Some(arch) => arch,
        None => crate::manifest::read_architecture(&args.manifest)?,
    };
    let outcome = pin_base(&args.manifest, arch, &global.registry_options()?, &reporter)?;
    if outcome.changed {
        crate::report::Reporter::step(
            &reporter,
            &format!(
                "{}: base {} → {}",
                args.manifest.display(),
                outcome.before,
                outcome.after
            ),
        );
    } else {
        crate::report::Reporter::step(
            &reporter,
            &format!("{}: base already pinned", args.manifest.display()),
        );
    }
    print_data(&outcome.after)
}
