//! The notification pipeline end to end, on simulated time: hours of
//! alerting run in milliseconds, and every test pins exact counts and
//! timestamps.

use lookout_notify::dispatch::AlertState;
use lookout_notify::silence::SilenceError;
use lookout_notify::{
    Alert, LabelSet, Notification, NotifyConfig, Pipeline, PostableSilence, SilenceMatcher,
    Silences, rfc3339,
};

/// 2025-01-06T00:00:00Z, a Monday.
const T0: i64 = 1_736_121_600_000;
const S: i64 = 1_000;
const M: i64 = 60 * S;
const H: i64 = 60 * M;
const URL: &str = "http://lookout.example:9780";

fn at(s: &str) -> i64 {
    match rfc3339::parse(s) {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    }
}

fn pipeline(yaml: &str) -> Pipeline {
    let cfg: NotifyConfig = match serde_yaml_ng::from_str(yaml) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    match Pipeline::new(&cfg, URL.to_string()) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

fn labels(pairs: &[(&str, &str)]) -> LabelSet {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A firing alert with an explicit end far away, as a rule engine that
/// re-sends would give.
fn firing(pairs: &[(&str, &str)], starts_at_ms: i64) -> Alert {
    Alert {
        labels: labels(pairs),
        annotations: labels(&[("summary", "something broke")]),
        starts_at_ms,
        ends_at_ms: Some(starts_at_ms + 24 * H),
        generator_url: "http://lookout.example:9780/graph".into(),
    }
}

fn resolved(pairs: &[(&str, &str)], starts_at_ms: i64, ends_at_ms: i64) -> Alert {
    Alert {
        ends_at_ms: Some(ends_at_ms),
        ..firing(pairs, starts_at_ms)
    }
}

/// The collector's driver loop: ticks at every deadline up to `until`
/// and reports each notification as delivered (or failed).
fn run(p: &mut Pipeline, silences: &Silences, until: i64, ok: bool) -> Vec<Notification> {
    let mut out = Vec::new();
    while let Some(deadline) = p.next_deadline() {
        if deadline > until {
            break;
        }
        let sent = p.tick(deadline, silences);
        for n in &sent {
            assert!(p.delivered(n, ok, deadline));
        }
        out.extend(sent);
    }
    out
}

fn summary(ns: &[Notification]) -> Vec<(i64, String, String, usize)> {
    ns.iter()
        .map(|n| {
            (
                n.now_ms - T0,
                n.receiver.clone(),
                n.reason.clone(),
                n.alerts.len(),
            )
        })
        .collect()
}

fn labels_fp(pairs: &[(&str, &str)]) -> String {
    format!(
        "{:016x}",
        lookout_notify::alert::fingerprint(&labels(pairs))
    )
}

fn names(n: &Notification, label: &str) -> Vec<String> {
    n.alerts
        .iter()
        .map(|a| a.labels.get(label).cloned().unwrap_or_default())
        .collect()
}

const BASIC: &str = r#"
route:
  receiver: ops
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
receivers: [{name: ops}]
"#;

#[test]
fn burst_of_50_alerts_is_one_notification_after_group_wait() {
    let mut p = pipeline(BASIC);
    let silences = Silences::in_memory();
    for i in 0..50 {
        let now = T0 + i * 100;
        let c = format!("c{i:02}");
        let rejected = p.put_alerts(
            [firing(
                &[("alertname", "ContainerDown"), ("container", &c)],
                now,
            )],
            now,
        );
        assert!(rejected.is_empty());
        assert!(p.tick(now, &silences).is_empty());
    }
    assert_eq!(p.next_deadline(), Some(T0 + 30 * S));
    assert!(p.tick(T0 + 30 * S - 1, &silences).is_empty());

    let sent = p.tick(T0 + 30 * S, &silences);
    assert_eq!(sent.len(), 1);
    let n = &sent[0];
    assert_eq!(n.receiver, "ops");
    assert_eq!(n.group_key, r#"{}:{alertname="ContainerDown"}"#);
    assert_eq!(n.group_labels, labels(&[("alertname", "ContainerDown")]));
    assert_eq!(n.reason, "first notification");
    assert_eq!(n.now_ms, T0 + 30 * S);
    assert_eq!(n.external_url, URL);
    assert_eq!(n.alerts.len(), 50);
    let expected: Vec<String> = (0..50).map(|i| format!("c{i:02}")).collect();
    assert_eq!(names(n, "container"), expected);
    assert!(
        n.alerts.iter().all(|a| a.ends_at_ms.is_none()),
        "firing alerts show no end"
    );
    assert_eq!(n.alerts[7].starts_at_ms, T0 + 700);

    // Nothing new: the group only wakes every group_interval and says nothing.
    assert!(p.delivered(n, true, T0 + 31 * S));
    assert!(!p.delivered(n, true, T0 + 31 * S), "reported twice");
    assert_eq!(p.next_deadline(), Some(T0 + 30 * S + 5 * M));
    assert!(run(&mut p, &silences, T0 + 2 * H, true).is_empty());
    assert_eq!(p.next_deadline(), Some(T0 + 30 * S + 24 * 5 * M));
}

#[test]
fn joining_alerts_wait_for_group_interval() {
    let mut p = pipeline(BASIC);
    let silences = Silences::in_memory();
    p.put_alerts(
        [firing(&[("alertname", "NodeDown"), ("node", "a")], T0)],
        T0,
    );
    let first = run(&mut p, &silences, T0 + M, true);
    assert_eq!(
        summary(&first),
        [(30 * S, "ops".into(), "first notification".into(), 1)]
    );

    p.put_alerts(
        [firing(&[("alertname", "NodeDown"), ("node", "b")], T0 + M)],
        T0 + M,
    );
    assert!(p.tick(T0 + M, &silences).is_empty());
    assert_eq!(p.next_deadline(), Some(T0 + 5 * M + 30 * S));
    let mut later = run(&mut p, &silences, T0 + 12 * M - 1, true);
    p.put_alerts(
        [firing(
            &[("alertname", "NodeDown"), ("node", "c")],
            T0 + 12 * M,
        )],
        T0 + 12 * M,
    );
    later.extend(run(&mut p, &silences, T0 + 20 * M, true));
    assert_eq!(
        summary(&later),
        [
            (5 * M + 30 * S, "ops".into(), "new alerts added".into(), 2),
            (15 * M + 30 * S, "ops".into(), "new alerts added".into(), 3),
        ]
    );
    assert_eq!(names(&later[1], "node"), ["a", "b", "c"]);
}

#[test]
fn repeat_interval_over_hours_with_resends_every_minute() {
    let mut p = pipeline(BASIC);
    let silences = Silences::in_memory();
    let mut sent = Vec::new();
    // Like Prometheus: the rule re-sends the firing alert every minute with
    // endsAt a few minutes ahead.
    for minute in 0..=9 * 60 {
        let now = T0 + minute * M;
        let mut a = firing(&[("alertname", "DiskFull"), ("node", "n1")], T0);
        a.ends_at_ms = Some(now + 4 * M);
        p.put_alerts([a], now);
        sent.extend(run(&mut p, &silences, now + M - 1, true));
    }
    assert_eq!(
        summary(&sent),
        [
            (30 * S, "ops".into(), "first notification".into(), 1),
            (
                4 * H + 30 * S,
                "ops".into(),
                "repeat interval elapsed".into(),
                1
            ),
            (
                8 * H + 30 * S,
                "ops".into(),
                "repeat interval elapsed".into(),
                1
            ),
        ]
    );
    assert!(sent.iter().all(|n| n.alerts[0].starts_at_ms == T0));
}

#[test]
fn repeat_interval_rounds_up_to_group_interval() {
    let mut p = pipeline(
        "route: {receiver: ops, group_wait: 30s, group_interval: 5m, repeat_interval: 7m}\nreceivers: [{name: ops}]",
    );
    let silences = Silences::in_memory();
    p.put_alerts([firing(&[("alertname", "X")], T0)], T0);
    let sent = run(&mut p, &silences, T0 + 31 * M, true);
    let times: Vec<i64> = sent.iter().map(|n| n.now_ms - T0).collect();
    assert_eq!(
        times,
        [30 * S, 10 * M + 30 * S, 20 * M + 30 * S, 30 * M + 30 * S]
    );
    // With no group_by every alert of the route shares one group.
    assert_eq!(sent[0].group_key, "{}:{}");
}

#[test]
fn resolved_notifications_then_the_group_goes_away() {
    let mut p = pipeline(BASIC);
    let silences = Silences::in_memory();
    let a = [("alertname", "NodeDown"), ("node", "a")];
    let b = [("alertname", "NodeDown"), ("node", "b")];
    p.put_alerts([firing(&a, T0), firing(&b, T0)], T0);
    assert_eq!(run(&mut p, &silences, T0 + M, true).len(), 1);

    p.put_alerts([resolved(&a, T0, T0 + 2 * M)], T0 + 2 * M);
    let sent = run(&mut p, &silences, T0 + 6 * M, true);
    assert_eq!(
        summary(&sent),
        [(
            5 * M + 30 * S,
            "ops".into(),
            "some alerts resolved".into(),
            2
        )]
    );
    // Firing first, then resolved, with its end.
    assert_eq!(names(&sent[0], "node"), ["b", "a"]);
    assert_eq!(sent[0].alerts[0].ends_at_ms, None);
    assert_eq!(sent[0].alerts[1].ends_at_ms, Some(T0 + 2 * M));
    assert_eq!(sent[0].firing().count(), 1);
    assert_eq!(sent[0].resolved().count(), 1);

    p.put_alerts([resolved(&b, T0, T0 + 7 * M)], T0 + 7 * M);
    let sent = run(&mut p, &silences, T0 + 11 * M, true);
    assert_eq!(
        summary(&sent),
        [(
            10 * M + 30 * S,
            "ops".into(),
            "all alerts resolved".into(),
            1
        )]
    );
    assert_eq!(names(&sent[0], "node"), ["b"]);
    assert_eq!(sent[0].status(), lookout_notify::AlertStatus::Resolved);
    assert!(p.groups().is_empty());
    assert_eq!(p.next_deadline(), None);

    // Resolved alerts stay listed for a while, then go.
    assert_eq!(p.alerts(T0 + 12 * M, &silences).len(), 2);
    assert!(p.tick(T0 + 21 * M, &silences).is_empty());
    assert_eq!(
        p.alerts(T0 + 21 * M, &silences).len(),
        1,
        "a resolved 15m ago"
    );
    p.tick(T0 + 22 * M, &silences);
    assert!(p.alerts(T0 + 22 * M, &silences).is_empty());

    // A new alert for the same group labels starts a new group: group_wait again.
    p.put_alerts(
        [firing(
            &[("alertname", "NodeDown"), ("node", "c")],
            T0 + 30 * M,
        )],
        T0 + 30 * M,
    );
    let sent = run(&mut p, &silences, T0 + 31 * M, true);
    assert_eq!(
        summary(&sent),
        [(
            30 * M + 30 * S,
            "ops".into(),
            "first notification".into(),
            1
        )]
    );
}

#[test]
fn no_resolved_notifications_when_the_receiver_does_not_want_them() {
    let mut p = pipeline(BASIC).with_send_resolved([("ops".to_string(), false)].into());
    assert!(!p.send_resolved("ops"));
    assert!(p.send_resolved("other"));
    let silences = Silences::in_memory();
    let a = [("alertname", "NodeDown"), ("node", "a")];
    let b = [("alertname", "NodeDown"), ("node", "b")];
    p.put_alerts([firing(&a, T0), firing(&b, T0)], T0);
    let mut sent = run(&mut p, &silences, T0 + 2 * M, true);
    p.put_alerts([resolved(&a, T0, T0 + 2 * M)], T0 + 2 * M);
    sent.extend(run(&mut p, &silences, T0 + 7 * M, true));
    p.put_alerts([resolved(&b, T0, T0 + 7 * M)], T0 + 7 * M);
    sent.extend(run(&mut p, &silences, T0 + 5 * H, true));
    assert_eq!(
        summary(&sent),
        [(30 * S, "ops".into(), "first notification".into(), 2)]
    );
    assert!(p.groups().is_empty());
}

#[test]
fn an_alert_resolved_before_the_first_flush_is_never_sent() {
    let mut p = pipeline(BASIC);
    let silences = Silences::in_memory();
    let a = [("alertname", "Blip")];
    p.put_alerts([firing(&a, T0)], T0);
    p.put_alerts([resolved(&a, T0, T0 + 10 * S)], T0 + 10 * S);
    assert!(run(&mut p, &silences, T0 + H, true).is_empty());
    assert!(p.groups().is_empty());
}

#[test]
fn alerts_without_ends_at_resolve_after_resolve_timeout() {
    let mut p = pipeline(&format!("resolve_timeout: 5m\n{BASIC}"));
    let silences = Silences::in_memory();
    let mut a = firing(&[("alertname", "Heartbeat")], T0);
    a.ends_at_ms = None;
    p.put_alerts([a], T0);
    let sent = run(&mut p, &silences, T0 + H, true);
    assert_eq!(
        summary(&sent),
        [
            (30 * S, "ops".into(), "first notification".into(), 1),
            (
                5 * M + 30 * S,
                "ops".into(),
                "all alerts resolved".into(),
                1
            ),
        ]
    );
    assert_eq!(sent[1].alerts[0].ends_at_ms, Some(T0 + 5 * M));
}

#[test]
fn an_alert_older_than_group_wait_flushes_a_new_group_at_once() {
    let mut p = pipeline(BASIC);
    let silences = Silences::in_memory();
    p.put_alerts([firing(&[("alertname", "Old")], T0 - 10 * M)], T0);
    assert_eq!(p.next_deadline(), Some(T0));
    let sent = p.tick(T0, &silences);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].alerts[0].starts_at_ms, T0 - 10 * M);
}

#[test]
fn reports_of_one_alert_merge() {
    let mut p = pipeline(BASIC);
    let silences = Silences::in_memory();
    let l = [("alertname", "Flappy")];
    p.put_alerts([firing(&l, T0)], T0);
    // A later report of the same occurrence keeps the first start.
    p.put_alerts([firing(&l, T0 + 5 * S)], T0 + 10 * S);
    let sent = p.tick(T0 + 30 * S, &silences);
    assert_eq!(sent[0].alerts[0].starts_at_ms, T0);
    p.delivered(&sent[0], true, T0 + 30 * S);
    // Resolved, then firing anew: a new occurrence with its own start.
    p.put_alerts([resolved(&l, T0, T0 + M)], T0 + M);
    p.put_alerts([firing(&l, T0 + 2 * M)], T0 + 2 * M);
    let view = p.alerts(T0 + 2 * M, &silences);
    assert_eq!(view.len(), 1);
    assert_eq!(view[0].alert.starts_at_ms, T0 + 2 * M);
    // Firing again before the flush looked: nothing to say.
    assert!(run(&mut p, &silences, T0 + 6 * M, true).is_empty());
    // Bad alerts are refused with a reason, good ones kept.
    let mut bad = firing(&l, T0);
    bad.ends_at_ms = Some(T0 - 1);
    let empty = firing(&[], T0);
    let rejected = p.put_alerts(
        [bad, empty, firing(&[("alertname", "Fine")], T0)],
        T0 + 7 * M,
    );
    let reasons: Vec<&str> = rejected.iter().map(|r| r.reason.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "endsAt is before startsAt",
            "an alert needs at least one label"
        ]
    );
    assert_eq!(p.alerts(T0 + 7 * M, &silences).len(), 2);
}

