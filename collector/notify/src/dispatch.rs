//! The notification pipeline as a state machine driven by the caller's
//! clock:
//!
//! ```text
//! put_alerts ─► store (merge by fingerprint) ─► route ─► aggregation groups
//! tick(now) ─► due groups ─► mute windows ─► inhibit ─► silence
//!           ─► notification log (dedupe) ─► Notification
//! delivered(notification, ok) ─► notification log, resolved alerts dropped
//! ```
//!
//! The driver calls [`Pipeline::tick`] at [`Pipeline::next_deadline`] (and
//! after every [`Pipeline::put_alerts`]), hands the notifications to the
//! receivers, and reports each result with [`Pipeline::delivered`]. Nothing
//! here reads the clock or sleeps.
//!
//! Alertmanager's timing, per aggregation group (one per route and set of
//! `group_by` values):
//! - a new group flushes `group_wait` after it is created (at once if an
//!   alert in it started more than `group_wait` ago, before its first
//!   flush), then every `group_interval`;
//! - a flush sends when the notification log says so (Alertmanager's
//!   `needsUpdate`): firing alerts not in the last notification, newly
//!   resolved alerts (when the receiver sends resolved notifications), all
//!   alerts resolved, or `repeat_interval` (rounded up to a multiple of
//!   `group_interval`) since the last notification;
//! - only a delivered notification enters the log, so a failed one is
//!   tried again at the group's next flush.
//!
//! Differences from Alertmanager, on purpose: a group is removed as soon as
//! a flush leaves it empty (Alertmanager sweeps every 30s), and its
//! notification-log entry with it (Alertmanager keeps entries for 120h,
//! which can hold back the notification for an alert that fires again
//! after resolving while silenced).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::alert::{Alert, AlertStatus, LabelSet, Notification};
use crate::config::{ConfigErrors, NotifyConfig};
use crate::inhibit::{InhibitState, Inhibitor};
use crate::route::{Route, RouteTree};
use crate::silence::Silences;
use crate::timeinterval::TimeIntervals;

/// How long a resolved alert stays listed after it resolved and no group
/// holds it any more.
pub const RESOLVED_RETENTION: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Config(#[from] ConfigErrors),
}

/// Why a notification goes out: Alertmanager's `notification_reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NotifyReason {
    FirstNotification,
    NewAlertsInGroup,
    NewResolvedAlerts,
    AllAlertsResolved,
    RepeatIntervalElapsed,
}

impl NotifyReason {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyReason::FirstNotification => "first notification",
            NotifyReason::NewAlertsInGroup => "new alerts added",
            NotifyReason::NewResolvedAlerts => "some alerts resolved",
            NotifyReason::AllAlertsResolved => "all alerts resolved",
            NotifyReason::RepeatIntervalElapsed => "repeat interval elapsed",
        }
    }
}

/// An alert `put_alerts` refused, with why.
#[derive(Clone, Debug, PartialEq)]
pub struct RejectedAlert {
    pub alert: Alert,
    pub reason: String,
}

/// Whether an alert is currently kept from receivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AlertState {
    Active,
    Suppressed,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Active => "active",
            AlertState::Suppressed => "suppressed",
        }
    }
}

/// An alert as `GET /api/v2/alerts` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertView {
    pub alert: Alert,
    pub fingerprint: String,
    pub status: AlertStatus,
    pub state: AlertState,
    /// Ids of the active silences that match.
    pub silenced_by: Vec<String>,
    /// Fingerprints of the firing alerts that inhibit it.
    pub inhibited_by: Vec<String>,
    /// Names of the time intervals that mute it on its routes now.
    pub muted_by: Vec<String>,
    pub receivers: Vec<String>,
    pub updated_at_ms: i64,
}

