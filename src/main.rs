use std::process::ExitCode;

use clap::Parser;
use lambda_img::cli::{Cli, run};

fn main() -> ExitCode {
    // The sandbox's init must start before anything else (single-threaded).
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == lambda_img::sandbox::INIT_ARG)
    {
        lambda_img::sandbox::init_main();
    }
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.downcast_ref::<lambda_img::cli::ExitStatus>().is_some() => ExitCode::from(
            err.downcast_ref::<lambda_img::cli::ExitStatus>()
                .map_or(1, |e| e.0),
        ),
        Err(err) => {
            // The whole cause chain, outermost first: the user sees what failed
            // and why without a backtrace.
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}