const INHIBIT: &str = r#"
route:
  receiver: ops
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
receivers: [{name: ops}]
inhibit_rules:
  - source_matchers: ['alertname="NodeDown"']
    target_matchers: ['alertname="ContainerDown"']
    equal: [node]
"#;

#[test]
fn node_down_inhibits_its_containers_until_it_resolves() {
    let mut p = pipeline(INHIBIT);
    let silences = Silences::in_memory();
    let node = firing(&[("alertname", "NodeDown"), ("node", "n1")], T0);
    let c1 = [
        ("alertname", "ContainerDown"),
        ("node", "n1"),
        ("container", "web"),
    ];
    let c2 = [
        ("alertname", "ContainerDown"),
        ("node", "n2"),
        ("container", "web"),
    ];
    p.put_alerts([node.clone(), firing(&c1, T0), firing(&c2, T0)], T0);
    let sent = run(&mut p, &silences, T0 + M, true);
    assert_eq!(
        summary(&sent),
        [
            (30 * S, "ops".into(), "first notification".into(), 1),
            (30 * S, "ops".into(), "first notification".into(), 1),
        ]
    );
    assert_eq!(sent[0].group_key, r#"{}:{alertname="ContainerDown"}"#);
    assert_eq!(names(&sent[0], "node"), ["n2"]);
    assert_eq!(names(&sent[1], "alertname"), ["NodeDown"]);

    let view = p.alerts(T0 + M, &silences);
    let c1_view = view.iter().find(|v| v.alert.labels == labels(&c1)).unwrap();
    assert_eq!(c1_view.state, AlertState::Suppressed);
    assert_eq!(c1_view.inhibited_by, [node.fingerprint_hex()]);
    assert!(c1_view.silenced_by.is_empty() && c1_view.muted_by.is_empty());
    assert_eq!(c1_view.receivers, ["ops"]);
    let c2_view = view.iter().find(|v| v.alert.labels == labels(&c2)).unwrap();
    assert_eq!(c2_view.state, AlertState::Active);
    let json = serde_json::to_value(c1_view.to_gettable()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "labels": {"alertname": "ContainerDown", "container": "web", "node": "n1"},
            "annotations": {"summary": "something broke"},
            "startsAt": "2025-01-06T00:00:00.000Z",
            "endsAt": "2025-01-07T00:00:00.000Z",
            "updatedAt": "2025-01-06T00:00:00.000Z",
            "generatorURL": "http://lookout.example:9780/graph",
            "fingerprint": labels_fp(&c1),
            "receivers": [{"name": "ops"}],
            "status": {
                "state": "suppressed",
                "silencedBy": [],
                "inhibitedBy": [node.fingerprint_hex()],
                "mutedBy": [],
            },
        })
    );

    // The node comes back: its containers are no longer held back.
    p.put_alerts(
        [resolved(
            &[("alertname", "NodeDown"), ("node", "n1")],
            T0,
            T0 + 2 * M,
        )],
        T0 + 2 * M,
    );
    let sent = run(&mut p, &silences, T0 + 6 * M, true);
    assert_eq!(
        summary(&sent),
        [
            (5 * M + 30 * S, "ops".into(), "new alerts added".into(), 2),
            (
                5 * M + 30 * S,
                "ops".into(),
                "all alerts resolved".into(),
                1
            ),
        ]
    );
    assert_eq!(names(&sent[0], "node"), ["n1", "n2"]);
}

