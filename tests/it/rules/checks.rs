//! One test per rule: the AWS-shaped image passes, a variant made to break
//! the rule gives the rule's finding (with the figures in its message).

use lambda_img::image::{
    Architecture, DOCKER_LAYER_GZIP, Image, MediaFamily, OCI_INDEX, OCI_LAYER_TAR, OCI_LAYER_ZSTD,
    write_index,
};
use lambda_img::rules::{
    self, CheckContext, Finding, Limits, RULES, Severity, check_image, check_limits, has_errors,
    index_finding,
};
use serde_json::json;

use super::fixture::{APP_PY, ImageBuilder, TarLayer, aws_like, elf};
use crate::support::registry::with_layer_facts;

fn ctx() -> CheckContext {
    CheckContext {
        arch: Some(Architecture::X86_64),
        runtime: Some("python3.12".into()),
        handler: None,
        limits: Limits::default(),
    }
}

fn ids(findings: &[Finding]) -> Vec<&'static str> {
    findings.iter().map(|f| f.rule_id).collect()
}

/// Asserts the clean image lacks `id` and `bad` has it; returns that finding.
fn breaks(id: &str, mut bad: ImageBuilder, ctx: &CheckContext) -> Finding {
    let clean = check_image(&aws_like().build(), ctx).unwrap();
    assert!(!ids(&clean).contains(&id), "clean image gave {id}: {clean:#?}");
    let findings = check_image(&bad.build(), ctx).unwrap();
    let found = findings.iter().find(|f| f.rule_id == id);
    let found = found
        .unwrap_or_else(|| panic!("expected {id}, got {findings:#?}"))
        .clone();
    assert_eq!(found.severity, rules::rule(id).unwrap().severity);
    assert!(
        !found.message.contains('\n'),
        "one-line message: {}",
        found.message
    );
    found
}

#[test]
fn aws_shaped_image_gives_no_finding() {
    let findings = check_image(&aws_like().build(), &ctx()).unwrap();
    assert!(findings.is_empty(), "{findings:#?}");
    // Without runtime or arch given: inferred or skipped, still clean.
    let findings = check_image(&aws_like().build(), &CheckContext::default()).unwrap();
    assert!(findings.is_empty(), "{findings:#?}");
}

#[test]
fn every_rule_has_text_and_a_source() {
    for r in RULES {
        assert!(
            !r.summary.is_empty() && !r.fix.is_empty() && !r.source.is_empty(),
            "{r:?}"
        );
    }
    let f = index_finding("oci:./x:latest", OCI_INDEX);
    assert_eq!((f.rule_id, f.severity), ("LI001", Severity::Error));
    let json = serde_json::to_value(&f).unwrap();
    assert_eq!(json["rule_id"], "LI001");
    assert_eq!(json["severity"], "error");
}

#[test]
fn li001_manifest_bytes_that_are_an_index() {
    let built = aws_like().build();
    let index = write_index(&[built.manifest_descriptor()]);
    let image = Image::from_manifest(
        built.family(),
        index,
        built.config().to_vec(),
        built.config_descriptor().clone(),
        built.layers().to_vec(),
    );
    let findings = check_limits(&image, &Limits::default(), None);
    assert!(ids(&findings).contains(&"LI001"), "{findings:#?}");
}

#[test]
fn li002_unknown_layer_media_type() {
    let f = breaks(
        "LI002",
        aws_like().layer_as(TarLayer::new(), "application/octet-stream"),
        &ctx(),
    );
    assert!(
        f.message.contains("layer 5") && f.message.contains("application/octet-stream"),
        "{f}"
    );
}

#[test]
fn li003_docker_layer_in_oci_manifest() {
    let f = breaks(
        "LI003",
        aws_like().layer_as(TarLayer::new().dir("x", 0o755), DOCKER_LAYER_GZIP),
        &ctx(),
    );
    assert!(f.message.contains("oci") && f.message.contains("docker"), "{f}");
}

