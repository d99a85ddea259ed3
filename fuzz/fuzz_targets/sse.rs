//! The SSE decoder: any bytes, split anywhere, decode to the same events as one piece, and never
//! hold more than its limit.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::ops::ControlFlow;
use strobe_client::sse::{SseDecoder, MAX_EVENT};

fn decode(pieces: &[&[u8]]) -> (Vec<Vec<u8>>, bool) {
    let mut d = SseDecoder::new();
    let mut out = Vec::new();
    for p in pieces {
        if d.feed(p, |e| {
            assert!(e.len() <= MAX_EVENT);
            out.push(e.to_vec());
            ControlFlow::Continue(())
        })
        .is_break()
        {
            return (out, d.oversized());
        }
    }
    let _ = d.finish(|e| {
        out.push(e.to_vec());
        ControlFlow::Continue(())
    });
    (out, d.oversized())
}

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    // The first byte picks where to split the rest.
    let split = 1 + data[0] as usize;
    let body = &data[1..];
    let whole = decode(&[body]);
    let pieces: Vec<&[u8]> = body.chunks(split).collect();
    assert_eq!(decode(&pieces), whole);
});
