//! Synthesized liveness of pushing agents. A scraped target gets `up` from
//! its scraper; a pushing agent has no scraper, so the collector writes
//! `up{job, instance}` for it: 1 while pushes arrive, 0 once the agent has
//! been silent longer than `ingest.agent_silence`. Rules such as
//! `up{job="node-exporter"} == 0` then fire for a dead node exactly as they
//! would under Prometheus. The series go through the normal append path.

use std::collections::{BTreeMap, BTreeSet};

use lookout_protocol::remote_write::{Label, Sample, TimeSeries};
use lookout_tsdb::{Matcher, Querier};
use parking_lot::Mutex;

pub const AGENT_JOB: &str = "lookout-agent";
pub const LAST_PUSH_METRIC: &str = "lookout_agent_last_push_timestamp_seconds";

#[derive(Debug, Default, Clone)]
struct Seen {
    last_push_ms: i64,
    jobs: BTreeSet<String>,
}

pub struct Liveness {
    agents: Mutex<BTreeMap<String, Seen>>,
    silence_ms: i64,
}

impl Liveness {
    pub fn new(silence_ms: i64) -> Liveness {
        Liveness {
            agents: Mutex::new(BTreeMap::new()),
            silence_ms,
        }
    }

    /// Records a push from `instance` carrying series of `jobs`.
    pub fn seen<'a>(&self, instance: &str, jobs: impl Iterator<Item = &'a str>, now_ms: i64) {
        let mut agents = self.agents.lock();
        let entry = agents.entry(instance.to_string()).or_default();
        entry.last_push_ms = entry.last_push_ms.max(now_ms);
        for j in jobs {
            if !entry.jobs.contains(j) {
                entry.jobs.insert(j.to_string());
            }
        }
    }

    pub fn agent_count(&self) -> usize {
        self.agents.lock().len()
    }

    /// The series to write at `now_ms`.
    pub fn series(&self, now_ms: i64) -> Vec<TimeSeries> {
        let agents = self.agents.lock();
        let mut out = Vec::with_capacity(agents.len() * 4);
        for (instance, seen) in agents.iter() {
            let up = if now_ms - seen.last_push_ms <= self.silence_ms {
                1.0
            } else {
                0.0
            };
            let mut jobs: BTreeSet<&str> = seen.jobs.iter().map(String::as_str).collect();
            jobs.insert(AGENT_JOB);
            for job in jobs {
                out.push(series("up", job, instance, up, now_ms));
            }
            out.push(series(
                LAST_PUSH_METRIC,
                AGENT_JOB,
                instance,
                seen.last_push_ms as f64 / 1000.0,
                now_ms,
            ));
        }
        out
    }

    /// Restores known agents from what the store holds, so that an agent
    /// that died while the collector was down still turns `up` 0.
    pub fn restore(&self, store: &dyn Querier, now_ms: i64, lookback_ms: i64) {
        let from = now_ms - lookback_ms;
        let Ok(pushes) = store.select(
            &[Matcher::equal("__name__", LAST_PUSH_METRIC)],
            from,
            now_ms,
        ) else {
            return;
        };
        let ups = store
            .select(&[Matcher::equal("__name__", "up")], from, now_ms)
            .unwrap_or_default();
        let mut agents = self.agents.lock();
        for s in pushes {
            let (Some(instance), Some(&(_, last))) = (s.labels.get("instance"), s.samples.last())
            else {
                continue;
            };
            let entry = agents.entry(instance.to_string()).or_default();
            entry.last_push_ms = entry.last_push_ms.max((last * 1000.0) as i64);
            for u in &ups {
                if u.labels.get("instance") == Some(instance)
                    && let Some(job) = u.labels.get("job").filter(|j| *j != AGENT_JOB)
                {
                    entry.jobs.insert(job.to_string());
                }
            }
        }
    }
}

fn series(name: &str, job: &str, instance: &str, value: f64, t: i64) -> TimeSeries {
    let label = |n: &str, v: &str| Label {
        name: n.to_string(),
        value: v.to_string(),
    };
    TimeSeries {
        labels: vec![
            label("__name__", name),
            label("instance", instance),
            label("job", job),
        ],
        samples: vec![Sample {
            value,
            timestamp: t,
        }],
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up_of(series: &[TimeSeries], job: &str) -> Option<f64> {
        series
            .iter()
            .find(|s| {
                s.labels
                    .iter()
                    .any(|l| l.name == "__name__" && l.value == "up")
                    && s.labels.iter().any(|l| l.name == "job" && l.value == job)
            })
            .map(|s| s.samples[0].value)
    }

    #[test]
    fn up_follows_pushes_and_silence() {
        let l = Liveness::new(60_000);
        l.seen(
            "node-1",
            ["node-exporter", "cadvisor"].into_iter(),
            1_000_000,
        );
        let s = l.series(1_030_000);
        assert_eq!(up_of(&s, "lookout-agent"), Some(1.0));
        assert_eq!(up_of(&s, "node-exporter"), Some(1.0));
        assert_eq!(up_of(&s, "cadvisor"), Some(1.0));
        let s = l.series(1_060_001);
        assert_eq!(up_of(&s, "node-exporter"), Some(0.0));
        assert_eq!(up_of(&s, "lookout-agent"), Some(0.0));
        l.seen("node-1", std::iter::empty(), 1_070_000);
        assert_eq!(up_of(&l.series(1_070_000), "cadvisor"), Some(1.0));
    }
}
