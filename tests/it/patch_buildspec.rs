//! examples/monorepo's scheduled patch job (buildspec-patch.yml and the
//! Makefile's `rebuild` target), run the way CodeBuild runs it: nothing to do
//! while the bases are current; after a new base build under the same tag,
//! every function re-pinned, rebuilt, pushed and deployed by digest.

use crate::codebuild::{PASSWORD, have_yaml, monorepo_checkout, pushed_config, run_buildspec};
use crate::init::base_repository;
use crate::support::registry::TestRegistry;
use crate::support::{require_tool, stand_in};

const FUNCTIONS: [&str; 3] = ["notifications", "orders", "payments"];

#[test]
fn the_scheduled_patch_buildspec_does_nothing_when_current_and_patches_every_function_when_a_base_moves() {
    if !have_yaml() || !require_tool("skopeo") || !require_tool("make") || !require_tool("jq") {
        return;
    }
    let (Some(bases), Some(ecr)) = (TestRegistry::start(), TestRegistry::start_basic("AWS", PASSWORD)) else {
        return;
    };
    let repository = base_repository("python3.12");
    stand_in::publish(&bases, repository);
    let tmp = tempfile::tempdir().unwrap();
    let (root, from) = monorepo_checkout(tmp.path());
    let cache = tmp.path().join("cache");
    let manifest = |f: &str| root.join(format!("examples/monorepo/functions/{f}/lambda-img.toml"));
    for f in FUNCTIONS {
        stand_in::point_at(&manifest(f), &bases, &cache);
    }
    let calls = tmp.path().join("aws-calls.txt");
    let env = [
        ("REGISTRY", ecr.host()),
        ("LAMBDA_IMG_CACHE", cache.display().to_string()),
        ("DEPLOY", "true".to_string()),
        ("AWS_CALLS", calls.display().to_string()),
    ];

    // The bases are current: nothing is re-pinned, built or deployed.
    let pinned: Vec<String> = FUNCTIONS
        .iter()
        .map(|f| std::fs::read_to_string(manifest(f)).unwrap())
        .collect();
    let exported = run_buildspec(&from.join("buildspec-patch.yml"), &root, &env);
    assert_eq!(exported["BASES_MOVED"], "0");
    assert!(!calls.exists(), "nothing deployed");
    assert_eq!(
        std::fs::read_to_string(root.join("image-digests.txt")).unwrap(),
        ""
    );

    // A new build of the base under the same tag: every function moves.
    stand_in::publish_patched(&bases, repository);
    let exported = run_buildspec(&from.join("buildspec-patch.yml"), &root, &env);
    assert_eq!(exported["BASES_MOVED"], "3");
    let table = std::fs::read_to_string(root.join("pin-check.txt")).unwrap();
    assert!(table.contains("3 function(s) lag"), "{table}");
    let deployed = std::fs::read_to_string(&calls).unwrap();
    for (i, f) in FUNCTIONS.iter().enumerate() {
        assert_ne!(
            std::fs::read_to_string(manifest(f)).unwrap(),
            pinned[i],
            "{f} re-pinned"
        );
        let uri = deployed
            .lines()
            .find_map(|l| {
                l.strip_prefix(&format!(
                    "lambda update-function-code --function-name {f} --image-uri "
                ))
            })
            .unwrap_or_else(|| panic!("{f} not deployed: {deployed}"));
        assert!(
            uri.starts_with(&format!("{}/{f}:patch-", ecr.host())) && uri.contains("@sha256:"),
            "{uri}"
        );
        // skopeo takes a tag or a digest, not both.
        let config = pushed_config(&format!("{}/{f}@{}", ecr.host(), uri.rsplit('@').next().unwrap()));
        let env = config["config"]["Env"].to_string();
        assert!(
            env.contains("LD_LIBRARY_PATH=/var/lang/lib:/lib64"),
            "{f}: the new base's env: {env}"
        );
        let text = std::fs::read_to_string(manifest(f)).unwrap();
        let digest = config["config"]["Labels"]["org.opencontainers.image.base.digest"]
            .as_str()
            .unwrap();
        assert!(
            text.contains(digest),
            "{f}: the image records the digest now pinned"
        );
    }
}
