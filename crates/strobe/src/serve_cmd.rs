//! `strobe serve`: the built-in target as a standalone server, until Ctrl-C.

use anyhow::{bail, Context};
use strobe_server::{Fault, LoadModel, ServerConfig};

use crate::cli::ServeArgs;
use crate::exit;

fn parse_fault(spec: &str) -> anyhow::Result<(Fault, f64)> {
    let (kind, p) = spec.rsplit_once(':').with_context(|| {
        format!("--fault {spec}: expected KIND:PROBABILITY, e.g. http-500:0.01")
    })?;
    let fault: Fault = kind.parse().with_context(|| format!("--fault {spec}"))?;
    let p: f64 = p
        .parse()
        .ok()
        .filter(|p: &f64| (0.0..=1.0).contains(p))
        .with_context(|| format!("--fault {spec}: the probability must be a number from 0 to 1"))?;
    Ok((fault, p))
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<i32> {
    let faults = args
        .faults
        .iter()
        .map(|f| parse_fault(f))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let api_key = match (&args.api_key_env, &args.api_key) {
        (Some(name), _) => match std::env::var(name) {
            Ok(k) if !k.is_empty() => Some(k),
            _ => bail!("--api-key-env {name}: that environment variable is not set"),
        },
        (None, key) => key.clone(),
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => {
            Some(strobe_server::tls_config(c, k).map_err(|e| anyhow::anyhow!(e))?)
        }
        _ => None,
    };
    let sim = crate::settings::sim(&args.sim)?;
    let tokenizer = args
        .tokenizer
        .as_deref()
        .map(|p| crate::settings::model_tokenizer(p, "--tokenizer"))
        .transpose()?;
    let config = ServerConfig {
        model: match (&sim, args.model.as_str()) {
            // The default name gives way to the simulated model's.
            (Some(e), "strobe-sim") => e.model.name.to_owned(),
            _ => args.model,
        },
        sim: sim.clone(),
        tokenizer: tokenizer.clone(),
        ttft: args.ttft,
        itl: args.itl,
        jitter: args.jitter,
        output_len: args.output_len,
        faults,
        seed: args.seed,
        api_key,
        send_done: !args.no_done,
        max_model_len: args.max_model_len,
        image_tokens: args.image_tokens,
        tls: tls.clone(),
        strict: args.strict,
        read_rate: args.read_rate,
        load: LoadModel {
            max_running: args.max_running,
            itl_per_stream: args.itl_per_stream,
            prefill_per_token: args.prefill_per_token,
        },
        ..ServerConfig::default()
    };
    let addr = format!("{}:{}", args.host, args.port);
    let sockaddr = tokio::net::lookup_host(&addr)
        .await
        .ok()
        .and_then(|mut a| a.next())
        .with_context(|| format!("--host {}: not an address to listen on", args.host))?;
    let listener =
        strobe_server::bind(sockaddr).with_context(|| format!("cannot listen on {addr}"))?;
    let handle = strobe_server::serve(listener, config.clone())?;
    let load = &config.load;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let banner = match &sim {
        Some(e) => format!(
            "strobe serve: listening on {scheme}://{} (model {}: simulated {}, max_num_seqs {}, max_num_batched_tokens {}{}, {} KV-cache blocks of {} tokens; the step clock's lag is at /strobe/truth and /metrics)",
            handle.addr,
            config.model,
            e.describe(),
            e.max_num_seqs,
            e.max_num_batched_tokens,
            if e.enable_chunked_prefill {
                ""
            } else {
                ", chunked prefill off"
            },
            e.kv_blocks().unwrap_or(0),
            e.block_size,
        ),
        None => format!(
        "strobe serve: listening on {scheme}://{} (model {}, TTFT {:?}, {:?} between tokens, jitter ±{:?}{}{})",
        handle.addr,
        config.model,
        config.ttft,
        config.itl,
        config.jitter,
        if load.is_none() {
            String::new()
        } else {
            format!(
                ", at most {} running, +{:?} per token gap per other stream, +{:?} prefill per prompt token",
                load.max_running.map_or("unlimited".into(), |n| n.to_string()),
                load.itl_per_stream,
                load.prefill_per_token
            )
        },
        if config.faults.is_empty() { String::new() } else { format!(", faults {:?}", config.faults) }
    ),
    };
    let banner = match &tokenizer {
        Some(t) => format!("{banner}; prompts counted by {}", t.0.describe()),
        None => banner,
    };
    println!("{banner}");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for Ctrl-C")?;
    handle.shutdown().await;
    Ok(exit::OK)
}
