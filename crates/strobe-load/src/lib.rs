//! When requests are sent.
//!
//! A [`RunPlan`] holds one or more classes, each a stream of requests with its own [`Schedule`]:
//! a closed loop of N concurrent streams, an open loop at a rate (Poisson, constant or gamma
//! arrivals, optionally capped in concurrency), offline (every request offered at once), or
//! lockstep batches. One schedule core runs them all at once: [`gate`](crate::gate) holds the rules
//! every schedule shares (stop, abort rule, warm-up, request and duration limits, "stop with
//! another class"), [`run`] drives the classes side by side and drains them. Every request goes
//! through one request path (`worker`), on a keep-alive connection owned by one worker (no pool,
//! no lock shared by all), and one `RequestRecord` per request goes to a bounded channel as
//! requests finish, stamped with its class. The queueing a concurrency cap causes is recorded as
//! queue delay, and requests that were due but never sent are counted, never hidden.
//! Cancellation (Ctrl-C) stops dispatching, drains in-flight requests within a bound, then cancels
//! the rest, still recording them.
//!
//! It formats no output and computes no statistics.

mod arrival;
mod class;
mod closed_loop;
mod cpu;
mod gate;
mod lockstep;
mod open_loop;
mod plan;
mod runner;
mod worker;

pub use arrival::{Arrival, ArrivalError, ArrivalProcess};
pub use cpu::process_cpu_seconds;
pub use plan::{
    AbortRules, Backpressure, ClassPlan, ClassResult, Limits, LiveHistogram, PlanError, Progress,
    Retry, RunPlan, RunResult, Schedule, Steer, StopReason, StopSignal, StopState, Stopper, Warmup,
    LIVE_BUCKETS, UNREACHABLE_ATTEMPTS,
};
pub use runner::{records_channel, run, RECORDS_CHANNEL};
