//! `deploy`: point a Lambda function at a pushed image by digest, the way
//! Lambda itself would want it. Everything Lambda would fail on later is
//! refused first (not an image function, another architecture, a repository
//! in another region, an image `check` rejects); the update carries the
//! `RevisionId` read before so a concurrent change is not overwritten; a
//! failed update is explained with the `check` rules that cover it.

pub mod last_build;
mod reasons;
pub mod repository;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::aws::{AliasChange, AwsError, AwsSession, FunctionInfo, UpdateRequest, parse_ecr_host};
use crate::cache::Cache;
use crate::check::{CheckOpError, CheckOptions, check};
use crate::image::Architecture;
use crate::registry::{Reference, ReferenceError};
use crate::report::Reporter;
use crate::rules::{Finding, Limits, has_errors, render_findings};
use crate::source::SourceOptions;

pub use last_build::LastBuildError;
pub use reasons::{ReasonMapping, explain, map_reason};

/// What to deploy where.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    /// `REPO@sha256:...`; `None`: the image the project's last build pushed.
    pub image: Option<String>,
    /// Where `.lambda-img/last-build.json` is looked for.
    pub project_dir: PathBuf,
    /// A function name or ARN.
    pub function: String,
    /// `None`: the chain's region (`AWS_REGION`, the profile's).
    pub region: Option<String>,
    /// Publish a version once the update succeeded (implied by `alias`).
    pub publish: bool,
    /// Point this alias at the published version (created when missing).
    pub alias: Option<String>,
    /// Polling of `LastUpdateStatus`: every `poll`, for at most `wait_timeout`.
    pub poll: Duration,
    pub wait_timeout: Duration,
    pub limits: Limits,
    pub source_options: SourceOptions,
}

impl DeployOptions {
    pub fn new(function: impl Into<String>, project_dir: PathBuf) -> DeployOptions {
        DeployOptions {
            image: None,
            project_dir,
            function: function.into(),
            region: None,
            publish: false,
            alias: None,
            // botocore's FunctionUpdatedV2 waiter: every second, 300 tries.
            poll: Duration::from_secs(1),
            wait_timeout: Duration::from_secs(300),
            limits: Limits::default(),
            source_options: SourceOptions::default(),
        }
    }
}

/// Seconds each phase took.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    pub check_seconds: f64,
    pub update_seconds: f64,
    pub wait_seconds: f64,
    pub publish_seconds: f64,
    pub total_seconds: f64,
}

/// What `deploy` did (`--json` prints it).
#[derive(Debug, Clone, Serialize)]
pub struct DeployOutcome {
    pub function: String,
    pub function_arn: String,
    pub region: String,
    /// The image the function ran before (`ImageUri`).
    pub old_image: Option<String>,
    pub new_image: String,
    pub digest: String,
    /// The published version, or `$LATEST`.
    pub version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<AliasReport>,
    pub revision_id: Option<String>,
    pub findings: Vec<Finding>,
    pub timings: Timings,
}

#[derive(Debug, Clone, Serialize)]
pub struct AliasReport {
    pub name: String,
    pub arn: String,
    pub previous_version: Option<String>,
    pub version: String,
}

impl From<AliasChange> for AliasReport {
    fn from(a: AliasChange) -> Self {
        AliasReport {
            name: a.name,
            arn: a.arn,
            previous_version: a.previous_version,
            version: a.version,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error(transparent)]
    LastBuild(#[from] LastBuildError),
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(
        "{image} is not pinned by digest: deploy REPO@sha256:... (Lambda resolves a tag only once, so a tag would not say what runs)"
    )]
    NotByDigest { image: String },
    #[error(
        "function {function} was not found in {region}: create it first (package type Image), or pass --function / --region ([deploy] function / region in lambda-img.toml)"
    )]
    FunctionNotFound { function: String, region: String },
    #[error(
        "function {function} has package type {package_type}, not Image: lambda-img deploys container images only; nothing was changed"
    )]
    NotImage { function: String, package_type: String },
    #[error(
        "{image} is in a repository in {image_region}, but function {function} is in {region}: Lambda pulls only from the function's region; push to an ECR repository in {region}. Nothing was changed"
    )]
    RegionMismatch {
        image: String,
        image_region: String,
        function: String,
        region: String,
    },
    #[error(
        "function {function} runs on {function_arch}, but {image} is not built for it: {detail}. Build for {function_arch} (function.architecture in lambda-img.toml) or change the function's architecture; nothing was changed"
    )]
    ArchMismatch {
        function: String,
        function_arch: String,
        image: String,
        detail: String,
    },
    #[error("{image} fails `lambda-img check`, so Lambda would refuse it; nothing was changed:\n{findings}")]
    CheckFailed { image: String, findings: String },
    #[error(transparent)]
    Check(#[from] CheckOpError),
    #[error(
        "function {function} changed since it was read (RevisionId {revision} is stale): someone else updated it; nothing was changed. Run deploy again"
    )]
    StaleRevision { function: String, revision: String },
    #[error(
        "access denied for {operation} on function {function}: {message}. The credentials in use need lambda:GetFunction, lambda:UpdateFunctionCode, lambda:PublishVersion and lambda:UpdateAlias/CreateAlias on it"
    )]
    AccessDenied {
        function: String,
        operation: &'static str,
        message: String,
    },
    #[error("the update of function {function} to {image} failed:\n{explanation}")]
    UpdateFailed {
        function: String,
        image: String,
        explanation: String,
    },
    #[error(
        "function {function} was still updating after {seconds} s: see its LastUpdateStatus with `aws lambda get-function`"
    )]
    UpdateTimeout { function: String, seconds: u64 },
}

