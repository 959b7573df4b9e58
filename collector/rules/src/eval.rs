//! Evaluating a group of rules at one instant: recording rules write their
//! series, alerting rules move their alerts through pending, firing and
//! resolved, and both write what they produce back through the store's
//! append path (`ALERTS`, `ALERTS_FOR_STATE`, recorded series), with stale
//! markers for series that vanish.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use lookout_promql::{Engine, Source, Value};
use lookout_protocol::Labels;
use lookout_protocol::remote_write::{Label as WireLabel, Sample, TimeSeries, stale_nan};
use lookout_template::{Funcs, Value as TValue};
use serde::{Deserialize, Serialize};

use crate::file::{Rule, RuleGroup, RuleKind};

/// Where rule output goes: the same append path every other series takes.
pub trait Sink {
    fn append(&self, series: Vec<TimeSeries>) -> Result<(), String>;
}

impl Sink for lookout_tsdb::Db {
    fn append(&self, mut series: Vec<TimeSeries>) -> Result<(), String> {
        lookout_tsdb::Db::append(self, &mut series)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Resolved alerts are kept (and re-sent) this long, as Prometheus does, so
/// a receiver that missed the resolution still learns of it.
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Inactive,
    Pending,
    Firing,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// One alert of an alerting rule. Times are milliseconds since the epoch;
/// 0 means "not yet".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActiveAlert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub state: AlertState,
    pub value: f64,
    pub active_at_ms: i64,
    pub fired_at_ms: i64,
    pub resolved_at_ms: i64,
    pub last_sent_ms: i64,
    pub keep_firing_since_ms: i64,
}

impl ActiveAlert {
    /// Prometheus's rule: pending alerts are never sent; others are sent
    /// when they resolved since the last send or the resend delay passed.
    fn needs_sending(&self, now_ms: i64, resend_delay_ms: i64) -> bool {
        if self.state == AlertState::Pending {
            return false;
        }
        if self.resolved_at_ms > self.last_sent_ms {
            return true;
        }
        self.last_sent_ms + resend_delay_ms < now_ms
    }
}

/// An alert handed to notification: Alertmanager's alert fields.
#[derive(Clone, Debug, PartialEq)]
pub struct OutgoingAlert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at_ms: i64,
    /// For a firing alert, when it expires unless re-sent; for a resolved
    /// one, when it resolved.
    pub ends_at_ms: i64,
    pub resolved: bool,
    pub generator_url: String,
}

/// Health of one rule after its last evaluation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RuleHealth {
    pub last_error: Option<String>,
    pub last_eval_ms: i64,
    pub last_duration_s: f64,
    pub samples: usize,
}

/// What evaluation needs from outside the group.
pub struct EvalContext<'a> {
    pub engine: &'a Engine,
    pub source: &'a dyn Source,
    pub sink: &'a dyn Sink,
    pub external_labels: &'a BTreeMap<String, String>,
    pub external_url: &'a str,
    /// How often firing alerts are re-sent to notification.
    pub resend_delay_ms: i64,
    /// The evaluation interval in force for this group.
    pub interval_ms: i64,
}

/// A group with its evaluation state.
pub struct GroupState {
    pub group: RuleGroup,
    /// Per rule: alerts by fingerprint of their labels.
    alerts: Vec<HashMap<u64, ActiveAlert>>,
    /// Per rule: series written at the previous evaluation, to mark the
    /// vanished ones stale.
    previous: Vec<HashSet<Vec<WireLabel>>>,
    pub health: Vec<RuleHealth>,
    pub last_eval_ms: i64,
    pub last_duration_s: f64,
}

/// One evaluation's result.
#[derive(Debug, Default)]
pub struct GroupOutcome {
    pub alerts_to_send: Vec<OutgoingAlert>,
    pub samples_written: usize,
    pub errors: Vec<(String, String)>,
    /// Whether any alert changed state (worth persisting).
    pub state_changed: bool,
}

impl GroupState {
    pub fn new(group: RuleGroup) -> GroupState {
        let n = group.rules.len();
        GroupState {
            group,
            alerts: vec![HashMap::new(); n],
            previous: vec![HashSet::new(); n],
            health: vec![RuleHealth::default(); n],
            last_eval_ms: 0,
            last_duration_s: 0.0,
        }
    }