#[test]
fn li004_uncompressed_and_zstd_layers() {
    let bad = aws_like().layer_as(TarLayer::new().dir("x", 0o755), OCI_LAYER_TAR);
    let f = breaks("LI004", bad, &ctx());
    assert!(f.message.contains("uncompressed"), "{f}");
    let mut zstd = aws_like().layer_as(TarLayer::new().dir("x", 0o755), OCI_LAYER_ZSTD);
    let findings = check_image(&zstd.build(), &ctx()).unwrap();
    assert!(ids(&findings).contains(&"LI004"), "{findings:#?}");
    // The zstd layer cannot be read: filesystem rules say they were skipped.
    assert!(ids(&findings).contains(&"LI090"), "{findings:#?}");
}

#[test]
fn li010_uncompressed_total_over_10_gib_names_the_largest_layers() {
    let image = with_layer_facts(&aws_like().build(), |layers| {
        layers[1].uncompressed_size = 6 << 30;
        layers[3].uncompressed_size = 5 << 30;
    });
    let findings = check_limits(&image, &Limits::default(), None);
    let f = findings.iter().find(|f| f.rule_id == "LI010").expect("LI010");
    assert!(f.message.contains("10737418240"), "{f}");
    assert!(
        f.message.contains("layer 2") && f.message.contains("6.0 GiB"),
        "{f}"
    );
    assert!(
        f.message.contains("layer 4") && f.message.contains("5.0 GiB"),
        "{f}"
    );
    // The CLI may lower the limit.
    let tight = Limits {
        max_uncompressed: 1000,
        ..Limits::default()
    };
    let small = aws_like().build();
    assert!(ids(&check_limits(&small, &tight, None)).contains(&"LI010"));
    assert!(!ids(&check_limits(&small, &Limits::default(), None)).contains(&"LI010"));
}

fn with_layers(n: usize) -> ImageBuilder {
    let mut b = aws_like();
    for i in b.layers.len()..n {
        b = b.layer(TarLayer::new().file(&format!("opt/l{i}"), 0o644, b"x"));
    }
    b
}

#[test]
fn li011_li012_li013_manifest_bytes_and_layer_count() {
    let warn = check_limits(&with_layers(101).build(), &Limits::default(), None);
    assert_eq!(ids(&warn), ["LI012"], "{warn:#?}");
    assert_eq!(warn[0].severity, Severity::Warning);
    let under = check_limits(&with_layers(100).build(), &Limits::default(), None);
    assert!(under.is_empty(), "{under:#?}");
    let image = with_layers(175).build();
    let err = check_limits(&image, &Limits::default(), None);
    assert!(
        ids(&err).contains(&"LI013") && !ids(&err).contains(&"LI012"),
        "{err:#?}"
    );
    // 175 layer descriptors (about 150 bytes each) overflow 25,400 bytes.
    assert!(image.manifest().len() > 25_400);
    let f = err.iter().find(|f| f.rule_id == "LI011").expect("LI011");
    assert!(
        f.message.contains(&image.manifest().len().to_string()) && f.message.contains("25400"),
        "{f}"
    );
}

#[test]
fn li020_os_not_linux() {
    breaks("LI020", aws_like().set("/os", json!("windows")), &ctx());
}

#[test]
fn li021_architecture_not_amd64_or_arm64() {
    let f = breaks("LI021", aws_like().set("/architecture", json!("s390x")), &ctx());
    assert!(f.message.contains("s390x"), "{f}");
}

#[test]
fn li022_config_architecture_is_not_the_functions() {
    let arm = CheckContext {
        arch: Some(Architecture::Arm64),
        ..ctx()
    };
    let findings = check_image(&aws_like().build(), &arm).unwrap();
    let f = findings.iter().find(|f| f.rule_id == "LI022").expect("LI022");
    assert!(f.message.contains("amd64") && f.message.contains("arm64"), "{f}");
    breaks("LI022", aws_like().set("/architecture", json!("arm64")), &ctx());
}

