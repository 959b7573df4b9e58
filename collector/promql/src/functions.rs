//! Function calls: per-sample math, range-vector functions, label
//! functions and classic-histogram quantiles.

use crate::value::HashMap;

use lookout_protocol::{Label, Labels};
use promql_parser::label::MatchOp;
use promql_parser::parser::{Call, Expr};
use regex::Regex;

use crate::aggregate::{Mean, kahan_add, quantile};
use crate::error::{QueryError, Result};
use crate::eval::{Evaluator, Grid, RangeVal, VSeries, Val, merge_same_labels, metric_name};
use crate::value::{METRIC_NAME, format_float, labels_from, labels_key, set_label, without_labels};

/// Go's `math.Min`/`math.Max`: NaN wins.
fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// XXH64 of the label pairs in Prometheus's `labels.Hash` layout, so that
/// `limit_ratio` keeps the same series Prometheus keeps.
pub(crate) fn labels_hash(l: &Labels) -> u64 {
    let mut b = Vec::with_capacity(l.len() * 16);
    for x in l.iter() {
        b.extend_from_slice(x.name.as_bytes());
        b.push(0xff);
        b.extend_from_slice(x.value.as_bytes());
        b.push(0xff);
    }
    xxhash_rust::xxh64::xxh64(&b, 0)
}

fn arg(c: &Call, i: usize) -> Result<&Expr> {
    c.args.args.get(i).map(|b| b.as_ref()).ok_or_else(|| {
        QueryError::bad_data(format!("missing argument {} of {}", i + 1, c.func.name))
    })
}

fn unparen(mut e: &Expr) -> &Expr {
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    e
}

fn string_arg(ev: &mut Evaluator<'_>, c: &Call, i: usize, g: &Grid) -> Result<String> {
    match ev.eval(arg(c, i)?, g)? {
        Val::Str(s) => Ok(s),
        other => Err(QueryError::bad_data(format!(
            "expected string argument {} of {}, got {}",
            i + 1,
            c.func.name,
            other.type_name()
        ))),
    }
}

fn map_values(mut vs: Vec<VSeries>, f: impl Fn(f64) -> f64) -> Vec<VSeries> {
    for s in &mut vs {
        s.drop_name = true;
        for p in &mut s.points {
            p.1 = f(p.1);
        }
    }
    vs
}

fn math_fn(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "sqrt" => f64::sqrt,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sin" => f64::sin,
        "cos" => f64::cos,
        "tan" => f64::tan,
        "asin" => f64::asin,
        "acos" => f64::acos,
        "atan" => f64::atan,
        "sinh" => f64::sinh,
        "cosh" => f64::cosh,
        "tanh" => f64::tanh,
        "asinh" => f64::asinh,
        "acosh" => f64::acosh,
        "atanh" => f64::atanh,
        "deg" => |v| v * 180.0 / std::f64::consts::PI,
        "rad" => |v| v * std::f64::consts::PI / 180.0,
        "sgn" => |v: f64| {
            if v < 0.0 {
                -1.0
            } else if v > 0.0 {
                1.0
            } else {
                v
            }
        },
        _ => return None,
    })
}