    /// Takes over the evaluation state of `old` for rules that are the same
    /// (same name, kind, expression and labels), so a reload keeps pending
    /// timers and firing alerts.
    pub fn inherit(&mut self, old: &GroupState) {
        for (i, rule) in self.group.rules.iter().enumerate() {
            if let Some(j) = old.group.rules.iter().position(|r| same_rule(r, rule)) {
                self.alerts[i] = old.alerts[j].clone();
                self.previous[i] = old.previous[j].clone();
                self.health[i] = old.health[j].clone();
            }
        }
    }

    /// Alerts of the rule at `index`.
    pub fn alerts_of(&self, index: usize) -> impl Iterator<Item = &ActiveAlert> {
        self.alerts.get(index).into_iter().flat_map(|m| m.values())
    }

    /// Every alert that is pending or firing, with its rule.
    pub fn active_alerts(&self) -> impl Iterator<Item = (&Rule, &ActiveAlert)> {
        self.group
            .rules
            .iter()
            .zip(&self.alerts)
            .flat_map(|(r, m)| {
                m.values()
                    .filter(|a| a.state != AlertState::Inactive)
                    .map(move |a| (r, a))
            })
    }

    /// State worth keeping across a restart: alerts of each alerting rule.
    pub fn snapshot(&self) -> Vec<SavedRule> {
        self.group
            .rules
            .iter()
            .zip(&self.alerts)
            .filter(|(r, m)| r.is_alerting() && !m.is_empty())
            .map(|(r, m)| SavedRule {
                name: r.name.clone(),
                expr: r.expr_text.clone(),
                alerts: m.values().cloned().collect(),
            })
            .collect()
    }

    /// Puts back alerts saved by [`GroupState::snapshot`] into rules that
    /// still exist with the same expression.
    pub fn restore(&mut self, saved: &[SavedRule]) {
        for s in saved {
            if let Some(i) = self
                .group
                .rules
                .iter()
                .position(|r| r.is_alerting() && r.name == s.name && r.expr_text == s.expr)
            {
                // Restored alerts are sent again at the first evaluation,
                // so notification and Alertmanager learn of them at once.
                self.alerts[i] = s
                    .alerts
                    .iter()
                    .map(|a| {
                        let mut a = a.clone();
                        a.last_sent_ms = 0;
                        (fingerprint(&a.labels), a)
                    })
                    .collect();
            }
        }
    }

    /// Evaluates every rule in order at `t_ms`; each rule sees what the
    /// rules before it wrote at the same instant.
    pub fn eval(&mut self, ctx: &EvalContext<'_>, t_ms: i64) -> GroupOutcome {
        let started = Instant::now();
        let mut out = GroupOutcome::default();
        let query_t = t_ms - self.group.query_offset_ms.unwrap_or(0);
        for i in 0..self.group.rules.len() {
            let rule_started = Instant::now();
            let result = self.eval_rule(ctx, i, t_ms, query_t, &mut out);
            let health = &mut self.health[i];
            health.last_eval_ms = t_ms;
            health.last_duration_s = rule_started.elapsed().as_secs_f64();
            match result {
                Ok(n) => {
                    health.samples = n;
                    health.last_error = None;
                    out.samples_written += n;
                }
                Err(e) => {
                    health.last_error = Some(e.clone());
                    out.errors.push((self.group.rules[i].name.clone(), e));
                }
            }
        }
        self.last_eval_ms = t_ms;
        self.last_duration_s = started.elapsed().as_secs_f64();
        out
    }

