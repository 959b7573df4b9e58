//! Alertmanager's template data model, built from a [`Notification`] for
//! custom message templates:
//!
//! ```text
//! .Receiver .Status .ExternalURL
//! .GroupLabels .CommonLabels .CommonAnnotations      (maps)
//! .Alerts  .Alerts.Firing  .Alerts.Resolved            (lists)
//!   each: .Status .Labels .Annotations .StartsAt .EndsAt .GeneratorURL .Fingerprint
//! ```
//!
//! `.StartsAt` and `.EndsAt` are Unix milliseconds ([`Value::Int`]), the
//! form lookout-template's `date` and `tz` take (`{{ .StartsAt | date
//! "2006-01-02 15:04" }}`); a firing alert's `.EndsAt` is Go's zero time
//! (year 1), as Alertmanager hides an end that has not come yet.

use std::collections::BTreeMap;

use lookout_template::Value;

use crate::alert::{Alert, AlertStatus, LabelSet, Notification};

/// Go's zero `time.Time`, which Alertmanager sends for an unset end.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// The same instant in Unix milliseconds.
pub const ZERO_TIME_MS: i64 = -62_135_596_800_000;

/// The whole notification: what Alertmanager's templates see as `.`.
pub fn notification_data(n: &Notification) -> Value {
    let mut firing = Vec::new();
    let mut resolved = Vec::new();
    let mut all = Vec::with_capacity(n.alerts.len());
    for alert in &n.alerts {
        let v = alert_data(alert, n.now_ms);
        match alert.status_at(n.now_ms) {
            AlertStatus::Firing => firing.push(v.clone()),
            AlertStatus::Resolved => resolved.push(v.clone()),
        }
        all.push(v);
    }
    let mut named = BTreeMap::new();
    named.insert("Firing".to_string(), Value::List(firing, BTreeMap::new()));
    named.insert(
        "Resolved".to_string(),
        Value::List(resolved, BTreeMap::new()),
    );

    let mut m = BTreeMap::new();
    m.insert("Receiver".to_string(), Value::Str(n.receiver.clone()));
    m.insert(
        "Status".to_string(),
        Value::Str(n.status().as_str().to_string()),
    );
    m.insert("Alerts".to_string(), Value::List(all, named));
    m.insert("GroupLabels".to_string(), labels_value(&n.group_labels));
    m.insert("CommonLabels".to_string(), labels_value(&n.common_labels()));
    m.insert(
        "CommonAnnotations".to_string(),
        labels_value(&n.common_annotations()),
    );
    m.insert(
        "ExternalURL".to_string(),
        Value::Str(n.external_url.clone()),
    );
    Value::Map(m)
}

/// One alert as Alertmanager's templates see an element of `.Alerts`.
pub fn alert_data(a: &Alert, now_ms: i64) -> Value {
    let status = a.status_at(now_ms);
    let mut m = BTreeMap::new();
    m.insert(
        "Status".to_string(),
        Value::Str(status.as_str().to_string()),
    );
    m.insert("Labels".to_string(), labels_value(&a.labels));
    m.insert("Annotations".to_string(), labels_value(&a.annotations));
    m.insert("StartsAt".to_string(), Value::Int(a.starts_at_ms));
    let end = match a.ends_at_ms {
        Some(end) if status == AlertStatus::Resolved => end,
        _ => ZERO_TIME_MS,
    };
    m.insert("EndsAt".to_string(), Value::Int(end));
    m.insert(
        "GeneratorURL".to_string(),
        Value::Str(a.generator_url.clone()),
    );
    m.insert("Fingerprint".to_string(), Value::Str(a.fingerprint_hex()));
    Value::Map(m)
}

