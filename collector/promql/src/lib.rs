//! PromQL for Lookout: expressions are parsed by `promql-parser` and
//! evaluated here over any [`Source`] of series, normally the store's
//! `Querier`.
//!
//! Semantics follow Prometheus 3: left-open range windows `(t - r, t]`, a
//! 5-minute lookback that stops at stale markers, extrapolated `rate`, and
//! delayed removal of the metric name (so `label_replace` can still read
//! it). Native histograms are not stored; a query that reaches them gets a
//! clear error rather than a wrong answer.
//!
//! ```
//! use lookout_promql::{Engine, Value};
//! use lookout_promql::storage::{RawSeries, Source};
//!
//! struct Empty;
//! impl Source for Empty {
//!     fn select(&self, _: &[lookout_tsdb::Matcher], _: i64, _: i64)
//!         -> lookout_promql::error::Result<Vec<RawSeries>> { Ok(Vec::new()) }
//! }
//! let engine = Engine::default();
//! let answer = engine.instant(&Empty, "1 + 2", 0).unwrap();
//! assert_eq!(answer.value, Value::Scalar(lookout_promql::Point { t: 0, v: 3.0 }));
//! ```

pub(crate) mod aggregate;
pub(crate) mod binary;
pub mod durations;
pub mod error;
pub(crate) mod eval;
pub(crate) mod functions;
pub mod notation;
pub mod storage;
pub mod value;

use std::time::{Duration, Instant};

use promql_parser::parser::value::ValueType;
use promql_parser::parser::{self, Expr};

pub use error::{ErrorKind, QueryError};
pub use storage::Source;
pub use value::{Annotations, Point, Series, Value, format_float};

use error::Result;
use eval::{Evaluator, Grid, Val, finish_vector};

/// Bounds on what one query may cost.
#[derive(Clone, Debug)]
pub struct Limits {
    /// How far back an instant selector looks for a sample.
    pub lookback_ms: i64,
    /// Step of a subquery that names none (Prometheus uses the global
    /// evaluation interval).
    pub subquery_step_ms: i64,
    /// Points a range query may return per series.
    pub max_points_per_series: usize,
    /// Samples a query may load and hold.
    pub max_samples: usize,
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            lookback_ms: 5 * 60_000,
            subquery_step_ms: 60_000,
            max_points_per_series: 11_000,
            max_samples: 50_000_000,
            timeout: Duration::from_secs(120),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Engine {
    pub limits: Limits,
}

/// A query's answer with what the engine noticed on the way.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub value: Value,
    pub annotations: Annotations,
    /// Samples read from the store.
    pub samples_loaded: usize,
}

/// Parses an expression; errors carry the parser's position information.
pub fn parse(expr: &str) -> Result<Expr> {
    if expr.trim().is_empty() {
        return Err(QueryError::bad_data("parse error: empty query"));
    }
    let rewritten = durations::rewrite(expr)?;
    parser::parse(&rewritten).map_err(|e| {
        let at = locate_parse_error(expr, &e)
            .map(|(line, col)| format!("{line}:{col}: "))
            .unwrap_or_default();
        QueryError::bad_data(format!("{at}parse error: {e}"))
    })
}

/// Where a parse error lies, as 1-based line and column, found by
/// scanning the query: an unclosed bracket or string, a closing bracket
/// without its opening one, or the name of an unknown function. The parser
/// reports none of these positions itself.
fn locate_parse_error(q: &str, message: &str) -> Option<(usize, usize)> {
    let position = |byte: usize| {
        let before = &q[..byte];
        let line = before.matches('\n').count() + 1;
        let col = before.rfind('\n').map_or(before.chars().count(), |nl| {
            before[nl + 1..].chars().count()
        }) + 1;
        (line, col)
    };
    if let Some(name) = message
        .strip_prefix("unknown function with name '")
        .and_then(|r| r.strip_suffix('\''))
    {
        return q
            .find(&format!("{name}("))
            .or_else(|| q.find(name))
            .map(position);
    }
    let mut open: Vec<(u8, usize)> = Vec::new();
    let b = q.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            quote @ (b'"' | b'\'' | b'`') => {
                let start = i;
                i += 1;
                while i < b.len() && b[i] != quote {
                    if b[i] == b'\\' && quote != b'`' {
                        i += 1;
                    }
                    i += 1;
                }
                if i >= b.len() {
                    return Some(position(start));
                }
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            c @ (b'(' | b'[' | b'{') => open.push((c, i)),
            c @ (b')' | b']' | b'}') => {
                let want = match c {
                    b')' => b'(',
                    b']' => b'[',
                    _ => b'{',
                };
                match open.pop() {
                    Some((o, _)) if o == want => {}
                    _ => return Some(position(i)),
                }
            }
            _ => {}
        }
        i += 1;
    }
    if let Some(&(_, at)) = open.last() {
        return Some(position(at));
    }
    if message.contains("end of input") {
        return Some(position(q.len()));
    }
    None
}

impl Engine {
    pub fn new(limits: Limits) -> Engine {
        Engine { limits }
    }

    /// Evaluates `expr` at one time (milliseconds).
    pub fn instant(&self, src: &dyn Source, expr: &str, t: i64) -> Result<Answer> {
        let e = parse(expr)?;
        self.instant_expr(src, &e, t)
    }