pub(crate) fn eval_call(ev: &mut Evaluator<'_>, c: &Call, g: &Grid) -> Result<Val> {
    let name = c.func.name;
    if let Some(f) = math_fn(name) {
        let v = ev.eval_vector(arg(c, 0)?, g)?;
        return Ok(Val::Vector(map_values(v, f)));
    }
    match name {
        "time" => Ok(Val::Scalar(
            (0..g.n).map(|i| g.t(i) as f64 / 1000.0).collect(),
        )),
        "pi" => Ok(Val::Scalar(vec![std::f64::consts::PI; g.n])),
        "vector" => {
            let s = ev.eval_scalar(arg(c, 0)?, g)?;
            Ok(Val::Vector(vec![VSeries {
                labels: Labels::new(),
                drop_name: false,
                points: s
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| (i as u32, v))
                    .collect(),
            }]))
        }
        "scalar" => {
            let v = ev.eval_vector(arg(c, 0)?, g)?;
            let mut count = vec![0u32; g.n];
            let mut value = vec![f64::NAN; g.n];
            for s in &v {
                for &(i, x) in &s.points {
                    count[i as usize] += 1;
                    value[i as usize] = x;
                }
            }
            Ok(Val::Scalar(
                count
                    .iter()
                    .zip(value)
                    .map(|(&c, v)| if c == 1 { v } else { f64::NAN })
                    .collect(),
            ))
        }
        "timestamp" => {
            let v = match unparen(arg(c, 0)?) {
                Expr::VectorSelector(vs) => ev.eval_vector_selector(vs, g, true)?,
                other => {
                    let mut v = ev.eval_vector(other, g)?;
                    for s in &mut v {
                        for p in &mut s.points {
                            p.1 = g.t(p.0 as usize) as f64 / 1000.0;
                        }
                    }
                    v
                }
            };
            Ok(Val::Vector(map_values(v, |x| x)))
        }
        "absent" => {
            let v = ev.eval_vector(arg(c, 0)?, g)?;
            let mut present = vec![false; g.n];
            for s in &v {
                for &(i, _) in &s.points {
                    present[i as usize] = true;
                }
            }
            Ok(Val::Vector(absent_result(arg(c, 0)?, &present)))
        }
        "absent_over_time" => {
            let rv = range_arg(ev, c, 0, g)?;
            let mut present = vec![false; g.n];
            for s in &rv.series {
                for (i, p) in present.iter_mut().enumerate() {
                    if !*p && !rv.window(s, i).is_empty() {
                        *p = true;
                    }
                }
            }
            Ok(Val::Vector(absent_result(arg(c, 0)?, &present)))
        }
        "clamp" | "clamp_min" | "clamp_max" => {
            let v = ev.eval_vector(arg(c, 0)?, g)?;
            let a = ev.eval_scalar(arg(c, 1)?, g)?;
            let b = if name == "clamp" {
                Some(ev.eval_scalar(arg(c, 2)?, g)?)
            } else {
                None
            };
            let mut out = Vec::with_capacity(v.len());
            for mut s in v {
                s.drop_name = true;
                s.points.retain_mut(|(i, x)| {
                    let i = *i as usize;
                    match name {
                        "clamp_min" => *x = go_max(a[i], *x),
                        "clamp_max" => *x = go_min(a[i], *x),
                        _ => {
                            let (lo, hi) = (a[i], b.as_ref().map_or(f64::NAN, |b| b[i]));
                            if hi < lo {
                                return false;
                            }
                            *x = go_max(lo, go_min(hi, *x));
                        }
                    }
                    true
                });
                if !s.points.is_empty() {
                    out.push(s);
                }
            }
            Ok(Val::Vector(out))
        }
        "round" => {
            let mut v = ev.eval_vector(arg(c, 0)?, g)?;
            let to = if c.args.args.len() > 1 {
                ev.eval_scalar(arg(c, 1)?, g)?
            } else {
                vec![1.0; g.n]
            };
            for s in &mut v {
                s.drop_name = true;
                for p in &mut s.points {
                    let inv = 1.0 / to[p.0 as usize];
                    p.1 = (p.1 * inv + 0.5).floor() / inv;
                }
            }
            Ok(Val::Vector(v))
        }
        "day_of_month" | "day_of_week" | "day_of_year" | "days_in_month" | "hour" | "minute"
        | "month" | "year" => {
            let v = if c.args.args.is_empty() {
                vec![VSeries {
                    labels: Labels::new(),
                    drop_name: false,
                    points: (0..g.n)
                        .map(|i| (i as u32, g.t(i) as f64 / 1000.0))
                        .collect(),
                }]
            } else {
                ev.eval_vector(arg(c, 0)?, g)?
            };
            let part = name.to_string();
            Ok(Val::Vector(map_values(v, move |x| date_part(&part, x))))
        }
        "label_replace" => label_replace(ev, c, g),
        "label_join" => label_join(ev, c, g),
        "sort" | "sort_desc" => {
            let mut v = ev.eval_vector(arg(c, 0)?, g)?;
            let desc = name == "sort_desc";
            let key = |s: &VSeries| s.points.first().map_or(f64::NAN, |p| p.1);
            v.sort_by(|a, b| {
                let (x, y) = (key(a), key(b));
                match (x.is_nan(), y.is_nan()) {
                    (true, true) => std::cmp::Ordering::Equal,
                    (true, false) => std::cmp::Ordering::Greater,
                    (false, true) => std::cmp::Ordering::Less,
                    _ if desc => y.partial_cmp(&x).unwrap_or(std::cmp::Ordering::Equal),
                    _ => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
                }
            });
            Ok(Val::Vector(v))
        }
        "sort_by_label" | "sort_by_label_desc" => {
            let mut v = ev.eval_vector(arg(c, 0)?, g)?;
            let mut names = Vec::new();
            for i in 1..c.args.args.len() {
                names.push(string_arg(ev, c, i, g)?);
            }
            let desc = name == "sort_by_label_desc";
            v.sort_by(|a, b| {
                for n in &names {
                    let (x, y) = (a.labels.get(n).unwrap_or(""), b.labels.get(n).unwrap_or(""));
                    if x != y {
                        let o = natural_cmp(x, y);
                        return if desc { o.reverse() } else { o };
                    }
                }
                let o = lookout_tsdb::head::cmp_labels(&a.labels, &b.labels);
                if desc { o.reverse() } else { o }
            });
            Ok(Val::Vector(v))
        }
        "histogram_quantile" => histogram_quantile(ev, c, g),
        "histogram_fraction" => histogram_fraction(ev, c, g),
        "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_stddev"
        | "histogram_stdvar" => {
            // These read native histograms only; float samples are ignored.
            ev.eval_vector(arg(c, 0)?, g)?;
            Ok(Val::Vector(Vec::new()))
        }
        _ => range_function(ev, c, g),
    }
}

