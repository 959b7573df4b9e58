//! The alert model shared by the pipeline and the receivers.

use std::collections::BTreeMap;

/// Labels or annotations, sorted by name.
pub type LabelSet = BTreeMap<String, String>;

/// One alert as the pipeline sees it; the same fields as an Alertmanager
/// alert. Times are milliseconds since the epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    pub labels: LabelSet,
    pub annotations: LabelSet,
    pub starts_at_ms: i64,
    /// When the alert resolved, or, for a firing alert, when it should be
    /// treated as resolved unless refreshed; `None` while firing with no end.
    pub ends_at_ms: Option<i64>,
    pub generator_url: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertStatus {
    Firing,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

impl Alert {
    /// Identity of the alert: a hash of its label set, the same for the
    /// same labels whatever their order.
    pub fn fingerprint(&self) -> u64 {
        fingerprint(&self.labels)
    }

    /// Alertmanager's form of the fingerprint: 16 lower-case hex digits.
    pub fn fingerprint_hex(&self) -> String {
        format!("{:016x}", self.fingerprint())
    }

    pub fn status_at(&self, now_ms: i64) -> AlertStatus {
        match self.ends_at_ms {
            Some(end) if end <= now_ms => AlertStatus::Resolved,
            _ => AlertStatus::Firing,
        }
    }

    pub fn name(&self) -> &str {
        self.labels
            .get("alertname")
            .map(String::as_str)
            .unwrap_or("")
    }
}

/// Alertmanager's fingerprint of a label set (Prometheus's
/// `model.LabelSet.Fingerprint`): 64-bit FNV-1a of the names and values in
/// name order, each followed by a byte that cannot occur in UTF-8, so
/// `{a="bc"}` and `{ab="c"}` differ. The same alert has the same
/// fingerprint in Lookout's notifications as in Alertmanager's.
pub fn fingerprint(labels: &LabelSet) -> u64 {
    const OFFSET: u64 = 14_695_981_039_346_656_037;
    const PRIME: u64 = 1_099_511_628_211;
    let mut hash = OFFSET;
    let mut add = |bytes: &[u8]| {
        for &b in bytes {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(PRIME);
        }
    };
    for (name, value) in labels {
        add(name.as_bytes());
        add(&[0xff]);
        add(value.as_bytes());
        add(&[0xff]);
    }
    hash
}

/// One message for one receiver: the alerts of one group at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    pub receiver: String,
    /// Stable identity of the group: the route's path and the group labels.
    pub group_key: String,
    pub group_labels: LabelSet,
    /// Firing alerts first, then resolved ones, each sorted by labels.
    pub alerts: Vec<Alert>,
    /// When the notification is built; alerts' status is judged at this time.
    pub now_ms: i64,
    /// Base URL of the collector, for links back.
    pub external_url: String,
    /// Why this notification goes out (new alerts, resolved, repeat).
    pub reason: String,
}

impl Notification {
    pub fn status(&self) -> AlertStatus {
        if self
            .alerts
            .iter()
            .any(|a| a.status_at(self.now_ms) == AlertStatus::Firing)
        {
            AlertStatus::Firing
        } else {
            AlertStatus::Resolved
        }
    }

    pub fn firing(&self) -> impl Iterator<Item = &Alert> {
        self.alerts
            .iter()
            .filter(|a| a.status_at(self.now_ms) == AlertStatus::Firing)
    }

    pub fn resolved(&self) -> impl Iterator<Item = &Alert> {
        self.alerts
            .iter()
            .filter(|a| a.status_at(self.now_ms) == AlertStatus::Resolved)
    }

    /// Labels every alert shares, with the same value.
    pub fn common_labels(&self) -> LabelSet {
        common(self.alerts.iter().map(|a| &a.labels))
    }

    pub fn common_annotations(&self) -> LabelSet {
        common(self.alerts.iter().map(|a| &a.annotations))
    }
}

fn common<'a>(mut sets: impl Iterator<Item = &'a LabelSet>) -> LabelSet {
    let Some(first) = sets.next() else {
        return LabelSet::new();
    };
    let mut out = first.clone();
    for set in sets {
        out.retain(|k, v| set.get(k) == Some(v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_alertmanagers() {
        // As Alertmanager 0.25 reported this alert in its webhook.
        let labels: LabelSet = [
            ("alertname", "HighTemperature"),
            ("instance", "n1"),
            ("job", "sensors"),
            ("severity", "warning"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(format!("{:016x}", fingerprint(&labels)), "972f8cc92f49ee23");
        // Prometheus's empty label set: the FNV offset basis.
        assert_eq!(fingerprint(&LabelSet::new()), 0xcbf2_9ce4_8422_2325);
        let ab = |a: &str, b: &str| -> LabelSet { [(a.to_string(), b.to_string())].into() };
        assert_ne!(fingerprint(&ab("a", "bc")), fingerprint(&ab("ab", "c")));
    }
}
