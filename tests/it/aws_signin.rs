//! ECR sign-in through AWS's own credential chain: moto (server mode) is the
//! control plane via AWS_ENDPOINT_URL, the Distribution registry behind
//! htpasswd is the data plane, its password the one moto's
//! GetAuthorizationToken derives from the caller's account.

use std::path::Path;
use std::process::{Command, Output};

use lambda_img::aws::ACCEPT_EXPIRED_ENV;

use crate::support::moto::{ACCOUNT, Moto, aws_env, ecr_password, env_keys};
use crate::support::project::{Project, scratch_manifest};
use crate::support::registry::TestRegistry;
use crate::support::{require_tool, run_fail, run_ok, stderr, stdout};

pub const SECRET_KEY: &str = "wJalrXUtnFEMI-secret-key-never-printed";

/// A busybox function project (passes every check rule).
pub fn busybox_project(extra: &str) -> Project {
    let p = Project::new(&scratch_manifest(extra), &[("data/x.txt", "x\n")]);
    p.copy_in(Path::new("/bin/busybox"), "busybox");
    p
}

/// `lambda-img -C project ARGS` against moto, with nothing of the machine's AWS or Docker setup.
pub fn aws_cmd(p: &Project, moto: &Moto, home: &Path, args: &[&str]) -> Command {
    let mut c = p.cmd(args);
    aws_env(&mut c, moto, home);
    c.env(ACCEPT_EXPIRED_ENV, "1");
    c
}

/// No secret of the run appears in what it printed.
pub fn assert_no_secrets(out: &Output, secrets: &[&str]) {
    let text = format!("{}{}", stdout(out), stderr(out));
    for s in secrets {
        assert!(!text.contains(s), "a secret was printed:\n{text}");
    }
}

/// No file under `dir` (the cache, the project's records) holds a secret.
pub fn assert_no_secrets_in(dir: &Path, secrets: &[&str]) {
    for entry in walkdir::WalkDir::new(dir).into_iter().filter_map(Result::ok) {
        if !entry.file_type().is_file() {
            continue;
        }
        let bytes = std::fs::read(entry.path()).unwrap_or_default();
        for s in secrets {
            assert!(
                !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
                "{} holds a secret",
                entry.path().display()
            );
        }
    }
}

fn push_args(reg: &TestRegistry, tag: &str) -> Vec<String> {
    vec![
        "build".into(),
        "--output".into(),
        format!("registry:{}/app:{tag}", reg.host()),
        "--aws-auth".into(),
        reg.host(),
        "--create-repository".into(),
    ]
}

fn tools() -> bool {
    require_tool("busybox") && require_tool("moto_server")
}

#[test]
fn env_keys_sign_in_and_push_and_docker_config_still_wins() {
    if !tools() {
        return;
    }
    let Some(moto) = Moto::start() else { return };
    let password = ecr_password(ACCOUNT);
    let Some(reg) = TestRegistry::start_basic("AWS", &password) else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let p = busybox_project("");
    let args = push_args(&reg, "1");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    // Environment keys → GetAuthorizationToken → Basic AWS:password → pushed.
    let mut c = aws_cmd(&p, &moto, home.path(), &args);
    env_keys(&mut c);
    let out = run_ok(&mut c);
    assert!(
        stdout(&out).contains(&format!("{}/app:1@sha256:", reg.host())),
        "{}",
        stdout(&out)
    );
    assert_no_secrets(&out, &[SECRET_KEY, &password]);

    // moto's token expired in 2015: without the emulator switch it is refused
    // once, with a message naming the date and the switch.
    let mut c = aws_cmd(&p, &moto, home.path(), &args);
    env_keys(&mut c);
    c.env_remove(ACCEPT_EXPIRED_ENV);
    let out = run_fail(&mut c);
    let err = stderr(&out);
    assert!(
        err.contains("2015-01-01") && err.contains(ACCEPT_EXPIRED_ENV),
        "{err}"
    );
    assert_no_secrets(&out, &[SECRET_KEY, &password]);

    // No credentials anywhere: a clear error naming the ways to provide them.
    let out = run_fail(aws_cmd(&p, &moto, home.path(), &args).env("AWS_REGION", "us-east-1"));
    let err = stderr(&out);
    assert!(
        err.contains("no AWS credentials") && err.contains("AWS_PROFILE"),
        "{err}"
    );

    // Docker's config has an entry for the host: it wins (its wrong password
    // is refused by the registry) and ECR is not asked.
    let docker = home.path().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    std::fs::write(
        docker.join("config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"QVdTOndyb25n"}}}}}}"#, reg.host()),
    )
    .unwrap();
    let mut c = aws_cmd(&p, &moto, home.path(), &args);
    env_keys(&mut c);
    let out = run_fail(&mut c);
    assert!(stderr(&out).contains("refused access"), "{}", stderr(&out));
}

/// What a sign-in flow is called, its variables, and the account that signs in.
type Flow<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);

