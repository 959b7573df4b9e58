//! Rules and alerts over HTTP: Prometheus's `/api/v1/rules` and
//! `/api/v1/alerts` (for Grafana), and the parts of Alertmanager's API v2
//! that tools use (`/api/v2/alerts`, `/api/v2/silences`), so `amtool` and
//! scripts written for Alertmanager work against the collector.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use lookout_notify::rfc3339;
use lookout_notify::{Alert, PostableSilence, SilenceError};
use lookout_rules::{AlertState, RuleKind};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{error, success};
use crate::serve::App;

/// Largest body accepted on the alert and silence endpoints.
const MAX_BODY: usize = 8 << 20;

fn time_or_null(ms: i64) -> Value {
    if ms <= 0 {
        Value::String("0001-01-01T00:00:00Z".into())
    } else {
        Value::String(rfc3339::format(ms))
    }
}

/// An alert's value as Prometheus renders it in `/api/v1/alerts` and
/// `/api/v1/rules`: Go's `strconv.FormatFloat(v, 'e', -1, 64)`, the
/// shortest exponent form that reads back exactly (`7e+01`, not `%e`'s
/// `7.000000e+01`).
fn value_e(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    // Rust's `{:e}` is also the shortest exact form, but writes `7e1`
    // where Go writes `7e+01`.
    let s = format!("{v:e}");
    match s.split_once('e') {
        Some((m, e)) => {
            let (sign, digits) = match e.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', e),
            };
            format!("{m}e{sign}{digits:0>2}")
        }
        None => s,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn values_read_as_prometheus_writes_them() {
        // What Prometheus 2.42 answers for the same values.
        for (v, want) in [
            (70.0, "7e+01"),
            (0.1234567891, "1.234567891e-01"),
            (0.0, "0e+00"),
            (-2.5, "-2.5e+00"),
            (1e100, "1e+100"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
        ] {
            assert_eq!(super::value_e(v), want, "{v}");
        }
    }
}

fn alert_json(a: &lookout_rules::ActiveAlert) -> Value {
    json!({
        "labels": a.labels,
        "annotations": a.annotations,
        "state": a.state.as_str(),
        "activeAt": time_or_null(a.active_at_ms),
        "value": value_e(a.value),
    })
}

pub async fn rules(State(app): State<Arc<App>>) -> Response {
    let interval_default = app.rules.default_interval_ms();
    let mut groups = Vec::new();
    for g in app.rules.groups() {
        let g = g.lock();
        let mut rules = Vec::new();
        for (i, r) in g.group.rules.iter().enumerate() {
            let h = &g.health[i];
            let health = if h.last_eval_ms == 0 {
                "unknown"
            } else if h.last_error.is_some() {
                "err"
            } else {
                "ok"
            };
            let labels: BTreeMap<&str, &str> = r
                .labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let mut rule = json!({
                "name": r.name,
                "query": r.expr_text,
                "labels": labels,
                "health": health,
                "lastError": h.last_error.clone().unwrap_or_default(),
                "evaluationTime": h.last_duration_s,
                "lastEvaluation": time_or_null(h.last_eval_ms),
            });
            match &r.kind {
                RuleKind::Recording => {
                    rule["type"] = "recording".into();
                }
                RuleKind::Alerting {
                    for_ms,
                    keep_firing_for_ms,
                    annotation_texts,
                    ..
                } => {
                    let alerts: Vec<&lookout_rules::ActiveAlert> = g
                        .alerts_of(i)
                        .filter(|a| a.state != AlertState::Inactive)
                        .collect();
                    let state = if alerts.iter().any(|a| a.state == AlertState::Firing) {
                        "firing"
                    } else if alerts.is_empty() {
                        "inactive"
                    } else {
                        "pending"
                    };
                    let annotations: BTreeMap<&str, &str> = annotation_texts
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    rule["type"] = "alerting".into();
                    rule["state"] = state.into();
                    rule["duration"] = json!(*for_ms as f64 / 1000.0);
                    rule["keepFiringFor"] = json!(*keep_firing_for_ms as f64 / 1000.0);
                    rule["annotations"] = json!(annotations);
                    rule["alerts"] = Value::Array(alerts.into_iter().map(alert_json).collect());
                }
            }
            rules.push(rule);
        }
        groups.push(json!({
            "name": g.group.name,
            "file": g.group.file.display().to_string(),
            "interval": g.group.interval_ms.unwrap_or(interval_default) as f64 / 1000.0,
            "limit": g.group.limit,
            "rules": rules,
            "evaluationTime": g.last_duration_s,
            "lastEvaluation": time_or_null(g.last_eval_ms),
        }));
    }
    success(json!({ "groups": groups }))
}

pub async fn alerts(State(app): State<Arc<App>>) -> Response {
    let mut out = Vec::new();
    for g in app.rules.groups() {
        let g = g.lock();
        for (_, a) in g.active_alerts() {
            out.push(alert_json(a));
        }
    }
    success(json!({ "alerts": out }))
}

fn am_error(status: StatusCode, message: impl Into<String>) -> Response {
    // Alertmanager answers errors with a bare JSON string.
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        Value::String(message.into()).to_string(),
    )
        .into_response()
}

