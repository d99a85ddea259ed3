//! The engine: continuous batching with chunked prefill, a paged KV cache and preemption by
//! recompute, one step at a time.
//!
//! Each step, as vLLM's scheduler does: the running sequences, oldest first, take what they need
//! (one token each when decoding, a chunk of their prompt when prefilling) from a budget of
//! `max_num_batched_tokens`; a sequence that needs a KV block when none is free preempts the
//! newest running sequence (its blocks are freed; it waits at the front of the queue and later
//! recomputes its prompt and what it had generated); if no one was preempted, waiting sequences
//! are admitted first come, first served while the budget, `max_num_seqs` and free blocks allow.
//! With `enable_chunked_prefill` off (vLLM's V0 default for contexts up to 32K), waiting prompts
//! are admitted first, each whole, and a step that admits any runs no decode.
//!
//! A step runs two kinds of kernel, one after the other, and its time is their sum: the linear
//! layers take the larger of their compute time (2 FLOPs per active parameter per token) and
//! their memory time (the weights read once), and attention the larger of its compute time
//! (over each token's context) and its memory time (the KV cache read for every context token
//! and written for every new one), each at an efficiency of the GPU's peak; plus
//! tensor-parallel all-reduces and the overheads of [`Overheads`]. "The larger" is a smooth
//! maximum ([`ROOFLINE_SMOOTHING`]): where the two are close, kernels neither stream at full
//! bandwidth nor compute at full rate. The roofline alone is known to be 20–60%
//! too fast against a real engine; the overheads are what fitting to one sets.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use crate::shape::{Gpu, Model};

/// The exponent of the smooth maximum of compute and memory time, `(cᵖ + mᵖ)^(1/p)`: the larger
/// of the two far from the ridge, 2^(1/p) = 1.19 times it at the ridge. Measured on the lent
/// H100 (`scripts/gpu_gemm_rows.py`, `docs/gpu-run/gemm-rows-h100.txt`): a layer's four
/// projections of Llama-2-70B in FP8 at 16–4,096 rows took 1.04–1.16 times the plain maximum,
/// 1.13–1.16 at 192–384 rows where the two meet; with p = 4, 1.00–1.10.
pub const ROOFLINE_SMOOTHING: f64 = 4.0;

/// Times the roofline does not see, in seconds.
///
/// The defaults are a published fit of this kind of model to vLLM on H100s, not guesses and not
/// tuned to any figure strobe checks itself against: BLIS's "trained roofline" (the IBM/llm-d
/// inference simulator, github.com/inference-sim/inference-sim, PR #616: NNLS over 137,000
/// requests of Llama-2-7B, Llama-2-70B, Mixtral-8x7B and CodeLlama-34B on vLLM, 7% error on
/// step time): 43.5 µs per layer and 48.8 µs per request in the batch each step, nothing per
/// step beyond those, 9.3 ms per request before it reaches the engine, 1.85 ms after its last
/// token and 1.7 µs per output token. `strobe sim fit` replaces them with a fit to the engine
/// at hand.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overheads {
    /// Each step (scheduling, launching, sampling).
    pub per_step: f64,
    /// Each layer of each step (kernel launches).
    pub per_layer: f64,
    /// Each sequence in a step's batch (its metadata, its sampling).
    pub per_seq: f64,
    /// Each output token (detokenising, streaming it out).
    pub per_output_token: f64,
    /// Each request at the API server before it reaches the engine (parsing, tokenising).
    pub per_request_api: f64,
    /// Each request after its last token, before its response ends (detokenising the rest,
    /// freeing it, the final chunk).
    #[serde(default)]
    pub per_request_finish: f64,
}

impl Default for Overheads {
    fn default() -> Self {
        Overheads {
            per_step: 0.0,
            per_layer: 43.5e-6,
            per_seq: 48.8e-6,
            per_output_token: 1.7e-6,
            per_request_api: 9.3e-3,
            per_request_finish: 1.85e-3,
        }
    }
}

