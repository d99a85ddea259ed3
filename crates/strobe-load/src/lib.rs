//! When requests are sent.
//!
//! A [`LoadPlan`] says how: a closed loop of N concurrent streams, or an open loop at a rate with
//! Poisson, constant or gamma (bursty) arrivals, optionally capped in concurrency (the queueing the
//! cap causes is recorded as queue delay, never hidden). The [`run`] function drives a pool of
//! workers, each owning one keep-alive connection, and streams one `RequestRecord` per request to a
//! channel as requests finish. Cancellation (Ctrl-C) stops dispatching, drains in-flight requests
//! within a bound, then cancels the rest, still recording them.
//!
//! It formats no output and computes no statistics.

mod arrival;
mod cpu;
mod runner;

pub use arrival::{Arrival, ArrivalProcess};
pub use cpu::process_cpu_seconds;
pub use runner::{run, LoadMode, LoadPlan, LoadResult, Progress, StopSignal, Stopper};
