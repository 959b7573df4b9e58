//! Reader and runner for Prometheus's PromQL test scripts (`*.test`):
//! `load`, `clear`, `eval instant`, `eval range` and their `_fail`,
//! `_warn`, `_info` and `_ordered` forms, with expected results in the
//! scripts' series notation. Series are stored in a real `lookout_tsdb::Db`;
//! native-histogram samples, which the store does not hold, are remembered
//! beside it so that a query reaching them is reported and counted as
//! skipped.

use std::collections::BTreeMap;
use std::path::Path;

use lookout_promql::error::Result as QResult;
use lookout_promql::notation::{Seq, parse_labels, parse_number, parse_values, split_series};
use lookout_promql::storage::{RawSeries, Source};
use lookout_promql::{Engine, ErrorKind, QueryError, Value};
use lookout_protocol::remote_write::{Label as WireLabel, Sample, TimeSeries, stale_nan};
use lookout_protocol::{Label, Labels};
use lookout_tsdb::{Db, Matcher, Options};

type Points = Vec<(i64, f64)>;

#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.passed += o.passed;
        self.failed += o.failed;
        self.skipped += o.skipped;
    }
}

struct Store {
    db: Db,
    _dir: tempfile::TempDir,
    /// Series with native-histogram samples, and those samples' times.
    histograms: Vec<(Labels, Vec<i64>)>,
}

impl Store {
    fn new() -> Store {
        let dir = tempfile::tempdir().expect("temporary directory");
        let opts = Options {
            // Scripts load their data from time 0 in any order of series.
            block_range_ms: 100 * 24 * 3_600_000,
            out_of_order_window_ms: 400 * 24 * 3_600_000,
            retention_ms: 0,
            ..Options::default()
        };
        let db = Db::open(dir.path(), opts).expect("open store");
        Store {
            db,
            _dir: dir,
            histograms: Vec::new(),
        }
    }
}

impl Source for Store {
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> QResult<Vec<RawSeries>> {
        for (labels, times) in &self.histograms {
            if matchers.iter().all(|m| m.matches_labels(labels))
                && times.iter().any(|&t| t >= mint && t <= maxt)
            {
                return Err(QueryError::native_histogram(&format!("series {labels}")));
            }
        }
        self.db.select(matchers, mint, maxt)
    }
}

use lookout_promql::durations::parse_duration_ms as parse_duration;

enum Expect {
    Scalar(f64),
    Series(Vec<(Labels, Vec<Seq>)>),
}

struct Eval {
    line: usize,
    expr: String,
    range: Option<(i64, i64, i64)>,
    at: i64,
    fail: bool,
    warn: bool,
    info: bool,
    no_info: bool,
    ordered: bool,
    fail_message: Option<String>,
    expect: Expect,
    has_histograms: bool,
}

fn almost_equal(a: f64, b: f64) -> bool {
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let eps = 1e-6;
    let min_normal = f64::from_bits(0x0010000000000000);
    let diff = (a - b).abs();
    let sum = a.abs() + b.abs();
    if a == 0.0 || b == 0.0 || sum < min_normal {
        return diff < eps * min_normal;
    }
    diff / sum.min(f64::MAX) < eps
}

fn fmt_series(l: &Labels, pts: &[(i64, f64)]) -> String {
    let vals: Vec<String> = pts.iter().map(|(t, v)| format!("{v}@{t}")).collect();
    format!("{l} {}", vals.join(" "))
}

impl Eval {
    /// `Ok(true)` passed, `Ok(false)` skipped, `Err` failed with a reason.
    fn run(&self, engine: &Engine, store: &Store) -> Result<bool, String> {
        if self.has_histograms {
            return Ok(false);
        }
        let answer = match self.range {
            None => engine.instant(store, &self.expr, self.at),
            Some((s, e, st)) => engine.range(store, &self.expr, s, e, st),
        };
        let answer = match answer {
            Err(e) if e.kind == ErrorKind::NativeHistogram => return Ok(false),
            Err(e) => {
                if self.fail {
                    if let Some(m) = &self.fail_message
                        && !e.message.contains(m.as_str())
                    {
                        return Err(format!("expected error {m:?}, got {:?}", e.message));
                    }
                    return Ok(true);
                }
                return Err(format!("error: {e}"));
            }
            Ok(a) => a,
        };
        if self.fail {
            return Err(format!("expected an error, got {:?}", answer.value));
        }
        if self.warn && answer.annotations.warnings.is_empty() {
            return Err("expected warnings, got none".into());
        }
        if !self.warn && !answer.annotations.warnings.is_empty() {
            return Err(format!(
                "unexpected warnings: {:?}",
                answer.annotations.warnings
            ));
        }
        if self.info && answer.annotations.infos.is_empty() {
            return Err("expected info annotations, got none".into());
        }
        if self.no_info && !answer.annotations.infos.is_empty() {
            return Err(format!("unexpected infos: {:?}", answer.annotations.infos));
        }
        self.compare(answer.value)
    }

