//! Parser and validator tests: a full manifest to its model, and every error
//! class with its `FILE:LINE:COL` and the key it names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::*;
use crate::image::{Architecture, MediaFamily};

/// A project directory with a few files the manifests below refer to.
fn project() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    for d in ["assets/tmp", "src", "bin"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    for f in ["assets/a.json", "config.json", "bin/tool", "src/app.py"] {
        std::fs::write(root.join(f), b"x").unwrap();
    }
    (dir, root)
}

fn parse(text: &str, root: &Path) -> Result<FunctionModel, ManifestError> {
    parse_str(text, Path::new("lambda-img.toml"), root)
}

fn problems(text: &str) -> Vec<Problem> {
    let (_dir, root) = project();
    match parse(text, &root) {
        Ok(m) => panic!("expected problems, got {m:?}"),
        Err(e) => {
            // Display is one `FILE:LINE:COL: message` line per problem.
            let shown = e.to_string();
            assert_eq!(shown.lines().count(), e.problems().len(), "{shown}");
            for p in e.problems() {
                assert!(
                    shown.contains(&format!("lambda-img.toml:{}:{}: ", p.line, p.col)),
                    "{shown}"
                );
            }
            e.problems().to_vec()
        }
    }
}

/// Exactly one problem, at `line:col`, whose message names `key`.
fn one(text: &str, line: usize, col: usize, key: &str) -> Problem {
    let ps = problems(text);
    assert_eq!(ps.len(), 1, "{ps:#?}");
    let p = ps.into_iter().next().unwrap();
    assert_eq!((p.line, p.col), (line, col), "{p}");
    assert!(p.message.contains(key), "message should name {key}: {p}");
    p
}

const HEAD: &str = "[function]\nname = \"hello\"\nruntime = \"python3.12\"\nhandler = \"app.lambda_handler\"\n\n[base]\nimage = \"public.ecr.aws/lambda/python:3.12\"\n";

const FULL: &str = r#"[function]
name = "hello"
runtime = "python3.12"
handler = "app.lambda_handler"
architecture = "arm64"

[base]
image = "oci:base:latest@sha256:0000000000000000000000000000000000000000000000000000000000000000"
repair = true

[[layer]]
name = "assets"
sources = ["assets/", "config.json"]
destination = "/opt/assets"
include = ["**/*.json"]
exclude = ["tmp/**"]
mode = "0755"

[[layer]]
name = "tool"
sources = ["bin/tool"]
destination = "/opt/bin/tool"
mode = 0o755

[code]
sources = ["src"]
exclude = ["*.md"]
ignore_file = ""

[image]
entrypoint = ["/lambda-entrypoint.sh"]
workdir = "/var/task"
env = { LOG_LEVEL = "info", A_FIRST = "1" }
labels = { team = "payments" }
format = "docker"

[check]
allow = ["LI040", "ignored-config-field"]
deny = ["li044"]
strict = true
"#;

#[test]
fn full_manifest_gives_the_expected_model() {
    let (_dir, root) = project();
    let m = parse(FULL, &root).unwrap();
    let file = |p: &str| SourcePath {
        path: root.join(p),
        kind: SourceKind::File,
    };
    let dir = |p: &str| SourcePath {
        path: root.join(p),
        kind: SourceKind::Dir,
    };
    let expected = FunctionModel {
        name: "hello".into(),
        runtime: Runtime::Python { minor: 12 },
        handler: Some("app.lambda_handler".into()),
        architecture: Architecture::Arm64,
        base: "oci:base:latest@sha256:0000000000000000000000000000000000000000000000000000000000000000"
            .into(),
        layers: vec![
            LayerModel {
                name: "assets".into(),
                sources: vec![dir("assets"), file("config.json")],
                destination: "/opt/assets".into(),
                include: vec!["**/*.json".into()],
                exclude: vec!["tmp/**".into()],
                mode: Some(0o755),
            },
            LayerModel {
                name: "tool".into(),
                sources: vec![file("bin/tool")],
                destination: "/opt/bin/tool".into(),
                include: vec![],
                exclude: vec![],
                mode: Some(0o755),
            },
        ],
        code: CodeModel {
            sources: vec![dir("src")],
            destination: "/var/task".into(),
            include: vec![],
            exclude: vec!["*.md".into()],
            default_excludes: true,
            ignore_file: None,
        },
        image: ImageSettings {
            entrypoint: Some(vec!["/lambda-entrypoint.sh".into()]),
            cmd: None,
            workdir: Some("/var/task".into()),
            env: vec![
                ("LOG_LEVEL".into(), "info".into()),
                ("A_FIRST".into(), "1".into()),
            ],
            labels: BTreeMap::from([("team".into(), "payments".into())]),
            format: Some(MediaFamily::Docker),
        },
        dependencies: None,
        check: crate::rules::RulePolicy {
            allow: ["LI040", "LI070"].into_iter().collect(),
            deny: ["LI044"].into_iter().collect(),
            strict: true,
        },
        base_repair: true,
        execution: Default::default(),
        cache: Default::default(),
        system: None,
        project_dir: root.clone(),
        manifest_path: PathBuf::from("lambda-img.toml"),
    };
    assert_eq!(m, expected);
}

