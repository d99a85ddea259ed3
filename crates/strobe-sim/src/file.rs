//! Model files: an engine in TOML, for custom shapes and for what `strobe sim fit` writes.
//!
//! ```toml
//! model = "llama-3-8b"          # a preset, or a [model] table with every field of `Model`
//! gpu = "h100"                  # a preset, or a [gpu] table with every field of `Gpu`
//! tp = 1                        # every other key is optional: vLLM's defaults
//! max_num_seqs = 256
//! flops_efficiency = 0.6
//! [overheads]
//! per_step = 0.0005
//! ```
//!
//! Unknown keys are refused, so that a misspelt one does not silently keep its default.

use serde::{Deserialize, Serialize};
use std::path::Path;

use crate::engine::{EngineConfig, Overheads};
use crate::shape::{Gpu, Model};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    /// A preset's name or a table: read as a value first so that a bad key in the table is
    /// named (an untagged enum would hide it).
    model: toml::Value,
    gpu: toml::Value,
    tp: Option<u32>,
    max_num_seqs: Option<u32>,
    max_num_batched_tokens: Option<u32>,
    block_size: Option<u32>,
    gpu_memory_utilization: Option<f64>,
    reserved_bytes: Option<f64>,
    flops_efficiency: Option<f64>,
    bw_efficiency: Option<f64>,
    allreduce_bw: Option<f64>,
    allreduce_latency: Option<f64>,
    enable_prefix_caching: Option<bool>,
    enable_chunked_prefill: Option<bool>,
    overheads: Option<Overheads>,
}

impl EngineConfig {
    /// `--sim`'s argument: a model file (`*.toml`) or a preset spec (`MODEL@GPU[xN]`).
    pub fn from_arg(arg: &str) -> Result<EngineConfig, String> {
        if arg.ends_with(".toml") {
            EngineConfig::load(Path::new(arg))
        } else {
            EngineConfig::from_spec(arg)
        }
    }

    /// Reads a model file.
    pub fn load(path: &Path) -> Result<EngineConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read model file {}: {e}", path.display()))?;
        EngineConfig::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses a model file's text.
    pub fn parse(text: &str) -> Result<EngineConfig, String> {
        let f: File = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())?;
        let model = match f.model {
            toml::Value::String(name) => Model::preset(&name).ok_or_else(|| {
                format!("model `{name}` is not a preset; give a [model] table instead")
            })?,
            v => Model::deserialize(v).map_err(|e| format!("[model]: {e}"))?,
        };
        let gpu = match f.gpu {
            toml::Value::String(name) => Gpu::preset(&name).ok_or_else(|| {
                format!("gpu `{name}` is not a preset; give a [gpu] table instead")
            })?,
            v => Gpu::deserialize(v).map_err(|e| format!("[gpu]: {e}"))?,
        };
        let mut c = EngineConfig::new(model, gpu);
        macro_rules! set {
            ($($field:ident),*) => { $( if let Some(v) = f.$field { c.$field = v; } )* };
        }
        set!(
            tp,
            max_num_seqs,
            max_num_batched_tokens,
            block_size,
            gpu_memory_utilization,
            reserved_bytes,
            flops_efficiency,
            bw_efficiency,
            allreduce_bw,
            allreduce_latency,
            enable_prefix_caching,
            enable_chunked_prefill,
            overheads
        );
        c.validate()?;
        Ok(c)
    }

    /// The whole engine as a model file (every key written out), after `header` as comments.
    pub fn to_toml(&self, header: &str) -> String {
        #[derive(Serialize)]
        struct Out<'a> {
            tp: u32,
            max_num_seqs: u32,
            max_num_batched_tokens: u32,
            block_size: u32,
            gpu_memory_utilization: f64,
            reserved_bytes: f64,
            flops_efficiency: f64,
            bw_efficiency: f64,
            allreduce_bw: f64,
            allreduce_latency: f64,
            enable_prefix_caching: bool,
            enable_chunked_prefill: bool,
            model: &'a Model,
            gpu: &'a Gpu,
            overheads: &'a Overheads,
        }
        let body = toml::to_string(&Out {
            tp: self.tp,
            max_num_seqs: self.max_num_seqs,
            max_num_batched_tokens: self.max_num_batched_tokens,
            block_size: self.block_size,
            gpu_memory_utilization: self.gpu_memory_utilization,
            reserved_bytes: self.reserved_bytes,
            flops_efficiency: self.flops_efficiency,
            bw_efficiency: self.bw_efficiency,
            allreduce_bw: self.allreduce_bw,
            allreduce_latency: self.allreduce_latency,
            enable_prefix_caching: self.enable_prefix_caching,
            enable_chunked_prefill: self.enable_chunked_prefill,
            model: &self.model,
            gpu: &self.gpu,
            overheads: &self.overheads,
        })
        .unwrap_or_default();
        let mut out = String::new();
        for line in header.lines() {
            out.push_str("# ");
            out.push_str(line);
            out.push('\n');
        }
        out.push_str(&body);
        out
    }
}
