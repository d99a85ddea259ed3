//! vLLM's result format: the file `vllm bench serve --save-result` writes (one run), and the
//! `summary.json` of `vllm bench sweep serve` (a list of such results, each with its run number
//! and the point's parameters), so that dashboards and scripts written for vLLM read strobe's
//! output. Keys and units are vLLM's: seconds for `duration`, milliseconds for the `*_ms`
//! statistics, `median_*` for p50, `p99.9_*` for p99.9. Per-request arrays (`ttfts`, `itls`, ...)
//! are left out, as vLLM leaves them out without `--save-detailed`; strobe's records file has them.
//!
//! A run of several classes is given as vLLM would see it: every class together (the classes'
//! names are under `strobe_classes`).

use serde_json::{json, Map, Value};
use strobe_metrics::Summary;

use crate::summary::ExperimentSummary;
use crate::Report;

/// `2026-12-02T05:01:37Z` → `20261202-050137` (vLLM's `date`).
fn date(rfc3339: &str) -> String {
    let digits: String = rfc3339
        .chars()
        .take(19)
        .filter(|c| c.is_ascii_digit())
        .collect();
    if digits.len() == 14 {
        format!("{}-{}", &digits[..8], &digits[8..])
    } else {
        rfc3339.to_owned()
    }
}

fn stats(out: &mut Map<String, Value>, name: &str, s: &Summary) {
    out.insert(format!("mean_{name}_ms"), json!(s.mean));
    out.insert(format!("median_{name}_ms"), json!(s.p50));
    out.insert(format!("std_{name}_ms"), json!(s.std));
    for (p, v) in [
        ("50", s.p50),
        ("90", s.p90),
        ("95", s.p95),
        ("99", s.p99),
        ("99.9", s.p99_9),
    ] {
        out.insert(format!("p{p}_{name}_ms"), json!(v));
    }
}

/// The run as `vllm bench serve --save-result` would have saved it.
pub fn result(r: &Report) -> Value {
    let first = r.classes.first();
    let load = first.map(|c| &c.load);
    let api = first.map_or("completions", |c| c.request.api.as_str());
    let backend = if api == "chat" {
        "openai-chat"
    } else {
        "openai"
    };
    let res = &r.results;
    let open = load.is_some_and(|l| l.schedule == "open");
    let request_rate = match load.and_then(|l| l.rate_per_s) {
        Some(rate) if open => json!(rate),
        _ => json!("inf"),
    };
    let max_concurrency = load.and_then(|l| l.concurrency.or(l.max_concurrency).or(l.batch_size));
    let goodput = if r.classes.iter().any(|c| c.slo.is_some()) {
        json!(r
            .classes
            .iter()
            .filter_map(|c| c.slo.as_ref()?.goodput_per_s)
            .sum::<f64>())
    } else {
        Value::Null
    };
    // vLLM's max_output_tokens_per_s is the busiest second's output tokens.
    let mut timeline = strobe_metrics::Timeline::default();
    for c in &r.classes {
        strobe_metrics::Merge::merge(&mut timeline, &c.state.timeline);
    }
    let max_output_tokens_per_s = timeline
        .output_tokens_per_s()
        .into_iter()
        .fold(0.0f64, f64::max);
    let mut out = Map::new();
    out.insert("date".into(), json!(date(&r.run.started_at)));
    out.insert("endpoint_type".into(), json!(backend));
    out.insert("backend".into(), json!(backend));
    out.insert("label".into(), json!(r.run.label));
    out.insert("model_id".into(), json!(r.run.target.model));
    out.insert("tokenizer_id".into(), json!(r.run.target.model));
    out.insert("num_prompts".into(), json!(res.requests.measured));
    out.insert("request_rate".into(), request_rate);
    out.insert(
        "burstiness".into(),
        json!(load.and_then(|l| l.burstiness).unwrap_or(1.0)),
    );
    out.insert("max_concurrency".into(), json!(max_concurrency));
    out.insert("duration".into(), json!(res.duration_s));
    out.insert("completed".into(), json!(res.requests.successful));
    out.insert(
        "failed".into(),
        json!(res.requests.failed + res.requests.cancelled),
    );
    out.insert("total_input_tokens".into(), json!(res.tokens.input));
    out.insert("total_output_tokens".into(), json!(res.tokens.output));
    out.insert(
        "request_throughput".into(),
        json!(res.throughput.requests_per_s),
    );
    out.insert("request_goodput".into(), goodput);
    out.insert(
        "output_throughput".into(),
        json!(res.throughput.output_tokens_per_s),
    );
    out.insert(
        "total_token_throughput".into(),
        json!(res.throughput.total_tokens_per_s),
    );
    out.insert(
        "max_output_tokens_per_s".into(),
        json!(max_output_tokens_per_s),
    );
    out.insert(
        "max_concurrent_requests".into(),
        json!(res.concurrency.peak_in_flight),
    );
    let l = &res.latency;
    stats(&mut out, "ttft", &l.ttft_ms);
    stats(&mut out, "tpot", &l.tpot_ms);
    stats(&mut out, "itl", &l.itl_ms);
    stats(&mut out, "e2el", &l.e2e_ms);
    stats(&mut out, "client_queue_time", &l.queue_delay_ms);
    out.insert("strobe_version".into(), json!(r.tool.version));
    out.insert(
        "strobe_classes".into(),
        json!(r.classes.iter().map(|c| &c.name).collect::<Vec<_>>()),
    );
    Value::Object(out)
}

/// The experiment as `vllm bench sweep serve` writes its `summary.json`: one result per run, with
/// `run_number` and the point's parameters (strobe's names: `concurrency`, `input_len`, ...).
pub fn sweep(summary: &ExperimentSummary, reports: &[Report]) -> Value {
    let runs = reports
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut v = result(r);
            if let Value::Object(o) = &mut v {
                o.insert("run_number".into(), json!(i));
                let label = r.run.label.as_deref();
                if let Some(p) = summary
                    .points
                    .iter()
                    .find(|p| Some(p.label.as_str()) == label)
                {
                    for (k, val) in &p.parameters {
                        o.insert(k.clone(), val.clone());
                    }
                }
            }
            v
        })
        .collect();
    Value::Array(runs)
}
