//! Model and GPU shapes, and presets.
//!
//! Model figures are from each model's `config.json` on the Hugging Face Hub (parameter counts
//! from its model card); GPU figures are NVIDIA's datasheets: dense (not sparse) tensor FLOP/s,
//! memory bandwidth and size, SXM parts where there are several.

/// A decoder-only transformer's shape: what the step time and the KV cache depend on.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    pub name: String,
    /// All parameters.
    pub params: f64,
    /// Parameters each token passes through (all of them for a dense model; the shared part and
    /// the active experts for a mixture of experts).
    pub active_params: f64,
    pub layers: u32,
    pub hidden: u32,
    pub heads: u32,
    pub kv_heads: u32,
    pub head_dim: u32,
    /// Bytes per weight and per KV-cache element (2 for BF16/FP16, 1 for FP8).
    pub dtype_bytes: f64,
    /// A mixture of experts: experts per layer, and how many each token is routed to (0 for a
    /// dense model).
    #[serde(default)]
    pub experts: u32,
    #[serde(default)]
    pub experts_per_token: u32,
}

impl Model {
    /// Bytes of weights.
    pub fn weight_bytes(&self) -> f64 {
        self.params * self.dtype_bytes
    }

    /// Bytes of weights a step of `tokens` tokens reads: all of a dense model's; of a mixture of
    /// experts, the shared part and the experts the tokens are routed to (each token picks
    /// `experts_per_token` of `experts` at random, so a batch of T touches a share
    /// 1 − (1 − k/E)^T of them).
    pub fn weight_read_bytes(&self, tokens: u32) -> f64 {
        let (e, k) = (f64::from(self.experts), f64::from(self.experts_per_token));
        if self.experts == 0 || self.experts_per_token == 0 || e <= k {
            return self.weight_bytes();
        }
        let per_expert = (self.params - self.active_params) / (e - k);
        let shared = self.active_params - k * per_expert;
        let touched = 1.0 - (1.0 - k / e).powf(f64::from(tokens.max(1)));
        (shared + e * per_expert * touched) * self.dtype_bytes
    }

    /// The model quantised to FP8, weights and KV cache (as TensorRT-LLM's and vLLM's FP8
    /// checkpoints run): one byte per element.
    pub fn in_fp8(mut self) -> Model {
        self.dtype_bytes = 1.0;
        self
    }

    /// KV-cache bytes one token takes, all layers (keys and values).
    pub fn kv_bytes_per_token(&self) -> f64 {
        2.0 * f64::from(self.layers)
            * f64::from(self.kv_heads)
            * f64::from(self.head_dim)
            * self.dtype_bytes
    }

    fn dense(
        name: &str,
        params: f64,
        layers: u32,
        hidden: u32,
        heads: u32,
        kv_heads: u32,
        head_dim: u32,
    ) -> Model {
        Model {
            name: name.to_owned(),
            params,
            active_params: params,
            layers,
            hidden,
            heads,
            kv_heads,
            head_dim,
            dtype_bytes: 2.0,
            experts: 0,
            experts_per_token: 0,
        }
    }

    /// The presets, in BF16.
    pub fn presets() -> Vec<Model> {
        vec![
            // meta-llama/Meta-Llama-3-8B
            Model::dense("llama-3-8b", 8.03e9, 32, 4096, 32, 8, 128),
            // meta-llama/Llama-3.1-70B
            Model::dense("llama-3.1-70b", 70.6e9, 80, 8192, 64, 8, 128),
            // meta-llama/Llama-2-70b-hf
            Model::dense("llama-2-70b", 69.0e9, 80, 8192, 64, 8, 128),
            // Qwen/Qwen2.5-7B
            Model::dense("qwen2.5-7b", 7.62e9, 28, 3584, 28, 4, 128),
            // Qwen/Qwen2.5-0.5B
            Model::dense("qwen2.5-0.5b", 0.49e9, 24, 896, 14, 2, 64),
            // HuggingFaceTB/SmolLM2-135M
            Model::dense("smollm2-135m", 0.135e9, 30, 576, 9, 3, 64),
            // mistralai/Mixtral-8x7B-v0.1: 8 experts, 2 per token; 46.7B parameters, 12.9B
            // active (its model card).
            Model {
                active_params: 12.9e9,
                experts: 8,
                experts_per_token: 2,
                ..Model::dense("mixtral-8x7b", 46.7e9, 32, 4096, 32, 8, 128)
            },
        ]
    }

    pub fn preset(name: &str) -> Option<Model> {
        Model::presets()
            .into_iter()
            .find(|m| m.name.eq_ignore_ascii_case(name))
    }
}

/// One GPU.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gpu {
    pub name: String,
    /// Dense BF16 (FP16 on the T4) tensor FLOP/s.
    pub flops: f64,
    /// Dense FP8 tensor FLOP/s, where the GPU has FP8.
    pub flops_fp8: Option<f64>,
    /// Memory bandwidth, bytes/s.
    pub mem_bw: f64,
    /// Memory, bytes.
    pub mem_bytes: f64,
}

impl Gpu {
    pub fn presets() -> Vec<Gpu> {
        let g = |name: &str, tf: f64, fp8: Option<f64>, tbs: f64, gb: f64| Gpu {
            name: name.to_owned(),
            flops: tf * 1e12,
            flops_fp8: fp8.map(|f| f * 1e12),
            mem_bw: tbs * 1e12,
            mem_bytes: gb * 1e9,
        };
        vec![
            g("t4", 65.0, None, 0.320, 16.0),
            g("a10", 125.0, None, 0.600, 24.0),
            g("l40s", 362.05, Some(733.0), 0.864, 48.0),
            g("a100-40gb", 312.0, None, 1.555, 40.0),
            g("a100-80gb", 312.0, None, 2.039, 80.0),
            g("h100", 989.4, Some(1978.9), 3.35, 80.0),
            g("h200", 989.4, Some(1978.9), 4.8, 141.0),
            // Not a GPU: nominal upper bounds for a small x86 server with AMX (BF16 tiles, about
            // 2 TFLOP/s for a core or two; 100 GB/s of DRAM), for fitting to an engine on a CPU
            // such as the test tier's vLLM; the fit's efficiencies say how much of them it gets.
            g("cpu", 2.0, None, 0.1, 24.0),
        ]
    }

    pub fn preset(name: &str) -> Option<Gpu> {
        Gpu::presets()
            .into_iter()
            .find(|g| g.name.eq_ignore_ascii_case(name))
    }
}
