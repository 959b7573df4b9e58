#![no_main]
//! The text-format parser never panics, and what it accepts re-encodes to
//! text that parses to the same samples.

use libfuzzer_sys::fuzz_target;
use lookout_protocol::exposition::{Format, encode, parse_text};
use lookout_protocol::{Family, MetricKind};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(samples) = parse_text(text) else { return };
    let families: Vec<Family> = samples
        .iter()
        .map(|s| {
            let mut f = Family::new(s.name.clone(), "", MetricKind::Untyped);
            f.push(s.labels.clone(), s.value);
            f
        })
        .collect();
    let mut out = String::new();
    encode(families.iter(), Format::PrometheusText, &mut out);
    let again = parse_text(&out).expect("re-encoded exposition parses");
    assert_eq!(again.len(), samples.len());
});