impl AlertView {
    /// The JSON of `GET /api/v2/alerts` for this alert.
    pub fn to_gettable(&self) -> GettableAlert {
        GettableAlert {
            labels: self.alert.labels.clone(),
            annotations: self.alert.annotations.clone(),
            starts_at: self.alert.starts_at_ms,
            ends_at: self.alert.ends_at_ms.unwrap_or(0),
            updated_at: self.updated_at_ms,
            generator_url: self.alert.generator_url.clone(),
            fingerprint: self.fingerprint.clone(),
            receivers: self
                .receivers
                .iter()
                .map(|name| ReceiverName { name: name.clone() })
                .collect(),
            status: GettableAlertStatus {
                state: self.state.as_str().to_string(),
                silenced_by: self.silenced_by.clone(),
                inhibited_by: self.inhibited_by.clone(),
                muted_by: self.muted_by.clone(),
            },
        }
    }
}

/// Alertmanager's API v2 `gettableAlert`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GettableAlert {
    pub labels: LabelSet,
    pub annotations: LabelSet,
    #[serde(with = "crate::rfc3339::serde_ms")]
    pub starts_at: i64,
    #[serde(with = "crate::rfc3339::serde_ms")]
    pub ends_at: i64,
    #[serde(with = "crate::rfc3339::serde_ms")]
    pub updated_at: i64,
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    pub fingerprint: String,
    pub receivers: Vec<ReceiverName>,
    pub status: GettableAlertStatus,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReceiverName {
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GettableAlertStatus {
    /// `active` or `suppressed`.
    pub state: String,
    pub silenced_by: Vec<String>,
    pub inhibited_by: Vec<String>,
    pub muted_by: Vec<String>,
}

/// An aggregation group as `GET /api/v2/alerts/groups` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupView {
    pub receiver: String,
    pub group_key: String,
    pub route_id: String,
    pub labels: LabelSet,
    /// Sorted by labels.
    pub alerts: Vec<Alert>,
    pub next_flush_ms: i64,
}

#[derive(Clone, Debug)]
struct StoredAlert {
    alert: Alert,
    /// `endsAt` came from `resolve_timeout`, not from the sender.
    timeout: bool,
    updated_ms: i64,
}

#[derive(Clone, Debug)]
struct GroupAlert {
    alert: Alert,
    /// Bumped on every update, so a delivery drops a resolved alert only if
    /// it did not fire again meanwhile.
    version: u64,
}

#[derive(Clone, Debug)]
struct InFlight {
    flush_ms: i64,
    firing: BTreeSet<u64>,
    resolved: BTreeSet<u64>,
    /// Every alert resolved at the flush, sent or filtered, with its version.
    resolved_versions: Vec<(u64, u64)>,
}

#[derive(Clone, Debug)]
struct Group {
    route: usize,
    labels: LabelSet,
    key: String,
    receiver: String,
    next_flush_ms: i64,
    has_flushed: bool,
    alerts: BTreeMap<u64, GroupAlert>,
    in_flight: Option<InFlight>,
}

/// What the notification log remembers of the last delivered
/// notification of a group to a receiver.
#[derive(Clone, Debug, PartialEq, Eq)]
struct LogEntry {
    firing: BTreeSet<u64>,
    resolved: BTreeSet<u64>,
    /// The flush that built it: repeats count from there, so they land on
    /// the group's flush schedule however long delivery took.
    sent_ms: i64,
}

type GroupId = (usize, LabelSet);
type LogKey = (String, String);

#[derive(Debug)]
pub struct Pipeline {
    tree: RouteTree,
    inhibitor: Inhibitor,
    intervals: TimeIntervals,
    external_url: String,
    resolve_timeout_ms: i64,
    send_resolved: HashMap<String, bool>,
    store: HashMap<u64, StoredAlert>,
    groups: BTreeMap<GroupId, Group>,
    nflog: HashMap<LogKey, LogEntry>,
    version: u64,
    log_version: u64,
}