fn range_arg(ev: &mut Evaluator<'_>, c: &Call, i: usize, g: &Grid) -> Result<RangeVal> {
    match ev.eval(arg(c, i)?, g)? {
        Val::Range(r) => Ok(r),
        other => Err(QueryError::bad_data(format!(
            "expected range vector as argument {} of {}, got {}",
            i + 1,
            c.func.name,
            other.type_name()
        ))),
    }
}

/// Labels for `absent`: the selector's equality matchers, each name once.
fn absent_result(e: &Expr, present: &[bool]) -> Vec<VSeries> {
    let points: Vec<(u32, f64)> = present
        .iter()
        .enumerate()
        .filter(|(_, p)| !**p)
        .map(|(i, _)| (i as u32, 1.0))
        .collect();
    if points.is_empty() {
        return Vec::new();
    }
    let matchers = match unparen(e) {
        Expr::VectorSelector(vs) => Some(&vs.matchers),
        Expr::MatrixSelector(ms) => Some(&ms.vs.matchers),
        _ => None,
    };
    let mut labels: Vec<Label> = Vec::new();
    if let Some(ms) = matchers {
        let all: Vec<&promql_parser::label::Matcher> = ms
            .matchers
            .iter()
            .chain(ms.or_matchers.iter().flatten())
            .collect();
        let mut seen: HashMap<&str, usize> = HashMap::default();
        for m in &all {
            *seen.entry(m.name.as_str()).or_default() += 1;
        }
        for m in &all {
            if m.name == METRIC_NAME || seen[m.name.as_str()] != 1 {
                continue;
            }
            if matches!(m.op, MatchOp::Equal) {
                labels.push(Label::new(m.name.as_str(), m.value.as_str()));
            }
        }
    }
    vec![VSeries {
        labels: labels_from(labels),
        drop_name: false,
        points,
    }]
}

