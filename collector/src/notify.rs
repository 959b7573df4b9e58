//! Drives the notification pipeline in real time: alerts from the rules
//! (and from `POST /api/v2/alerts`) go in, the pipeline is ticked when its
//! next deadline comes, and due notifications are delivered by the
//! receivers. Alerts also go, unrouted, to the configured Alertmanagers.
//!
//! Silences and the notification log live in files beside the store, so a
//! restart neither forgets a silence nor re-announces an alert.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use lookout_notify::alertmanager::AlertmanagerClient;
use lookout_notify::receivers::delivery::{BuildContext, DeliveryOptions, build};
use lookout_notify::{Alert, LogRecord, Notification, Notifier, Pipeline, Silences};
use lookout_rules::OutgoingAlert;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::Config;

const SILENCES_FILE: &str = "silences.json";
const NFLOG_FILE: &str = "notification-log.json";

/// The longest the driver sleeps without looking at the pipeline; bounds
/// the effect of a clock jump.
const MAX_SLEEP: Duration = Duration::from_secs(1);

pub struct Notifications {
    pub pipeline: Mutex<Pipeline>,
    pub silences: Mutex<Silences>,
    receivers: HashMap<String, Vec<Arc<dyn Notifier>>>,
    pub build_ctx: BuildContext,
    alertmanagers: Vec<Arc<AlertmanagerClient>>,
    external_labels: std::collections::BTreeMap<String, String>,
    wake: Notify,
    nflog_path: PathBuf,
    pub stats: NotifyStats,
}

#[derive(Default)]
pub struct NotifyStats {
    pub alerts_received: AtomicU64,
    pub alerts_rejected: AtomicU64,
    pub notifications_sent: AtomicU64,
    pub notifications_failed: AtomicU64,
    pub alertmanager_sent: AtomicU64,
    pub alertmanager_failed: AtomicU64,
    pub state_write_failures: AtomicU64,
}

impl Notifications {
    pub fn new(cfg: &Config) -> anyhow::Result<Notifications> {
        let external_url = cfg.external_url();
        let pipeline =
            Pipeline::new(&cfg.notify, external_url).map_err(|e| anyhow::anyhow!("notify: {e}"))?;
        let build_ctx = BuildContext::new(DeliveryOptions::default())
            .context("cannot set up the receivers' HTTP client")?;
        let mut receivers = HashMap::new();
        for r in &cfg.notify.receivers {
            let built = build(r, &build_ctx).map_err(|e| anyhow::anyhow!("notify: {e}"))?;
            receivers.insert(r.name.clone(), built);
        }
        let mut alertmanagers = Vec::new();
        for (i, am) in cfg.alerting.alertmanagers.iter().enumerate() {
            let client = AlertmanagerClient::new(&build_ctx, &am.url, am.timeout)
                .map_err(|e| anyhow::anyhow!("alerting.alertmanagers[{i}]: {e}"))?;
            alertmanagers.push(Arc::new(client));
        }
        std::fs::create_dir_all(&cfg.storage.path)
            .with_context(|| format!("cannot create {}", cfg.storage.path.display()))?;
        let silences_path = cfg.storage.path.join(SILENCES_FILE);
        let silences = Silences::open(&silences_path)
            .with_context(|| format!("cannot open silences at {}", silences_path.display()))?;
        let nflog_path = cfg.storage.path.join(NFLOG_FILE);
        let mut pipeline = pipeline;
        pipeline.restore_notification_log(read_log(&nflog_path));
        Ok(Notifications {
            pipeline: Mutex::new(pipeline),
            silences: Mutex::new(silences),
            receivers,
            build_ctx,
            alertmanagers,
            external_labels: cfg.rules.external_labels.clone(),
            wake: Notify::new(),
            nflog_path,
            stats: NotifyStats::default(),
        })
    }

    /// Alerts from the rules: into the pipeline, and to Alertmanagers.
    pub fn put_rule_alerts(self: &Arc<Self>, alerts: Vec<OutgoingAlert>, now_ms: i64) {
        let converted: Vec<Alert> = alerts
            .into_iter()
            .map(|a| {
                let mut labels = a.labels;
                for (k, v) in &self.external_labels {
                    labels.entry(k.clone()).or_insert_with(|| v.clone());
                }
                Alert {
                    labels,
                    annotations: a.annotations,
                    starts_at_ms: a.starts_at_ms,
                    ends_at_ms: Some(a.ends_at_ms),
                    generator_url: a.generator_url,
                }
            })
            .collect();
        self.send_to_alertmanagers(&converted);
        self.put_alerts(converted, now_ms);
    }