fn silence(name: &str, value: &str, start: i64, end: i64) -> PostableSilence {
    PostableSilence {
        id: None,
        matchers: vec![SilenceMatcher {
            name: name.into(),
            value: value.into(),
            is_regex: false,
            is_equal: true,
        }],
        starts_at: start,
        ends_at: end,
        created_by: "ops@example.com".into(),
        comment: "maintenance".into(),
    }
}

#[test]
fn silenced_alerts_wait_for_the_silence_to_end() {
    let mut p = pipeline(&BASIC.replace("[alertname]", "['...']"));
    let mut silences = Silences::in_memory();
    let s1 = silences
        .add(silence("node", "n1", T0, T0 + 10 * M), T0)
        .unwrap();
    let s2 = silences
        .add(silence("node", "n2", T0, T0 + 24 * H), T0)
        .unwrap();
    p.put_alerts(
        [
            firing(&[("alertname", "X"), ("node", "n1")], T0),
            firing(&[("alertname", "X"), ("node", "n2")], T0),
        ],
        T0,
    );
    assert!(run(&mut p, &silences, T0 + 9 * M, true).is_empty());
    let view = p.alerts(T0 + M, &silences);
    assert_eq!(view[0].silenced_by, [s1.as_str()]);
    assert_eq!(view[0].state, AlertState::Suppressed);
    assert_eq!(view[1].silenced_by, [s2.as_str()]);

    // s1 ends at 10m: the next flush (10m30s) sends n1, and only n1.
    let sent = run(&mut p, &silences, T0 + 12 * M, true);
    assert_eq!(
        summary(&sent),
        [(
            10 * M + 30 * S,
            "ops".into(),
            "first notification".into(),
            1
        )]
    );
    assert_eq!(names(&sent[0], "node"), ["n1"]);

    // Expiring s2 by hand lets n2 out at its group's next flush.
    silences.expire(&s2, T0 + 12 * M).unwrap();
    let sent = run(&mut p, &silences, T0 + 16 * M, true);
    assert_eq!(
        summary(&sent),
        [(
            15 * M + 30 * S,
            "ops".into(),
            "first notification".into(),
            1
        )]
    );
    assert_eq!(names(&sent[0], "node"), ["n2"]);
}

