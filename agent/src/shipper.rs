//! Pushes the agent's samples to remote-write receivers without losing them
//! when a receiver is away.
//!
//! Every `push.interval` the producer takes what the samplers published since
//! the last batch (each sampler's series at its own sampling time, labelled
//! with the `job` existing rules select on and `instance` = node name) and
//! appends it to each endpoint's [`Outbox`]. One sender per endpoint sends
//! the oldest batch: a 2xx removes it; 429, 5xx and network errors are retried
//! with exponential backoff and jitter (honouring `Retry-After`); any other
//! 4xx drops the batch, counted and logged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use lookout_protocol::remote_write;
use lookout_protocol::{Family, Labels, MetricKind};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::clock::{unix_millis, unix_seconds};
use crate::config::{EndpointConfig, PushConfig};
use crate::outbox::{DropReason, Outbox};
use crate::registry::{Registry, error_chain};

pub const NAME: &str = "push";
/// Header naming the pushing node; the collector's `instance` for the
/// agent's synthesized `up`.
pub const NODE_HEADER: &str = "X-Lookout-Node";
/// Segments of 4 MiB: small enough that dropping the oldest when full loses
/// little, large enough to keep the file count low.
const SEGMENT_BYTES: u64 = 4 << 20;
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

#[derive(Clone, Debug, Default)]
struct EndpointStats {
    sent_batches: u64,
    sent_bytes: u64,
    retries: u64,
    last_success_unix: f64,
    pending_bytes: u64,
    oldest_pending_ms: Option<i64>,
    dropped: Vec<(DropReason, u64)>,
}

/// One remote-write receiver with its outbox. The agent's shipper and the
/// collector's forwarder both send through it.
pub struct Endpoint {
    name: String,
    url: hyper::Uri,
    token: Option<String>,
    timeout: Duration,
    user_agent: String,
    /// Header the receiver learns the sending node from (agents only).
    node: Option<String>,
    outbox: Mutex<Outbox>,
    wake: Notify,
    stats: Mutex<EndpointStats>,
}

/// Called after anything that changes an endpoint's statistics.
pub type OnChange = Arc<dyn Fn() + Send + Sync>;

type Shared = Arc<Vec<Arc<Endpoint>>>;

/// Where and how to send; the outbox lives in `outbox_dir`.
pub struct EndpointSpec<'a> {
    pub name: String,
    pub url: &'a str,
    pub bearer_token_file: Option<&'a std::path::Path>,
    pub timeout: Duration,
    pub outbox_dir: std::path::PathBuf,
    pub outbox_max_bytes: u64,
    pub user_agent: String,
    pub node: Option<String>,
}

impl Endpoint {
    pub fn open(spec: EndpointSpec<'_>) -> anyhow::Result<Endpoint> {
        let name = spec.name;
        let dir = spec.outbox_dir;
        let outbox = Outbox::open(&dir, spec.outbox_max_bytes, SEGMENT_BYTES).map_err(|err| {
            anyhow::anyhow!(
                "cannot open the outbox for {name} at {}: {err}",
                dir.display()
            )
        })?;
        let token = match spec.bearer_token_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|err| {
                        anyhow::anyhow!(
                            "cannot read the bearer token for {name} from {}: {err}",
                            path.display()
                        )
                    })?
                    .trim()
                    .to_string(),
            ),
            None => None,
        };
        let endpoint = Endpoint {
            name,
            url: spec.url.parse()?,
            token,
            timeout: spec.timeout,
            user_agent: spec.user_agent,
            node: spec.node,
            outbox: Mutex::new(outbox),
            wake: Notify::new(),
            stats: Mutex::default(),
        };
        refresh_outbox_stats(&endpoint);
        Ok(endpoint)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Appends a batch to the outbox and wakes the sender. Blocking (file I/O).
    pub fn enqueue(&self, created_ms: i64, body: &[u8]) -> std::io::Result<()> {
        lock(&self.outbox).append(created_ms, body)?;
        self.wake.notify_one();
        refresh_outbox_stats(self);
        Ok(())
    }
}

