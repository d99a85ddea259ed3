//! The engine model's physics: what issue 13 asks it to show on a virtual clock.

use std::sync::Arc;
use strobe_sim::engine::{block_hashes, Request};
use strobe_sim::{simulate, Engine, EngineConfig, Gpu, Load, Model};

fn llama8b_h100() -> EngineConfig {
    EngineConfig::new(
        Model::preset("llama-3-8b").unwrap(),
        Gpu::preset("h100").unwrap(),
    )
}

fn load(concurrency: u32, requests: u32, prompt: u32, output: u32) -> Load {
    Load::closed(concurrency, requests, prompt, output)
}

#[test]
fn batch_one_decode_stays_above_the_weight_read_floor() {
    // Llama-3-8B in BF16 is 16.06 GB; an H100 reads 3.35 TB/s: no decode step can be faster
    // than 4.79 ms.
    let mut e = Engine::new(llama8b_h100()).unwrap();
    e.add(Request::new(0, 512, 8)).unwrap();
    let prefill = e.step().unwrap();
    let decode = e.step().unwrap();
    let floor = 16.06e9 / 3.35e12;
    assert!(decode.duration >= floor, "{} s", decode.duration);
    assert!(decode.duration < 2.0 * floor, "{} s", decode.duration);
    assert!(
        decode.memory > decode.compute,
        "batch-1 decode is memory-bound"
    );
    assert_eq!(decode.batched_tokens, 1);
    assert_eq!(prefill.batched_tokens, 512);
}

#[test]
fn throughput_saturates_and_ttft_rises_with_load() {
    let c = llama8b_h100();
    let at = |n: u32| simulate(&c, &load(n, 4 * n, 512, 128)).unwrap();
    let (one, eight, full, over) = (at(1), at(8), at(256), at(1024));
    assert!(
        eight.output_tokens_per_s > 4.0 * one.output_tokens_per_s,
        "batching is nearly free when decode is memory-bound: {} vs {}",
        eight.output_tokens_per_s,
        one.output_tokens_per_s
    );
    // Past max_num_seqs (256) more users only queue.
    assert!(
        over.output_tokens_per_s < 1.1 * full.output_tokens_per_s,
        "{} vs {}",
        over.output_tokens_per_s,
        full.output_tokens_per_s
    );
    assert!(over.max_running <= 256, "{}", over.max_running);
    assert!(
        over.ttft_mean > 2.0 * full.ttft_mean,
        "{} vs {}",
        over.ttft_mean,
        full.ttft_mean
    );
    assert!(full.ttft_mean > one.ttft_mean);
    assert!(full.tpot_mean > one.tpot_mean);
}

#[test]
fn a_kv_cache_too_small_for_the_batch_preempts() {
    let mut small = llama8b_h100();
    // About 0.3 GB of KV cache: ~2,300 tokens, for 16 users of 384 tokens each.
    small.gpu_memory_utilization = (16.06e9 + 1e9 + 0.3e9) / 80e9;
    let tight = simulate(&small, &load(16, 64, 128, 256)).unwrap();
    assert!(tight.preemptions > 0, "{tight:?}");
    assert_eq!(tight.requests, 64, "every request still ends");
    let roomy = simulate(&llama8b_h100(), &load(16, 64, 128, 256)).unwrap();
    assert_eq!(roomy.preemptions, 0);
    assert!(tight.e2e_mean > roomy.e2e_mean, "recompute costs time");
}

#[test]
fn a_longer_prompt_raises_ttft_as_prefill_predicts() {
    let c = llama8b_h100();
    let short = simulate(&c, &load(1, 4, 128, 16)).unwrap();
    let long = simulate(&c, &load(1, 4, 2048, 16)).unwrap();
    // Prefill is compute-bound: 2 FLOPs per parameter per prompt token at the efficiency set.
    let m = &c.model;
    let predicted = 2.0 * m.active_params * (2048.0 - 128.0) / (c.gpu.flops * c.flops_efficiency);
    let extra = long.ttft_mean - short.ttft_mean;
    assert!(
        (extra / predicted - 1.0).abs() < 0.2,
        "TTFT rose {extra} s, prefill predicts {predicted} s"
    );
}

#[test]
fn the_same_inputs_give_the_same_timings() {
    let c = llama8b_h100();
    let a = simulate(&c, &load(64, 300, 700, 200)).unwrap();
    let b = simulate(&c, &load(64, 300, 700, 200)).unwrap();
    assert_eq!(a, b);
}