    pub fn instant_expr(&self, src: &dyn Source, e: &Expr, t: i64) -> Result<Answer> {
        let mut ev = self.evaluator(src, t, t);
        let g = Grid {
            start: t,
            step: 1,
            n: 1,
        };
        let val = ev.eval(e, &g)?;
        let value = match val {
            Val::Scalar(v) => Value::Scalar(Point { t, v: v[0] }),
            Val::Str(s) => Value::String { t, value: s },
            Val::Vector(vs) => Value::Vector(
                finish_vector(vs)?
                    .into_iter()
                    .map(|s| Series {
                        labels: s.labels,
                        points: s.points.iter().map(|&(_, v)| Point { t, v }).collect(),
                    })
                    .collect(),
            ),
            Val::Range(rv) => {
                let mut out = Vec::with_capacity(rv.series.len());
                let mut seen = std::collections::HashSet::new();
                for s in &rv.series {
                    let w = rv.window(s, 0);
                    if w.is_empty() {
                        continue;
                    }
                    let labels = if s.drop_name {
                        value::drop_name(&s.labels)
                    } else {
                        s.labels.clone()
                    };
                    if !seen.insert(value::labels_key(&labels)) {
                        return Err(QueryError::execution(format!(
                            "vector cannot contain metrics with the same labelset {}",
                            value::labels_string(&labels)
                        )));
                    }
                    out.push(Series {
                        labels,
                        points: w.iter().map(|&(t, v)| Point { t, v }).collect(),
                    });
                }
                Value::Matrix(out)
            }
        };
        Ok(Answer {
            value,
            annotations: ev.annotations,
            samples_loaded: ev.samples_loaded,
        })
    }

    /// Evaluates `expr` at `start, start + step, ..., end` (milliseconds).
    pub fn range(
        &self,
        src: &dyn Source,
        expr: &str,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<Answer> {
        let e = parse(expr)?;
        self.range_expr(src, &e, start, end, step)
    }

    pub fn range_expr(
        &self,
        src: &dyn Source,
        e: &Expr,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<Answer> {
        if step <= 0 {
            return Err(QueryError::bad_data(
                "zero or negative query resolution step widths are not accepted. Try a positive integer",
            ));
        }
        if end < start {
            return Err(QueryError::bad_data(
                "end timestamp must not be before start time",
            ));
        }
        let n = ((end - start) / step + 1) as usize;
        if n > self.limits.max_points_per_series {
            return Err(QueryError::bad_data(format!(
                "exceeded maximum resolution of {} points per timeseries. Try decreasing the query resolution (?step=XX)",
                self.limits.max_points_per_series
            )));
        }
        match e.value_type() {
            ValueType::Vector | ValueType::Scalar => {}
            other => {
                return Err(QueryError::bad_data(format!(
                    "invalid expression type {:?} for range query, must be Scalar or instant Vector",
                    type_word(other)
                )));
            }
        }
        let mut ev = self.evaluator(src, start, end);
        let g = Grid { start, step, n };
        let series = match ev.eval(e, &g)? {
            Val::Scalar(v) => vec![Series {
                labels: lookout_protocol::Labels::new(),
                points: v
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| Point { t: g.t(i), v })
                    .collect(),
            }],
            Val::Vector(vs) => {
                let mut out: Vec<Series> = finish_vector(vs)?
                    .into_iter()
                    .map(|s| Series {
                        labels: s.labels,
                        points: s
                            .points
                            .iter()
                            .map(|&(i, v)| Point {
                                t: g.t(i as usize),
                                v,
                            })
                            .collect(),
                    })
                    .collect();
                out.sort_by(|a, b| lookout_tsdb::head::cmp_labels(&a.labels, &b.labels));
                out
            }
            other => {
                return Err(QueryError::bad_data(format!(
                    "invalid expression type {:?} for range query, must be Scalar or instant Vector",
                    other.type_name()
                )));
            }
        };
        Ok(Answer {
            value: Value::Matrix(series),
            annotations: ev.annotations,
            samples_loaded: ev.samples_loaded,
        })
    }

    fn evaluator<'a>(&'a self, src: &'a dyn Source, start: i64, end: i64) -> Evaluator<'a> {
        Evaluator {
            src,
            limits: &self.limits,
            deadline: Instant::now() + self.limits.timeout,
            query_start: start,
            query_end: end,
            samples_loaded: 0,
            annotations: Annotations::default(),
        }
    }
}

fn type_word(t: ValueType) -> &'static str {
    match t {
        ValueType::Vector => "instant vector",
        ValueType::Scalar => "scalar",
        ValueType::Matrix => "range vector",
        ValueType::String => "string",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(q: &str) -> String {
        parse(q).err().map(|e| e.message).unwrap_or_default()
    }

    #[test]
    fn parse_errors_say_where() {
        assert!(message("sum(requests_total) by (").starts_with("1:24: parse error"));
        assert!(message("sum(rate(x[5m])").starts_with("1:4: parse error"));
        assert!(message("up{job=\"a").starts_with("1:8: parse error"));
        assert!(message("x +\n  foo(x)").starts_with("2:3: parse error: unknown function"));
        assert!(message("x)").starts_with("1:2: parse error"));
        assert_eq!(message("  "), "parse error: empty query");
    }
}