#[test]
fn silences_survive_a_restart_and_a_corrupt_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("silences.json");
    let id = {
        let mut s = Silences::open(&path).unwrap();
        s.add(silence("alertname", "X", T0, T0 + H), T0).unwrap()
    };
    let reopened = Silences::open(&path).unwrap();
    assert_eq!(reopened.list(T0)[0].id, id);
    let mut p = pipeline(BASIC);
    p.put_alerts([firing(&[("alertname", "X")], T0)], T0);
    assert!(run(&mut p, &reopened, T0 + 59 * M, true).is_empty());
    let sent = run(&mut p, &reopened, T0 + 61 * M, true);
    assert_eq!(
        summary(&sent),
        [(
            60 * M + 30 * S,
            "ops".into(),
            "first notification".into(),
            1
        )]
    );

    std::fs::write(&path, "not json").unwrap();
    match Silences::open(&path) {
        Err(SilenceError::Corrupt { path: p, message }) => {
            assert_eq!(p, path);
            assert!(message.starts_with("expected ident"), "{message}");
        }
        other => panic!("expected a corrupt-file error, got {other:?}"),
    }
}

const MUTE: &str = r#"
route:
  receiver: ops
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  routes:
    - matchers: ['team="office"']
      mute_time_intervals: [office-hours]
    - matchers: ['team="nightly"']
      mute_time_intervals: [nightly-backup]
    - matchers: ['team="daytime"']
      active_time_intervals: [office-hours]