/// Maps a Lambda error of `operation` to the deploy error that explains it.
fn lambda_error(
    err: AwsError,
    function: &str,
    operation: &'static str,
    revision: Option<&str>,
) -> DeployError {
    match err.code() {
        Some("PreconditionFailedException") => DeployError::StaleRevision {
            function: function.to_string(),
            revision: revision.unwrap_or("?").to_string(),
        },
        Some("AccessDeniedException") | Some("AccessDenied") | Some("UnauthorizedOperation") => {
            let message = match &err {
                AwsError::Api { message, .. } => message.clone(),
                other => other.to_string(),
            };
            DeployError::AccessDenied {
                function: function.to_string(),
                operation,
                message,
            }
        }
        _ => DeployError::Aws(err),
    }
}

/// The image as Lambda wants it: `registry/repository@sha256:...` (a tag beside
/// the digest is dropped), and its digest.
pub fn image_uri(image: &str) -> Result<(String, String, Reference), DeployError> {
    let reference = Reference::parse(image)?;
    let Some(digest) = &reference.digest else {
        return Err(DeployError::NotByDigest {
            image: image.to_string(),
        });
    };
    let uri = format!("{}/{}@{}", reference.registry, reference.repository, digest);
    Ok((uri, digest.to_string(), reference))
}

fn lambda_arch(arch: &str) -> Option<Architecture> {
    Architecture::parse(arch)
}

/// Deploys: resolve, refuse what Lambda would fail on, update, wait, publish, alias.
pub fn deploy(
    options: &DeployOptions,
    session: &AwsSession,
    cache: &Cache,
    reporter: &dyn Reporter,
) -> Result<DeployOutcome, DeployError> {
    let start = Instant::now();
    let mut timings = Timings::default();
    let image = match &options.image {
        Some(i) => i.clone(),
        None => {
            let pushed = last_build::pushed_image(&options.project_dir)?;
            reporter.step(&format!("deploying the last build's image {pushed}"));
            pushed
        }
    };
    let (uri, digest, reference) = image_uri(&image)?;
    let region = session.region_or_default(options.region.as_deref())?;
    let function = options.function.as_str();

    // A repository in another region: refused before any call.
    if let Some(host) = parse_ecr_host(&reference.registry)
        && host.region != region
    {
        return Err(DeployError::RegionMismatch {
            image: uri,
            image_region: host.region,
            function: function.to_string(),
            region,
        });
    }

    reporter.step(&format!("reading function {function} in {region}"));
    let before = session
        .get_function(Some(&region), function)
        .map_err(|e| match e.code() {
            Some("ResourceNotFoundException") => DeployError::FunctionNotFound {
                function: function.to_string(),
                region: region.clone(),
            },
            _ => lambda_error(e, function, "GetFunction", None),
        })?;
    refuse_non_image(&before, function)?;
    let function_arch = before
        .architectures
        .first()
        .cloned()
        .unwrap_or_else(|| "x86_64".to_string());

    let check_start = Instant::now();
    let findings = check_image(options, &uri, &function_arch, function, cache, reporter)?;
    timings.check_seconds = check_start.elapsed().as_secs_f64();

    reporter.step(&format!("updating {function} to {uri}"));
    let update_start = Instant::now();
    let request = UpdateRequest {
        function,
        image_uri: &uri,
        revision_id: before.revision_id.as_deref(),
    };
    let updated = session
        .update_function_code(Some(&region), &request)
        .map_err(|e| lambda_error(e, function, "UpdateFunctionCode", before.revision_id.as_deref()))?;
    timings.update_seconds = update_start.elapsed().as_secs_f64();

    let wait_start = Instant::now();
    let after = wait_for_update(options, session, &region, function, &uri, reporter)?;
    timings.wait_seconds = wait_start.elapsed().as_secs_f64();

    let mut version = "$LATEST".to_string();
    let mut alias = None;
    if options.publish || options.alias.is_some() {
        let publish_start = Instant::now();
        reporter.step(&format!("publishing a version of {function}"));
        let revision = after.revision_id.as_deref().or(updated.revision_id.as_deref());
        let hex = digest.trim_start_matches("sha256:");
        version = session
            .publish_version(
                Some(&region),
                function,
                hex,
                revision,
                &format!("lambda-img deploy {uri}"),
            )
            .map_err(|e| lambda_error(e, function, "PublishVersion", revision))?;
        if let Some(name) = &options.alias {
            reporter.step(&format!("pointing alias {name} at version {version}"));
            let change = session
                .set_alias(Some(&region), function, name, &version)
                .map_err(|e| lambda_error(e, function, "UpdateAlias", None))?;
            alias = Some(AliasReport::from(change));
        }
        timings.publish_seconds = publish_start.elapsed().as_secs_f64();
    }
    timings.total_seconds = start.elapsed().as_secs_f64();
    Ok(DeployOutcome {
        function: if before.name.is_empty() {
            function.to_string()
        } else {
            before.name.clone()
        },
        function_arn: before.arn.clone(),
        region,
        old_image: before.image_uri.clone(),
        new_image: uri,
        digest,
        version,
        alias,
        revision_id: after.revision_id,
        findings,
        timings,
    })
}

