//! The examples from Docker's `.dockerignore` documentation, plus the places
//! where Docker's rules differ from gitignore's.

use super::*;

fn ig(text: &str) -> DockerIgnore {
    DockerIgnore::parse(text, "test/.dockerignore").unwrap()
}

#[test]
fn documented_single_level_wildcards() {
    let m = ig("# comment\n*/temp*\n*/*/temp*\ntemp?\n");
    assert!(m.is_ignored("somedir/temporary.txt"));
    assert!(m.is_ignored("somedir/temp"));
    assert!(
        m.is_ignored("somedir/temp/inner.txt"),
        "a matched directory takes its contents"
    );
    assert!(m.is_ignored("somedir/subdir/temporary.txt"));
    assert!(m.is_ignored("tempa"));
    assert!(m.is_ignored("tempb"));
    assert!(
        !m.is_ignored("temporary.txt"),
        "*/temp* needs one directory level"
    );
    assert!(!m.is_ignored("tempab"));
    assert!(!m.is_ignored("a/b/c/temp.txt"), "*/*/temp* is exactly two levels");
    assert!(!m.is_ignored("# comment"));
}

#[test]
fn double_star_matches_any_number_of_directories() {
    let m = ig("**/*.go\n");
    assert!(m.is_ignored("main.go"));
    assert!(m.is_ignored("a/b/c/main.go"));
    assert!(!m.is_ignored("a/main.rs"));
    let m = ig("a/**/b\n");
    assert!(m.is_ignored("a/b"));
    assert!(m.is_ignored("a/x/y/b"));
    assert!(!m.is_ignored("x/a/b"));
    let m = ig("vendor/**\n");
    assert!(m.is_ignored("vendor/x/y"));
    assert!(
        !m.is_ignored("vendor"),
        "`vendor/**` matches what is inside, not the directory"
    );
}

#[test]
fn bare_name_matches_only_at_the_root_unlike_gitignore() {
    let m = ig("__pycache__\n");
    assert!(m.is_ignored("__pycache__"));
    assert!(m.is_ignored("__pycache__/x.pyc"));
    assert!(!m.is_ignored("pkg/__pycache__/x.pyc"));
    let m = ig("**/__pycache__\n");
    assert!(m.is_ignored("pkg/__pycache__/x.pyc"));
    assert!(m.is_ignored("__pycache__/x.pyc"));
    let m = ig("*.pyc\n");
    assert!(m.is_ignored("x.pyc"));
    assert!(!m.is_ignored("pkg/x.pyc"));
}

#[test]
fn exceptions_and_last_match_wins() {
    let m = ig("*.md\n!README.md\n");
    assert!(m.is_ignored("CHANGES.md"));
    assert!(!m.is_ignored("README.md"));

    let m = ig("*.md\n!README*.md\nREADME-secret.md\n");
    assert!(m.is_ignored("CHANGES.md"));
    assert!(!m.is_ignored("README-public.md"));
    assert!(m.is_ignored("README-secret.md"));

    let m = ig("*.md\nREADME-secret.md\n!README*.md\n");
    assert!(!m.is_ignored("README-secret.md"), "the later exception wins");
    assert!(m.has_exceptions());

    // An exception can take a file back out of an ignored directory.
    let m = ig("docs\n!docs/keep.txt\n");
    assert!(m.is_ignored("docs/other.txt"));
    assert!(!m.is_ignored("docs/keep.txt"));
}

#[test]
fn leading_slash_whitespace_and_cleaning() {
    let m = ig("  /build/  \n./dist//out\nx/../y\n");
    assert!(m.is_ignored("build"));
    assert!(m.is_ignored("build/a.o"));
    assert!(m.is_ignored("dist/out/z"));
    assert!(m.is_ignored("y"));
    assert!(!m.is_ignored("x"));
    assert!(!ig("\n\n   \n").has_exceptions());
    assert!(ig("\n\n   \n").is_empty());
}

#[test]
fn classes_question_marks_and_escapes() {
    let m = ig("file[0-9].txt\nlog[^a]\nq\\*\n");
    assert!(m.is_ignored("file7.txt"));
    assert!(!m.is_ignored("filex.txt"));
    assert!(m.is_ignored("logb"));
    assert!(!m.is_ignored("loga"));
    assert!(m.is_ignored("q*"));
    assert!(!m.is_ignored("qq"));
    let m = ig("a?c\n");
    assert!(m.is_ignored("abc"));
    assert!(!m.is_ignored("a/c"), "`?` never matches a slash");
}

#[test]
fn bad_patterns_name_the_file() {
    let err = DockerIgnore::parse("ok\nbad[\n", "/p/.dockerignore").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("bad[") && msg.contains("/p/.dockerignore"), "{msg}");
    assert!(DockerIgnore::parse("!\n", "f").is_err());
}