#[test]
fn li022_elf_entrypoint_and_bootstrap_for_the_wrong_machine() {
    let bad = aws_like()
        .layer(TarLayer::new().file("var/task/bin/main", 0o755, &elf(183)))
        .set("/config/Entrypoint", json!(["/var/task/bin/main"]));
    let f = breaks("LI022", bad, &ctx());
    assert!(
        f.message.contains("arm64 (EM_AARCH64)") && f.message.contains("x86_64 (EM_X86_64)"),
        "{f}"
    );
    // The bootstrap is checked through a symlink to it.
    let mut bad = aws_like().layer(
        TarLayer::new()
            .file("var/task/bootstrap-arm", 0o755, &elf(183))
            .dir("var/runtime", 0o755)
            .symlink("var/runtime/bootstrap", "/var/task/bootstrap-arm"),
    );
    let findings = check_image(&bad.build(), &ctx()).unwrap();
    assert!(
        findings
            .iter()
            .any(|f| f.rule_id == "LI022" && f.message.starts_with("bootstrap")),
        "{findings:#?}"
    );
    // The same image is right for an arm64 function (config aside).
    let arm = CheckContext {
        arch: Some(Architecture::Arm64),
        ..ctx()
    };
    let findings = check_image(&bad.build(), &arm).unwrap();
    assert!(
        !findings.iter().any(|f| f.message.starts_with("bootstrap")),
        "{findings:#?}"
    );
}

#[test]
fn li030_neither_entrypoint_nor_cmd() {
    breaks(
        "LI030",
        aws_like()
            .set("/config/Entrypoint", json!(null))
            .set("/config/Cmd", json!([])),
        &ctx(),
    );
}

#[test]
fn li031_entrypoint_not_absolute() {
    let f = breaks(
        "LI031",
        aws_like().set("/config/Entrypoint", json!(["lambda-entrypoint.sh"])),
        &ctx(),
    );
    assert!(f.message.contains("lambda-entrypoint.sh"), "{f}");
}

#[test]
fn li032_entrypoint_is_a_symlink() {
    let bad = aws_like()
        .layer(TarLayer::new().symlink("entry", "/lambda-entrypoint.sh"))
        .set("/config/Entrypoint", json!(["/entry"]));
    let f = breaks("LI032", bad, &ctx());
    assert!(f.message.contains("/lambda-entrypoint.sh"), "{f}");
    // A symlink in a directory component is fine: /bin -> usr/bin.
    let mut ok = aws_like().set("/config/Entrypoint", json!(["/bin/python3.12"]));
    assert!(check_image(&ok.build(), &ctx()).unwrap().is_empty());
}

#[test]
fn li033_entrypoint_missing_or_removed_by_a_whiteout() {
    breaks(
        "LI033",
        aws_like().set("/config/Entrypoint", json!(["/var/task/nope"])),
        &ctx(),
    );
    // Present in a lower layer, deleted by a whiteout in a later one.
    let whiteout = aws_like().layer(TarLayer::new().raw_dir(".", 0o755).raw_file(
        ".wh.lambda-entrypoint.sh",
        0o644,
        b"",
    ));
    breaks("LI033", whiteout, &ctx());
    // An opaque directory hides the lower layer's /usr/bin.
    let opaque = aws_like()
        .layer(
            TarLayer::new()
                .dir("usr/bin", 0o755)
                .raw_file("usr/bin/.wh..wh..opq", 0o644, b""),
        )
        .set("/config/Entrypoint", json!(["/usr/bin/python3.12"]));
    breaks("LI033", opaque, &ctx());
}

#[test]
fn li034_entrypoint_not_executable_by_others() {
    let bad = aws_like().layer(TarLayer::new().file("lambda-entrypoint.sh", 0o744, b"#!/bin/sh\n"));
    let f = breaks("LI034", bad, &ctx());
    assert!(f.message.contains("0744"), "{f}");
    let dir = aws_like().set("/config/Entrypoint", json!(["/var/task/pkg"]));
    let f = breaks("LI034", dir, &ctx());
    assert!(
        f.message.contains("/var/task/pkg (/var/task/pkg) is a directory"),
        "{f}"
    );
}

