//! Before a push to ECR: the repository must exist (ECR, unlike other
//! registries, does not create one on push). `--create-repository` creates
//! it; without the flag a missing one is refused before any upload.

use crate::aws::{AwsError, AwsSession, RepositoryOptions, parse_ecr_host};
use crate::reference::{OutputRef, OutputTarget};
use crate::report::Reporter;

#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    #[error(
        "ECR repository {repository} does not exist in {region} (registry {registry}): pass --create-repository to create it (with --scan-on-push / --immutable-tags as wanted), or create it with `aws ecr create-repository --repository-name {repository}`; nothing was pushed"
    )]
    Missing {
        repository: String,
        region: String,
        registry: String,
    },
    #[error("cannot create ECR repository {repository}: {source}")]
    Create { repository: String, source: AwsError },
    #[error(transparent)]
    Aws(#[from] AwsError),
}

/// One ECR repository a build pushes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcrTarget {
    pub registry: String,
    pub repository: String,
    /// `None`: the session's region (an `aws_auth` host names none).
    pub region: Option<String>,
}

/// The ECR repositories among `outputs` (`registry:REF`): ECR hosts and `aws_auth` hosts.
pub fn ecr_targets(outputs: &[OutputRef], aws_auth: &[String]) -> Vec<EcrTarget> {
    let mut targets: Vec<EcrTarget> = Vec::new();
    for output in outputs {
        let OutputTarget::Registry(reference) = output.target() else {
            continue;
        };
        let bare = reference.registry.split(':').next().unwrap_or("");
        let region = match parse_ecr_host(&reference.registry) {
            Some(host) => Some(host.region),
            None if aws_auth.iter().any(|h| *h == reference.registry || h == bare) => None,
            None => continue,
        };
        let target = EcrTarget {
            registry: reference.registry.clone(),
            repository: reference.repository.clone(),
            region,
        };
        if !targets.contains(&target) {
            targets.push(target);
        }
    }
    targets
}

/// Makes sure each target repository exists, creating it when `create` is given.
/// Without `create`, a question AWS does not answer (no credentials: Docker's
/// config may still hold a password; no ecr:DescribeRepositories) only warns,
/// and the push goes on (the registry says if the repository is missing).
pub fn ensure_repositories(
    session: &AwsSession,
    targets: &[EcrTarget],
    create: Option<RepositoryOptions>,
    reporter: &dyn Reporter,
) -> Result<(), RepositoryError> {
    for t in targets {
        let region = t.region.as_deref();
        let exists = match session.repository_exists(region, &t.repository) {
            Ok(e) => e,
            Err(e) if create.is_none() => {
                reporter.warn(&format!(
                    "cannot check that ECR repository {} exists ({e}); pushing anyway",
                    t.repository
                ));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if exists {
            continue;
        }
        let Some(options) = create else {
            return Err(RepositoryError::Missing {
                repository: t.repository.clone(),
                region: session.region_or_default(region)?,
                registry: t.registry.clone(),
            });
        };
        reporter.step(&format!("creating ECR repository {}", t.repository));
        session
            .create_repository(region, &t.repository, options)
            .map_err(|source| RepositoryError::Create {
                repository: t.repository.clone(),
                source,
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ecr_and_aws_auth_outputs_are_targets() {
        let outputs = [
            "oci:./out".to_string(),
            "registry:123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app:1".to_string(),
            "registry:123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app:2".to_string(),
            "registry:127.0.0.1:5000/app:1".to_string(),
            "registry:docker.io/library/x:1".to_string(),
        ]
        .map(|o| OutputRef::parse(&o).unwrap());
        let t = ecr_targets(&outputs, &["127.0.0.1:5000".into()]);
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].repository, "team/app");
        assert_eq!(t[0].region.as_deref(), Some("eu-west-1"));
        assert_eq!(t[1].registry, "127.0.0.1:5000");
        assert_eq!(t[1].region, None);
    }
}