#[test]
fn minimal_manifest_takes_the_defaults() {
    let (_dir, root) = project();
    std::fs::write(root.join(".dockerignore"), "*.md\n").unwrap();
    let m = parse(HEAD, &root).unwrap();
    assert_eq!(m.architecture, Architecture::X86_64);
    assert!(m.layers.is_empty());
    assert_eq!(
        m.code.sources,
        vec![SourcePath {
            path: root.clone(),
            kind: SourceKind::Dir
        }]
    );
    assert_eq!(m.code.destination, DEFAULT_CODE_DESTINATION);
    assert_eq!(m.code.ignore_file, Some(root.join(".dockerignore")));
    assert!(m.code.default_excludes);
    assert_eq!(m.image, ImageSettings::default());
}

#[test]
fn load_reads_the_file_and_resolves_against_its_directory() {
    let (_dir, root) = project();
    let path = root.join(MANIFEST_FILE_NAME);
    std::fs::write(&path, format!("{HEAD}[code]\nsources = [\"src\"]\n")).unwrap();
    let m = load(&path).unwrap();
    assert_eq!(m.project_dir, root);
    assert_eq!(m.manifest_path, path);
    assert_eq!(m.code.sources[0].path, root.join("src"));

    let missing = root.join("nope.toml");
    let err = load(&missing).unwrap_err();
    assert!(matches!(err, ManifestError::Read { .. }));
    assert!(err.to_string().contains("nope.toml"), "{err}");
}

#[test]
fn malformed_toml_is_positioned() {
    let p = one(
        "[function]\nname = \"hello\nruntime = \"x\"\n",
        2,
        14,
        "invalid TOML",
    );
    assert!(p.message.starts_with("invalid TOML"), "{p}");
    let p = one(
        &format!("{HEAD}[image]\nworkdir = \"/a\"\nworkdir = \"/b\"\n"),
        10,
        1,
        "workdir",
    );
    assert!(p.message.contains("duplicate key"), "{p}");
}

#[test]
fn unknown_keys_are_named_with_their_table() {
    let p = one(
        &format!("{HEAD}[image]\nentry_point = [\"/x\"]\n"),
        9,
        1,
        "image.entry_point",
    );
    assert!(p.message.contains("expected one of"), "{p}");
    assert_eq!(p.key.as_deref(), Some("image.entry_point"));
    one(
        &format!("{HEAD}[[layer]]\nname = \"a\"\nsources = [\"src\"]\ndestination = \"/a\"\nmodes = 1\n"),
        12,
        1,
        "layer[0].modes",
    );
    let p = one(
        &format!("{HEAD}[build]\nfile = \"requirements.txt\"\n"),
        8,
        2,
        "build",
    );
    assert!(p.message.contains("not supported"), "{p}");
}

#[test]
fn wrong_types_name_the_key() {
    let p = one(
        "[function]\nname = 3\nruntime = \"python3.12\"\n[base]\nimage = \"x\"\n",
        2,
        8,
        "function.name",
    );
    assert!(p.message.contains("expected a string, found integer"), "{p}");
    one(
        &format!("{HEAD}[code]\nsources = \"src\"\n"),
        9,
        11,
        "code.sources",
    );
    one(
        &format!("{HEAD}[image]\nenv = {{ A = 1 }}\n"),
        9,
        13,
        "image.env.A",
    );
    one(
        &format!("{HEAD}[image]\ncmd = [\"a\", 2]\n"),
        9,
        13,
        "image.cmd[1]",
    );
}

#[test]
fn missing_required_keys_are_named() {
    one(
        "[function]\nname = \"hello\"\nhandler = \"app.h\"\n[base]\nimage = \"x\"\n",
        1,
        1,
        "function.runtime",
    );
    one(
        "[function]\nname = \"hello\"\nruntime = \"none\"\n",
        1,
        1,
        "`base`",
    );
    one(
        &format!("{HEAD}\n[[layer]]\nname = \"a\"\nsources = [\"src\"]\n"),
        9,
        1,
        "layer[0].destination",
    );
    // A handler is required by language runtimes, not by custom ones.
    one(
        "[function]\nname = \"f\"\nruntime = \"java21\"\n[base]\nimage = \"x\"\n",
        3,
        11,
        "function.handler",
    );
    let (_dir, root) = project();
    parse(
        "[function]\nname = \"f\"\nruntime = \"provided.al2023\"\n[base]\nimage = \"x\"\n",
        &root,
    )
    .unwrap();
}