receivers: [{name: ops}]
time_intervals:
  - name: office-hours
    time_intervals:
      - times: [{start_time: "09:00", end_time: "17:00"}]
        weekdays: ['monday:friday']
        location: Asia/Shanghai
  - name: nightly-backup
    cron: [{schedule: "0 2 * * *", duration: 2h}]
"#;

#[test]
fn muted_during_office_hours_in_shanghai() {
    let mut p = pipeline(MUTE);
    let silences = Silences::in_memory();
    // Monday 16:40 in Shanghai.
    let start = at("2025-01-06T08:40:00Z");
    p.put_alerts(
        [firing(&[("alertname", "Slow"), ("team", "office")], start)],
        start,
    );
    let view = p.alerts(start + M, &silences);
    assert_eq!(view[0].muted_by, ["office-hours"]);
    assert_eq!(view[0].state, AlertState::Suppressed);
    // Flushes at 16:40:30, 16:45:30, 16:50:30 and 16:55:30 are muted;
    // 17:00:30 is out of the window.
    let sent = run(&mut p, &silences, at("2025-01-06T09:30:00Z"), true);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].now_ms, at("2025-01-06T09:00:30Z"));
    assert_eq!(sent[0].reason, "first notification");
    assert_eq!(
        sent[0].group_key,
        r#"{}/{team="office"}:{alertname="Slow"}"#
    );
    assert!(
        p.alerts(at("2025-01-06T09:01:00Z"), &silences)[0]
            .muted_by
            .is_empty()
    );
}