/// The data of one alert for a per-alert template (Zabbix's value): the
/// alert's fields plus the notification's `.Receiver`, `.ExternalURL`,
/// `.GroupLabels`, `.CommonLabels` and `.CommonAnnotations`.
pub fn single_alert_data(n: &Notification, a: &Alert) -> Value {
    let Value::Map(mut m) = alert_data(a, n.now_ms) else {
        return Value::Nil;
    };
    m.insert("Receiver".to_string(), Value::Str(n.receiver.clone()));
    m.insert(
        "ExternalURL".to_string(),
        Value::Str(n.external_url.clone()),
    );
    m.insert("GroupLabels".to_string(), labels_value(&n.group_labels));
    m.insert("CommonLabels".to_string(), labels_value(&n.common_labels()));
    m.insert(
        "CommonAnnotations".to_string(),
        labels_value(&n.common_annotations()),
    );
    Value::Map(m)
}

pub fn labels_value(labels: &LabelSet) -> Value {
    Value::Map(
        labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::Str(v.clone())))
            .collect(),
    )
}

/// The alert's end as Alertmanager shows it: only once it has passed.
pub fn ends_at(a: &Alert, now_ms: i64) -> String {
    match a.ends_at_ms {
        Some(end) if a.status_at(now_ms) == AlertStatus::Resolved => format_time(end),
        _ => ZERO_TIME.to_string(),
    }
}

/// Milliseconds since the epoch in Go's `time.Time` JSON form for UTC:
/// RFC 3339 with `Z` and the fraction's trailing zeros trimmed (Go's
/// RFC3339Nano layout), so `…:05Z`, `…:05.1Z`, `…:05.123Z`.
pub fn format_time(ms: i64) -> String {
    let Some(t) = chrono::DateTime::from_timestamp_millis(ms) else {
        return ZERO_TIME.to_string();
    };
    let base = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let millis = ms.rem_euclid(1000);
    if millis == 0 {
        return format!("{base}Z");
    }
    let frac = format!("{millis:03}");
    format!("{base}.{}Z", frac.trim_end_matches('0'))
}

/// A time for people: `2024-01-02 03:04:05 UTC`.
pub fn format_human_time(ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        None => "?".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_time_format() {
        assert_eq!(format_time(1_700_000_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(format_time(1_700_000_000_100), "2023-11-14T22:13:20.1Z");
        assert_eq!(format_time(1_700_000_000_120), "2023-11-14T22:13:20.12Z");
        assert_eq!(format_time(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(ZERO_TIME_MS), ZERO_TIME);
        assert_eq!(format_time(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(
            format_human_time(1_700_000_000_123),
            "2023-11-14 22:13:20 UTC"
        );
    }

    #[test]
    fn data_model_shape() {
        let mut labels = LabelSet::new();
        labels.insert("alertname".into(), "A".into());
        let firing = Alert {
            labels: labels.clone(),
            annotations: LabelSet::new(),
            starts_at_ms: 1000,
            ends_at_ms: Some(10_000),
            generator_url: "http://g".into(),
        };
        let mut gone = firing.clone();
        gone.labels.insert("x".into(), "y".into());
        gone.ends_at_ms = Some(2000);
        let n = Notification {
            receiver: "r".into(),
            group_key: "{}:{}".into(),
            group_labels: LabelSet::new(),
            alerts: vec![firing, gone],
            now_ms: 5000,
            external_url: "http://lookout".into(),
            reason: String::new(),
        };
        let Value::Map(m) = notification_data(&n) else {
            panic!("map")
        };
        assert_eq!(m.get("Status"), Some(&Value::Str("firing".into())));
        let Some(Value::List(all, named)) = m.get("Alerts") else {
            panic!("list")
        };
        assert_eq!(all.len(), 2);
        let Some(Value::List(f, _)) = named.get("Firing") else {
            panic!("firing")
        };
        assert_eq!(f.len(), 1);
        let Value::Map(first) = &all[0] else {
            panic!("alert")
        };
        assert_eq!(first.get("EndsAt"), Some(&Value::Int(ZERO_TIME_MS)));
        assert_eq!(first.get("StartsAt"), Some(&Value::Int(1000)));
        let Value::Map(second) = &all[1] else {
            panic!("alert")
        };
        assert_eq!(second.get("EndsAt"), Some(&Value::Int(2000)));
        assert_eq!(second.get("Status"), Some(&Value::Str("resolved".into())));
        assert_eq!(m.get("CommonLabels"), Some(&labels_value(&labels)));
    }
}
