//! The rule manager: loads rule files, evaluates each group on its own
//! interval against the store, writes results back through the collector's
//! one append path, keeps alert state across restarts, and hands alerts to
//! notification.
//!
//! A reload (SIGHUP or `POST /-/reload`) that fails keeps the last good
//! rules running; one that succeeds keeps the state of unchanged rules.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use lookout_promql::Engine;
use lookout_protocol::remote_write::TimeSeries;
use lookout_rules::eval::SavedRule;
use lookout_rules::file::expand_globs;
use lookout_rules::{EvalContext, GroupState, OutgoingAlert, RuleErrors, Sink};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::serve::App;

/// Receives alerts that need sending after each evaluation.
pub type AlertsOut = Arc<dyn Fn(Vec<OutgoingAlert>) + Send + Sync>;

/// State file of alerts, beside the store.
const STATE_FILE: &str = "rules-state.json";

pub struct RuleManager {
    /// Patterns from the config, already made absolute.
    patterns: Vec<String>,
    default_interval_ms: i64,
    groups: Mutex<Vec<Arc<Mutex<GroupState>>>>,
    /// Cancels the running generation of group tasks on reload.
    generation: Mutex<CancellationToken>,
    saved: Mutex<BTreeMap<String, Vec<SavedRule>>>,
    state_path: PathBuf,
    pub stats: RuleStats,
}

#[derive(Default)]
pub struct RuleStats {
    pub last_reload_ok: AtomicBool,
    pub reloads_failed: AtomicU64,
    pub evaluations: AtomicU64,
    pub evaluation_failures: AtomicU64,
    pub state_write_failures: AtomicU64,
}

/// Group identity across reloads and restarts.
fn group_key(file: &Path, name: &str) -> String {
    format!("{};{name}", file.display())
}

#[derive(Serialize, Deserialize, Default)]
struct StateFile {
    groups: BTreeMap<String, Vec<SavedRule>>,
}

/// The store seen as a rule sink: samples go in through the same path as
/// every other series the collector writes itself.
struct AppSink<'a>(&'a App);

impl Sink for AppSink<'_> {
    fn append(&self, series: Vec<TimeSeries>) -> Result<(), String> {
        self.0.append_local(series).map_err(|e| e.to_string())
    }
}

impl RuleManager {
    /// Loads the configured rule files; errors here stop the collector
    /// from starting, as a broken config would.
    pub fn load(app_cfg: &crate::config::Config, base: &Path) -> Result<RuleManager, RuleErrors> {
        let base = std::fs::canonicalize(base).unwrap_or_else(|_| base.to_path_buf());
        let patterns: Vec<String> = app_cfg
            .rules
            .files
            .iter()
            .map(|p| {
                if Path::new(p).is_absolute() {
                    p.clone()
                } else {
                    base.join(p).display().to_string()
                }
            })
            .collect();
        let groups = load_groups(&patterns)?;
        let state_path = app_cfg.storage.path.join(STATE_FILE);
        let saved = read_state(&state_path);
        let mut states = Vec::with_capacity(groups.len());
        for g in groups {
            let mut st = GroupState::new(g);
            if let Some(s) = saved.groups.get(&group_key(&st.group.file, &st.group.name)) {
                st.restore(s);
            }
            states.push(Arc::new(Mutex::new(st)));
        }
        let stats = RuleStats::default();
        stats.last_reload_ok.store(true, Ordering::Relaxed);
        Ok(RuleManager {
            patterns,
            default_interval_ms: app_cfg.rules.evaluation_interval.as_millis() as i64,
            groups: Mutex::new(states),
            generation: Mutex::new(CancellationToken::new()),
            saved: Mutex::new(saved.groups),
            state_path,
            stats,
        })
    }

    pub fn groups(&self) -> Vec<Arc<Mutex<GroupState>>> {
        self.groups.lock().clone()
    }

    pub fn default_interval_ms(&self) -> i64 {
        self.default_interval_ms
    }

    /// Starts one evaluation task per group.
    pub fn start(self: &Arc<Self>, app: &Arc<App>, out: AlertsOut, cancel: &CancellationToken) {
        let generation = cancel.child_token();
        *self.generation.lock() = generation.clone();
        for g in self.groups() {
            tokio::spawn(group_loop(
                self.clone(),
                app.clone(),
                g,
                out.clone(),
                generation.clone(),
            ));
        }
    }

    /// Re-reads the rule files. On error the running rules stay.
    pub fn reload(
        self: &Arc<Self>,
        app: &Arc<App>,
        out: AlertsOut,
        cancel: &CancellationToken,
    ) -> Result<usize, RuleErrors> {
        let loaded = load_groups(&self.patterns);
        let groups = match loaded {
            Ok(g) => g,
            Err(e) => {
                self.stats.last_reload_ok.store(false, Ordering::Relaxed);
                self.stats.reloads_failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!("rule reload failed; the previous rules keep running:\n{e}");
                return Err(e);
            }
        };
        let old = self.groups();
        let mut states = Vec::with_capacity(groups.len());
        for g in groups {
            let mut st = GroupState::new(g);
            if let Some(prev) = old.iter().find(|o| {
                let o = o.lock();
                o.group.file == st.group.file && o.group.name == st.group.name
            }) {
                st.inherit(&prev.lock());
            }
            states.push(Arc::new(Mutex::new(st)));
        }
        let n = states.len();
        self.generation.lock().cancel();
        *self.groups.lock() = states;
        self.stats.last_reload_ok.store(true, Ordering::Relaxed);
        self.start(app, out, cancel);
        tracing::info!("rules reloaded: {n} groups");
        Ok(n)
    }