#[test]
fn a_model_that_does_not_fit_is_refused_with_the_fix() {
    let c = EngineConfig::new(
        Model::preset("llama-3.1-70b").unwrap(),
        Gpu::preset("a10").unwrap(),
    );
    let e = Engine::new(c).unwrap_err();
    assert!(e.contains("does not fit") && e.contains("raise tp"), "{e}");
    let mut tp8 = EngineConfig::new(
        Model::preset("llama-3.1-70b").unwrap(),
        Gpu::preset("h200").unwrap(),
    );
    tp8.tp = 8;
    let s = simulate(&tp8, &load(8, 16, 256, 32)).unwrap();
    assert_eq!(s.requests, 16);
}

#[test]
fn the_real_time_clock_paces_tokens_and_frees_a_request_whose_client_left() {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    let rt = strobe_sim::RealTime::start(llama8b_h100()).unwrap();
    assert!(rt.fits(8_000_000, 1).is_err(), "more than the cache holds");
    // One listener takes every token; another leaves after 3.
    let (kept, left) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let k = Arc::clone(&kept);
    let l = Arc::clone(&left);
    let start = Instant::now();
    rt.submit(
        256,
        40,
        Arc::from([]),
        start,
        Box::new(move || {
            k.fetch_add(1, Ordering::Relaxed);
            true
        }),
    );
    rt.submit(
        256,
        1_000,
        Arc::from([]),
        start,
        Box::new(move || l.fetch_add(1, Ordering::Relaxed) < 2),
    );
    while kept.load(Ordering::Relaxed) < 40 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the clock stalled"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let took = start.elapsed().as_secs_f64();
    // 40 tokens of ≈ 6.8 ms decode steps (two sequences) take at least 39 steps of real time.
    assert!(
        took > 39.0 * 0.0065,
        "{took} s: faster than the steps it simulates"
    );
    std::thread::sleep(Duration::from_millis(50));
    let s = rt.snapshot();
    assert_eq!(
        left.load(Ordering::Relaxed),
        3,
        "no token after the client left"
    );
    assert_eq!((s.running, s.waiting), (0, 0), "{s:?}");
    assert_eq!(s.kv_usage, 0.0, "the leaver's blocks are free again");
    assert!(
        s.lag.steps >= 40 && s.lag.quantile_s(0.99) < 0.02,
        "{:?}",
        s.lag
    );
}

#[test]
fn the_capacity_search_finds_the_edge_of_the_objective() {
    let c = llama8b_h100();
    let limit = 0.2;
    let meets = |s: &strobe_sim::Summary| strobe_sim::quantile(&s.ttft_s, 0.99) <= limit;
    let cap =
        strobe_sim::max_users(&c, &strobe_sim::Requests::fixed(512, 128), 4096, meets).unwrap();
    let users = cap.users;
    let (above, miss) = cap
        .above
        .clone()
        .expect("an H100 cannot serve 4,096 users in 200 ms");
    assert!(users >= 8 && above == users + 1, "{users} / {above}");
    assert!(meets(cap.at.as_ref().unwrap()) && !meets(&miss));
    assert!(
        cap.probes < 30,
        "doubling then bisection: {} probes",
        cap.probes
    );
    // A slower GPU serves fewer users within the same objective.
    let a10 = EngineConfig::new(
        Model::preset("llama-3-8b").unwrap(),
        Gpu::preset("a10").unwrap(),
    );
    let small =
        strobe_sim::max_users(&a10, &strobe_sim::Requests::fixed(512, 128), 4096, meets).unwrap();
    assert!(small.users < users / 2, "{} vs {users}", small.users);
}

/// A CPU-like engine to fit from (vLLM's defaults) and the "real" one, whose overheads are far
/// from them.
fn cpu_base_and_truth() -> (EngineConfig, EngineConfig) {
    let base = EngineConfig::new(
        Model::preset("smollm2-135m").unwrap(),
        Gpu::preset("cpu").unwrap(),
    );
    let mut truth = base.clone();
    truth.overheads.per_step = 12e-3;
    truth.overheads.per_seq = 1.5e-3;
    truth.overheads.per_layer = 0.0;
    truth.overheads.per_request_api = 4e-3;
    truth.flops_efficiency = 0.3;
    truth.bw_efficiency = 0.5;
    (base, truth)
}