/// One saved notification-log entry: what a receiver was last told about
/// a group, fingerprints in hex.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LogRecord {
    pub receiver: String,
    pub group_key: String,
    pub firing: Vec<String>,
    pub resolved: Vec<String>,
    pub sent_ms: i64,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Pipeline {
    /// Builds a pipeline; fails with every config error at once. Warnings
    /// (such as a rounded `repeat_interval`) are logged.
    pub fn new(cfg: &NotifyConfig, external_url: String) -> Result<Pipeline, PipelineError> {
        for w in cfg.check()? {
            tracing::warn!(path = %w.path, "{}", w.message);
        }
        Ok(Pipeline {
            tree: RouteTree::new(&cfg.route)?,
            inhibitor: Inhibitor::new(&cfg.inhibit_rules)?,
            intervals: TimeIntervals::compile(&cfg.time_intervals)?,
            external_url,
            resolve_timeout_ms: ms(cfg.resolve_timeout),
            send_resolved: HashMap::new(),
            store: HashMap::new(),
            groups: BTreeMap::new(),
            nflog: HashMap::new(),
            version: 0,
            log_version: 0,
        })
    }

    /// Per-receiver `send_resolved` (receivers not listed send resolved
    /// notifications, Alertmanager's default).
    pub fn with_send_resolved(mut self, by_receiver: HashMap<String, bool>) -> Pipeline {
        self.send_resolved = by_receiver;
        self
    }

    pub fn set_send_resolved(&mut self, receiver: &str, send: bool) {
        self.send_resolved.insert(receiver.to_string(), send);
    }

    pub fn send_resolved(&self, receiver: &str) -> bool {
        self.send_resolved.get(receiver).copied().unwrap_or(true)
    }

    pub fn route_tree(&self) -> &RouteTree {
        &self.tree
    }

    /// The receivers alerts with these labels go to.
    pub fn receivers_for(&self, labels: &LabelSet) -> Vec<String> {
        self.tree.receivers(labels)
    }

    /// Takes alerts in, as `POST /api/v2/alerts`. An alert whose
    /// fingerprint is known replaces the stored one; when their active
    /// ranges overlap they merge as in Alertmanager (the earliest
    /// `startsAt` is kept, and a later explicit `endsAt` of the old one
    /// wins). An alert without `endsAt` fires for `resolve_timeout` unless
    /// sent again. Returns the alerts refused (no labels, an empty label
    /// name, or `endsAt` before `startsAt`).
    pub fn put_alerts(
        &mut self,
        alerts: impl IntoIterator<Item = Alert>,
        now_ms: i64,
    ) -> Vec<RejectedAlert> {
        let mut rejected = Vec::new();
        for alert in alerts {
            if let Err(reason) = check_alert(&alert) {
                rejected.push(RejectedAlert { alert, reason });
                continue;
            }
            let merged = self.store_alert(alert, now_ms);
            self.route_alert(merged, now_ms);
        }
        rejected
    }

    fn store_alert(&mut self, mut alert: Alert, now_ms: i64) -> Alert {
        let timeout = alert.ends_at_ms.is_none();
        if timeout {
            alert.ends_at_ms = Some(now_ms.saturating_add(self.resolve_timeout_ms));
        }
        let fp = alert.fingerprint();
        let mut new = StoredAlert {
            alert,
            timeout,
            updated_ms: now_ms,
        };
        if let Some(old) = self.store.get(&fp) {
            let (o_start, o_end) = (
                old.alert.starts_at_ms,
                old.alert.ends_at_ms.unwrap_or(i64::MAX),
            );
            let (n_start, n_end) = (
                new.alert.starts_at_ms,
                new.alert.ends_at_ms.unwrap_or(i64::MAX),
            );
            // Only alerts whose active ranges overlap are the same
            // occurrence; otherwise the new one starts afresh.
            if (n_end > o_start && n_end < o_end) || (n_start > o_start && n_start < o_end) {
                new = merge(old, new, now_ms);
            }
        }
        let out = new.alert.clone();
        self.store.insert(fp, new);
        out
    }

    fn route_alert(&mut self, alert: Alert, now_ms: i64) {
        let fp = alert.fingerprint();
        let routes: Vec<&Route> = self.tree.matching(&alert.labels);
        for route in routes {
            // A route without a receiver only comes from a config that
            // turns notifications off.
            if route.opts.receiver.is_empty() {
                continue;
            }
            let labels = route.opts.group_labels(&alert.labels);
            let group_wait = ms(route.opts.group_wait);
            let group = self
                .groups
                .entry((route.index, labels.clone()))
                .or_insert_with(|| Group {
                    route: route.index,
                    key: format!("{}:{}", route.key, format_labels(&labels)),
                    labels,
                    receiver: route.opts.receiver.clone(),
                    next_flush_ms: now_ms.saturating_add(group_wait),
                    has_flushed: false,
                    alerts: BTreeMap::new(),
                    in_flight: None,
                });
            self.version += 1;
            group.alerts.insert(
                fp,
                GroupAlert {
                    alert: alert.clone(),
                    version: self.version,
                },
            );
            // An alert that has been firing longer than group_wait has
            // waited enough: flush the new group now.
            if !group.has_flushed && alert.starts_at_ms.saturating_add(group_wait) < now_ms {
                group.next_flush_ms = group.next_flush_ms.min(now_ms);
            }
        }
    }

    /// When `tick` has something to do next: the earliest flush of a group
    /// not waiting for a delivery result. `None` when there are no groups.
    pub fn next_deadline(&self) -> Option<i64> {
        self.groups
            .values()
            .filter(|g| g.in_flight.is_none())
            .map(|g| g.next_flush_ms)
            .min()
    }

    /// Flushes every due group and returns the notifications to deliver,
    /// each to be reported back with [`delivered`](Self::delivered). A group
    /// with a notification still in flight waits for its result.
    pub fn tick(&mut self, now_ms: i64, silences: &Silences) -> Vec<Notification> {
        self.gc(now_ms);
        let due: Vec<GroupId> = self
            .groups
            .iter()
            .filter(|(_, g)| g.in_flight.is_none() && g.next_flush_ms <= now_ms)
            .map(|(id, _)| id.clone())
            .collect();
        if due.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::new();
        let mut emptied = Vec::new();
        {
            let inhibit = self
                .inhibitor
                .snapshot(self.store.values().map(|s| &s.alert), now_ms);
            let ctx = FlushCtx {
                tree: &self.tree,
                intervals: &self.intervals,
                inhibit: &inhibit,
                silences,
                send_resolved: &self.send_resolved,
                external_url: &self.external_url,
                now_ms,
            };
            for id in due {
                let Some(group) = self.groups.get_mut(&id) else {
                    continue;
                };
                if let Some(n) = ctx.flush(group, &mut self.nflog) {
                    out.push(n);
                }
                if group.alerts.is_empty() {
                    emptied.push(id);
                }
            }
        }
        for id in emptied {
            self.remove_group(&id);
        }
        out
    }

    /// Records the result of delivering a notification from
    /// [`tick`](Self::tick). A success enters the notification log and
    /// drops the resolved alerts it covered (unless they changed since); a
    /// failure leaves the log alone, so the group's next flush tries again.
    /// Returns false when the notification is not one in flight (its group
    /// is gone or it was already reported). The log entry is stamped with
    /// the flush time (`notification.now_ms`), not `now_ms`, so repeats stay
    /// on the group's schedule however long delivery took.
    pub fn delivered(&mut self, notification: &Notification, ok: bool, now_ms: i64) -> bool {
        tracing::debug!(
            receiver = %notification.receiver,
            group_key = %notification.group_key,
            ok,
            took_ms = now_ms.saturating_sub(notification.now_ms),
            "notification delivery reported"
        );
        let Some((id, group)) = self.groups.iter_mut().find(|(_, g)| {
            g.receiver == notification.receiver
                && g.key == notification.group_key
                && g.in_flight
                    .as_ref()
                    .is_some_and(|f| f.flush_ms == notification.now_ms)
        }) else {
            return false;
        };
        let Some(flight) = group.in_flight.take() else {
            return false;
        };
        if !ok {
            return true;
        }
        self.log_version += 1;
        self.nflog.insert(
            (group.receiver.clone(), group.key.clone()),
            LogEntry {
                firing: flight.firing,
                resolved: flight.resolved,
                sent_ms: flight.flush_ms,
            },
        );
        drop_resolved(group, &flight.resolved_versions);
        if group.alerts.is_empty() {
            let id = id.clone();
            self.remove_group(&id);
        }
        true
    }

    /// The notification log, to be saved so that after a restart the
    /// alerts already notified are not notified again as new.
    pub fn notification_log(&self) -> Vec<LogRecord> {
        let mut out: Vec<LogRecord> = self
            .nflog
            .iter()
            .map(|((receiver, group_key), e)| LogRecord {
                receiver: receiver.clone(),
                group_key: group_key.clone(),
                firing: e.firing.iter().map(|fp| format!("{fp:016x}")).collect(),
                resolved: e.resolved.iter().map(|fp| format!("{fp:016x}")).collect(),
                sent_ms: e.sent_ms,
            })
            .collect();
        out.sort_by(|a, b| (&a.receiver, &a.group_key).cmp(&(&b.receiver, &b.group_key)));
        out
    }

    /// Puts back a saved notification log (before alerts arrive). Records
    /// with unreadable fingerprints are skipped.
    pub fn restore_notification_log(&mut self, records: Vec<LogRecord>) {
        let parse = |v: &[String]| -> BTreeSet<u64> {
            v.iter()
                .filter_map(|h| u64::from_str_radix(h, 16).ok())
                .collect()
        };
        for r in records {
            self.nflog.insert(
                (r.receiver, r.group_key),
                LogEntry {
                    firing: parse(&r.firing),
                    resolved: parse(&r.resolved),
                    sent_ms: r.sent_ms,
                },
            );
        }
    }

    /// Changes with every state change worth saving (a delivery recorded).
    pub fn log_version(&self) -> u64 {
        self.log_version
    }

    fn remove_group(&mut self, id: &GroupId) {
        if let Some(g) = self.groups.remove(id) {
            self.nflog.remove(&(g.receiver, g.key));
            self.log_version += 1;
        }
    }

    /// Forgets resolved alerts that no group holds any more, some time
    /// after they resolved.
    fn gc(&mut self, now_ms: i64) {
        let retention = ms(RESOLVED_RETENTION);
        let old = |s: &StoredAlert| {
            s.alert
                .ends_at_ms
                .is_some_and(|end| end <= now_ms && end.saturating_add(retention) <= now_ms)
        };
        if !self.store.values().any(old) {
            return;
        }
        let held: HashSet<u64> = self
            .groups
            .values()
            .flat_map(|g| g.alerts.keys().copied())
            .collect();
        self.store.retain(|fp, s| held.contains(fp) || !old(s));
    }

    /// Every known alert with its state, sorted by labels.
    pub fn alerts(&self, now_ms: i64, silences: &Silences) -> Vec<AlertView> {
        let inhibit = self
            .inhibitor
            .snapshot(self.store.values().map(|s| &s.alert), now_ms);
        let mut out: Vec<AlertView> = self
            .store
            .values()
            .map(|s| {
                let labels = &s.alert.labels;
                let routes = self.tree.matching(labels);
                let mut muted_by = Vec::new();
                for r in &routes {
                    for name in mute_reasons(r, &self.intervals, now_ms) {
                        if !muted_by.contains(&name) {
                            muted_by.push(name);
                        }
                    }
                }
                let silenced_by = silences.silenced_by(labels, now_ms);
                let inhibited_by: Vec<String> = inhibit
                    .all_inhibited_by(labels)
                    .into_iter()
                    .map(|fp| format!("{fp:016x}"))
                    .collect();
                let suppressed =
                    !silenced_by.is_empty() || !inhibited_by.is_empty() || !muted_by.is_empty();
                AlertView {
                    fingerprint: s.alert.fingerprint_hex(),
                    status: s.alert.status_at(now_ms),
                    state: if suppressed {
                        AlertState::Suppressed
                    } else {
                        AlertState::Active
                    },
                    silenced_by,
                    inhibited_by,
                    muted_by,
                    receivers: routes
                        .iter()
                        .map(|r| r.opts.receiver.clone())
                        .filter(|r| !r.is_empty())
                        .collect(),
                    updated_at_ms: s.updated_ms,
                    alert: s.alert.clone(),
                }
            })
            .collect();
        out.sort_by(|a, b| a.alert.labels.cmp(&b.alert.labels));
        out
    }

    /// The aggregation groups, in route order.
    pub fn groups(&self) -> Vec<GroupView> {
        self.groups
            .values()
            .map(|g| {
                let mut alerts: Vec<Alert> = g.alerts.values().map(|a| a.alert.clone()).collect();
                alerts.sort_by(|a, b| a.labels.cmp(&b.labels));
                GroupView {
                    receiver: g.receiver.clone(),
                    group_key: g.key.clone(),
                    route_id: self
                        .tree
                        .get(g.route)
                        .map(|r| r.id.clone())
                        .unwrap_or_default(),
                    labels: g.labels.clone(),
                    alerts,
                    next_flush_ms: g.next_flush_ms,
                }
            })
            .collect()
    }
}

