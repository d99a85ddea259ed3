//! When requests are sent.
//!
//! A [`LoadPlan`] says how: a closed loop of N concurrent streams, or an open loop at a rate with
//! Poisson, constant or gamma (bursty) arrivals, optionally capped in concurrency (the queueing the
//! cap causes is recorded as queue delay, never hidden). The [`run`] function drives workers, each
//! owning one keep-alive connection (no pool, no lock shared by all), and streams one
//! `RequestRecord` per request to a channel as requests finish. Closed-loop workers schedule
//! themselves (`closed_loop`); open-loop ones are fed by a dispatcher (`open_loop`). Cancellation (Ctrl-C) stops dispatching, drains in-flight requests
//! within a bound, then cancels the rest, still recording them.
//!
//! It formats no output and computes no statistics.

mod arrival;
mod closed_loop;
mod cpu;
mod open_loop;
mod plan;
mod runner;
mod worker;

pub use arrival::{Arrival, ArrivalError, ArrivalProcess};
pub use cpu::process_cpu_seconds;
pub use plan::{LoadMode, LoadPlan, LoadResult, Progress, StopSignal, Stopper};
pub use runner::run;