/// Compares strings with runs of digits compared as numbers.
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i].is_ascii_digit() && b[j].is_ascii_digit() {
            let si = i;
            while i < a.len() && a[i].is_ascii_digit() {
                i += 1;
            }
            let sj = j;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            let na = std::str::from_utf8(&a[si..i])
                .unwrap_or("")
                .trim_start_matches('0');
            let nb = std::str::from_utf8(&b[sj..j])
                .unwrap_or("")
                .trim_start_matches('0');
            let o = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
            if o != Ordering::Equal {
                return o;
            }
        } else {
            if a[i] != b[j] {
                return a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
    }
    (a.len() - i).cmp(&(b.len() - j))
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn date_part(part: &str, secs: f64) -> f64 {
    if secs.is_nan() || secs.is_infinite() {
        return f64::NAN;
    }
    let s = secs.floor() as i64;
    let days = s.div_euclid(86_400);
    let sod = s.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let month_len = |y: i64, m: u32| -> u32 {
        match m {
            2 if is_leap(y) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        }
    };
    (match part {
        "day_of_month" => d as i64,
        "day_of_week" => (days + 4).rem_euclid(7),
        "day_of_year" => {
            let mut n = d as i64;
            for mm in 1..m {
                n += month_len(y, mm) as i64;
            }
            n
        }
        "days_in_month" => month_len(y, m) as i64,
        "hour" => sod / 3600,
        "minute" => (sod % 3600) / 60,
        "month" => m as i64,
        _ => y,
    }) as f64
}

fn check_label_name(name: &str, func: &str, what: &str) -> Result<()> {
    if name.is_empty() || name.contains('\u{FFFD}') {
        return Err(QueryError::execution(format!(
            "invalid {what} label name in {func}(): {name:?}"
        )));
    }
    Ok(())
}

fn label_replace(ev: &mut Evaluator<'_>, c: &Call, g: &Grid) -> Result<Val> {
    let v = ev.eval_vector(arg(c, 0)?, g)?;
    let dst = string_arg(ev, c, 1, g)?;
    let repl = string_arg(ev, c, 2, g)?;
    let src = string_arg(ev, c, 3, g)?;
    let pattern = string_arg(ev, c, 4, g)?;
    let re = Regex::new(&format!("^(?s:{pattern})$")).map_err(|e| {
        QueryError::execution(format!(
            "invalid regular expression in label_replace(): {pattern}: {e}"
        ))
    })?;
    check_label_name(&dst, "label_replace", "destination")?;
    let mut out = Vec::with_capacity(v.len());
    for mut s in v {
        let value = s.labels.get(&src).unwrap_or("").to_string();
        if let Some(caps) = re.captures(&value) {
            let mut res = String::new();
            caps.expand(&repl, &mut res);
            s.labels = set_label(&s.labels, &dst, &res);
            if dst == METRIC_NAME {
                s.drop_name = false;
            }
        }
        out.push(s);
    }
    Ok(Val::Vector(merge_same_labels(out)?))
}

fn label_join(ev: &mut Evaluator<'_>, c: &Call, g: &Grid) -> Result<Val> {
    let v = ev.eval_vector(arg(c, 0)?, g)?;
    let dst = string_arg(ev, c, 1, g)?;
    let sep = string_arg(ev, c, 2, g)?;
    let mut srcs = Vec::new();
    for i in 3..c.args.args.len() {
        srcs.push(string_arg(ev, c, i, g)?);
    }
    check_label_name(&dst, "label_join", "destination")?;
    let mut out = Vec::with_capacity(v.len());
    for mut s in v {
        let joined: Vec<&str> = srcs.iter().map(|n| s.labels.get(n).unwrap_or("")).collect();
        let joined = joined.join(&sep);
        s.labels = set_label(&s.labels, &dst, &joined);
        if dst == METRIC_NAME {
            s.drop_name = false;
        }
        out.push(s);
    }
    Ok(Val::Vector(merge_same_labels(out)?))
}

/// Classic histogram buckets of one group at one step.
struct Buckets {
    labels: Labels,
    drop_name: bool,
    per_step: Vec<Vec<(f64, f64)>>,
}

fn gather_buckets(ev: &mut Evaluator<'_>, e: &Expr, g: &Grid) -> Result<Vec<Buckets>> {
    let v = ev.eval_vector(e, g)?;
    let mut groups: Vec<Buckets> = Vec::new();
    let mut index: HashMap<Vec<u8>, usize> = HashMap::default();
    for s in v {
        let le = s.labels.get("le").and_then(parse_le);
        let Some(le) = le else {
            if let Some(name) = metric_name(&s.labels) {
                ev.annotations.info(format!(
                    "bucket label \"le\" is missing or has a malformed value of {:?} for metric name {name:?}",
                    s.labels.get("le").unwrap_or("")
                ));
            }
            continue;
        };
        let labels = without_labels(&s.labels, &["le"]);
        let key = labels_key(&labels);
        let gi = *index.entry(key).or_insert_with(|| {
            groups.push(Buckets {
                labels,
                drop_name: true,
                per_step: vec![Vec::new(); g.n],
            });
            groups.len() - 1
        });
        groups[gi].drop_name = true;
        for &(i, x) in &s.points {
            groups[gi].per_step[i as usize].push((le, x));
        }
    }
    Ok(groups)
}

fn parse_le(s: &str) -> Option<f64> {
    match s.trim() {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        t => t.parse().ok(),
    }
}

/// Sorts buckets, merges equal bounds and evens out small or negative steps
/// in the cumulative counts, as Prometheus prepares classic buckets.
fn prepare_buckets(b: &mut Vec<(f64, f64)>) -> (bool, bool) {
    b.sort_by(|x, y| x.0.partial_cmp(&y.0).unwrap_or(std::cmp::Ordering::Equal));
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(b.len());
    for &(le, c) in b.iter() {
        match merged.last_mut() {
            Some(last) if last.0 == le => last.1 += c,
            _ => merged.push((le, c)),
        }
    }
    *b = merged;
    let (mut forced, mut fixed) = (false, false);
    if b.is_empty() {
        return (false, false);
    }
    let mut prev = b[0].1;
    for x in b.iter_mut().skip(1) {
        let cur = x.1;
        if cur == prev {
            continue;
        }
        if almost_equal(prev, cur, 1e-12) {
            x.1 = prev;
            fixed = true;
            continue;
        }
        if cur < prev {
            x.1 = prev;
            forced = true;
            continue;
        }
        prev = cur;
    }
    (forced, fixed)
}

fn almost_equal(a: f64, b: f64, eps: f64) -> bool {
    if a == b {
        return true;
    }
    let min_normal = f64::from_bits(0x0010000000000000);
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || (a.abs() + b.abs()) < min_normal {
        return diff < eps * min_normal;
    }
    diff / go_min(a.abs() + b.abs(), f64::MAX) < eps
}

fn bucket_quantile(q: f64, b: &mut Vec<(f64, f64)>) -> (f64, bool) {
    if q.is_nan() {
        return (f64::NAN, false);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, false);
    }
    if q > 1.0 {
        return (f64::INFINITY, false);
    }
    b.sort_by(|x, y| x.0.partial_cmp(&y.0).unwrap_or(std::cmp::Ordering::Equal));
    if b.last().is_none_or(|l| l.0 != f64::INFINITY) {
        return (f64::NAN, false);
    }
    let (forced, _) = prepare_buckets(b);
    if b.len() < 2 {
        return (f64::NAN, forced);
    }
    let observations = b[b.len() - 1].1;
    if observations == 0.0 || observations.is_nan() {
        return (f64::NAN, forced);
    }
    let mut rank = q * observations;
    let last = b.len() - 1;
    let idx = b[..last].partition_point(|x| x.1 < rank);
    if idx == last {
        return (b[last - 1].0, forced);
    }
    if idx == 0 && b[0].0 <= 0.0 {
        return (b[0].0, forced);
    }
    let (mut start, end, mut count) = (0.0, b[idx].0, b[idx].1);
    if idx > 0 {
        start = b[idx - 1].0;
        count -= b[idx - 1].1;
        rank -= b[idx - 1].1;
    }
    (start + (end - start) * (rank / count), forced)
}