    fn eval_rule(
        &mut self,
        ctx: &EvalContext<'_>,
        i: usize,
        t_ms: i64,
        query_t: i64,
        out: &mut GroupOutcome,
    ) -> Result<usize, String> {
        let rule = &self.group.rules[i];
        let answer = ctx
            .engine
            .instant_expr(ctx.source, &rule.expr, query_t)
            .map_err(|e| e.message);
        let written = match answer {
            Err(e) => {
                // Nothing was produced: the series written last time are
                // not marked stale, as Prometheus keeps them on a failure.
                return Err(e);
            }
            Ok(answer) => {
                let samples = to_samples(answer.value);
                match &rule.kind {
                    RuleKind::Recording => record(rule, &self.group, samples)?,
                    RuleKind::Alerting { .. } => {
                        let alerts = &mut self.alerts[i];
                        alert(rule, &self.group, alerts, samples, ctx, t_ms, out)?
                    }
                }
            }
        };
        let n = written.len();
        let mut batch: Vec<TimeSeries> = Vec::with_capacity(n);
        let mut now_written = HashSet::with_capacity(n);
        for (labels, v) in written {
            now_written.insert(labels.clone());
            batch.push(TimeSeries {
                labels,
                samples: vec![Sample {
                    value: v,
                    timestamp: t_ms,
                }],
                ..Default::default()
            });
        }
        for gone in self.previous[i].difference(&now_written) {
            batch.push(TimeSeries {
                labels: gone.clone(),
                samples: vec![Sample {
                    value: stale_nan(),
                    timestamp: t_ms,
                }],
                ..Default::default()
            });
        }
        self.previous[i] = now_written;
        if !batch.is_empty() {
            ctx.sink
                .append(batch)
                .map_err(|e| format!("writing results: {e}"))?;
        }
        Ok(n)
    }
}

/// Alerts of one rule as saved across restarts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedRule {
    pub name: String,
    pub expr: String,
    pub alerts: Vec<ActiveAlert>,
}

fn same_rule(a: &Rule, b: &Rule) -> bool {
    a.name == b.name
        && a.expr_text == b.expr_text
        && a.labels == b.labels
        && a.is_alerting() == b.is_alerting()
}

/// Identity of an alert: its labels.
pub fn fingerprint(labels: &BTreeMap<String, String>) -> u64 {
    let mut buf = Vec::with_capacity(labels.len() * 24);
    for (k, v) in labels {
        buf.extend_from_slice(k.as_bytes());
        buf.push(0xff);
        buf.extend_from_slice(v.as_bytes());
        buf.push(0xff);
    }
    xxhash_rust::xxh64::xxh64(&buf, 0)
}

/// The answer as (labels, value) pairs; a scalar becomes one sample with
/// no labels, as Prometheus turns it into a vector.
fn to_samples(v: Value) -> Vec<(Labels, f64)> {
    match v {
        Value::Scalar(p) => vec![(Labels::new(), p.v)],
        Value::Vector(series) => series
            .into_iter()
            .filter_map(|s| s.points.first().map(|p| (s.labels, p.v)))
            .collect(),
        Value::Matrix(_) | Value::String { .. } => Vec::new(),
    }
}

fn to_wire(labels: &BTreeMap<String, String>) -> Vec<WireLabel> {
    labels
        .iter()
        .map(|(k, v)| WireLabel {
            name: k.clone(),
            value: v.clone(),
        })
        .collect()
}

fn record(
    rule: &Rule,
    group: &RuleGroup,
    samples: Vec<(Labels, f64)>,
) -> Result<Vec<(Vec<WireLabel>, f64)>, String> {
    if group.limit > 0 && samples.len() > group.limit {
        return Err(format!(
            "exceeded limit of {} with {} series",
            group.limit,
            samples.len()
        ));
    }
    let mut out = Vec::with_capacity(samples.len());
    let mut seen = HashSet::with_capacity(samples.len());
    for (labels, v) in samples {
        let mut l: BTreeMap<String, String> = labels
            .iter()
            .filter(|l| l.name != "__name__")
            .map(|l| (l.name.to_string(), l.value.to_string()))
            .collect();
        apply_labels(
            &mut l,
            group.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        );
        apply_labels(
            &mut l,
            rule.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        );
        l.insert("__name__".into(), rule.name.clone());
        let wire = to_wire(&l);
        if !seen.insert(wire.clone()) {
            return Err(
                "vector contains metrics with the same labelset after applying rule labels".into(),
            );
        }
        out.push((wire, v));
    }
    Ok(out)
}

