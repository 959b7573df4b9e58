#![no_main]
//! PromQL text: duration arithmetic, parsing, error positions and
//! evaluation over a small fixed store give an answer or an error, never a
//! panic.

use libfuzzer_sys::fuzz_target;
use lookout_promql::error::Result;
use lookout_promql::storage::{RawSeries, Source};
use lookout_promql::{Engine, Limits};
use lookout_protocol::Labels;
use lookout_tsdb::Matcher;

struct Fixed;

impl Source for Fixed {
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<RawSeries>> {
        let mut out = Vec::new();
        for (name, job) in [("a", "x"), ("a", "y"), ("b_bucket", "x")] {
            let labels = Labels::from_pairs([("__name__", name), ("job", job), ("le", "1")]);
            if matchers.iter().all(|m| m.matches_labels(&labels)) {
                let samples: Vec<(i64, f64)> = (0..20)
                    .map(|i| (i * 15_000, i as f64))
                    .filter(|&(t, _)| t >= mint && t <= maxt)
                    .collect();
                if !samples.is_empty() {
                    out.push(RawSeries { labels, samples });
                }
            }
        }
        Ok(out)
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(q) = std::str::from_utf8(data) else { return };
    let engine = Engine::new(Limits {
        timeout: std::time::Duration::from_millis(200),
        max_samples: 100_000,
        ..Limits::default()
    });
    let _ = engine.instant(&Fixed, q, 150_000);
    let _ = engine.range(&Fixed, q, 0, 300_000, 15_000);
});
