//! The evaluator: every node is evaluated once over the whole grid of step
//! times, series by series. Label work (grouping keys, match signatures) is
//! done once per series rather than once per step, which is where a range
//! query spends its time.

use std::time::{Instant, SystemTime};

use lookout_protocol::Labels;
use lookout_protocol::remote_write::is_stale_nan;
use promql_parser::parser::{
    AtModifier, Expr, MatrixSelector, Offset, SubqueryExpr, VectorSelector,
};

use crate::error::{QueryError, Result};
use crate::storage::{Source, selector_matchers};
use crate::value::{Annotations, HashMap, METRIC_NAME, drop_name, labels_key, labels_string};
use crate::{Limits, aggregate, binary, functions};

/// The step times an expression is evaluated at.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Grid {
    pub start: i64,
    pub step: i64,
    pub n: usize,
}

impl Grid {
    pub fn t(&self, i: usize) -> i64 {
        self.start + self.step * i as i64
    }
}

/// One series of an instant-vector value: its points are (step, value).
#[derive(Clone, Debug)]
pub(crate) struct VSeries {
    pub labels: Labels,
    /// The metric name is to be removed at the end (Prometheus 3's delayed
    /// name removal, so that `label_replace` can still read it).
    pub drop_name: bool,
    pub points: Vec<(u32, f64)>,
}

/// One series of a range-vector value: raw samples without stale markers.
#[derive(Clone, Debug)]
pub(crate) struct RSeries {
    pub labels: Labels,
    pub drop_name: bool,
    pub samples: Vec<(i64, f64)>,
}

/// A range vector over the grid: the window of step `i` is
/// `(ends[i] - range, ends[i]]`.
#[derive(Clone, Debug)]
pub(crate) struct RangeVal {
    pub series: Vec<RSeries>,
    pub range: i64,
    pub ends: Vec<i64>,
}

impl RangeVal {
    /// The samples of `s` in step `i`'s window.
    pub fn window<'a>(&self, s: &'a RSeries, i: usize) -> &'a [(i64, f64)] {
        let end = self.ends[i];
        let lo = s.samples.partition_point(|&(t, _)| t <= end - self.range);
        let hi = s.samples.partition_point(|&(t, _)| t <= end);
        &s.samples[lo..hi.max(lo)]
    }
}

#[derive(Clone, Debug)]
pub(crate) enum Val {
    Scalar(Vec<f64>),
    Str(String),
    Vector(Vec<VSeries>),
    Range(RangeVal),
}

impl Val {
    pub fn type_name(&self) -> &'static str {
        match self {
            Val::Scalar(_) => "scalar",
            Val::Str(_) => "string",
            Val::Vector(_) => "instant vector",
            Val::Range(_) => "range vector",
        }
    }
}

pub(crate) struct Evaluator<'a> {
    pub src: &'a dyn Source,
    pub limits: &'a Limits,
    pub deadline: Instant,
    /// The query's own start and end, for `@ start()` and `@ end()`.
    pub query_start: i64,
    pub query_end: i64,
    pub samples_loaded: usize,
    pub annotations: Annotations,
}

pub(crate) fn duration_ms(d: &std::time::Duration) -> i64 {
    d.as_millis() as i64
}

fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => duration_ms(d),
        Some(Offset::Neg(d)) => -duration_ms(d),
    }
}

