//! ECR sign-in for the registry client: when Docker's config has nothing for
//! an ECR host (or a host named with `--aws-auth` / `[registry] aws_auth`),
//! `GetAuthorizationToken` gives the password for user `AWS`. Tokens are kept
//! in memory only, per region, until shortly before they expire.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use super::{AwsError, AwsSession, EcrToken, parse_ecr_host};
use crate::registry::credentials::FallbackCredentials;
use crate::registry::{Credentials, RegistryError};

/// A token is not used in its last minutes: a push of a large image may
/// outlive it otherwise.
const EXPIRY_MARGIN: Duration = Duration::from_secs(5 * 60);

/// Set to `1` to accept a token whose `expiresAt` has already passed, for
/// emulators (moto answers with a 2015 date). Such a token is used for this
/// run only and never asked for again.
pub const ACCEPT_EXPIRED_ENV: &str = "LAMBDA_IMG_ECR_ACCEPT_EXPIRED";

/// The ECR sign-in the CLI puts into a run's registry options.
pub struct EcrSignIn {
    /// Hosts that are not of ECR's form but sign in the same way (VPC
    /// endpoints, proxies, tests), as `host[:port]`.
    aws_auth: Vec<String>,
    region: Option<String>,
    session: OnceLock<Result<AwsSession, String>>,
    tokens: Mutex<HashMap<String, EcrToken>>,
}

/// Names the hosts and region only: tokens are secrets.
impl std::fmt::Debug for EcrSignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EcrSignIn")
            .field("aws_auth", &self.aws_auth)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl EcrSignIn {
    /// `region` is used for `aws_auth` hosts (an ECR host names its own).
    pub fn new(aws_auth: Vec<String>, region: Option<String>) -> EcrSignIn {
        EcrSignIn {
            aws_auth,
            region,
            session: OnceLock::new(),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// The region to sign in to for `registry`, or `None` when it is not ours.
    fn region_for(&self, registry: &str) -> Option<Option<String>> {
        if let Some(host) = parse_ecr_host(registry) {
            return Some(Some(host.region));
        }
        let bare = registry.split(':').next().unwrap_or(registry);
        self.aws_auth
            .iter()
            .any(|h| h == registry || h == bare)
            .then(|| self.region.clone())
    }

    fn session(&self) -> Result<&AwsSession, String> {
        self.session
            .get_or_init(|| AwsSession::load(self.region.as_deref()).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// A token for `region`, from memory while it is fresh, else from ECR.
    fn token(&self, registry: &str, region: Option<&str>) -> Result<EcrToken, RegistryError> {
        let key = region.unwrap_or("").to_string();
        let now = SystemTime::now();
        let accept_expired = std::env::var(ACCEPT_EXPIRED_ENV).is_ok_and(|v| v == "1" || v == "true");
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = tokens.get(&key)
            && (accept_expired || fresh(t, now))
        {
            return Ok(t.clone());
        }
        let fail = |message: String| RegistryError::Credentials {
            message: format!("ECR sign-in for {registry}: {message}"),
        };
        let session = self.session().map_err(fail)?;
        let token = session
            .ecr_token(region)
            .map_err(|e: AwsError| fail(e.to_string()))?;
        if !fresh(&token, now) && !accept_expired {
            // Asking again would give the same token: refuse, do not loop.
            return Err(fail(format!(
                "GetAuthorizationToken returned a token that expires at {} (within {} minutes or already past): check the machine's clock; for an emulator that returns stale tokens set {ACCEPT_EXPIRED_ENV}=1",
                format_time(token.expires_at),
                EXPIRY_MARGIN.as_secs() / 60
            )));
        }
        tokens.insert(key, token.clone());
        Ok(token)
    }
}

fn fresh(token: &EcrToken, now: SystemTime) -> bool {
    token
        .expires_at
        .duration_since(now)
        .is_ok_and(|left| left > EXPIRY_MARGIN)
}

/// A time as RFC 3339 (UTC), for messages.
fn format_time(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    crate::image::config::rfc3339(secs)
}

impl FallbackCredentials for EcrSignIn {
    fn credentials(&self, registry: &str) -> Result<Option<Credentials>, RegistryError> {
        let Some(region) = self.region_for(registry) else {
            return Ok(None);
        };
        let token = self.token(registry, region.as_deref())?;
        Ok(Some(Credentials::new(token.username, token.password)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ecr_and_named_hosts_sign_in() {
        let s = EcrSignIn::new(
            vec!["127.0.0.1:5000".into(), "vpce.example".into()],
            Some("eu-west-1".into()),
        );
        assert_eq!(
            s.region_for("123456789012.dkr.ecr.us-east-2.amazonaws.com"),
            Some(Some("us-east-2".into()))
        );
        assert_eq!(s.region_for("127.0.0.1:5000"), Some(Some("eu-west-1".into())));
        assert_eq!(s.region_for("vpce.example:443"), Some(Some("eu-west-1".into())));
        assert_eq!(s.region_for("127.0.0.1:5001"), None);
        assert_eq!(s.region_for("docker.io"), None);
    }

    #[test]
    fn freshness_keeps_a_margin() {
        let now = SystemTime::now();
        let token = |secs: u64| EcrToken {
            username: "AWS".into(),
            password: "p".into(),
            expires_at: now + Duration::from_secs(secs),
        };
        assert!(fresh(&token(12 * 3600), now));
        assert!(!fresh(&token(60), now));
        let past = EcrToken {
            expires_at: now - Duration::from_secs(1),
            ..token(0)
        };
        assert!(!fresh(&past, now));
        assert!(!format!("{past:?}").contains("\"p\""));
    }

    #[test]
    fn times_format_as_rfc3339() {
        assert_eq!(format_time(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_420_070_400);
        assert_eq!(format_time(t), "2015-01-01T00:00:00Z");
    }
}
