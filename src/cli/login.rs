//! `lambda-img login`.

use clap::Args;

use super::{GlobalArgs, print_data};
use crate::registry::{LoginOptions, login};

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The registry (`host[:port]`, `docker.io`, an ECR registry, ...).
    pub registry: String,
}

pub fn run(global: &GlobalArgs, args: LoginArgs) -> anyhow::Result<()> {
    let mut options = global.registry_options()?;
    let Some(credentials) = options.credentials.take() else {
        anyhow::bail!(
            "login needs --username and --password-stdin, e.g. \
             `aws ecr get-login-password | lambda-img login --username AWS --password-stdin REGISTRY`"
        );
    };
    let outcome = login(&LoginOptions {
        registry: args.registry,
        credentials,
        docker_config_dir: None,
        registry_options: options,
    })?;
    crate::report::Reporter::step(
        &global.reporter(),
        &format!(
            "logged in to {}; credentials stored in {:?}",
            outcome.registry, outcome.stored_in
        ),
    );
    print_data(&outcome.registry)
}
