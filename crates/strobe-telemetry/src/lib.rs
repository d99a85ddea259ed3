//! What the server side says during a run.
//!
//! - [`scrape`]: polls a Prometheus `/metrics` endpoint at an interval and maps the known names of
//!   vLLM, SGLang and TGI (and NVIDIA's DCGM exporter) onto canonical ones: running and waiting
//!   requests, KV-cache usage, prefix-cache hits, preemptions, server-side latency histograms.
//! - [`gpu`]: samples local GPUs through NVML, loaded at run time (no GPU, no library: the report
//!   says so and the run goes on).
//! - [`launch`]: starts an engine command in its own process group, waits until it serves, records
//!   its version, command line and log, and always stops it.
//!
//! It computes no client metrics: those come from request records only.

pub mod gpu;
pub mod launch;
pub mod mapping;
pub mod prometheus;
pub mod scrape;
