#![no_main]
//! Remote-write bodies: decoding never panics and never allocates past its
//! limit; what decodes re-encodes to a body that decodes the same.

use libfuzzer_sys::fuzz_target;
use lookout_protocol::remote_write::{decode, encode, validate_labels};

fuzz_target!(|data: &[u8]| {
    let Ok(req) = decode(data, 1 << 20) else { return };
    for ts in &req.timeseries {
        let _ = validate_labels(&ts.labels);
    }
    let again = decode(&encode(&req), 1 << 22).expect("re-encoded body decodes");
    assert_eq!(again.timeseries.len(), req.timeseries.len());
});