fn check_alert(a: &Alert) -> Result<(), String> {
    if a.labels.is_empty() {
        return Err("an alert needs at least one label".into());
    }
    if a.labels.keys().any(String::is_empty) {
        return Err("empty label name".into());
    }
    if let Some(end) = a.ends_at_ms
        && end < a.starts_at_ms
    {
        return Err("endsAt is before startsAt".into());
    }
    Ok(())
}

/// Alertmanager's merge of two reports of one alert, `new` being the
/// later.
fn merge(old: &StoredAlert, mut new: StoredAlert, now_ms: i64) -> StoredAlert {
    new.alert.starts_at_ms = new.alert.starts_at_ms.min(old.alert.starts_at_ms);
    let (o_end, n_end) = (old.alert.ends_at_ms, new.alert.ends_at_ms);
    let resolved = |end: Option<i64>| end.is_some_and(|e| e <= now_ms);
    if resolved(n_end) {
        // Both resolved: the latest resolution wins.
        if resolved(o_end) && o_end > n_end {
            new.alert.ends_at_ms = o_end;
        }
    } else if o_end > n_end && !old.timeout {
        // A sender's explicit end outlasts a resolve_timeout guess.
        new.alert.ends_at_ms = o_end;
        new.timeout = false;
    }
    new
}