impl Overheads {
    /// The named sets, for `--sim-overheads`.
    pub const PROFILES: [&'static str; 3] = ["vllm", "vllm-2024", "none"];

    /// A named set:
    /// - `vllm`: the default (BLIS's fit, above: vLLM as of 2026, with its asynchronous
    ///   scheduling and output processing);
    /// - `vllm-2024`: the same plus 4 ms per step, the GPU's idle gap between decode steps that
    ///   vLLM's own traces showed while its CPU scheduled, gathered outputs and prepared inputs
    ///   (RFC #6854, July 2024: Llama-3-8B on an H100, vLLM 0.5; "5–13 ms" over a run, 4 ms per
    ///   step in the traces), the vLLM that seed 003's published figures came from, before
    ///   multi-step scheduling and asynchronous output processing removed it (v0.6);
    /// - `none`: the roofline alone.
    pub fn profile(name: &str) -> Option<Overheads> {
        match name.to_ascii_lowercase().as_str() {
            "vllm" => Some(Overheads::default()),
            "vllm-2024" => Some(Overheads {
                per_step: 4e-3,
                ..Overheads::default()
            }),
            "none" => Some(Overheads::none()),
            _ => None,
        }
    }

    /// None at all: the roofline alone.
    pub fn none() -> Overheads {
        Overheads {
            per_step: 0.0,
            per_layer: 0.0,
            per_seq: 0.0,
            per_output_token: 0.0,
            per_request_api: 0.0,
            per_request_finish: 0.0,
        }
    }
}

/// An engine: a model on `tp` GPUs and the scheduler's settings.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    pub model: Model,
    pub gpu: Gpu,
    /// Tensor parallelism: GPUs the model is split over.
    pub tp: u32,
    pub max_num_seqs: u32,
    pub max_num_batched_tokens: u32,
    /// Tokens per KV-cache block.
    pub block_size: u32,
    /// Share of each GPU's memory the engine may use (weights, activations, KV cache).
    pub gpu_memory_utilization: f64,
    /// Bytes per GPU kept for activations and the runtime, not the KV cache.
    pub reserved_bytes: f64,
    /// Share of the GPU's peak FLOP/s a step reaches.
    pub flops_efficiency: f64,
    /// Share of the GPU's peak memory bandwidth a step reaches.
    pub bw_efficiency: f64,
    /// All-reduce bus bandwidth per GPU (bytes/s) and latency per all-reduce (s), for `tp > 1`.
    pub allreduce_bw: f64,
    pub allreduce_latency: f64,
    /// Keep the KV blocks of full prompt blocks after their request ends and reuse them for a
    /// later prompt that starts with the same tokens (vLLM's automatic prefix caching, on by
    /// default since its V1 engine).
    #[serde(default = "yes")]
    pub enable_prefix_caching: bool,
    /// Batch prompt chunks with decodes (vLLM's V1 engine, always). Off: vLLM's V0 scheduler
    /// without chunked prefill (its default for models of up to 32K context until 2025): waiting
    /// prompts go first, each whole, in steps of their own, and running sequences decode only in
    /// steps with no prompt to admit.
    #[serde(default = "yes")]
    pub enable_chunked_prefill: bool,
    pub overheads: Overheads,
}

fn yes() -> bool {
    true
}

impl EngineConfig {
    /// vLLM's defaults (256 sequences, 8,192 batched tokens, 16-token blocks, 90% of memory) on
    /// one GPU.
    pub fn new(model: Model, gpu: Gpu) -> EngineConfig {
        EngineConfig {
            model,
            gpu,
            tp: 1,
            max_num_seqs: 256,
            max_num_batched_tokens: 8192,
            block_size: 16,
            gpu_memory_utilization: 0.9,
            reserved_bytes: 1e9,
            flops_efficiency: 0.65,
            bw_efficiency: 0.89,
            allreduce_bw: 450e9,
            allreduce_latency: 10e-6,
            enable_prefix_caching: true,
            enable_chunked_prefill: true,
            overheads: Overheads::default(),
        }
    }

