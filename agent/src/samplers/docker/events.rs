//! Follows Docker's event stream and counts container deaths, OOM kills,
//! kills, restarts and health changes the moment they happen, as
//! `lookout_container_events_total{event,...}`. Reconnects (with backoff)
//! when the daemon restarts, resuming from the last event seen so nothing in
//! between is lost or counted twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bollard::query_parameters::EventsOptionsBuilder;
use futures_util::StreamExt;
use lookout_protocol::{Family, Labels, MetricKind};
use tokio_util::sync::CancellationToken;

use super::Dirty;
use super::client::Connection;
use crate::registry::Registry;

pub const NAME: &str = "docker_events";
pub const EVENTS_METRIC: &str = "lookout_container_events_total";
const EVENTS_HELP: &str = "Container events seen on Docker's event stream, counted as they happen.";

/// The actions that are counted; every container event still refreshes the
/// inventory.
const COUNTED: [&str; 5] = ["die", "oom", "kill", "restart", "health_status"];

/// Splits `health_status: unhealthy` into the action and its detail.
pub fn split_action(action: &str) -> (&str, Option<&str>) {
    match action.split_once(':') {
        Some((a, detail)) => (a.trim(), Some(detail.trim())),
        None => (action, None),
    }
}

/// The labels of an event's series, from the actor's attributes (Docker
/// puts the container's labels there, so Kubernetes identity is available).
pub fn event_labels(event: &str, detail: Option<&str>, attrs: &HashMap<String, String>) -> Labels {
    let a = |k: &str| attrs.get(k).map(String::as_str).unwrap_or("");
    let mut l = Labels::from_pairs([("event", event), ("name", a("name")), ("image", a("image"))]);
    for (label, key) in [
        ("namespace", "io.kubernetes.pod.namespace"),
        ("pod", "io.kubernetes.pod.name"),
        ("container", "io.kubernetes.container.name"),
    ] {
        if let Some(v) = attrs.get(key) {
            l.set(label, v.as_str());
        }
    }
    if event == "health_status" {
        l.set("health", detail.unwrap_or(""));
    }
    l
}

/// Where the stream left off: events at or before this are not counted again.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Position {
    time_nano: i64,
    /// Events sharing the last timestamp, by (id, action).
    at_same_time: Vec<(String, String)>,
}

impl Position {
    /// Whether the event is new; records it when it is.
    fn advance(&mut self, time_nano: i64, id: &str, action: &str) -> bool {
        if time_nano < self.time_nano {
            return false;
        }
        if time_nano == self.time_nano {
            if self
                .at_same_time
                .iter()
                .any(|(i, a)| i == id && a == action)
            {
                return false;
            }
        } else {
            self.time_nano = time_nano;
            self.at_same_time.clear();
        }
        self.at_same_time.push((id.to_string(), action.to_string()));
        true
    }

    fn since_arg(&self) -> Option<String> {
        (self.time_nano > 0).then(|| {
            let secs = self.time_nano / 1_000_000_000;
            let nanos = self.time_nano % 1_000_000_000;
            format!("{secs}.{nanos:09}")
        })
    }
}

