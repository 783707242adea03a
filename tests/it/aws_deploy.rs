//! `deploy` against moto's Lambda (via AWS_ENDPOINT_URL) with images pushed
//! to the Distribution registry through ECR sign-in: by digest, the last
//! build's image, publish, alias; and every refusal leaves the function as it was.

use serde_json::Value;

use crate::aws_signin::{SECRET_KEY, assert_no_secrets, assert_no_secrets_in, aws_cmd, busybox_project};
use crate::support::moto::{ACCOUNT, Moto, TargetLog, ecr_password, env_keys};
use crate::support::project::Project;
use crate::support::registry::TestRegistry;
use crate::support::{require_tool, run_fail, run_ok, stderr, stdout};

const REGION: &str = "us-east-1";

struct Stage {
    moto: Moto,
    reg: TestRegistry,
    home: tempfile::TempDir,
    project: Project,
}

impl Stage {
    fn start(manifest_extra: &str) -> Option<Stage> {
        if !require_tool("busybox") || !require_tool("moto_server") {
            return None;
        }
        let moto = Moto::start()?;
        let reg = TestRegistry::start_basic("AWS", &ecr_password(ACCOUNT))?;
        Some(Stage {
            moto,
            reg,
            home: tempfile::tempdir().unwrap(),
            project: busybox_project(manifest_extra),
        })
    }

    /// `lambda-img ARGS` with env keys against moto, signing in to the test registry.
    fn cmd(&self, args: &[&str]) -> std::process::Command {
        let mut c = aws_cmd(&self.project, &self.moto, self.home.path(), args);
        env_keys(&mut c);
        c.env("LAMBDA_IMG_AWS_AUTH", self.reg.host());
        c
    }

    /// Builds and pushes `app:TAG`; the pushed `REF@sha256:...`.
    fn push(&self, tag: &str) -> String {
        let out = run_ok(&mut self.cmd(&[
            "build",
            "--create-repository",
            "--output",
            &format!("registry:{}/app:{tag}", self.reg.host()),
        ]));
        stdout(&out).trim().to_string()
    }

