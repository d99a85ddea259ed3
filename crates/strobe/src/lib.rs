//! The strobe binary's library half: command-line definitions, settings validation, the glue that
//! wires workload → load → records → metrics → report, progress display and exit codes. Everything
//! of substance lives in the `strobe-*` crates; this crate only connects them, so that tests can
//! drive whole runs in-process.

pub mod cli;
pub mod dataset_cmd;
pub mod exit;
mod launch;
mod profiles_cmd;
mod progress;
mod run_cmd;
mod serve_cmd;
mod server_tokenizer;
pub mod settings;
mod telemetry;
pub mod units;
pub mod workload;

pub use run_cmd::{execute_run, Interactivity, RunOutcome};

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: cli::Cli) -> anyhow::Result<i32> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        cli::Command::Run(args) => {
            let settings = settings::RunSettings::from_args(*args)?;
            runtime.block_on(async {
                match run_cmd::execute_run(settings, run_cmd::Interactivity::from_env()).await {
                    Ok(outcome) => Ok(outcome.exit_code),
                    Err(e)
                        if matches!(
                            e.downcast_ref(),
                            Some(strobe_telemetry::launch::LaunchError::Interrupted)
                        ) =>
                    {
                        eprintln!("interrupted while the engine started; it was stopped");
                        Ok(exit::INTERRUPTED)
                    }
                    Err(e) => Err(e),
                }
            })
        }
        cli::Command::Serve(args) => runtime.block_on(serve_cmd::serve(args)),
        cli::Command::Dataset(cli::DatasetCommand::Stats(args)) => dataset_cmd::stats(args),
        cli::Command::Dataset(cli::DatasetCommand::Sample(args)) => dataset_cmd::sample(args),
        cli::Command::Profiles(args) => profiles_cmd::profiles(args),
    }
}