/// What a closed loop of `users` on `truth` shows, as a report would give it to the fit.
fn observed(truth: &EngineConfig, users: u32) -> strobe_sim::Observed {
    let s = simulate(truth, &load(users, 8 * users, 256, 64)).unwrap();
    strobe_sim::Observed {
        label: format!("c={users}"),
        concurrency: users,
        requests: 8 * users,
        warmup: 0,
        prompt: 256,
        output: 64,
        ttft_mean: s.ttft_mean,
        tpot_mean: s.tpot_mean,
        output_tokens_per_s: s.output_tokens_per_s,
    }
}

#[test]
fn a_fit_recovers_an_engine_from_two_loads_and_predicts_the_others() {
    let (base, truth) = cpu_base_and_truth();
    let observe = |users: u32| observed(&truth, users);
    let fit = strobe_sim::fit(&base, &[observe(1), observe(2)]).unwrap();
    for r in &fit.residuals {
        assert!(r.worst() < 0.02, "fitted points: {r:?}");
    }
    let check = strobe_sim::fit::residuals(&fit.config, &[observe(4), observe(8)]).unwrap();
    for r in &check {
        assert!(
            r.worst() < 0.2,
            "predicted from the fit: {r:?} ({:?})",
            fit.config.overheads
        );
    }
    // The fitted engine round-trips through a model file.
    let text = fit.config.to_toml("fitted in a test");
    assert!(text.starts_with("# fitted in a test\n"), "{text}");
    assert_eq!(EngineConfig::parse(&text).unwrap(), fit.config);
}

#[test]
fn held_terms_keep_the_base_engines_values_and_the_rest_are_fitted_around_them() {
    let (base, mut truth) = cpu_base_and_truth();
    // Only terms the fit sets, so that it can find the truth exactly.
    truth.overheads.per_output_token = 0.0;
    truth.overheads.per_request_finish = 0.0;
    let observe = |users: u32| observed(&truth, users);
    // The efficiencies known (as a microbenchmark would measure them), the overheads not.
    let mut measured = base.clone();
    measured.flops_efficiency = 0.3;
    measured.bw_efficiency = 0.5;
    let held =
        strobe_sim::held_terms(&["flops_efficiency".into(), "bw_efficiency".into()]).unwrap();
    let fit = strobe_sim::fit_holding(&measured, &[observe(1), observe(2)], held).unwrap();
    assert_eq!(fit.config.flops_efficiency, 0.3);
    assert_eq!(fit.config.bw_efficiency, 0.5);
    let o = &fit.config.overheads;
    for (name, got, want) in [
        ("per step", o.per_step, 12e-3),
        ("per sequence", o.per_seq, 1.5e-3),
        ("per request", o.per_request_api, 4e-3),
    ] {
        assert!(
            (got / want - 1.0).abs() < 0.05,
            "{name}: {got} s, not {want} s"
        );
    }
    // Held at wrong values, the fit cannot make up for them with the terms left.
    measured.flops_efficiency = 0.9;
    measured.bw_efficiency = 0.9;
    let off = strobe_sim::fit_holding(&measured, &[observe(1), observe(2)], held).unwrap();
    assert_eq!(off.config.flops_efficiency, 0.9);
    assert!(off.rms_log_error > fit.rms_log_error, "{off:?}");
    // Names are checked, and something must be left to fit.
    let err = strobe_sim::held_terms(&["per_token".into()]).unwrap_err();
    assert!(
        err.contains("per_token") && err.contains("bw_efficiency"),
        "{err}"
    );
    let all: Vec<String> = strobe_sim::fit::TERM_NAMES
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert!(strobe_sim::held_terms(&all)
        .unwrap_err()
        .contains("nothing is left"));
}

