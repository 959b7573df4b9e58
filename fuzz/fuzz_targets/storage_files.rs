#![no_main]
//! Storage files read back after a crash or from a damaged disk: XOR
//! chunks, WAL frames and block directories never panic, and a damaged
//! input is an error, not a wrong answer that claims to be whole.

use libfuzzer_sys::fuzz_target;
use lookout_tsdb::{block::Block, chunk::XorIter, wal};

fuzz_target!(|data: &[u8]| {
    if let Ok(it) = XorIter::new(data) {
        for s in it {
            if s.is_err() {
                break;
            }
        }
    }
    let mut pos = 0;
    while pos < data.len() {
        match wal::decode_frame(&data[pos..]) {
            Ok((_, n)) => pos += n,
            Err(_) => break,
        }
    }
    // The same bytes as a block's index (with a valid meta and empty chunks).
    thread_local! {
        static DIR: tempfile::TempDir = tempfile::tempdir().expect("tempdir");
    }
    DIR.with(|d| {
        let p = d.path();
        std::fs::write(p.join("meta.json"), br#"{"id":"x","minTime":0,"maxTime":1,"numSeries":1,"numSamples":1,"numChunks":1,"level":1,"sources":[]}"#).unwrap();
        std::fs::write(p.join("index"), data).unwrap();
        std::fs::write(p.join("chunks"), data).unwrap();
        if let Ok(b) = Block::open(p) {
            for id in b.select_ids(&[]) {
                let mut out = Vec::new();
                let _ = b.samples(id, i64::MIN, i64::MAX, &mut out);
                let _ = b.labels(id);
            }
        }
    });
});
