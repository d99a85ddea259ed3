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
            eprintln!("error: {}", message(&e));
            ExitCode::from(strobe::exit::ERROR as u8)
        }
    }
}

/// The error and its causes, each cause once: many errors already quote their source in their
/// own message (`cannot read X: No such file`), and `{:#}` would say it again.
fn message(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
    }
    text
}