/// Sets labels; an empty value removes the label.
fn apply_labels<'a>(
    l: &mut BTreeMap<String, String>,
    set: impl Iterator<Item = (&'a str, &'a str)>,
) {
    for (k, v) in set {
        if v.is_empty() {
            l.remove(k);
        } else {
            l.insert(k.to_string(), v.to_string());
        }
    }
}

/// Template data Prometheus gives annotation and label templates.
fn template_data(
    labels: &BTreeMap<String, String>,
    value: f64,
    external_labels: &BTreeMap<String, String>,
    external_url: &str,
) -> TValue {
    let map = |m: &BTreeMap<String, String>| {
        TValue::Map(
            m.iter()
                .map(|(k, v)| (k.clone(), TValue::Str(v.clone())))
                .collect(),
        )
    };
    let mut d = BTreeMap::new();
    d.insert("Labels".to_string(), map(labels));
    d.insert("ExternalLabels".to_string(), map(external_labels));
    d.insert(
        "ExternalURL".to_string(),
        TValue::Str(external_url.to_string()),
    );
    d.insert("Value".to_string(), TValue::Float(value));
    TValue::Map(d)
}

/// Template functions for one evaluation: Prometheus's set, with `query`
/// reading the store at the evaluation time.
fn funcs_at<'a>(ctx: &'a EvalContext<'a>, t_ms: i64) -> Funcs<'a> {
    let mut f = Funcs::prometheus();
    let engine = ctx.engine;
    let source = ctx.source;
    f.insert(
        "query",
        Box::new(move |args: &[TValue]| {
            let Some(TValue::Str(q)) = args.first() else {
                return Err("query takes one string argument".into());
            };
            let answer = engine.instant(source, q, t_ms).map_err(|e| e.message)?;
            let items = to_samples(answer.value)
                .into_iter()
                .map(|(labels, v)| {
                    let mut m = BTreeMap::new();
                    m.insert(
                        "Labels".to_string(),
                        TValue::Map(
                            labels
                                .iter()
                                .map(|l| (l.name.to_string(), TValue::Str(l.value.to_string())))
                                .collect(),
                        ),
                    );
                    m.insert("Value".to_string(), TValue::Float(v));
                    TValue::Map(m)
                })
                .collect();
            Ok(TValue::List(items, BTreeMap::new()))
        }),
    );
    f
}

