//! `strobe`: parse the command line, run, map the result to an exit code.
//!
//! Exit codes: 0 success; 1 a check on the results failed; 2 a usage or runtime error (bad flag,
//! unreachable server, run aborted); 130 interrupted by Ctrl-C, SIGTERM or SIGHUP (partial
//! results were written).

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = strobe::cli::Cli::parse();
    match strobe::run(cli) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(strobe::exit::ERROR as u8)
        }
    }
}
