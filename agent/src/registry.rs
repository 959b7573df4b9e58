//! The agent's registry: the latest families from each sampler, counters fed
//! by event streams, and the agent's own health series, rendered together on
//! every scrape.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use lookout_protocol::exposition::{self, Format};
use lookout_protocol::{Family, Labels, MetricKind};

use crate::clock::{SharedClock, unix_seconds};

/// Counters and gauges about one sampler's runs.
#[derive(Clone, Debug, Default)]
pub struct SamplerStats {
    pub runs: u64,
    pub errors: u64,
    pub timeouts: u64,
    pub skipped: u64,
    pub cpu_seconds: f64,
    pub last_duration: Duration,
    pub last_success_unix: f64,
    pub success: bool,
    pub series: usize,
}

#[derive(Default)]
struct LiveCounter {
    help: &'static str,
    /// Value and when it last changed.
    values: HashMap<Labels, (f64, Instant)>,
}

/// A sampler's families and their sampling time in ms.
type Snapshot = (Arc<Vec<Family>>, i64);

pub struct Registry {
    /// Each sampler's latest families and when they were sampled (ms).
    snapshots: RwLock<BTreeMap<&'static str, Snapshot>>,
    live: Mutex<BTreeMap<&'static str, LiveCounter>>,
    stats: Mutex<BTreeMap<&'static str, SamplerStats>>,
    clock: SharedClock,
    started_unix: f64,
    /// Signalled when something happened that should reach the collector
    /// now rather than at the next push interval (a container died).
    urgent: tokio::sync::Notify,
}

impl Registry {
    pub fn new(clock: SharedClock) -> Registry {
        let started_unix = process_start_unix().unwrap_or_else(|| unix_seconds(clock.now()));
        Registry {
            snapshots: RwLock::default(),
            live: Mutex::default(),
            stats: Mutex::default(),
            clock,
            started_unix,
            urgent: tokio::sync::Notify::new(),
        }
    }

    /// Asks the shipper to push a batch now.
    pub fn push_soon(&self) {
        self.urgent.notify_one();
    }

    /// Resolves when [`Registry::push_soon`] was called (once per call or
    /// burst of calls).
    pub async fn push_requested(&self) {
        self.urgent.notified().await
    }

    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Replaces a sampler's families with its latest run, sampled now.
    pub fn publish(&self, sampler: &'static str, families: Vec<Family>) {
        let at = crate::clock::unix_millis(self.clock.now());
        self.publish_at(sampler, families, at);
    }

    /// Replaces a sampler's families with its latest run, sampled at `at_ms`.
    pub fn publish_at(&self, sampler: &'static str, families: Vec<Family>, at_ms: i64) {
        let mut map = self.snapshots.write().unwrap_or_else(|e| e.into_inner());
        map.insert(sampler, (Arc::new(families), at_ms));
    }

