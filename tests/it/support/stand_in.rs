//! Stand-ins for AWS's base images, which the tests cannot download: a small
//! image built with lambda-img and pushed to the test registry under the same
//! repository path (`127.0.0.1:PORT/lambda/python:3.12` for
//! `public.ecr.aws/lambda/python:3.12`), with the config fields Lambda's
//! bases have (ENTRYPOINT /lambda-entrypoint.sh, WORKDIR /var/task, task root env).
//! Also the helpers that point a project at it: rewrite the base host, then pin.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::registry::TestRegistry;
use super::{lambda_img, run_ok, stdout};

/// The official bases' host, as written in templates and examples.
pub const AWS_HOST: &str = "public.ecr.aws/";

/// Pushes a stand-in to `registry` at `repository` (`lambda/python:3.12`) and
/// returns its manifest digest. The stand-in's single layer holds an
/// executable `/lambda-entrypoint.sh` and an empty `/var/runtime`.
pub fn publish(registry: &TestRegistry, repository: &str) -> String {
    publish_for(registry, repository, "x86_64")
}

/// As `publish`, for `arch` (`x86_64` or `arm64`, written to the config).
pub fn publish_for(registry: &TestRegistry, repository: &str, arch: &str) -> String {
    publish_build(registry, repository, arch, false)
}

/// A later build of the stand-in under the same tag, as AWS's patches are:
/// its layer differs and it sets `PATH` and `LD_LIBRARY_PATH` besides.
pub fn publish_patched(registry: &TestRegistry, repository: &str) -> String {
    publish_build(registry, repository, "x86_64", true)
}

fn publish_build(registry: &TestRegistry, repository: &str, arch: &str, patched: bool) -> String {
    let project = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let dir = project.path();
    std::fs::create_dir_all(dir.join("root/var/runtime")).unwrap();
    std::fs::create_dir_all(dir.join("root/var/task")).unwrap();
    std::fs::write(dir.join("root/var/runtime/.keep"), "").unwrap();
    std::fs::write(dir.join("root/var/task/.keep"), "").unwrap();
    let entry = dir.join("root/lambda-entrypoint.sh");
    std::fs::write(
        &entry,
        format!(
            "#!/bin/sh\n# stand-in for AWS's runtime entrypoint{}\nexec /var/runtime/bootstrap \"$@\"\n",
            if patched { " (patched)" } else { "" }
        ),
    )
    .unwrap();
    std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o755)).unwrap();
    // The entrypoint's interpreter, as the real bases have it (LI045 otherwise);
    // a stand-in, never run.
    std::fs::create_dir_all(dir.join("root/bin")).unwrap();
    std::fs::write(dir.join("root/bin/sh"), "stand-in shell, never run\n").unwrap();
    std::fs::set_permissions(dir.join("root/bin/sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        dir.join("lambda-img.toml"),
        format!(
            r#"[function]
name = "stand-in"
runtime = "none"
architecture = "{arch}"

[base]
image = "scratch"

[code]
sources = ["root"]
destination = "/"

[image]
entrypoint = ["/lambda-entrypoint.sh"]
workdir = "/var/task"
env = {{ LANG = "en_US.UTF-8", LAMBDA_TASK_ROOT = "/var/task", LAMBDA_RUNTIME_DIR = "/var/runtime"{patch_env} }}
format = "docker"
"#,
            patch_env = if patched {
                r#", PATH = "/var/lang/bin:/usr/bin:/bin", LD_LIBRARY_PATH = "/var/lang/lib:/lib64""#
            } else {
                ""
            }
        ),
    )
    .unwrap();
    let out = run_ok(lambda_img(cache.path()).arg("-C").arg(dir).args([
        "build",
        "--quiet",
        "--output",
        &format!("registry:{}/{repository}", registry.host()),
    ]));
    let text = stdout(&out);
    let digest = text.trim().rsplit('@').next().unwrap().to_string();
    assert!(digest.starts_with("sha256:"), "stand-in push printed {text:?}");
    digest
}

/// Points `manifest`'s base at `registry` (same repository path, no digest),
/// then pins it with `lambda-img pin`. Returns the pinned reference.
pub fn point_at(manifest: &Path, registry: &TestRegistry, cache: &Path) -> String {
    let text = std::fs::read_to_string(manifest).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with("image = ") && line.contains(AWS_HOST) {
            let rewritten = line.replace(AWS_HOST, &format!("{}/", registry.host()));
            let unpinned = match rewritten.find("@sha256:") {
                Some(at) => format!("{}\"", &rewritten[..at]),
                None => rewritten,
            };
            out.push_str(&unpinned);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    assert_ne!(text, out, "{} names no {AWS_HOST} base", manifest.display());
    std::fs::write(manifest, out).unwrap();
    let pinned = run_ok(
        lambda_img(cache)
            .arg("--quiet")
            .arg("pin")
            .arg("--manifest")
            .arg(manifest),
    );
    stdout(&pinned).trim().to_string()
}
