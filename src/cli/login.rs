//! `lambda-img login`.

use clap::Args;

use super::{GlobalArgs, print_data};
use crate::registry::{CredentialStore, LoginOptions, login};

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The registry (`host[:port]`, `docker.io`, an ECR registry, ...).
    pub registry: String,
}

pub fn run(global: &GlobalArgs, args: LoginArgs) -> anyhow::Result<()> {
    let usage = || {
        super::UsageError(
            "login needs --username and --password-stdin, e.g. \
             `aws ecr get-login-password | lambda-img login --username AWS --password-stdin REGISTRY`"
                .into(),
        )
    };
    if global.username.is_none() {
        return Err(usage().into());
    }
    // The credentials are for the host logged in to, and only for it.
    let host = crate::registry::login_host(&args.registry)?;
    let target = super::CredentialTarget::none("login", "").with_host(&host, "login");
    let mut options = global.registry_options(&target)?;
    let credentials = options
        .credentials
        .take()
        .and_then(|scoped| scoped.for_registry(&host).cloned());
    let Some(credentials) = credentials else {
        return Err(usage().into());
    };
    let outcome = login(&LoginOptions {
        registry: args.registry,
        credentials,
        docker_config_dir: None,
        registry_options: options,
    })?;
    let stored_in = match &outcome.stored_in {
        CredentialStore::ConfigFile(path) => path.display().to_string(),
        CredentialStore::Helper(name) => format!("the credential helper docker-credential-{name}"),
    };
    crate::report::Reporter::step(
        &global.reporter(),
        &format!(
            "logged in to {}; credentials stored in {stored_in}",
            outcome.registry
        ),
    );
    print_data(&outcome.registry)
}