fn refuse_non_image(info: &FunctionInfo, function: &str) -> Result<(), DeployError> {
    match info.package_type.as_deref() {
        Some("Image") => Ok(()),
        other => Err(DeployError::NotImage {
            function: function.to_string(),
            package_type: other.unwrap_or("Zip").to_string(),
        }),
    }
}

/// Runs `check` for the function's architecture; an architecture finding
/// becomes its own refusal, any other error finding refuses the image.
fn check_image(
    options: &DeployOptions,
    uri: &str,
    function_arch: &str,
    function: &str,
    cache: &Cache,
    reporter: &dyn Reporter,
) -> Result<Vec<Finding>, DeployError> {
    let arch = lambda_arch(function_arch);
    let outcome = check(
        &CheckOptions {
            source: uri.to_string(),
            arch,
            runtime: None,
            handler: None,
            limits: options.limits,
            source_options: options.source_options.clone(),
            rules: Default::default(),
        },
        cache,
        reporter,
    )?;
    let arch_rules = ["LI021", "LI022"];
    if let Some(f) = outcome
        .findings
        .iter()
        .find(|f| arch_rules.contains(&f.rule_id) && f.severity == crate::rules::Severity::Error)
    {
        return Err(DeployError::ArchMismatch {
            function: function.to_string(),
            function_arch: function_arch.to_string(),
            image: uri.to_string(),
            detail: format!("{} {}: {}", f.rule_id, f.rule_name, f.message),
        });
    }
    if has_errors(&outcome.findings) {
        return Err(DeployError::CheckFailed {
            image: uri.to_string(),
            findings: render_findings(&outcome.findings).trim_end().to_string(),
        });
    }
    Ok(outcome.findings)
}

/// Polls `GetFunction` until `LastUpdateStatus` leaves `InProgress`.
fn wait_for_update(
    options: &DeployOptions,
    session: &AwsSession,
    region: &str,
    function: &str,
    uri: &str,
    reporter: &dyn Reporter,
) -> Result<FunctionInfo, DeployError> {
    let start = Instant::now();
    let mut last_status = String::new();
    loop {
        let info = session
            .get_function(Some(region), function)
            .map_err(|e| lambda_error(e, function, "GetFunction", None))?;
        let status = info
            .last_update_status
            .clone()
            .unwrap_or_else(|| "Successful".into());
        if status != last_status {
            reporter.step(&format!(
                "{function}: LastUpdateStatus {status} after {:.0} s",
                start.elapsed().as_secs_f64()
            ));
            last_status = status.clone();
        }
        match status.as_str() {
            "Successful" => return Ok(info),
            "Failed" => {
                let code = info
                    .last_update_status_reason_code
                    .as_deref()
                    .unwrap_or("Unknown");
                let reason = info
                    .last_update_status_reason
                    .as_deref()
                    .unwrap_or("no reason given");
                return Err(DeployError::UpdateFailed {
                    function: function.to_string(),
                    image: uri.to_string(),
                    explanation: explain(code, reason),
                });
            }
            _ => {}
        }
        if start.elapsed() >= options.wait_timeout {
            return Err(DeployError::UpdateTimeout {
                function: function.to_string(),
                seconds: options.wait_timeout.as_secs(),
            });
        }
        std::thread::sleep(options.poll);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_uri_needs_a_digest_and_drops_a_tag() {
        let d = format!("sha256:{}", "a".repeat(64));
        let (uri, digest, _) =
            image_uri(&format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1@{d}")).unwrap();
        assert_eq!(
            uri,
            format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/app@{d}")
        );
        assert_eq!(digest, d);
        let err = image_uri("123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1").unwrap_err();
        assert!(matches!(err, DeployError::NotByDigest { .. }));
    }

    #[test]
    fn lambda_errors_map_to_clear_ones() {
        let api = |code: &str| AwsError::Api {
            service: "Lambda",
            operation: "UpdateFunctionCode",
            code: code.into(),
            message: "m".into(),
        };
        assert!(matches!(
            lambda_error(
                api("PreconditionFailedException"),
                "f",
                "UpdateFunctionCode",
                Some("r1")
            ),
            DeployError::StaleRevision { .. }
        ));
        assert!(matches!(
            lambda_error(api("AccessDeniedException"), "f", "UpdateFunctionCode", None),
            DeployError::AccessDenied { .. }
        ));
        assert!(matches!(
            lambda_error(api("ServiceException"), "f", "UpdateFunctionCode", None),
            DeployError::Aws(_)
        ));
    }
}