/// Opens each endpoint's outbox and starts the producer and the senders.
pub fn start(
    cfg: &PushConfig,
    node: &str,
    registry: Arc<Registry>,
    cancel: CancellationToken,
    tasks: &mut JoinSet<()>,
) -> anyhow::Result<()> {
    if cfg.endpoints.is_empty() {
        return Ok(());
    }
    let mut endpoints = Vec::new();
    for e in &cfg.endpoints {
        endpoints.push(Arc::new(open_endpoint(cfg, e, node)?));
    }
    let endpoints: Shared = Arc::new(endpoints);
    let on_change: OnChange = {
        let registry = registry.clone();
        let endpoints = endpoints.clone();
        Arc::new(move || publish_stats(&registry, &endpoints))
    };
    for e in endpoints.iter() {
        tasks.spawn(send_loop(
            e.clone(),
            on_change.clone(),
            cancel.child_token(),
        ));
    }
    publish_stats(&registry, &endpoints);
    tasks.spawn(produce_loop(
        cfg.clone(),
        node.to_string(),
        registry,
        endpoints,
        cancel,
    ));
    Ok(())
}

fn open_endpoint(cfg: &PushConfig, e: &EndpointConfig, node: &str) -> anyhow::Result<Endpoint> {
    let name = e.display_name();
    Endpoint::open(EndpointSpec {
        outbox_dir: cfg.outbox_dir.join(&name),
        name,
        url: &e.url,
        bearer_token_file: e.bearer_token_file.as_deref(),
        timeout: e.timeout,
        outbox_max_bytes: cfg.outbox_max_mib << 20,
        user_agent: concat!("lookout-agent/", env!("CARGO_PKG_VERSION")).to_string(),
        node: Some(node.to_string()),
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The `job` of a sampler's series.
fn job_for<'a>(cfg: &'a PushConfig, sampler: &str) -> &'a str {
    match sampler {
        crate::samplers::host::NAME => &cfg.jobs.host,
        // Both carry cAdvisor's names: one job, so rules select either.
        crate::samplers::containers::NAME | crate::samplers::kubelet_summary::NAME => {
            &cfg.jobs.containers
        }
        _ => &cfg.jobs.agent,
    }
}

/// Builds the next batch: snapshots newer than the last batch's, plus the
/// counters and self-metrics as of now.
fn next_batch(
    cfg: &PushConfig,
    node: &str,
    registry: &Registry,
    last_sent: &mut HashMap<&'static str, i64>,
    now: SystemTime,
) -> remote_write::WriteRequest {
    let mut req = remote_write::WriteRequest::default();
    for (sampler, families, at_ms) in registry.snapshots() {
        if last_sent.get(sampler).is_some_and(|t| *t >= at_ms) {
            continue;
        }
        last_sent.insert(sampler, at_ms);
        let extra = Labels::from_pairs([("job", job_for(cfg, sampler)), ("instance", node)]);
        req.timeseries
            .extend(remote_write::from_families(families.iter(), at_ms, &extra).timeseries);
    }
    let extra = Labels::from_pairs([("job", cfg.jobs.agent.as_str()), ("instance", node)]);
    let built = registry.built_families();
    req.timeseries
        .extend(remote_write::from_families(built.iter(), unix_millis(now), &extra).timeseries);
    req
}

/// How long an urgent push waits for the rest of a burst of events.
const URGENT_COALESCE: Duration = Duration::from_millis(100);

async fn produce_loop(
    cfg: PushConfig,
    node: String,
    registry: Arc<Registry>,
    endpoints: Shared,
    cancel: CancellationToken,
) {
    let mut ticker = tokio::time::interval(cfg.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_sent: HashMap<&'static str, i64> = HashMap::new();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
            _ = registry.push_requested() => {
                // Events come in bursts (kill, die, restart): wait a moment
                // so one batch carries them all.
                tokio::time::sleep(URGENT_COALESCE).await;
            }
        }
        let now = registry.clock().now();
        let req = next_batch(&cfg, &node, &registry, &mut last_sent, now);
        if req.timeseries.is_empty() {
            continue;
        }
        let body = remote_write::encode(&req);
        let created = unix_millis(now);
        for e in endpoints.iter() {
            let e2 = e.clone();
            let body = body.clone();
            let appended = tokio::task::spawn_blocking(move || e2.enqueue(created, &body)).await;
            match appended {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::error!(
                    endpoint = e.name,
                    "cannot write a batch to the outbox: {err}; this batch is lost for this endpoint"
                ),
                Err(err) => tracing::error!(endpoint = e.name, "outbox write failed: {err}"),
            }
        }
        publish_stats(&registry, &endpoints);
    }
}