fn histogram_quantile(ev: &mut Evaluator<'_>, c: &Call, g: &Grid) -> Result<Val> {
    let q = ev.eval_scalar(arg(c, 0)?, g)?;
    if let Some(&bad) = q.iter().find(|q| q.is_nan() || **q < 0.0 || **q > 1.0) {
        ev.annotations.warn(format!(
            "quantile value should be between 0 and 1, got {}",
            format_float(bad)
        ));
    }
    let groups = gather_buckets(ev, arg(c, 1)?, g)?;
    let mut forced_names = Vec::new();
    let out = per_bucket_group(groups, |labels, i, b| {
        let (v, forced) = bucket_quantile(q[i], b);
        if forced {
            forced_names.push(metric_name(labels).unwrap_or("").to_string());
        }
        v
    });
    for name in forced_names {
        ev.annotations.info(format!(
            "input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) for metric name {name:?}"
        ));
    }
    Ok(Val::Vector(out))
}

/// One output series per bucket group, with `f`'s value at every step the
/// group has buckets.
fn per_bucket_group(
    groups: Vec<Buckets>,
    mut f: impl FnMut(&Labels, usize, &mut Vec<(f64, f64)>) -> f64,
) -> Vec<VSeries> {
    let mut out = Vec::with_capacity(groups.len());
    for mut grp in groups {
        let labels = &grp.labels;
        let points: Vec<(u32, f64)> = grp
            .per_step
            .iter_mut()
            .enumerate()
            .filter(|(_, b)| !b.is_empty())
            .map(|(i, b)| (i as u32, f(labels, i, b)))
            .collect();
        if !points.is_empty() {
            out.push(VSeries {
                labels: grp.labels,
                drop_name: grp.drop_name,
                points,
            });
        }
    }
    out
}