/// Alertmanager's spelling of a label set in group keys:
/// `{alertname="X", node="n1"}`.
pub fn format_labels(labels: &LabelSet) -> String {
    let inner: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}={}", crate::matchers::quote_value(v)))
        .collect();
    format!("{{{}}}", inner.join(", "))
}

/// Names of the intervals keeping a route quiet at `now`: active mute
/// intervals, or the active intervals when the route is outside all of
/// them.
fn mute_reasons(route: &Route, intervals: &TimeIntervals, now_ms: i64) -> Vec<String> {
    let mut out: Vec<String> = route
        .opts
        .mute_time_intervals
        .iter()
        .filter(|n| intervals.contains(n, now_ms) == Some(true))
        .cloned()
        .collect();
    let active = &route.opts.active_time_intervals;
    if !active.is_empty()
        && !active
            .iter()
            .any(|n| intervals.contains(n, now_ms) == Some(true))
    {
        out.extend(active.iter().cloned());
    }
    out
}

fn drop_resolved(group: &mut Group, resolved: &[(u64, u64)]) {
    for (fp, version) in resolved {
        if group.alerts.get(fp).is_some_and(|a| a.version == *version) {
            group.alerts.remove(fp);
        }
    }
}

fn sort_alerts(alerts: &mut [Alert]) {
    alerts.sort_by(|a, b| a.labels.cmp(&b.labels));
}

