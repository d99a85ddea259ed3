//! `strobe gateway`: typed settings for `strobe_gateway`, then serve until Ctrl-C or SIGTERM.

use anyhow::{bail, Context};
use std::sync::Arc;
use strobe_core::Secret;
use strobe_gateway::{Gateway, GatewayConfig, PgStore, PolicyConfig, SqliteStore};

use crate::cli::GatewayArgs;
use crate::exit;

fn secret_from(flag: &str, var: &str) -> anyhow::Result<Secret> {
    match std::env::var(var) {
        Ok(k) if !k.trim().is_empty() => Ok(Secret::new(k.trim())),
        _ => bail!("{flag} {var}: that environment variable is not set (export it with the key)"),
    }
}

pub async fn gateway(a: GatewayArgs) -> anyhow::Result<i32> {
    if a.batch_max_concurrency == 0 {
        bail!("--batch-max-concurrency must be at least 1");
    }
    if a.batch_min_concurrency > a.batch_max_concurrency {
        bail!("--batch-min-concurrency must not exceed --batch-max-concurrency");
    }
    if !(0.0..=1.0).contains(&a.max_kv_cache) {
        bail!(
            "--max-kv-cache is a fraction from 0 to 1, got {}",
            a.max_kv_cache
        );
    }
    if a.max_attempts == 0 {
        bail!("--max-attempts must be at least 1");
    }
    if a.policy_interval.is_zero() {
        bail!("--policy-interval must be more than 0");
    }
    let api_keys = a
        .api_key_envs
        .iter()
        .map(|v| secret_from("--api-key-env", v))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let upstream_api_key = a
        .upstream_api_key_env
        .as_deref()
        .map(|v| secret_from("--upstream-api-key-env", v))
        .transpose()?;
    let postgres = a.store.starts_with("postgres://") || a.store.starts_with("postgresql://");
    let shown = if postgres {
        strobe_gateway::postgres::redacted(&a.store)
    } else {
        a.store.clone()
    };
    let store: Arc<dyn strobe_gateway::Store> = if postgres {
        // The PostgreSQL client blocks (it runs its own runtime): off the async threads.
        let url = a.store.clone();
        let opened = tokio::task::spawn_blocking(move || PgStore::open(&url))
            .await
            .context("opening the store")?;
        Arc::new(opened.with_context(|| format!("--store {shown}"))?)
    } else {
        Arc::new(
            SqliteStore::open(std::path::Path::new(&a.store))
                .with_context(|| format!("--store {shown}"))?,
        )
    };
    let worker_id = a.worker_id.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "localhost".into());
        format!("{host}:{}", a.listen.port())
    });
    let config = GatewayConfig {
        listen: a.listen,
        upstreams: a.upstreams.clone(),
        api_keys,
        upstream_api_key,
        upstream_tls: strobe_client::TlsOptions {
            ca_cert: a.upstream_ca_cert.clone(),
            insecure: a.upstream_insecure,
        },
        limits: strobe_batch::Limits {
            max_lines: a.max_input_lines,
            max_bytes: a.max_input_bytes,
        },
        policy: PolicyConfig {
            adaptive: !a.no_adaptive,
            min: a.batch_min_concurrency,
            max: a.batch_max_concurrency,
            initial: a.batch_min_concurrency.max(4).min(a.batch_max_concurrency),
            ttft_p95: (!a.interactive_ttft_p95.is_zero()).then_some(a.interactive_ttft_p95),
            tpot_p95: a.interactive_tpot_p95,
            max_waiting: a.max_engine_waiting,
            max_kv_cache: a.max_kv_cache,
            interval: a.policy_interval,
            window: a.policy_window,
        },
        worker_id,
        max_attempts: a.max_attempts,
        batch_priority: a.batch_priority,
        quiet: a.quiet,
    };
    let open = config.api_keys.is_empty();
    let gw = Gateway::new(config, store).map_err(|e| anyhow::anyhow!(e))?;
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .with_context(|| format!("--listen {}: cannot listen there", a.listen))?;
    let stop = Arc::new(strobe_experiment::Shutdown::new());
    {
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                return;
            };
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            stop.request();
        });
    }
    // On standard output whatever -q says: scripts read the address (with --listen ...:0) here.
    let addr = listener.local_addr().unwrap_or(a.listen);
    println!(
        "strobe gateway: listening on http://{addr} (Batch API at /v1/files and /v1/batches, batches page at /, policy at /metrics), store {}, upstream {}{}",
        shown,
        a.upstreams.join(", "),
        if open {
            "; no --api-key-env: anyone who can reach it may use it"
        } else {
            ""
        }
    );
    strobe_gateway::serve(gw, listener, stop).await;
    Ok(exit::OK)
}
