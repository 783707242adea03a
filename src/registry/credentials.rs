//! Credentials and where docker, crane and skopeo keep them: Docker's
//! `config.json` (`auths`, `credsStore`, `credHelpers`) and credential helpers.
//! Secrets never reach Debug output, logs or error messages.

use std::ffi::OsStr;
use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::RegistryError;
use crate::reference::registry::DOCKER_HUB;
use crate::report::Reporter;

/// A user name and a secret (password or token). `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            username: username.into(),
            password: password.into(),
        }
    }

    /// The `Authorization: Basic` value.
    pub fn basic_header(&self) -> String {
        format!(
            "Basic {}",
            BASE64.encode(format!("{}:{}", self.username, self.password))
        )
    }
}

/// The directory holding Docker's `config.json`: `$DOCKER_CONFIG`, else `~/.docker`.
pub fn docker_config_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(|h| PathBuf::from(h).join(".docker"))
}

/// The key docker uses for a registry in `auths` and when asking a helper.
pub fn config_key(registry: &str) -> String {
    if registry == DOCKER_HUB {
        "https://index.docker.io/v1/".to_string()
    } else {
        registry.to_string()
    }
}

/// Reduces an `auths` key (`https://host/v1/`, `host`, `http://host`) to its host.
fn key_host(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = k.split('/').next().unwrap_or(k);
    match host {
        "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB,
        h => h,
    }
}

/// How long a credential helper may take before it is killed.
pub const HELPER_TIMEOUT: Duration = Duration::from_secs(30);

/// A source asked when Docker's config has nothing for a registry (ECR
/// sign-in: `aws::EcrSignIn`, which the CLI puts into the run's
/// [`RegistryOptions`](super::RegistryOptions), so this module knows nothing
/// of AWS). `Ok(None)`: not a registry it signs in to.
pub trait FallbackCredentials: Send + Sync + fmt::Debug {
    fn credentials(&self, registry: &str) -> Result<Option<Credentials>, RegistryError>;
}

/// Finds credentials for `registry` the way docker does: `credHelpers[registry]`,
/// else `credsStore`, else `auths`; then `fallback`. `None` means anonymous.
pub fn lookup(
    registry: &str,
    config_dir: Option<&Path>,
    helper_path: Option<&OsStr>,
    fallback: Option<&dyn FallbackCredentials>,
    reporter: &dyn Reporter,
) -> Result<Option<Credentials>, RegistryError> {
    match lookup_docker(registry, config_dir, helper_path, reporter)? {
        Some(found) => Ok(Some(found)),
        None => fallback.map_or(Ok(None), |f| f.credentials(registry)),
    }
}

fn lookup_docker(
    registry: &str,
    config_dir: Option<&Path>,
    helper_path: Option<&OsStr>,
    reporter: &dyn Reporter,
) -> Result<Option<Credentials>, RegistryError> {
    let dir = match config_dir.map(Path::to_path_buf).or_else(docker_config_dir) {
        Some(d) => d,
        None => return Ok(None),
    };
    let path = dir.join("config.json");
    let bytes = match crate::bounded_read::read_capped(
        &path,
        crate::bounded_read::MAX_JSON,
        "Docker's config.json",
    ) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(RegistryError::Io { path, source }),
    };
    let config: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| RegistryError::Credentials {
            message: format!("{} is not valid JSON ({e}); fix or remove it", path.display()),
        })?;
    let helper = configured_helper(&config, registry);
    if let Some(helper) = helper {
        let found = run_helper(helper, &config_key(registry), helper_path, HELPER_TIMEOUT)?;
        if found.is_some() {
            return Ok(found);
        }
    }
    let entry = config
        .get("auths")
        .and_then(|a| a.as_object())
        .and_then(|a| a.iter().find(|(k, _)| key_host(k) == registry))
        .map(|(_, v)| v);
    let Some(entry) = entry else { return Ok(None) };
    if let Some(auth) = entry
        .get("auth")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
    {
        let decoded = BASE64
            .decode(auth.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok());
        let Some((user, pass)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
            return Err(RegistryError::Credentials {
                message: format!(
                    "the auths entry for {registry} in {} is not base64 of user:password; run `lambda-img login {registry}` again",
                    path.display()
                ),
            });
        };
        return Ok(Some(Credentials::new(user, pass)));
    }
    let user = entry.get("username").and_then(|v| v.as_str());
    let pass = entry.get("password").and_then(|v| v.as_str());
    if let (Some(u), Some(p)) = (user, pass) {
        return Ok(Some(Credentials::new(u, p)));
    }
    if entry.get("identitytoken").is_some() {
        reporter.warn(&format!(
            "{}: the entry for {registry} holds an identity token, which lambda-img does not support; trying anonymous access",
            path.display()
        ));
    }
    Ok(None)
}

/// The most a credential helper's stdout or stderr is read.
const HELPER_OUTPUT_CAP: u64 = 1 << 20;

