use std::process::ExitCode;

use clap::Parser;
use lambda_img::cli::{Cli, failure, run};

fn main() -> ExitCode {
    // The sandbox's init must start before anything else (single-threaded).
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == lambda_img::sandbox::INIT_ARG)
    {
        lambda_img::sandbox::init_main();
    }
    // clap exits 2 on a command-line mistake, 0 for --help/--version.
    let cli = Cli::parse();
    let json = cli.wants_json();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => failure::report(&err, json),
    }
}
