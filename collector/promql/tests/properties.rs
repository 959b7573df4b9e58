//! Properties of evaluation that must hold for any data, and bad input
//! that must end in an error rather than a panic or a hang.

use std::time::{Duration, Instant};

use lookout_promql::error::Result;
use lookout_promql::storage::{RawSeries, Source};
use lookout_promql::{Engine, Limits, Value};
use lookout_protocol::Labels;
use lookout_tsdb::Matcher;
use proptest::prelude::*;

/// Series held in memory; selection by the store's own matchers.
struct Memory(Vec<RawSeries>);

impl Source for Memory {
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<RawSeries>> {
        Ok(self
            .0
            .iter()
            .filter(|s| matchers.iter().all(|m| m.matches_labels(&s.labels)))
            .map(|s| RawSeries {
                labels: s.labels.clone(),
                samples: s
                    .samples
                    .iter()
                    .copied()
                    .filter(|&(t, _)| t >= mint && t <= maxt)
                    .collect(),
            })
            .filter(|s| !s.samples.is_empty())
            .collect())
    }
}

fn series(name: &str, x: &str, y: &str, values: &[f64]) -> RawSeries {
    RawSeries {
        labels: Labels::from_pairs([("__name__", name), ("x", x), ("y", y)]),
        samples: values
            .iter()
            .enumerate()
            .map(|(i, &v)| (i as i64 * 15_000, v))
            .collect(),
    }
}

fn vector_values(v: &Value) -> Vec<(String, f64)> {
    let Value::Vector(s) = v else {
        return Vec::new();
    };
    let mut out: Vec<(String, f64)> = s
        .iter()
        .map(|s| (s.labels.to_string(), s.points[0].v))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// `sum by (x)` over two metrics together equals the sum of each
    /// metric's `sum by (x)`.
    #[test]
    fn sum_of_a_union_is_the_sum_of_the_parts(
        a in prop::collection::vec((0usize..3, 0usize..4, -1e6f64..1e6), 1..12),
        b in prop::collection::vec((0usize..3, 0usize..4, -1e6f64..1e6), 1..12),
    ) {
        let mut data = Vec::new();
        for (name, part) in [("a", &a), ("b", &b)] {
            for (k, &(x, y, v)) in part.iter().enumerate() {
                // Distinct series: y also carries the position.
                data.push(series(name, &x.to_string(), &format!("{y}-{k}"), &[v]));
            }
        }
        let store = Memory(data);
        let engine = Engine::default();
        let both = engine.instant(&store, "sum by (x) ({__name__=~\"a|b\"})", 0).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let pa = engine.instant(&store, "sum by (x) (a)", 0).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let pb = engine.instant(&store, "sum by (x) (b)", 0).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut parts: std::collections::BTreeMap<String, f64> = Default::default();
        for (l, v) in vector_values(&pa.value).into_iter().chain(vector_values(&pb.value)) {
            *parts.entry(l).or_default() += v;
        }
        let whole = vector_values(&both.value);
        prop_assert_eq!(whole.len(), parts.len());
        for (l, v) in whole {
            prop_assert!(close(v, parts[&l]), "{} {} vs {}", l, v, parts[&l]);
        }
    }

    /// A counter that only grows, with resets to any lower value, never
    /// has a negative rate or increase, in instant or range queries.
    #[test]
    fn rate_of_a_counter_with_resets_is_never_negative(
        steps in prop::collection::vec((0.0f64..1e4, prop::bool::weighted(0.15), 0.0f64..1.0), 2..80),
        range_s in 16i64..1200,
    ) {
        let mut v = 0.0;
        let values: Vec<f64> = steps
            .iter()
            .map(|&(inc, reset, keep)| {
                v = if reset { v * keep } else { v + inc };
                v
            })
            .collect();
        let end = (values.len() as i64 - 1) * 15_000;
        let store = Memory(vec![series("c_total", "1", "1", &values)]);
        let engine = Engine::default();
        for f in ["rate", "increase", "irate"] {
            let q = format!("{f}(c_total[{range_s}s])");
            let ans = engine.range(&store, &q, 0, end, 15_000).map_err(|e| TestCaseError::fail(e.to_string()))?;
            if let Value::Matrix(m) = ans.value {
                for s in m {
                    for p in s.points {
                        prop_assert!(p.v >= 0.0, "{} at {} = {}", q, p.t, p.v);
                    }
                }
            }
        }
    }

    /// Any text is parsed and evaluated to an answer or an error, quickly.
    #[test]
    fn arbitrary_queries_never_panic_or_hang(q in "[a-z_(){}\\[\\]\"=~!<>+*/%^:,.0-9 @-]{0,40}") {
        let store = Memory(vec![series("a", "1", "1", &[1.0, 2.0, 3.0])]);
        let engine = Engine::new(Limits { timeout: Duration::from_secs(2), ..Limits::default() });
        let started = Instant::now();
        let _ = engine.instant(&store, &q, 30_000);
        let _ = engine.range(&store, &q, 0, 60_000, 15_000);
        prop_assert!(started.elapsed() < Duration::from_secs(5));
    }

    /// Queries built from the grammar's pieces: errors, never panics.
    #[test]
    fn composed_queries_never_panic(
        parts in prop::collection::vec(prop::sample::select(vec![
            "a", "a[1m]", "a[1m:15s]", "sum(", "by (x)", ")", "rate(", "+", "/ on(x) group_left(y)",
            "topk(2,", "histogram_quantile(0.9,", "label_replace(", "\"x\"", ",", "offset 1m", "@ 10",
            "1", "-", "and", "or", "unless", "bool", ">", "count_values(\"v\",", "quantile(0.5,",
            "absent(", "scalar(", "vector(", "time()", "[5m+1m]", "offset (2*3)", "limit_ratio(0.5,",
        ]), 1..12),
    ) {
        let q = parts.join(" ");
        let store = Memory(vec![series("a", "1", "1", &[1.0, 2.0, 3.0, 0.0, 5.0])]);
        let engine = Engine::default();
        let _ = engine.instant(&store, &q, 60_000);
        let _ = engine.range(&store, &q, 0, 60_000, 15_000);
    }
}
