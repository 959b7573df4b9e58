//! `/api/v1/query` and `/api/v1/query_range`, answered as Prometheus
//! answers them: the same parameters, result shapes, error types and HTTP
//! statuses, with warnings and infos in the envelope.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use lookout_promql::durations::parse_duration_ms;
use lookout_promql::{Answer, Engine, QueryError, Value as QueryValue, format_float};
use serde_json::{Map, Value, json};

use super::params::{BadParam, Params, parse_time};
use super::{error, labels_json};
use crate::serve::App;

/// Seconds as Prometheus prints them: an integer when whole.
fn json_time(ms: i64) -> Value {
    if ms % 1000 == 0 {
        json!(ms / 1000)
    } else {
        json!(ms as f64 / 1000.0)
    }
}

fn point(t: i64, v: f64) -> Value {
    Value::Array(vec![json_time(t), Value::String(format_float(v))])
}

/// The `data` object of a successful answer, and how many series it held
/// before `limit` cut it.
pub fn result_json(value: &QueryValue, limit: usize) -> (Value, usize) {
    let take = |n: usize| if limit == 0 { n } else { n.min(limit) };
    match value {
        QueryValue::Scalar(p) => (
            json!({"resultType": "scalar", "result": point(p.t, p.v)}),
            1,
        ),
        QueryValue::String { t, value } => (
            json!({"resultType": "string", "result": [json_time(*t), value]}),
            1,
        ),
        QueryValue::Vector(series) => {
            let result: Vec<Value> = series
                .iter()
                .take(take(series.len()))
                .filter_map(|s| {
                    let p = s.points.first()?;
                    Some(json!({"metric": labels_json(&s.labels), "value": point(p.t, p.v)}))
                })
                .collect();
            (
                json!({"resultType": "vector", "result": result}),
                series.len(),
            )
        }
        QueryValue::Matrix(series) => {
            let result: Vec<Value> = series
                .iter()
                .take(take(series.len()))
                .map(|s| {
                    let values: Vec<Value> = s.points.iter().map(|p| point(p.t, p.v)).collect();
                    json!({"metric": labels_json(&s.labels), "values": values})
                })
                .collect();
            (
                json!({"resultType": "matrix", "result": result}),
                series.len(),
            )
        }
    }
}

fn query_error(e: &QueryError) -> Response {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    error(status, e.error_type(), e.message.clone())
}

fn bad(message: String) -> BadParam {
    BadParam(message)
}

fn success_with(data: Value, answer: &Answer, mut warnings: Vec<String>) -> Response {
    let mut body = Map::new();
    body.insert("status".into(), json!("success"));
    body.insert("data".into(), data);
    warnings.extend(answer.annotations.warnings.iter().cloned());
    if !warnings.is_empty() {
        body.insert("warnings".into(), json!(warnings));
    }
    if !answer.annotations.infos.is_empty() {
        body.insert("infos".into(), json!(answer.annotations.infos));
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Value::Object(body).to_string(),
    )
        .into_response()
}

/// The engine for one request: the configured limits, with the request's
/// `timeout` when it is shorter.
fn engine_for(app: &App, p: &Params) -> Result<Engine, BadParam> {
    let mut limits = app.cfg.api.query_limits();
    if let Some(t) = p.get("timeout") {
        let ms = parse_duration_ms(t).filter(|ms| *ms > 0).ok_or_else(|| {
            bad(format!(
                "invalid parameter \"timeout\": cannot parse {t:?} to a valid duration"
            ))
        })?;
        limits.timeout = limits.timeout.min(Duration::from_millis(ms as u64));
    }
    Ok(Engine::new(limits))
}

fn limit_param(p: &Params) -> Result<usize, BadParam> {
    match p.get("limit") {
        None | Some("") => Ok(0),
        Some(s) => s.parse::<usize>().map_err(|_| {
            bad(format!(
                "invalid parameter \"limit\": cannot parse {s:?} to a non-negative integer"
            ))
        }),
    }
}

fn required<'a>(p: &'a Params, name: &str) -> Result<&'a str, BadParam> {
    p.get(name)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad(format!("invalid parameter \"{name}\": missing")))
}

fn time_param(p: &Params, name: &str) -> Result<Option<i64>, BadParam> {
    p.get(name)
        .filter(|s| !s.is_empty())
        .map(|s| parse_time(s).map_err(|e| bad(format!("invalid parameter \"{name}\": {e}"))))
        .transpose()
}