    fn persist(&self, key: String, snapshot: Vec<SavedRule>) {
        let state = {
            let mut saved = self.saved.lock();
            if snapshot.is_empty() {
                saved.remove(&key);
            } else {
                saved.insert(key, snapshot);
            }
            StateFile {
                groups: saved.clone(),
            }
        };
        if let Err(e) = crate::statefile::write_atomically(&self.state_path, &state) {
            self.stats
                .state_write_failures
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                "cannot save alert state to {}: {e}",
                self.state_path.display()
            );
        }
    }
}

fn load_groups(patterns: &[String]) -> Result<Vec<lookout_rules::RuleGroup>, RuleErrors> {
    let files = expand_globs(Path::new("/"), patterns);
    let (groups, lints) = lookout_rules::load_files(&files)?;
    for l in lints {
        tracing::warn!("{}: group {:?}: {}", l.file.display(), l.group, l.message);
    }
    Ok(groups)
}

fn read_state(path: &Path) -> StateFile {
    match std::fs::read(path) {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(
                    "alert state in {} is unreadable ({e}); alerts start afresh",
                    path.display()
                );
                StateFile::default()
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => StateFile::default(),
        Err(e) => {
            tracing::warn!("cannot read alert state {}: {e}", path.display());
            StateFile::default()
        }
    }
}

/// A group's start offset within its interval: a hash of its key (the
/// fingerprint alerts use), so the same group keeps its place across
/// restarts and reloads.
fn stagger_ms(key: &str, interval_ms: u64) -> u64 {
    let labels = lookout_notify::LabelSet::from([("group".to_string(), key.to_string())]);
    lookout_notify::alert::fingerprint(&labels) % interval_ms
}

async fn group_loop(
    manager: Arc<RuleManager>,
    app: Arc<App>,
    group: Arc<Mutex<GroupState>>,
    out: AlertsOut,
    cancel: CancellationToken,
) {
    let (interval_ms, key) = {
        let g = group.lock();
        (
            g.group.interval_ms.unwrap_or(manager.default_interval_ms),
            group_key(&g.group.file, &g.group.name),
        )
    };
    let interval = Duration::from_millis(interval_ms.max(1) as u64);
    // Each group starts at its own offset within the interval (fixed by its
    // name, as Prometheus does), so groups do not all evaluate on the same
    // tick and compete for the cores; each still runs once an interval.
    let offset = Duration::from_millis(stagger_ms(&key, interval_ms.max(1) as u64));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + offset, interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let app2 = app.clone();
        let g2 = group.clone();
        let m2 = manager.clone();
        let key2 = key.clone();
        let done = tokio::task::spawn_blocking(move || {
            let now = app2.now_ms();
            let engine = Engine::new(app2.cfg.api.query_limits());
            let sink = AppSink(&app2);
            let external_url = app2.cfg.external_url();
            let ctx = EvalContext {
                engine: &engine,
                source: app2.db.as_ref(),
                sink: &sink,
                external_labels: &app2.cfg.rules.external_labels,
                external_url: &external_url,
                resend_delay_ms: app2.cfg.rules.resend_delay.as_millis() as i64,
                interval_ms,
            };
            let mut g = g2.lock();
            let outcome = g.eval(&ctx, now);
            m2.stats.evaluations.fetch_add(1, Ordering::Relaxed);
            if !outcome.errors.is_empty() {
                m2.stats.evaluation_failures.fetch_add(1, Ordering::Relaxed);
                for (rule, e) in &outcome.errors {
                    app2.log.warn("rule_eval", || {
                        format!(
                            "group {:?} rule {rule:?}: evaluation failed: {e}",
                            g.group.name
                        )
                    });
                }
            }
            if outcome.state_changed {
                let snap = g.snapshot();
                drop(g);
                m2.persist(key2, snap);
            }
            outcome.alerts_to_send
        })
        .await;
        match done {
            Ok(alerts) if !alerts.is_empty() => out(alerts),
            Ok(_) => {}
            Err(e) => tracing::error!("rule evaluation task failed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn groups_are_spread_over_their_interval() {
        let offsets: Vec<u64> = (0..40)
            .map(|i| super::stagger_ms(&format!("rules.yaml;group-{i}"), 15_000))
            .collect();
        assert!(offsets.iter().all(|&o| o < 15_000));
        assert_eq!(
            super::stagger_ms("a;b", 15_000),
            super::stagger_ms("a;b", 15_000)
        );
        let distinct: std::collections::HashSet<u64> = offsets.iter().map(|o| o / 1000).collect();
        assert!(distinct.len() >= 8, "offsets spread: {offsets:?}");
    }
}