#[test]
fn li040_hard_link_entry() {
    let bad = aws_like().layer(TarLayer::new().hardlink("var/task/copy.py", "var/task/app.py"));
    let f = breaks("LI040", bad, &ctx());
    assert!(
        f.message.contains("layer 5") && f.message.contains("/var/task/copy.py"),
        "{f}"
    );
}

#[test]
fn li041_entry_without_its_parent_directory_earlier_in_the_layer() {
    // var/task/ exists in a lower layer, but not in this one: Lambda refuses it.
    let bad = aws_like().layer(TarLayer::new().raw_file("var/task/extra.py", 0o644, b"x = 1\n"));
    let f = breaks("LI041", bad, &ctx());
    assert!(
        f.message.contains("/var/task/extra.py") && f.message.contains("/var/task/"),
        "{f}"
    );
    // Parent written after the child counts as missing too.
    let late = aws_like().layer(TarLayer::new().raw_file("z/a", 0o644, b"").raw_dir("z", 0o755));
    breaks("LI041", late, &ctx());
}

#[test]
fn li050_file_not_readable_by_others() {
    let bad = aws_like().layer(TarLayer::new().file("var/task/secret.json", 0o600, b"{}"));
    let f = breaks("LI050", bad, &ctx());
    assert!(f.message.contains("/var/task/secret.json (0600)"), "{f}");
    breaks(
        "LI050",
        aws_like().layer(TarLayer::new().file("opt/lib/x.so", 0o640, b"")),
        &ctx(),
    );
    // GNU long names are read in full; many files make one finding with a count.
    let long = format!("var/task/{}/deep.json", "d".repeat(120));
    let mut many = TarLayer::new().file(&long, 0o600, b"{}");
    for i in 0..7 {
        many = many.file(&format!("var/task/p{i}"), 0o640, b"");
    }
    let f = breaks("LI050", aws_like().layer(many), &ctx());
    assert!(f.message.starts_with("8 files are not readable"), "{f}");
    assert!(
        f.message.contains(&format!("/{long} (0600)")) && f.message.ends_with(" and 3 more"),
        "{f}"
    );
    // Roots inside roots (a task root below /var/task, a runtime directory
    // above it): each file is counted once, and so is each directory.
    let mut nested = aws_like()
        .layer(
            TarLayer::new()
                .file("var/task/app/secret.json", 0o600, b"{}")
                .file("var/task/x.json", 0o640, b"")
                .dir("var/task/app/private", 0o700),
        )
        .set(
            "/config/Env",
            json!(["LAMBDA_TASK_ROOT=/var/task/app", "LAMBDA_RUNTIME_DIR=/var"]),
        );
    let findings = check_image(&nested.build(), &ctx()).unwrap();
    let files = findings.iter().find(|f| f.rule_id == "LI050").expect("LI050");
    assert!(files.message.starts_with("2 files are not readable"), "{files}");
    let dirs = findings.iter().find(|f| f.rule_id == "LI051").expect("LI051");
    assert!(dirs.message.starts_with("1 directory cannot"), "{dirs}");
    // Outside the checked roots, a private file is not Lambda's concern.
    let mut ok = aws_like().layer(TarLayer::new().file("root/.netrc", 0o600, b""));
    assert!(check_image(&ok.build(), &ctx()).unwrap().is_empty());
}

#[test]
fn li051_directory_others_cannot_enter() {
    let f = breaks(
        "LI051",
        aws_like().layer(TarLayer::new().dir("opt/extensions", 0o700)),
        &ctx(),
    );
    assert!(f.message.contains("/opt/extensions (0700)"), "{f}");
    // /var itself must be enterable to reach /var/task.
    breaks(
        "LI051",
        aws_like().layer(TarLayer::new().raw_dir("var", 0o750)),
        &ctx(),
    );
}