/// What to do after one attempt.
enum Outcome {
    Delivered,
    Retry(Option<Duration>, String),
    Reject(String),
}

/// Sends the endpoint's outbox, oldest batch first, until cancelled.
pub async fn send_loop(e: Arc<Endpoint>, on_change: OnChange, cancel: CancellationToken) {
    let client: Client<HttpConnector, Full<Bytes>> = {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(e.timeout));
        Client::builder(TokioExecutor::new()).build(connector)
    };
    let mut failures: u32 = 0;
    let mut jitter = Jitter::seeded();
    let mut down_logged = false;
    loop {
        let e2 = e.clone();
        let next = tokio::task::spawn_blocking(move || lock(&e2.outbox).peek()).await;
        let record = match next {
            Ok(Ok(Some(r))) => r,
            Ok(Ok(None)) => {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = e.wake.notified() => continue,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
            Ok(Err(err)) => {
                tracing::error!(endpoint = e.name, "cannot read the outbox: {err}");
                tokio::select! { _ = cancel.cancelled() => return, _ = tokio::time::sleep(Duration::from_secs(5)) => continue }
            }
            Err(_) => return,
        };
        let outcome = tokio::select! {
            _ = cancel.cancelled() => return,
            o = send_once(&client, &e, record.body.clone()) => o,
        };
        match outcome {
            Outcome::Delivered => {
                failures = 0;
                if down_logged {
                    tracing::info!(endpoint = e.name, "{} accepts pushes again", e.url);
                    down_logged = false;
                }
                ack(&e, &record, None).await;
                let mut s = lock(&e.stats);
                s.sent_batches += 1;
                s.sent_bytes += record.body.len() as u64;
                s.last_success_unix = unix_seconds(SystemTime::now());
            }
            Outcome::Reject(why) => {
                tracing::warn!(
                    endpoint = e.name,
                    "{} refused a batch ({why}); it is dropped and counted",
                    e.url
                );
                ack(&e, &record, Some(DropReason::Rejected)).await;
            }
            Outcome::Retry(retry_after, why) => {
                failures = failures.saturating_add(1);
                lock(&e.stats).retries += 1;
                if !down_logged {
                    tracing::warn!(
                        endpoint = e.name,
                        "push to {} failed ({why}); batches wait in the outbox and are retried",
                        e.url
                    );
                    down_logged = true;
                }
                let backoff = jitter
                    .backoff(failures)
                    .max(retry_after.unwrap_or(Duration::ZERO))
                    .min(BACKOFF_MAX.max(retry_after.unwrap_or(Duration::ZERO)));
                refresh_outbox_stats(&e);
                on_change();
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
            }
        }
        refresh_outbox_stats(&e);
        on_change();
    }
}

async fn ack(e: &Arc<Endpoint>, record: &crate::outbox::Record, dropped: Option<DropReason>) {
    let e2 = e.clone();
    let record = record.clone();
    let done = tokio::task::spawn_blocking(move || lock(&e2.outbox).ack(&record, dropped)).await;
    if let Ok(Err(err)) | Err(err) = done.map_err(|j| std::io::Error::other(j.to_string())) {
        tracing::error!(
            endpoint = e.name,
            "cannot record the delivery in the outbox: {err}; the batch may be sent again"
        );
    }
}

