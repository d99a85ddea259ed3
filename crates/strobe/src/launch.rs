//! `strobe run --launch`: start the engine, run against it, always stop it.

use std::path::PathBuf;
use strobe_report::Engine;
use strobe_telemetry::launch::{self, LaunchError, Launched};

use crate::run_cmd::{resolve_target, run_against, Interactivity, RunOutcome};
use crate::settings::RunSettings;

/// Where the engine's log goes by default: beside the report, else in the temp folder.
fn default_log(settings: &RunSettings) -> PathBuf {
    match &settings.output {
        Some(o) => o.with_extension("engine.log"),
        None => std::env::temp_dir().join(format!("strobe-engine-{}.log", std::process::id())),
    }
}

pub async fn run_launched(
    settings: &RunSettings,
    command: &str,
    ui: Interactivity,
) -> anyhow::Result<RunOutcome> {
    let url = settings
        .url
        .clone()
        .unwrap_or_else(|| "http://127.0.0.1:8000".to_owned());
    let (base, addr, headers) = resolve_target(settings, &url).await?;
    let log_path = settings
        .launch_log
        .clone()
        .unwrap_or_else(|| default_log(settings));
    let mut engine = Launched::spawn(command, &log_path)?;
    if !settings.quiet {
        eprintln!(
            "launching the engine (pid {}, log {}): {command}",
            engine.pid(),
            log_path.display()
        );
    }
    let ready = tokio::select! {
        r = engine.wait_ready(&base, addr, &headers, settings.launch_timeout) => r,
        _ = tokio::signal::ctrl_c(), if ui.handle_ctrl_c => Err(LaunchError::Interrupted),
    };
    let ready = match ready {
        Ok(d) => d,
        Err(e) => {
            stop(engine).await;
            return Err(e.into());
        }
    };
    if !settings.quiet {
        eprintln!(
            "the engine serves {} after {:.1} s",
            base.display,
            ready.as_secs_f64()
        );
    }
    let info = Engine {
        command: command.to_owned(),
        params: launch::params(command),
        version: launch::version(&base, addr, &headers).await,
        log_path: log_path.display().to_string(),
        ready_after_s: ready.as_secs_f64(),
    };
    let result = run_against(settings, &url, false, ui, Some(info)).await;
    stop(engine).await;
    if !settings.quiet {
        eprintln!("the engine was stopped");
    }
    result
}

async fn stop(mut engine: Launched) {
    let _ = tokio::task::spawn_blocking(move || engine.stop()).await;
}
