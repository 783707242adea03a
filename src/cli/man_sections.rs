//! The man page's sections that clap cannot generate: EXIT STATUS,
//! ENVIRONMENT, FILES and EXAMPLES. ENVIRONMENT is read from the clap
//! definition (every flag with an `env`), so it cannot drift from the flags.

use clap::Command;

/// Exit statuses and what they mean (kept beside `ExitStatus` users).
pub const EXIT_STATUSES: &[(&str, &str)] = &[
    (
        "0",
        "Success: the image was built (and written, pushed), or the check found no error.",
    ),
    (
        "1",
        "An error: the message on stderr names the file, line or object and what to do. `check` exits 1 when it finds an error-level rule.",
    ),
    (
        "2",
        "A command-line mistake (an unknown flag, a missing or invalid value).",
    ),
];

/// Variables read besides those of the flags.
const OTHER_ENVIRONMENT: &[(&str, &str)] = &[
    (
        "DOCKER_CONFIG",
        "The directory of Docker's config.json, where registry credentials are read and `login` stores them (default ~/.docker).",
    ),
    (
        "XDG_CACHE_HOME",
        "The cache is $XDG_CACHE_HOME/lambda-img when LAMBDA_IMG_CACHE is not set (default ~/.cache/lambda-img).",
    ),
    (
        "PATH",
        "Where pip3/python3, npm and docker-credential-* helpers are found.",
    ),
];

const FILES: &[(&str, &str)] = &[
    (
        "lambda-img.toml",
        "The function manifest, in the current directory (or -C DIR, or build --manifest PATH).",
    ),
    (
        ".dockerignore",
        "Beside lambda-img.toml: paths left out of the code and [[layer]] layers.",
    ),
    (
        "requirements.txt, package.json + package-lock.json, target/dependency/",
        "The runtime's dependency files: installed into the dependency layer unless [dependencies] enabled = false.",
    ),
    (
        "~/.cache/lambda-img/",
        "The cache of blobs, layers and checks (LAMBDA_IMG_CACHE, --cache-dir); `lambda-img cache prune` trims it.",
    ),
    (
        "~/.docker/config.json",
        "Registry credentials (auths, credsStore, credHelpers), as docker uses them.",
    ),
];

const EXAMPLES: &[(&str, &str)] = &[
    (
        "Start a function and build it into out/",
        "lambda-img init --runtime python3.12 my-function && cd my-function && make",
    ),
    (
        "Push, and keep the result for the deploy step",
        "lambda-img build --output registry:123456789012.dkr.ecr.eu-west-1.amazonaws.com/my-function:v1 --metadata-file build.json",
    ),
    (
        "Build the arm64 image from the same manifest",
        "lambda-img build --arch arm64 --output oci:out-arm64",
    ),
    (
        "Fetch bases through an ECR pull-through cache",
        "lambda-img build --registry-mirror public.ecr.aws=123456789012.dkr.ecr.eu-west-1.amazonaws.com/ecr-public",
    ),
    (
        "Check an image against Lambda's rules",
        "lambda-img check oci:out:latest",
    ),
    ("Move the base to today's digest of its tag", "lambda-img pin"),
];

/// The sections as roff, to be put before VERSION.
pub fn render(cmd: &Command) -> String {
    let mut out = String::new();
    section(&mut out, "EXIT STATUS", EXIT_STATUSES);
    let mut env: Vec<(String, String)> = Vec::new();
    collect_env(cmd, &mut env);
    env.sort();
    env.dedup_by(|a, b| a.0 == b.0);
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env.extend_from_slice(OTHER_ENVIRONMENT);
    section(&mut out, "ENVIRONMENT", &env);
    section(&mut out, "FILES", FILES);
    out.push_str(".SH EXAMPLES\n");
    for (what, command) in EXAMPLES {
        out.push_str(&format!(
            "{}:\n.PP\n.RS 4\n{}\n.RE\n.PP\n",
            text(what),
            text(command)
        ));
    }
    out
}

fn section(out: &mut String, title: &str, items: &[(&str, &str)]) {
    out.push_str(&format!(".SH \"{title}\"\n"));
    for (term, meaning) in items {
        out.push_str(&format!(".TP\n\\fB{}\\fR\n{}\n", text(term), text(meaning)));
    }
}

/// Every `env` of `cmd` and its subcommands, with the flag that reads it.
fn collect_env(cmd: &Command, out: &mut Vec<(String, String)>) {
    for arg in cmd.get_arguments() {
        if let Some(var) = arg.get_env() {
            let flag = arg.get_long().map(|l| format!("--{l}")).unwrap_or_default();
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            let scope = if arg.is_global_set() || cmd.get_name() == "lambda-img" {
                String::new()
            } else {
                format!("{} ", cmd.get_name())
            };
            out.push((
                var.to_string_lossy().into_owned(),
                format!("As {scope}{flag}: {}", help.trim_end_matches('.'))
                    .trim_end()
                    .to_string()
                    + ".",
            ));
        }
    }
    for sub in cmd.get_subcommands() {
        collect_env(sub, out);
    }
}

/// Text safe in a roff line: backslashes and hyphens escaped, no leading control character.
fn text(s: &str) -> String {
    let escaped = s.replace('\\', "\\e").replace('-', "\\-");
    let one_line = escaped.replace('\n', " ");
    if one_line.starts_with(['.', '\'']) {
        format!("\\&{one_line}")
    } else {
        one_line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_lists_every_flag_variable() {
        let cmd = <crate::cli::Cli as clap::CommandFactory>::command();
        let page = render(&cmd);
        for needle in [
            ".SH \"EXIT STATUS\"",
            ".SH \"ENVIRONMENT\"",
            ".SH \"FILES\"",
            ".SH EXAMPLES",
            "LAMBDA_IMG_REGISTRY_MIRRORS",
            "LAMBDA_IMG_CACHE",
            "SOURCE_DATE_EPOCH",
            "DOCKER_CONFIG",
        ] {
            assert!(page.contains(needle), "{needle} missing:\n{page}");
        }
        assert_eq!(text(".x-y"), "\\&.x\\-y");
    }
}
