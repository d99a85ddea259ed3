//! The per-request records stream: one JSON object per line, appended as requests finish.

use strobe_core::RequestRecord;

/// One JSONL line (newline included) for a record.
pub fn line(record: &RequestRecord) -> Vec<u8> {
    let mut out = serde_json::to_vec(record).unwrap_or_default();
    out.push(b'\n');
    out
}
