//! Credentials stay with their registry: a relay in front of the real
//! Distribution registry (htpasswd, and bearer through the token proxy) sends
//! uploads, mounts and manifest pushes to a second loopback port. That second
//! host must never see an `Authorization` header; when it asks for
//! credentials, the push fails naming both hosts.

use base64::Engine as _;
use lambda_img::image::Architecture;
use lambda_img::registry::{BlobAction, BlobBytes, Client, Credentials, RegistryOptions, ScopedCredentials};

use crate::support::location_relay::{LocationRelay, Second};
use crate::support::registry::*;
use crate::support::token_server::BearerProxy;

fn with_creds(host: &str, user: &str, pass: &str) -> RegistryOptions {
    RegistryOptions {
        credentials: Some(ScopedCredentials::new(host, Credentials::new(user, pass))),
        ..opts()
    }
}

/// Pushes through a cooperative relay (the second host forwards to `backend`
/// with `inject`), mounts a blob into another repository through it, and
/// checks the second host saw every kind of request and never a credential.
/// `verify_host` is where the pushed image is read back.
fn cooperative(
    upstream: u16,
    backend: u16,
    inject: Option<String>,
    verify_host: &str,
    verify: RegistryOptions,
) {
    let relay = LocationRelay::start(
        upstream,
        Second::Forward {
            port: backend,
            inject,
        },
    );
    let (_d, cache) = new_cache();
    let image = test_image(&cache, "amd64", b"scoped credentials\n");
    push(
        &relay.host(),
        "priv/app:1",
        &image,
        with_creds(&relay.host(), "alice", "s3cret-pw"),
    )
    .unwrap();

    let client = Client::with_credentials(
        &relay.host(),
        &opts(),
        Some(Credentials::new("alice", "s3cret-pw")),
    );
    let layer = &image.layers()[0];
    let lambda_img::image::BlobLocation::File(path) = &layer.location;
    let action = client
        .push_blob(
            "other/app",
            &layer.descriptor.digest,
            BlobBytes::File(path),
            Some("priv/app"),
        )
        .unwrap();
    assert_eq!(action, BlobAction::Mounted);

    let seen = relay.seen();
    let has = |m: &str, part: &str| seen.iter().any(|s| s.method == m && s.target.contains(part));
    assert!(
        has("PUT", "digest=sha256"),
        "blob uploads went to the second host: {seen:?}"
    );
    assert!(
        has("PUT", "/manifests/1"),
        "the manifest push was redirected: {seen:?}"
    );
    assert!(has("POST", "mount=sha256"), "the mount was redirected: {seen:?}");
    let leaked: Vec<_> = seen.iter().filter(|s| s.authorization.is_some()).collect();
    assert!(leaked.is_empty(), "credentials reached another host: {leaked:?}");

    let got = pull(
        &format!("{verify_host}/priv/app:1"),
        Architecture::X86_64,
        &new_cache().1,
        verify,
    )
    .unwrap();
    assert_eq!(got.manifest_digest(), image.manifest_digest());
}

/// Pushes through a relay whose second host asks for credentials itself: the
/// push fails naming both hosts, and nothing secret went there (no token fetch either).
fn hostile(upstream: u16) {
    let relay = LocationRelay::start(upstream, Second::Challenge);
    let (_d, cache) = new_cache();
    let image = test_image(&cache, "amd64", b"hostile\n");
    let err = push(
        &relay.host(),
        "priv/app:2",
        &image,
        with_creds(&relay.host(), "alice", "s3cret-pw"),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&relay.host())
            && msg.contains(&relay.second.host())
            && msg.contains("asked for credentials"),
        "{msg}"
    );
    assert!(!msg.contains("s3cret-pw"), "{msg}");
    let seen = relay.seen();
    assert!(!seen.is_empty(), "the upload went to the second host");
    assert!(seen.iter().all(|s| s.authorization.is_none()), "{seen:?}");
    assert!(
        seen.iter().all(|s| s.target != "/token"),
        "no token was asked of the other host's realm: {seen:?}"
    );
}

#[test]
fn htpasswd_credentials_never_follow_an_upload_to_another_host() {
    let Some(reg) = TestRegistry::start_basic("alice", "s3cret-pw") else {
        return;
    };
    // The second host is the registry's storage backend: it holds its own credentials.
    let own = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("alice:s3cret-pw")
    );
    cooperative(
        reg.port,
        reg.port,
        Some(own),
        &reg.host(),
        with_creds(&reg.host(), "alice", "s3cret-pw"),
    );
    hostile(reg.port);
}

#[test]
fn bearer_tokens_and_passwords_never_follow_an_upload_to_another_host() {
    let Some(reg) = TestRegistry::start() else { return };
    let bearer = BearerProxy::start(reg.port, Some(("alice", "s3cret-pw")));
    cooperative(
        bearer.server.port,
        reg.port,
        None,
        &bearer.host(),
        with_creds(&bearer.host(), "alice", "s3cret-pw"),
    );
    hostile(bearer.server.port);
    // The token server named by the registry's own challenge did get the password.
    assert!(!bearer.issued.lock().unwrap().is_empty());
}
