//! LI042: a base or input layer whose entry names are absolute or climb with
//! `..` is an error finding (Lambda's unpacker and others would write outside
//! the root), from `check` and from a build on such a base.

use crate::support::crafted::*;
use crate::support::project::Project;
use crate::support::{lambda_img, run_fail, stdout};

/// A layout tagged `base` whose one layer has escaping names beside sound ones.
fn escaping_layout(dir: &std::path::Path) -> String {
    let mut entry = image_in_layout(
        dir,
        &[
            ("var/", b""),
            ("var/task/", b""),
            ("var/task/app", b"#!/bin/sh\n"),
            ("/etc/cron.d/evil", b"* * * * * root sh\n"),
            ("../outside", b"x"),
            ("var/task/../../../up", b"y"),
        ],
    );
    entry["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": "base"});
    let digest = entry["digest"].as_str().unwrap().to_string();
    write_index(dir, vec![entry]);
    digest
}

#[test]
fn absolute_and_dotdot_entry_names_are_li042_errors() {
    let dirs = tempfile::tempdir().unwrap();
    let base = dirs.path().join("base");
    let digest = escaping_layout(&base);

    let cache = tempfile::tempdir().unwrap();
    let out = run_fail(lambda_img(cache.path()).args(["check", &format!("oci:{}:base", base.display())]));
    assert_eq!(out.status.code(), Some(1), "an error finding");
    let text = stdout(&out);
    let line = text
        .lines()
        .find(|l| l.contains("LI042"))
        .unwrap_or_else(|| panic!("no LI042: {text}"));
    assert!(
        line.contains("3 entries") && line.contains("/etc/cron.d/evil") && line.contains("../outside"),
        "{line}"
    );
    assert!(
        !text.contains("var/task/app ("),
        "sound names are not listed: {text}"
    );

    // A build on that base fails the same way and writes nothing.
    let p = Project::new(
        &format!(
            "[function]\nname = \"app\"\nruntime = \"provided.al2023\"\n\n[base]\nimage = \"oci:{}:base@{digest}\"\n\n[code]\nsources = [\"src\"]\n",
            base.display()
        ),
        &[("src/handler.sh", "echo\n")],
    );
    let target = dirs.path().join("out");
    let out = p.build_fail(&["--output", &format!("oci:{}", target.display())]);
    let err = crate::support::stderr(&out);
    assert!(err.contains("LI042"), "{err}");
    assert!(!target.join("index.json").exists());
}
