//! The batch input reader: any bytes give lines with unique custom_ids or an error naming a line.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;
use strobe_batch::input::{parse, Limits};

fuzz_target!(|data: &[u8]| {
    match parse(Path::new("in.jsonl"), data, Limits::default()) {
        Ok(lines) => {
            let mut ids = std::collections::HashSet::new();
            for l in &lines {
                assert!(ids.insert(l.custom_id.as_str()));
                assert!(!l.custom_id.is_empty());
            }
        }
        Err(e) => assert!(e.to_string().starts_with("in.jsonl")),
    }
});