    /// An engine from `MODEL@GPU` or `MODEL@GPUxN` (N GPUs, tensor parallel), named by presets,
    /// e.g. `llama-3-8b@h100` or `llama-2-70b@h200x8`.
    pub fn from_spec(spec: &str) -> Result<EngineConfig, String> {
        let names = |v: Vec<String>| v.join(", ");
        let (model, gpu) = spec.split_once('@').ok_or_else(|| {
            format!("`{spec}`: expected MODEL@GPU, e.g. llama-3-8b@h100 (or llama-2-70b@h200x8 for 8 GPUs)")
        })?;
        let (gpu, tp) = match gpu.rsplit_once(['x', 'X']) {
            Some((g, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                let tp: u32 =
                    n.parse().ok().filter(|&t| t >= 1).ok_or_else(|| {
                        format!("`{spec}`: the GPU count `{n}` must be at least 1")
                    })?;
                (g, tp)
            }
            _ => (gpu, 1),
        };
        let (model, fp8) = match model.rsplit_once(':') {
            Some((m, q)) if q.eq_ignore_ascii_case("fp8") => (m, true),
            Some((m, q)) if q.eq_ignore_ascii_case("bf16") || q.eq_ignore_ascii_case("fp16") => {
                (m, false)
            }
            Some((_, q)) => {
                return Err(format!(
                    "`{spec}`: unknown data type `{q}`; say `:fp8` (weights and KV cache in FP8) or leave it out (BF16)"
                ))
            }
            None => (model, false),
        };
        let m = Model::preset(model).ok_or_else(|| {
            format!(
                "`{spec}`: no model preset `{model}`; the presets are {}",
                names(Model::presets().iter().map(|m| m.name.clone()).collect())
            )
        })?;
        let g = Gpu::preset(gpu).ok_or_else(|| {
            format!(
                "`{spec}`: no GPU preset `{gpu}`; the presets are {}",
                names(Gpu::presets().iter().map(|g| g.name.clone()).collect())
            )
        })?;
        let on_cpu = g.name == "cpu";
        if fp8 && g.flops_fp8.is_none() {
            return Err(format!(
                "`{spec}`: the {} has no FP8 tensor cores; leave out `:fp8`",
                g.name
            ));
        }
        let m = if fp8 { m.in_fp8() } else { m };
        let mut config = EngineConfig::new(m, g);
        config.tp = tp;
        if on_cpu {
            // vLLM's own defaults on a CPU (its API server): 2,048 batched tokens, 128 sequences.
            config.max_num_batched_tokens = 2048;
            config.max_num_seqs = 128;
        }
        config.kv_blocks()?;
        Ok(config)
    }

    /// Checks every value a step time or the cache depends on: counts at least 1, rates above
    /// 0, overheads finite and not negative, shares in (0, 1]. Says which value and how to fix
    /// it.
    pub fn validate(&self) -> Result<(), String> {
        let counts = [
            ("tp", self.tp),
            ("max_num_seqs", self.max_num_seqs),
            ("max_num_batched_tokens", self.max_num_batched_tokens),
            ("block_size", self.block_size),
            ("model.layers", self.model.layers),
            ("model.heads", self.model.heads),
            ("model.kv_heads", self.model.kv_heads),
            ("model.head_dim", self.model.head_dim),
        ];
        for (name, v) in counts {
            if v == 0 {
                return Err(format!("{name} must be at least 1"));
            }
        }
        let positive = [
            ("model.params", self.model.params),
            ("model.active_params", self.model.active_params),
            ("model.dtype_bytes", self.model.dtype_bytes),
            ("gpu.flops", self.gpu.flops),
            ("gpu.mem_bw", self.gpu.mem_bw),
            ("gpu.mem_bytes", self.gpu.mem_bytes),
            ("allreduce_bw", self.allreduce_bw),
        ];
        for (name, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("{name} must be a positive number, got {v}"));
            }
        }
        let o = &self.overheads;
        let times = [
            ("reserved_bytes", self.reserved_bytes),
            ("allreduce_latency", self.allreduce_latency),
            ("overheads.per_step", o.per_step),
            ("overheads.per_layer", o.per_layer),
            ("overheads.per_seq", o.per_seq),
            ("overheads.per_output_token", o.per_output_token),
            ("overheads.per_request_api", o.per_request_api),
            ("overheads.per_request_finish", o.per_request_finish),
        ];
        for (name, v) in times {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{name} must be 0 or more, got {v}"));
            }
        }
        for (name, v) in [
            ("flops_efficiency", self.flops_efficiency),
            ("bw_efficiency", self.bw_efficiency),
            ("gpu_memory_utilization", self.gpu_memory_utilization),
        ] {
            if !(v > 0.0 && v <= 1.0) {
                return Err(format!("{name} must be above 0 and at most 1, got {v}"));
            }
        }
        if self.model.active_params > self.model.params {
            return Err("model.active_params cannot exceed model.params".into());
        }
        self.kv_blocks().map(|_| ())
    }

    /// `llama-3-8b on 1 × h100`, `llama-2-70b (FP8) on 8 × h200`.
    pub fn describe(&self) -> String {
        let dtype = if self.model.dtype_bytes <= 1.0 {
            " (FP8)"
        } else {
            ""
        };
        format!(
            "{}{dtype} on {} × {}",
            self.model.name, self.tp, self.gpu.name
        )
    }

    /// Peak tensor FLOP/s of one GPU for the model's data type: FP8 for a model of one byte per
    /// element where the GPU has it, else BF16.
    pub fn peak_flops(&self) -> f64 {
        if self.model.dtype_bytes <= 1.0 {
            self.gpu.flops_fp8.unwrap_or(self.gpu.flops)
        } else {
            self.gpu.flops
        }
    }

    /// KV-cache blocks: the memory each GPU has left after its share of the weights and the
    /// reserve, across the `tp` GPUs (each holds its share of the KV heads).
    pub fn kv_blocks(&self) -> Result<u64, String> {
        let tp = f64::from(self.tp.max(1));
        let free = self.gpu.mem_bytes * self.gpu_memory_utilization
            - self.model.weight_bytes() / tp
            - self.reserved_bytes;
        let per_block = f64::from(self.block_size) * self.model.kv_bytes_per_token() / tp;
        let blocks = (free / per_block).floor();
        if blocks < 1.0 {
            return Err(format!(
                "{} does not fit on {} × {} at {:.0}% memory: {:.1} GB of weights per GPU, {:.1} GB usable; \
                 raise tp or gpu_memory_utilization",
                self.model.name,
                self.tp,
                self.gpu.name,
                self.gpu_memory_utilization * 100.0,
                self.model.weight_bytes() / tp / 1e9,
                self.gpu.mem_bytes * self.gpu_memory_utilization / 1e9
            ));
        }
        Ok(blocks as u64)
    }

    fn blocks_for(&self, tokens: u32) -> u32 {
        tokens.div_ceil(self.block_size)
    }
}

