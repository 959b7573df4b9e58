//! `POST /api/v1/write`: remote-write 1.0 from agents, Prometheus, vmagent
//! or Grafana Alloy, into the store.
//!
//! A push is answered 204 only once its samples are in the write-ahead log
//! (the store's append returns after fsync). Answers follow Prometheus's
//! receiver so that every sender handles them: 401 for a missing or wrong
//! token, 400 for a body that is not snappy or not a WriteRequest, 413 for
//! one over the size limits, 503 when storage cannot write (senders retry).
//! Series with unusable labels and samples outside the out-of-order window
//! are dropped, counted and logged, and the rest of the push is kept: a
//! 4xx would make the sender drop the whole batch.

pub mod auth;
pub mod liveness;

use std::collections::BTreeSet;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use lookout_protocol::remote_write;
use parking_lot::Mutex;

use crate::serve::App;
use auth::Verdict;

/// Header an agent names its node with; the collector's `instance` for it.
pub const NODE_HEADER: &str = "x-lookout-node";

#[derive(Default)]
pub struct IngestStats {
    pub requests: Mutex<HashMap<u16, u64>>,
    pub bytes: AtomicU64,
    pub samples: AtomicU64,
    pub native_histograms_dropped: AtomicU64,
}

impl IngestStats {
    fn answered(&self, status: StatusCode) {
        *self.requests.lock().entry(status.as_u16()).or_default() += 1;
    }
}

/// Logs each kind of problem at most once a minute, with how often it
/// happened since the last line.
#[derive(Default)]
pub struct Throttled {
    last: Mutex<HashMap<&'static str, (Option<Instant>, u64)>>,
}

impl Throttled {
    pub fn warn(&self, kind: &'static str, message: impl FnOnce() -> String) {
        let mut last = self.last.lock();
        let now = Instant::now();
        // `None`: never logged, so the first occurrence is. (Subtracting an
        // hour from `now` would panic on a machine up for less than that.)
        let entry = last.entry(kind).or_insert((None, 0));
        entry.1 += 1;
        if entry
            .0
            .is_none_or(|at: Instant| now.duration_since(at) >= Duration::from_secs(60))
        {
            tracing::warn!(kind, occurrences = entry.1, "{}", message());
            *entry = (Some(now), 0);
        }
    }
}

fn reply(app: &App, status: StatusCode, message: impl Into<String>) -> Response {
    app.ingest_stats.answered(status);
    let mut r = (status, message.into()).into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
    }
    r
}

pub async fn write(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let holder = match app
        .tokens
        .check(headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()))
    {
        Verdict::Open => None,
        Verdict::Holder(name) => Some(name),
        Verdict::Missing => {
            app.log.warn("unauthorized", || {
                "push without a bearer token refused (401)".into()
            });
            return reply(
                &app,
                StatusCode::UNAUTHORIZED,
                "a bearer token is required\n",
            );
        }
        Verdict::Wrong => {
            app.log.warn("unauthorized", || {
                "push with an unknown bearer token refused (401)".into()
            });
            return reply(
                &app,
                StatusCode::UNAUTHORIZED,
                "the bearer token is not valid\n",
            );
        }
    };
    if let Some(enc) = headers.get(header::CONTENT_ENCODING)
        && !enc.as_bytes().eq_ignore_ascii_case(b"snappy")
    {
        return reply(
            &app,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Content-Encoding {:?} is not supported; remote write uses snappy\n",
                String::from_utf8_lossy(enc.as_bytes())
            ),
        );
    }
    let node = headers
        .get(NODE_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 253)
        .map(str::to_string)
        .or_else(|| {
            let from_agent = headers
                .get(header::USER_AGENT)
                .is_some_and(|v| v.as_bytes().starts_with(b"lookout-agent/"));
            if from_agent { holder.clone() } else { None }
        });
    app.ingest_stats
        .bytes
        .fetch_add(body.len() as u64, Ordering::Relaxed);

    let work_app = app.clone();
    let outcome =
        tokio::task::spawn_blocking(move || ingest_body(&work_app, &body, node.as_deref())).await;
    match outcome {
        Ok(Ok(())) => reply(&app, StatusCode::NO_CONTENT, ""),
        Ok(Err((status, message))) => reply(&app, status, message),
        Err(e) => reply(
            &app,
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("ingest task failed: {e}\n"),
        ),
    }
}

/// Decodes and stores one body; runs on the blocking pool (decoding and
/// appending are CPU work, and the append waits for fsync).
fn ingest_body(app: &App, body: &Bytes, node: Option<&str>) -> Result<(), (StatusCode, String)> {
    let max = (app.cfg.ingest.max_decoded_mib << 20) as usize;
    let mut req = remote_write::decode(body, max).map_err(|e| {
        let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        app.log
            .warn("bad body", || format!("push refused ({status}): {e}"));
        (status, format!("{e}\n"))
    })?;
    let mut histograms = 0u64;
    let mut jobs: BTreeSet<&str> = BTreeSet::new();
    let mut samples = 0u64;
    for ts in &req.timeseries {
        histograms += ts.histograms.len() as u64;
        samples += ts.samples.len() as u64;
        if node.is_some()
            && let Some(j) = ts.labels.iter().find(|l| l.name == "job")
        {
            jobs.insert(j.value.as_str());
        }
    }
    let jobs: Vec<String> = jobs.into_iter().map(str::to_string).collect();
    if histograms > 0 {
        app.ingest_stats
            .native_histograms_dropped
            .fetch_add(histograms, Ordering::Relaxed);
        app.log.warn("native histograms", || {
            format!("{histograms} native histogram samples dropped: not supported yet (classic histograms are)")
        });
    }
    app.ingest_stats
        .samples
        .fetch_add(samples, Ordering::Relaxed);
    let report = app.db.append(&mut req.timeseries).map_err(|e| {
        tracing::error!(error = %e, "cannot store a push; answering 503 so the sender retries");
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("storage cannot write: {e}\n"),
        )
    })?;
    if report.invalid_series > 0 {
        let first = report.first_invalid.clone().unwrap_or_default();
        let n = report.invalid_series;
        app.log.warn("invalid series", || {
            format!("{n} series with invalid labels dropped, for example: {first}")
        });
    }
    if report.too_old > 0 {
        let n = report.too_old;
        app.log.warn("too old", || {
            format!("{n} samples older than the out-of-order window dropped")
        });
    }
    if report.conflicts > 0 {
        let n = report.conflicts;
        app.log.warn("conflict", || {
            format!(
                "{n} samples dropped: their series already has a different value at that timestamp"
            )
        });
    }
    if let Some(node) = node {
        app.liveness
            .seen(node, jobs.iter().map(String::as_str), app.now_ms());
    }
    app.forward.enqueue(body);
    Ok(())
}