#[test]
fn li060_handler_not_found() {
    let f = breaks(
        "LI060",
        aws_like().set("/config/Cmd", json!(["app.missing_handler"])),
        &ctx(),
    );
    assert!(
        f.message
            .contains("/var/task/app.py does not define missing_handler"),
        "{f}"
    );
    let f = breaks(
        "LI060",
        aws_like().set("/config/Cmd", json!(["nope.handler"])),
        &ctx(),
    );
    assert!(f.message.contains("/var/task/nope.py"), "{f}");
    assert_eq!(f.severity, Severity::Warning);
    // Package modules and the handler from the context.
    let mut pkg = aws_like().layer(TarLayer::new().file("var/task/pkg/api.py", 0o644, APP_PY));
    let c = CheckContext {
        handler: Some("pkg.api.lambda_handler".into()),
        ..ctx()
    };
    assert!(check_image(&pkg.build(), &c).unwrap().is_empty());
    // Node: file.function needs file.js, .mjs or .cjs.
    let node = CheckContext {
        runtime: Some("nodejs20.x".into()),
        handler: Some("index.handler".into()),
        ..ctx()
    };
    let mut js = aws_like().layer(TarLayer::new().file(
        "var/task/index.mjs",
        0o644,
        b"export const handler = async () => 1;\n",
    ));
    assert!(check_image(&js.build(), &node).unwrap().is_empty());
    let findings = check_image(&aws_like().build(), &node).unwrap();
    assert_eq!(ids(&findings), ["LI060"], "{findings:#?}");
    // Runtime inferred from AWS_EXECUTION_ENV when not given.
    let mut env = aws_like()
        .set("/config/Env", json!(["AWS_EXECUTION_ENV=AWS_Lambda_python3.12"]))
        .set("/config/Cmd", json!(["app.other"]));
    let findings = check_image(&env.build(), &CheckContext::default()).unwrap();
    assert_eq!(ids(&findings), ["LI060"], "{findings:#?}");
}

#[test]
fn li070_config_fields_lambda_ignores() {
    let bad = aws_like()
        .set("/config/User", json!("1000"))
        .set("/config/ExposedPorts", json!({"8080/tcp": {}}));
    let f = breaks("LI070", bad, &ctx());
    assert_eq!(f.severity, Severity::Info);
    assert!(
        f.message.contains("User=1000") && f.message.contains("8080/tcp"),
        "{f}"
    );
}

#[test]
fn li071_config_that_is_not_an_object() {
    let built = aws_like().build();
    // The descriptor still names the old bytes: the rules read the bytes.
    let image = Image::from_manifest(
        built.family(),
        built.manifest().to_vec(),
        b"[]".to_vec(),
        built.config_descriptor().clone(),
        built.layers().to_vec(),
    );
    let findings = check_image(&image, &ctx()).unwrap();
    assert!(ids(&findings).contains(&"LI071"), "{findings:#?}");
}

#[test]
fn docker_family_image_is_clean_and_errors_are_detected_by_has_errors() {
    let mut docker = aws_like();
    docker.family = MediaFamily::Docker;
    for l in &mut docker.layers {
        l.1 = MediaFamily::Docker.layer_gzip().to_string();
    }
    let findings = check_image(&docker.build(), &ctx()).unwrap();
    assert!(findings.is_empty(), "{findings:#?}");
    let mut bad = aws_like().set("/os", json!("windows"));
    let findings = check_image(&bad.build(), &ctx()).unwrap();
    assert!(has_errors(&findings));
    assert!(rules::render_findings(&findings).starts_with("error[LI020 os-not-linux]"));
    assert_eq!(rules::summary(&findings), "1 error, 0 warnings, 0 info");
    assert_eq!(rules::summary(&[]), "no findings");
}