fn am_json(status: StatusCode, v: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

/// `GET /api/v2/alerts`: every alert the notification pipeline holds.
pub async fn am_alerts(State(app): State<Arc<App>>) -> Response {
    let now = app.now_ms();
    let views = {
        let silences = app.notify.silences.lock();
        app.notify.pipeline.lock().alerts(now, &silences)
    };
    let items: Vec<Value> = views
        .iter()
        .map(|v| serde_json::to_value(v.to_gettable()).unwrap_or(Value::Null))
        .collect();
    am_json(StatusCode::OK, Value::Array(items))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostableAlert {
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    starts_at: Option<String>,
    #[serde(default)]
    ends_at: Option<String>,
    #[serde(default, rename = "generatorURL")]
    generator_url: String,
}

/// `POST /api/v2/alerts`: alerts from other sources (another Prometheus,
/// scripts) enter the same pipeline as the collector's own.
pub async fn am_post_alerts(State(app): State<Arc<App>>, body: Bytes) -> Response {
    if body.len() > MAX_BODY {
        return am_error(StatusCode::PAYLOAD_TOO_LARGE, "body too large");
    }
    let posted: Vec<PostableAlert> = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return am_error(StatusCode::BAD_REQUEST, format!("cannot read alerts: {e}")),
    };
    let now = app.now_ms();
    let mut alerts = Vec::with_capacity(posted.len());
    for (i, p) in posted.into_iter().enumerate() {
        let parse = |s: &Option<String>| -> Result<Option<i64>, String> {
            match s.as_deref().map(str::trim) {
                None | Some("") | Some("0001-01-01T00:00:00Z") => Ok(None),
                Some(t) => rfc3339::parse(t).map(Some),
            }
        };
        let starts = match parse(&p.starts_at) {
            Ok(t) => t.unwrap_or(now),
            Err(e) => {
                return am_error(StatusCode::BAD_REQUEST, format!("alert {i}: startsAt: {e}"));
            }
        };
        let ends = match parse(&p.ends_at) {
            Ok(t) => t,
            Err(e) => return am_error(StatusCode::BAD_REQUEST, format!("alert {i}: endsAt: {e}")),
        };
        alerts.push(Alert {
            labels: p.labels,
            annotations: p.annotations,
            starts_at_ms: starts,
            ends_at_ms: ends,
            generator_url: p.generator_url,
        });
    }
    let (rejected, first) = app.notify.put_alerts(alerts, now);
    if rejected > 0 {
        return am_error(
            StatusCode::BAD_REQUEST,
            format!("{rejected} alerts refused: {}", first.unwrap_or_default()),
        );
    }
    StatusCode::OK.into_response()
}

fn silence_error(e: SilenceError) -> Response {
    let status = match &e {
        SilenceError::Invalid(_) | SilenceError::AlreadyExpired(_) => StatusCode::BAD_REQUEST,
        SilenceError::NotFound(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    am_error(status, e.to_string())
}

pub async fn silences(State(app): State<Arc<App>>) -> Response {
    let now = app.now_ms();
    let list = app.notify.silences.lock().list(now);
    am_json(
        StatusCode::OK,
        serde_json::to_value(list).unwrap_or(Value::Null),
    )
}

pub async fn post_silence(State(app): State<Arc<App>>, body: Bytes) -> Response {
    if body.len() > MAX_BODY {
        return am_error(StatusCode::PAYLOAD_TOO_LARGE, "body too large");
    }
    let posted: PostableSilence = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => {
            return am_error(
                StatusCode::BAD_REQUEST,
                format!("cannot read the silence: {e}"),
            );
        }
    };
    let now = app.now_ms();
    let result = app.notify.silences.lock().add(posted, now);
    match result {
        Ok(id) => {
            tracing::info!("silence {id} saved");
            app.notify.wake();
            am_json(StatusCode::OK, json!({ "silenceID": id }))
        }
        Err(e) => silence_error(e),
    }
}

pub async fn silence(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    let now = app.now_ms();
    let found = app
        .notify
        .silences
        .lock()
        .get(&id)
        .map(|s| s.to_gettable(now));
    match found {
        Some(s) => am_json(
            StatusCode::OK,
            serde_json::to_value(s).unwrap_or(Value::Null),
        ),
        None => am_error(StatusCode::NOT_FOUND, format!("silence {id} not found")),
    }
}

pub async fn expire_silence(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    let now = app.now_ms();
    let result = app.notify.silences.lock().expire(&id, now);
    match result {
        Ok(()) => {
            tracing::info!("silence {id} expired");
            app.notify.wake();
            StatusCode::OK.into_response()
        }
        Err(e) => silence_error(e),
    }
}

/// `POST /-/reload`: re-reads the rule files (the rest of the config
/// needs a restart). A failed reload keeps the running rules and says why.
pub async fn reload(State(app): State<Arc<App>>) -> Response {
    let app2 = app.clone();
    let done = tokio::task::spawn_blocking(move || app2.reload_rules()).await;
    match done {
        Ok(Ok(n)) => (StatusCode::OK, format!("reloaded: {n} rule groups\n")).into_response(),
        Ok(Err(e)) => error(
            StatusCode::BAD_REQUEST,
            "bad_data",
            format!("reload failed; the previous rules keep running:\n{e}"),
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}
