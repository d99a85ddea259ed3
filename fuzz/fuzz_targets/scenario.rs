//! The scenario parser: any text parses and resolves or gives an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(s) = strobe_experiment::scenario::Scenario::parse(text, Path::new("fuzz.toml")) {
        let _ = s.resolve();
    }
});