/// A request as the engine sees it: prompt and output lengths in tokens, and what its prompt's
/// blocks hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub id: u64,
    pub prompt: u32,
    pub output: u32,
    /// One hash per full block of the prompt, each covering every token up to the block's end
    /// ([`block_hashes`]); two prompts share a cached block only where their hashes agree. Empty:
    /// nothing to share.
    pub prefix: Arc<[u64]>,
}

impl Request {
    /// A request whose prompt shares nothing.
    pub fn new(id: u64, prompt: u32, output: u32) -> Request {
        Request {
            id,
            prompt,
            output,
            prefix: Arc::from([]),
        }
    }
}

/// The chained hashes of a prompt's full blocks of `block_size` tokens, as vLLM's prefix cache
/// keys them: block `i`'s hash covers tokens `0..(i + 1) × block_size`. FNV-1a over each
/// token's text, chained.
pub fn block_hashes<'a>(tokens: impl IntoIterator<Item = &'a str>, block_size: u32) -> Vec<u64> {
    chained(tokens.into_iter().map(str::as_bytes), block_size)
}

/// [`block_hashes`] of a tokenizer's token ids.
pub fn block_hashes_of_ids(ids: &[u32], block_size: u32) -> Vec<u64> {
    let bytes: Vec<[u8; 4]> = ids.iter().map(|id| id.to_le_bytes()).collect();
    chained(bytes.iter().map(|b| &b[..]), block_size)
}

