//! Aggregation operators. Each input series is assigned to its group once;
//! the per-step arithmetic then runs over dense per-group arrays.

use crate::value::HashMap;

use lookout_protocol::{Label, Labels};
use promql_parser::parser::{AggregateExpr, Expr, LabelModifier};

use crate::error::{QueryError, Result};
use crate::eval::{Evaluator, Grid, VSeries, Val};
use crate::value::{
    METRIC_NAME, format_float, keep_labels, labels_from, labels_key, without_labels,
};

/// Neumaier's compensated addition, as Prometheus sums: returns the new
/// sum and compensation.
pub(crate) fn kahan_add(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Prometheus's running mean: a compensated sum while it stays finite,
/// then an incremental mean so that large values do not overflow.
#[derive(Clone, Copy, Default)]
pub(crate) struct Mean {
    count: f64,
    sum: f64,
    c: f64,
    mean: f64,
    incremental: bool,
}

impl Mean {
    pub fn add(&mut self, f: f64) {
        self.count += 1.0;
        if self.count == 1.0 {
            self.sum = f;
            self.mean = f;
            self.c = 0.0;
            return;
        }
        if !self.incremental {
            let (s, c) = kahan_add(f, self.sum, self.c);
            if !s.is_infinite() {
                self.sum = s;
                self.c = c;
                return;
            }
            self.incremental = true;
            self.mean = self.sum / (self.count - 1.0);
            self.c /= self.count - 1.0;
        }
        if self.mean.is_infinite() {
            if f.is_infinite() && (self.mean > 0.0) == (f > 0.0) {
                return;
            }
            if !f.is_infinite() && !f.is_nan() {
                return;
            }
        }
        let current = self.mean + self.c;
        let (m, c) = kahan_add(f / self.count - current / self.count, self.mean, self.c);
        self.mean = m;
        self.c = c;
    }

    pub fn value(&self) -> f64 {
        if self.incremental {
            self.mean + self.c
        } else {
            (self.sum + self.c) / self.count
        }
    }
}

/// Welford's running variance, as Prometheus computes `stdvar`.
#[derive(Clone, Copy, Default)]
pub(crate) struct Variance {
    count: f64,
    mean: f64,
    m2: f64,
}

impl Variance {
    pub fn add(&mut self, f: f64) {
        self.count += 1.0;
        if self.count == 1.0 {
            self.mean = f;
            // A lone NaN or infinity has no defined spread.
            self.m2 = if f.is_finite() { 0.0 } else { f64::NAN };
            return;
        }
        let delta = f - self.mean;
        self.mean += delta / self.count;
        self.m2 += delta * (f - self.mean);
    }

    pub fn variance(&self) -> f64 {
        self.m2 / self.count
    }
}

/// Prometheus's `quantile`: NaNs sort first, weighted between neighbours.
pub(crate) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

enum Grouping<'a> {
    By(Vec<&'a str>),
    Without(Vec<&'a str>),
}

impl Grouping<'_> {
    fn labels(&self, l: &Labels) -> Labels {
        match self {
            Grouping::By(names) => keep_labels(l, names),
            Grouping::Without(names) => without_labels(l, names),
        }
    }
}

fn param_expr(a: &AggregateExpr) -> Result<&Expr> {
    a.param
        .as_deref()
        .ok_or_else(|| QueryError::bad_data(format!("aggregation {} needs a parameter", a.op)))
}

pub(crate) fn eval_aggregate(ev: &mut Evaluator<'_>, a: &AggregateExpr, g: &Grid) -> Result<Val> {
    let op = a.op.to_string();
    let grouping = match &a.modifier {
        Some(LabelModifier::Include(l)) => {
            Grouping::By(l.labels.iter().map(String::as_str).collect())
        }
        Some(LabelModifier::Exclude(l)) => {
            let mut names: Vec<&str> = l.labels.iter().map(String::as_str).collect();
            names.push(METRIC_NAME);
            Grouping::Without(names)
        }
        None => Grouping::By(Vec::new()),
    };
    // Parameters are evaluated before the input, as Prometheus does.
    let mut scalar_param = None;
    let mut string_param = None;
    match op.as_str() {
        "topk" | "bottomk" | "quantile" | "limitk" | "limit_ratio" => {
            scalar_param = Some(ev.eval_scalar(param_expr(a)?, g)?);
        }
        "count_values" => match ev.eval(param_expr(a)?, g)? {
            Val::Str(s) => string_param = Some(s),
            other => {
                return Err(QueryError::bad_data(format!(
                    "expected string parameter for count_values, got {}",
                    other.type_name()
                )));
            }
        },
        _ => {}
    }
    let input = ev.eval_vector(&a.expr, g)?;

    // Group membership, groups in order of first appearance.
    let mut group_of = Vec::with_capacity(input.len());
    let mut groups: Vec<(Labels, bool)> = Vec::new();
    let mut index: HashMap<Vec<u8>, usize> = HashMap::default();
    for s in &input {
        let gl = grouping.labels(&s.labels);
        let key = labels_key(&gl);
        let gi = *index.entry(key).or_insert_with(|| {
            groups.push((gl, false));
            groups.len() - 1
        });
        groups[gi].1 |= s.drop_name;
        group_of.push(gi);
    }

    let out = match op.as_str() {
        "sum" | "avg" | "count" | "min" | "max" | "stddev" | "stdvar" | "group" => {
            simple(ev, &op, &input, &group_of, &groups, g)?
        }
        "quantile" => {
            let q = scalar_param.unwrap_or_default();
            if let Some(&bad) = q.iter().find(|q| q.is_nan() || **q < 0.0 || **q > 1.0) {
                ev.annotations.warn(format!(
                    "quantile value should be between 0 and 1, got {}",
                    format_float(bad)
                ));
            }
            let mut values: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); g.n]; groups.len()];
            for (s, &gi) in input.iter().zip(&group_of) {
                for &(i, v) in &s.points {
                    values[gi][i as usize].push(v);
                }
            }
            groups
                .iter()
                .zip(values)
                .filter_map(|((labels, drop), mut per_step)| {
                    let points: Vec<(u32, f64)> = per_step
                        .iter_mut()
                        .enumerate()
                        .filter(|(_, v)| !v.is_empty())
                        .map(|(i, v)| (i as u32, quantile(q[i], v)))
                        .collect();
                    (!points.is_empty()).then(|| VSeries {
                        labels: labels.clone(),
                        drop_name: *drop,
                        points,
                    })
                })
                .collect()
        }
        "count_values" => {
            let label = string_param.unwrap_or_default();
            // Prometheus 3 accepts any non-empty UTF-8 label name.
            if label.is_empty() {
                return Err(QueryError::execution(format!(
                    "invalid label name {label:?}"
                )));
            }
            let mut out: Vec<VSeries> = Vec::new();
            let mut at: HashMap<Vec<u8>, usize> = HashMap::default();
            let mut counts: Vec<Vec<f64>> = Vec::new();
            for (s, &gi) in input.iter().zip(&group_of) {
                for &(i, v) in &s.points {
                    let mut l: Vec<Label> = groups[gi]
                        .0
                        .iter()
                        .filter(|x| x.name != label.as_str())
                        .cloned()
                        .collect();
                    l.push(Label::new(label.as_str(), format_float(v)));
                    let labels = labels_from(l);
                    let key = labels_key(&labels);
                    let oi = *at.entry(key).or_insert_with(|| {
                        out.push(VSeries {
                            labels,
                            drop_name: false,
                            points: Vec::new(),
                        });
                        counts.push(vec![0.0; g.n]);
                        out.len() - 1
                    });
                    counts[oi][i as usize] += 1.0;
                }
            }
            for (s, c) in out.iter_mut().zip(counts) {
                s.points = c
                    .into_iter()
                    .enumerate()
                    .filter(|(_, c)| *c > 0.0)
                    .map(|(i, c)| (i as u32, c))
                    .collect();
            }
            out
        }
        "topk" | "bottomk" | "limitk" | "limit_ratio" => {
            let param = scalar_param.unwrap_or_default();
            select_members(ev, &op, input, &group_of, groups.len(), &param, g)?
        }
        other => {
            return Err(QueryError::bad_data(format!(
                "unknown aggregation {other:?}"
            )));
        }
    };
    Ok(Val::Vector(out))
}