fn alert(
    rule: &Rule,
    group: &RuleGroup,
    alerts: &mut HashMap<u64, ActiveAlert>,
    samples: Vec<(Labels, f64)>,
    ctx: &EvalContext<'_>,
    t_ms: i64,
    out: &mut GroupOutcome,
) -> Result<Vec<(Vec<WireLabel>, f64)>, String> {
    let RuleKind::Alerting {
        for_ms,
        keep_firing_for_ms,
        label_templates,
        annotations,
        ..
    } = &rule.kind
    else {
        return Ok(Vec::new());
    };
    // Building the function table costs more than most evaluations: only
    // rules with results render templates.
    let funcs = if samples.is_empty() {
        Funcs::builtin()
    } else {
        funcs_at(ctx, t_ms)
    };
    let mut found: HashMap<u64, ActiveAlert> = HashMap::with_capacity(samples.len());
    for (labels, value) in samples {
        let series: BTreeMap<String, String> = labels
            .iter()
            .filter(|l| l.name != "__name__")
            .map(|l| (l.name.to_string(), l.value.to_string()))
            .collect();
        let data = template_data(&series, value, ctx.external_labels, ctx.external_url);
        let mut l = series.clone();
        apply_labels(
            &mut l,
            group.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        );
        for (k, t) in label_templates {
            let v = t
                .render(&data, &funcs)
                .unwrap_or_else(|e| format!("<error expanding template: {e}>"));
            if v.is_empty() {
                l.remove(k);
            } else {
                l.insert(k.clone(), v);
            }
        }
        l.insert("alertname".into(), rule.name.clone());
        let annotations: BTreeMap<String, String> = annotations
            .iter()
            .map(|(k, t)| {
                let v = t
                    .render(&data, &funcs)
                    .unwrap_or_else(|e| format!("<error expanding template: {e}>"));
                (k.clone(), v)
            })
            .collect();
        let fp = fingerprint(&l);
        if found.contains_key(&fp) {
            return Err(
                "vector contains metrics with the same labelset after applying alert labels".into(),
            );
        }
        found.insert(
            fp,
            ActiveAlert {
                labels: l,
                annotations,
                state: AlertState::Pending,
                value,
                active_at_ms: t_ms,
                fired_at_ms: 0,
                resolved_at_ms: 0,
                last_sent_ms: 0,
                keep_firing_since_ms: 0,
            },
        );
    }
    let present: HashSet<u64> = found.keys().copied().collect();
    for (fp, a) in found {
        match alerts.get_mut(&fp) {
            Some(existing) if existing.state != AlertState::Inactive => {
                existing.value = a.value;
                existing.annotations = a.annotations;
            }
            _ => {
                alerts.insert(fp, a);
                out.state_changed = true;
            }
        }
    }
    if group.limit > 0 {
        let active = alerts
            .values()
            .filter(|a| a.state != AlertState::Inactive)
            .count();
        if active > group.limit {
            alerts.clear();
            out.state_changed = true;
            return Err(format!(
                "exceeded limit of {} with {active} alerts",
                group.limit
            ));
        }
    }
    let mut written = Vec::new();
    alerts.retain(|fp, a| {
        if !present.contains(fp) {
            if *keep_firing_for_ms > 0 && a.state == AlertState::Firing {
                if a.keep_firing_since_ms == 0 {
                    a.keep_firing_since_ms = t_ms;
                }
                if t_ms - a.keep_firing_since_ms < *keep_firing_for_ms {
                    return true;
                }
            }
            if a.state == AlertState::Pending
                || (a.resolved_at_ms != 0 && t_ms - a.resolved_at_ms > RESOLVED_RETENTION_MS)
            {
                out.state_changed = true;
                return false;
            }
            if a.state != AlertState::Inactive {
                a.state = AlertState::Inactive;
                a.resolved_at_ms = t_ms;
                out.state_changed = true;
            }
            return true;
        }
        a.keep_firing_since_ms = 0;
        if a.state == AlertState::Pending && t_ms - a.active_at_ms >= *for_ms {
            a.state = AlertState::Firing;
            a.fired_at_ms = t_ms;
            out.state_changed = true;
        }
        true
    });
    for a in alerts.values() {
        if a.state == AlertState::Inactive {
            continue;
        }
        let mut l = a.labels.clone();
        l.insert("alertstate".into(), a.state.as_str().into());
        l.insert("__name__".into(), "ALERTS".into());
        written.push((to_wire(&l), 1.0));
        let mut l = a.labels.clone();
        l.insert("__name__".into(), "ALERTS_FOR_STATE".into());
        written.push((to_wire(&l), (a.active_at_ms / 1000) as f64));
    }
    let delta = ctx.resend_delay_ms.max(ctx.interval_ms);
    let mut url = None;
    for a in alerts.values_mut() {
        if !a.needs_sending(t_ms, ctx.resend_delay_ms) {
            continue;
        }
        let generator_url = url
            .get_or_insert_with(|| generator_url(ctx.external_url, &rule.expr_text))
            .clone();
        a.last_sent_ms = t_ms;
        let resolved = a.state == AlertState::Inactive;
        out.alerts_to_send.push(OutgoingAlert {
            labels: a.labels.clone(),
            annotations: a.annotations.clone(),
            starts_at_ms: a.fired_at_ms,
            ends_at_ms: if resolved {
                a.resolved_at_ms
            } else {
                t_ms + 4 * delta
            },
            resolved,
            generator_url,
        });
    }
    Ok(written)
}

/// Link back to the expression in the collector's UI, as Prometheus
/// builds `generatorURL` for Alertmanager.
pub fn generator_url(external_url: &str, expr: &str) -> String {
    let q: String = form_urlencoded::byte_serialize(expr.as_bytes()).collect();
    format!(
        "{}/graph?g0.expr={q}&g0.tab=1",
        external_url.trim_end_matches('/')
    )
}
