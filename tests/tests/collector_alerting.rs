//! Alerting end to end, against the real binary: rule files evaluated on
//! pushed series, notifications to a webhook (grouped, resolved, silenced,
//! inhibited), alert state across restarts, rule reloads that fail, and a
//! real Alertmanager receiving what Lookout sends.
//!
//! Every rule group evaluates each second and every route waits one second
//! (`group_wait`, `group_interval`), so a notification that is due arrives
//! within a few seconds; "nothing more arrives" is checked over a fixed
//! window well past that.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use lookout_tests::{
    Alertmanager, Collector, WebhookMessage, WebhookReceiver, http_post, lookout_cli, now_ms,
    rfc3339_ms, wait_for,
};
use serde_json::{Value, json};

/// Longer than any notification that is due takes: an evaluation (1s),
/// group_wait (1s) and a group_interval (1s), with 2s to spare.
const QUIET: Duration = Duration::from_secs(5);
/// Deadline for something that is due to happen.
const DUE: Duration = Duration::from_secs(15);

/// Pushes gauges stamped half a second ahead: a rule evaluation sees all
/// of one push or none of it, even one that runs while the push is being
/// stored.
fn push(c: &Collector, series: &[(&[(&str, &str)], f64)]) {
    c.push_at(now_ms() + 500, series);
}

/// A collector config: rules from `rule_files`, every alert to `hook`.
fn config(rule_files: &[&str], hook: &WebhookReceiver, group_by: &str, extra: &str) -> String {
    format!(
        "rules:\n  files: [{}]\n  evaluation_interval: 1s\n  resend_delay: 2s\n\
         notify:\n  route:\n    receiver: hook\n    group_by: [{group_by}]\n    \
         group_wait: 1s\n    group_interval: 1s\n    repeat_interval: 1h\n  \
         receivers:\n    - name: hook\n      webhook_configs:\n        - url: {}\n{extra}",
        rule_files.join(", "),
        hook.url()
    )
}

fn context(c: &Collector) -> impl Fn() -> String + '_ {
    move || format!("collector log:\n{}", c.log())
}

