//! `strobe dataset stats FILE`: token length distributions of a data set, as strobe would send
//! it (same format detection, shuffle and filters as `strobe run --dataset`), with fitted length
//! specs for `--input-len` / `--output-len` and profiles.

use anyhow::Context;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use strobe_workload::stats::length_stats;
use strobe_workload::{dataset, HfTokenizer, TokenCounter, WordCounter};

use crate::cli::{DatasetSampleArgs, DatasetStatsArgs};

pub fn stats(a: DatasetStatsArgs) -> anyhow::Result<i32> {
    let counter: Arc<dyn TokenCounter> = match a.input.tokenizer.as_deref() {
        None | Some("words") => Arc::new(WordCounter),
        Some("server") => anyhow::bail!(
            "--tokenizer server needs a server: give a tokenizer.json or model folder here"
        ),
        Some(p) => Arc::new(HfTokenizer::load(Path::new(p)).context("--tokenizer")?),
    };
    let spec = crate::settings::dataset_spec(&a.input.file, &a.input.data);
    let opts = spec.load_options(None, false, None, a.input.seed, a.limit.map(|n| n as usize))?;
    let data = dataset::load(&a.input.file, counter.as_ref(), &opts)?;
    let inputs: Vec<u32> = data.entries.iter().map(|e| e.input_tokens).collect();
    let outputs: Vec<u32> = data
        .entries
        .iter()
        .filter_map(|e| e.output_tokens)
        .collect();
    let input = length_stats(&inputs);
    let output = length_stats(&outputs);
    let info = strobe_experiment::workloads::dataset_info(&data.summary, &opts.rules);
    if a.json {
        let v = serde_json::json!({
            "dataset": info,
            "tokenizer": counter.describe(),
            "input_tokens": input,
            "output_tokens": output,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(crate::exit::OK);
    }
    let mut out = String::new();
    let _ = writeln!(out, "data set   {} ({})", info.path, info.format);
    let _ = writeln!(out, "tokenizer  {}", counter.describe());
    let dropped: Vec<String> = info
        .dropped
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect();
    let _ = writeln!(
        out,
        "records    {} read, {} examined, {} kept; dropped: {}; malformed skipped: {}",
        info.records,
        info.examined,
        info.kept,
        if dropped.is_empty() {
            "none".into()
        } else {
            dropped.join(", ")
        },
        info.malformed_skipped
    );
    let rules: Vec<String> = info
        .filters
        .iter()
        .map(|(k, v)| format!("{k}={}", v.map_or("none".into(), |v| v.to_string())))
        .collect();
    let _ = writeln!(out, "filters    {}", rules.join(" "));
    if let Some(t) = &info.truncated {
        let _ = writeln!(out, "truncated  {t}");
    }
    let _ = writeln!(
        out,
        "order      {}",
        if info.shuffled {
            format!(
                "shuffled as vLLM does (Python random, seed {})",
                a.input.seed
            )
        } else {
            "file order".into()
        }
    );
    let _ = writeln!(out);
    out.push_str(&strobe_workload::stats::render(
        input.as_ref(),
        output.as_ref(),
    ));
    print!("{out}");
    Ok(crate::exit::OK)
}

/// The requests `strobe run --dataset` would send, built by the same code path.
pub fn sample(a: DatasetSampleArgs) -> anyhow::Result<i32> {
    let output = match &a.output_len {
        Some(s) => Some(
            strobe_workload::LengthSpec::parse(s)
                .map_err(|e| anyhow::anyhow!("--output-len {e}"))?,
        ),
        None => None,
    };
    let ws = strobe_experiment::WorkloadSpec {
        output,
        tokenizer: match a.input.tokenizer.as_deref() {
            None | Some("words") => strobe_experiment::TokenizerChoice::Words,
            Some("server") => anyhow::bail!(
                "--tokenizer server needs a server: give a tokenizer.json or model folder here"
            ),
            Some(p) => strobe_experiment::TokenizerChoice::File(p.into()),
        },
        dataset: Some(crate::settings::dataset_spec(&a.input.file, &a.input.data)),
        ..strobe_experiment::WorkloadSpec::default()
    };
    let ctx = strobe_experiment::workloads::BuildContext {
        api: strobe_core::Api::Completions,
        seed: a.input.seed,
        built_in: true,
        server_tokenizer: None,
        max_model_len: None,
        needed: Some(a.requests),
        concurrency: 1,
    };
    let built = strobe_experiment::workloads::build(&ws, ctx)?;
    for w in &built.warnings {
        eprintln!("warning: {w}");
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for i in 0..a.requests {
        let spec = built.workload.spec(i);
        let prompt = match &spec.prompt {
            strobe_core::Prompt::Text(t) => serde_json::Value::String(t.clone()),
            strobe_core::Prompt::Messages(m) => serde_json::to_value(m)?,
            strobe_core::Prompt::Raw(r) => serde_json::from_str(&r.body)?,
        };
        let line = serde_json::json!({
            "index": i,
            "input_tokens": spec.input_tokens,
            "max_tokens": spec.max_tokens,
            "prompt": prompt,
        });
        std::io::Write::write_all(&mut out, format!("{line}\n").as_bytes())?;
    }
    std::io::Write::flush(&mut out)?;
    Ok(crate::exit::OK)
}