    /// Every sampler's latest families with the time they were sampled.
    pub fn snapshots(&self) -> Vec<(&'static str, Arc<Vec<Family>>, i64)> {
        self.snapshots
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, (f, at))| (*k, f.clone(), *at))
            .collect()
    }

    /// Drops a sampler's families: a sampler that failed or timed out
    /// shows no values rather than stale ones.
    pub fn withdraw(&self, sampler: &'static str) {
        let mut map = self.snapshots.write().unwrap_or_else(|e| e.into_inner());
        map.remove(sampler);
    }

    /// Forgets samplers that are no longer configured (after a reload).
    pub fn retain_samplers(&self, keep: &[&'static str]) {
        self.snapshots
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| keep.contains(k));
        self.stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| keep.contains(k));
    }

    /// The families a sampler published last, if any.
    pub fn snapshot(&self, sampler: &'static str) -> Option<Arc<Vec<Family>>> {
        self.snapshots
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(sampler)
            .map(|(f, _)| f.clone())
    }

    /// Adds to a counter that lives outside any sampler's cycle (events).
    pub fn count(&self, name: &'static str, help: &'static str, labels: Labels, delta: f64) {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let c = live.entry(name).or_default();
        c.help = help;
        let entry = c.values.entry(labels).or_insert((0.0, Instant::now()));
        entry.0 += delta;
        entry.1 = Instant::now();
    }

    /// Removes live-counter series that have not changed for `max_idle`
    /// and for which `keep` returns false (series of containers long gone).
    pub fn prune_counters(
        &self,
        name: &'static str,
        max_idle: Duration,
        keep: impl Fn(&Labels) -> bool,
    ) {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = live.get_mut(name) {
            c.values
                .retain(|l, (_, changed)| changed.elapsed() < max_idle || keep(l));
        }
    }

    pub fn update_stats(&self, sampler: &'static str, f: impl FnOnce(&mut SamplerStats)) {
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        f(stats.entry(sampler).or_default());
    }

    pub fn stats(&self, sampler: &'static str) -> Option<SamplerStats> {
        self.stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(sampler)
            .cloned()
    }

    /// Everything the registry holds: the samplers' snapshots (shared, not
    /// copied) and the families built at scrape time (live counters and
    /// self-metrics).
    fn collect(&self) -> (Vec<Arc<Vec<Family>>>, Vec<Family>) {
        let snapshots: Vec<Arc<Vec<Family>>> = self
            .snapshots
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|(f, _)| f.clone())
            .collect();
        (snapshots, self.built_families())
    }

    /// The families made at scrape time: live counters and self-metrics.
    pub fn built_families(&self) -> Vec<Family> {
        let mut built: Vec<Family> = Vec::new();
        {
            let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
            for (name, c) in live.iter() {
                let mut f = Family::counter(*name, c.help);
                for (labels, (v, _)) in &c.values {
                    f.push(labels.clone(), *v);
                }
                built.push(f);
            }
        }
        built.extend(self.self_families());
        built
    }

    /// Everything the registry holds, as owned families.
    pub fn gather(&self) -> Vec<Family> {
        let (snapshots, built) = self.collect();
        snapshots
            .iter()
            .flat_map(|s| s.iter().cloned())
            .chain(built)
            .collect()
    }

    /// Renders a scrape.
    pub fn render(&self, format: Format) -> String {
        let (snapshots, built) = self.collect();
        let series: usize = snapshots
            .iter()
            .flat_map(|s| s.iter())
            .map(|f| f.samples.len())
            .sum();
        let mut out = String::with_capacity(16 * 1024 + series * 128);
        exposition::encode(
            snapshots.iter().flat_map(|s| s.iter()).chain(built.iter()),
            format,
            &mut out,
        );
        out
    }

    fn self_families(&self) -> Vec<Family> {
        let stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        type Get = fn(&SamplerStats) -> f64;
        let per_sampler: [(&str, &str, MetricKind, Get); 9] = [
            (
                "lookout_agent_sampler_runs_total",
                "Sampler runs started.",
                MetricKind::Counter,
                |s| s.runs as f64,
            ),
            (
                "lookout_agent_sampler_errors_total",
                "Sampler runs that failed or reported a problem.",
                MetricKind::Counter,
                |s| s.errors as f64,
            ),
            (
                "lookout_agent_sampler_timeouts_total",
                "Sampler runs cut off by their timeout.",
                MetricKind::Counter,
                |s| s.timeouts as f64,
            ),
            (
                "lookout_agent_sampler_skipped_total",
                "Sampler runs skipped because the previous run had not returned.",
                MetricKind::Counter,
                |s| s.skipped as f64,
            ),
            (
                "lookout_agent_sampler_cpu_seconds_total",
                "CPU time spent sampling.",
                MetricKind::Counter,
                |s| s.cpu_seconds,
            ),
            (
                "lookout_agent_sampler_duration_seconds",
                "Wall time of the sampler's last run.",
                MetricKind::Gauge,
                |s| s.last_duration.as_secs_f64(),
            ),
            (
                "lookout_agent_sampler_success",
                "1 if the sampler's last run succeeded.",
                MetricKind::Gauge,
                |s| if s.success { 1.0 } else { 0.0 },
            ),
            (
                "lookout_agent_sampler_last_success_timestamp_seconds",
                "When the sampler last succeeded.",
                MetricKind::Gauge,
                |s| s.last_success_unix,
            ),
            (
                "lookout_agent_sampler_series",
                "Series the sampler's last run produced.",
                MetricKind::Gauge,
                |s| s.series as f64,
            ),
        ];
        let mut out = Vec::with_capacity(per_sampler.len() + 8);
        for (name, help, kind, get) in per_sampler {
            let mut f = Family::new(name, help, kind);
            for (sampler, s) in stats.iter() {
                f.push(Labels::from_pairs([("sampler", *sampler)]), get(s));
            }
            out.push(f);
        }
        drop(stats);
        let mut build = Family::gauge(
            "lookout_agent_build_info",
            "The agent's version; the value is always 1.",
        );
        build.push(
            Labels::from_pairs([("version", env!("CARGO_PKG_VERSION"))]),
            1.0,
        );
        out.push(build);
        out.extend(process_families(self.started_unix));
        out
    }
}