struct FlushCtx<'a> {
    tree: &'a RouteTree,
    intervals: &'a TimeIntervals,
    inhibit: &'a InhibitState<'a>,
    silences: &'a Silences,
    send_resolved: &'a HashMap<String, bool>,
    external_url: &'a str,
    now_ms: i64,
}

impl FlushCtx<'_> {
    /// One flush of one group: the notification to send, if any. When
    /// nothing is sent the flush counts as done and the group's resolved
    /// alerts are dropped, as in Alertmanager.
    fn flush(
        &self,
        group: &mut Group,
        nflog: &mut HashMap<LogKey, LogEntry>,
    ) -> Option<Notification> {
        let now = self.now_ms;
        let route = self.tree.get(group.route)?;
        group.has_flushed = true;
        group.next_flush_ms = now.saturating_add(ms(route.opts.group_interval));

        let resolved_versions: Vec<(u64, u64)> = group
            .alerts
            .iter()
            .filter(|(_, a)| a.alert.status_at(now) == AlertStatus::Resolved)
            .map(|(fp, a)| (*fp, a.version))
            .collect();

        if !mute_reasons(route, self.intervals, now).is_empty() {
            drop_resolved(group, &resolved_versions);
            return None;
        }

        let mut firing_alerts = Vec::new();
        let mut resolved_alerts = Vec::new();
        for (fp, a) in &group.alerts {
            let labels = &a.alert.labels;
            if self.inhibit.inhibited_by(labels).is_some() || self.silences.is_silenced(labels, now)
            {
                continue;
            }
            if a.alert.status_at(now) == AlertStatus::Firing {
                firing_alerts.push((*fp, a.alert.clone()));
            } else {
                resolved_alerts.push((*fp, a.alert.clone()));
            }
        }
        let firing: BTreeSet<u64> = firing_alerts.iter().map(|(fp, _)| *fp).collect();
        let resolved: BTreeSet<u64> = resolved_alerts.iter().map(|(fp, _)| *fp).collect();
        let send_resolved = self
            .send_resolved
            .get(&group.receiver)
            .copied()
            .unwrap_or(true);
        let log_key = (group.receiver.clone(), group.key.clone());
        let repeat = ms(route.opts.effective_repeat_interval());

        let Some(reason) = needs_update(
            nflog.get(&log_key),
            &firing,
            &resolved,
            send_resolved,
            repeat,
            now,
        ) else {
            drop_resolved(group, &resolved_versions);
            return None;
        };
        if firing.is_empty() && !send_resolved {
            // Nothing to tell this receiver, but the log must learn that
            // the alerts it was told about are over.
            nflog.insert(
                log_key,
                LogEntry {
                    firing,
                    resolved,
                    sent_ms: now,
                },
            );
            drop_resolved(group, &resolved_versions);
            return None;
        }

        let mut alerts: Vec<Alert> = firing_alerts
            .into_iter()
            .map(|(_, mut a)| {
                // As Alertmanager: a firing alert's end is not shown.
                a.ends_at_ms = None;
                a
            })
            .collect();
        sort_alerts(&mut alerts);
        if send_resolved {
            let mut r: Vec<Alert> = resolved_alerts.into_iter().map(|(_, a)| a).collect();
            sort_alerts(&mut r);
            alerts.extend(r);
        }
        group.in_flight = Some(InFlight {
            flush_ms: now,
            firing,
            resolved,
            resolved_versions,
        });
        Some(Notification {
            receiver: group.receiver.clone(),
            group_key: group.key.clone(),
            group_labels: group.labels.clone(),
            alerts,
            now_ms: now,
            external_url: self.external_url.to_string(),
            reason: reason.as_str().to_string(),
        })
    }
}

