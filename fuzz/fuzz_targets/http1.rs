//! The HTTP/1 response reader: any bytes give a head and body, "incomplete", or an error; never a
//! panic, and a complete Content-Length body is exactly that long.
#![no_main]
use libfuzzer_sys::fuzz_target;
use strobe_client::http1::{decode_response, BodyKind};

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((head, body, done))) = decode_response(data) {
        if let BodyKind::Length(n) = head.body {
            assert!(body.len() as u64 <= n);
            assert_eq!(done, body.len() as u64 == n);
        }
        assert!(body.len() <= data.len());
    }
});
