//! `lookout serve`: wires storage, ingest, the read API, liveness and
//! forwarding into one process, and stops them in order.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use lookout_agent::clock::{SharedClock, unix_millis, unix_seconds};
use lookout_protocol::exposition::{Format, encode};
use lookout_protocol::remote_write::{self, TimeSeries};
use lookout_protocol::{Family, Labels, MetricKind};
use lookout_tsdb::Db;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::forward::Forwarders;
use crate::ingest::auth::Tokens;
use crate::ingest::liveness::Liveness;
use crate::ingest::{IngestStats, Throttled};
use crate::notify::Notifications;
use crate::rules::{AlertsOut, RuleManager};
use crate::{api, ingest};

/// Shared state of a running collector.
pub struct App {
    pub cfg: Config,
    pub db: Arc<Db>,
    pub tokens: Tokens,
    pub liveness: Liveness,
    pub ingest_stats: IngestStats,
    pub forward: Forwarders,
    pub log: Throttled,
    pub clock: SharedClock,
    pub started_unix: f64,
    pub rules: Arc<RuleManager>,
    pub notify: Arc<Notifications>,
    /// Where rule evaluations hand their alerts; set once at start.
    alerts_out: std::sync::OnceLock<AlertsOut>,
    cancel: CancellationToken,
}

impl App {
    pub fn now_ms(&self) -> i64 {
        unix_millis(self.clock.now())
    }

    /// Re-reads the rule files; on error the running rules stay.
    pub fn reload_rules(self: &Arc<Self>) -> Result<usize, lookout_rules::RuleErrors> {
        let out = self
            .alerts_out
            .get()
            .cloned()
            .unwrap_or_else(|| Arc::new(|_| {}));
        self.rules.reload(self, out, &self.cancel)
    }

    /// The collector's own writes (synthesized `up`, rule results,
    /// `ALERTS`): into the store, then to every forwarder, as pushes go.
    pub fn append_local(&self, mut series: Vec<TimeSeries>) -> Result<(), lookout_tsdb::Error> {
        if series.is_empty() {
            return Ok(());
        }
        self.db.append(&mut series)?;
        if !self.forward.is_empty() {
            self.forward
                .enqueue(&remote_write::encode(&remote_write::WriteRequest {
                    timeseries: series,
                    metadata: Vec::new(),
                }));
        }
        Ok(())
    }
}

/// How often storage maintenance (block cuts, compaction, retention) runs.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(60);

pub struct Collector {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    cancel: CancellationToken,
    tasks: JoinSet<()>,
}

pub fn router(app: Arc<App>) -> Router {
    let body_limit = (app.cfg.ingest.max_body_mib << 20) as usize;
    Router::new()
        .route(
            "/api/v1/write",
            post(ingest::write).layer(DefaultBodyLimit::max(body_limit)),
        )
        .route("/api/v1/series", get(api::series).post(api::series))
        .route("/api/v1/labels", get(api::labels).post(api::labels))
        .route("/api/v1/label/{name}/values", get(api::label_values))
        .route("/api/v1/export", get(api::export).post(api::export))
        .route("/api/v1/status/buildinfo", get(api::buildinfo))
        .route(
            "/api/v1/query",
            get(api::query::instant).post(api::query::instant),
        )
        .route(
            "/api/v1/query_range",
            get(api::query::range).post(api::query::range),
        )
        .route("/api/v1/metadata", get(api::query::metadata))
        .route(
            "/api/v1/query_exemplars",
            get(api::query::exemplars).post(api::query::exemplars),
        )
        .route("/api/v1/rules", get(api::alerting::rules))
        .route("/api/v1/alerts", get(api::alerting::alerts))
        .route(
            "/api/v2/alerts",
            get(api::alerting::am_alerts).post(api::alerting::am_post_alerts),
        )
        .route(
            "/api/v2/silences",
            get(api::alerting::silences).post(api::alerting::post_silence),
        )
        .route(
            "/api/v2/silence/{id}",
            get(api::alerting::silence).delete(api::alerting::expire_silence),
        )
        .route("/-/reload", post(api::alerting::reload))
        .route("/metrics", get(metrics))
        .route("/-/healthy", get(|| async { "Lookout is Healthy.\n" }))
        .route("/-/ready", get(|| async { "Lookout is Ready.\n" }))
        .route("/", get(index))
        .with_state(app)
}

async fn index() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        concat!(
            "<html><head><title>Lookout</title></head><body><h1>Lookout collector</h1><ul>",
            "<li><a href=\"/metrics\">/metrics</a></li>",
            "<li><a href=\"/api/v1/labels\">/api/v1/labels</a></li>",
            "<li>POST /api/v1/write (remote write)</li></ul></body></html>\n"
        ),
    )
        .into_response()
}

