use std::os::unix::fs::symlink;

use super::*;

fn write(dir: &Path, rel: &str, body: &str) {
    let p = dir.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, body).unwrap();
}

fn spec(inputs: Vec<LayerInput>) -> LayerSpec {
    LayerSpec {
        name: "t".into(),
        inputs,
    }
}

fn paths(entries: &Selection) -> Vec<&str> {
    entries.iter().map(|e| e.path).collect()
}

#[test]
fn directory_goes_below_destination_with_every_ancestor() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "app.py", "x");
    write(d.path(), "pkg/mod.py", "y");
    let entries = select(&spec(vec![LayerInput::all(d.path(), "/var/task")])).unwrap();
    assert_eq!(
        paths(&entries),
        [
            "var",
            "var/task",
            "var/task/app.py",
            "var/task/pkg",
            "var/task/pkg/mod.py"
        ]
    );
    assert!(
        entries
            .iter()
            .filter(|e| e.kind == EntryKind::Dir)
            .all(|e| e.mode == 0o755)
    );
}

#[test]
fn include_exclude_and_ignore_file() {
    let d = tempfile::tempdir().unwrap();
    for f in [
        "a.py",
        "b.txt",
        "pkg/c.py",
        "pkg/__pycache__/c.pyc",
        "__pycache__/r.pyc",
        "tests/t.py",
    ] {
        write(d.path(), f, "x");
    }
    write(d.path(), ".dockerignore", "__pycache__\n");
    let mut input = LayerInput::all(d.path(), "/t");
    input.include = vec!["**/*.py".into(), "**/*.pyc".into()];
    input.exclude = vec!["tests".into()];
    input.ignore_file = Some(d.path().join(".dockerignore"));
    let entries = select(&spec(vec![input])).unwrap();
    // `__pycache__` in a .dockerignore matches only at the root.
    assert_eq!(
        paths(&entries),
        [
            "t",
            "t/a.py",
            "t/pkg",
            "t/pkg/__pycache__",
            "t/pkg/__pycache__/c.pyc",
            "t/pkg/c.py"
        ]
    );
}

#[test]
fn single_file_inputs_and_later_inputs_win() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "src/run.sh", "old");
    write(d.path(), "bootstrap", "new");
    let mut boot = LayerInput::all(d.path().join("bootstrap"), "/var/runtime/");
    boot.file_mode = Some(0o755);
    let over = LayerInput::all(d.path().join("bootstrap"), "/t/run.sh");
    let entries = select(&spec(vec![
        LayerInput::all(d.path().join("src"), "/t"),
        boot,
        over,
    ]))
    .unwrap();
    assert_eq!(
        paths(&entries),
        ["t", "t/run.sh", "var", "var/runtime", "var/runtime/bootstrap"]
    );
    let run = entries.get(1);
    match run.kind {
        EntryKind::File { source, .. } => assert!(source.path().ends_with("bootstrap")),
        k => panic!("{k:?}"),
    }
    assert_eq!(run.mode, 0o644);
    assert_eq!(entries.get(4).mode, 0o755);
}

#[test]
fn a_file_replaces_an_earlier_directory_tree() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "one/lib/x.py", "x");
    write(d.path(), "two/lib", "file now");
    let entries = select(&spec(vec![
        LayerInput::all(d.path().join("one"), "/t"),
        LayerInput::all(d.path().join("two"), "/t"),
    ]))
    .unwrap();
    assert_eq!(paths(&entries), ["t", "t/lib"]);
}

#[test]
fn a_later_directory_over_an_earlier_file_and_untouched_entries_stay() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "one/keep.py", "k");
    write(d.path(), "one/lib", "a file first");
    write(d.path(), "two/lib/y.py", "y");
    write(d.path(), "two/lib.txt", "z");
    let entries = select(&spec(vec![
        LayerInput::all(d.path().join("one"), "/t"),
        LayerInput::all(d.path().join("two"), "/t"),
    ]))
    .unwrap();
    assert_eq!(
        paths(&entries),
        ["t", "t/keep.py", "t/lib", "t/lib.txt", "t/lib/y.py"]
    );
    assert_eq!(entries.get(2).kind, EntryKind::Dir);
    match entries.get(1).kind {
        EntryKind::File { source, .. } => assert_eq!(source.path(), d.path().join("one/keep.py")),
        k => panic!("{k:?}"),
    }
}