#[test]
fn muted_during_a_nightly_cron_window() {
    let mut p = pipeline(MUTE);
    let silences = Silences::in_memory();
    let start = at("2025-01-06T02:10:00Z");
    let mut alert = firing(&[("alertname", "BackupLoad"), ("team", "nightly")], start);
    alert.ends_at_ms = Some(start + 48 * H);
    p.put_alerts([alert], start);
    assert_eq!(p.alerts(start, &silences)[0].muted_by, ["nightly-backup"]);
    // The window is 02:00-04:00 UTC and flushes run at 02:10:30 + k*5m:
    // 03:55:30 is the last one inside, 04:00:30 the first one out.
    let sent = run(&mut p, &silences, at("2025-01-06T04:00:29Z"), true);
    assert!(sent.is_empty());
    let sent = run(&mut p, &silences, at("2025-01-07T06:00:00Z"), true);
    let times: Vec<String> = sent.iter().map(|n| rfc3339::format(n.now_ms)).collect();
    // Then the unchanged group repeats every 4h from there.
    assert_eq!(
        times,
        [
            "2025-01-06T04:00:30.000Z",
            "2025-01-06T08:00:30.000Z",
            "2025-01-06T12:00:30.000Z",
            "2025-01-06T16:00:30.000Z",
            "2025-01-06T20:00:30.000Z",
            "2025-01-07T00:00:30.000Z",
            "2025-01-07T04:00:30.000Z",
        ]
    );
    assert_eq!(sent[0].reason, "first notification");
}