/// Alertmanager's `needsUpdate`: whether the group (after inhibition and
/// silences) differs enough from the last delivered notification.
fn needs_update(
    entry: Option<&LogEntry>,
    firing: &BTreeSet<u64>,
    resolved: &BTreeSet<u64>,
    send_resolved: bool,
    repeat_ms: i64,
    now_ms: i64,
) -> Option<NotifyReason> {
    let Some(entry) = entry else {
        return (!firing.is_empty()).then_some(NotifyReason::FirstNotification);
    };
    if !firing.is_subset(&entry.firing) {
        return Some(if entry.firing.is_empty() {
            NotifyReason::FirstNotification
        } else {
            NotifyReason::NewAlertsInGroup
        });
    }
    if firing.is_empty() {
        // Alerts that fired and resolved between two flushes were never
        // announced: nothing to say about them.
        return (!entry.firing.is_empty()).then_some(NotifyReason::AllAlertsResolved);
    }
    if send_resolved && !resolved.is_subset(&entry.resolved) {
        return Some(NotifyReason::NewResolvedAlerts);
    }
    (now_ms.saturating_sub(entry.sent_ms) >= repeat_ms)
        .then_some(NotifyReason::RepeatIntervalElapsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[u64]) -> BTreeSet<u64> {
        v.iter().copied().collect()
    }

    fn entry(firing: &[u64], resolved: &[u64], sent_ms: i64) -> LogEntry {
        LogEntry {
            firing: set(firing),
            resolved: set(resolved),
            sent_ms,
        }
    }

    #[test]
    fn needs_update_cases() {
        use NotifyReason::*;
        let nu = |e: Option<&LogEntry>, f: &[u64], r: &[u64], sr: bool, now: i64| {
            needs_update(e, &set(f), &set(r), sr, 100, now)
        };
        assert_eq!(nu(None, &[1], &[], true, 0), Some(FirstNotification));
        assert_eq!(nu(None, &[], &[1], true, 0), None);
        let e = entry(&[1, 2], &[], 0);
        assert_eq!(nu(Some(&e), &[1, 2], &[], true, 99), None);
        assert_eq!(
            nu(Some(&e), &[1, 2], &[], true, 100),
            Some(RepeatIntervalElapsed)
        );
        assert_eq!(nu(Some(&e), &[1, 3], &[], true, 1), Some(NewAlertsInGroup));
        assert_eq!(nu(Some(&e), &[1], &[2], true, 1), Some(NewResolvedAlerts));
        assert_eq!(nu(Some(&e), &[1], &[2], false, 1), None);
        assert_eq!(
            nu(Some(&e), &[], &[1, 2], false, 1),
            Some(AllAlertsResolved)
        );
        let e = entry(&[], &[1], 0);
        assert_eq!(nu(Some(&e), &[], &[2], true, 1), None);
        assert_eq!(nu(Some(&e), &[2], &[], true, 1), Some(FirstNotification));
    }

    #[test]
    fn merge_keeps_the_earliest_start() {
        let a = |start, end| Alert {
            labels: [("a".to_string(), "b".to_string())].into(),
            annotations: LabelSet::new(),
            starts_at_ms: start,
            ends_at_ms: end,
            generator_url: String::new(),
        };
        let stored = |alert, timeout| StoredAlert {
            alert,
            timeout,
            updated_ms: 0,
        };
        let m = merge(
            &stored(a(10, Some(500)), false),
            stored(a(20, Some(400)), false),
            100,
        );
        assert_eq!((m.alert.starts_at_ms, m.alert.ends_at_ms), (10, Some(500)));
        // A timed-out guess does not outlast the sender's new end.
        let m = merge(
            &stored(a(10, Some(500)), true),
            stored(a(20, Some(400)), false),
            100,
        );
        assert_eq!(m.alert.ends_at_ms, Some(400));
        // A resolution is kept.
        let m = merge(
            &stored(a(10, Some(500)), false),
            stored(a(20, Some(50)), false),
            100,
        );
        assert_eq!((m.alert.starts_at_ms, m.alert.ends_at_ms), (10, Some(50)));
    }

    #[test]
    fn label_formatting() {
        let l: LabelSet = [
            ("b".to_string(), "x\"y".to_string()),
            ("a".to_string(), "1".to_string()),
        ]
        .into();
        assert_eq!(format_labels(&l), r#"{a="1", b="x\"y"}"#);
        assert_eq!(format_labels(&LabelSet::new()), "{}");
    }
}
