//! The data-set readers (ShareGPT JSON, JSONL with any of the known fields, plain text): any
//! bytes load or give an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;
use strobe_workload::dataset::{load_bytes, DatasetFormat, FilterRules, LoadOptions};
use strobe_workload::WordCounter;

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let format = match data[0] % 4 {
        0 => None,
        1 => Some(DatasetFormat::ShareGpt),
        2 => Some(DatasetFormat::Jsonl),
        _ => Some(DatasetFormat::Text),
    };
    let opts = LoadOptions {
        format,
        skip_invalid: data[0] & 4 != 0,
        rules: FilterRules::none(),
        output_given: false,
        output_fixed: None,
        default_output: 16,
        shuffle: data[0] & 8 != 0,
        seed: 1,
        limit: Some(64),
    };
    let _ = load_bytes(Path::new("fuzz.json"), &data[1..], &WordCounter, &opts);
});
