//! Process exit codes.

/// The run completed.
pub const OK: i32 = 0;
/// A check on the results failed (thresholds, SLOs).
pub const CHECK_FAILED: i32 = 1;
/// Usage error, unreachable server, or a run aborted by its abort rule.
pub const ERROR: i32 = 2;
/// Stopped by Ctrl-C; partial results were written.
pub const INTERRUPTED: i32 = 130;