fn chained<'a>(tokens: impl Iterator<Item = &'a [u8]>, block_size: u32) -> Vec<u64> {
    let mut out = Vec::new();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut in_block = 0;
    for t in tokens {
        for &b in t.iter().chain(&[0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        in_block += 1;
        if in_block == block_size {
            out.push(h);
            in_block = 0;
        }
    }
    out
}

/// What happened to a request in a step, at its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    FirstToken(u64),
    Token(u64),
    Finished(u64),
    Preempted(u64),
}

/// One step: how long it took and what it did.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// Seconds.
    pub duration: f64,
    pub compute: f64,
    pub memory: f64,
    pub batched_tokens: u32,
    pub seqs: u32,
    pub events: Vec<Event>,
}

#[derive(Clone, Debug)]
struct Seq {
    req: Request,
    /// Tokens whose KV is in the cache.
    computed: u32,
    generated: u32,
    /// Blocks it holds: the shared ones below and its own.
    blocks: u32,
    /// The prefix-cache blocks it holds a reference on (its first `shared.len()` blocks).
    shared: Vec<u64>,
}

impl Seq {
    /// Tokens to compute before the next output token: the prompt and every token generated so
    /// far, less what is in the cache.
    fn todo(&self) -> u32 {
        self.req.prompt + self.generated - self.computed
    }
}

/// A block in the prefix cache.
#[derive(Clone, Copy, Debug)]
struct Cached {
    /// Running sequences holding it; 0: idle, evictable (least recently used first).
    refs: u32,
    /// When it last became idle (a counter), its key in `idle`.
    stamp: u64,
}