#[test]
fn symlinks_are_stored_as_written_unless_they_climb_above_the_image_root() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "tree/lib/real.so", "x");
    symlink("real.so", d.path().join("tree/lib/alias.so")).unwrap();
    symlink("../lib/real.so", d.path().join("tree/lib/up.so")).unwrap();
    // Out of the source tree but inside the image (/t/lib/../../etc = /etc).
    symlink("../../etc/hosts", d.path().join("tree/lib/hosts")).unwrap();
    // Absolute: resolved inside the image at run time (pip's sitecustomize.py).
    symlink("/etc/python3.11/sitecustomize.py", d.path().join("tree/site.py")).unwrap();
    let entries = select(&spec(vec![LayerInput::all(d.path().join("tree"), "/t")])).unwrap();
    let target = |path: &str| match entries.iter().find(|e| e.path == path).unwrap().kind {
        EntryKind::Symlink { target } => target.to_string(),
        other => panic!("{path} is {other:?}"),
    };
    assert_eq!(target("t/lib/alias.so"), "real.so");
    assert_eq!(target("t/lib/up.so"), "../lib/real.so");
    assert_eq!(target("t/lib/hosts"), "../../etc/hosts");
    assert_eq!(target("t/site.py"), "/etc/python3.11/sitecustomize.py");
    assert!(
        entries
            .iter()
            .filter(|e| matches!(e.kind, EntryKind::Symlink { .. }))
            .all(|e| e.mode == 0o777)
    );

    // /t/lib/../../../x climbs above `/`.
    symlink("../../../secret", d.path().join("tree/lib/bad")).unwrap();
    let err = select(&spec(vec![LayerInput::all(d.path().join("tree"), "/t")])).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, LayerError::SymlinkAboveRoot { .. }), "{msg}");
    assert!(
        msg.contains("lib/bad") && msg.contains("../../../secret"),
        "{msg}"
    );
    assert!(msg.contains("climbs above the image root"), "{msg}");
}

#[test]
fn whiteout_names_are_refused_naming_the_file() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "tree/etc/.wh.os-release", "");
    let err = select(&spec(vec![LayerInput::all(d.path().join("tree"), "/")])).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, LayerError::WhiteoutName { .. }), "{msg}");
    assert!(
        msg.contains("tree/etc/.wh.os-release") && msg.contains("/etc/.wh.os-release"),
        "{msg}"
    );
    assert!(msg.contains("whiteout"), "{msg}");

    // Opaque markers and whiteout-named directories, and a file source.
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "tree/a/.wh..wh..opq", "");
    assert!(matches!(
        select(&spec(vec![LayerInput::all(d.path().join("tree"), "/x")])),
        Err(LayerError::WhiteoutName { .. })
    ));
    let mut excluded = LayerInput::all(d.path().join("tree"), "/x");
    excluded.exclude = vec!["**/.wh.*".into()];
    assert_eq!(paths(&select(&spec(vec![excluded])).unwrap()), ["x", "x/a"]);
    write(d.path(), ".wh.lone", "");
    assert!(matches!(
        select(&spec(vec![LayerInput::all(d.path().join(".wh.lone"), "/opt/")])),
        Err(LayerError::WhiteoutName { .. })
    ));
}

#[test]
fn fifo_is_an_error_naming_it_unless_excluded() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "ok.txt", "x");
    let fifo = d.path().join("pipe");
    let st = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success());
    let err = select(&spec(vec![LayerInput::all(d.path(), "/t")])).unwrap_err();
    assert!(
        matches!(err, LayerError::UnsupportedFileType { ref path, .. } if path == &fifo),
        "{err}"
    );
    let mut input = LayerInput::all(d.path(), "/t");
    input.exclude = vec!["pipe".into()];
    assert_eq!(paths(&select(&spec(vec![input])).unwrap()), ["t", "t/ok.txt"]);
}

#[test]
fn missing_source_and_bad_destination() {
    let err = select(&spec(vec![LayerInput::all("/nonexistent/x", "/t")])).unwrap_err();
    assert!(matches!(err, LayerError::MissingSource { .. }), "{err}");
    let d = tempfile::tempdir().unwrap();
    let err = select(&spec(vec![LayerInput::all(d.path(), "relative")])).unwrap_err();
    assert!(matches!(err, LayerError::BadDestination { .. }), "{err}");
    let mut input = LayerInput::all(d.path(), "/t");
    input.include = vec!["a[".into()];
    assert!(matches!(
        select(&spec(vec![input])),
        Err(LayerError::BadPattern { .. })
    ));
}

#[test]
fn ignore_exceptions_reach_into_ignored_directories() {
    let d = tempfile::tempdir().unwrap();
    for f in ["docs/a.md", "docs/keep/b.md", "src/x.py"] {
        write(d.path(), f, "x");
    }
    write(d.path(), ".dockerignore", "docs\n!docs/keep\n.dockerignore\n");
    let mut input = LayerInput::all(d.path(), "/t");
    input.ignore_file = Some(d.path().join(".dockerignore"));
    let entries = select(&spec(vec![input])).unwrap();
    assert_eq!(
        paths(&entries),
        [
            "t",
            "t/docs",
            "t/docs/keep",
            "t/docs/keep/b.md",
            "t/src",
            "t/src/x.py"
        ]
    );
}
