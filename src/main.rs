use std::process::ExitCode;

use clap::Parser;
use lambda_img::cli::{Cli, failure, run};

fn main() -> ExitCode {
    // clap exits 2 on a command-line mistake, 0 for --help/--version.
    let cli = Cli::parse();
    let json = cli.wants_json();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => failure::report(&err, json),
    }
}