/// The engine's state.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    total_blocks: u64,
    /// Blocks holding nothing. Idle cached blocks are not in it, but can be taken (evicted).
    free_blocks: u64,
    cache: HashMap<u64, Cached>,
    /// Idle cached blocks by when they became idle.
    idle: BTreeMap<u64, u64>,
    stamp: u64,
    /// Prompt tokens looked up in the prefix cache, and found (vLLM's counters).
    pub prefix_queries: u64,
    pub prefix_hits: u64,
    waiting: VecDeque<Seq>,
    /// Oldest admitted first.
    running: Vec<Seq>,
    pub preemptions: u64,
    pub steps: u64,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Result<Engine, String> {
        config.validate()?;
        let total_blocks = config.kv_blocks()?;
        Ok(Engine {
            config,
            total_blocks,
            free_blocks: total_blocks,
            cache: HashMap::new(),
            idle: BTreeMap::new(),
            stamp: 0,
            prefix_queries: 0,
            prefix_hits: 0,
            waiting: VecDeque::new(),
            running: Vec::new(),
            preemptions: 0,
            steps: 0,
        })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Queues a request. Refused if it could never fit in the KV cache alone, or asks for no
    /// output.
    pub fn add(&mut self, req: Request) -> Result<(), String> {
        if req.output == 0 {
            return Err(format!("request {}: an output of 0 tokens", req.id));
        }
        self.fits(req.prompt, req.output)
            .map_err(|e| format!("request {}: {e}", req.id))?;
        self.waiting.push_back(Seq {
            req,
            computed: 0,
            generated: 0,
            blocks: 0,
            shared: Vec::new(),
        });
        Ok(())
    }

    /// Drops a request wherever it is (the client went away), freeing its KV blocks. False when
    /// the engine does not have it (never added, or already finished).
    pub fn abort(&mut self, id: u64) -> bool {
        if let Some(i) = self.running.iter().position(|s| s.req.id == id) {
            let seq = self.running.remove(i);
            self.release(seq.blocks, seq.shared);
            return true;
        }
        if let Some(i) = self.waiting.iter().position(|s| s.req.id == id) {
            let seq = self.waiting.remove(i).expect("position is in range");
            self.release(seq.blocks, seq.shared);
            return true;
        }
        false
    }

    /// Blocks that can be given out: free ones, and idle cached ones (evicted when taken).
    fn available(&self) -> u64 {
        self.free_blocks + self.idle.len() as u64
    }

    /// Takes `n` blocks (at most [`Engine::available`]): free ones first, then idle cached
    /// ones, least recently used first, which leave the cache.
    fn take(&mut self, n: u32) {
        let n = u64::from(n);
        let from_free = n.min(self.free_blocks);
        self.free_blocks -= from_free;
        for _ in from_free..n {
            let (_, h) = self.idle.pop_first().expect("counted as available");
            self.cache.remove(&h);
        }
    }

    /// Gives back a sequence's `blocks`: its own become free; the cached ones it shared lose a
    /// reference, and stay cached, idle, when none is left.
    fn release(&mut self, blocks: u32, shared: Vec<u64>) {
        self.free_blocks += u64::from(blocks) - shared.len() as u64;
        for h in shared {
            if let Some(c) = self.cache.get_mut(&h) {
                c.refs -= 1;
                if c.refs == 0 {
                    self.stamp += 1;
                    c.stamp = self.stamp;
                    self.idle.insert(self.stamp, h);
                }
            }
        }
    }

    /// How many of `req`'s first prompt blocks are cached: the longest run of its hashes in the
    /// cache, leaving at least one prompt token to compute (vLLM recomputes the last one).
    fn cached_prefix(&self, req: &Request) -> usize {
        if !self.config.enable_prefix_caching {
            return 0;
        }
        let most = (req.prompt.saturating_sub(1) / self.config.block_size) as usize;
        req.prefix
            .iter()
            .take(most)
            .take_while(|h| self.cache.contains_key(h))
            .count()
    }

    /// Takes a reference on cached blocks (idle ones stop being evictable).
    fn acquire(&mut self, hashes: &[u64]) {
        for h in hashes {
            let c = self.cache.get_mut(h).expect("looked up");
            if c.refs == 0 {
                self.idle.remove(&c.stamp);
            }
            c.refs += 1;
        }
    }

    /// Puts the prompt blocks `seq` has finished computing into the cache, as far as they run on
    /// from the ones it shares (a block another sequence cached first stays its own).
    fn register(cache: &mut HashMap<u64, Cached>, seq: &mut Seq, block_size: u32) {
        let full = (seq.computed.min(seq.req.prompt) / block_size) as usize;
        while seq.shared.len() < full.min(seq.req.prefix.len()) {
            let h = seq.req.prefix[seq.shared.len()];
            if cache.contains_key(&h) {
                break;
            }
            cache.insert(h, Cached { refs: 1, stamp: 0 });
            seq.shared.push(h);
        }
    }

    /// Whether a request of these lengths could ever be served: its tokens must fit in the
    /// whole KV cache alone.
    pub fn fits(&self, prompt: u32, output: u32) -> Result<(), String> {
        let need = u64::from(self.config.blocks_for(prompt.saturating_add(output)));
        if need > self.total_blocks {
            return Err(format!(
                "{} tokens need {need} KV-cache blocks of {}; the simulated cache has {}",
                u64::from(prompt) + u64::from(output),
                self.config.block_size,
                self.total_blocks
            ));
        }
        Ok(())
    }

    pub fn running(&self) -> usize {
        self.running.len()
    }

    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    pub fn kv_blocks(&self) -> u64 {
        self.total_blocks
    }

    /// Share of the KV cache in use, 0–1 (idle cached blocks count as free, as vLLM counts them).
    pub fn kv_usage(&self) -> f64 {
        1.0 - self.available() as f64 / self.total_blocks as f64
    }

    pub fn is_idle(&self) -> bool {
        self.running.is_empty() && self.waiting.is_empty()
    }

    /// Admits waiting sequences, first come first served, while the token budget,
    /// `max_num_seqs` and free blocks allow: each with what fits of its prompt, or (`whole`) only
    /// with all of it (a prompt longer than the whole budget goes alone).
    fn admit(&mut self, budget: &mut u32, scheduled: &mut Vec<(usize, u32)>, whole: bool) {
        let full = self.config.max_num_batched_tokens;
        while *budget > 0 && self.running.len() < self.config.max_num_seqs as usize {
            let Some(seq) = self.waiting.front() else {
                break;
            };
            // A sequence holding no blocks (new, or preempted) first takes what the prefix
            // cache has of its prompt.
            let hits = self.cached_prefix(&seq.req);
            let bs = self.config.block_size;
            let computed = seq.computed.max(hits as u32 * bs);
            let todo = seq.req.prompt + seq.generated - computed;
            if whole && todo > *budget && !(scheduled.is_empty() && *budget == full) {
                break;
            }
            let need = if whole { todo } else { todo.min(*budget) };
            let want = self.config.blocks_for(computed + need) - hits as u32;
            let hashes = seq.req.prefix[..hits].to_vec();
            let idle_hits = hashes.iter().filter(|h| self.cache[*h].refs == 0).count();
            if u64::from(want) + idle_hits as u64 > self.available() {
                break;
            }
            let mut seq = self.waiting.pop_front().expect("front exists");
            if self.config.enable_prefix_caching {
                self.prefix_queries += u64::from(seq.req.prompt);
                self.prefix_hits += u64::from(computed);
            }
            self.acquire(&hashes);
            self.take(want);
            seq.computed = computed;
            seq.shared = hashes;
            seq.blocks = hits as u32 + want;
            self.running.push(seq);
            scheduled.push((self.running.len() - 1, need));
            *budget = budget.saturating_sub(need);
        }
    }

    /// Runs one step; `None` when there is nothing to do.
    pub fn step(&mut self) -> Option<Step> {
        if self.is_idle() {
            return None;
        }
        let mut events = Vec::new();
        let mut budget = self.config.max_num_batched_tokens;
        // (index in `running`, tokens computed this step)
        let mut scheduled: Vec<(usize, u32)> = Vec::new();
        let chunked = self.config.enable_chunked_prefill;
        if !chunked {
            // Prompts first, whole, in a step of their own.
            self.admit(&mut budget, &mut scheduled, true);
        }
        let decoding = scheduled.is_empty();
        let mut preempted = false;
        let mut i = 0;
        while decoding && i < self.running.len() && budget > 0 {
            let need = self.running[i].todo().min(budget);
            let want = self
                .config
                .blocks_for(self.running[i].computed + need)
                .saturating_sub(self.running[i].blocks);
            let mut self_preempted = false;
            while u64::from(want) > self.available() {
                // The newest running sequence gives its blocks back; it may be this one.
                let victim_is_self = self.running.len() - 1 == i;
                let mut victim = self.running.pop().expect("running is not empty");
                self.release(victim.blocks, std::mem::take(&mut victim.shared));
                victim.blocks = 0;
                victim.computed = 0;
                events.push(Event::Preempted(victim.req.id));
                self.waiting.push_front(victim);
                self.preemptions += 1;
                preempted = true;
                if victim_is_self {
                    self_preempted = true;
                    break;
                }
            }
            if self_preempted {
                break;
            }
            self.take(want);
            self.running[i].blocks += want;
            scheduled.push((i, need));
            budget -= need;
            i += 1;
        }
        if chunked && !preempted {
            self.admit(&mut budget, &mut scheduled, false);
        }
        if scheduled.is_empty() {
            // Everything preempted itself away (only possible with a cache far too small for the
            // batch): the next step starts over from the queue.
            return Some(self.timed(Vec::new(), 0, events));
        }
        let emitted = scheduled
            .iter()
            .filter(|&&(i, need)| need == self.running[i].todo())
            .count() as u32;
        let step = self.timed(
            scheduled
                .iter()
                .map(|&(i, need)| (self.running[i].computed, need))
                .collect(),
            emitted,
            Vec::new(),
        );
        let caching = self.config.enable_prefix_caching;
        let bs = self.config.block_size;
        for &(i, need) in &scheduled {
            let seq = &mut self.running[i];
            let finishes_chunk = need == seq.todo();
            seq.computed += need;
            if caching {
                Engine::register(&mut self.cache, seq, bs);
            }
            if finishes_chunk {
                seq.generated += 1;
                events.push(if seq.generated == 1 {
                    Event::FirstToken(seq.req.id)
                } else {
                    Event::Token(seq.req.id)
                });
                if seq.generated == seq.req.output {
                    events.push(Event::Finished(seq.req.id));
                }
            }
        }
        let (done, left): (Vec<Seq>, Vec<Seq>) = std::mem::take(&mut self.running)
            .into_iter()
            .partition(|s| s.generated == s.req.output);
        self.running = left;
        for s in done {
            self.release(s.blocks, s.shared);
        }
        self.steps += 1;
        Some(Step { events, ..step })
    }

    /// The time of a step that computes `(context before, new tokens)` for each sequence and
    /// emits `emitted` output tokens.
    fn timed(&self, batch: Vec<(u32, u32)>, emitted: u32, events: Vec<Event>) -> Step {
        let c = &self.config;
        let m = &c.model;
        let tp = f64::from(c.tp.max(1));
        let tokens: u32 = batch.iter().map(|&(_, n)| n).sum();
        let t = f64::from(tokens);
        // Attention: each new token attends to the context before it and the chunk's earlier
        // tokens (on average half the chunk).
        let attended: f64 = batch
            .iter()
            .map(|&(ctx, n)| f64::from(n) * (f64::from(ctx) + f64::from(n) / 2.0))
            .sum();
        let attn_flops =
            4.0 * f64::from(m.layers) * f64::from(m.heads) * f64::from(m.head_dim) * attended;
        let flop_rate = tp * c.peak_flops() * c.flops_efficiency;
        let byte_rate = tp * c.gpu.mem_bw * c.bw_efficiency;
        // The linear layers (their weights read once, shared by every token of the step) and
        // attention (each sequence's own keys and values read) are separate kernels, one after
        // the other: each is bound by its own compute or memory, and their times add. One
        // roofline over the sum would hide a large batch's KV reads under the linear layers'
        // compute, which no kernel does.
        let context: f64 = batch.iter().map(|&(ctx, _)| f64::from(ctx)).sum();
        let (weights, kv) = if batch.is_empty() {
            (0.0, 0.0)
        } else {
            (
                m.weight_read_bytes(tokens),
                (context + t) * m.kv_bytes_per_token(),
            )
        };
        let linear = (2.0 * m.active_params * t / flop_rate, weights / byte_rate);
        let attention = (attn_flops / flop_rate, kv / byte_rate);
        let (compute, memory) = (linear.0 + attention.0, linear.1 + attention.1);
        let allreduce = if c.tp > 1 && tokens > 0 {
            let per = 2.0 * t * f64::from(m.hidden) * m.dtype_bytes * (tp - 1.0) / tp;
            2.0 * f64::from(m.layers) * (per / c.allreduce_bw + c.allreduce_latency)
        } else {
            0.0
        };
        let o = &c.overheads;
        let overhead = o.per_step
            + o.per_layer * f64::from(m.layers)
            + o.per_seq * batch.len() as f64
            + o.per_output_token * f64::from(emitted);
        Step {
            duration: smooth_max(linear.0, linear.1)
                + smooth_max(attention.0, attention.1)
                + allreduce
                + overhead,
            compute,
            memory,
            batched_tokens: tokens,
            seqs: batch.len() as u32,
            events,
        }
    }
}

/// `(aᵖ + bᵖ)^(1/p)` with p = [`ROOFLINE_SMOOTHING`], computed without overflow.
fn smooth_max(a: f64, b: f64) -> f64 {
    let hi = a.max(b);
    if hi <= 0.0 {
        return 0.0;
    }
    let p = ROOFLINE_SMOOTHING;
    hi * (1.0 + (a.min(b) / hi).powf(p)).powf(1.0 / p)
}