impl Collector {
    /// Opens storage, binds the listener and starts the background loops.
    pub async fn start(cfg: Config, clock: SharedClock) -> anyhow::Result<Collector> {
        let tokens = Tokens::load(&cfg.ingest.tokens)?;
        let tls = cfg
            .tls
            .as_ref()
            .map(crate::tls::server_config)
            .transpose()?;
        let listener = tokio::net::TcpListener::bind(cfg.listen_addr())
            .await
            .with_context(|| format!("cannot listen on {}", cfg.listen))?;
        let addr = listener.local_addr()?;
        if tokens.is_open() && !addr.ip().is_loopback() {
            tracing::warn!(
                %addr,
                "ingest accepts pushes without a token on a non-loopback address; set ingest.tokens"
            );
        }
        let path = cfg.storage.path.clone();
        let opts = cfg.tsdb_options();
        let db = tokio::task::spawn_blocking(move || Db::open(&path, opts))
            .await?
            .with_context(|| format!("cannot open storage at {}", cfg.storage.path.display()))?;
        let db = Arc::new(db);

        let rules = RuleManager::load(&cfg, std::path::Path::new("."))
            .map_err(|e| anyhow::anyhow!("rule files:\n{e}"))?;
        let notify = Notifications::new(&cfg)?;
        let cancel = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let forward = Forwarders::start(&cfg.forward, &cfg.storage.path, &cancel, &mut tasks)?;
        let liveness = Liveness::new(cfg.ingest.agent_silence.as_millis() as i64);
        let app = Arc::new(App {
            started_unix: lookout_agent::registry::process_start_unix()
                .unwrap_or_else(|| unix_seconds(clock.now())),
            cfg,
            db,
            tokens,
            liveness,
            ingest_stats: IngestStats::default(),
            forward,
            log: Throttled::default(),
            clock,
            rules: Arc::new(rules),
            notify: Arc::new(notify),
            alerts_out: std::sync::OnceLock::new(),
            cancel: cancel.clone(),
        });
        {
            let app = app.clone();
            tokio::task::spawn_blocking(move || {
                let now = app.now_ms();
                app.liveness.restore(app.db.as_ref(), now, 24 * 3600 * 1000);
            })
            .await?;
        }

        let server_cancel = cancel.clone();
        let router = router(app.clone());
        let shutdown = server_cancel.cancelled_owned();
        match tls {
            None => tasks.spawn(serve_http(listener, router, shutdown)),
            Some(config) => tasks.spawn(serve_http(
                crate::tls::TlsListener::new(listener, config),
                router,
                shutdown,
            )),
        };
        tasks.spawn(maintenance_loop(app.clone(), cancel.clone()));
        {
            let clock_app = app.clone();
            tasks.spawn(
                app.notify
                    .clone()
                    .run(move || clock_app.now_ms(), cancel.clone()),
            );
            let notify = app.notify.clone();
            let clock_app = app.clone();
            let out: AlertsOut =
                Arc::new(move |alerts| notify.put_rule_alerts(alerts, clock_app.now_ms()));
            let _ = app.alerts_out.set(out.clone());
            app.rules.start(&app, out, &cancel);
        }
        tasks.spawn(liveness_loop(app.clone(), cancel.clone()));
        tasks.spawn(self_loop(app.clone(), cancel.clone()));
        crate::kube::start(&app, &cancel, &mut tasks).await?;
        Ok(Collector {
            addr,
            app,
            cancel,
            tasks,
        })
    }

    pub async fn stop(mut self) {
        self.cancel.cancel();
        while self.tasks.join_next().await.is_some() {}
        let db = self.app.db.clone();
        let _ = tokio::task::spawn_blocking(move || db.close()).await;
    }
}

async fn serve_http<L>(
    listener: L,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await;
    if let Err(e) = served {
        tracing::error!("HTTP server failed: {e}");
    }
}

async fn maintenance_loop(app: Arc<App>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(MAINTENANCE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let db = app.db.clone();
        match tokio::task::spawn_blocking(move || db.maintain()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!("storage maintenance failed (retried in a minute): {e}"),
            Err(e) => tracing::error!("storage maintenance task failed: {e}"),
        }
    }
}

/// Writes the synthesized `up` series; ticks at a third of the silence
/// allowance (at most every 10 s) so `up` flips soon after it is due.
async fn liveness_loop(app: Arc<App>, cancel: CancellationToken) {
    let every =
        (app.cfg.ingest.agent_silence / 3).clamp(Duration::from_secs(1), Duration::from_secs(10));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let app2 = app.clone();
        let done = tokio::task::spawn_blocking(move || {
            app2.append_local(app2.liveness.series(app2.now_ms()))
        })
        .await;
        if let Ok(Err(e)) = done {
            tracing::error!("cannot store agent liveness: {e}");
        }
    }
}

