//! Building remote-write series for the collector's own sources (cluster
//! state, probes) and marking vanished ones stale, as a scrape would.

use std::collections::HashSet;

use lookout_protocol::remote_write::{Label, Sample, TimeSeries, stale_nan};

/// Series sampled at one instant, all with one `job`.
pub struct SeriesOut {
    pub series: Vec<TimeSeries>,
    timestamp_ms: i64,
    job: &'static str,
}

impl SeriesOut {
    pub fn new(timestamp_ms: i64, job: &'static str) -> SeriesOut {
        SeriesOut {
            series: Vec::new(),
            timestamp_ms,
            job,
        }
    }

    /// Adds a series; labels with empty values are left out, as everywhere
    /// in Prometheus.
    pub fn push(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.push_pairs(name, labels.iter().copied(), value);
    }

    pub fn push_owned(&mut self, name: &str, labels: Vec<(&'static str, String)>, value: f64) {
        self.push_pairs(name, labels.iter().map(|(k, v)| (*k, v.as_str())), value);
    }

    fn push_pairs<'a>(
        &mut self,
        name: &str,
        labels: impl ExactSizeIterator<Item = (&'a str, &'a str)>,
        value: f64,
    ) {
        let mut out = Vec::with_capacity(labels.len() + 2);
        out.push(Label {
            name: "__name__".into(),
            value: name.into(),
        });
        out.push(Label {
            name: "job".into(),
            value: self.job.into(),
        });
        for (k, v) in labels {
            if !v.is_empty() && k != "job" {
                out.push(Label {
                    name: k.into(),
                    value: v.into(),
                });
            }
        }
        self.finish(out, value);
    }

    fn finish(&mut self, mut labels: Vec<Label>, value: f64) {
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        labels.dedup_by(|a, b| a.name == b.name);
        self.series.push(TimeSeries {
            labels,
            samples: vec![Sample {
                value,
                timestamp: self.timestamp_ms,
            }],
            exemplars: Vec::new(),
            histograms: Vec::new(),
        });
    }

    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Takes what was built so far, e.g. to append it in batches.
    pub fn take(&mut self) -> Vec<TimeSeries> {
        std::mem::take(&mut self.series)
    }

    /// The series as exposition lines, for tests and debugging.
    pub fn debug_lines(&self) -> String {
        let mut s = String::new();
        for ts in &self.series {
            let name = ts
                .labels
                .iter()
                .find(|l| l.name == "__name__")
                .map(|l| l.value.as_str())
                .unwrap_or("");
            let inner: Vec<String> = ts
                .labels
                .iter()
                .filter(|l| l.name != "__name__")
                .map(|l| format!("{}={:?}", l.name, l.value))
                .collect();
            let v = ts.samples.first().map(|s| s.value).unwrap_or(f64::NAN);
            s.push_str(&format!("{name}{{{}}} {v}\n", inner.join(",")));
        }
        s
    }
}

/// Series that were in `before` and are not in `after`, as stale markers
/// at `timestamp_ms`: what a scrape writes when a series disappears.
pub fn vanished(before: &[TimeSeries], after: &[TimeSeries], timestamp_ms: i64) -> Vec<TimeSeries> {
    if before.is_empty() {
        return Vec::new();
    }
    let now: HashSet<&[Label]> = after.iter().map(|s| s.labels.as_slice()).collect();
    before
        .iter()
        .filter(|s| !now.contains(s.labels.as_slice()))
        .map(|s| stale(s.labels.clone(), timestamp_ms))
        .collect()
}

pub fn stale(labels: Vec<Label>, timestamp_ms: i64) -> TimeSeries {
    TimeSeries {
        labels,
        samples: vec![Sample {
            value: stale_nan(),
            timestamp: timestamp_ms,
        }],
        exemplars: Vec::new(),
        histograms: Vec::new(),
    }
}

/// Remembers the label sets written last time, so a source that writes its
/// whole set each round (the probes) can mark the missing ones stale.
#[derive(Default)]
pub struct LastWritten {
    labels: Vec<Vec<Label>>,
}

impl LastWritten {
    /// Adds stale markers for series written last round and not in `out`,
    /// and remembers `out`'s series for next round.
    pub fn close_round(&mut self, out: &mut Vec<TimeSeries>, timestamp_ms: i64) {
        let now: HashSet<&[Label]> = out.iter().map(|s| s.labels.as_slice()).collect();
        let gone: Vec<TimeSeries> = self
            .labels
            .iter()
            .filter(|l| !now.contains(l.as_slice()))
            .map(|l| stale(l.clone(), timestamp_ms))
            .collect();
        self.labels = out.iter().map(|s| s.labels.clone()).collect();
        out.extend(gone);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lookout_protocol::remote_write::is_stale_nan;

    #[test]
    fn a_series_missing_from_a_round_is_marked_stale_once() {
        let mut last = LastWritten::default();
        let mut a = SeriesOut::new(1000, "apiserver");
        a.push("up", &[("instance", "a")], 1.0);
        a.push("up", &[("instance", "b")], 1.0);
        let mut round = a.take();
        last.close_round(&mut round, 1000);
        assert_eq!(round.len(), 2);

        let mut b = SeriesOut::new(2000, "apiserver");
        b.push("up", &[("instance", "a")], 1.0);
        let mut round = b.take();
        last.close_round(&mut round, 2000);
        assert_eq!(round.len(), 2);
        let stale: Vec<_> = round
            .iter()
            .filter(|s| is_stale_nan(s.samples[0].value))
            .collect();
        assert_eq!(stale.len(), 1);
        assert!(stale[0].labels.iter().any(|l| l.value == "b"));

        let mut c = SeriesOut::new(3000, "apiserver");
        c.push("up", &[("instance", "a")], 1.0);
        let mut round = c.take();
        last.close_round(&mut round, 3000);
        assert_eq!(round.len(), 1, "the stale marker is written once");
    }

    #[test]
    fn labels_are_sorted_and_empty_values_left_out() {
        let mut o = SeriesOut::new(5, "kube-state-metrics");
        o.push(
            "kube_pod_info",
            &[("pod", "p"), ("node", ""), ("namespace", "n")],
            1.0,
        );
        let names: Vec<&str> = o.series[0].labels.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["__name__", "job", "namespace", "pod"]);
        let gone = vanished(&o.series, &[], 9);
        assert_eq!(gone.len(), 1);
        assert!(is_stale_nan(gone[0].samples[0].value));
        assert_eq!(gone[0].samples[0].timestamp, 9);
    }
}
