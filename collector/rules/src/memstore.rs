//! A small in-memory series store for rule unit tests, as promtool keeps
//! its test data in memory: no disk, no durability, samples in any order.

use std::collections::BTreeMap;
use std::sync::RwLock;

use lookout_promql::error::Result as QResult;
use lookout_promql::storage::{RawSeries, Source};
use lookout_protocol::remote_write::TimeSeries;
use lookout_protocol::{Label, Labels};
use lookout_tsdb::Matcher;

use crate::eval::Sink;

type Key = Vec<(String, String)>;

#[derive(Default)]
pub struct MemStore {
    series: RwLock<BTreeMap<Key, BTreeMap<i64, f64>>>,
}

impl MemStore {
    pub fn new() -> MemStore {
        MemStore::default()
    }

    /// Adds one sample; the first value written at a timestamp stays, as
    /// in the real store.
    pub fn add(&self, labels: &Labels, t: i64, v: f64) {
        let mut key: Key = labels
            .iter()
            .filter(|l| !l.value.is_empty())
            .map(|l| (l.name.to_string(), l.value.to_string()))
            .collect();
        key.sort();
        if let Ok(mut s) = self.series.write() {
            s.entry(key).or_default().entry(t).or_insert(v);
        }
    }
}

impl Source for MemStore {
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> QResult<Vec<RawSeries>> {
        let Ok(all) = self.series.read() else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for (key, samples) in all.iter() {
            let get = |name: &str| {
                key.iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.as_str())
                    .unwrap_or("")
            };
            if !matchers.iter().all(|m| m.matches(get(&m.name))) {
                continue;
            }
            let picked: Vec<(i64, f64)> =
                samples.range(mint..=maxt).map(|(t, v)| (*t, *v)).collect();
            if picked.is_empty() {
                continue;
            }
            let labels = Labels::from(
                key.iter()
                    .map(|(n, v)| Label::new(n.as_str(), v.as_str()))
                    .collect::<Vec<_>>(),
            );
            out.push(RawSeries {
                labels,
                samples: picked,
            });
        }
        Ok(out)
    }
}

impl Sink for MemStore {
    fn append(&self, series: Vec<TimeSeries>) -> Result<(), String> {
        for ts in series {
            let labels = Labels::from(
                ts.labels
                    .iter()
                    .map(|l| Label::new(l.name.as_str(), l.value.as_str()))
                    .collect::<Vec<_>>(),
            );
            for s in ts.samples {
                self.add(&labels, s.timestamp, s.value);
            }
        }
        Ok(())
    }
}
