//! `lambda-img completions SHELL` and `lambda-img man`: generated from the
//! clap definition, so they never drift from the real flags.

use clap::{Args, CommandFactory};

use super::Cli;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to write a completion script for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write one page per command (lambda-img.1, lambda-img-build.1, ...) into
    /// DIR instead of the main page to stdout.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<std::path::PathBuf>,
}

pub fn run_completions(args: CompletionsArgs) -> anyhow::Result<()> {
    write_stdout(&completion_script(args.shell))
}

/// The completion script for `shell`. clap_complete's bash script names
/// the per-command states of a hyphenated binary two ways
/// (`lambda__img__subcmd__build` is set, `lambda__subcmd__img__subcmd__build`
/// matched), so nothing past the subcommand completed: one spelling is kept.
pub fn completion_script(shell: clap_complete::Shell) -> Vec<u8> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "lambda-img", &mut out);
    if shell == clap_complete::Shell::Bash {
        let text = String::from_utf8_lossy(&out).replace("lambda__subcmd__img", "lambda__img");
        return text.into_bytes();
    }
    out
}

/// A value parser that accepts what `parse` accepts and offers `hints` to
/// shell completion (not to `--help`, and they are not the only values).
#[derive(Clone)]
pub struct Hinted<T = String> {
    pub hints: fn() -> Vec<&'static str>,
    pub parse: fn(&str) -> Result<T, String>,
}

impl<T: Clone + Send + Sync + 'static> clap::builder::TypedValueParser for Hinted<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<T, clap::Error> {
        let text = value.to_str().ok_or_else(|| {
            clap::Error::raw(clap::error::ErrorKind::InvalidUtf8, "the value is not UTF-8\n").with_cmd(cmd)
        })?;
        (self.parse)(text).map_err(|why| {
            let name = arg.map(|a| a.to_string()).unwrap_or_default();
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value '{text}' for '{name}': {why}\n"),
            )
            .with_cmd(cmd)
        })
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(
            (self.hints)().into_iter().map(clap::builder::PossibleValue::new),
        ))
    }
}

pub fn run_man(args: ManArgs) -> anyhow::Result<()> {
    let cmd = Cli::command();
    match args.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
            clap_mangen::generate_to(cmd.clone(), &dir)
                .map_err(|e| anyhow::anyhow!("writing man pages to {}: {e}", dir.display()))?;
            let main = dir.join("lambda-img.1");
            let page = std::fs::read_to_string(&main)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", main.display()))?;
            std::fs::write(&main, with_extra_sections(&page, &cmd))
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", main.display()))?;
            Ok(())
        }
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd.clone()).render(&mut out)?;
            let page = String::from_utf8_lossy(&out);
            write_stdout(with_extra_sections(&page, &cmd).as_bytes())
        }
    }
}

/// The main page with EXIT STATUS, ENVIRONMENT, FILES and EXAMPLES before
/// VERSION (where man pages usually have them), or at the end.
fn with_extra_sections(page: &str, cmd: &clap::Command) -> String {
    let extra = super::man_sections::render(cmd);
    match page.find("\n.SH VERSION") {
        Some(at) => format!("{}\n{}{}", &page[..at], extra, &page[at + 1..]),
        None => format!("{page}{extra}"),
    }
}

fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