async fn metrics(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let app2 = app.clone();
    let families = tokio::task::spawn_blocking(move || self_families(&app2))
        .await
        .unwrap_or_default();
    let mut out = String::with_capacity(8192);
    encode(families.iter(), format, &mut out);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, format.content_type())],
        out,
    )
        .into_response()
}

fn counter(name: &str, help: &'static str, v: u64) -> Family {
    Family::single(name.to_string(), help, MetricKind::Counter, v as f64)
}

fn gauge(name: &str, help: &'static str, v: f64) -> Family {
    Family::single(name.to_string(), help, MetricKind::Gauge, v)
}

/// The collector's own series.
pub fn self_families(app: &App) -> Vec<Family> {
    let st = app.db.stats();
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let mut out = Vec::new();
    let mut requests = Family::counter(
        "lookout_ingest_requests_total",
        "Remote-write requests answered, by HTTP status code.",
    );
    let mut codes: Vec<(u16, u64)> = app
        .ingest_stats
        .requests
        .lock()
        .iter()
        .map(|(k, v)| (*k, *v))
        .collect();
    codes.sort();
    for (code, n) in codes {
        requests.push(Labels::from_pairs([("code", code.to_string())]), n as f64);
    }
    out.push(requests);
    out.push(counter(
        "lookout_ingest_received_bytes_total",
        "Compressed bytes of remote-write bodies received.",
        load(&app.ingest_stats.bytes),
    ));
    out.push(counter(
        "lookout_ingest_received_samples_total",
        "Samples in decoded remote-write requests.",
        load(&app.ingest_stats.samples),
    ));
    out.push(counter(
        "lookout_ingest_native_histograms_dropped_total",
        "Native histogram samples received and not stored (not supported yet).",
        load(&app.ingest_stats.native_histograms_dropped),
    ));
    out.push(counter(
        "lookout_tsdb_samples_appended_total",
        "Samples stored.",
        load(&st.samples_appended),
    ));
    out.push(counter(
        "lookout_tsdb_duplicate_samples_total",
        "Samples received again with the same timestamp and value (replays); nothing to store.",
        load(&st.duplicates),
    ));
    let mut dropped = Family::counter(
        "lookout_tsdb_samples_dropped_total",
        "Samples not stored, by reason.",
    );
    for (reason, v) in [
        ("conflict", load(&st.conflicts)),
        ("too_old", load(&st.too_old)),
    ] {
        dropped.push(Labels::from_pairs([("reason", reason)]), v as f64);
    }
    out.push(dropped);
    out.push(counter(
        "lookout_tsdb_invalid_series_total",
        "Received series refused for their labels (no name, invalid or repeated label names).",
        load(&st.invalid_series),
    ));
    out.push(counter(
        "lookout_tsdb_series_created_total",
        "Series created in the head.",
        load(&st.series_created),
    ));
    out.push(gauge(
        "lookout_tsdb_head_series",
        "Series in the in-memory head.",
        app.db.head().series_count() as f64,
    ));
    let blocks = app.db.blocks();
    out.push(gauge(
        "lookout_tsdb_blocks",
        "On-disk blocks.",
        blocks.len() as f64,
    ));
    out.push(gauge(
        "lookout_tsdb_storage_bytes",
        "Bytes of blocks and write-ahead log on disk.",
        app.db.disk_bytes() as f64,
    ));
    out.push(counter(
        "lookout_tsdb_wal_corrupt_records_total",
        "Write-ahead log records found damaged at startup and skipped.",
        load(&st.wal_corrupt_records),
    ));
    out.push(counter(
        "lookout_tsdb_blocks_cut_total",
        "Blocks cut from the head.",
        load(&st.blocks_cut),
    ));
    out.push(counter(
        "lookout_tsdb_compactions_total",
        "Block compactions.",
        load(&st.compactions),
    ));
    out.push(counter(
        "lookout_tsdb_blocks_deleted_total",
        "Blocks deleted by retention.",
        load(&st.blocks_deleted),
    ));
    out.push(counter(
        "lookout_tsdb_maintenance_failures_total",
        "Failed maintenance runs (block cut, compaction, retention).",
        load(&st.maintenance_failures),
    ));
    out.push(gauge(
        "lookout_agents_known",
        "Pushing agents the collector synthesizes up for.",
        app.liveness.agent_count() as f64,
    ));
    out.extend(app.forward.families(app.now_ms()));
    out.extend(alerting_families(app));
    let mut build = Family::gauge("lookout_build_info", "Lookout's version.");
    build.push(
        Labels::from_pairs([("version", env!("CARGO_PKG_VERSION"))]),
        1.0,
    );
    out.push(build);
    out.extend(lookout_agent::registry::process_families(app.started_unix));
    out
}