/// Waits `QUIET` and asserts that exactly `n` notifications arrived.
fn assert_quiet(hook: &WebhookReceiver, n: usize, c: &Collector, what: &str) {
    std::thread::sleep(QUIET);
    let got = hook.messages();
    assert_eq!(
        got.len(),
        n,
        "{what}: expected exactly {n} notifications, got:\n{:#?}\ncollector log:\n{}",
        got.iter().map(|m| &m.body).collect::<Vec<_>>(),
        c.log()
    );
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// The alerts of `GET /api/v1/alerts`.
fn rule_alerts(c: &Collector) -> Vec<Value> {
    c.api("/api/v1/alerts")["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The alerts the notification pipeline holds (`GET /api/v2/alerts`).
fn pipeline_alerts(c: &Collector) -> Vec<Value> {
    let r = c.get("/api/v2/alerts");
    assert_eq!(r.status, 200, "{}", r.body);
    serde_json::from_str::<Value>(&r.body)
        .expect("json")
        .as_array()
        .cloned()
        .unwrap_or_default()
}

const TEMPERATURE_RULES: &str = r#"groups:
  - name: temperature
    interval: 1s
    rules:
      - alert: HighTemperature
        expr: temp_celsius > 50
        labels:
          severity: warning
        annotations:
          summary: "{{ $labels.instance }} runs at {{ $value }} degrees"
          runbook: "https://runbooks.example/temperature"
"#;

fn sensor(instance: &str) -> [(&'static str, &str); 3] {
    [
        ("__name__", "temp_celsius"),
        ("instance", instance),
        ("job", "sensors"),
    ]
}

#[test]
fn alerts_reach_a_webhook_grouped_and_resolve() {
    let hook = WebhookReceiver::start();
    let c = Collector::start_with_files(
        &config(&["alerts.yaml"], &hook, "alertname", ""),
        &[("alerts.yaml", TEMPERATURE_RULES)],
    );
    let (n1, n2, n3) = (sensor("n1"), sensor("n2"), sensor("n3"));
    let pushed = Instant::now();
    push(&c, &[(&n1, 70.0), (&n2, 80.0), (&n3, 90.0)]);

    // One notification for the three alerts, in Alertmanager's v4 shape,
    // after group_wait.
    let got = hook.wait_for_count(1, DUE, context(&c));
    let first = got[0].clone();
    assert!(
        first.at.duration_since(pushed) >= Duration::from_millis(1400),
        "notified {:?} after the push: before the samples (+0.5s) plus group_wait (1s)",
        first.at.duration_since(pushed)
    );
    let b = &first.body;
    assert_eq!(b["version"], "4", "{b:#}");
    assert_eq!(b["status"], "firing", "{b:#}");
    assert_eq!(b["receiver"], "hook");
    assert_eq!(b["groupKey"], r#"{}:{alertname="HighTemperature"}"#);
    assert_eq!(b["truncatedAlerts"], 0);
    assert_eq!(b["groupLabels"], json!({"alertname": "HighTemperature"}));
    assert_eq!(
        b["commonLabels"],
        json!({"alertname": "HighTemperature", "job": "sensors", "severity": "warning"})
    );
    assert_eq!(
        b["commonAnnotations"],
        json!({"runbook": "https://runbooks.example/temperature"})
    );
    assert_eq!(str_of(&b["externalURL"]), c.url());
    assert_eq!(first.alert_labels("instance"), ["n1", "n2", "n3"]);
    let mut fingerprints = BTreeSet::new();
    for (a, (instance, value)) in first
        .alerts()
        .iter()
        .zip([("n1", 70), ("n2", 80), ("n3", 90)])
    {
        assert_eq!(a["status"], "firing", "{a:#}");
        assert_eq!(
            a["labels"],
            json!({"alertname": "HighTemperature", "instance": instance, "job": "sensors", "severity": "warning"})
        );
        assert_eq!(
            a["annotations"],
            json!({
                "summary": format!("{instance} runs at {value} degrees"),
                "runbook": "https://runbooks.example/temperature",
            })
        );
        assert!(rfc3339_ms(str_of(&a["startsAt"])).is_some(), "{a:#}");
        assert_eq!(a["endsAt"], "0001-01-01T00:00:00Z", "{a:#}");
        let url = str_of(&a["generatorURL"]);
        assert!(
            url.starts_with(&format!("{}/graph?g0.expr=temp_celsius", c.url())),
            "{url}"
        );
        let fp = str_of(&a["fingerprint"]);
        assert!(
            fp.len() == 16 && fp.chars().all(|ch| ch.is_ascii_hexdigit()),
            "{fp}"
        );
        fingerprints.insert(fp.to_string());
    }
    assert_eq!(fingerprints.len(), 3, "distinct fingerprints");

    // The rule's view: /api/v1/alerts, /api/v1/rules, ALERTS and
    // ALERTS_FOR_STATE all say the same three alerts fire.
    let alerts = rule_alerts(&c);
    assert_eq!(alerts.len(), 3, "{alerts:#?}");
    for a in &alerts {
        assert_eq!(a["state"], "firing", "{a:#}");
        assert_eq!(a["labels"]["alertname"], "HighTemperature");
        let instance = str_of(&a["labels"]["instance"]);
        let sent = first
            .alerts()
            .into_iter()
            .find(|s| s["labels"]["instance"] == instance)
            .unwrap_or_else(|| panic!("{instance} not notified"));
        // No `for`: the alert fired at the evaluation that found it.
        assert_eq!(
            rfc3339_ms(str_of(&a["activeAt"])),
            rfc3339_ms(str_of(&sent["startsAt"])),
            "activeAt of {a:#} vs startsAt of {sent:#}"
        );
        assert_eq!(a["annotations"], sent["annotations"]);
        // As Prometheus writes alert values: Go's shortest `%e` form.
        let want_value = match instance {
            "n1" => "7e+01",
            "n2" => "8e+01",
            _ => "9e+01",
        };
        assert_eq!(a["value"], want_value);
    }
    let groups = c.api("/api/v1/rules")["groups"].clone();
    assert_eq!(groups.as_array().map(Vec::len), Some(1), "{groups:#}");
    let g = &groups[0];
    assert_eq!(g["name"], "temperature");
    assert!(str_of(&g["file"]).ends_with("/alerts.yaml"), "{g:#}");
    assert_eq!(g["interval"], 1.0);
    assert!(rfc3339_ms(str_of(&g["lastEvaluation"])).is_some(), "{g:#}");
    let rules = g["rules"].as_array().cloned().unwrap_or_default();
    assert_eq!(rules.len(), 1, "{g:#}");
    let r = &rules[0];
    assert_eq!(r["type"], "alerting");
    assert_eq!(r["name"], "HighTemperature");
    assert_eq!(r["query"], "temp_celsius > 50");
    assert_eq!(r["duration"], 0.0);
    assert_eq!(r["labels"], json!({"severity": "warning"}));
    assert_eq!(
        r["annotations"]["summary"],
        "{{ $labels.instance }} runs at {{ $value }} degrees"
    );
    assert_eq!(r["state"], "firing");
    assert_eq!(r["health"], "ok");
    assert!(str_of(&r["lastError"]).is_empty(), "{r:#}");
    assert_eq!(r["alerts"].as_array().map(Vec::len), Some(3), "{r:#}");

    let series = c.query(r#"ALERTS{alertstate="firing"}"#);
    let mut instances: Vec<&str> = series
        .iter()
        .map(|s| str_of(&s["metric"]["instance"]))
        .collect();
    instances.sort();
    assert_eq!(instances, ["n1", "n2", "n3"], "{series:#?}");
    for s in &series {
        assert_eq!(s["metric"]["__name__"], "ALERTS");
        assert_eq!(s["metric"]["alertname"], "HighTemperature");
        assert_eq!(s["metric"]["severity"], "warning");
        assert_eq!(s["metric"]["job"], "sensors");
        assert_eq!(s["value"][1], "1");
    }
    let for_state = c.query("ALERTS_FOR_STATE");
    assert_eq!(for_state.len(), 3, "{for_state:#?}");
    for s in &for_state {
        assert!(s["metric"].get("alertstate").is_none(), "{s}");
        assert_eq!(s["metric"]["alertname"], "HighTemperature");
        let active = alerts
            .iter()
            .find(|a| a["labels"]["instance"] == s["metric"]["instance"])
            .and_then(|a| rfc3339_ms(str_of(&a["activeAt"])))
            .expect("activeAt of the alert");
        assert_eq!(
            str_of(&s["value"][1]),
            (active / 1000).to_string(),
            "ALERTS_FOR_STATE holds activeAt in seconds: {s}"
        );
    }

    // Still firing, re-sent every 2s to the pipeline: no second notification.
    assert_quiet(&hook, 1, &c, "while the alerts keep firing");

    // Cleared: one resolved notification for the three.
    push(&c, &[(&n1, 20.0), (&n2, 20.0), (&n3, 20.0)]);
    let got = hook.wait_for_count(2, DUE, context(&c));
    let resolved = &got[1];
    let b = &resolved.body;
    assert_eq!(b["status"], "resolved", "{b:#}");
    assert_eq!(b["groupKey"], first.body["groupKey"]);
    assert_eq!(resolved.alert_labels("instance"), ["n1", "n2", "n3"]);
    for (a, sent) in resolved.alerts().iter().zip(first.alerts()) {
        assert_eq!(a["status"], "resolved", "{a:#}");
        assert_eq!(a["fingerprint"], sent["fingerprint"]);
        assert_eq!(a["startsAt"], sent["startsAt"]);
        let (start, end) = (
            rfc3339_ms(str_of(&a["startsAt"])).expect("startsAt"),
            rfc3339_ms(str_of(&a["endsAt"])).expect("endsAt"),
        );
        assert!(end > start, "resolved after it started: {a:#}");
    }
    assert!(
        wait_for(DUE, || c
            .query(r#"ALERTS{alertname="HighTemperature"}"#)
            .is_empty()
            .then_some(()))
        .is_some(),
        "ALERTS still present after the alerts resolved"
    );
    assert!(rule_alerts(&c).is_empty());
    // Resolved alerts are re-sent for a while; they announce nothing new.
    assert_quiet(&hook, 2, &c, "after the resolved notification");
}

const DISK_RULES: &str = r#"groups:
  - name: disk
    interval: 1s
    rules:
      - alert: DiskAlmostFull
        expr: disk_free_ratio < 0.1
        labels:
          severity: critical
        annotations:
          summary: "{{ $labels.instance }} has {{ $value }} free"
"#;

/// Waits until the state files say the alert fires and was notified, so a
/// SIGKILL right after loses nothing that had happened.
fn wait_state_saved(c: &Collector, fingerprint: &str) {
    let state = c.storage().join("rules-state.json");
    let nflog = c.storage().join("notification-log.json");
    let saved = wait_for(DUE, || {
        let s: Value = serde_json::from_slice(&std::fs::read(&state).ok()?).ok()?;
        let firing = s.to_string().contains(r#""state":"firing""#);
        let log: Value = serde_json::from_slice(&std::fs::read(&nflog).ok()?).ok()?;
        let notified = log.as_array()?.iter().any(|r| {
            r["firing"]
                .as_array()
                .is_some_and(|f| f.iter().any(|x| x == fingerprint))
        });
        (firing && notified).then_some(())
    });
    assert!(
        saved.is_some(),
        "state files never recorded the firing, notified alert:\n{}\n{}\nlog:\n{}",
        std::fs::read_to_string(&state).unwrap_or_default(),
        std::fs::read_to_string(&nflog).unwrap_or_default(),
        c.log()
    );
}

/// After a restart: the alert is firing again with its old activeAt, has
/// reached the notification pipeline, and no notification follows.
fn assert_restored_quietly(c: &Collector, hook: &WebhookReceiver, active_at: &str, how: &str) {
    let alerts = rule_alerts(c);
    assert_eq!(alerts.len(), 1, "{how}: {alerts:#?}");
    assert_eq!(alerts[0]["state"], "firing", "{how}");
    assert_eq!(alerts[0]["activeAt"], active_at, "{how}: activeAt kept");
    let in_pipeline = wait_for(DUE, || {
        pipeline_alerts(c)
            .iter()
            .any(|a| {
                a["labels"]["alertname"] == "DiskAlmostFull" && a["status"]["state"] == "active"
            })
            .then_some(())
    });
    assert!(
        in_pipeline.is_some(),
        "{how}: the restored alert never reached the notification pipeline; log:\n{}",
        c.log()
    );
    assert_quiet(hook, 1, c, how);
}

#[test]
fn a_firing_alert_survives_a_restart_without_renotifying() {
    let hook = WebhookReceiver::start();
    let mut c = Collector::start_with_files(
        &config(&["disk.yaml"], &hook, "alertname, instance", ""),
        &[("disk.yaml", DISK_RULES)],
    );
    let disk: [(&str, &str); 2] = [("__name__", "disk_free_ratio"), ("instance", "db1")];
    push(&c, &[(&disk, 0.05)]);
    let got = hook.wait_for_count(1, DUE, context(&c));
    let first = got[0].clone();
    assert_eq!(first.status(), "firing");
    assert_eq!(first.alerts().len(), 1, "{:#}", first.body);
    let fingerprint = str_of(&first.alerts()[0]["fingerprint"]).to_string();
    let alerts = rule_alerts(&c);
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let active_at = str_of(&alerts[0]["activeAt"]).to_string();
    wait_state_saved(&c, &fingerprint);

    // A clean stop and start.
    c.stop();
    c.restart();
    push(&c, &[(&disk, 0.05)]);
    assert_restored_quietly(&c, &hook, &active_at, "after SIGTERM and restart");

    // A crash: nothing gets saved on the way out.
    wait_state_saved(&c, &fingerprint);
    c.kill9();
    c.restart();
    push(&c, &[(&disk, 0.05)]);
    assert_restored_quietly(&c, &hook, &active_at, "after SIGKILL and restart");

    // Cleared after the restarts: the resolution is not lost.
    push(&c, &[(&disk, 0.5)]);
    let got = hook.wait_for_count(2, DUE, context(&c));
    let resolved = &got[1];
    assert_eq!(resolved.status(), "resolved", "{:#}", resolved.body);
    assert_eq!(resolved.alerts().len(), 1);
    let a = &resolved.alerts()[0];
    assert_eq!(str_of(&a["fingerprint"]), fingerprint);
    assert_eq!(
        a["startsAt"],
        first.alerts()[0]["startsAt"],
        "startsAt kept"
    );
    assert_eq!(resolved.body["groupKey"], first.body["groupKey"]);
    assert!(rule_alerts(&c).is_empty());
    assert_quiet(&hook, 2, &c, "after the resolved notification");
}

const INFRA_RULES: &str = r#"groups:
  - name: infra
    interval: 1s
    rules:
      - alert: NodeDown
        expr: node_up == 0
        labels:
          severity: critical
      - alert: ContainerDown
        expr: container_up == 0
        labels:
          severity: warning
      - alert: DiskFull
        expr: disk_free_ratio < 0.1
        labels:
          severity: warning
"#;

const INHIBIT: &str = r#"  inhibit_rules:
    - source_matchers: ['alertname="NodeDown"']
      target_matchers: ['alertname="ContainerDown"']
      equal: [instance]
"#;

fn cli_ok(args: &[&str]) -> String {
    let out = lookout_cli(args);
    assert!(
        out.status.success(),
        "lookout {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The notification of alert `name`; panics unless there is exactly one.
fn only_one<'a>(messages: &'a [WebhookMessage], name: &str) -> &'a WebhookMessage {
    let of: Vec<&WebhookMessage> = messages
        .iter()
        .filter(|m| m.body["groupLabels"]["alertname"] == name)
        .collect();
    assert_eq!(
        of.len(),
        1,
        "notifications of {name}: {:#?}",
        messages.iter().map(|m| &m.body).collect::<Vec<_>>()
    );
    of[0]
}

#[test]
fn silences_and_inhibition_hold_notifications_back() {
    let hook = WebhookReceiver::start();
    let mut c = Collector::start_with_files(
        &config(&["infra.yaml"], &hook, "alertname", INHIBIT),
        &[("infra.yaml", INFRA_RULES)],
    );
    let url = c.url();

    // A silence for DiskFull, made and listed with the CLI.
    let id = cli_ok(&[
        "silence",
        "add",
        "alertname=DiskFull",
        "--duration",
        "1h",
        "--comment",
        "disk swap tonight",
        "--author",
        "e2e",
        "--url",
        &url,
    ])
    .trim()
    .to_string();
    assert!(
        !id.is_empty() && !id.contains(char::is_whitespace),
        "{id:?}"
    );
    let list = cli_ok(&["silence", "list", "--url", &url]);
    let line = list
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("silence {id} not listed:\n{list}"));
    assert!(line.contains(" active "), "{line}");
    assert!(line.contains(r#"alertname="DiskFull""#), "{line}");
    assert!(
        line.contains("e2e") && line.contains("# disk swap tonight"),
        "{line}"
    );

    // Node n1 is down with its container; n2's container is down alone;
    // the disk of n1 is full.
    push(
        &c,
        &[
            (&[("__name__", "node_up"), ("instance", "n1")], 0.0),
            (&[("__name__", "node_up"), ("instance", "n2")], 1.0),
            (&[("__name__", "container_up"), ("instance", "n1")], 0.0),
            (&[("__name__", "container_up"), ("instance", "n2")], 0.0),
            (&[("__name__", "disk_free_ratio"), ("instance", "n1")], 0.01),
        ],
    );
    hook.wait_for_count(2, DUE, context(&c));
    assert_quiet(&hook, 2, &c, "with DiskFull silenced");
    let got = hook.messages();
    let node = only_one(&got, "NodeDown");
    assert_eq!(node.status(), "firing");
    assert_eq!(node.alert_labels("instance"), ["n1"]);
    let container = only_one(&got, "ContainerDown");
    assert_eq!(container.status(), "firing");
    assert_eq!(
        container.alert_labels("instance"),
        ["n2"],
        "ContainerDown on n1 is inhibited by NodeDown on n1"
    );
    assert!(
        got.iter()
            .all(|m| m.body["groupLabels"]["alertname"] != "DiskFull")
    );

    // The pipeline says why: silenced by the silence, inhibited by NodeDown.
    let alerts = pipeline_alerts(&c);
    let find = |name: &str, instance: &str| -> Value {
        alerts
            .iter()
            .find(|a| a["labels"]["alertname"] == name && a["labels"]["instance"] == instance)
            .cloned()
            .unwrap_or_else(|| panic!("{name}/{instance} not in /api/v2/alerts: {alerts:#?}"))
    };
    let disk = find("DiskFull", "n1");
    assert_eq!(disk["status"]["state"], "suppressed");
    assert_eq!(disk["status"]["silencedBy"], json!([id]));
    let node_fp = find("NodeDown", "n1")["fingerprint"].clone();
    assert_eq!(node.body["alerts"][0]["fingerprint"], node_fp);
    let inhibited = find("ContainerDown", "n1");
    assert_eq!(inhibited["status"]["state"], "suppressed");
    assert_eq!(inhibited["status"]["inhibitedBy"], json!([node_fp]));
    assert_eq!(find("ContainerDown", "n2")["status"]["state"], "active");

    // The silence outlives a restart, and nothing is notified again.
    c.stop();
    c.restart();
    let held = wait_for(DUE, || {
        pipeline_alerts(&c)
            .iter()
            .any(|a| {
                a["labels"]["alertname"] == "DiskFull" && a["status"]["silencedBy"] == json!([id])
            })
            .then_some(())
    });
    assert!(
        held.is_some(),
        "DiskFull is not silenced after the restart: {:#?}",
        pipeline_alerts(&c)
    );
    assert_quiet(&hook, 2, &c, "after a restart with DiskFull silenced");
    let list = cli_ok(&["silence", "list", "--url", &url]);
    assert!(list.contains(&id), "silence lost in the restart:\n{list}");

    // Expired with the CLI: DiskFull is notified at the group's next flush.
    let expired_at = Instant::now();
    let out = cli_ok(&["silence", "expire", &id, "--url", &url]);
    assert_eq!(out.trim(), format!("expired {id}"));
    let got = hook.wait_for_count(3, DUE, context(&c));
    let disk = only_one(&got, "DiskFull");
    assert_eq!(disk.status(), "firing");
    assert_eq!(disk.alert_labels("instance"), ["n1"]);
    assert!(disk.at > expired_at);
    let list = cli_ok(&["silence", "list", "--url", &url]);
    assert!(!list.contains(&id), "expired silence still listed:\n{list}");
    let all = cli_ok(&["silence", "list", "--all", "--url", &url]);
    let line = all
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("silence {id} not in --all:\n{all}"));
    assert!(line.contains(" expired "), "{line}");
    assert_quiet(&hook, 3, &c, "after the silence expired");
}

const GOOD_RULES: &str = r#"groups:
  - name: g
    interval: 1s
    rules:
      - record: job:temp_celsius:max
        expr: max by (job) (temp_celsius)
      - alert: Hot
        expr: job:temp_celsius:max > 50
"#;

/// The rule `r` on line 8 does not parse.
const BROKEN_RULES: &str = r#"groups:
  - name: g
    interval: 1s
    rules:
      - record: job:temp_celsius:max
        expr: max by (job) (temp_celsius)
      - alert: Hot
      - alert: r
        expr: sum(rate(temp_celsius[1m]) by
"#;

const FIXED_RULES: &str = r#"groups:
  - name: g
    interval: 1s
    rules:
      - record: job:temp_celsius:max
        expr: max by (job) (temp_celsius)
      - alert: VeryHot
        expr: job:temp_celsius:max > 80
"#;

fn rule_names(c: &Collector) -> Vec<String> {
    c.api("/api/v1/rules")["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .map(|r| str_of(&r["name"]).to_string())
        .collect()
}

fn last_evaluation(c: &Collector) -> i64 {
    let groups = c.api("/api/v1/rules")["groups"].clone();
    rfc3339_ms(str_of(&groups[0]["lastEvaluation"])).unwrap_or(0)
}

#[test]
fn a_bad_rule_reload_keeps_the_last_good_rules() {
    let hook = WebhookReceiver::start();
    let c = Collector::start_with_files(
        &config(&["rules.yaml"], &hook, "alertname", ""),
        &[("rules.yaml", GOOD_RULES)],
    );
    let file = c.file("rules.yaml");
    let file_name = file.display().to_string();
    push(&c, &[(&sensor("n1"), 60.0)]);
    let recorded = wait_for(DUE, || {
        let r = c.query("job:temp_celsius:max");
        (r.len() == 1).then_some(r)
    })
    .unwrap_or_else(|| panic!("the recording rule never wrote; log:\n{}", c.log()));
    assert_eq!(recorded[0]["value"][1], "60");
    hook.wait_for_count(1, DUE, context(&c));
    assert_eq!(rule_names(&c), ["job:temp_celsius:max", "Hot"]);

    // Broken on disk: the check names file, line, group and rule.
    std::fs::write(&file, BROKEN_RULES).expect("write broken rules");
    let out = lookout_cli(&["rules", "check", &file_name]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "check passed a broken file: {stdout}"
    );
    let want = format!(r#"{file_name}:8: group "g", rule "r": could not parse expression"#);
    assert!(stdout.contains(&want), "want {want:?} in:\n{stdout}");
    assert!(
        stdout.contains(&format!(
            r#"{file_name}:7: group "g", rule "Hot": field 'expr' must be set"#
        )),
        "{stdout}"
    );

    // A reload over HTTP refuses it and says why; the old rules run on.
    let r = http_post(c.addr, "/-/reload", &[], b"").expect("POST /-/reload");
    assert_eq!(r.status, 400, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).expect("json error");
    assert_eq!(v["status"], "error");
    let error = str_of(&v["error"]);
    assert!(error.contains(&want), "want {want:?} in {error:?}");
    assert_eq!(rule_names(&c), ["job:temp_celsius:max", "Hot"]);
    let before = last_evaluation(&c);
    let advanced = wait_for(DUE, || (last_evaluation(&c) >= before + 2000).then_some(()));
    assert!(
        advanced.is_some(),
        "the old rules stopped evaluating; log:\n{}",
        c.log()
    );
    push(&c, &[(&sensor("n1"), 65.0)]);
    let recorded = wait_for(DUE, || {
        let r = c.query("job:temp_celsius:max");
        (r.first().map(|s| s["value"][1].clone()) == Some(json!("65"))).then_some(())
    });
    assert!(recorded.is_some(), "the old recording rule stopped writing");
    assert_eq!(rule_alerts(&c).len(), 1, "Hot still fires");
    let log = c.log();
    assert!(
        log.contains("rule reload failed") && log.contains(&want),
        "the log does not tell of the failed reload:\n{log}"
    );

    // Fixed and reloaded by SIGHUP: the new rules take over.
    std::fs::write(&file, FIXED_RULES).expect("write fixed rules");
    let out = lookout_cli(&["rules", "check", &file_name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    c.signal(libc::SIGHUP);
    let reloaded = wait_for(DUE, || {
        (rule_names(&c) == ["job:temp_celsius:max", "VeryHot"]).then_some(())
    });
    assert!(
        reloaded.is_some(),
        "SIGHUP did not load the fixed rules: {:?}; log:\n{}",
        rule_names(&c),
        c.log()
    );
    let r = http_post(c.addr, "/-/reload", &[], b"").expect("POST /-/reload");
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "reloaded: 1 rule groups\n")
    );
    // Hot is gone (65 is not above 80), and nothing fires.
    let quiet = wait_for(DUE, || rule_alerts(&c).is_empty().then_some(()));
    assert!(quiet.is_some(), "{:#?}", rule_alerts(&c));
    let after = last_evaluation(&c);
    assert!(
        wait_for(DUE, || (last_evaluation(&c) > after).then_some(())).is_some(),
        "the new rules do not evaluate"
    );
}

/// The same routing for Alertmanager and Lookout: warnings to `hook`,
/// the rest nowhere.
fn routes(hook: &WebhookReceiver) -> String {
    format!(
        "  route:\n    receiver: 'null'\n    group_by: [alertname]\n    group_wait: 1s\n    \
         group_interval: 1s\n    repeat_interval: 1h\n    routes:\n      \
         - matchers: ['severity=\"warning\"']\n        receiver: hook\n  \
         receivers:\n    - name: 'null'\n    - name: hook\n      webhook_configs:\n        \
         - url: {}\n",
        hook.url()
    )
}

/// A webhook notification without what differs by sender on purpose (the
/// sender's own URL, and the reason, which Alertmanager 0.25 does not give).
fn comparable(m: &WebhookMessage) -> Value {
    let mut b = m.body.clone();
    if let Some(o) = b.as_object_mut() {
        o.remove("externalURL");
        o.remove("notification_reason");
    }
    b
}

#[test]
fn real_alertmanager_receives_the_alerts() {
    let am_hook = WebhookReceiver::start();
    let yaml = routes(&am_hook).replace("\n  ", "\n");
    let Some(am) = Alertmanager::start(&format!(
        "global:\n  resolve_timeout: 5s\n{}",
        yaml.trim_start()
    )) else {
        return;
    };
    let hook = WebhookReceiver::start();
    let c = Collector::start_with_files(
        &format!(
            "rules:\n  files: [alerts.yaml]\n  evaluation_interval: 1s\n  resend_delay: 2s\n\
             alerting:\n  alertmanagers:\n    - url: {}\nnotify:\n{}",
            am.url(),
            routes(&hook)
        ),
        &[("alerts.yaml", TEMPERATURE_RULES)],
    );
    let context = || {
        format!(
            "alertmanager log:\n{}\ncollector log:\n{}",
            am.log(),
            c.log()
        )
    };
    let n1 = sensor("n1");
    push(&c, &[(&n1, 75.0)]);

    let ours = |alerts: Vec<Value>| -> Option<Value> {
        alerts
            .into_iter()
            .find(|a| a["labels"]["alertname"] == "HighTemperature")
    };
    let a = wait_for(DUE, || {
        ours(am.alerts()).filter(|a| a["status"]["state"] == "active")
    })
    .unwrap_or_else(|| {
        panic!(
            "the alert never became active in Alertmanager; {}",
            context()
        )
    });
    assert_eq!(
        a["labels"],
        json!({"alertname": "HighTemperature", "instance": "n1", "job": "sensors", "severity": "warning"})
    );
    assert_eq!(
        a["annotations"],
        json!({"summary": "n1 runs at 75 degrees", "runbook": "https://runbooks.example/temperature"})
    );
    assert!(
        str_of(&a["generatorURL"]).starts_with(&format!("{}/graph?g0.expr=", c.url())),
        "{a:#}"
    );
    assert_eq!(a["receivers"], json!([{"name": "hook"}]), "{a:#}");
    let started = rfc3339_ms(str_of(&a["startsAt"])).expect("startsAt");
    let active_at = rule_alerts(&c)
        .first()
        .and_then(|r| rfc3339_ms(str_of(&r["activeAt"])))
        .expect("the rule's alert");
    assert_eq!(started, active_at, "{a:#}");

    // Alertmanager's own notification and Lookout's, side by side: the
    // same webhook body.
    let theirs = am_hook.wait_for_count(1, DUE, context);
    let mine = hook.wait_for_count(1, DUE, context);
    assert_eq!(theirs[0].status(), "firing");
    assert_eq!(
        comparable(&mine[0]),
        comparable(&theirs[0]),
        "Lookout's webhook (left) differs from Alertmanager's (right)"
    );

    // Lookout's own `GET /api/v2/alerts` shows the alert as Alertmanager's
    // does (times compared as instants; each has its own `updatedAt`, and
    // `endsAt` moves with every re-send).
    let normal = |a: &Value| -> Value {
        let mut a = a.clone();
        a["startsAt"] = json!(rfc3339_ms(str_of(&a["startsAt"])));
        if let Some(o) = a.as_object_mut() {
            o.remove("updatedAt");
            o.remove("endsAt");
        }
        // Alertmanager 0.25 predates `mutedBy`.
        if let Some(o) = a["status"].as_object_mut() {
            o.remove("mutedBy");
        }
        a
    };
    let theirs = ours(am.alerts()).expect("the alert in Alertmanager");
    let mine = ours(pipeline_alerts(&c)).expect("the alert in Lookout's pipeline");
    assert_eq!(
        normal(&mine),
        normal(&theirs),
        "Lookout's /api/v2/alerts (left) differs from Alertmanager's (right)"
    );

    // Past resolve_timeout (5s) and past the endsAt of any one send (4
    // resend delays, 8s): still active, because Lookout keeps re-sending.
    std::thread::sleep(Duration::from_secs(10));
    let a = ours(am.alerts())
        .unwrap_or_else(|| panic!("the alert left Alertmanager while firing; {}", context()));
    assert_eq!(a["status"]["state"], "active", "{a:#}");
    let ends = rfc3339_ms(str_of(&a["endsAt"])).expect("endsAt");
    assert!(ends > now_ms(), "endsAt is not in the future: {a:#}");
    assert_eq!(rfc3339_ms(str_of(&a["startsAt"])), Some(started));
    assert_eq!(am_hook.messages().len(), 1, "Alertmanager notified again");

    // Cleared: Lookout sends the resolution and Alertmanager drops the
    // alert from its active ones well before it would have timed out.
    let cleared = Instant::now();
    push(&c, &[(&n1, 20.0)]);
    let gone = wait_for(DUE, || ours(am.alerts()).is_none().then_some(()));
    assert!(
        gone.is_some(),
        "the resolved alert is still active in Alertmanager; {}",
        context()
    );
    assert!(
        cleared.elapsed() < Duration::from_secs(4),
        "resolution took {:?}: it timed out rather than being sent",
        cleared.elapsed()
    );
    let theirs = am_hook.wait_for_count(2, DUE, context);
    let mine = hook.wait_for_count(2, DUE, context);
    assert_eq!(theirs[1].status(), "resolved");
    assert_eq!(
        comparable(&mine[1]),
        comparable(&theirs[1]),
        "Lookout's resolved webhook (left) differs from Alertmanager's (right)"
    );
}
