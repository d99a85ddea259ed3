//! Helpers for driving whole runs in-process against the built-in target.

#![allow(dead_code)]

use clap::Parser;
use std::time::Duration;
use strobe::cli::{Cli, Command};
use strobe::settings::RunSettings;
use strobe_server::{ServerConfig, ServerHandle};

/// Starts the built-in target on a free loopback port.
pub async fn start(config: ServerConfig) -> ServerHandle {
    let listener = strobe_server::bind(([127, 0, 0, 1], 0).into()).unwrap();
    strobe_server::serve(listener, config).unwrap()
}

/// A target with this TTFT and time between tokens (ms), other settings default.
pub fn timed(ttft_ms: u64, itl_ms: u64) -> ServerConfig {
    ServerConfig {
        ttft: Duration::from_millis(ttft_ms),
        itl: Duration::from_millis(itl_ms),
        ..ServerConfig::default()
    }
}

/// The base URL of a running target.
pub fn url_of(server: &ServerHandle) -> String {
    format!("http://{}", server.addr)
}

pub fn fast_config() -> ServerConfig {
    ServerConfig {
        ttft: Duration::from_millis(5),
        itl: Duration::from_millis(1),
        ..ServerConfig::default()
    }
}

pub fn settings(url: &str, args: &[&str]) -> RunSettings {
    let mut all = vec!["strobe", "run", "--url", url, "-q"];
    all.extend_from_slice(args);
    let Command::Run(a) = Cli::try_parse_from(all).unwrap().command else {
        unreachable!()
    };
    RunSettings::from_args(*a).unwrap()
}

pub async fn run(url: &str, args: &[&str]) -> anyhow::Result<strobe::RunOutcome> {
    strobe::execute_run(settings(url, args), strobe::Interactivity::silent()).await
}

pub fn temp_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("strobe-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}