#[test]
fn bad_handlers_per_runtime() {
    let text = |rt: &str, h: &str| {
        format!("[function]\nname = \"f\"\nruntime = \"{rt}\"\nhandler = \"{h}\"\n[base]\nimage = \"x\"\n")
    };
    let p = one(&text("python3.12", "app"), 4, 11, "function.handler");
    assert_eq!(
        p.to_string(),
        "lambda-img.toml:4:11: function.handler \"app\" does not fit runtime python3.12: expected module.function (the module may be a dotted or slashed path: pkg.mod.fn), e.g. app.lambda_handler"
    );
    let p = one(&text("nodejs20.x", "index"), 4, 11, "function.handler");
    assert!(p.message.contains("file.export"), "{p}");
    let p = one(&text("java17", "example.Handler::"), 4, 11, "function.handler");
    assert!(p.message.contains("Class::method"), "{p}");
    let p = one(&text("python3.8", "app.h"), 3, 11, "function.runtime");
    assert!(p.message.contains("python3.13"), "{p}");
}

#[test]
fn bad_architecture_and_name() {
    let p = one(
        &HEAD.replace("handler =", "architecture = \"amd64\"\nhandler ="),
        4,
        16,
        "function.architecture",
    );
    assert!(p.message.contains("\"x86_64\""), "{p}");
    one(
        &HEAD.replace("\"hello\"", "\"hello world\""),
        2,
        8,
        "function.name",
    );
}

#[test]
fn relative_destinations_and_workdir() {
    let layer = "[[layer]]\nname = \"a\"\nsources = [\"src\"]\ndestination = \"opt/a\"\n";
    let p = one(
        &format!("{HEAD}{layer}"),
        11,
        15,
        "layer \"a\": destination \"opt/a\"",
    );
    assert_eq!(p.key.as_deref(), Some("layer[0].destination"));
    one(
        &format!("{HEAD}[code]\ndestination = \"/var/../task\"\n"),
        9,
        15,
        "code.destination",
    );
    one(
        &format!("{HEAD}[image]\nworkdir = \"task\"\n"),
        9,
        11,
        "image.workdir",
    );
    one(
        &format!("{HEAD}[image]\nentrypoint = [\"bootstrap\"]\n"),
        9,
        14,
        "image.entrypoint",
    );
}

#[test]
fn missing_sources_name_the_path() {
    let (_dir, root) = project();
    let text =
        format!("{HEAD}[[layer]]\nname = \"a\"\nsources = [\"assets\", \"gone/\"]\ndestination = \"/a\"\n");
    let err = parse(&text, &root).unwrap_err();
    let [p] = err.problems() else { panic!("{err}") };
    assert_eq!((p.line, p.col), (10, 22), "{p}");
    assert!(p.message.contains("\"gone/\" does not exist"), "{p}");
    assert!(
        p.message.contains(&root.join("gone/").display().to_string()),
        "{p}"
    );
    assert!(
        p.to_string()
            .starts_with("lambda-img.toml:10:22: layer \"a\": source"),
        "{p}"
    );
    one(&format!("{HEAD}[code]\nsources = [\"lib\"]\n"), 9, 12, "code");
    one(
        &format!("{HEAD}[code]\nignore_file = \".lambdaignore\"\n"),
        9,
        15,
        "code.ignore_file",
    );
}

#[test]
fn bad_env_keys_and_formats() {
    let p = one(
        &format!("{HEAD}[image]\nenv = {{ OK = \"1\", \"1BAD\" = \"2\" }}\n"),
        9,
        19,
        "image.env",
    );
    assert!(p.message.contains("\"1BAD\""), "{p}");
    one(
        &format!("{HEAD}[image]\nformat = \"v2s2\"\n"),
        9,
        10,
        "image.format",
    );
}

#[test]
fn bad_modes() {
    let layer = |mode: &str| {
        format!("{HEAD}[[layer]]\nname = \"a\"\nsources = [\"src\"]\ndestination = \"/a\"\nmode = {mode}\n")
    };
    let p = one(&layer("755"), 12, 8, "mode");
    assert!(p.message.contains("decimal"), "{p}");
    let p = one(&layer("\"0700\""), 12, 8, "mode");
    assert!(p.message.contains("unreadable"), "{p}");
    let p = one(&layer("\"rwx\""), 12, 8, "mode");
    assert!(p.message.contains("not octal"), "{p}");
    let p = one(&layer("true"), 12, 8, "mode");
    assert!(p.message.contains("boolean"), "{p}");
}

