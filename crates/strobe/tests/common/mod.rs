//! Helpers for driving whole runs in-process against the built-in target.

#![allow(dead_code)]

use clap::Parser;
use std::time::Duration;
use strobe::cli::{Cli, Command};
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

/// The typed plan of `strobe run --url URL -q ARGS`.
pub fn plan(url: &str, args: &[&str]) -> anyhow::Result<strobe::settings::Plan> {
    let mut all = vec!["strobe", "run", "--url", url, "-q"];
    all.extend_from_slice(args);
    let Command::Run(a) = Cli::try_parse_from(all)?.command else {
        unreachable!()
    };
    strobe::settings::run(*a)
}

/// What a command produced, its last report at hand.
pub struct Out {
    pub exit_code: i32,
    pub report: strobe_report::Report,
    pub reports: Vec<strobe_report::Report>,
    pub summary: Option<strobe_report::ExperimentSummary>,
}

pub async fn execute(plan: strobe::settings::Plan) -> anyhow::Result<Out> {
    let e = strobe::execute(
        plan,
        strobe::Interactivity::silent(),
        &strobe::Shutdown::new(),
    )
    .await?;
    let report = e
        .reports
        .last()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no report"))?;
    Ok(Out {
        exit_code: e.exit_code,
        report,
        reports: e.reports,
        summary: e.summary,
    })
}

/// `strobe run --url URL -q ARGS`, in-process.
pub async fn run(url: &str, args: &[&str]) -> anyhow::Result<Out> {
    execute(plan(url, args)?).await
}

/// `strobe interference --url URL -q ARGS`, in-process.
pub async fn interference(url: &str, args: &[&str]) -> anyhow::Result<Out> {
    let mut all = vec!["strobe", "interference", "--url", url, "-q"];
    all.extend_from_slice(args);
    let Command::Interference(a) = Cli::try_parse_from(all)?.command else {
        unreachable!()
    };
    execute(strobe::settings::interference(*a)?).await
}

/// `strobe sweep --url URL -q ARGS`, in-process.
#[allow(dead_code)]
pub async fn sweep(url: &str, args: &[&str]) -> anyhow::Result<Out> {
    let mut all = vec!["strobe", "sweep", "--url", url, "-q"];
    all.extend_from_slice(args);
    let Command::Sweep(a) = Cli::try_parse_from(all)?.command else {
        unreachable!()
    };
    execute(strobe::settings::sweep(*a)?).await
}

pub fn temp_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("strobe-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// `strobe sim run ARGS -o FILE` as a user types it: its exit code, its stderr, and the JSON it
/// wrote (`Null` when none).
pub fn sim_run(args: &[&str]) -> (Option<i32>, String, serde_json::Value) {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let out = temp_path(&format!(
        "sim-run-{}.json",
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_file(&out);
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_strobe"))
        .args(["sim", "run"])
        .args(args)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    let json = std::fs::read(&out)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(serde_json::Value::Null);
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
        json,
    )
}

/// A CA, and a certificate it signed for localhost and 127.0.0.1: (ca.pem, cert.pem, key.pem).
pub fn pki() -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "strobe test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let (ca_pem, cert_pem, key_pem) = (
        temp_path("ca.pem"),
        temp_path("cert.pem"),
        temp_path("key.pem"),
    );
    std::fs::write(&ca_pem, ca.pem()).unwrap();
    std::fs::write(&cert_pem, cert.pem()).unwrap();
    std::fs::write(&key_pem, key.serialize_pem()).unwrap();
    (ca_pem, cert_pem, key_pem)
}

/// A port nothing listens on now (the system's pick, released at once): for a server a test
/// starts, or a URL that must refuse.
#[allow(dead_code)]
pub fn unused_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