async fn send_once(
    client: &Client<HttpConnector, Full<Bytes>>,
    e: &Endpoint,
    body: Vec<u8>,
) -> Outcome {
    let mut req = hyper::Request::post(e.url.clone())
        .header(hyper::header::CONTENT_TYPE, remote_write::CONTENT_TYPE)
        .header(
            hyper::header::CONTENT_ENCODING,
            remote_write::CONTENT_ENCODING,
        )
        .header(remote_write::VERSION_HEADER, remote_write::VERSION)
        .header(hyper::header::USER_AGENT, e.user_agent.as_str());
    if let Some(node) = &e.node {
        req = req.header(NODE_HEADER, node.as_str());
    }
    if let Some(t) = &e.token {
        req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = match req.body(Full::new(Bytes::from(body))) {
        Ok(r) => r,
        Err(err) => return Outcome::Reject(format!("cannot build the request: {err}")),
    };
    let resp = match tokio::time::timeout(e.timeout, client.request(req)).await {
        Err(_) => {
            return Outcome::Retry(
                None,
                format!("no answer within {}", humantime::format_duration(e.timeout)),
            );
        }
        Ok(Err(err)) => return Outcome::Retry(None, error_chain(&err)),
        Ok(Ok(r)) => r,
    };
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(hyper::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let text = match tokio::time::timeout(e.timeout, resp.into_body().collect()).await {
        Ok(Ok(b)) => String::from_utf8_lossy(&b.to_bytes())
            .chars()
            .take(300)
            .collect::<String>(),
        _ => String::new(),
    };
    if status.is_success() {
        Outcome::Delivered
    } else if status.as_u16() == 429 || status.is_server_error() {
        Outcome::Retry(retry_after, format!("HTTP {status}: {}", text.trim()))
    } else {
        Outcome::Reject(format!("HTTP {status}: {}", text.trim()))
    }
}

fn refresh_outbox_stats(e: &Endpoint) {
    let (pending, oldest, dropped) = {
        let o = lock(&e.outbox);
        let oldest = o.oldest_pending_ms().ok().flatten();
        (o.pending_bytes(), oldest, o.stats().dropped_records.clone())
    };
    let mut s = lock(&e.stats);
    s.pending_bytes = pending;
    s.oldest_pending_ms = oldest;
    s.dropped = dropped;
}

fn publish_stats(registry: &Registry, endpoints: &[Arc<Endpoint>]) {
    let now_ms = unix_millis(registry.clock().now());
    registry.publish(NAME, stat_families("lookout_agent", endpoints, now_ms));
}

/// Sending statistics as families named `<prefix>_push_*` and
/// `<prefix>_outbox_*`, one series per endpoint.
pub fn stat_families(prefix: &str, endpoints: &[Arc<Endpoint>], now_ms: i64) -> Vec<Family> {
    let mut sent = Family::counter(
        format!("{prefix}_push_sent_batches_total"),
        "Batches a receiver acknowledged with 2xx.",
    );
    let mut bytes = Family::counter(
        format!("{prefix}_push_sent_bytes_total"),
        "Compressed bytes of acknowledged batches.",
    );
    let mut retries = Family::counter(
        format!("{prefix}_push_retries_total"),
        "Push attempts that failed and will be retried.",
    );
    let mut dropped = Family::counter(
        format!("{prefix}_push_dropped_batches_total"),
        "Batches dropped without delivery, by reason (outbox_full, corrupt, rejected).",
    );
    let mut pending = Family::gauge(
        format!("{prefix}_outbox_bytes"),
        "Bytes of batches waiting in the outbox.",
    );
    let mut age = Family::gauge(
        format!("{prefix}_outbox_oldest_unsent_age_seconds"),
        "Age of the oldest batch waiting in the outbox (0 when empty).",
    );
    let mut last = Family::new(
        format!("{prefix}_push_last_success_timestamp_seconds"),
        "When a receiver last acknowledged a batch.",
        MetricKind::Gauge,
    );
    for e in endpoints {
        let s = lock(&e.stats).clone();
        let l = Labels::from_pairs([("endpoint", e.name.as_str())]);
        sent.push(l.clone(), s.sent_batches as f64);
        bytes.push(l.clone(), s.sent_bytes as f64);
        retries.push(l.clone(), s.retries as f64);
        for reason in [DropReason::Full, DropReason::Corrupt, DropReason::Rejected] {
            let n = s
                .dropped
                .iter()
                .find(|(r, _)| *r == reason)
                .map(|(_, n)| *n)
                .unwrap_or(0);
            dropped.push(l.with("reason", reason.as_str()), n as f64);
        }
        pending.push(l.clone(), s.pending_bytes as f64);
        age.push(
            l.clone(),
            s.oldest_pending_ms
                .map(|t| ((now_ms - t).max(0)) as f64 / 1000.0)
                .unwrap_or(0.0),
        );
        last.push(l, s.last_success_unix);
    }
    vec![sent, bytes, retries, dropped, pending, age, last]
}

/// Full-jitter exponential backoff, so that many agents returning after an
/// outage spread out instead of arriving together (pushes, the pod watch's
/// lists, the collector's watches). A small xorshift generator is enough
/// for spreading.
pub struct Jitter(u64);

impl Jitter {
    pub fn seeded() -> Jitter {
        let t = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        Jitter(t ^ ((std::process::id() as u64) << 32) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A delay between half and all of `BACKOFF_MIN * 2^(failures-1)`,
    /// capped at `BACKOFF_MAX`.
    pub fn backoff(&mut self, failures: u32) -> Duration {
        let exp = BACKOFF_MIN
            .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
            .min(BACKOFF_MAX);
        let half = exp / 2;
        let spread = half.as_millis() as u64;
        half + Duration::from_millis(if spread == 0 {
            0
        } else {
            self.next() % (spread + 1)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let mut j = Jitter::seeded();
        for failures in 1..30 {
            let b = j.backoff(failures);
            let exp = BACKOFF_MIN
                .saturating_mul(1u32 << (failures - 1).min(16))
                .min(BACKOFF_MAX);
            assert!(
                b >= exp / 2 && b <= exp,
                "{failures}: {b:?} outside [{:?}, {exp:?}]",
                exp / 2
            );
        }
        // Two agents failing together do not retry in lockstep.
        let mut a = Jitter(12345);
        let mut b = Jitter(67890);
        let same = (0..20).filter(|_| a.backoff(6) == b.backoff(6)).count();
        assert!(same < 3);
    }

    #[test]
    fn batches_take_new_snapshots_once_with_their_jobs() {
        let registry = Registry::new(crate::clock::system());
        let cfg = PushConfig::default();
        registry.publish_at(
            crate::samplers::host::NAME,
            vec![Family::single("node_load1", "h", MetricKind::Gauge, 0.5)],
            1000,
        );
        registry.publish_at(
            crate::samplers::containers::NAME,
            vec![Family::single(
                "container_last_seen",
                "h",
                MetricKind::Gauge,
                1.0,
            )],
            1500,
        );
        let mut last = HashMap::new();
        let req = next_batch(&cfg, "node-1", &registry, &mut last, SystemTime::now());
        let find = |name: &str| {
            req.timeseries
                .iter()
                .find(|t| {
                    t.labels
                        .iter()
                        .any(|l| l.name == "__name__" && l.value == name)
                })
                .cloned()
        };
        let load = find("node_load1").expect("host series");
        assert!(
            load.labels
                .iter()
                .any(|l| l.name == "job" && l.value == "node-exporter")
        );
        assert!(
            load.labels
                .iter()
                .any(|l| l.name == "instance" && l.value == "node-1")
        );
        assert_eq!(load.samples[0].timestamp, 1000);
        let seen = find("container_last_seen").expect("container series");
        assert!(
            seen.labels
                .iter()
                .any(|l| l.name == "job" && l.value == "cadvisor")
        );
        assert!(
            find("lookout_agent_build_info").is_some(),
            "self-metrics ride along"
        );
        for ts in &req.timeseries {
            remote_write::validate_labels(&ts.labels).unwrap();
        }
        // Nothing new from the samplers: only the built families again.
        let again = next_batch(&cfg, "node-1", &registry, &mut last, SystemTime::now());
        assert!(
            again
                .timeseries
                .iter()
                .all(|t| !t.labels.iter().any(|l| l.value == "node_load1"))
        );
    }
}
