//! The records reader: a line that parses and validates feeds every metric without a panic
//! (no underflow, no division by zero).
#![no_main]
use libfuzzer_sys::fuzz_target;
use strobe_core::{ClassId, RequestRecord};

fuzz_target!(|data: &[u8]| {
    let Ok(r) = serde_json::from_slice::<RequestRecord>(data) else {
        return;
    };
    if r.validate().is_err() {
        return;
    }
    let _ = (r.ttft_ns(), r.tpot_ns(), r.e2e_ns(), r.queue_delay_ns());
    let _ = r.inter_chunk_gaps_ns().count();
    let mut set = strobe_metrics::MetricSet::default();
    let mut r = r;
    r.class = ClassId(0);
    set.add(&r);
});