#[test]
fn active_only_during_office_hours() {
    let mut p = pipeline(MUTE);
    let silences = Silences::in_memory();
    // Sunday 18:00 in Shanghai: outside the active window until Monday 09:00.
    let start = at("2025-01-05T10:00:00Z");
    p.put_alerts(
        [firing(
            &[("alertname", "Report"), ("team", "daytime")],
            start,
        )],
        start,
    );
    assert_eq!(p.alerts(start, &silences)[0].muted_by, ["office-hours"]);
    let sent = run(&mut p, &silences, at("2025-01-06T01:10:00Z"), true);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].now_ms, at("2025-01-06T01:00:30Z"));
}

#[test]
fn continue_sends_to_two_receivers() {
    let mut p = pipeline(
        r#"
route:
  receiver: default
  group_by: [alertname]
  group_wait: 10s
  routes:
    - matchers: ['severity="critical"']
      receiver: pager
      continue: true
    - matchers: ['team="ops"', 'severity!~"info|none"']
      receiver: chat
receivers: [{name: default}, {name: pager}, {name: chat}]
"#,
    );
    let silences = Silences::in_memory();
    let disk = [
        ("alertname", "DiskFull"),
        ("severity", "critical"),
        ("team", "ops"),
    ];
    // No severity label counts as empty: `!~"info|none"` matches.
    let cert = [("alertname", "CertExpiry"), ("team", "ops")];
    let info = [("alertname", "Info"), ("severity", "info"), ("team", "ops")];
    assert_eq!(p.receivers_for(&labels(&disk)), ["pager", "chat"]);
    assert_eq!(p.receivers_for(&labels(&cert)), ["chat"]);
    assert_eq!(p.receivers_for(&labels(&info)), ["default"]);
    p.put_alerts(
        [firing(&disk, T0), firing(&cert, T0), firing(&info, T0)],
        T0,
    );
    let sent = p.tick(T0 + 10 * S, &silences);
    let got: Vec<(&str, &str)> = sent
        .iter()
        .map(|n| (n.receiver.as_str(), n.group_key.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("default", r#"{}:{alertname="Info"}"#),
            (
                "pager",
                r#"{}/{severity="critical"}:{alertname="DiskFull"}"#
            ),
            (
                "chat",
                r#"{}/{severity!~"info|none",team="ops"}:{alertname="CertExpiry"}"#
            ),
            (
                "chat",
                r#"{}/{severity!~"info|none",team="ops"}:{alertname="DiskFull"}"#
            ),
        ]
    );
    let groups = p.groups();
    assert_eq!(groups.len(), 4);
    assert_eq!(
        groups[2].route_id,
        r#"{}/{severity!~"info|none",team="ops"}/1"#
    );
}

#[test]
fn failed_delivery_is_retried_at_the_next_group_interval() {
    let mut p = pipeline(BASIC);
    let silences = Silences::in_memory();
    p.put_alerts([firing(&[("alertname", "X")], T0)], T0);
    let sent = p.tick(T0 + 30 * S, &silences);
    assert_eq!(sent.len(), 1);
    assert!(p.delivered(&sent[0], false, T0 + 40 * S));
    assert_eq!(p.next_deadline(), Some(T0 + 5 * M + 30 * S));
    let retry = p.tick(T0 + 5 * M + 30 * S, &silences);
    assert_eq!(
        summary(&retry),
        [(5 * M + 30 * S, "ops".into(), "first notification".into(), 1)]
    );
    assert_eq!(retry[0].alerts, sent[0].alerts);

    // While a delivery is in flight the group waits for its result.
    assert_eq!(p.next_deadline(), None);
    assert!(p.tick(T0 + 10 * M + 30 * S, &silences).is_empty());
    assert!(p.delivered(&retry[0], true, T0 + 11 * M));
    assert_eq!(
        p.next_deadline(),
        Some(T0 + 10 * M + 30 * S),
        "overdue: tick at once"
    );
    assert!(
        p.tick(T0 + 11 * M, &silences).is_empty(),
        "delivered: nothing new"
    );
    assert_eq!(p.next_deadline(), Some(T0 + 16 * M));
}

#[test]
fn config_errors_come_back_all_at_once() {
    let cfg: NotifyConfig = serde_yaml_ng::from_str(
        "route: {receiver: ops, routes: [{receiver: nope}, {matchers: ['a=~(']}]}\nreceivers: [{name: ops}]",
    )
    .unwrap();
    let err = match Pipeline::new(&cfg, URL.into()) {
        Ok(_) => panic!("config should be refused"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.starts_with("2 problems in the notify config\n"),
        "{err}"
    );
    assert!(
        err.contains(r#"notify.route.routes[0].receiver: no receiver named "nope""#),
        "{err}"
    );
    assert!(
        err.contains("notify.route.routes[1].matchers[0]: bad matcher"),
        "{err}"
    );

    // An empty config is valid and sends nothing.
    let mut p = Pipeline::new(&NotifyConfig::default(), URL.into()).unwrap();
    p.put_alerts([firing(&[("alertname", "X")], T0)], T0);
    assert_eq!(p.next_deadline(), None);
    assert_eq!(p.alerts(T0, &Silences::in_memory()).len(), 1);
}