/// Runs `docker-credential-NAME get` with the server on stdin. A helper that
/// knows nothing of the server answers "credentials not found": that is `None`.
pub fn run_helper(
    name: &str,
    server: &str,
    helper_path: Option<&OsStr>,
    timeout: Duration,
) -> Result<Option<Credentials>, RegistryError> {
    let program = format!("docker-credential-{name}");
    let fail = |message: String| RegistryError::Helper {
        helper: program.clone(),
        message,
    };
    let (status, out, err) = run_helper_action(name, "get", server.as_bytes(), helper_path, timeout)?;
    if !status.success() {
        let text = String::from_utf8_lossy(&out).to_string() + &String::from_utf8_lossy(&err);
        if text.to_lowercase().contains("credentials not found") {
            return Ok(None);
        }
        // The helper's own output is not echoed: it may contain a secret.
        return Err(fail(format!("`{program} get` failed with {status}")));
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret", default)]
        secret: String,
    }
    let answer: Answer = serde_json::from_slice(&out).map_err(|_| {
        fail("its answer is not the JSON object {\"Username\",\"Secret\"} that helpers print".into())
    })?;
    if answer.username == "<token>" {
        // An identity (refresh) token: not supported, fall back to anonymous.
        return Ok(None);
    }
    Ok(Some(Credentials::new(answer.username, answer.secret)))
}

/// Runs `docker-credential-NAME store` with the credentials on stdin.
pub fn run_helper_store(
    name: &str,
    server: &str,
    creds: &Credentials,
    helper_path: Option<&OsStr>,
    timeout: Duration,
) -> Result<(), RegistryError> {
    let input = serde_json::json!({
        "ServerURL": server,
        "Username": creds.username,
        "Secret": creds.password,
    });
    let input = serde_json::to_vec(&input).expect("JSON value serialises");
    let (status, _, _) = run_helper_action(name, "store", &input, helper_path, timeout)?;
    if !status.success() {
        return Err(RegistryError::Helper {
            helper: format!("docker-credential-{name}"),
            message: format!("`docker-credential-{name} store` failed with {status}"),
        });
    }
    Ok(())
}

/// Runs `docker-credential-NAME ACTION` with `input` on stdin, killing it after
/// `timeout`. Returns its status, stdout and stderr.
fn run_helper_action(
    name: &str,
    action: &str,
    input: &[u8],
    helper_path: Option<&OsStr>,
    timeout: Duration,
) -> Result<(std::process::ExitStatus, Vec<u8>, Vec<u8>), RegistryError> {
    let program = format!("docker-credential-{name}");
    let fail = |message: String| RegistryError::Helper {
        helper: program.clone(),
        message,
    };
    // Found on `helper_path` when given (the helper still runs with our PATH).
    let resolved = helper_path
        .and_then(|paths| {
            std::env::split_paths(paths)
                .map(|d| d.join(&program))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| PathBuf::from(&program));
    let mut child = Command::new(resolved)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run it ({e}); is it installed and on PATH?")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading is reported by its status below.
        let _ = stdin.write_all(input);
    }
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    // A helper's answer is a small JSON document: what lies past the cap is
    // not read (a helper that keeps writing blocks and meets the timeout).
    let out_thread = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = (&mut stdout).take(HELPER_OUTPUT_CAP).read_to_end(&mut v);
        v
    });
    let err_thread = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = (&mut stderr).take(HELPER_OUTPUT_CAP).read_to_end(&mut v);
        v
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if start.elapsed() < timeout => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!(
                    "`{program} {action}` did not finish within {}s",
                    timeout.as_secs()
                )));
            }
            Err(e) => return Err(fail(format!("cannot wait for it: {e}"))),
        }
    };
    let out = out_thread.join().unwrap_or_default();
    let err = err_thread.join().unwrap_or_default();
    Ok((status, out, err))
}

/// Where `login` put the credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialStore {
    /// `auths` of this `config.json`.
    ConfigFile(PathBuf),
    /// A credential helper (`credHelpers` / `credsStore`), by name.
    Helper(String),
}

/// The helper docker would use for `registry`, from a parsed config.json.
fn configured_helper<'a>(config: &'a serde_json::Value, registry: &str) -> Option<&'a str> {
    config
        .get("credHelpers")
        .and_then(|h| h.as_object())
        .and_then(|h| h.iter().find(|(k, _)| key_host(k) == registry))
        .and_then(|(_, v)| v.as_str())
        .or_else(|| config.get("credsStore").and_then(|v| v.as_str()))
        .filter(|s| !s.is_empty())
}

