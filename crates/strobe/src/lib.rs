//! The strobe binary's library half: command-line definitions, their conversion into typed
//! settings, the terminal observer and exit codes. Everything of substance lives in the `strobe-*`
//! crates (experiments in `strobe-experiment`); this crate only connects them, so that tests can
//! drive whole commands in-process.

pub mod cli;
mod commands;
mod dataset_cmd;
pub mod exit;
mod gateway_cmd;
mod profiles_cmd;
mod progress;
mod results_cmd;
mod serve_cmd;
pub mod settings;
mod sim_cmd;
mod tui;

pub use commands::{execute, Execution};
pub use progress::Interactivity;
pub use strobe_experiment::Shutdown;

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: cli::Cli) -> anyhow::Result<i32> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        // One process-wide stop, listening from the first instant.
        let shutdown = Shutdown::new();
        let ui = Interactivity::from_env();
        let listen = |drain: std::time::Duration| {
            shutdown.listen_for_signals(move |name, state| match state {
                strobe_load::StopState::Drain => eprintln!(
                    "\n{name}: stopping: no new requests; in-flight ones get {drain:?} to finish (again to cancel them)"
                ),
                _ => eprintln!("\n{name}: cancelling in-flight requests"),
            })
        };
        match cli.command {
            cli::Command::Run(args) => {
                listen(args.output.drain_timeout)?;
                execute(settings::run(*args)?, ui, &shutdown).await.map(|e| e.exit_code)
            }
            cli::Command::Batch(args) => {
                listen(args.drain_timeout)?;
                let quiet = args.quiet;
                let (plan, job) = settings::batch(*args)?;
                let Some(plan) = plan else {
                    let (ok, failed) = job.0.counts();
                    eprintln!(
                        "batch: every one of its {} lines already has a result ({ok} succeeded, {failed} failed); nothing to send",
                        job.0.total
                    );
                    return Ok(exit::OK);
                };
                let execution = execute(plan, ui, &shutdown).await?;
                Ok(commands::batch_outcome(&execution, &job.0, quiet))
            }
            cli::Command::Interference(args) => {
                listen(args.output.drain_timeout)?;
                execute(settings::interference(*args)?, ui, &shutdown).await.map(|e| e.exit_code)
            }
            cli::Command::Sweep(args) if args.list => {
                profiles_cmd::presets();
                Ok(exit::OK)
            }
            cli::Command::Sweep(args) => {
                listen(args.run.output.drain_timeout)?;
                execute(settings::sweep(*args)?, ui, &shutdown).await.map(|e| e.exit_code)
            }
            cli::Command::Search(args) => {
                listen(args.run.output.drain_timeout)?;
                execute(settings::search(*args)?, ui, &shutdown).await.map(|e| e.exit_code)
            }
            cli::Command::Serve(args) => serve_cmd::serve(*args).await,
            cli::Command::Gateway(args) => gateway_cmd::gateway(*args).await,
            cli::Command::Report(args) => results_cmd::report(args),
            cli::Command::Plot(args) => results_cmd::plot(args),
            cli::Command::Compare(args) => results_cmd::compare(args),
            cli::Command::Dataset(cli::DatasetCommand::Stats(args)) => dataset_cmd::stats(args),
            cli::Command::Dataset(cli::DatasetCommand::Sample(args)) => dataset_cmd::sample(args),
            cli::Command::Profiles(args) => profiles_cmd::profiles(args),
            cli::Command::Sim(cli::SimCommand::Plan(args)) => sim_cmd::plan(*args),
            cli::Command::Sim(cli::SimCommand::Fit(args)) => sim_cmd::fit(args),
            cli::Command::Sim(cli::SimCommand::Run(args)) => sim_cmd::run(*args),
        }
    })
}
