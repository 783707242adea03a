//! Registry auth against the real Distribution registry: htpasswd Basic through
//! config.json, a credential helper and `login`; the bearer-token flow.

use lambda_img::image::Architecture;
use lambda_img::registry::{
    CredentialStore, Credentials, LoginOptions, RegistryError, ScopedCredentials, login,
};

use crate::support::registry::*;
use crate::support::token_server::BearerProxy;

#[test]
fn basic_auth_through_config_json_helper_and_login() {
    let Some(reg) = TestRegistry::start_basic("alice", "s3cret-pw") else {
        return;
    };
    let (dir, cache) = new_cache();
    let image = test_image(&cache, "amd64", b"auth\n");

    // Anonymous: refused with a message naming the registry.
    let err = push(&reg.host(), "priv/app:1", &image, opts()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&reg.host()) && msg.contains("no credentials"),
        "{msg}"
    );

    // Wrong password via login: refused, nothing stored.
    let cfg = dir.path().join("docker");
    let bad = LoginOptions {
        registry: reg.host(),
        credentials: Credentials::new("alice", "wrong-pw"),
        docker_config_dir: Some(cfg.clone()),
        registry_options: opts(),
    };
    let err = login(&bad).unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
    assert!(!err.to_string().contains("wrong-pw"));
    assert!(!cfg.join("config.json").exists());

    // Right password: stored in config.json like docker, then used by push and pull.
    let good = LoginOptions {
        credentials: Credentials::new("alice", "s3cret-pw"),
        ..bad
    };
    let outcome = login(&good).unwrap();
    assert_eq!(
        outcome.stored_in,
        CredentialStore::ConfigFile(cfg.join("config.json"))
    );
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cfg.join("config.json")).unwrap()).unwrap();
    assert!(stored["auths"][reg.host()]["auth"].is_string());
    push(&reg.host(), "priv/app:1", &image, opts_with_config(&cfg)).unwrap();
    let got = pull(
        &format!("{}/priv/app:1", reg.host()),
        Architecture::X86_64,
        &new_cache().1,
        opts_with_config(&cfg),
    )
    .unwrap();
    assert_eq!(got.manifest_digest(), image.manifest_digest());

    // A credential helper found on the helper search path.
    let helper_dir = dir.path().join("bin");
    std::fs::create_dir_all(&helper_dir).unwrap();
    let helper = helper_dir.join("docker-credential-lambdatest");
    let log = dir.path().join("helper-stdin");
    let stored = dir.path().join("helper-store");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\ncase \"$1\" in\n get) cat > {}; echo '{{\"ServerURL\":\"x\",\"Username\":\"alice\",\"Secret\":\"s3cret-pw\"}}' ;;\n store) cat > {} ;;\n *) exit 1 ;;\nesac\n",
            log.display(),
            stored.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let helper_cfg = dir.path().join("docker-helper");
    std::fs::create_dir_all(&helper_cfg).unwrap();
    std::fs::write(
        helper_cfg.join("config.json"),
        format!(r#"{{"credHelpers":{{"{}":"lambdatest"}}}}"#, reg.host()),
    )
    .unwrap();
    let mut o = opts_with_config(&helper_cfg);
    o.helper_path = Some(helper_dir.into_os_string());
    let got = pull(
        &format!("{}/priv/app:1", reg.host()),
        Architecture::X86_64,
        &new_cache().1,
        o,
    )
    .unwrap();
    assert_eq!(got.manifest_digest(), image.manifest_digest());
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        reg.host(),
        "the helper got the server on stdin"
    );

    // Explicit credentials that are wrong: a clear refusal.
    let mut o = opts();
    o.credentials = Some(ScopedCredentials::new(
        &reg.host(),
        Credentials::new("alice", "nope-nope"),
    ));
    let err = pull(
        &format!("{}/priv/app:1", reg.host()),
        Architecture::X86_64,
        &cache,
        o,
    )
    .unwrap_err();
    assert!(err.to_string().contains("refused access"), "{err}");
    assert!(!err.to_string().contains("nope-nope"));
}

#[test]
fn bearer_token_flow_anonymous_and_with_credentials() {
    let Some(reg) = TestRegistry::start() else { return };
    let (_d, cache) = new_cache();
    let image = test_image(&cache, "amd64", b"bearer\n");

    let anon = BearerProxy::start(reg.port, None);
    let r = push(&anon.host(), "tok/app:1", &image, opts()).unwrap();
    assert_eq!(r.blobs.unwrap().len(), 3);
    let got = pull(
        &format!("{}/tok/app:1", anon.host()),
        Architecture::X86_64,
        &new_cache().1,
        opts(),
    )
    .unwrap();
    assert_eq!(got.manifest_digest(), image.manifest_digest());
    let issued = anon.issued.lock().unwrap().clone();
    assert!(
        issued.contains(&"repository:tok/app:pull,push".to_string()),
        "{issued:?}"
    );
    assert!(
        issued.contains(&"repository:tok/app:pull".to_string()),
        "{issued:?}"
    );

    let private = BearerProxy::start(reg.port, Some(("bob", "tokpw")));
    let err = pull(
        &format!("{}/tok/app:1", private.host()),
        Architecture::X86_64,
        &new_cache().1,
        opts(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("anonymous access was refused"), "{err}");
    let mut o = opts();
    o.credentials = Some(ScopedCredentials::new(
        &private.host(),
        Credentials::new("bob", "wrong"),
    ));
    let err = pull(
        &format!("{}/tok/app:1", private.host()),
        Architecture::X86_64,
        &new_cache().1,
        o,
    )
    .unwrap_err();
    assert!(err.to_string().contains("rejected the credentials"), "{err}");
    let mut o = opts();
    o.credentials = Some(ScopedCredentials::new(
        &private.host(),
        Credentials::new("bob", "tokpw"),
    ));
    let got = pull(
        &format!("{}/tok/app:1", private.host()),
        Architecture::X86_64,
        &new_cache().1,
        o,
    )
    .unwrap();
    assert_eq!(got.manifest_digest(), image.manifest_digest());
}