    fn image_uri(&self, function: &str) -> String {
        self.moto.get_function(REGION, function)["Code"]["ImageUri"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

fn old_image(stage: &Stage) -> String {
    format!("{}/app@sha256:{}", stage.reg.host(), "0".repeat(64))
}

/// A stage with `app:1` pushed and an x86_64 image function `hello` on an
/// older image; the pushed reference and that older image.
fn hello_stage() -> Option<(Stage, String, String)> {
    let s = Stage::start("")?;
    let pushed = s.push("1");
    let old = old_image(&s);
    s.moto.create_image_function(REGION, "hello", &old, "x86_64");
    Some((s, pushed, old))
}

#[test]
fn deploy_by_digest_publishes_and_moves_an_alias() {
    let Some(s) = Stage::start("") else { return };
    let pushed = s.push("1");
    let digest = pushed.rsplit_once('@').unwrap().1.to_string();
    let expected = format!("{}/app@{digest}", s.reg.host());
    s.moto
        .create_image_function(REGION, "hello", &old_image(&s), "x86_64");

    // No IMAGE: the image the last build pushed, recorded in the project.
    let record: Value =
        serde_json::from_slice(&std::fs::read(s.project.join(".lambda-img/last-build.json")).unwrap())
            .unwrap();
    assert_eq!(record["digest"], digest.as_str());
    let out = run_ok(&mut s.cmd(&[
        "deploy",
        "--function",
        "hello",
        "--publish",
        "--alias",
        "live",
        "--json",
    ]));
    assert_no_secrets(&out, &[SECRET_KEY, &ecr_password(ACCOUNT)]);
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["new_image"], expected.as_str());
    assert_eq!(report["old_image"], old_image(&s).as_str());
    assert_eq!(report["digest"], digest.as_str());
    assert_eq!(report["version"], "1");
    assert_eq!(report["alias"]["name"], "live");
    assert_eq!(report["alias"]["version"], "1");
    assert!(report["alias"]["previous_version"].is_null());
    assert!(report["timings"]["total_seconds"].as_f64().is_some());
    assert!(
        stderr(&out).contains("LastUpdateStatus Successful"),
        "{}",
        stderr(&out)
    );

    // What Lambda (moto) now holds.
    assert_eq!(s.image_uri("hello"), expected);
    assert_eq!(s.moto.versions(REGION, "hello"), vec!["1".to_string()]);
    assert_eq!(
        s.moto.alias_version(REGION, "hello", "live").as_deref(),
        Some("1")
    );

    // A second image by explicit digest, text output: ARN and version; the
    // alias moves from 1 to 2.
    let second = {
        std::fs::write(s.project.join("data/x.txt"), "y\n").unwrap();
        s.push("2")
    };
    let out = run_ok(&mut s.cmd(&["deploy", "--function", "hello", "--alias", "live", &second]));
    let line = stdout(&out);
    let arn = format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:hello");
    assert_eq!(line.trim(), format!("{arn} 2"));
    assert_eq!(
        s.moto.alias_version(REGION, "hello", "live").as_deref(),
        Some("2")
    );
    let second_uri = format!("{}/app@{}", s.reg.host(), second.rsplit_once('@').unwrap().1);
    assert_eq!(s.image_uri("hello"), second_uri);

    // Without --publish: $LATEST only, no new version.
    let out = run_ok(&mut s.cmd(&["deploy", "--function", "hello", &pushed]));
    assert_eq!(stdout(&out).trim(), format!("{arn} $LATEST"));
    assert_eq!(s.moto.versions(REGION, "hello").len(), 2);

    // Neither the cache nor the project's records hold a secret.
    let secrets = [SECRET_KEY, &ecr_password(ACCOUNT)];
    assert_no_secrets_in(s.project.cache.path(), &secrets);
    assert_no_secrets_in(s.project.path(), &secrets);
}

#[test]
fn the_deploy_table_names_the_defaults() {
    let Some(s) = Stage::start(
        "[deploy]\nfunction = \"from-toml\"\nregion = \"us-east-1\"\nalias = \"prod\"\npublish = true\n",
    ) else {
        return;
    };
    s.push("1");
    s.moto
        .create_image_function(REGION, "from-toml", &old_image(&s), "x86_64");
    let out = run_ok(&mut s.cmd(&["deploy"]));
    assert!(
        stdout(&out).trim().ends_with(":function:from-toml 1"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        s.moto.alias_version(REGION, "from-toml", "prod").as_deref(),
        Some("1")
    );
}

#[test]
fn refusals_before_lambda_change_nothing() {
    let Some(s) = Stage::start("") else { return };
    let pushed = s.push("1");
    let old = old_image(&s);

    // The function runs on arm64; the image is x86_64.
    s.moto.create_image_function(REGION, "arm", &old, "arm64");
    let out = run_fail(&mut s.cmd(&["deploy", "--function", "arm", &pushed]));
    let err = stderr(&out);
    assert!(err.contains("runs on arm64") && err.contains("LI022"), "{err}");
    assert_eq!(s.image_uri("arm"), old);

    // A zip function.
    s.moto.create_zip_function(REGION, "zipped");
    let out = run_fail(&mut s.cmd(&["deploy", "--function", "zipped", &pushed]));
    assert!(
        stderr(&out).contains("package type Zip, not Image"),
        "{}",
        stderr(&out)
    );

    // The repository is in another region than the function.
    s.moto.create_image_function(REGION, "hello", &old, "x86_64");
    let digest = pushed.rsplit_once('@').unwrap().1;
    let elsewhere = format!("{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/app@{digest}");
    let out = run_fail(&mut s.cmd(&["deploy", "--function", "hello", &elsewhere]));
    let err = stderr(&out);
    assert!(
        err.contains("in eu-west-1, but function hello is in us-east-1"),
        "{err}"
    );
    assert_eq!(s.image_uri("hello"), old);

    // An image `check` refuses (here: a manifest over a lowered size budget, LI011).
    let out = run_fail(&mut s.cmd(&[
        "deploy",
        "--function",
        "hello",
        "--max-manifest-size",
        "100",
        &pushed,
    ]));
    let err = stderr(&out);
    assert!(
        err.contains("fails `lambda-img check`") && err.contains("LI011"),
        "{err}"
    );
    assert_eq!(s.image_uri("hello"), old);

    // A missing function, and a tag instead of a digest.
    let out = run_fail(&mut s.cmd(&["deploy", "--function", "nope", &pushed]));
    assert!(
        stderr(&out).contains("function nope was not found in us-east-1"),
        "{}",
        stderr(&out)
    );
    let tagged = format!("{}/app:1", s.reg.host());
    let out = run_fail(&mut s.cmd(&["deploy", "--function", "hello", &tagged]));
    assert!(stderr(&out).contains("not pinned by digest"), "{}", stderr(&out));
    assert_eq!(s.image_uri("hello"), old);
    assert!(s.moto.versions(REGION, "hello").is_empty());
}

/// The RevisionId the proxy reports for a function that then changes.
const STALE_REVISION: &str = "3f1c0a52-revision-read-by-deploy";

/// What the proxy in front of moto's Lambda does (moto's functions have no
/// RevisionId and every update succeeds, so these two Lambda behaviours are
/// played in front of it).
#[derive(Clone, Copy, PartialEq)]
enum LambdaFault {
    /// GetFunction reports [`STALE_REVISION`]; the function then changes, so
    /// an update carrying it is refused with 412, as Lambda does.
    ConcurrentChange,
    /// After the update, GetFunction reports InProgress once, then Failed with this code.
    UpdateFails(&'static str),
    /// UpdateFunctionCode is refused with 403 AccessDeniedException.
    AccessDenied,
}

struct LambdaProxy {
    server: crate::support::fault_proxy::Server,
    /// RevisionIds sent with UpdateFunctionCode.
    sent_revisions: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl LambdaProxy {
    fn start(moto_port: u16, fault: LambdaFault) -> LambdaProxy {
        use crate::support::fault_proxy::{Response, Server, forward, read_request, write_response};
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::{Arc, Mutex};
        let sent: Arc<Mutex<Vec<String>>> = Arc::default();
        let gets_after_update = Arc::new(AtomicUsize::new(usize::MAX));
        let sent2 = sent.clone();
        let server = Server::start(Arc::new(move |stream| {
            let Some(req) = read_request(&stream) else { return };
            let is_update = req.method == "PUT" && req.path().ends_with("/code");
            if is_update {
                let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
                sent2
                    .lock()
                    .unwrap()
                    .push(body["RevisionId"].as_str().unwrap_or("").to_string());
                if fault == LambdaFault::ConcurrentChange {
                    let resp = Response::new(
                        412,
                        r#"{"Type":"User","message":"The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id"}"#,
                    )
                    .with_header("x-amzn-ErrorType", "PreconditionFailedException")
                    .with_header("Content-Type", "application/json");
                    return write_response(stream, &resp, None);
                }
                if fault == LambdaFault::AccessDenied {
                    let resp = Response::new(
                        403,
                        r#"{"Type":"User","Message":"User: arn:aws:iam::123456789012:user/ci is not authorized to perform: lambda:UpdateFunctionCode on resource: arn:aws:lambda:us-east-1:123456789012:function:hello"}"#,
                    )
                    .with_header("x-amzn-ErrorType", "AccessDeniedException")
                    .with_header("Content-Type", "application/json");
                    return write_response(stream, &resp, None);
                }
                gets_after_update.store(0, Ordering::SeqCst);
            }
            let Ok(mut resp) = forward(moto_port, &req) else {
                return write_response(stream, &Response::new(502, "moto down"), None);
            };
            if fault == LambdaFault::ConcurrentChange && req.method == "GET" {
                let mut v: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
                if v["Configuration"].is_object() {
                    v["Configuration"]["RevisionId"] = STALE_REVISION.into();
                    resp.body = serde_json::to_vec(&v).unwrap();
                }
            }
            if let LambdaFault::UpdateFails(code) = fault
                && req.method == "GET"
                && !is_update
            {
                let n = gets_after_update.fetch_add(1, Ordering::SeqCst);
                if n != usize::MAX && n < usize::MAX - 1 {
                    let mut v: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
                    let (status, reason) = if n == 0 {
                        ("InProgress", Value::Null)
                    } else {
                        (
                            "Failed",
                            Value::from("The entrypoint /var/task/busybox cannot be run"),
                        )
                    };
                    v["Configuration"]["LastUpdateStatus"] = status.into();
                    if status == "Failed" {
                        v["Configuration"]["LastUpdateStatusReasonCode"] = code.into();
                        v["Configuration"]["LastUpdateStatusReason"] = reason;
                    }
                    resp.body = serde_json::to_vec(&v).unwrap();
                }
            }
            write_response(stream, &resp, None)
        }));
        LambdaProxy {
            server,
            sent_revisions: sent,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.server.host())
    }
}

#[test]
fn a_stale_revision_is_refused_and_changes_nothing() {
    let Some((s, pushed, old)) = hello_stage() else {
        return;
    };
    let revision = STALE_REVISION.to_string();
    let proxy = LambdaProxy::start(s.moto.port, LambdaFault::ConcurrentChange);
    // Only Lambda goes through the proxy: the per-service endpoint variable.
    let mut c = s.cmd(&["deploy", "--function", "hello", "--publish", &pushed]);
    c.env("AWS_ENDPOINT_URL_LAMBDA", proxy.endpoint());
    let out = run_fail(&mut c);
    let err = stderr(&out);
    assert!(
        err.contains("changed since it was read") && err.contains(&revision),
        "{err}"
    );
    assert_eq!(*proxy.sent_revisions.lock().unwrap(), vec![revision]);
    assert_eq!(s.image_uri("hello"), old);
    assert!(s.moto.versions(REGION, "hello").is_empty());
}

#[test]
fn a_failed_update_is_explained_with_the_check_rules() {
    let Some((s, pushed, _)) = hello_stage() else {
        return;
    };
    let proxy = LambdaProxy::start(
        s.moto.port,
        LambdaFault::UpdateFails("FunctionError.InvalidEntryPoint"),
    );
    let mut c = s.cmd(&[
        "deploy",
        "--function",
        "hello",
        "--publish",
        "--alias",
        "live",
        &pushed,
    ]);
    c.env("AWS_ENDPOINT_URL_LAMBDA", proxy.endpoint());
    let out = run_fail(&mut c);
    let err = stderr(&out);
    assert!(err.contains("LastUpdateStatus InProgress"), "{err}");
    assert!(
        err.contains(
            "Lambda: FunctionError.InvalidEntryPoint: The entrypoint /var/task/busybox cannot be run"
        ),
        "{err}"
    );
    assert!(
        err.contains("LI033 entrypoint-missing") && err.contains("LI034 entrypoint-not-executable"),
        "{err}"
    );
    // Nothing was published and no alias was made after the failure.
    assert!(s.moto.versions(REGION, "hello").is_empty());
    assert_eq!(s.moto.alias_version(REGION, "hello", "live"), None);
}

#[test]
fn access_denied_is_clear_and_changes_nothing() {
    let Some((s, pushed, old)) = hello_stage() else {
        return;
    };

    // ECR, by moto's own IAM enforcement: a user without
    // ecr:GetAuthorizationToken cannot sign in, so the check's pull fails.
    let (key, secret) = s.moto.user_with_policy("reader", &["lambda:GetFunction"]);
    s.moto.enforce_iam(true);
    let mut c = s.cmd(&[
        "build",
        "--output",
        &format!("registry:{}/app:denied", s.reg.host()),
    ]);
    c.env("AWS_ACCESS_KEY_ID", &key)
        .env("AWS_SECRET_ACCESS_KEY", &secret);
    let out = c.output().unwrap();
    s.moto.enforce_iam(false);
    assert!(!out.status.success(), "pushed without ecr:GetAuthorizationToken");
    let err = stderr(&out);
    assert!(
        err.contains("ECR sign-in for") && err.contains("GetAuthorizationToken failed: AccessDenied"),
        "{err}"
    );
    assert_no_secrets(&out, &[&secret]);

    // Lambda: moto cannot check signatures of Lambda's REST calls (botocore's
    // are refused too), so the AccessDeniedException is played in front of it.
    let proxy = LambdaProxy::start(s.moto.port, LambdaFault::AccessDenied);
    let mut c = s.cmd(&["deploy", "--function", "hello", "--publish", &pushed]);
    c.env("AWS_ENDPOINT_URL_LAMBDA", proxy.endpoint());
    let out = run_fail(&mut c);
    let err = stderr(&out);
    assert!(
        err.contains("access denied for UpdateFunctionCode on function hello")
            && err.contains("not authorized to perform: lambda:UpdateFunctionCode"),
        "{err}"
    );
    assert_eq!(s.image_uri("hello"), old);
    assert!(s.moto.versions(REGION, "hello").is_empty());
}

#[test]
fn build_deploy_creates_the_repository_pushes_and_deploys_in_one_step() {
    let Some(s) = Stage::start("") else { return };
    s.moto
        .create_image_function(REGION, "hello", &old_image(&s), "x86_64");
    let output = format!("registry:{}/team/fresh:1", s.reg.host());

    // A missing repository is refused before any upload, naming the flag.
    let out = run_fail(&mut s.cmd(&["build", "--output", &output, "--deploy", "--function", "hello"]));
    let err = stderr(&out);
    assert!(
        err.contains("ECR repository team/fresh does not exist") && err.contains("--create-repository"),
        "{err}"
    );
    assert!(stdout(&out).is_empty());
    assert!(!s.project.join(".lambda-img/last-build.json").exists());
    assert_eq!(s.image_uri("hello"), old_image(&s));

    // ECR through a proxy that counts calls: the pushes of two tags and the
    // deploy's check all sign in with one GetAuthorizationToken (kept in memory).
    let ecr = TargetLog::start(s.moto.port);
    let second_tag = format!("registry:{}/team/fresh:2", s.reg.host());
    let out = run_ok(
        s.cmd(&[
            "build",
            "--output",
            &output,
            "--output",
            &second_tag,
            "--create-repository",
            "--scan-on-push",
            "--immutable-tags",
            "--deploy",
            "--function",
            "hello",
            "--publish",
            "--json",
        ])
        .env("AWS_ENDPOINT_URL_ECR", ecr.endpoint()),
    );
    assert_eq!(
        ecr.count("GetAuthorizationToken"),
        1,
        "{:?}",
        ecr.targets.lock().unwrap()
    );
    assert_eq!(ecr.count("CreateRepository"), 1);
    assert_no_secrets(&out, &[SECRET_KEY, &ecr_password(ACCOUNT)]);
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let digest = report["digest"].as_str().unwrap();
    let expected = format!("{}/team/fresh@{digest}", s.reg.host());
    assert_eq!(report["deploy"]["new_image"], expected.as_str());
    assert_eq!(report["deploy"]["version"], "1");
    assert_eq!(s.image_uri("hello"), expected);
    let repo = s.moto.ecr_repository(REGION, "team/fresh");
    assert_eq!(repo["imageScanningConfiguration"]["scanOnPush"], true);
    assert_eq!(repo["imageTagMutability"], "IMMUTABLE");

    // --deploy without a registry output is refused up front.
    let out = run_fail(&mut s.cmd(&["build", "--output", "oci:./out", "--deploy"]));
    assert!(
        stderr(&out).contains("--deploy needs a registry output"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn print_settings_show_the_deploy_defaults_under_the_flags() {
    let p = Project::new(
        &crate::support::project::scratch_manifest(
            "[deploy]\nfunction = \"orders\"\nregion = \"us-east-1\"\nalias = \"live\"\n[registry]\naws_auth = [\"vpce.example\"]\n",
        ),
        &[],
    );
    let out = run_ok(&mut p.cmd(&["build", "--print-settings", "--region", "eu-west-1", "--deploy"]));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let d = &v["deploy"];
    assert_eq!(d["enabled"], true);
    assert_eq!(d["function"], "orders");
    assert_eq!(d["region"], "eu-west-1");
    assert_eq!(d["alias"], "live");
    assert_eq!(d["publish"], true);
    assert_eq!(d["aws_auth"], serde_json::json!(["vpce.example"]));
}

/// `deploy --username/--password-stdin`: the credentials are for the
/// registry of the image deploy reads (IMAGE, else the last build's), with
/// no ECR sign-in host named, so the image is read with them or not at all.
#[test]
fn deploy_credentials_are_for_the_registry_of_the_image_it_reads() {
    let Some((s, pushed, _)) = hello_stage() else {
        return;
    };
    let password = ecr_password(ACCOUNT);
    let explicit = |args: &[&str]| {
        let mut c = s.cmd(args);
        c.env_remove("LAMBDA_IMG_AWS_AUTH")
            .args(["--username", "AWS", "--password-stdin"]);
        crate::messages::with_stdin(&mut c, &password)
    };
    for args in [
        vec!["deploy", "--function", "hello", &pushed],
        // No IMAGE: the last build's image names the host.
        vec!["deploy", "--function", "hello"],
    ] {
        let out = explicit(&args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert_no_secrets(&out, &[SECRET_KEY, &password]);
    }
    let digest = pushed.rsplit_once('@').unwrap().1;
    assert_eq!(s.image_uri("hello"), format!("{}/app@{digest}", s.reg.host()));
}
