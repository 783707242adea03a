//! Explicit credentials (`--username` + `--password-stdin`) go only to the
//! host they belong to: the command's target. Real Distribution registries
//! on loopback, each behind a recording proxy (`FaultProxy` keeps every
//! request's `Authorization`): a build whose base is on one registry, whose
//! cache registry is on another and whose output is on a third sends the
//! output's password to the output alone; the others get what Docker's
//! config holds for them. A bearer challenge naming a token server on a
//! third host gets the password only when the challenge came from the
//! credentials' own registry. ECR sign-in hosts come from `--manifest`, and
//! no password or token reaches stdout, stderr or the cache.

use base64::Engine as _;

use crate::aws_signin::{assert_no_secrets, assert_no_secrets_in, busybox_project};
use crate::messages::{ok, with_stdin};
use crate::support::fault_proxy::{Fault, FaultKind, FaultProxy};
use crate::support::project::Project;
use crate::support::registry::TestRegistry;
use crate::support::token_server::BearerProxy;
use crate::support::{require_tool, run_fail_with, run_ok, stderr, stdout};

/// The output registry's password: it must appear at none of the other hosts.
const BOB_PW: &str = "bob-output-registry-pw-7f3a";

fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

/// A Docker config dir with `auths` entries for `(host, user, password)`.
fn docker_config(entries: &[(&str, &str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let auths: serde_json::Map<String, serde_json::Value> = entries
        .iter()
        .map(|(host, user, pass)| {
            let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            (host.to_string(), serde_json::json!({ "auth": auth }))
        })
        .collect();
    let config = serde_json::json!({ "auths": auths });
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    dir
}

/// Builds the busybox base and pushes it to `host/base/img:1` with Docker's
/// config only (no flags); returns the pushed `REF@sha256:...`.
fn push_base(host: &str, config: &tempfile::TempDir) -> String {
    let base = busybox_project("");
    let out = run_ok(
        base.cmd(&["build", "--output", &format!("registry:{host}/base/img:1")])
            .env("DOCKER_CONFIG", config.path()),
    );
    let pushed = stdout(&out).trim().to_string();
    assert!(
        pushed.starts_with(&format!("{host}/base/img:1@sha256:")),
        "{pushed}"
    );
    pushed
}

/// A function on the registry base `base` (its own, empty cache: the base
/// is read from the registry).
fn app_on(base: &str) -> Project {
    let manifest = format!(
        "[function]\nname = \"app\"\nruntime = \"provided.al2023\"\n\n[base]\nimage = \"{base}\"\n\n\
         [code]\nsources = [\"x.txt\"]\n"
    );
    Project::new(&manifest, &[("x.txt", "x\n")])
}

/// Every `Authorization` a proxy saw, and on which request.
fn seen(proxy: &FaultProxy) -> Vec<(String, Option<String>)> {
    proxy.authorizations.lock().unwrap().clone()
}

#[test]
fn output_credentials_never_reach_the_base_or_the_cache_registry_on_other_hosts() {
    if !require_tool("busybox") {
        return;
    }
    let (Some(base_reg), Some(cache_reg), Some(out_reg)) = (
        TestRegistry::start_basic("alice", "alice-base-pw"),
        TestRegistry::start_basic("carol", "carol-cache-pw"),
        TestRegistry::start_basic("bob", BOB_PW),
    ) else {
        return;
    };
    let base_proxy = FaultProxy::start(base_reg.port);
    let cache_proxy = FaultProxy::start(cache_reg.port);
    // Docker's config knows the base's and the cache's hosts, not the output's.
    let config = docker_config(&[
        (&base_proxy.host(), "alice", "alice-base-pw"),
        (&cache_proxy.host(), "carol", "carol-cache-pw"),
    ]);
    let base = push_base(&base_proxy.host(), &config);
    base_proxy.authorizations.lock().unwrap().clear();

    let app = app_on(&base);
    let output = format!("registry:{}/app/img:1", out_reg.host());
    let cache_repo = format!("{}/shared-cache", cache_proxy.host());
    let mut cmd = app.cmd(&[
        "--username",
        "bob",
        "--password-stdin",
        "build",
        "--output",
        &output,
        "--cache-registry",
        &cache_repo,
    ]);
    cmd.env("DOCKER_CONFIG", config.path());
    let out = ok(with_stdin(&mut cmd, &format!("{BOB_PW}\n")), "build");
    let pushed = stdout(&out).trim().to_string();
    assert!(
        pushed.starts_with(&format!("{}/app/img:1@sha256:", out_reg.host())),
        "{pushed}"
    );
    assert!(
        !stderr(&out).contains("cache registry"),
        "the cache registry worked with its own credentials: {}",
        stderr(&out)
    );

    let bob = basic("bob", BOB_PW);
    for (proxy, own, what) in [
        (&base_proxy, basic("alice", "alice-base-pw"), "base"),
        (&cache_proxy, basic("carol", "carol-cache-pw"), "cache"),
    ] {
        let seen = seen(proxy);
        assert!(!seen.is_empty(), "the {what} registry was not asked at all");
        let leaked: Vec<_> = seen.iter().filter(|(_, a)| a.as_deref() == Some(&bob)).collect();
        assert!(
            leaked.is_empty(),
            "the output's password reached the {what} registry: {leaked:?}"
        );
        // Every credential it saw is its own, from Docker's config.
        assert!(
            seen.iter()
                .all(|(_, a)| a.is_none() || a.as_deref() == Some(&own)),
            "{what}: {seen:?}"
        );
        assert!(
            seen.iter().any(|(_, a)| a.as_deref() == Some(&own)),
            "{what} was read with Docker's config: {seen:?}"
        );
    }
    assert!(
        cache_proxy.count("PUT", "/manifests/") > 0,
        "the build pushed its records to the cache registry"
    );

    // The push is real: skopeo reads it back with bob's credentials.
    if require_tool("skopeo") {
        let inspected = run_ok(crate::support::command("skopeo").args([
            "inspect",
            "--tls-verify=false",
            "--creds",
            &format!("bob:{BOB_PW}"),
            "--raw",
            &format!("docker://{}/app/img:1", out_reg.host()),
        ]));
        let digest = pushed.rsplit('@').next().unwrap();
        let actual = lambda_img::image::Digest::of(&inspected.stdout).to_string();
        assert_eq!(actual, digest, "skopeo read the pushed manifest");
    }
}

#[test]
fn a_token_server_on_a_third_host_gets_the_password_only_for_the_credentials_own_registry() {
    if !require_tool("busybox") {
        return;
    }
    let (Some(base_store), Some(out_store)) = (TestRegistry::start(), TestRegistry::start()) else {
        return;
    };
    // The base's registry issues tokens to anyone; the output's only to bob.
    // Each names a token server on another host: a recording proxy that
    // passes /token on.
    let base_reg = BearerProxy::start(base_store.port, None);
    let base_realm = FaultProxy::start(base_reg.server.port);
    base_reg.realm_at(base_realm.server.port);
    let out_reg = BearerProxy::start(out_store.port, Some(("bob", BOB_PW)));
    let out_realm = FaultProxy::start(out_reg.server.port);
    out_reg.realm_at(out_realm.server.port);

    let config = docker_config(&[]);
    let base = push_base(&base_reg.host(), &config);
    base_realm.authorizations.lock().unwrap().clear();

    let app = app_on(&base);
    let mut cmd = app.cmd(&[
        "--username",
        "bob",
        "--password-stdin",
        "build",
        "--output",
        &format!("registry:{}/app/img:1", out_reg.host()),
    ]);
    cmd.env("DOCKER_CONFIG", config.path());
    let out = ok(with_stdin(&mut cmd, BOB_PW), "build");
    assert!(
        stdout(&out).starts_with(&format!("{}/app/img:1@sha256:", out_reg.host())),
        "{}",
        stdout(&out)
    );

    let bob = basic("bob", BOB_PW);
    // The base's token server was asked (the base was read with a token),
    // anonymously: the challenge came from a host the password is not for.
    let base_tokens = seen(&base_realm);
    assert!(
        base_tokens.iter().any(|(t, _)| t.starts_with("/token")),
        "the base was read through its token server: {base_tokens:?}"
    );
    assert!(
        base_tokens.iter().all(|(_, a)| a.is_none()),
        "the base's token server got credentials: {base_tokens:?}"
    );
    // The output's token server, named by the credentials' own registry,
    // gets them, as docker and containerd send them.
    let out_tokens = seen(&out_realm);
    assert!(
        out_tokens
            .iter()
            .any(|(t, a)| t.starts_with("/token") && a.as_deref() == Some(&bob)),
        "{out_tokens:?}"
    );
}

#[test]
fn flags_without_one_target_host_are_refused_before_the_password_is_read() {
    let p = busybox_project("");
    for (args, expected) in [
        (
            vec!["build", "--output", "oci:out"],
            "build talks to no registry they could be for",
        ),
        (
            vec![
                "build",
                "--output",
                "registry:127.0.0.1:5998/a:1",
                "--output",
                "registry:127.0.0.1:5999/a:1",
            ],
            "several registries (127.0.0.1:5998",
        ),
        (
            vec![
                "build",
                "--recursive",
                "--output",
                "registry:{function}.example.com/x:1",
            ],
            "depends on {function}",
        ),
        (vec!["check", "oci:somewhere"], "check talks to no registry"),
        (
            vec!["inspect", "127.0.0.1:5998/a:1", "--diff", "127.0.0.1:5999/b:1"],
            "several registries (127.0.0.1:5998",
        ),
        // The project's base is scratch: nothing to pin, no registry.
        (vec!["pin"], "pin talks to no registry"),
        (
            vec!["init", "--no-pin", "fresh"],
            "init --no-pin talks to no registry",
        ),
        (vec!["run"], "run talks to no registry"),
        (vec!["cache", "size"], "talks to no registry"),
    ] {
        let mut cmd = p.cmd(&["--username", "u", "--password-stdin"]);
        cmd.args(&args).stdin(std::process::Stdio::null());
        let out = run_fail_with(&mut cmd, 2);
        let err = stderr(&out);
        assert!(err.contains(expected), "{args:?}: {err}");
        // Refused before stdin was read: no "empty password".
        assert!(!err.contains("empty password"), "{args:?}: {err}");
    }
    assert!(!p.join("out").exists(), "nothing was built");
    assert!(!p.join("fresh").exists(), "init wrote nothing");
}

/// `build --print-settings` and a `-v` push that fails: the password (and
/// its Basic form) appear nowhere in stdout, stderr or the cache.
#[test]
fn the_password_reaches_no_output_log_or_cache_file() {
    if !require_tool("busybox") {
        return;
    }
    let Some(reg) = TestRegistry::start_basic("bob", BOB_PW) else {
        return;
    };
    let proxy = FaultProxy::start(reg.port);
    let p = busybox_project("");
    let output = format!("registry:{}/app/img:1", proxy.host());
    let header = basic("bob", BOB_PW);
    let secrets = [BOB_PW, &header["Basic ".len()..]];

    let mut cmd = p.cmd(&[
        "--username",
        "bob",
        "--password-stdin",
        "build",
        "--print-settings",
        "--output",
        &output,
    ]);
    let out = ok(with_stdin(&mut cmd, BOB_PW), "print-settings");
    let settings: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(settings["credentials_host"], proxy.host());
    assert_no_secrets(&out, &secrets);

    // Every blob upload fails: the push gives up, -v names the request.
    proxy.add(Fault {
        method: "PUT",
        path_contains: "/blobs/uploads/".into(),
        times: 100,
        kind: FaultKind::Status(500),
    });
    let mut cmd = p.cmd(&[
        "-v",
        "--registry-timeout",
        "5",
        "--username",
        "bob",
        "--password-stdin",
        "build",
        "--output",
        &output,
    ]);
    let out = with_stdin(&mut cmd, BOB_PW);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("failed request: PUT"), "{}", stderr(&out));
    // The registry did get the credentials (the failure is the upload's).
    assert!(
        seen(&proxy)
            .iter()
            .any(|(_, a)| a.as_deref() == Some(header.as_str()))
    );
    assert_no_secrets(&out, &secrets);
    assert_no_secrets_in(p.cache.path(), &secrets);
    assert_no_secrets_in(p.path(), &secrets);
}

/// `check` and `pin` sign in to the `[registry] aws_auth` hosts of the
/// manifest `--manifest` names, not of ./lambda-img.toml (here: none, the
/// command runs in an empty directory). moto is ECR's control plane; the
/// registry behind htpasswd takes moto's ECR password.
#[test]
fn ecr_sign_in_hosts_come_from_the_manifest_the_command_is_given() {
    use crate::support::moto::{ACCOUNT, Moto, aws_env, ecr_password, env_keys};
    use lambda_img::aws::ACCEPT_EXPIRED_ENV;
    if !require_tool("busybox") || !require_tool("moto_server") {
        return;
    }
    let Some(moto) = Moto::start() else { return };
    let password = ecr_password(ACCOUNT);
    let Some(reg) = TestRegistry::start_basic("AWS", &password) else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let signin = format!("\n[registry]\naws_auth = [\"{}\"]\n", reg.host());
    let p = busybox_project(&signin);
    let aws = |c: &mut std::process::Command| {
        aws_env(c, &moto, home.path());
        env_keys(c);
        c.env(ACCEPT_EXPIRED_ENV, "1");
    };
    // The image, pushed with the manifest's sign-in (build reads it already).
    let image = format!("{}/app:1", reg.host());
    let mut c = p.cmd(&[
        "build",
        "--output",
        &format!("registry:{image}"),
        "--create-repository",
    ]);
    aws(&mut c);
    run_ok(&mut c);

    let empty = tempfile::tempdir().unwrap();
    let manifest = p.join("lambda-img.toml");
    let in_empty = |args: &[&str]| {
        let mut c = crate::support::lambda_img(p.cache.path());
        c.arg("-C").arg(empty.path()).args(args);
        aws(&mut c);
        c
    };
    // Without --manifest nothing names the host: anonymous, refused.
    let out = crate::support::run_fail(&mut in_empty(&["check", &image]));
    assert!(stderr(&out).contains("refused access"), "{}", stderr(&out));
    // With it, check signs in.
    let mut c = in_empty(&["check", &image, "--manifest"]);
    c.arg(&manifest);
    let out = ok(c.output().unwrap(), "check --manifest");
    assert!(
        stdout(&out).starts_with(&format!("{image}@sha256:")),
        "{}",
        stdout(&out)
    );
    assert_no_secrets(&out, &[&password]);

    // pin: a manifest whose base is that tag, with the sign-in host.
    let unpinned = Project::new(
        &format!(
            "[function]\nname = \"app\"\nruntime = \"provided.al2023\"\n\n[base]\nimage = \"{image}\"\n{signin}"
        ),
        &[],
    );
    let mut c = in_empty(&["pin", "--manifest"]);
    c.arg(unpinned.join("lambda-img.toml"));
    let out = ok(c.output().unwrap(), "pin --manifest");
    assert!(
        stdout(&out).starts_with(&format!("{image}@sha256:")),
        "{}",
        stdout(&out)
    );
    let text = std::fs::read_to_string(unpinned.join("lambda-img.toml")).unwrap();
    assert!(text.contains(&format!("{image}@sha256:")), "{text}");
}
