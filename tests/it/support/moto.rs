//! moto in server mode (`moto_server`) on a free loopback port: the AWS
//! control plane (IAM, STS, ECR, Lambda) for the deploy and sign-in tests.
//! Stopped by PID when dropped. Setup calls speak moto's HTTP APIs directly
//! (moto accepts any signature; the credential scope names region and service).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::registry::{free_port, http_status};
use super::require_tool;

/// The account moto gives plain access keys, and the ECR password it derives from it.
pub const ACCOUNT: &str = "123456789012";

/// moto's `GetAuthorizationToken` password for `account`: `ACCOUNT-auth-token`.
pub fn ecr_password(account: &str) -> String {
    format!("{account}-auth-token")
}

pub struct Moto {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    agent: ureq::Agent,
}

impl Moto {
    /// `None` when `moto_server` is missing (skipped locally, a failure under CI=true).
    pub fn start() -> Option<Moto> {
        Self::start_with(&[])
    }

    /// With extra environment for the server (e.g. `INITIAL_NO_AUTH_ACTION_COUNT`).
    pub fn start_with(env: &[(&str, &str)]) -> Option<Moto> {
        if !require_tool("moto_server") {
            return None;
        }
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let port = free_port();
            let log = std::fs::File::create(dir.path().join("moto.log")).unwrap();
            let child = super::command("moto_server")
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("cannot start moto_server");
            let config = ureq::Agent::config_builder().http_status_as_error(false).build();
            let mut moto = Moto {
                child,
                port,
                dir,
                agent: ureq::Agent::new_with_config(config),
            };
            if moto.wait_ready() {
                return Some(moto);
            }
        }
        panic!("moto_server did not become ready on any of 5 ports");
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if http_status(self.port, "/moto-api/").is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("moto.log")).unwrap_or_default()
    }

    fn auth(region: &str, service: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential=AKIDLAMBDAIMGTESTKEY/20260101/{region}/{service}/aws4_request, SignedHeaders=host, Signature=00"
        )
    }

    /// A Query-protocol call (IAM, STS) with form parameters; the body text.
    pub fn query(&self, service: &str, params: &[(&str, &str)]) -> String {
        let body: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", form_encode(v)))
            .collect();
        let mut resp = self
            .agent
            .post(format!("{}/", self.endpoint()))
            .header("Authorization", Self::auth("us-east-1", service))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .send(body.join("&"))
            .unwrap();
        let text = resp.body_mut().read_to_string().unwrap();
        assert!(resp.status().is_success(), "{service} {params:?}: {text}");
        text
    }

    /// A Lambda REST call; the status and JSON answer.
    pub fn lambda(&self, region: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.endpoint());
        let auth = Self::auth(region, "lambda");
        let mut resp = match (method, body) {
            ("POST", Some(b)) => self
                .agent
                .post(&url)
                .header("Authorization", auth)
                .header("Content-Type", "application/json")
                .send(b.to_string())
                .unwrap(),
            ("GET", None) => self.agent.get(&url).header("Authorization", auth).call().unwrap(),
            (m, _) => panic!("moto helper: unsupported call {m} {path}"),
        };
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Creates the IAM role functions run as; its ARN.
    pub fn create_role(&self, name: &str) -> String {
        let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
        self.query(
            "iam",
            &[
                ("Action", "CreateRole"),
                ("Version", "2010-05-08"),
                ("RoleName", name),
                ("AssumeRolePolicyDocument", policy),
            ],
        );
        format!("arn:aws:iam::{ACCOUNT}:role/{name}")
    }

    /// An image function pointing at `image_uri`.
    pub fn create_image_function(&self, region: &str, name: &str, image_uri: &str, arch: &str) -> Value {
        self.create_function(
            region,
            name,
            serde_json::json!({"PackageType": "Image", "Code": {"ImageUri": image_uri}, "Architectures": [arch]}),
        )
    }

    /// A zip function (an empty archive: moto does not unpack it).
    pub fn create_zip_function(&self, region: &str, name: &str) -> Value {
        let empty_zip = "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA==";
        self.create_function(
            region,
            name,
            serde_json::json!({"Runtime": "python3.12", "Handler": "app.handler", "Code": {"ZipFile": empty_zip}}),
        )
    }

    /// `CreateFunction` with a role of its own and `fields` added to the request.
    fn create_function(&self, region: &str, name: &str, fields: Value) -> Value {
        let mut request = serde_json::json!({
            "FunctionName": name,
            "Role": self.create_role(&format!("{name}-role")),
        });
        for (k, v) in fields.as_object().unwrap() {
            request[k] = v.clone();
        }
        let (status, body) = self.lambda(region, "POST", "/2015-03-31/functions", Some(request));
        assert!(status < 300, "CreateFunction {name}: {status} {body}");
        body
    }

    /// `GetFunction`'s answer.
    pub fn get_function(&self, region: &str, name: &str) -> Value {
        let (status, body) = self.lambda(region, "GET", &format!("/2015-03-31/functions/{name}"), None);
        assert_eq!(status, 200, "GetFunction {name}: {body}");
        body
    }

    /// ECR's description of a repository (JSON 1.1 protocol).
    pub fn ecr_repository(&self, region: &str, name: &str) -> Value {
        let mut resp = self
            .agent
            .post(format!("{}/", self.endpoint()))
            .header("Authorization", Self::auth(region, "ecr"))
            .header(
                "X-Amz-Target",
                "AmazonEC2ContainerRegistry_V20150921.DescribeRepositories",
            )
            .header("Content-Type", "application/x-amz-json-1.1")
            .send(serde_json::json!({"repositoryNames": [name]}).to_string())
            .unwrap();
        let text = resp.body_mut().read_to_string().unwrap();
        assert!(resp.status().is_success(), "DescribeRepositories {name}: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        v["repositories"][0].clone()
    }

    /// Published version numbers (without `$LATEST`).
    pub fn versions(&self, region: &str, name: &str) -> Vec<String> {
        let (_, body) = self.lambda(
            region,
            "GET",
            &format!("/2015-03-31/functions/{name}/versions"),
            None,
        );
        body["Versions"]
            .as_array()
            .map(|v| {
                v.iter()
                    .filter_map(|x| x["Version"].as_str())
                    .filter(|v| *v != "$LATEST")
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The version alias `alias` points at, if it exists.
    pub fn alias_version(&self, region: &str, name: &str, alias: &str) -> Option<String> {
        let (status, body) = self.lambda(
            region,
            "GET",
            &format!("/2015-03-31/functions/{name}/aliases/{alias}"),
            None,
        );
        // moto answers GetAlias with 201.
        assert!(
            status < 300 || status == 404,
            "GetAlias {name}/{alias}: {status} {body}"
        );
        (status < 300).then(|| body["FunctionVersion"].as_str().unwrap_or_default().to_string())
    }
}

impl Moto {
    /// Turns moto's IAM enforcement on (every later call is authenticated
    /// and authorised against IAM policies) or off again.
    pub fn enforce_iam(&self, on: bool) {
        let mut resp = self
            .agent
            .post(format!("{}/moto-api/reset-auth", self.endpoint()))
            .send(if on { "0" } else { "inf" })
            .unwrap();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        assert!(resp.status().is_success(), "reset-auth: {text}");
    }

    /// An IAM user allowed exactly `actions` on everything; its access key id and secret.
    pub fn user_with_policy(&self, name: &str, actions: &[&str]) -> (String, String) {
        self.query(
            "iam",
            &[
                ("Action", "CreateUser"),
                ("Version", "2010-05-08"),
                ("UserName", name),
            ],
        );
        let policy = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
        })
        .to_string();
        self.query(
            "iam",
            &[
                ("Action", "PutUserPolicy"),
                ("Version", "2010-05-08"),
                ("UserName", name),
                ("PolicyName", "deploy"),
                ("PolicyDocument", &policy),
            ],
        );
        let xml = self.query(
            "iam",
            &[
                ("Action", "CreateAccessKey"),
                ("Version", "2010-05-08"),
                ("UserName", name),
            ],
        );
        let tag = |t: &str| {
            let start = xml.find(&format!("<{t}>")).unwrap() + t.len() + 2;
            let end = xml[start..].find(&format!("</{t}>")).unwrap() + start;
            xml[start..end].to_string()
        };
        (tag("AccessKeyId"), tag("SecretAccessKey"))
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn form_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The environment a lambda-img command gets in these tests: nothing of the
/// machine's AWS setup, moto as every endpoint, no instance metadata (its
/// link-local address is off limits here), config files under `home`.
pub fn aws_env(cmd: &mut Command, moto: &Moto, home: &Path) {
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("AWS_ENDPOINT_URL", moto.endpoint())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", home.join("aws-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("aws-credentials"))
        .env("HOME", home)
        .env("DOCKER_CONFIG", home.join("docker"));
}

/// Plain access keys in the environment (moto maps them to [`ACCOUNT`]).
pub fn env_keys(cmd: &mut Command) {
    cmd.env("AWS_ACCESS_KEY_ID", "AKIDLAMBDAIMGTESTKEY")
        .env("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI-secret-key-never-printed")
        .env("AWS_REGION", "us-east-1");
}

/// A pass-through proxy in front of moto that records each JSON-protocol
/// call's `X-Amz-Target` (to count ECR operations).
pub struct TargetLog {
    pub server: super::fault_proxy::Server,
    pub targets: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl TargetLog {
    pub fn start(moto_port: u16) -> TargetLog {
        use super::fault_proxy::{Response, Server, forward, read_request, write_response};
        let targets: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
        let t2 = targets.clone();
        let server = Server::start(std::sync::Arc::new(move |stream| {
            let Some(req) = read_request(&stream) else { return };
            if let Some(t) = req.header("x-amz-target") {
                t2.lock()
                    .unwrap()
                    .push(t.rsplit('.').next().unwrap_or(t).to_string());
            }
            match forward(moto_port, &req) {
                Ok(resp) => write_response(stream, &resp, None),
                Err(_) => write_response(stream, &Response::new(502, "moto down"), None),
            }
        }));
        TargetLog { server, targets }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.server.host())
    }

    pub fn count(&self, operation: &str) -> usize {
        self.targets
            .lock()
            .unwrap()
            .iter()
            .filter(|t| *t == operation)
            .count()
    }
}