fn simple(
    ev: &mut Evaluator<'_>,
    op: &str,
    input: &[VSeries],
    group_of: &[usize],
    groups: &[(Labels, bool)],
    g: &Grid,
) -> Result<Vec<VSeries>> {
    let cells = groups.len() * g.n;
    if cells > 200_000_000 {
        return Err(QueryError::execution("aggregation result too large"));
    }
    let mut count = vec![0u32; cells];
    let mut out_vals = vec![0.0f64; cells];
    match op {
        "sum" => {
            let mut comp = vec![0.0f64; cells];
            for (s, &gi) in input.iter().zip(group_of) {
                for &(i, v) in &s.points {
                    let c = gi * g.n + i as usize;
                    if count[c] == 0 {
                        out_vals[c] = v;
                    } else {
                        let (sum, k) = kahan_add(v, out_vals[c], comp[c]);
                        out_vals[c] = sum;
                        comp[c] = k;
                    }
                    count[c] += 1;
                }
            }
            for (v, k) in out_vals.iter_mut().zip(&comp) {
                *v += *k;
            }
        }
        "avg" => {
            let mut means = vec![Mean::default(); cells];
            for (s, &gi) in input.iter().zip(group_of) {
                for &(i, v) in &s.points {
                    let c = gi * g.n + i as usize;
                    means[c].add(v);
                    count[c] += 1;
                }
            }
            for (v, m) in out_vals.iter_mut().zip(&means) {
                *v = m.value();
            }
        }
        "stddev" | "stdvar" => {
            let mut vars = vec![Variance::default(); cells];
            for (s, &gi) in input.iter().zip(group_of) {
                for &(i, v) in &s.points {
                    let c = gi * g.n + i as usize;
                    vars[c].add(v);
                    count[c] += 1;
                }
            }
            let sqrt = op == "stddev";
            for (v, var) in out_vals.iter_mut().zip(&vars) {
                let x = var.variance();
                *v = if sqrt { x.sqrt() } else { x };
            }
        }
        _ => {
            for (s, &gi) in input.iter().zip(group_of) {
                for &(i, v) in &s.points {
                    let c = gi * g.n + i as usize;
                    let first = count[c] == 0;
                    count[c] += 1;
                    let cur = &mut out_vals[c];
                    match op {
                        "count" => *cur += 1.0,
                        "group" => *cur = 1.0,
                        "max" if first || *cur < v || cur.is_nan() => *cur = v,
                        "min" if first || *cur > v || cur.is_nan() => *cur = v,
                        _ => {}
                    }
                }
            }
        }
    }
    ev.check_deadline()?;
    let mut out = Vec::with_capacity(groups.len());
    for (gi, (labels, drop)) in groups.iter().enumerate() {
        let base = gi * g.n;
        let points: Vec<(u32, f64)> = (0..g.n)
            .filter(|&i| count[base + i] > 0)
            .map(|i| (i as u32, out_vals[base + i]))
            .collect();
        if !points.is_empty() {
            out.push(VSeries {
                labels: labels.clone(),
                drop_name: *drop,
                points,
            });
        }
    }
    Ok(out)
}