/// Runs until cancelled.
pub async fn follow(
    socket: String,
    registry: Arc<Registry>,
    dirty: Dirty,
    cancel: CancellationToken,
) {
    let mut conn = Connection::new(&socket, Duration::from_secs(10));
    let mut position = Position::default();
    let mut backoff = Duration::from_millis(500);
    let mut reconnects = 0u64;
    let mut logged_down = false;
    loop {
        publish_state(&registry, false, reconnects);
        let client = tokio::select! {
            _ = cancel.cancelled() => return,
            c = conn.client() => c.cloned(),
        };
        let client = match client {
            Ok(c) => c,
            Err(e) => {
                if !logged_down {
                    tracing::warn!(
                        sampler = NAME,
                        "cannot follow Docker events: {e:#}; retrying"
                    );
                    logged_down = true;
                }
                conn.reset();
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        let filters: HashMap<&str, Vec<&str>> = HashMap::from([("type", vec!["container"])]);
        let mut options = EventsOptionsBuilder::new().filters(&filters);
        let since = position.since_arg();
        if let Some(s) = &since {
            options = options.since(s);
        }
        let mut stream = client.events(Some(options.build()));
        // From the first subscription on, a reconnect resumes from here even
        // if no event has arrived yet.
        if position.time_nano == 0 {
            position.time_nano = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as i64)
                .unwrap_or(0);
        }
        if logged_down || reconnects > 0 {
            tracing::info!(
                sampler = NAME,
                "following Docker events again (resuming from {})",
                since.as_deref().unwrap_or("now")
            );
        }
        logged_down = false;
        publish_state(&registry, true, reconnects);
        loop {
            let next = tokio::select! {
                _ = cancel.cancelled() => return,
                n = stream.next() => n,
            };
            let event = match next {
                Some(Ok(e)) => e,
                Some(Err(e)) => {
                    tracing::warn!(
                        sampler = NAME,
                        "Docker event stream broke: {e}; reconnecting"
                    );
                    break;
                }
                None => {
                    tracing::warn!(
                        sampler = NAME,
                        "Docker event stream ended (daemon restarting?); reconnecting"
                    );
                    break;
                }
            };
            backoff = Duration::from_millis(500);
            let Some(actor) = event.actor.as_ref() else {
                continue;
            };
            let id = actor.id.clone().unwrap_or_default();
            let raw_action = event.action.clone().unwrap_or_default();
            let time_nano = event
                .time_nano
                .unwrap_or_else(|| event.time.unwrap_or(0) * 1_000_000_000);
            if !position.advance(time_nano, &id, &raw_action) {
                continue;
            }
            dirty.mark(&id);
            let (action, detail) = split_action(&raw_action);
            if COUNTED.contains(&action) {
                let empty = HashMap::new();
                let attrs = actor.attributes.as_ref().unwrap_or(&empty);
                let labels = event_labels(action, detail, attrs);
                tracing::debug!(
                    sampler = NAME,
                    "container event {raw_action} for {}",
                    labels.get("name").unwrap_or("")
                );
                registry.count(EVENTS_METRIC, EVENTS_HELP, labels, 1.0);
                // Deaths and kills are what alerts wait for: push them now.
                registry.push_soon();
            }
        }
        reconnects += 1;
        conn.reset();
    }
}

fn publish_state(registry: &Registry, connected: bool, reconnects: u64) {
    registry.publish(
        NAME,
        vec![
            Family::single(
                "lookout_docker_events_connected",
                "1 while the agent follows Docker's event stream.",
                MetricKind::Gauge,
                if connected { 1.0 } else { 0.0 },
            ),
            Family::single(
                "lookout_docker_events_reconnects_total",
                "Times the event stream was lost and followed again.",
                MetricKind::Counter,
                reconnects as f64,
            ),
        ],
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_action_is_split() {
        assert_eq!(
            split_action("health_status: unhealthy"),
            ("health_status", Some("unhealthy"))
        );
        assert_eq!(split_action("die"), ("die", None));
        assert_eq!(
            split_action("exec_start: sh -c x"),
            ("exec_start", Some("sh -c x"))
        );
    }

    #[test]
    fn labels_carry_kubernetes_identity() {
        let attrs: HashMap<String, String> = [
            ("name", "k8s_app_web-1_default_uid_0"),
            ("image", "nginx"),
            ("io.kubernetes.pod.name", "web-1"),
            ("io.kubernetes.pod.namespace", "default"),
            ("io.kubernetes.container.name", "app"),
            ("exitCode", "137"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let l = event_labels("die", None, &attrs);
        assert_eq!(l.get("pod"), Some("web-1"));
        assert_eq!(l.get("namespace"), Some("default"));
        assert_eq!(l.get("health"), None);
        let h = event_labels("health_status", Some("unhealthy"), &attrs);
        assert_eq!(h.get("health"), Some("unhealthy"));
    }

    #[test]
    fn replayed_events_are_not_counted_twice() {
        let mut p = Position::default();
        assert!(p.advance(100, "a", "die"));
        assert!(p.advance(100, "b", "die"));
        assert!(!p.advance(100, "a", "die"));
        assert!(!p.advance(99, "c", "die"));
        assert!(p.advance(101, "a", "die"));
        assert_eq!(p.since_arg().as_deref(), Some("0.000000101"));
    }
}
