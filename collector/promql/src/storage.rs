//! Where evaluation reads series from.

use lookout_tsdb::{MatchKind, Matcher, Querier};
use promql_parser::label::{MatchOp, Matchers};

use crate::error::{ErrorKind, QueryError, Result};
use crate::value::METRIC_NAME;

/// Raw samples of one series, time-ordered; stale markers included.
pub struct RawSeries {
    pub labels: lookout_protocol::Labels,
    pub samples: Vec<(i64, f64)>,
}

/// Series selection as evaluation needs it. The store's [`Querier`] is the
/// production source; tests wrap it to add what the store does not hold.
pub trait Source: Sync {
    /// Series matching all matchers with samples in `[mint, maxt]`, sorted
    /// by labels.
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<RawSeries>>;
}

impl<Q: Querier + ?Sized> Source for Q {
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<RawSeries>> {
        let found = Querier::select(self, matchers, mint, maxt).map_err(|e| QueryError {
            kind: ErrorKind::Internal,
            message: format!("reading series: {e}"),
        })?;
        Ok(found
            .into_iter()
            .map(|s| RawSeries {
                labels: s.labels,
                samples: s.samples,
            })
            .collect())
    }
}

/// The store's matchers for one parsed selector: one set per `or`
/// alternative. The metric name, when given outside the braces, becomes an
/// equality matcher.
pub fn selector_matchers(name: Option<&str>, matchers: &Matchers) -> Result<Vec<Vec<Matcher>>> {
    let convert = |ms: &[promql_parser::label::Matcher]| -> Result<Vec<Matcher>> {
        let mut out = Vec::with_capacity(ms.len() + 1);
        for m in ms {
            let kind = match m.op {
                MatchOp::Equal => MatchKind::Equal,
                MatchOp::NotEqual => MatchKind::NotEqual,
                MatchOp::Re(_) => MatchKind::Regex,
                MatchOp::NotRe(_) => MatchKind::NotRegex,
            };
            out.push(
                Matcher::new(kind, m.name.clone(), m.value.clone())
                    .map_err(|e| QueryError::bad_data(e.to_string()))?,
            );
        }
        if let Some(name) = name
            && !out.iter().any(|m| m.name == METRIC_NAME)
        {
            out.push(Matcher::equal(METRIC_NAME, name));
        }
        Ok(out)
    };
    if matchers.or_matchers.is_empty() {
        Ok(vec![convert(&matchers.matchers)?])
    } else {
        matchers
            .or_matchers
            .iter()
            .map(|alt| convert(alt))
            .collect()
    }
}
