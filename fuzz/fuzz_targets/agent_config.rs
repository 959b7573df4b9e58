#![no_main]
//! `agent.yaml` parsing and validation never panic.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = lookout_agent::config::Config::parse(text, "fuzz");
    }
});