/// The standard `process_*` series for the agent's own process.
pub fn process_families(started_unix: f64) -> Vec<Family> {
    let mut out = Vec::with_capacity(6);
    let ticks = crate::procfs::clock_ticks_per_second();
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat")
        && let Some(after) = stat.rsplit_once(')').map(|(_, a)| a)
    {
        let fields: Vec<&str> = after.split_ascii_whitespace().collect();
        // Fields after the command: state is index 0, utime 11, stime 12,
        // vsize 20, rss 21 (in pages).
        let num = |i: usize| fields.get(i).and_then(|s| s.parse::<f64>().ok());
        if let (Some(u), Some(s)) = (num(11), num(12)) {
            out.push(Family::single(
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds.",
                MetricKind::Counter,
                (u + s) / ticks,
            ));
        }
        if let Some(v) = num(20) {
            out.push(Family::single(
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                MetricKind::Gauge,
                v,
            ));
        }
        if let Some(r) = num(21) {
            // SAFETY: sysconf has no memory effects.
            let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as f64;
            out.push(Family::single(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                MetricKind::Gauge,
                r * page,
            ));
        }
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        out.push(Family::single(
            "process_open_fds",
            "Number of open file descriptors.",
            MetricKind::Gauge,
            dir.count() as f64,
        ));
    }
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a valid out-pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        out.push(Family::single(
            "process_max_fds",
            "Maximum number of open file descriptors.",
            MetricKind::Gauge,
            lim.rlim_cur as f64,
        ));
    }
    out.push(Family::single(
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        MetricKind::Gauge,
        started_unix,
    ));
    out
}

/// The process start time from `/proc/self/stat` and the boot time.
pub fn process_start_unix() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = stat.rsplit_once(')')?.1;
    let start_ticks: f64 = after.split_ascii_whitespace().nth(19)?.parse().ok()?;
    let proc_stat = std::fs::read_to_string("/proc/stat").ok()?;
    let btime: f64 = proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(btime + start_ticks / crate::procfs::clock_ticks_per_second())
}

/// An error with its sources, `outer: inner: innermost`, for logs that say
/// why (hyper's top-level errors alone say only "client error"). A source
/// whose text the message already holds (errors that print their source)
/// is not repeated.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg = format!("{msg}: {text}");
        }
        source = s.source();
    }
    msg
}

/// Logs a problem when it first appears or changes, and once more when it
/// clears, so a node without a kubelet does not fill the journal.
#[derive(Default)]
pub struct Problems {
    active: HashMap<String, String>,
}

impl Problems {
    pub fn report(&mut self, source: &str, key: &str, message: &str) {
        let k = format!("{source}/{key}");
        if self.active.get(&k).map(String::as_str) != Some(message) {
            tracing::warn!(sampler = source, "{message}");
            self.active.insert(k, message.to_string());
        }
    }

    pub fn clear(&mut self, source: &str, key: &str, recovered: &str) {
        let k = format!("{source}/{key}");
        if self.active.remove(&k).is_some() {
            tracing::info!(sampler = source, "{recovered}");
        }
    }

    pub fn is_active(&self, source: &str, key: &str) -> bool {
        self.active.contains_key(&format!("{source}/{key}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_merges_sources_and_keeps_counters() {
        let r = Registry::new(crate::clock::system());
        let mut g = Family::gauge("g", "a gauge");
        g.push(Labels::new(), 1.0);
        r.publish("one", vec![g]);
        r.count(
            "lookout_container_events_total",
            "events",
            Labels::from_pairs([("event", "die")]),
            1.0,
        );
        r.count(
            "lookout_container_events_total",
            "events",
            Labels::from_pairs([("event", "die")]),
            1.0,
        );
        r.update_stats("one", |s| {
            s.runs += 1;
            s.success = true;
        });
        let text = r.render(Format::PrometheusText);
        let parsed = lookout_protocol::exposition::parse_text(&text).unwrap();
        let find = |name: &str| parsed.iter().find(|s| s.name == name).map(|s| s.value);
        assert_eq!(find("g"), Some(1.0));
        assert_eq!(find("lookout_container_events_total"), Some(2.0));
        assert_eq!(find("lookout_agent_sampler_runs_total"), Some(1.0));
        assert!(find("process_resident_memory_bytes").unwrap() > 0.0);
        assert!(find("process_start_time_seconds").unwrap() > 1.6e9);
        r.withdraw("one");
        assert!(!r.render(Format::PrometheusText).contains("\ng 1"));
    }

    #[test]
    fn error_chain_names_each_cause_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("connection refused")]
        struct Refused;
        #[derive(Debug, thiserror::Error)]
        #[error("client error")]
        struct Quiet(#[source] Refused);
        #[derive(Debug, thiserror::Error)]
        #[error("list failed: {0}")]
        struct Loud(#[source] Quiet);
        assert_eq!(
            error_chain(&Quiet(Refused)),
            "client error: connection refused"
        );
        // A source the message already prints is not repeated.
        assert_eq!(
            error_chain(&Loud(Quiet(Refused))),
            "list failed: client error: connection refused"
        );
    }

    #[test]
    fn problems_log_once_until_cleared() {
        let mut p = Problems::default();
        p.report("kubelet", "down", "refused");
        assert!(p.is_active("kubelet", "down"));
        p.clear("kubelet", "down", "back");
        assert!(!p.is_active("kubelet", "down"));
    }
}