#[test]
fn layer_names_are_unique_and_not_reserved() {
    let layer =
        |name: &str| format!("[[layer]]\nname = \"{name}\"\nsources = [\"src\"]\ndestination = \"/a\"\n");
    one(&format!("{HEAD}{}", layer("code")), 9, 8, "\"code\"");
    let ps = problems(&format!("{HEAD}{}{}", layer("x"), layer("x")));
    assert_eq!(ps.len(), 1, "{ps:#?}");
    assert_eq!((ps[0].line, ps[0].col), (13, 8));
    assert!(ps[0].message.contains("used twice"));
}

#[test]
fn scratch_needs_an_entrypoint() {
    let text = "[function]\nname = \"f\"\nruntime = \"provided.al2023\"\n[base]\nimage = \"scratch\"\n";
    let p = one(text, 5, 9, "image.entrypoint");
    assert!(p.message.contains("scratch"), "{p}");
    let (_dir, root) = project();
    parse(
        &format!("{text}[image]\nentrypoint = [\"/var/runtime/bootstrap\"]\n"),
        &root,
    )
    .unwrap();
}

#[test]
fn every_validation_problem_is_reported_in_file_order() {
    let text = r#"[function]
name = "bad name"
runtime = "python3.12"
handler = "app"
architecture = "sparc"

[base]
image = "scratch"

[[layer]]
name = "a"
sources = ["missing"]
destination = "rel"
mode = "0600"

[image]
env = { "bad-key" = "1" }
"#;
    let ps = problems(text);
    let got: Vec<(usize, usize, Option<&str>)> =
        ps.iter().map(|p| (p.line, p.col, p.key.as_deref())).collect();
    assert_eq!(
        got,
        vec![
            (2, 8, Some("function.name")),
            (4, 11, Some("function.handler")),
            (5, 16, Some("function.architecture")),
            (8, 9, Some("base.image")),
            (12, 12, Some("layer[0].sources")),
            (13, 15, Some("layer[0].destination")),
            (14, 8, Some("layer[0].mode")),
            (17, 9, Some("image.env.bad-key")),
        ]
    );
}

proptest::proptest! {
    /// Whatever the text, parsing returns a model or positioned problems that
    /// lie inside the text; it never panics (spans are byte offsets and the
    /// text may be multi-byte).
    #[test]
    fn any_edit_of_a_manifest_gives_a_model_or_positioned_problems(
        cut in 0usize..FULL.len(),
        len in 0usize..12,
        insert in "[=\\[\\]\"'{}a-zé0-9 \n.,#]{0,6}",
    ) {
        let mut text = FULL.to_string();
        let start = (0..=cut).rev().find(|i| text.is_char_boundary(*i)).unwrap();
        let end = (start + len).min(text.len());
        let end = (end..=text.len()).find(|i| text.is_char_boundary(*i)).unwrap();
        text.replace_range(start..end, &insert);
        let (_dir, root) = project();
        if let Err(e) = parse(&text, &root) {
            proptest::prop_assert!(!e.problems().is_empty());
            let lines = text.lines().count().max(1) + 1;
            for p in e.problems() {
                proptest::prop_assert!(p.line >= 1 && p.line <= lines && p.col >= 1, "{}", p);
            }
        }
    }
}

#[test]
fn paths_are_named_relative_to_the_project() {
    use super::project_relative;
    let project = Path::new("/work/repo/functions/hello");
    assert_eq!(
        project_relative(Path::new("/work/repo/functions/hello"), project),
        "."
    );
    assert_eq!(
        project_relative(Path::new("/work/repo/functions/hello/src"), project),
        "src"
    );
    assert_eq!(
        project_relative(Path::new("/work/repo/shared/common"), project),
        "../../shared/common"
    );
    assert_eq!(
        project_relative(Path::new("/opt/layer"), project),
        "../../../../opt/layer"
    );
}

#[test]
fn unknown_or_clashing_check_rules_are_problems_at_their_position() {
    let (_dir, root) = project();
    let text = format!("{HEAD}[check]\nallow = [\"LI040\", \"LI999\"]\ndeny = [\"hard-link\"]\n");
    let err = parse(&text, &root).unwrap_err().to_string();
    let line = text.lines().position(|l| l.starts_with("allow")).unwrap() + 1;
    assert!(
        err.contains(&format!(
            "lambda-img.toml:{line}:19: check.allow: unknown rule \"LI999\": `lambda-img check --list-rules` lists every rule id"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "lambda-img.toml:{}:9: check.deny: LI040 is also in check.allow; keep it in one list",
            line + 1
        )),
        "{err}"
    );
}