#[test]
fn a_model_file_takes_presets_or_custom_shapes_and_names_a_bad_key() {
    let c =
        EngineConfig::parse("model = \"llama-3-8b\"\ngpu = \"h100\"\nmax_num_seqs = 64\n").unwrap();
    assert_eq!((c.model.name.as_str(), c.max_num_seqs), ("llama-3-8b", 64));
    assert!(
        c.enable_prefix_caching && c.enable_chunked_prefill,
        "vLLM V1's defaults"
    );
    // The scheduler's switches, and a written file read back as the same engine.
    let v0 = EngineConfig::parse(
        "model = \"llama-3-8b\"\ngpu = \"a10\"\nenable_prefix_caching = false\nenable_chunked_prefill = false\n",
    )
    .unwrap();
    assert!(!v0.enable_prefix_caching && !v0.enable_chunked_prefill);
    assert_eq!(EngineConfig::parse(&v0.to_toml("a header")).unwrap(), v0);
    let custom = "gpu = \"h100\"\n[model]\nname = \"tiny\"\nparams = 1e9\nactive_params = 1e9\nlayers = 16\nhidden = 2048\nheads = 16\nkv_heads = 4\nhead_dim = 128\ndtype_bytes = 2.0\n";
    assert_eq!(EngineConfig::parse(custom).unwrap().model.layers, 16);
    let err = EngineConfig::parse("model = \"llama-3-8b\"\ngpu = \"h100\"\nmax_num_seq = 64\n")
        .unwrap_err();
    assert!(
        err.contains("max_num_seq") && err.contains("line 3"),
        "{err}"
    );
    let err = EngineConfig::parse("model = \"llama-3-8b\"\ngpu = \"h100\"\nbw_efficiency = 1.5\n")
        .unwrap_err();
    assert!(err.contains("bw_efficiency must be"), "{err}");
    let typo = custom.replace("kv_heads", "kv_head");
    let err = EngineConfig::parse(&typo).unwrap_err();
    assert!(err.contains("[model]") && err.contains("kv_head"), "{err}");
    let err = EngineConfig::parse("model = \"llama-3-8b\"\ngpu = \"h100\"\n[overheads]\nper_step = -1.0\nper_layer = 0.0\nper_seq = 0.0\nper_output_token = 0.0\nper_request_api = 0.0\n").unwrap_err();
    assert!(
        err.contains("overheads.per_step must be 0 or more"),
        "{err}"
    );
}

#[test]
fn a_mixture_of_experts_reads_its_active_experts_at_batch_one_and_all_of_them_when_full() {
    let m = Model::preset("mixtral-8x7b").unwrap();
    let (one, full) = (m.weight_read_bytes(1), m.weight_read_bytes(256));
    // One token reads the shared weights and 2 of 8 experts: the active 12.9B parameters.
    assert!((one / 2.0 - 12.9e9).abs() < 0.01 * 12.9e9, "{one}");
    assert!((full - m.weight_bytes()).abs() < 1e-6 * full, "{full}");
    let mut c = EngineConfig::new(m, Gpu::preset("h100").unwrap());
    c.tp = 2;
    let mut e = Engine::new(c).unwrap();
    e.add(Request::new(0, 64, 4)).unwrap();
    e.step().unwrap();
    let decode = e.step().unwrap();
    // Batch-1 decode is bound by the active weights' read over two GPUs, not all 93 GB.
    let active_floor = 25.8e9 / (2.0 * 3.35e12);
    assert!(decode.duration >= active_floor, "{}", decode.duration);
    assert!(
        decode.memory < 93.4e9 / (2.0 * 3.35e12),
        "{}",
        decode.memory
    );
}

#[test]
fn the_rate_search_finds_the_edge_and_a_faster_gpu_takes_more() {
    let meets = |s: &strobe_sim::Summary| strobe_sim::quantile(&s.ttft_s, 0.99) <= 0.3;
    let h100 = strobe_sim::max_rate(
        &llama8b_h100(),
        &strobe_sim::Requests::fixed(512, 128),
        1000.0,
        meets,
    )
    .unwrap();
    let (above, miss) = h100.above.clone().expect("an H100 cannot take 1,000 req/s");
    assert!(
        above / h100.rate <= 1.021 && above > h100.rate,
        "{} / {above}",
        h100.rate
    );
    assert!(meets(h100.at.as_ref().unwrap()) && !meets(&miss));
    // What the engine served keeps up with what was sent, below capacity.
    let served = h100.at.as_ref().unwrap().requests_per_s;
    assert!(
        (served - h100.rate).abs() < 0.1 * h100.rate,
        "{served} vs {}",
        h100.rate
    );
    let mut h200 = llama8b_h100();
    h200.gpu = Gpu::preset("h200").unwrap();
    let faster =
        strobe_sim::max_rate(&h200, &strobe_sim::Requests::fixed(512, 128), 1000.0, meets).unwrap();
    assert!(faster.rate > h100.rate, "{} vs {}", faster.rate, h100.rate);
}

/// A prompt of `words` words, the first `shared` of them common to every prompt of `group`.
fn prompt_blocks(group: u32, id: u64, shared: usize, words: usize) -> Arc<[u64]> {
    let text: Vec<String> = (0..words)
        .map(|i| {
            if i < shared {
                format!("g{group}w{i}")
            } else {
                format!("r{id}w{i}")
            }
        })
        .collect();
    block_hashes(text.iter().map(String::as_str), 16).into()
}