/// Rule evaluation and notification counters, for the self-health rules
/// (notifications failing, rules failing).
fn alerting_families(app: &App) -> Vec<Family> {
    let r = &app.rules.stats;
    let n = &app.notify.stats;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let mut out = vec![
        counter(
            "lookout_rule_group_evaluations_total",
            "Rule group evaluations.",
            load(&r.evaluations),
        ),
        counter(
            "lookout_rule_group_evaluation_failures_total",
            "Rule group evaluations in which a rule failed.",
            load(&r.evaluation_failures),
        ),
        counter(
            "lookout_rule_reloads_failed_total",
            "Rule reloads refused because a file was bad (the last good rules kept running).",
            load(&r.reloads_failed),
        ),
        gauge(
            "lookout_rule_last_reload_successful",
            "Whether the last rule reload succeeded.",
            if r.last_reload_ok.load(Ordering::Relaxed) {
                1.0
            } else {
                0.0
            },
        ),
        counter(
            "lookout_notify_alerts_received_total",
            "Alerts handed to the notification pipeline.",
            load(&n.alerts_received),
        ),
        counter(
            "lookout_alertmanager_alerts_sent_total",
            "Alert batches Alertmanagers accepted.",
            load(&n.alertmanager_sent),
        ),
        counter(
            "lookout_alertmanager_alerts_failed_total",
            "Alert batches that could not be sent to an Alertmanager.",
            load(&n.alertmanager_failed),
        ),
    ];
    let mut sent = Family::counter(
        "lookout_notifications_total",
        "Notifications delivered, by receiver and integration.",
    );
    let mut failed = Family::counter(
        "lookout_notifications_failed_total",
        "Notifications that failed for good after their retries, by receiver and integration.",
    );
    let mut retried = Family::counter(
        "lookout_notification_retries_total",
        "Delivery attempts that failed and were retried.",
    );
    for s in app.notify.build_ctx.stats().snapshot() {
        let l = Labels::from_pairs([
            ("receiver", s.receiver.as_str()),
            ("integration", s.integration.as_str()),
        ]);
        sent.push(l.clone(), s.stats.sent as f64);
        failed.push(l.clone(), s.stats.failed as f64);
        retried.push(l, s.stats.retried as f64);
    }
    out.extend([sent, failed, retried]);
    out
}

/// Writes the collector's own series (`job="lookout"`) into its store, so
/// the self-health rules see them as they see an agent's.
async fn self_loop(app: Arc<App>, cancel: CancellationToken) {
    let every = app.cfg.self_scrape_interval;
    if every.is_zero() {
        return;
    }
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let app2 = app.clone();
        let done = tokio::task::spawn_blocking(move || {
            let families = self_families(&app2);
            let extra = Labels::from_pairs([
                ("job", crate::kube::state::LOOKOUT_JOB),
                ("instance", app2.cfg.listen.as_str()),
            ]);
            let req = remote_write::from_families(families.iter(), app2.now_ms(), &extra);
            app2.append_local(req.timeseries)
        })
        .await;
        if let Ok(Err(e)) = done {
            tracing::error!("cannot store the collector's own series: {e}");
        }
    }
}

/// Runs until SIGTERM or SIGINT.
pub async fn run(cfg: Config, config_path: Option<PathBuf>) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let storage = cfg.storage.path.clone();
    let collector = Collector::start(cfg, lookout_agent::clock::system()).await?;
    tracing::info!(
        "lookout collector {} listening on {}://{} (remote write: POST /api/v1/write), storage at {}{}",
        env!("CARGO_PKG_VERSION"),
        if collector.app.cfg.tls.is_some() {
            "https"
        } else {
            "http"
        },
        collector.addr,
        storage.display(),
        config_path
            .map(|p| format!(", config {}", p.display()))
            .unwrap_or_default()
    );
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: stopping"); break; }
            _ = int.recv() => { tracing::info!("SIGINT: stopping"); break; }
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading rule files");
                let app = collector.app.clone();
                // A failed reload is logged by the manager; the old rules run on.
                let _ = tokio::task::spawn_blocking(move || app.reload_rules()).await;
            }
        }
    }
    collector.stop().await;
    tracing::info!("stopped");
    Ok(())
}
