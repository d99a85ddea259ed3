//! How fast workloads produce requests: 100k specs (and their JSON bodies) per case, median of 5
//! repetitions. Run by scripts/bench_workload.py, which also times vLLM's own generator as a peer.
//!
//! usage: cargo run --release -p strobe-workload --example generate_bench -- TOKENIZER_DIR [SHAREGPT]

use std::sync::Arc;
use std::time::Instant;
use strobe_core::Prompt;
use strobe_workload::dataset::{self, LoadOptions};
use strobe_workload::picture::ImageFormat;
use strobe_workload::{
    images::ImageSource, ChatShape, DatasetWorkload, FilterRules, HfTokenizer, ImageSettings,
    LengthDist, SyntheticWorkload, WordPool, Workload,
};

const N: u64 = 100_000;

/// Median seconds for N specs, serialising each prompt as a request body would.
fn time(w: &dyn Workload) -> (f64, usize) {
    let mut runs = Vec::new();
    let mut bytes = 0;
    for _ in 0..5 {
        let t = Instant::now();
        bytes = 0;
        for i in 0..N {
            let spec = w.spec(i);
            bytes += match &spec.prompt {
                Prompt::Text(t) => serde_json::to_vec(t).map_or(0, |v| v.len()),
                Prompt::Messages(m) => serde_json::to_vec(m).map_or(0, |v| v.len()),
                Prompt::Raw(r) => r.body.len(),
            };
        }
        runs.push(t.elapsed().as_secs_f64());
    }
    runs.sort_by(f64::total_cmp);
    (runs[2], bytes)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let tok = HfTokenizer::load(std::path::Path::new(&args[1])).expect("tokenizer");
    let t = Instant::now();
    let pool = Arc::new(WordPool::build(&tok).unwrap());
    let shape = ChatShape::measure(&tok, &pool).unwrap();
    println!(
        "setup: word pool of {} single-token words and chat shape {:?} in {:.1} ms",
        pool.len(),
        shape,
        t.elapsed().as_secs_f64() * 1e3
    );
    let base = SyntheticWorkload {
        pool,
        input: LengthDist::Fixed(128),
        output: LengthDist::Fixed(128),
        chat: false,
        chat_shape: shape,
        shared_prefix: 0,
        prefix_groups: 1,
        turns: 1,
        sessions: 16,
        images: None,
        seed: 1,
        content_seed: 1,
        sessions_given: true,
    };
    let mut cases: Vec<(String, Box<dyn Workload>)> = vec![
        ("completions, 128 tokens".into(), Box::new(base.clone())),
        (
            "completions, 1024 tokens".into(),
            Box::new(SyntheticWorkload {
                input: LengthDist::Fixed(1024),
                ..base.clone()
            }),
        ),
        (
            "completions, lognormal:566:400 tokens".into(),
            Box::new(SyntheticWorkload {
                input: LengthDist::parse("lognormal:566:400").unwrap(),
                ..base.clone()
            }),
        ),
        (
            "chat, 128 tokens".into(),
            Box::new(SyntheticWorkload {
                chat: true,
                ..base.clone()
            }),
        ),
        (
            "chat, 3 turns of 128 + 128".into(),
            Box::new(SyntheticWorkload {
                chat: true,
                turns: 3,
                ..base.clone()
            }),
        ),
        (
            "chat, 128 tokens + 256x256 JPEG".into(),
            Box::new(SyntheticWorkload {
                chat: true,
                images: Some(ImageSettings {
                    per_request: 1,
                    source: ImageSource::Generated {
                        width: 256,
                        height: 256,
                        format: ImageFormat::Jpeg,
                    },
                }),
                ..base.clone()
            }),
        ),
    ];
    if let Some(path) = args.get(2) {
        let opts = LoadOptions {
            format: None,
            skip_invalid: true,
            rules: FilterRules::vllm_sharegpt(false),
            output_given: false,
            output_fixed: None,
            default_output: 128,
            shuffle: true,
            seed: 0,
            limit: None,
        };
        let t = Instant::now();
        let data = dataset::load(std::path::Path::new(path), &tok, &opts).unwrap();
        println!(
            "setup: ShareGPT loaded, counted and filtered ({} kept) in {:.2} s",
            data.entries.len(),
            t.elapsed().as_secs_f64()
        );
        cases.push((
            "ShareGPT entries".into(),
            Box::new(DatasetWorkload {
                entries: Arc::new(data.entries),
                summary: data.summary,
                output: None,
                default_output: 128,
                chat: false,
                chat_shape: None,
                specials: 0,
                seed: 0,
                start: 0,
            }),
        ));
    }
    println!(
        "{:<40} {:>12} {:>14} {:>12}",
        "case", "requests/s", "µs/request", "MB of text"
    );
    for (name, w) in cases {
        let (secs, bytes) = time(w.as_ref());
        println!(
            "{name:<40} {:>12.0} {:>14.2} {:>12.1}",
            N as f64 / secs,
            secs * 1e6 / N as f64,
            bytes as f64 / 1e6
        );
    }
}
