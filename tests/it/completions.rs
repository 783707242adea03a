//! Shell completions past the subcommand (issue #11): the generated bash
//! script is loaded in a real bash and its completion function called, as
//! bash does on <TAB>; zsh's and fish's scripts carry the same values.

use std::process::Command;

use crate::support::{lambda_img, require_tool, run_ok, stdout};

/// What bash offers for the command line `words`, completing the last word.
fn complete(script: &std::path::Path, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let cword = words.len() - 1;
    let prev = if cword > 0 { words[cword - 1] } else { "" };
    let program = format!(
        "source '{}'\nCOMP_WORDS=({})\nCOMP_CWORD={cword}\n_lambda__img lambda-img '{}' '{prev}'\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        script.display(),
        quoted.join(" "),
        words[cword],
    );
    let out = run_ok(Command::new("bash").arg("-c").arg(program));
    stdout(&out)
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn bash_completes_options_and_their_values_past_the_subcommand() {
    if !require_tool("bash") {
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let script = cache.path().join("lambda-img.bash");
    let out = run_ok(lambda_img(cache.path()).args(["completions", "bash"]));
    std::fs::write(&script, &out.stdout).unwrap();

    assert_eq!(
        complete(&script, &["lambda-img", "build", "--gz"]),
        ["--gzip-level"]
    );
    assert_eq!(
        complete(&script, &["lambda-img", "-C", "/tmp", "build", "--repair"]),
        ["--repair-base"]
    );
    assert_eq!(
        complete(&script, &["lambda-img", "build", "--format", ""]),
        ["oci", "docker"]
    );
    assert_eq!(
        complete(&script, &["lambda-img", "build", "--output", ""]),
        ["oci:", "docker-archive:", "registry:"]
    );
    let runtimes = complete(&script, &["lambda-img", "check", "--runtime", "node"]);
    assert_eq!(runtimes, ["nodejs18.x", "nodejs20.x", "nodejs22.x"]);
    assert!(complete(&script, &["lambda-img", "check", "--li"]).contains(&"--list-rules".to_string()));
    assert!(complete(&script, &["lambda-img", "ex"]).contains(&"explain".to_string()));
}

#[test]
fn zsh_and_fish_scripts_offer_the_same_values() {
    let cache = tempfile::tempdir().unwrap();
    let zsh = stdout(&run_ok(lambda_img(cache.path()).args(["completions", "zsh"])));
    assert!(
        zsh.contains(":OUTPUT:(oci\\: docker-archive\\: registry\\:)"),
        "{zsh}"
    );
    assert!(zsh.contains("--gzip-level=["), "{zsh}");
    assert!(zsh.contains("python3.12"), "{zsh}");
    let fish = stdout(&run_ok(lambda_img(cache.path()).args(["completions", "fish"])));
    assert!(fish.contains("-l output") && fish.contains("oci:\\t"), "{fish}");
    assert!(
        fish.contains("__fish_lambda_img_using_subcommand build\" -l gzip-level"),
        "{fish}"
    );
}