pub(crate) fn system_time_ms(t: &SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

impl Evaluator<'_> {
    pub fn check_deadline(&self) -> Result<()> {
        if Instant::now() > self.deadline {
            return Err(QueryError::timeout(format!(
                "query timed out in expression evaluation (limit {:?})",
                self.limits.timeout
            )));
        }
        Ok(())
    }

    fn count_samples(&mut self, n: usize) -> Result<()> {
        self.samples_loaded += n;
        if self.samples_loaded > self.limits.max_samples {
            return Err(QueryError::execution(format!(
                "query processing would load too many samples into memory in query execution (limit {})",
                self.limits.max_samples
            )));
        }
        Ok(())
    }

    /// The times a selector is read at for each step: `@` pins them, an
    /// offset shifts them.
    fn eval_times(&self, g: &Grid, at: &Option<AtModifier>, offset: &Option<Offset>) -> Vec<i64> {
        let off = offset_ms(offset);
        let pinned = match at {
            None => None,
            Some(AtModifier::Start) => Some(self.query_start),
            Some(AtModifier::End) => Some(self.query_end),
            Some(AtModifier::At(t)) => Some(system_time_ms(t)),
        };
        (0..g.n)
            .map(|i| pinned.unwrap_or_else(|| g.t(i)) - off)
            .collect()
    }

    pub fn eval(&mut self, e: &Expr, g: &Grid) -> Result<Val> {
        self.check_deadline()?;
        match e {
            Expr::NumberLiteral(n) => Ok(Val::Scalar(vec![n.val; g.n])),
            Expr::StringLiteral(s) => Ok(Val::Str(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, g),
            Expr::Unary(u) => match self.eval(&u.expr, g)? {
                Val::Scalar(v) => Ok(Val::Scalar(v.into_iter().map(|x| -x).collect())),
                Val::Vector(mut vs) => {
                    for s in &mut vs {
                        s.drop_name = true;
                        for p in &mut s.points {
                            p.1 = -p.1;
                        }
                    }
                    Ok(Val::Vector(vs))
                }
                other => Err(QueryError::bad_data(format!(
                    "unary expression only allowed on expressions of type scalar or instant vector, got {:?}",
                    other.type_name()
                ))),
            },
            Expr::VectorSelector(vs) => Ok(Val::Vector(self.eval_vector_selector(vs, g, false)?)),
            Expr::MatrixSelector(ms) => Ok(Val::Range(self.eval_matrix_selector(ms, g)?)),
            Expr::Subquery(sq) => Ok(Val::Range(self.eval_subquery(sq, g)?)),
            Expr::Binary(b) => binary::eval_binary(self, b, g),
            Expr::Aggregate(a) => aggregate::eval_aggregate(self, a, g),
            Expr::Call(c) => functions::eval_call(self, c, g),
            Expr::Extension(_) => Err(QueryError::bad_data(
                "extension expressions are not supported",
            )),
        }
    }

    pub fn eval_vector(&mut self, e: &Expr, g: &Grid) -> Result<Vec<VSeries>> {
        match self.eval(e, g)? {
            Val::Vector(v) => Ok(v),
            other => Err(QueryError::bad_data(format!(
                "expected instant vector, got {}",
                other.type_name()
            ))),
        }
    }

    pub fn eval_scalar(&mut self, e: &Expr, g: &Grid) -> Result<Vec<f64>> {
        match self.eval(e, g)? {
            Val::Scalar(v) => Ok(v),
            other => Err(QueryError::bad_data(format!(
                "expected scalar, got {}",
                other.type_name()
            ))),
        }
    }

    fn select(
        &mut self,
        vs: &VectorSelector,
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<crate::storage::RawSeries>> {
        let alternatives = selector_matchers(vs.name.as_deref(), &vs.matchers)?;
        let mut out = Vec::new();
        for matchers in &alternatives {
            out.extend(self.src.select(matchers, mint, maxt)?);
        }
        if alternatives.len() > 1 {
            out.sort_by(|a, b| lookout_tsdb::head::cmp_labels(&a.labels, &b.labels));
            out.dedup_by(|a, b| a.labels == b.labels);
        }
        Ok(out)
    }

    /// An instant-vector selector: at each step the newest sample within the
    /// lookback window, unless that sample is a stale marker. With
    /// `timestamps`, the value is the sample's time in seconds (for
    /// `timestamp()`).
    pub fn eval_vector_selector(
        &mut self,
        vs: &VectorSelector,
        g: &Grid,
        timestamps: bool,
    ) -> Result<Vec<VSeries>> {
        let times = self.eval_times(g, &vs.at, &vs.offset);
        let (Some(&lo), Some(&hi)) = (times.iter().min(), times.iter().max()) else {
            return Ok(Vec::new());
        };
        let lookback = self.limits.lookback_ms;
        let raw = self.select(vs, lo - lookback + 1, hi)?;
        let mut out = Vec::with_capacity(raw.len());
        for s in raw {
            self.check_deadline()?;
            let mut points = Vec::new();
            for (i, &t) in times.iter().enumerate() {
                let idx = s.samples.partition_point(|&(st, _)| st <= t);
                if idx == 0 {
                    continue;
                }
                let (st, v) = s.samples[idx - 1];
                if st <= t - lookback || is_stale_nan(v) {
                    continue;
                }
                points.push((i as u32, if timestamps { st as f64 / 1000.0 } else { v }));
            }
            if !points.is_empty() {
                self.count_samples(points.len())?;
                out.push(VSeries {
                    labels: s.labels,
                    drop_name: false,
                    points,
                });
            }
        }
        Ok(out)
    }

    fn eval_matrix_selector(&mut self, ms: &MatrixSelector, g: &Grid) -> Result<RangeVal> {
        let range = duration_ms(&ms.range);
        let ends = self.eval_times(g, &ms.vs.at, &ms.vs.offset);
        let (Some(&lo), Some(&hi)) = (ends.iter().min(), ends.iter().max()) else {
            return Ok(RangeVal {
                series: Vec::new(),
                range,
                ends,
            });
        };
        let raw = self.select(&ms.vs, lo - range + 1, hi)?;
        let mut series = Vec::with_capacity(raw.len());
        for mut s in raw {
            s.samples
                .retain(|&(t, v)| !is_stale_nan(v) && t > lo - range && t <= hi);
            if s.samples.is_empty() {
                continue;
            }
            self.count_samples(s.samples.len())?;
            series.push(RSeries {
                labels: s.labels,
                drop_name: false,
                samples: s.samples,
            });
        }
        Ok(RangeVal {
            series,
            range,
            ends,
        })
    }

    fn eval_subquery(&mut self, sq: &SubqueryExpr, g: &Grid) -> Result<RangeVal> {
        let range = duration_ms(&sq.range);
        let step = match &sq.step {
            Some(s) if !s.is_zero() => duration_ms(s),
            _ => self.limits.subquery_step_ms,
        };
        let ends = self.eval_times(g, &sq.at, &sq.offset);
        let (Some(&lo), Some(&hi)) = (ends.iter().min(), ends.iter().max()) else {
            return Ok(RangeVal {
                series: Vec::new(),
                range,
                ends,
            });
        };
        // The inner grid holds the multiples of the step after the first
        // window's start, as Prometheus aligns subquery steps to absolute
        // time.
        let first = lo - range;
        let mut start = step * (first / step);
        if start <= first {
            start += step;
        }
        if start > hi {
            return Ok(RangeVal {
                series: Vec::new(),
                range,
                ends,
            });
        }
        let n = ((hi - start) / step + 1) as usize;
        if n > 50_000_000 {
            return Err(QueryError::execution("subquery has too many steps"));
        }
        let inner = Grid { start, step, n };
        let vectors = match self.eval(&sq.expr, &inner)? {
            Val::Vector(v) => v,
            Val::Scalar(v) => vec![VSeries {
                labels: Labels::new(),
                drop_name: false,
                points: v
                    .into_iter()
                    .enumerate()
                    .map(|(i, x)| (i as u32, x))
                    .collect(),
            }],
            other => {
                return Err(QueryError::bad_data(format!(
                    "subquery is only allowed on instant vector, got {} instead",
                    other.type_name()
                )));
            }
        };
        let series = vectors
            .into_iter()
            .map(|s| RSeries {
                samples: s
                    .points
                    .iter()
                    .map(|&(i, v)| (inner.t(i as usize), v))
                    .collect(),
                labels: s.labels,
                drop_name: s.drop_name,
            })
            .collect();
        Ok(RangeVal {
            series,
            range,
            ends,
        })
    }
}

/// Removes metric names marked for removal and merges series that end up
/// with the same labels; two of them at one step is an error, as in
/// Prometheus.
pub(crate) fn finish_vector(mut vs: Vec<VSeries>) -> Result<Vec<VSeries>> {
    let mut any = false;
    for s in &mut vs {
        if s.drop_name {
            s.labels = drop_name(&s.labels);
            s.drop_name = false;
            any = true;
        }
    }
    if !any {
        return Ok(vs);
    }
    merge_same_labels(vs)
}

/// Merges series with equal labels; overlapping steps are an error.
pub(crate) fn merge_same_labels(vs: Vec<VSeries>) -> Result<Vec<VSeries>> {
    let mut index: HashMap<Vec<u8>, usize> =
        HashMap::with_capacity_and_hasher(vs.len(), Default::default());
    let mut out: Vec<VSeries> = Vec::with_capacity(vs.len());
    for s in vs {
        let key = labels_key(&s.labels);
        match index.get(&key) {
            None => {
                index.insert(key, out.len());
                out.push(s);
            }
            Some(&at) => {
                let target = &mut out[at];
                let mut merged = Vec::with_capacity(target.points.len() + s.points.len());
                let (mut a, mut b) = (0, 0);
                while a < target.points.len() || b < s.points.len() {
                    let pa = target.points.get(a);
                    let pb = s.points.get(b);
                    match (pa, pb) {
                        (Some(x), Some(y)) if x.0 == y.0 => {
                            return Err(QueryError::execution(format!(
                                "vector cannot contain metrics with the same labelset {}",
                                labels_string(&target.labels)
                            )));
                        }
                        (Some(x), Some(y)) if x.0 < y.0 => {
                            merged.push(*x);
                            a += 1;
                        }
                        (Some(_), Some(y)) => {
                            merged.push(*y);
                            b += 1;
                        }
                        (Some(x), None) => {
                            merged.push(*x);
                            a += 1;
                        }
                        (None, Some(y)) => {
                            merged.push(*y);
                            b += 1;
                        }
                        (None, None) => break,
                    }
                }
                target.points = merged;
            }
        }
    }
    Ok(out)
}

/// The metric name of a series, when it has one.
pub(crate) fn metric_name(l: &Labels) -> Option<&str> {
    l.get(METRIC_NAME)
}