#[test]
fn a_shared_prefix_is_computed_once_and_counted_as_vllm_counts_it() {
    let c = llama8b_h100();
    let ttft = |e: &mut Engine, req: Request| {
        e.add(req).unwrap();
        let mut t = 0.0;
        loop {
            let s = e.step().unwrap();
            t += s.duration;
            if s.events
                .iter()
                .any(|ev| matches!(ev, strobe_sim::Event::FirstToken(_)))
            {
                break;
            }
        }
        while !e.is_idle() {
            e.step();
        }
        t
    };
    let mut e = Engine::new(c.clone()).unwrap();
    let req = |id: u64, shared: usize| Request {
        prefix: prompt_blocks(0, id, shared, 2048),
        ..Request::new(id, 2048, 4)
    };
    let cold = ttft(&mut e, req(0, 1536));
    assert_eq!((e.prefix_queries, e.prefix_hits), (2048, 0));
    // The second prompt's first 1,536 tokens (96 blocks) are cached: only 512 are computed.
    let warm = ttft(&mut e, req(1, 1536));
    assert_eq!((e.prefix_queries, e.prefix_hits), (4096, 1536));
    assert!(warm < 0.45 * cold, "cold {cold} s, warm {warm} s");
    // A prompt that is all cached still computes its last token (as vLLM does).
    let whole = Request {
        prefix: prompt_blocks(0, 0, 1536, 2048),
        ..Request::new(2, 2048, 4)
    };
    ttft(&mut e, whole);
    assert_eq!(e.prefix_hits, 1536 + 2032, "127 of its 128 blocks");
    // Off, nothing is looked up or kept.
    let mut off = Engine::new(EngineConfig {
        enable_prefix_caching: false,
        ..c
    })
    .unwrap();
    ttft(&mut off, req(0, 1536));
    let again = ttft(&mut off, req(1, 1536));
    assert_eq!((off.prefix_queries, off.prefix_hits), (0, 0));
    assert!((again - cold).abs() < 1e-9);
}

#[test]
fn idle_cached_blocks_are_free_to_take_and_evicted_oldest_first() {
    // A small cache: room for about four 2,048-token prompts.
    let mut c = EngineConfig::new(
        Model::preset("llama-3-8b").unwrap(),
        Gpu::preset("a10").unwrap(),
    );
    c.gpu_memory_utilization = 0.75;
    let blocks = c.kv_blocks().unwrap();
    assert!((400..700).contains(&blocks), "{blocks} blocks");
    let mut e = Engine::new(c).unwrap();
    let run = |e: &mut Engine, id: u64, group: u32| {
        e.add(Request {
            prefix: prompt_blocks(group, id, 2048, 2048),
            ..Request::new(id, 2048, 2)
        })
        .unwrap();
        while !e.is_idle() {
            e.step();
        }
    };
    run(&mut e, 0, 0);
    // Its blocks stay cached, idle, and count as free.
    assert_eq!(e.kv_usage(), 0.0);
    let hits = e.prefix_hits;
    run(&mut e, 1, 0);
    assert_eq!(e.prefix_hits - hits, 2032, "group 0 still cached");
    // Other prompts fill the cache: group 0's blocks, the least recently used, are evicted,
    // and no request waits or is preempted for them.
    for g in 1..8 {
        run(&mut e, 10 + u64::from(g), g);
    }
    assert_eq!(e.preemptions, 0);
    let hits = e.prefix_hits;
    run(&mut e, 99, 0);
    assert_eq!(e.prefix_hits, hits, "group 0 was evicted");
    let hits = e.prefix_hits;
    run(&mut e, 100, 7);
    assert_eq!(
        e.prefix_hits - hits,
        2032,
        "the most recent group is still cached"
    );
}