/// A 64-bit little-endian x86_64 ELF header with one PT_INTERP program
/// header naming `loader`, laid out as linkers do (string after the headers).
fn dynamic_elf(loader: &str) -> Vec<u8> {
    let mut h = elf(62);
    h[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
    h[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
    h[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
    let mut ph = vec![0u8; 56];
    ph[..4].copy_from_slice(&3u32.to_le_bytes()); // PT_INTERP
    ph[8..16].copy_from_slice(&120u64.to_le_bytes()); // p_offset
    ph[32..40].copy_from_slice(&(loader.len() as u64 + 1).to_le_bytes()); // p_filesz
    h.extend_from_slice(&ph);
    h.extend_from_slice(loader.as_bytes());
    h.push(0);
    h
}

#[test]
fn li045_a_script_entrypoint_whose_interpreter_is_missing() {
    let bad = aws_like()
        .layer(TarLayer::new().file("var/task/run.sh", 0o755, b"#!/usr/bin/env python3\nprint(1)\n"))
        .set("/config/Entrypoint", json!(["/var/task/run.sh"]));
    let f = breaks("LI045", bad, &ctx());
    assert_eq!(
        f.message,
        "entrypoint /var/task/run.sh is a script whose interpreter /usr/bin/env (its #! line) does not exist in the image"
    );
    // The base's /lambda-entrypoint.sh names /bin/sh, reached through the /bin link.
    let fine = aws_like()
        .layer(TarLayer::new().file("usr/bin/env", 0o755, &elf(62)))
        .set("/config/Entrypoint", json!(["/var/task/run.sh"]));
    let fine = fine.layer(TarLayer::new().file("var/task/run.sh", 0o755, b"#!/usr/bin/env python3\n"));
    let mut fine = fine;
    assert!(!ids(&check_image(&fine.build(), &ctx()).unwrap()).contains(&"LI045"));
}

#[test]
fn li046_a_dynamic_binary_without_its_loader_and_bootstraps_everywhere() {
    let bad = aws_like()
        .layer(TarLayer::new().file(
            "var/task/main",
            0o755,
            &dynamic_elf("/lib64/ld-linux-x86-64.so.2"),
        ))
        .set("/config/Entrypoint", json!(["/var/task/main"]));
    let f = breaks("LI046", bad, &ctx());
    assert_eq!(
        f.message,
        "entrypoint /var/task/main is a dynamically linked ELF binary whose loader /lib64/ld-linux-x86-64.so.2 (PT_INTERP) does not exist in the image"
    );
    // With the loader present (through a /lib64 link, as on Amazon Linux) it is fine.
    let mut fine = aws_like()
        .layer(
            TarLayer::new()
                .file("usr/lib64/ld-linux-x86-64.so.2", 0o755, &elf(62))
                .symlink("lib64", "usr/lib64")
                .file(
                    "var/task/main",
                    0o755,
                    &dynamic_elf("/lib64/ld-linux-x86-64.so.2"),
                ),
        )
        .set("/config/Entrypoint", json!(["/var/task/main"]));
    assert!(!ids(&check_image(&fine.build(), &ctx()).unwrap()).contains(&"LI046"));
    // /var/task/bootstrap and /opt/bootstrap are checked like /var/runtime's.
    for path in ["var/task/bootstrap", "opt/bootstrap"] {
        let mut bad = aws_like().layer(TarLayer::new().file(path, 0o755, &elf(183)));
        let findings = check_image(&bad.build(), &ctx()).unwrap();
        assert!(
            findings
                .iter()
                .any(|f| f.rule_id == "LI022" && f.message.starts_with(&format!("bootstrap /{path}"))),
            "{path}: {findings:#?}"
        );
        let mut bad =
            aws_like().layer(TarLayer::new().file(path, 0o755, &dynamic_elf("/lib/ld-musl-x86_64.so.1")));
        let findings = check_image(&bad.build(), &ctx()).unwrap();
        assert!(
            findings.iter().any(|f| f.rule_id == "LI046"),
            "{path}: {findings:#?}"
        );
    }
}