fn bucket_fraction(lower: f64, upper: f64, b: &mut Vec<(f64, f64)>) -> f64 {
    b.sort_by(|x, y| x.0.partial_cmp(&y.0).unwrap_or(std::cmp::Ordering::Equal));
    if b.last().is_none_or(|l| l.0 != f64::INFINITY) {
        return f64::NAN;
    }
    prepare_buckets(b);
    let count = b[b.len() - 1].1;
    if count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let (mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    for (i, &(ub, bc)) in b.iter().enumerate() {
        let lb = if i > 0 {
            b[i - 1].0
        } else if ub > 0.0 {
            0.0
        } else {
            f64::NEG_INFINITY
        };
        let interp = |v: f64| rank + (bc - rank) * (v - lb) / (ub - lb);
        if !lower_set && lb >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && lb >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && lb < lower && ub > lower {
            lower_rank = interp(lower);
            lower_set = true;
        }
        if !upper_set && lb < upper && ub > upper {
            upper_rank = interp(upper);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank = bc;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    (upper_rank - lower_rank) / count
}

fn histogram_fraction(ev: &mut Evaluator<'_>, c: &Call, g: &Grid) -> Result<Val> {
    let lo = ev.eval_scalar(arg(c, 0)?, g)?;
    let hi = ev.eval_scalar(arg(c, 1)?, g)?;
    let groups = gather_buckets(ev, arg(c, 2)?, g)?;
    Ok(Val::Vector(per_bucket_group(groups, |_, i, b| {
        bucket_fraction(lo[i], hi[i], b)
    })))
}

/// Least-squares line through the samples, times relative to
/// `intercept_t`, with compensated sums as Prometheus computes it.
fn linear_regression(samples: &[(i64, f64)], intercept_t: i64) -> (f64, f64) {
    let init = samples[0].1;
    let mut const_y = true;
    let (mut n, mut sx, mut cx, mut sy, mut cy, mut sxy, mut cxy, mut sx2, mut cx2) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    for (i, &(t, v)) in samples.iter().enumerate() {
        if const_y && i > 0 && v != init {
            const_y = false;
        }
        n += 1.0;
        let x = (t - intercept_t) as f64 / 1e3;
        (sx, cx) = kahan_add(x, sx, cx);
        (sy, cy) = kahan_add(v, sy, cy);
        (sxy, cxy) = kahan_add(x * v, sxy, cxy);
        (sx2, cx2) = kahan_add(x * x, sx2, cx2);
    }
    if const_y {
        if init.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init);
    }
    sx += cx;
    sy += cy;
    sxy += cxy;
    sx2 += cx2;
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    (slope, sy / n - slope * sx / n)
}

/// `rate`, `increase` and `delta` with Prometheus's extrapolation to the
/// window's edges.
fn extrapolated_rate(
    w: &[(i64, f64)],
    range_start: i64,
    range_end: i64,
    range_secs: f64,
    counter: bool,
    rate: bool,
) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let last = w.len() - 1;
    let mut result = w[last].1 - w[0].1;
    if counter {
        let mut prev = w[0].1;
        for &(_, v) in &w[1..] {
            if v < prev {
                result += prev;
            }
            prev = v;
        }
    }
    let (first_t, last_t) = (w[0].0, w[last].0);
    let mut to_start = (first_t - range_start) as f64 / 1000.0;
    let mut to_end = (range_end - last_t) as f64 / 1000.0;
    let sampled = (last_t - first_t) as f64 / 1000.0;
    let avg = sampled / last as f64;
    let threshold = avg * 1.1;
    if to_start >= threshold {
        to_start = avg / 2.0;
    }
    if counter && result > 0.0 && w[0].1 >= 0.0 {
        let to_zero = sampled * (w[0].1 / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = avg / 2.0;
    }
    let mut factor = (sampled + to_start + to_end) / sampled;
    if rate {
        factor /= range_secs;
    }
    Some(result * factor)
}

fn has_counter_suffix(name: &str) -> bool {
    ["_total", "_sum", "_count", "_bucket"]
        .iter()
        .any(|s| name.ends_with(s))
}

fn range_function(ev: &mut Evaluator<'_>, c: &Call, g: &Grid) -> Result<Val> {
    let name = c.func.name;
    // Scalar parameters come before or after the range argument.
    let (range_idx, params): (usize, Vec<Vec<f64>>) = match name {
        "quantile_over_time" => (1, vec![ev.eval_scalar(arg(c, 0)?, g)?]),
        "predict_linear" => (0, vec![ev.eval_scalar(arg(c, 1)?, g)?]),
        "double_exponential_smoothing" => (
            0,
            vec![
                ev.eval_scalar(arg(c, 1)?, g)?,
                ev.eval_scalar(arg(c, 2)?, g)?,
            ],
        ),
        "rate"
        | "increase"
        | "delta"
        | "irate"
        | "idelta"
        | "deriv"
        | "changes"
        | "resets"
        | "avg_over_time"
        | "min_over_time"
        | "max_over_time"
        | "sum_over_time"
        | "count_over_time"
        | "last_over_time"
        | "first_over_time"
        | "present_over_time"
        | "stddev_over_time"
        | "stdvar_over_time"
        | "mad_over_time"
        | "ts_of_min_over_time"
        | "ts_of_max_over_time"
        | "ts_of_last_over_time"
        | "ts_of_first_over_time" => (0, Vec::new()),
        other => {
            return Err(QueryError::bad_data(format!(
                "function {other:?} is not supported"
            )));
        }
    };
    if name == "quantile_over_time"
        && let Some(&bad) = params[0]
            .iter()
            .find(|q| q.is_nan() || **q < 0.0 || **q > 1.0)
    {
        ev.annotations.warn(format!(
            "quantile value should be between 0 and 1, got {}",
            format_float(bad)
        ));
    }
    if name == "double_exponential_smoothing" {
        for (p, what) in params.iter().zip(["smoothing", "trend"]) {
            if let Some(&bad) = p.iter().find(|x| !(**x > 0.0 && **x < 1.0)) {
                return Err(QueryError::execution(format!(
                    "invalid {what} factor. Expected: 0 < {} < 1, got: {:.6}",
                    if what == "smoothing" { "sf" } else { "tf" },
                    bad
                )));
            }
        }
    }
    let rv = range_arg(ev, c, range_idx, g)?;
    let keep_name = matches!(name, "last_over_time" | "first_over_time");
    let range_secs = rv.range as f64 / 1000.0;
    if matches!(name, "rate" | "increase") {
        for s in &rv.series {
            if let Some(n) = metric_name(&s.labels)
                && !has_counter_suffix(n)
            {
                ev.annotations.info(format!(
                    "metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {n:?}"
                ));
            }
        }
    }
    let mut out = Vec::with_capacity(rv.series.len());
    for s in &rv.series {
        ev.check_deadline()?;
        let mut points = Vec::new();
        #[allow(clippy::needless_range_loop)] // `i` indexes windows, parameters and the grid
        for i in 0..g.n {
            let w = rv.window(s, i);
            if w.is_empty() {
                continue;
            }
            let end = rv.ends[i];
            let v = match name {
                "rate" | "increase" | "delta" => extrapolated_rate(
                    w,
                    end - rv.range,
                    end,
                    range_secs,
                    name != "delta",
                    name == "rate",
                ),
                "irate" | "idelta" => instant_value(w, name == "irate"),
                "deriv" => (w.len() >= 2).then(|| linear_regression(w, w[0].0).0),
                "predict_linear" => (w.len() >= 2).then(|| {
                    // Prometheus anchors the line at the step's time, not
                    // at the window's (offset) end.
                    let (slope, intercept) = linear_regression(w, g.t(i));
                    slope * params[0][i] + intercept
                }),
                "changes" => Some(
                    w.windows(2)
                        .filter(|p| p[0].1 != p[1].1 && !(p[0].1.is_nan() && p[1].1.is_nan()))
                        .count() as f64,
                ),
                "resets" => Some(w.windows(2).filter(|p| p[1].1 < p[0].1).count() as f64),
                "avg_over_time" => {
                    let mut m = Mean::default();
                    for &(_, v) in w {
                        m.add(v);
                    }
                    Some(m.value())
                }
                "min_over_time" => Some(
                    w.iter()
                        .skip(1)
                        .fold(w[0].1, |m, &(_, v)| if v < m || m.is_nan() { v } else { m }),
                ),
                "max_over_time" => Some(
                    w.iter()
                        .skip(1)
                        .fold(w[0].1, |m, &(_, v)| if v > m || m.is_nan() { v } else { m }),
                ),
                "sum_over_time" => {
                    let (mut sum, mut c) = (0.0, 0.0);
                    for &(_, v) in w {
                        (sum, c) = kahan_add(v, sum, c);
                    }
                    Some(if sum.is_infinite() { sum } else { sum + c })
                }
                "count_over_time" => Some(w.len() as f64),
                "last_over_time" => Some(w[w.len() - 1].1),
                "first_over_time" => Some(w[0].1),
                "present_over_time" => Some(1.0),
                "stddev_over_time" | "stdvar_over_time" => {
                    let (mut count, mut mean, mut cm, mut aux, mut ca) = (0.0, 0.0, 0.0, 0.0, 0.0);
                    for &(_, v) in w {
                        count += 1.0;
                        let delta = v - (mean + cm);
                        (mean, cm) = kahan_add(delta / count, mean, cm);
                        (aux, ca) = kahan_add(delta * (v - (mean + cm)), aux, ca);
                    }
                    let var = (aux + ca) / count;
                    Some(if name == "stddev_over_time" {
                        var.sqrt()
                    } else {
                        var
                    })
                }
                "quantile_over_time" => {
                    let mut vals: Vec<f64> = w.iter().map(|p| p.1).collect();
                    Some(quantile(params[0][i], &mut vals))
                }
                "mad_over_time" => {
                    let mut vals: Vec<f64> = w.iter().map(|p| p.1).collect();
                    let median = quantile(0.5, &mut vals);
                    let mut dev: Vec<f64> = vals.iter().map(|v| (v - median).abs()).collect();
                    Some(quantile(0.5, &mut dev))
                }
                "ts_of_min_over_time" => Some(ts_of(w, |v, m| v <= m) as f64 / 1000.0),
                "ts_of_max_over_time" => Some(ts_of(w, |v, m| v >= m) as f64 / 1000.0),
                "ts_of_last_over_time" => Some(w[w.len() - 1].0 as f64 / 1000.0),
                "ts_of_first_over_time" => Some(w[0].0 as f64 / 1000.0),
                "double_exponential_smoothing" => smoothing(w, params[0][i], params[1][i]),
                _ => None,
            };
            if let Some(v) = v {
                points.push((i as u32, v));
            }
        }
        if !points.is_empty() {
            out.push(VSeries {
                labels: s.labels.clone(),
                drop_name: s.drop_name || !keep_name,
                points,
            });
        }
    }
    Ok(Val::Vector(out))
}

fn ts_of(w: &[(i64, f64)], better: impl Fn(f64, f64) -> bool) -> i64 {
    let (mut t, mut m) = w[0];
    for &(st, v) in &w[1..] {
        if better(v, m) || m.is_nan() {
            t = st;
            m = v;
        }
    }
    t
}

fn instant_value(w: &[(i64, f64)], rate: bool) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let (prev, last) = (w[w.len() - 2], w[w.len() - 1]);
    let mut result = if rate && last.1 < prev.1 {
        last.1
    } else {
        last.1 - prev.1
    };
    let interval = last.0 - prev.0;
    if interval == 0 {
        return None;
    }
    if rate {
        result /= interval as f64 / 1000.0;
    }
    Some(result)
}

fn smoothing(w: &[(i64, f64)], sf: f64, tf: f64) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let (mut s0, mut s1) = (0.0, w[0].1);
    let mut b = w[1].1 - w[0].1;
    for (i, &(_, v)) in w.iter().enumerate().skip(1) {
        let x = sf * v;
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        s0 = s1;
        s1 = x + y;
    }
    Some(s1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_match_known_days() {
        // 2024-02-29T13:45:00Z
        let t = 1_709_214_300.0;
        assert_eq!(date_part("year", t), 2024.0);
        assert_eq!(date_part("month", t), 2.0);
        assert_eq!(date_part("day_of_month", t), 29.0);
        assert_eq!(date_part("days_in_month", t), 29.0);
        assert_eq!(date_part("day_of_year", t), 60.0);
        assert_eq!(date_part("day_of_week", t), 4.0);
        assert_eq!(date_part("hour", t), 13.0);
        assert_eq!(date_part("minute", t), 45.0);
    }

    #[test]
    fn natural_order_compares_numbers() {
        assert!(natural_cmp("cpu2", "cpu10").is_lt());
        assert!(natural_cmp("a", "b").is_lt());
        assert!(natural_cmp("x10y", "x10z").is_lt());
    }

    #[test]
    fn rate_of_a_steady_counter() {
        // 0, 10, 20 ... every 60 s over a 5 m window ending at 300 s.
        let w: Vec<(i64, f64)> = (1..=5).map(|i| (i * 60_000, i as f64 * 10.0)).collect();
        let r = extrapolated_rate(&w, 0, 300_000, 300.0, true, true).unwrap_or(f64::NAN);
        assert!((r - 1.0 / 6.0).abs() < 1e-12, "{r}");
    }
}
