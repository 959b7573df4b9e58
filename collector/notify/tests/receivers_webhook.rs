//! The generic webhook against a local HTTP server: Alertmanager's payload
//! v4 field by field, authentication, truncation, and the delivery rules
//! (retries, Retry-After, giving up, send_resolved) that every kind shares.

mod receivers_common;

use std::time::{Duration, Instant};

use lookout_notify::receivers::NotifyError;
use receivers_common::*;
use serde_json::json;

fn webhook_yaml(url: &str, extra: &str) -> String {
    format!("name: ops\nwebhook_configs:\n  - url: {url}\n{extra}")
}

#[tokio::test]
async fn payload_is_alertmanager_v4() {
    let server = TestServer::start(|_| Reply::new(200, "")).await;
    let ctx = context();
    let yaml = webhook_yaml(
        &server.url("/hook"),
        "    http_config: {authorization: {credentials: s3cret}}\n",
    );
    let notifier = one_notifier(&yaml, &ctx);
    assert_eq!(notifier.name(), "webhook/ops");
    let mut n = sample();
    n.reason = "new_alerts".to_string();
    notifier.notify(&n).await.expect("delivered");

    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    let req = &reqs[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/hook");
    assert_eq!(req.headers["authorization"], "Bearer s3cret");
    assert!(
        req.headers["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("application/json")
    );

    let alert = |pod: &str, node: &str, status: &str, starts: &str, ends: &str, fp: &str| {
        json!({
            "status": status,
            "labels": {
                "alertname": "KubePodCrashLooping", "container": "app", "job": "kube-state-metrics",
                "namespace": "prod", "node": node, "pod": pod, "severity": "critical"
            },
            "annotations": {
                "description": format!("Pod prod/{pod} (app) restarted 5 times in 10 minutes."),
                "runbook_url": "https://runbooks.example/KubePodCrashLooping",
                "summary": format!("Pod prod/{pod} is crash looping.")
            },
            "startsAt": starts,
            "endsAt": ends,
            "generatorURL": "http://lookout:9190/graph?g0.expr=x",
            "fingerprint": fp
        })
    };
    let fps: Vec<String> = n.alerts.iter().map(|a| a.fingerprint_hex()).collect();
    let expected = json!({
        "version": "4",
        "groupKey": "{}/{}:{alertname=\"KubePodCrashLooping\", namespace=\"prod\"}",
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "ops",
        "groupLabels": {"alertname": "KubePodCrashLooping", "namespace": "prod"},
        "commonLabels": {
            "alertname": "KubePodCrashLooping", "container": "app", "job": "kube-state-metrics",
            "namespace": "prod", "severity": "critical"
        },
        "commonAnnotations": {"runbook_url": "https://runbooks.example/KubePodCrashLooping"},
        "externalURL": "http://lookout:9190",
        "notification_reason": "new_alerts",
        "alerts": [
            alert("web-1", "n1", "firing", "2023-11-14T22:13:20Z", "0001-01-01T00:00:00Z", &fps[0]),
            alert("web-2", "n2", "firing", "2023-11-14T22:13:20Z", "0001-01-01T00:00:00Z", &fps[1]),
            alert("web-0", "n1", "resolved", "2023-11-14T21:13:20Z", "2023-11-14T22:12:20Z", &fps[2]),
        ]
    });
    let got = req.json();
    let (got_map, want_map) = (
        got.as_object().expect("object"),
        expected.as_object().expect("object"),
    );
    let mut got_keys: Vec<&String> = got_map.keys().collect();
    let mut want_keys: Vec<&String> = want_map.keys().collect();
    got_keys.sort();
    want_keys.sort();
    assert_eq!(got_keys, want_keys);
    for (key, want) in want_map {
        assert_eq!(&got_map[key], want, "field {key}");
    }
    // Fingerprints are 16 hex digits, as Alertmanager prints them.
    assert!(
        fps.iter()
            .all(|f| f.len() == 16 && f.chars().all(|c| c.is_ascii_hexdigit()))
    );
    // The declared order is kept on the wire.
    let raw = String::from_utf8(req.body.clone()).expect("utf-8");
    assert!(raw.starts_with(r#"{"version":"4","groupKey":"#), "{raw}");
}

#[tokio::test]
async fn fractional_seconds_are_trimmed_like_go() {
    let server = TestServer::start(|_| Reply::new(200, "")).await;
    let ctx = context();
    let notifier = one_notifier(&webhook_yaml(&server.url("/"), ""), &ctx);
    let mut n = sample();
    n.alerts.truncate(1);
    n.alerts[0].starts_at_ms = T0 + 120;
    notifier.notify(&n).await.expect("delivered");
    let body = server.requests()[0].json();
    assert_eq!(body["alerts"][0]["startsAt"], "2023-11-14T22:13:20.12Z");
    assert_eq!(body["status"], "firing");
    assert!(body.get("notification_reason").is_none());
}

#[tokio::test]
async fn max_alerts_truncates_and_counts() {
    let server = TestServer::start(|_| Reply::new(200, "")).await;
    let ctx = context();
    let yaml = webhook_yaml(
        &server.url("/"),
        "    max_alerts: 1\n    http_config: {basic_auth: {username: u, password: p}}\n",
    );
    one_notifier(&yaml, &ctx)
        .notify(&sample())
        .await
        .expect("delivered");
    let req = &server.requests()[0];
    assert_eq!(req.headers["authorization"], "Basic dTpw");
    let body = req.json();
    assert_eq!(body["truncatedAlerts"], 2);
    assert_eq!(body["alerts"].as_array().map(Vec::len), Some(1));
    // Common labels are those of the alerts sent, as in Alertmanager.
    assert_eq!(body["commonLabels"]["pod"], "web-1");
}

#[tokio::test]
async fn retries_503_twice_then_delivers_once() {
    let server = TestServer::start(|_| Reply::new(200, "")).await;
    server.script([Reply::new(503, "busy"), Reply::new(503, "busy")]);
    let ctx = context();
    let notifier = one_notifier(&webhook_yaml(&server.url("/"), ""), &ctx);
    notifier
        .notify(&sample())
        .await
        .expect("delivered after retries");
    assert_eq!(server.requests().len(), 3);
    let stats = ctx.stats().get("ops", "webhook").expect("stats");
    assert_eq!(
        (stats.sent, stats.retried, stats.failed, stats.dropped),
        (1, 2, 0, 0)
    );
}

#[tokio::test]
async fn http_400_is_final() {
    let server = TestServer::start(|_| Reply::new(400, "bad payload")).await;
    let ctx = context();
    let notifier = one_notifier(&webhook_yaml(&server.url("/"), ""), &ctx);
    let err = notifier.notify(&sample()).await.expect_err("refused");
    assert!(
        matches!(&err, NotifyError::Permanent { message } if message.contains("HTTP 400: bad payload")),
        "{err}"
    );
    assert_eq!(server.requests().len(), 1);
    let stats = ctx.stats().get("ops", "webhook").expect("stats");
    assert_eq!(
        (stats.sent, stats.retried, stats.failed, stats.dropped),
        (0, 0, 1, 0)
    );
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let server = TestServer::start(|_| Reply::new(200, "")).await;
    server.script([Reply::new(429, "slow down").header("retry-after", "1")]);
    let ctx = context();
    let notifier = one_notifier(&webhook_yaml(&server.url("/"), ""), &ctx);
    notifier.notify(&sample()).await.expect("delivered");
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    let gap = reqs[1].at - reqs[0].at;
    // The backoff alone is 50 ms; the peer asked for a second.
    assert!(gap >= Duration::from_millis(990), "retried after {gap:?}");
    let stats = ctx.stats().get("ops", "webhook").expect("stats");
    assert_eq!((stats.sent, stats.retried), (1, 1));
}

#[tokio::test]
async fn gives_up_after_the_budget() {
    let server = TestServer::start(|_| Reply::new(502, "down")).await;
    let ctx = context();
    let notifier = one_notifier(
        &webhook_yaml(&server.url("/"), "    give_up_after: 400ms\n"),
        &ctx,
    );
    let started = Instant::now();
    let err = notifier.notify(&sample()).await.expect_err("gave up");
    assert!(matches!(err, NotifyError::Retryable { .. }));
    assert!(started.elapsed() < Duration::from_secs(2));
    let stats = ctx.stats().get("ops", "webhook").expect("stats");
    assert_eq!((stats.sent, stats.failed, stats.dropped), (0, 0, 1));
    assert!(stats.retried >= 2, "{stats:?}");
    assert_eq!(server.requests().len() as u64, stats.retried + 1);
}

#[tokio::test]
async fn unreachable_endpoint_error_hides_the_token() {
    let ctx = context();
    // Port 1 on loopback refuses connections.
    let yaml = webhook_yaml(
        "http://127.0.0.1:1/hooks/TOKEN-abc123",
        "    give_up_after: 100ms\n",
    );
    let err = one_notifier(&yaml, &ctx)
        .notify(&sample())
        .await
        .expect_err("unreachable");
    let text = err.to_string();
    assert!(text.contains("http://127.0.0.1:1"), "{text}");
    assert!(!text.contains("TOKEN-abc123"), "{text}");
    assert_eq!(
        ctx.stats().get("ops", "webhook").map(|s| s.dropped),
        Some(1)
    );
}

#[tokio::test]
async fn send_resolved_false_drops_resolved_alerts() {
    let server = TestServer::start(|_| Reply::new(200, "")).await;
    let ctx = context();
    let notifier = one_notifier(
        &webhook_yaml(&server.url("/"), "    send_resolved: false\n"),
        &ctx,
    );
    notifier.notify(&sample()).await.expect("delivered");
    let body = server.requests()[0].json();
    let statuses: Vec<&str> = body["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .filter_map(|a| a["status"].as_str())
        .collect();
    assert_eq!(statuses, ["firing", "firing"]);
    // Nothing at all when every alert is resolved.
    notifier
        .notify(&all_resolved(&sample()))
        .await
        .expect("nothing to send");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn resolved_notification_by_default() {
    let server = TestServer::start(|_| Reply::new(200, "")).await;
    let ctx = context();
    one_notifier(&webhook_yaml(&server.url("/"), ""), &ctx)
        .notify(&all_resolved(&sample()))
        .await
        .expect("sent");
    let body = server.requests()[0].json();
    assert_eq!(body["status"], "resolved");
    assert_eq!(body["alerts"][0]["endsAt"], "2023-11-14T22:13:24Z");
}

#[tokio::test]
async fn silent_endpoint_times_out() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    let ctx = context();
    let yaml = webhook_yaml(
        &format!("http://{addr}/"),
        "    timeout: 300ms\n    give_up_after: 0s\n",
    );
    let started = Instant::now();
    let err = one_notifier(&yaml, &ctx)
        .notify(&sample())
        .await
        .expect_err("timed out");
    assert!(
        matches!(&err, NotifyError::Retryable { message, .. } if message.contains("no answer within 300ms")),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    hold.abort();
}