    fn compare(&self, value: Value) -> Result<bool, String> {
        match (&self.expect, value) {
            (Expect::Scalar(want), Value::Scalar(p)) => {
                if almost_equal(*want, p.v) {
                    Ok(true)
                } else {
                    Err(format!("scalar: want {want}, got {}", p.v))
                }
            }
            (Expect::Scalar(want), other) => Err(format!("want scalar {want}, got {other:?}")),
            (Expect::Series(_), Value::Scalar(p)) => {
                Err(format!("want series, got scalar {}", p.v))
            }
            (Expect::Series(_), Value::String { value, .. }) => {
                Err(format!("want series, got string {value:?}"))
            }
            (Expect::Series(want), Value::Vector(got))
            | (Expect::Series(want), Value::Matrix(got)) => {
                let got: Vec<(Labels, Vec<(i64, f64)>)> = got
                    .into_iter()
                    .map(|s| (s.labels, s.points.iter().map(|p| (p.t, p.v)).collect()))
                    .collect();
                let mut want_pts: Vec<(Labels, Vec<(i64, f64)>)> = Vec::new();
                for (labels, seq) in want {
                    let mut pts = Vec::new();
                    for (k, v) in seq.iter().enumerate() {
                        let t = match self.range {
                            Some((s, _, st)) => s + k as i64 * st,
                            None => self.at,
                        };
                        match v {
                            Seq::Value(x) => pts.push((t, *x)),
                            Seq::Stale => pts.push((t, stale_nan())),
                            Seq::Blank | Seq::Histogram => {}
                        }
                    }
                    want_pts.push((labels.clone(), pts));
                }
                if got.len() != want_pts.len() {
                    return Err(format!(
                        "want {} series, got {}:\n  want: {}\n  got:  {}",
                        want_pts.len(),
                        got.len(),
                        want_pts
                            .iter()
                            .map(|(l, p)| fmt_series(l, p))
                            .collect::<Vec<_>>()
                            .join("\n        "),
                        got.iter()
                            .map(|(l, p)| fmt_series(l, p))
                            .collect::<Vec<_>>()
                            .join("\n        ")
                    ));
                }
                let mut by_labels: BTreeMap<String, (usize, &Points)> = BTreeMap::new();
                for (i, (l, p)) in got.iter().enumerate() {
                    by_labels.insert(l.sorted().to_string(), (i, p));
                }
                for (wi, (l, wp)) in want_pts.iter().enumerate() {
                    let Some((gi, gp)) = by_labels.get(&l.sorted().to_string()) else {
                        return Err(format!(
                            "missing series {l}; got {}",
                            got.iter()
                                .map(|(l, _)| l.to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    };
                    if self.ordered && *gi != wi {
                        return Err(format!("series {l} at position {gi}, want {wi}"));
                    }
                    let instant_vector = self.range.is_none() && gp.len() == 1 && wp.len() == 1;
                    let same = gp.len() == wp.len()
                        && gp
                            .iter()
                            .zip(wp.iter())
                            .all(|(g, w)| (instant_vector || g.0 == w.0) && almost_equal(g.1, w.1));
                    if !same {
                        return Err(format!(
                            "series {l}: want {}, got {}",
                            fmt_series(l, wp),
                            fmt_series(l, gp)
                        ));
                    }
                }
                Ok(true)
            }
        }
    }
}

/// Runs one script; prints failures when `verbose`.
pub fn run_file(path: &Path, verbose: bool) -> Counts {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let lines: Vec<&str> = text.lines().collect();
    let engine = Engine::default();
    let mut store = Store::new();
    let mut counts = Counts::default();
    let mut i = 0;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    while i < lines.len() {
        let line = lines[i].trim();
        i += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line == "clear" {
            store = Store::new();
            continue;
        }
        if let Some(rest) = line.strip_prefix("load") {
            let (nhcb, rest) = match rest.strip_prefix("_with_nhcb") {
                Some(r) => (true, r),
                None => (false, rest),
            };
            let interval = parse_duration(rest.trim())
                .unwrap_or_else(|| panic!("{name}:{i}: bad load interval"));
            // A series given twice in one load keeps its last line, as
            // Prometheus's script loader does.
            let mut wire: Vec<TimeSeries> = Vec::new();
            let mut line_of: std::collections::HashMap<String, usize> = Default::default();
            while i < lines.len()
                && !lines[i].trim().is_empty()
                && !lines[i].trim_start().starts_with('#')
            {
                let l = lines[i].trim();
                i += 1;
                let (desc, values) = split_series(l);
                let (Some(labels), Some(seq)) = (parse_labels(desc), parse_values(values)) else {
                    panic!("{name}:{i}: cannot read series line {l:?}");
                };
                let mut samples = Vec::new();
                let mut hist_times = Vec::new();
                for (k, v) in seq.iter().enumerate() {
                    let t = k as i64 * interval;
                    match v {
                        Seq::Value(x) => samples.push(Sample {
                            value: *x,
                            timestamp: t,
                        }),
                        Seq::Stale => samples.push(Sample {
                            value: stale_nan(),
                            timestamp: t,
                        }),
                        Seq::Histogram => hist_times.push(t),
                        Seq::Blank => {}
                    }
                }
                if nhcb
                    && let Some(base) = labels
                        .get("__name__")
                        .and_then(|n| n.strip_suffix("_bucket"))
                {
                    // The script also loads these buckets as one native
                    // histogram under the base name.
                    let mut v: Vec<Label> =
                        labels.iter().filter(|x| x.name != "le").cloned().collect();
                    for x in &mut v {
                        if x.name == "__name__" {
                            x.value = base.into();
                        }
                    }
                    let times: Vec<i64> = samples.iter().map(|s| s.timestamp).collect();
                    store.histograms.push((Labels::from(v), times));
                }
                if !hist_times.is_empty() {
                    store.histograms.push((labels.clone(), hist_times));
                }
                let key = labels.to_string();
                if let Some(&at) = line_of.get(&key) {
                    wire[at].samples = samples;
                } else {
                    line_of.insert(key, wire.len());
                    wire.push(TimeSeries {
                        labels: labels
                            .iter()
                            .map(|l| WireLabel {
                                name: l.name.to_string(),
                                value: l.value.to_string(),
                            })
                            .collect(),
                        samples,
                        ..Default::default()
                    });
                }
            }
            wire.retain(|s| !s.samples.is_empty());
            store.db.append(&mut wire).expect("append to store");
            continue;
        }
        if line.starts_with("eval") {
            let start_line = i;
            let (cmd, rest) = line.split_once(' ').unwrap_or((line, ""));
            let mut no_info = false;
            let (fail, mut warn, mut info, ordered) = (
                cmd == "eval_fail",
                cmd == "eval_warn",
                cmd == "eval_info",
                cmd == "eval_ordered",
            );
            let (range, at, expr) = if let Some(r) = rest.strip_prefix("instant at ") {
                let (t, expr) = r.split_once(' ').unwrap_or((r, ""));
                (
                    None,
                    parse_duration(t).unwrap_or_else(|| panic!("{name}:{i}: bad time")),
                    expr.to_string(),
                )
            } else if let Some(r) = rest.strip_prefix("range from ") {
                let parts: Vec<&str> = r.splitn(6, ' ').collect();
                let (s, e, st) = (
                    parse_duration(parts[0]),
                    parse_duration(parts[2]),
                    parse_duration(parts[4]),
                );
                match (s, e, st, parts.get(5)) {
                    (Some(s), Some(e), Some(st), Some(expr)) => {
                        (Some((s, e, st)), s, expr.to_string())
                    }
                    _ => panic!("{name}:{i}: bad range eval {line:?}"),
                }
            } else {
                panic!("{name}:{i}: unknown eval form {line:?}");
            };
            let mut fail_message = None;
            let mut scalar = None;
            let mut series = Vec::new();
            let mut has_histograms = false;
            let mut unreadable = false;
            while i < lines.len() && !lines[i].trim().is_empty() {
                let l = lines[i].trim();
                i += 1;
                if l.starts_with('#') {
                    continue;
                }
                if let Some(m) = l.strip_prefix("expected_fail_message ") {
                    fail_message = Some(m.to_string());
                    continue;
                }
                if let Some(e) = l.strip_prefix("expect ") {
                    let e = e.trim_start();
                    if e.starts_with("warn") {
                        warn = true;
                    } else if e.starts_with("info") {
                        info = true;
                    } else if e.starts_with("no_info") {
                        no_info = true;
                    }
                    continue;
                }
                if l.starts_with("expected_fail_regexp") {
                    continue;
                }
                if let Some(v) = parse_number(l) {
                    scalar = Some(v);
                    continue;
                }
                let (desc, values) = split_series(l);
                if values.contains("{{") {
                    has_histograms = true;
                }
                match (parse_labels(desc), parse_values(values)) {
                    (Some(labels), Some(seq)) => series.push((labels, seq)),
                    _ => unreadable = true,
                }
            }
            let eval = Eval {
                line: start_line,
                expr,
                range,
                at,
                fail,
                warn,
                info,
                no_info,
                ordered,
                fail_message,
                expect: match scalar {
                    Some(v) if series.is_empty() => Expect::Scalar(v),
                    _ => Expect::Series(series),
                },
                has_histograms,
            };
            let outcome = if unreadable && !has_histograms {
                Err("expected results could not be read".to_string())
            } else {
                let e = &engine;
                let s = &store;
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| eval.run(e, s)))
                    .unwrap_or_else(|_| Err("engine panicked".into()))
            };
            match outcome {
                Ok(true) => counts.passed += 1,
                Ok(false) => counts.skipped += 1,
                Err(why) => {
                    counts.failed += 1;
                    if verbose {
                        println!("FAIL {name}:{} {}\n    {why}", eval.line, eval.expr);
                    }
                }
            }
            continue;
        }
        panic!("{name}:{i}: unknown command {line:?}");
    }
    counts
}
