//! Rule unit tests in `promtool test rules` format: input series in series
//! notation, rule groups evaluated step by step from time 0, and expected
//! alerts and PromQL results at given times.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use lookout_promql::durations::parse_duration_ms;
use lookout_promql::notation::{Seq, parse_labels, parse_values};
use lookout_promql::{Engine, Value};
use lookout_protocol::Labels;
use lookout_protocol::remote_write::stale_nan;
use serde::Deserialize;

use crate::eval::{AlertState, EvalContext, GroupState};
use crate::file::{expand_globs, load_files};
use crate::memstore::MemStore;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    #[serde(default)]
    rule_files: Vec<String>,
    evaluation_interval: Option<String>,
    #[serde(default)]
    group_eval_order: Vec<String>,
    #[serde(default)]
    tests: Vec<TestGroup>,
    /// Newer promtool options that change nothing here.
    #[serde(default)]
    fuzzy_compare: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestGroup {
    interval: Option<String>,
    name: Option<String>,
    #[serde(default)]
    input_series: Vec<InputSeries>,
    #[serde(default)]
    external_labels: BTreeMap<String, String>,
    #[serde(default)]
    external_url: String,
    #[serde(default)]
    alert_rule_test: Vec<AlertTest>,
    #[serde(default)]
    promql_expr_test: Vec<PromqlTest>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputSeries {
    series: String,
    values: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertTest {
    eval_time: String,
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<ExpAlert>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpAlert {
    #[serde(default)]
    exp_labels: BTreeMap<String, String>,
    #[serde(default)]
    exp_annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PromqlTest {
    expr: String,
    eval_time: String,
    #[serde(default)]
    exp_samples: Vec<ExpSample>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpSample {
    #[serde(default)]
    labels: String,
    #[serde(default)]
    value: f64,
    histogram: Option<String>,
}

/// The result of one test file.
#[derive(Debug, Default)]
pub struct FileReport {
    pub file: PathBuf,
    pub groups: usize,
    pub failed_groups: usize,
    /// One entry per failed check, readable as it stands.
    pub failures: Vec<String>,
    /// A problem that stopped the file from running at all.
    pub error: Option<String>,
}

impl FileReport {
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.failures.is_empty()
    }
}

fn duration(what: &str, s: &str) -> Result<i64, String> {
    parse_duration_ms(s.trim()).ok_or_else(|| format!("{what}: {s:?} is not a duration"))
}

/// Runs every test group of one file.
pub fn run_file(path: &Path) -> FileReport {
    let mut report = FileReport {
        file: path.to_path_buf(),
        ..FileReport::default()
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            report.error = Some(format!("cannot read: {e}"));
            return report;
        }
    };
    let file: TestFile = match serde_yaml_ng::from_str(&text) {
        Ok(f) => f,
        Err(e) => {
            report.error = Some(e.to_string());
            return report;
        }
    };
    let _ = file.fuzzy_compare;
    let base = path.parent().unwrap_or(Path::new("."));
    let rule_paths = expand_globs(base, &file.rule_files);
    let groups = match load_files(&rule_paths) {
        Ok((g, _)) => g,
        Err(e) => {
            report.error = Some(format!("loading rule files: {e}"));
            return report;
        }
    };
    let eval_interval = match file
        .evaluation_interval
        .as_deref()
        .map(|s| duration("evaluation_interval", s))
    {
        None => 60_000,
        Some(Ok(ms)) if ms > 0 => ms,
        Some(Ok(_)) => {
            report.error = Some("evaluation_interval must be positive".into());
            return report;
        }
        Some(Err(e)) => {
            report.error = Some(e);
            return report;
        }
    };
    let mut ordered = groups;
    if !file.group_eval_order.is_empty() {
        let mut out = Vec::new();
        for name in &file.group_eval_order {
            match ordered.iter().position(|g| &g.name == name) {
                Some(i) => out.push(ordered.remove(i)),
                None => {
                    report.error = Some(format!(
                        "group_eval_order names group {name:?}, which the rule files lack"
                    ));
                    return report;
                }
            }
        }
        out.extend(ordered);
        ordered = out;
    }
    for (i, test) in file.tests.iter().enumerate() {
        report.groups += 1;
        let label = match &test.name {
            Some(n) => format!("test {} ({n})", i + 1),
            None => format!("test {}", i + 1),
        };
        let states: Vec<GroupState> = ordered.iter().cloned().map(GroupState::new).collect();
        let failures = run_group(test, states, eval_interval);
        if !failures.is_empty() {
            report.failed_groups += 1;
            for f in failures {
                report.failures.push(format!("{label}: {f}"));
            }
        }
    }
    report
}

fn run_group(test: &TestGroup, mut groups: Vec<GroupState>, eval_interval: i64) -> Vec<String> {
    let mut failures = Vec::new();
    let interval = match test.interval.as_deref().map(|s| duration("interval", s)) {
        None => eval_interval,
        Some(Ok(ms)) if ms > 0 => ms,
        Some(Ok(_)) => return vec!["interval must be positive".into()],
        Some(Err(e)) => return vec![e],
    };
    let store = MemStore::new();
    for s in &test.input_series {
        let Some(labels) = parse_labels(&s.series) else {
            return vec![format!(
                "input series {:?}: cannot parse the series",
                s.series
            )];
        };
        let Some(values) = parse_values(&s.values) else {
            return vec![format!(
                "input series {:?}: cannot parse values {:?}",
                s.series, s.values
            )];
        };
        for (k, v) in values.iter().enumerate() {
            let t = k as i64 * interval;
            match v {
                Seq::Value(x) => store.add(&labels, t, *x),
                Seq::Stale => store.add(&labels, t, stale_nan()),
                Seq::Blank => {}
                Seq::Histogram => {
                    return vec![format!(
                        "input series {:?}: native histograms are not supported",
                        s.series
                    )];
                }
            }
        }
    }
    let mut alert_tests: Vec<(i64, &AlertTest)> = Vec::new();
    for t in &test.alert_rule_test {
        match duration("eval_time", &t.eval_time) {
            Ok(ms) => alert_tests.push((ms, t)),
            Err(e) => failures.push(e),
        }
    }
    let mut promql_tests: Vec<(i64, &PromqlTest)> = Vec::new();
    for t in &test.promql_expr_test {
        match duration("eval_time", &t.eval_time) {
            Ok(ms) => promql_tests.push((ms, t)),
            Err(e) => failures.push(e),
        }
    }
    if !failures.is_empty() {
        return failures;
    }
    alert_tests.sort_by_key(|(t, _)| *t);
    let max_t = alert_tests
        .iter()
        .map(|(t, _)| *t)
        .chain(promql_tests.iter().map(|(t, _)| *t))
        .max()
        .unwrap_or(0);
    let engine = Engine::default();
    let mut next_alert_test = 0;
    let mut ts = 0;
    while ts <= max_t {
        for g in groups.iter_mut() {
            let ctx = EvalContext {
                engine: &engine,
                source: &store,
                sink: &store,
                external_labels: &test.external_labels,
                external_url: &test.external_url,
                resend_delay_ms: 60_000,
                interval_ms: g.group.interval_ms.unwrap_or(eval_interval),
            };
            let outcome = g.eval(&ctx, ts);
            let _ = outcome;
        }
        // An alert test at eval_time t is checked against the evaluation at
        // the last step at or before t, as promtool does.
        while next_alert_test < alert_tests.len()
            && alert_tests[next_alert_test].0 < ts + eval_interval
        {
            let (at, t) = alert_tests[next_alert_test];
            next_alert_test += 1;
            if at < ts {
                continue;
            }
            if let Some(f) = check_alerts(&groups, t) {
                failures.push(f);
            }
        }
        ts += eval_interval;
    }
    for (at, t) in promql_tests {
        if let Some(f) = check_promql(&engine, &store, at, t) {
            failures.push(f);
        }
    }
    failures
}

type LabelsAndAnnotations = (BTreeMap<String, String>, BTreeMap<String, String>);

fn show(alerts: &[LabelsAndAnnotations]) -> String {
    let mut s = String::from("[");
    for (i, (l, a)) in alerts.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        let _ = write!(s, "\n        labels: {}", show_map(l));
        let _ = write!(s, "\n        annotations: {}", show_map(a));
    }
    s.push_str("\n      ]");
    s
}

fn show_map(m: &BTreeMap<String, String>) -> String {
    let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", parts.join(", "))
}

fn check_alerts(groups: &[GroupState], t: &AlertTest) -> Option<String> {
    let mut got: Vec<LabelsAndAnnotations> = Vec::new();
    for g in groups {
        for (i, rule) in g.group.rules.iter().enumerate() {
            if !rule.is_alerting() || rule.name != t.alertname {
                continue;
            }
            for a in g.alerts_of(i) {
                if a.state == AlertState::Firing {
                    got.push((a.labels.clone(), a.annotations.clone()));
                }
            }
        }
    }
    let mut exp: Vec<LabelsAndAnnotations> = t
        .exp_alerts
        .iter()
        .map(|e| {
            let mut l = e.exp_labels.clone();
            l.insert("alertname".into(), t.alertname.clone());
            (l, e.exp_annotations.clone())
        })
        .collect();
    got.sort();
    exp.sort();
    if got == exp {
        return None;
    }
    Some(format!(
        "alertname: {}, time: {}\n      exp: {}\n      got: {}",
        t.alertname,
        t.eval_time,
        show(&exp),
        show(&got)
    ))
}

fn almost_equal(a: f64, b: f64) -> bool {
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let diff = (a - b).abs();
    diff <= 1e-9 * a.abs().max(b.abs())
}

fn check_promql(engine: &Engine, store: &MemStore, at: i64, t: &PromqlTest) -> Option<String> {
    let answer = match engine.instant(store, &t.expr, at) {
        Ok(a) => a,
        Err(e) => {
            return Some(format!(
                "expr: {:?}, time: {}: {}",
                t.expr, t.eval_time, e.message
            ));
        }
    };
    let mut got: Vec<(String, f64)> = match answer.value {
        Value::Scalar(p) => vec![("{}".to_string(), p.v)],
        Value::Vector(series) => series
            .into_iter()
            .filter_map(|s| s.points.first().map(|p| (canonical(&s.labels), p.v)))
            .collect(),
        other => {
            return Some(format!(
                "expr: {:?}, time: {}: the result is a {}, not a vector or scalar",
                t.expr,
                t.eval_time,
                other.type_name()
            ));
        }
    };
    let mut exp = Vec::new();
    for s in &t.exp_samples {
        if s.histogram.is_some() {
            return Some(format!(
                "expr: {:?}: expected native histograms are not supported",
                t.expr
            ));
        }
        let text = if s.labels.trim().is_empty() {
            "{}"
        } else {
            s.labels.as_str()
        };
        match parse_labels(text) {
            Some(l) => exp.push((canonical(&l), s.value)),
            None => {
                return Some(format!(
                    "expr: {:?}: cannot parse expected labels {:?}",
                    t.expr, s.labels
                ));
            }
        }
    }
    got.sort_by(|a, b| a.0.cmp(&b.0));
    exp.sort_by(|a, b| a.0.cmp(&b.0));
    let same = got.len() == exp.len()
        && got
            .iter()
            .zip(&exp)
            .all(|(g, e)| g.0 == e.0 && almost_equal(g.1, e.1));
    if same {
        return None;
    }
    let show = |v: &[(String, f64)]| {
        v.iter()
            .map(|(l, x)| format!("{l} {x}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Some(format!(
        "expr: {:?}, time: {}\n      exp: [{}]\n      got: [{}]",
        t.expr,
        t.eval_time,
        show(&exp),
        show(&got)
    ))
}

/// Labels in one comparable form: sorted, empty values dropped.
fn canonical(l: &Labels) -> String {
    let mut pairs: Vec<(String, String)> = l
        .iter()
        .filter(|x| !x.value.is_empty())
        .map(|x| (x.name.to_string(), x.value.to_string()))
        .collect();
    pairs.sort();
    let name = pairs
        .iter()
        .position(|(n, _)| n == "__name__")
        .map(|i| pairs.remove(i).1)
        .unwrap_or_default();
    let inner: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{name}{{{}}}", inner.join(", "))
}