#[test]
fn profiles_credential_process_roles_web_identity_imds_and_container_sign_in() {
    if !tools() {
        return;
    }
    let Some(moto) = Moto::start() else { return };
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let marker = h.join("process-ran");
    let script = h.join("creds.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ntouch {}\necho '{{\"Version\":1,\"AccessKeyId\":\"AKIAPROCESSEXAMPLE1\",\"SecretAccessKey\":\"process-secret-never-printed\"}}'\n",
            marker.display()
        ),
    )
    .unwrap();
    run_ok(Command::new("chmod").arg("755").arg(&script));
    std::fs::write(
        h.join("aws-credentials"),
        "[dev]\naws_access_key_id = AKIAPROFILEEXAMPLE1\naws_secret_access_key = profile-secret-never-printed\n",
    )
    .unwrap();
    std::fs::write(
        h.join("aws-config"),
        format!(
            "[profile dev]\nregion = us-east-1\n\n[profile proc]\nregion = us-east-1\ncredential_process = {}\n\n[profile assume]\nregion = us-east-1\nrole_arn = arn:aws:iam::444455556666:role/deployer\nsource_profile = dev\n",
            script.display()
        ),
    )
    .unwrap();
    let token_file = h.join("oidc-token");
    std::fs::write(&token_file, "eyJhbGciOiJSUzI1NiJ9.oidc-token-never-printed.sig").unwrap();
    let secrets = [
        "profile-secret-never-printed",
        "process-secret-never-printed",
        "oidc-token-never-printed",
    ];
    let p = busybox_project("");

    // (profile or variables, the account whose registry password moto derives)
    // moto's IMDSv2 token answer lacks the TTL header the SDK requires (real
    // IMDS sends it): a proxy in front of moto adds it.
    let imds_proxy = imds_ttl_proxy(moto.port);
    let imds = format!("http://{}", imds_proxy.host());
    let container_uri = format!("{imds}/latest/meta-data/iam/security-credentials/default-role");
    let flows: [Flow; 6] = [
        ("profile", &[("AWS_PROFILE", "dev")], ACCOUNT),
        ("credential_process", &[("AWS_PROFILE", "proc")], ACCOUNT),
        // AssumeRole through moto's STS: the role's account signs in.
        (
            "role_arn + source_profile",
            &[("AWS_PROFILE", "assume")],
            "444455556666",
        ),
        (
            "web identity",
            &[
                ("AWS_ROLE_ARN", "arn:aws:iam::777788889999:role/github-actions"),
                ("AWS_ROLE_SESSION_NAME", "ci"),
                ("AWS_REGION", "us-east-1"),
            ],
            "777788889999",
        ),
        // moto serves instance metadata too: IMDSv2 (token, then role
        // credentials), and the same credentials document for the container provider.
        (
            "IMDSv2",
            &[
                ("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds),
                ("AWS_REGION", "us-east-1"),
            ],
            ACCOUNT,
        ),
        (
            "container credentials",
            &[
                ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &container_uri),
                ("AWS_REGION", "us-east-1"),
            ],
            ACCOUNT,
        ),
    ];
    for (i, (what, vars, account)) in flows.iter().enumerate() {
        let password = ecr_password(account);
        let Some(reg) = TestRegistry::start_basic("AWS", &password) else {
            return;
        };
        let args = push_args(&reg, &i.to_string());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut c = aws_cmd(&p, &moto, h, &args);
        c.envs(vars.iter().copied());
        if *what == "web identity" {
            c.env("AWS_WEB_IDENTITY_TOKEN_FILE", &token_file);
        }
        if *what == "IMDSv2" {
            c.env_remove("AWS_EC2_METADATA_DISABLED");
        }
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{what}: push failed\n{}\nmoto log:\n{}",
            stderr(&out),
            moto.log()
        );
        assert!(stdout(&out).contains("@sha256:"), "{what}: {}", stdout(&out));
        let mut all = secrets.to_vec();
        all.push(&password);
        assert_no_secrets(&out, &all);
    }
    assert!(marker.exists(), "credential_process was not run");

    // A credential_process that fails: named in the error, its stderr (which
    // may hold a secret) not repeated.
    let failing = h.join("fail.sh");
    std::fs::write(
        &failing,
        "#!/bin/sh\necho 'partial-secret-never-printed' >&2\nexit 3\n",
    )
    .unwrap();
    run_ok(Command::new("chmod").arg("755").arg(&failing));
    let config = std::fs::read_to_string(h.join("aws-config")).unwrap();
    std::fs::write(
        h.join("aws-config"),
        format!(
            "{config}\n[profile broken]\nregion = us-east-1\ncredential_process = {}\n",
            failing.display()
        ),
    )
    .unwrap();
    let Some(reg) = TestRegistry::start_basic("AWS", &ecr_password(ACCOUNT)) else {
        return;
    };
    let args = push_args(&reg, "broken");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_fail(aws_cmd(&p, &moto, h, &args).env("AWS_PROFILE", "broken"));
    let err = stderr(&out);
    assert!(err.contains("exited with") && err.contains("not shown"), "{err}");
    assert_no_secrets(&out, &["partial-secret-never-printed"]);
}

/// Forwards to moto, adding `x-aws-ec2-metadata-token-ttl-seconds` to IMDSv2 token answers.
fn imds_ttl_proxy(moto_port: u16) -> crate::support::fault_proxy::Server {
    use crate::support::fault_proxy::{Response, Server, forward, read_request, write_response};
    Server::start(std::sync::Arc::new(move |stream| {
        let Some(req) = read_request(&stream) else { return };
        match forward(moto_port, &req) {
            Ok(mut resp) => {
                if req.method == "PUT" && req.path() == "/latest/api/token" {
                    resp.headers
                        .push(("x-aws-ec2-metadata-token-ttl-seconds".into(), "21600".into()));
                }
                write_response(stream, &resp, None)
            }
            Err(_) => write_response(stream, &Response::new(502, "moto down"), None),
        }
    }))
}
