//! ECR's control plane: the registry password (`GetAuthorizationToken`) and
//! repositories (`DescribeRepositories`, `CreateRepository`).

use std::fmt;
use std::time::{Duration, SystemTime};

use aws_config::Region;
use aws_sdk_ecr::types::{ImageScanningConfiguration, ImageTagMutability};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::session::sdk_error;
use super::{AwsError, AwsSession};

/// A registry password from `GetAuthorizationToken` (user `AWS`). `Debug`
/// never shows it.
#[derive(Clone)]
pub struct EcrToken {
    pub username: String,
    pub password: String,
    pub expires_at: SystemTime,
}

impl fmt::Debug for EcrToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EcrToken")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// How `--create-repository` creates a missing repository.
#[derive(Debug, Clone, Copy, Default)]
pub struct RepositoryOptions {
    pub scan_on_push: bool,
    pub immutable_tags: bool,
}

impl AwsSession {
    fn ecr(&self, region: Option<&str>) -> Result<aws_sdk_ecr::Client, AwsError> {
        let region = self.region_or_default(region)?;
        let config = aws_sdk_ecr::config::Builder::from(self.config())
            .region(Region::new(region))
            .build();
        Ok(aws_sdk_ecr::Client::from_conf(config))
    }

    /// Signs in to the caller's default registry in `region` (`None`: the session's).
    pub fn ecr_token(&self, region: Option<&str>) -> Result<EcrToken, AwsError> {
        const OP: &str = "GetAuthorizationToken";
        let client = self.ecr(region)?;
        let out = self
            .block_on(client.get_authorization_token().send())
            .map_err(|e| sdk_error("ECR", OP, e))?;
        let incomplete = |what| AwsError::Incomplete {
            service: "ECR",
            operation: OP,
            what,
        };
        let data = out
            .authorization_data()
            .first()
            .ok_or(incomplete("authorizationData"))?;
        let token = data
            .authorization_token()
            .ok_or(incomplete("authorizationToken"))?;
        let decoded = BASE64
            .decode(token.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or(incomplete("a base64 user:password authorizationToken"))?;
        let (username, password) = decoded
            .split_once(':')
            .ok_or(incomplete("a base64 user:password authorizationToken"))?;
        let expires_at = data
            .expires_at()
            .map(|t| {
                let secs = t.secs().max(0) as u64;
                SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
            })
            .ok_or(incomplete("expiresAt"))?;
        Ok(EcrToken {
            username: username.to_string(),
            password: password.to_string(),
            expires_at,
        })
    }

    /// Whether `repository` exists in the caller's registry in `region`.
    pub fn repository_exists(&self, region: Option<&str>, repository: &str) -> Result<bool, AwsError> {
        let client = self.ecr(region)?;
        match self.block_on(client.describe_repositories().repository_names(repository).send()) {
            Ok(out) => Ok(!out.repositories().is_empty()),
            Err(e) => {
                let err = sdk_error("ECR", "DescribeRepositories", e);
                if err.code() == Some("RepositoryNotFoundException") {
                    Ok(false)
                } else {
                    Err(err)
                }
            }
        }
    }

    /// Creates `repository`; one that already exists is left as it is.
    pub fn create_repository(
        &self,
        region: Option<&str>,
        repository: &str,
        options: RepositoryOptions,
    ) -> Result<(), AwsError> {
        let client = self.ecr(region)?;
        let mutability = if options.immutable_tags {
            ImageTagMutability::Immutable
        } else {
            ImageTagMutability::Mutable
        };
        let request = client
            .create_repository()
            .repository_name(repository)
            .image_tag_mutability(mutability)
            .image_scanning_configuration(
                ImageScanningConfiguration::builder()
                    .scan_on_push(options.scan_on_push)
                    .build(),
            );
        match self.block_on(request.send()) {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = sdk_error("ECR", "CreateRepository", e);
                if err.code() == Some("RepositoryAlreadyExistsException") {
                    Ok(())
                } else {
                    Err(err)
                }
            }
        }
    }
}
