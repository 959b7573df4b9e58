//! Request parameters as Prometheus's HTTP API takes them: from the query
//! string or a form body, repeated `match[]`, and times as Unix seconds
//! (with fractions) or RFC 3339.

use axum::http::{HeaderMap, header};
use lookout_tsdb::Matcher;
use promql_parser::parser::{self, Expr};

/// Parameters in the order given; a name may repeat.
pub struct Params(Vec<(String, String)>);

/// The first problem with a request's parameters, as the API reports it.
#[derive(Debug)]
pub struct BadParam(pub String);

impl Params {
    pub fn parse(query: Option<&str>, headers: &HeaderMap, body: &[u8]) -> Params {
        let mut out: Vec<(String, String)> = Vec::new();
        if let Some(q) = query {
            out.extend(form_urlencoded::parse(q.as_bytes()).into_owned());
        }
        let is_form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if is_form {
            out.extend(form_urlencoded::parse(body).into_owned());
        }
        Params(out)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// `start` and `end` in milliseconds; absent means unbounded.
    pub fn range(&self) -> Result<(i64, i64), BadParam> {
        let start = match self.get("start") {
            Some(s) => {
                parse_time(s).map_err(|e| BadParam(format!("invalid parameter \"start\": {e}")))?
            }
            None => i64::MIN,
        };
        let end = match self.get("end") {
            Some(s) => {
                parse_time(s).map_err(|e| BadParam(format!("invalid parameter \"end\": {e}")))?
            }
            None => i64::MAX,
        };
        if end < start {
            return Err(BadParam(
                "invalid parameter \"end\": end timestamp must not be before start time".into(),
            ));
        }
        Ok((start, end))
    }

    /// Every `match[]` as a set of matchers; a selector with `or`
    /// alternatives gives one set per alternative.
    pub fn selectors(&self) -> Result<Vec<Vec<Matcher>>, BadParam> {
        let mut out = Vec::new();
        for s in self.all("match[]") {
            out.extend(
                parse_selector(s)
                    .map_err(|e| BadParam(format!("invalid parameter \"match[]\": {e}")))?,
            );
        }
        Ok(out)
    }
}

/// Milliseconds from Unix seconds (`1700000000.123`) or RFC 3339.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let bad = || format!("cannot parse {s:?} to a valid timestamp");
    if let Ok(secs) = s.parse::<f64>() {
        if !secs.is_finite() || secs.abs() > 9.2e15 {
            return Err(bad());
        }
        return Ok((secs * 1000.0).round() as i64);
    }
    lookout_agent::clock::parse_rfc3339(s)
        .map(|secs| (secs * 1000.0).round() as i64)
        .ok_or_else(bad)
}

/// Parses a series selector such as `up{job=~"node.*"}` into matchers.
pub fn parse_selector(s: &str) -> Result<Vec<Vec<Matcher>>, String> {
    let expr = parser::parse(s).map_err(|e| e.to_string())?;
    let Expr::VectorSelector(vs) = expr else {
        return Err(format!("{s:?} is not a series selector"));
    };
    let sets = lookout_promql::storage::selector_matchers(vs.name.as_deref(), &vs.matchers)
        .map_err(|e| e.to_string())?;
    if sets.iter().any(|set| set.iter().all(|m| m.matches_empty())) {
        return Err("vector selector must contain at least one non-empty matcher".into());
    }
    Ok(sets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("1700000000").unwrap(), 1_700_000_000_000);
        assert_eq!(parse_time("1700000000.5").unwrap(), 1_700_000_000_500);
        assert_eq!(
            parse_time("2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000_000
        );
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("NaN").is_err());
    }

    #[test]
    fn selectors() {
        let m = parse_selector(r#"up{job=~"node.*",instance!="a"}"#).unwrap();
        assert_eq!(m.len(), 1);
        let names: Vec<String> = m[0].iter().map(|m| m.to_string()).collect();
        assert!(names.contains(&r#"__name__="up""#.to_string()), "{names:?}");
        assert!(names.contains(&r#"job=~"node.*""#.to_string()), "{names:?}");
        assert!(parse_selector(r#"{job=~".*"}"#).is_err());
        assert!(parse_selector("rate(x[5m])").is_err());
        assert!(parse_selector("up{").is_err());
    }
}
