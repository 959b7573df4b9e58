#![no_main]
//! Read-API parameters: selectors and times from arbitrary text give a
//! result or an error, never a panic.

use libfuzzer_sys::fuzz_target;
use lookout::api::params::{parse_selector, parse_time};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let _ = parse_time(s);
    if let Ok(sets) = parse_selector(s) {
        for set in sets {
            for m in set {
                let _ = m.matches("");
            }
        }
    }
});
