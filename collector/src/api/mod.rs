//! The Prometheus-compatible HTTP API: PromQL queries (`query`), series and
//! label lookups, raw export, and what Grafana asks for when it connects.
//! Answers use Prometheus's envelope
//! (`{"status":"success","data":...}` or `{"status":"error","errorType":
//! ...,"error":...}`) so Grafana and other clients read them unchanged.

pub mod alerting;
pub mod params;
pub mod query;

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use lookout_protocol::Labels;
use lookout_protocol::remote_write::is_stale_nan;
use lookout_tsdb::head::cmp_labels;
use lookout_tsdb::{Matcher, Querier, Series};
use serde_json::{Value, json};

use crate::serve::App;
use params::{BadParam, Params};

pub fn success(data: Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"status": "success", "data": data}).to_string(),
    )
        .into_response()
}

pub fn error(status: StatusCode, kind: &str, message: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"status": "error", "errorType": kind, "error": message.into()}).to_string(),
    )
        .into_response()
}

fn bad(e: BadParam) -> Response {
    error(StatusCode::BAD_REQUEST, "bad_data", e.0)
}

fn labels_json(labels: &Labels) -> Value {
    let map: serde_json::Map<String, Value> = labels
        .iter()
        .map(|l| (l.name.to_string(), Value::String(l.value.to_string())))
        .collect();
    Value::Object(map)
}

/// Runs a store read on the blocking pool.
async fn read<T: Send + 'static>(
    app: &Arc<App>,
    f: impl FnOnce(&dyn Querier) -> Result<T, lookout_tsdb::Error> + Send + 'static,
) -> Result<T, Response> {
    let db = app.db.clone();
    match tokio::task::spawn_blocking(move || f(db.as_ref())).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            e.to_string(),
        )),
        Err(e) => Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            e.to_string(),
        )),
    }
}

/// Series matching any of the selectors, merged and sorted.
fn select_union(
    q: &dyn Querier,
    selectors: &[Vec<Matcher>],
    start: i64,
    end: i64,
) -> Result<Vec<Series>, lookout_tsdb::Error> {
    if selectors.len() == 1 {
        return q.select(&selectors[0], start, end);
    }
    let mut by_labels: HashMap<Labels, Series> = HashMap::new();
    for sel in selectors {
        for s in q.select(sel, start, end)? {
            by_labels.entry(s.labels.clone()).or_insert(s);
        }
    }
    let mut out: Vec<Series> = by_labels.into_values().collect();
    out.sort_by(|a, b| cmp_labels(&a.labels, &b.labels));
    Ok(out)
}

/// Sorted, deduplicated strings gathered per selector (or once with no
/// matchers when no `match[]` was given).
fn union_of(
    selectors: &[Vec<Matcher>],
    mut f: impl FnMut(&[Matcher]) -> Result<Vec<String>, lookout_tsdb::Error>,
) -> Result<Vec<String>, lookout_tsdb::Error> {
    if selectors.is_empty() {
        return f(&[]);
    }
    let mut all = Vec::new();
    for sel in selectors {
        all.extend(f(sel)?);
    }
    all.sort();
    all.dedup();
    Ok(all)
}

/// What every read endpoint takes: a time range and `match[]` selectors.
struct ReadRequest {
    start: i64,
    end: i64,
    selectors: Vec<Vec<Matcher>>,
}

fn read_request(p: &Params, match_required: bool) -> Result<ReadRequest, BadParam> {
    let (start, end) = p.range()?;
    let selectors = p.selectors()?;
    if match_required && selectors.is_empty() {
        return Err(BadParam("no match[] parameter provided".into()));
    }
    Ok(ReadRequest {
        start,
        end,
        selectors,
    })
}

fn too_many(what: &str, found: usize, max: usize) -> Response {
    error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "execution",
        format!(
            "{what} would hold {found} series, more than api.max_series ({max}); narrow match[] or the time range"
        ),
    )
}

pub async fn series(
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::parse(query.as_deref(), &headers, &body);
    let r = match read_request(&p, true) {
        Ok(r) => r,
        Err(e) => return bad(e),
    };
    let max = app.cfg.api.max_series;
    let found = read(&app, move |q| {
        Ok(select_union(q, &r.selectors, r.start, r.end)?
            .into_iter()
            .map(|s| s.labels)
            .collect::<Vec<Labels>>())
    })
    .await;
    match found {
        Ok(list) if list.len() > max => too_many("the answer", list.len(), max),
        Ok(list) => success(Value::Array(list.iter().map(labels_json).collect())),
        Err(resp) => resp,
    }
}

pub async fn labels(
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::parse(query.as_deref(), &headers, &body);
    let r = match read_request(&p, false) {
        Ok(r) => r,
        Err(e) => return bad(e),
    };
    let names = read(&app, move |q| {
        union_of(&r.selectors, |sel| q.label_names(sel, r.start, r.end))
    })
    .await;
    match names {
        Ok(n) => success(json!(n)),
        Err(resp) => resp,
    }
}

pub async fn label_values(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let p = Params::parse(query.as_deref(), &headers, &[]);
    let r = match read_request(&p, false) {
        Ok(r) => r,
        Err(e) => return bad(e),
    };
    if name != "__name__" && !lookout_protocol::model::is_valid_label_name(&name) {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_data",
            format!("invalid label name: {name:?}"),
        );
    }
    let values = read(&app, move |q| {
        union_of(&r.selectors, |sel| {
            q.label_values(&name, sel, r.start, r.end)
        })
    })
    .await;
    match values {
        Ok(v) => success(json!(v)),
        Err(resp) => resp,
    }
}

/// Raw samples as JSON lines, one series a line, in VictoriaMetrics's
/// export shape: `{"metric":{...},"values":[...],"timestamps":[...]}`.
/// Values JSON cannot hold are strings: "NaN", "+Inf", "-Inf", and
/// "StaleNaN" for a staleness marker.
pub async fn export(
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::parse(query.as_deref(), &headers, &body);
    let r = match read_request(&p, true) {
        Ok(r) => r,
        Err(e) => return bad(e),
    };
    let max = app.cfg.api.max_series;
    let found = read(&app, move |q| select_union(q, &r.selectors, r.start, r.end)).await;
    let series = match found {
        Ok(s) if s.len() > max => return too_many("the export", s.len(), max),
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let mut out = String::new();
    for s in &series {
        let values: Vec<Value> = s.samples.iter().map(|&(_, v)| sample_value(v)).collect();
        let times: Vec<i64> = s.samples.iter().map(|&(t, _)| t).collect();
        out.push_str(
            &json!({"metric": labels_json(&s.labels), "values": values, "timestamps": times})
                .to_string(),
        );
        out.push('\n');
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/stream+json")],
        out,
    )
        .into_response()
}

fn sample_value(v: f64) -> Value {
    if is_stale_nan(v) {
        Value::String("StaleNaN".into())
    } else if v.is_nan() {
        Value::String("NaN".into())
    } else if v.is_infinite() {
        Value::String(if v > 0.0 { "+Inf" } else { "-Inf" }.into())
    } else {
        json!(v)
    }
}

/// Rules and alerts as Grafana lists them when it connects; rule
/// evaluation is not part of the collector yet, so both lists are empty.
pub async fn buildinfo() -> Response {
    success(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "revision": "",
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
    }))
}