/// `topk`, `bottomk`, `limitk` and `limit_ratio`: keep some members of each
/// group at each step, with their own labels.
fn select_members(
    ev: &mut Evaluator<'_>,
    op: &str,
    input: Vec<VSeries>,
    group_of: &[usize],
    n_groups: usize,
    param: &[f64],
    g: &Grid,
) -> Result<Vec<VSeries>> {
    let mut keep: Vec<Vec<bool>> = input.iter().map(|s| vec![false; s.points.len()]).collect();
    // Rank of a kept point within its group at its step, for ordering
    // instant results.
    let mut rank_of: Vec<usize> = vec![usize::MAX; input.len()];
    if op == "limit_ratio" {
        let mut warned = false;
        for (si, s) in input.iter().enumerate() {
            let offset = crate::functions::labels_hash(&s.labels) as f64 / u64::MAX as f64;
            for (pi, &(i, _)) in s.points.iter().enumerate() {
                let mut r = param[i as usize];
                if r.is_nan() {
                    return Err(QueryError::execution("Ratio value is NaN".to_string()));
                }
                if !(-1.0..=1.0).contains(&r) {
                    let capped = r.clamp(-1.0, 1.0);
                    if !warned {
                        ev.annotations.warn(format!(
                            "ratio value should be between -1 and 1, got {}, capping to {}",
                            format_float(r),
                            format_float(capped)
                        ));
                        warned = true;
                    }
                    r = capped;
                }
                keep[si][pi] = if r >= 0.0 {
                    offset < r
                } else {
                    offset >= 1.0 + r
                };
            }
        }
    } else {
        // Members per (group, step), with their point index.
        let mut cells: Vec<Vec<(usize, usize)>> = vec![Vec::new(); n_groups * g.n];
        for (si, s) in input.iter().enumerate() {
            for (pi, &(i, _)) in s.points.iter().enumerate() {
                cells[group_of[si] * g.n + i as usize].push((si, pi));
            }
        }
        for (c, members) in cells.iter_mut().enumerate() {
            if members.is_empty() {
                continue;
            }
            let step = c % g.n;
            let kf = param[step];
            if kf.is_nan() {
                return Err(QueryError::execution("Parameter value is NaN"));
            }
            if kf >= 9.2e18 || kf <= -9.2e18 {
                return Err(QueryError::execution(format!(
                    "Scalar value {} overflows int64",
                    format_float(kf)
                )));
            }
            let k = kf as i64;
            if k < 1 {
                continue;
            }
            let value = |&(si, pi): &(usize, usize)| input[si].points[pi].1;
            match op {
                "topk" => members.sort_by(|a, b| cmp_desc_nan_last(value(a), value(b))),
                "bottomk" => members.sort_by(|a, b| cmp_asc_nan_last(value(a), value(b))),
                _ => {}
            }
            for (r, &(si, pi)) in members.iter().take(k as usize).enumerate() {
                keep[si][pi] = true;
                rank_of[si] = rank_of[si].min(r);
            }
        }
    }
    let mut out: Vec<(usize, usize, VSeries)> = Vec::new();
    for (si, (mut s, k)) in input.into_iter().zip(keep).enumerate() {
        let mut it = k.iter();
        s.points.retain(|_| *it.next().unwrap_or(&false));
        if !s.points.is_empty() {
            out.push((group_of[si], rank_of[si], s));
        }
    }
    if g.n == 1 && (op == "topk" || op == "bottomk") {
        out.sort_by_key(|(gi, rank, _)| (*gi, *rank));
    }
    Ok(out.into_iter().map(|(_, _, s)| s).collect())
}

fn cmp_desc_nan_last(a: f64, b: f64) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => b.partial_cmp(&a).unwrap_or(std::cmp::Ordering::Equal),
    }
}

fn cmp_asc_nan_last(a: f64, b: f64) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_interpolates_and_bounds() {
        assert_eq!(quantile(0.5, &mut [1.0, 3.0]), 2.0);
        assert_eq!(quantile(1.5, &mut [1.0]), f64::INFINITY);
        assert_eq!(quantile(-1.0, &mut [1.0]), f64::NEG_INFINITY);
        assert!(quantile(0.5, &mut []).is_nan());
    }

    #[test]
    fn compensated_sum_keeps_small_terms() {
        let (mut s, mut c) = (0.0, 0.0);
        for v in [1e100, 1.0, -1e100] {
            (s, c) = kahan_add(v, s, c);
        }
        assert_eq!(s + c, 1.0);
    }

    #[test]
    fn mean_survives_overflow() {
        let mut m = Mean::default();
        m.add(f64::MAX);
        m.add(f64::MAX);
        assert_eq!(m.value(), f64::MAX);
    }
}