    /// Alerts in Alertmanager's model (rules or the v2 API). Returns how
    /// many were refused, with the first reason.
    pub fn put_alerts(&self, alerts: Vec<Alert>, now_ms: i64) -> (usize, Option<String>) {
        self.stats
            .alerts_received
            .fetch_add(alerts.len() as u64, Ordering::Relaxed);
        let rejected = self.pipeline.lock().put_alerts(alerts, now_ms);
        self.wake.notify_one();
        if rejected.is_empty() {
            return (0, None);
        }
        self.stats
            .alerts_rejected
            .fetch_add(rejected.len() as u64, Ordering::Relaxed);
        let first = rejected.first().map(|r| r.reason.to_string());
        (rejected.len(), first)
    }

    /// Makes the driver look at the pipeline now (a silence changed).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    fn send_to_alertmanagers(self: &Arc<Self>, alerts: &[Alert]) {
        if self.alertmanagers.is_empty() || alerts.is_empty() {
            return;
        }
        let batch: Arc<Vec<Alert>> = Arc::new(alerts.to_vec());
        for am in &self.alertmanagers {
            let am = am.clone();
            let batch = batch.clone();
            let me = self.clone();
            tokio::spawn(async move {
                // One retry covers a restarting Alertmanager; the next
                // resend (at most resend_delay later) covers the rest.
                let mut result = am.send(&batch).await;
                if result.is_err() {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    result = am.send(&batch).await;
                }
                match result {
                    Ok(()) => {
                        me.stats
                            .alertmanager_sent
                            .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    }
                    Err(e) => {
                        me.stats
                            .alertmanager_failed
                            .fetch_add(batch.len() as u64, Ordering::Relaxed);
                        tracing::warn!("cannot send {} alerts to Alertmanager: {e}", batch.len());
                    }
                }
            });
        }
    }

    /// Ticks the pipeline until cancelled.
    pub async fn run(
        self: Arc<Self>,
        now_ms: impl Fn() -> i64 + Send + Sync + 'static,
        cancel: CancellationToken,
    ) {
        let now_ms = Arc::new(now_ms);
        let mut saved_version = 0;
        loop {
            let now = now_ms();
            let due = {
                let silences = self.silences.lock();
                self.pipeline.lock().tick(now, &silences)
            };
            for n in due {
                let me = self.clone();
                let clock = now_ms.clone();
                tokio::spawn(async move {
                    let ok = me.deliver(&n).await;
                    let at = clock();
                    me.pipeline.lock().delivered(&n, ok, at);
                    me.wake.notify_one();
                });
            }
            let version = self.pipeline.lock().log_version();
            if version != saved_version {
                saved_version = version;
                self.save_log();
            }
            let sleep = {
                let next = self.pipeline.lock().next_deadline();
                match next {
                    Some(t) => {
                        Duration::from_millis(t.saturating_sub(now_ms()).clamp(0, 1000) as u64)
                    }
                    None => MAX_SLEEP,
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }

    /// Sends one notification through every integration of its receiver;
    /// it counts as delivered only when all of them took it.
    async fn deliver(&self, n: &Notification) -> bool {
        let Some(notifiers) = self.receivers.get(&n.receiver) else {
            // A receiver with no integrations discards, as in Alertmanager.
            return true;
        };
        let mut ok = true;
        for notifier in notifiers {
            match notifier.notify(n).await {
                Ok(()) => {
                    self.stats
                        .notifications_sent
                        .fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    ok = false;
                    self.stats
                        .notifications_failed
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        receiver = %n.receiver,
                        "{} could not deliver a notification of {} alerts: {e}",
                        notifier.name(),
                        n.alerts.len()
                    );
                }
            }
        }
        ok
    }

    fn save_log(&self) {
        let records = self.pipeline.lock().notification_log();
        if let Err(e) = crate::statefile::write_atomically(&self.nflog_path, &records) {
            self.stats
                .state_write_failures
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                "cannot save the notification log to {}: {e}",
                self.nflog_path.display()
            );
        }
    }
}

fn read_log(path: &Path) -> Vec<LogRecord> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(
                "notification log {} is unreadable ({e}); starting afresh",
                path.display()
            );
            Vec::new()
        }),
        Err(_) => Vec::new(),
    }
}
