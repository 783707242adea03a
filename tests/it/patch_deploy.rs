//! `build --recursive --deploy`: the fleet patched end to end against moto's
//! Lambda and ECR (via AWS_ENDPOINT_URL), pushing to the Distribution
//! registry through ECR sign-in: each function's repository created, its
//! image pushed and deployed by digest to the function of its own name.

use serde_json::Value;

use crate::aws_signin::{aws_cmd, busybox_project};
use crate::support::moto::{ACCOUNT, Moto, ecr_password, env_keys};
use crate::support::project::scratch_manifest;
use crate::support::registry::TestRegistry;
use crate::support::{require_tool, run_fail, run_ok, stderr, write_files};

const REGION: &str = "us-east-1";

#[test]
fn build_recursive_deploy_pushes_and_deploys_every_function_to_its_own() {
    if !require_tool("busybox") || !require_tool("moto_server") {
        return;
    }
    let Some(moto) = Moto::start() else { return };
    let Some(reg) = TestRegistry::start_basic("AWS", &ecr_password(ACCOUNT)) else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    // Two functions: `hello` at the top, `beta` below it.
    let p = busybox_project("");
    write_files(
        p.path(),
        &[(
            "beta/lambda-img.toml",
            &scratch_manifest("").replace("name = \"hello\"", "name = \"beta\""),
        )],
    );
    p.copy_in(std::path::Path::new("/bin/busybox"), "beta/busybox");
    let old = format!("{}/old@sha256:{}", reg.host(), "0".repeat(64));
    for f in ["hello", "beta"] {
        moto.create_image_function(REGION, f, &old, "x86_64");
    }
    let cmd = |args: &[&str]| {
        let mut c = aws_cmd(&p, &moto, home.path(), args);
        env_keys(&mut c);
        c.env("LAMBDA_IMG_AWS_AUTH", reg.host());
        c
    };
    let output = format!("registry:{}/{{function}}:1", reg.host());

    // One --function for every image is refused before anything is built.
    let out = run_fail(&mut cmd(&[
        "build",
        "--recursive",
        "--output",
        &output,
        "--deploy",
        "--function",
        "hello",
    ]));
    assert!(stderr(&out).contains("drop --function"), "{}", stderr(&out));

    let out = run_ok(&mut cmd(&[
        "build",
        "--recursive",
        "--create-repository",
        "--output",
        &output,
        "--deploy",
        "--json",
    ]));
    let reports: Value = serde_json::from_slice(&out.stdout).unwrap();
    for f in ["hello", "beta"] {
        let entry = reports
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["function"] == f)
            .unwrap_or_else(|| panic!("no {f}: {reports:#}"));
        let digest = entry["report"]["digest"].as_str().unwrap();
        let expected = format!("{}/{f}@{digest}", reg.host());
        assert_eq!(
            entry["report"]["deploy"]["new_image"],
            expected.as_str(),
            "{entry:#}"
        );
        assert_eq!(
            moto.get_function(REGION, f)["Code"]["ImageUri"],
            expected.as_str()
        );
        assert!(
            moto.ecr_repository(REGION, f).is_object(),
            "{f}: repository created"
        );
    }
}