/// Evaluates on the blocking pool and answers with the result or the
/// query's error.
async fn run(
    app: &Arc<App>,
    engine: Engine,
    limit: usize,
    work: impl FnOnce(&Engine, &lookout_tsdb::Db) -> Result<Answer, QueryError> + Send + 'static,
) -> Response {
    let db = app.db.clone();
    match tokio::task::spawn_blocking(move || work(&engine, &db)).await {
        Ok(Ok(answer)) => {
            let (data, total) = result_json(&answer.value, limit);
            let mut warnings = Vec::new();
            if limit > 0 && total > limit {
                warnings.push(format!("results truncated due to limit of {limit} series"));
            }
            success_with(data, &answer, warnings)
        }
        Ok(Err(e)) => query_error(&e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}

pub async fn instant(
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::parse(query.as_deref(), &headers, &body);
    let prepared = (|| {
        let expr = required(&p, "query")?.to_string();
        let t = time_param(&p, "time")?.unwrap_or_else(|| app.now_ms());
        Ok::<_, BadParam>((expr, t, engine_for(&app, &p)?, limit_param(&p)?))
    })();
    let (expr, t, engine, limit) = match prepared {
        Ok(x) => x,
        Err(e) => return super::bad(e),
    };
    run(&app, engine, limit, move |e, db| e.instant(db, &expr, t)).await
}

pub async fn range(
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::parse(query.as_deref(), &headers, &body);
    let prepared = (|| {
        let expr = required(&p, "query")?.to_string();
        let start = time_param(&p, "start")?
            .ok_or_else(|| bad("invalid parameter \"start\": missing".into()))?;
        let end = time_param(&p, "end")?
            .ok_or_else(|| bad("invalid parameter \"end\": missing".into()))?;
        if end < start {
            return Err(bad(
                "invalid parameter \"end\": end timestamp must not be before start time".into(),
            ));
        }
        let step_s = required(&p, "step")?;
        let step = parse_duration_ms(step_s).ok_or_else(|| {
            bad(format!(
                "invalid parameter \"step\": cannot parse {step_s:?} to a valid duration"
            ))
        })?;
        if step <= 0 {
            return Err(bad(
                "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
            ));
        }
        let engine = engine_for(&app, &p)?;
        if (end - start) / step >= engine.limits.max_points_per_series as i64 {
            return Err(bad(format!(
                "exceeded maximum resolution of {} points per timeseries. Try decreasing the query resolution (?step=XX)",
                engine.limits.max_points_per_series
            )));
        }
        Ok::<_, BadParam>((expr, start, end, step, engine, limit_param(&p)?))
    })();
    let (expr, start, end, step, engine, limit) = match prepared {
        Ok(x) => x,
        Err(e) => return super::bad(e),
    };
    run(&app, engine, limit, move |e, db| {
        e.range(db, &expr, start, end, step)
    })
    .await
}

/// Metric metadata: the store keeps none yet, so the answer is empty, which
/// Grafana and other clients accept.
pub async fn metadata() -> Response {
    super::success(json!({}))
}

/// Exemplars are not kept: an empty list for every query.
pub async fn exemplars() -> Response {
    super::success(json!([]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lookout_promql::{Point, Series};
    use lookout_protocol::Labels;

    #[test]
    fn results_have_prometheus_shapes() {
        let (v, _) = result_json(
            &QueryValue::Scalar(Point {
                t: 1_500,
                v: f64::NAN,
            }),
            0,
        );
        assert_eq!(v, json!({"resultType": "scalar", "result": [1.5, "NaN"]}));
        let series = vec![
            Series {
                labels: Labels::from_pairs([("__name__", "up"), ("job", "a")]),
                points: vec![Point { t: 2_000, v: 1.0 }],
            },
            Series {
                labels: Labels::from_pairs([("job", "b")]),
                points: vec![Point {
                    t: 2_000,
                    v: f64::INFINITY,
                }],
            },
        ];
        let (v, n) = result_json(&QueryValue::Vector(series.clone()), 1);
        assert_eq!(n, 2);
        assert_eq!(
            v,
            json!({"resultType": "vector", "result": [{"metric": {"__name__": "up", "job": "a"}, "value": [2, "1"]}]})
        );
        let (v, _) = result_json(&QueryValue::Matrix(series), 0);
        assert_eq!(v["result"][1]["values"], json!([[2, "+Inf"]]));
    }
}