/// Stores `creds` where docker would: the configured helper when there is
/// one, else `config.json` `auths` (see [`store`]).
pub fn store_like_docker(
    registry: &str,
    creds: &Credentials,
    config_dir: &Path,
    helper_path: Option<&OsStr>,
) -> Result<CredentialStore, RegistryError> {
    let path = config_dir.join("config.json");
    if let Ok(bytes) =
        crate::bounded_read::read_capped(&path, crate::bounded_read::MAX_JSON, "Docker's config.json")
        && let Ok(config) = serde_json::from_slice::<serde_json::Value>(&bytes)
        && let Some(helper) = configured_helper(&config, registry)
    {
        run_helper_store(helper, &config_key(registry), creds, helper_path, HELPER_TIMEOUT)?;
        return Ok(CredentialStore::Helper(helper.to_string()));
    }
    store(registry, creds, config_dir).map(CredentialStore::ConfigFile)
}

/// Stores `creds` for `registry` in `config.json` `auths`, keeping every other
/// field; written atomically with mode 0600.
pub fn store(registry: &str, creds: &Credentials, config_dir: &Path) -> Result<PathBuf, RegistryError> {
    let path = config_dir.join("config.json");
    let io = |source| RegistryError::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(config_dir).map_err(io)?;
    let mut config: serde_json::Value = match crate::bounded_read::read_capped(
        &path,
        crate::bounded_read::MAX_JSON,
        "Docker's config.json",
    ) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| RegistryError::Credentials {
            message: format!("{} is not valid JSON ({e}); fix or remove it", path.display()),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::json!({}),
        Err(e) => return Err(io(e)),
    };
    let Some(obj) = config.as_object_mut() else {
        return Err(RegistryError::Credentials {
            message: format!("{} is not a JSON object", path.display()),
        });
    };
    let auths = obj.entry("auths").or_insert_with(|| serde_json::json!({}));
    if !auths.is_object() {
        *auths = serde_json::json!({});
    }
    let auths = auths.as_object_mut().expect("object");
    // Replace any older entry for the same host written under another key form.
    let stale: Vec<String> = auths
        .keys()
        .filter(|k| key_host(k) == registry)
        .cloned()
        .collect();
    for k in stale {
        auths.remove(&k);
    }
    let auth = BASE64.encode(format!("{}:{}", creds.username, creds.password));
    auths.insert(config_key(registry), serde_json::json!({ "auth": auth }));
    let bytes = serde_json::to_vec_pretty(&config).expect("JSON value serialises");
    let mut tmp = tempfile::Builder::new()
        .prefix(".config.json.")
        .tempfile_in(config_dir)
        .map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    tmp.write_all(&bytes).map_err(io)?;
    tmp.write_all(b"\n").map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(&path).map_err(|e| io(e.error))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Silent;

    #[test]
    fn debug_is_redacted() {
        let c = Credentials::new("u", "hunter2");
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn store_then_lookup_round_trips_and_keeps_other_fields() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"auths":{"http://other:1/v2/":{"auth":"eDp5"}},"psFormat":"x"}"#,
        )
        .unwrap();
        store("reg:5000", &Credentials::new("user", "p:w"), dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
        assert!(text.contains("psFormat"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("config.json"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let got = lookup("reg:5000", Some(dir.path()), None, None, &Silent)
            .unwrap()
            .unwrap();
        assert_eq!(got, Credentials::new("user", "p:w"));
        let other = lookup("other:1", Some(dir.path()), None, None, &Silent)
            .unwrap()
            .unwrap();
        assert_eq!(other, Credentials::new("x", "y"));
        assert_eq!(
            lookup("nobody", Some(dir.path()), None, None, &Silent).unwrap(),
            None
        );
    }

    /// Signs in to one host, as ECR sign-in does for its hosts.
    #[derive(Debug)]
    struct OneHost(&'static str);

    impl FallbackCredentials for OneHost {
        fn credentials(&self, registry: &str) -> Result<Option<Credentials>, RegistryError> {
            Ok((registry == self.0).then(|| Credentials::new("AWS", "token")))
        }
    }

    /// The fallback belongs to the options it is passed with, not to the
    /// process: two lookups in one process with different fallbacks differ,
    /// and Docker's config still wins over either.
    #[test]
    fn the_fallback_is_asked_per_lookup_after_dockers_config() {
        let dir = tempfile::tempdir().unwrap();
        store("reg:5000", &Credentials::new("user", "pw"), dir.path()).unwrap();
        let (a, b) = (OneHost("a:1"), OneHost("b:1"));
        let found = |registry, fallback: &dyn FallbackCredentials| {
            lookup(registry, Some(dir.path()), None, Some(fallback), &Silent).unwrap()
        };
        assert_eq!(found("a:1", &a), Some(Credentials::new("AWS", "token")));
        assert_eq!(found("a:1", &b), None);
        assert_eq!(found("b:1", &b), Some(Credentials::new("AWS", "token")));
        assert_eq!(
            found("reg:5000", &OneHost("reg:5000")),
            Some(Credentials::new("user", "pw"))
        );
        assert_eq!(
            lookup("a:1", Some(dir.path()), None, None, &Silent).unwrap(),
            None
        );
    }

    #[test]
    fn docker_hub_keys_match() {
        assert_eq!(key_host("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(config_key("docker.io"), "https://index.docker.io/v1/");
    }
}