#[test]
fn without_chunked_prefill_a_prompt_runs_whole_in_a_step_of_its_own() {
    // Four sequences decoding, then a 6,000-token prompt arrives and the budget is 2,048.
    let run = |chunked: bool| {
        let mut c = llama8b_h100();
        c.max_num_batched_tokens = 2048;
        c.enable_chunked_prefill = chunked;
        let mut e = Engine::new(c).unwrap();
        for id in 0..4 {
            e.add(Request::new(id, 100, 50)).unwrap();
        }
        e.step().unwrap(); // their prompts
        e.step().unwrap(); // a decode
        e.add(Request::new(9, 6000, 4)).unwrap();
        (0..4).map(|_| e.step().unwrap()).collect::<Vec<_>>()
    };
    let v0 = run(false);
    // The whole prompt in one step (longer than the budget, so alone), with no decode in it...
    assert_eq!((v0[0].batched_tokens, v0[0].seqs), (6000, 1));
    assert!(v0[0]
        .events
        .iter()
        .all(|e| *e == strobe_sim::Event::FirstToken(9)));
    // ...then decodes of all five.
    assert_eq!((v0[1].batched_tokens, v0[1].seqs), (5, 5));
    // Chunked: the prompt goes in budget-sized chunks beside the four decodes, which keep
    // getting a token every step.
    let v1 = run(true);
    for s in &v1[..3] {
        assert_eq!(s.seqs, 5);
        assert!(s.batched_tokens <= 2048, "{}", s.batched_tokens);
        let decoded = s
            .events
            .iter()
            .filter(|e| matches!(e, strobe_sim::Event::Token(id) if *id < 4))
            .count();
        assert_eq!(decoded, 4);
    }
    // The decodes' longest gap: one 6,000-token step without chunking, a 2,048-token one with.
    let longest = |v: &[strobe_sim::Step]| v.iter().map(|s| s.duration).fold(0.0, f64::max);
    assert!(
        longest(&v0) > 2.0 * longest(&v1),
        "{} vs {}",
        longest(&v0),
        longest(&v1)
    );
}

#[test]
fn without_chunked_prefill_waiting_prompts_go_first_and_together() {
    // Prompts that fit the budget together are admitted in one prefill step.
    let mut c = llama8b_h100();
    c.enable_chunked_prefill = false;
    let mut e = Engine::new(c).unwrap();
    for id in 0..3 {
        e.add(Request::new(id, 3000, 4)).unwrap();
    }
    let first = e.step().unwrap();
    // 8,192 tokens hold two 3,000-token prompts, not a part of the third.
    assert_eq!((first.batched_tokens, first.seqs), (6000, 2));
    let second = e.step().unwrap();
    assert_eq!(
        (second.batched_tokens, second.seqs),
        (3000, 1),
        "prefill first"
    );
    let third = e.step().unwrap();
    assert_eq!((third.batched_tokens, third.seqs), (3, 3));
}

#[test]
fn a_large_batchs_kv_reads_add_to_its_linear_layers_compute() {
    // Llama-2-70B in FP8 on an H200, 300 sequences decoding at 1,024 tokens of context: the
    // linear layers are compute-bound (300 rows), attention is bound by its KV reads (300 ×
    // 1,024 × 160 KB = 50 GB). They are separate kernels, so the step takes the two times
    // added, not the larger.
    let mut c = EngineConfig::new(
        Model::preset("llama-2-70b").unwrap().in_fp8(),
        Gpu::preset("h200").unwrap(),
    );
    c.overheads = strobe_sim::Overheads::none();
    c.max_num_seqs = 300;
    c.max_num_batched_tokens = 300 * 1024;
    c.gpu_memory_utilization = 0.95;
    c.enable_prefix_caching = false;
    let mut e = Engine::new(c.clone()).unwrap();
    for id in 0..300 {
        e.add(Request::new(id, 1023, 4)).unwrap();
    }
    let prefill = e.step().unwrap();
    assert_eq!(prefill.seqs, 300, "every prompt prefilled in one step");
    let decode = e.step().unwrap();
    assert_eq!(decode.batched_tokens, 300);
    let m = &c.model;
    let linear = 2.0 * m.active_params * 300.0 / (c.peak_flops() * c.flops_efficiency);
    let weights = m.weight_bytes() / (c.gpu.mem_bw * c.bw_efficiency);
    let kv = 300.0 * 1024.0 * m.kv_bytes_per_token() / (c.gpu.mem_bw * c.bw_efficiency);
    assert!(
        linear > weights,
        "300 rows are compute-bound in FP8 on an H200"
    );
    assert!(
        kv > 0.3 * linear,
        "the KV reads are a large share: {kv} s vs {linear} s"
    );
    assert!(
        decode.duration >= linear + kv,
        "{} s < linear {linear} s + KV reads {kv} s",
        decode.duration
    );
    assert!(
        decode.duration < 1.25 * (linear.max(weights) + kv),
        "{} s",
        decode.duration
    );
}
