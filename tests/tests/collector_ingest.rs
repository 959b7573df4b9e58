//! The collector's remote-write ingest and read API, against the real
//! binary: answers to good and bad pushes, durability across `kill -9`, and
//! the read endpoints.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lookout_protocol::remote_write::{self, TimeSeries};
use lookout_tests::{Collector, RW_HEADERS, http_post, rw_body, rw_series, url_encode, wait_for};

/// These tests push data stamped in the past; the collector's own series,
/// stamped now, would push it out of the out-of-order window.
const HISTORY_ONLY: &str = "self_scrape_interval: 0s\n";

fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
    rw_series(labels, samples)
}

fn body(ts: Vec<TimeSeries>) -> Vec<u8> {
    rw_body(ts)
}

fn push(c: &Collector, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    c.push(headers, body)
}

const NOW: i64 = 1_790_000_000_000;

#[test]
fn pushes_are_stored_and_read_back_through_the_api() {
    let c = Collector::start(HISTORY_ONLY);
    let (status, text) = push(
        &c,
        &[],
        &body(vec![
            series(
                &[
                    ("__name__", "node_load1"),
                    ("instance", "n1"),
                    ("job", "node-exporter"),
                ],
                &[(NOW, 0.5), (NOW + 10_000, 0.75)],
            ),
            series(
                &[
                    ("__name__", "node_load1"),
                    ("instance", "n2"),
                    ("job", "node-exporter"),
                ],
                &[(NOW, 1.5)],
            ),
            // Unsorted labels are sorted, as Prometheus's receiver does.
            series(
                &[
                    ("job", "cadvisor"),
                    ("__name__", "container_last_seen"),
                    ("instance", "n1"),
                ],
                &[(NOW, 1.0)],
            ),
        ]),
    );
    assert_eq!(status, 204, "{text}");

    let names = c.api("/api/v1/labels");
    assert_eq!(names, serde_json::json!(["__name__", "instance", "job"]));
    let jobs = c.api("/api/v1/label/job/values");
    assert_eq!(jobs, serde_json::json!(["cadvisor", "node-exporter"]));
    let instances = c.api(&format!(
        "/api/v1/label/instance/values?match[]={}",
        url_encode("{job=\"cadvisor\"}")
    ));
    assert_eq!(instances, serde_json::json!(["n1"]));
    let found = c.api(&format!(
        "/api/v1/series?match[]={}&start={}&end={}",
        url_encode("node_load1{instance=~\"n.\"}"),
        NOW / 1000,
        NOW / 1000 + 20
    ));
    assert_eq!(found.as_array().unwrap().len(), 2, "{found}");
    // A time range with no samples finds nothing.
    let none = c.api(&format!(
        "/api/v1/series?match[]=node_load1&start={}&end={}",
        NOW / 1000 - 3600,
        NOW / 1000 - 60
    ));
    assert_eq!(none, serde_json::json!([]));
    // The same through POST with a form body.
    let form = format!("match[]={}", url_encode("node_load1{instance=\"n1\"}"));
    let r = http_post(
        c.addr,
        "/api/v1/series",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        form.as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("\"instance\":\"n1\"") && !r.body.contains("n2"),
        "{}",
        r.body
    );

    let exported = c.export("node_load1{instance=\"n1\"}");
    assert_eq!(exported.len(), 1);
    assert_eq!(exported[0].timestamps, vec![NOW, NOW + 10_000]);
    assert_eq!(
        exported[0].values,
        vec![serde_json::json!(0.5), serde_json::json!(0.75)]
    );

    // Bad parameters get Prometheus's error envelope.
    for path in [
        "/api/v1/series".to_string(),
        "/api/v1/series?match[]=up{".to_string(),
        format!("/api/v1/series?match[]={}", url_encode("{job=~\".*\"}")),
        "/api/v1/series?match[]=up&start=yesterday".to_string(),
        "/api/v1/series?match[]=up&start=20&end=10".to_string(),
        "/api/v1/label/bad-name/values".to_string(),
    ] {
        let r = c.get(&path);
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["status"], "error", "{path}");
        assert_eq!(v["errorType"], "bad_data", "{path}");
    }
}

#[test]
fn bad_pushes_get_clear_answers_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let token_path = dir.path().join("token");
    std::fs::write(&token_path, "0123456789abcdef0123\n").unwrap();
    let c = Collector::start(&format!(
        "{HISTORY_ONLY}ingest:\n  max_body_mib: 1\n  max_decoded_mib: 2\n  tokens:\n    - name: shared\n      file: {}\n",
        token_path.display()
    ));
    let good = body(vec![series(
        &[("__name__", "x"), ("job", "j")],
        &[(NOW, 1.0)],
    )]);
    let auth = ("Authorization", "Bearer 0123456789abcdef0123");

    let (status, _) = push(&c, &[], &good);
    assert_eq!(status, 401, "no token");
    let (status, _) = push(
        &c,
        &[("Authorization", "Bearer 0123456789abcdef0124")],
        &good,
    );
    assert_eq!(status, 401, "wrong token");
    assert!(
        c.export("x").is_empty(),
        "nothing stored without a valid token"
    );

    let (status, text) = push(&c, &[auth], b"this is not snappy");
    assert_eq!(status, 400, "garbage: {text}");
    let mut truncated = good.clone();
    truncated.truncate(good.len() - 3);
    assert_eq!(push(&c, &[auth], &truncated).0, 400, "truncated snappy");
    let not_protobuf = snap::raw::Encoder::new()
        .compress_vec(b"\xff\xff\xff\xff not a protobuf")
        .unwrap();
    let (status, text) = push(&c, &[auth], &not_protobuf);
    assert_eq!(status, 400, "bad protobuf: {text}");
    assert!(text.contains("protobuf"), "{text}");

    // Over the compressed-size limit: 413 (or the connection is cut while
    // the body is still being sent, after the 413 was decided).
    let incompressible: Vec<u8> = (0..(3u32 << 20))
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let (status, _) = push(&c, &[auth], &incompressible);
    assert!(status == 413 || status == 0, "oversized body: {status}");
    // Small on the wire, large decompressed: 413.
    let big_name = "a".repeat(3 << 20);
    let bomb = body(vec![series(
        &[("__name__", "x"), ("j", &big_name)],
        &[(NOW, 1.0)],
    )]);
    assert!(bomb.len() < 1 << 20);
    let (status, text) = push(&c, &[auth], &bomb);
    assert_eq!(status, 413, "decompressed too large: {text}");
    let r = http_post(
        c.addr,
        "/api/v1/write",
        &[
            auth,
            ("Content-Type", "application/x-protobuf"),
            ("Content-Encoding", "gzip"),
        ],
        &good,
    )
    .unwrap();
    assert_eq!(r.status, 415, "unknown encoding: {}", r.body);

    assert!(c.export("x").is_empty(), "no failed push stored anything");
    assert_eq!(push(&c, &[auth], &good).0, 204);
    assert_eq!(c.export("x").len(), 1);

    let s = c.scrape();
    assert_eq!(
        s.value("lookout_ingest_requests_total", &[("code", "401")]),
        Some(2.0)
    );
    assert!(
        s.value("lookout_ingest_requests_total", &[("code", "400")])
            .unwrap_or(0.0)
            >= 3.0
    );
}

#[test]
fn nan_stale_markers_bad_labels_and_replays_are_handled_like_prometheus() {
    let c = Collector::start(HISTORY_ONLY);
    let stale = f64::from_bits(remote_write::STALE_NAN_BITS);
    let (status, text) = push(
        &c,
        &[],
        &body(vec![
            series(
                &[("__name__", "v"), ("job", "j")],
                &[(NOW, f64::NAN), (NOW + 1, stale), (NOW + 2, f64::INFINITY)],
            ),
            series(&[("job", "no-name")], &[(NOW, 1.0)]),
            series(
                &[("__name__", "dup"), ("a", "1"), ("a", "2")],
                &[(NOW, 1.0)],
            ),
            series(
                &[("__name__", "w"), ("job", "j"), ("empty", "")],
                &[(NOW, 2.0)],
            ),
        ]),
    );
    // Prometheus keeps the valid series of a push and counts the rest.
    assert_eq!(status, 204, "{text}");
    let v = c.export("v");
    assert_eq!(
        v[0].values,
        vec![
            serde_json::json!("NaN"),
            serde_json::json!("StaleNaN"),
            serde_json::json!("+Inf")
        ]
    );
    let w = c.export("w");
    assert_eq!(
        w[0].labels.keys().collect::<Vec<_>>(),
        vec!["__name__", "job"],
        "empty label dropped"
    );
    assert!(c.export("dup").is_empty());
    let s = c.scrape();
    assert_eq!(s.value("lookout_tsdb_invalid_series_total", &[]), Some(2.0));

    // A replay of the same samples is a no-op; a late sample in the window lands.
    let again = body(vec![series(
        &[("__name__", "w"), ("job", "j")],
        &[(NOW, 2.0), (NOW - 60_000, 3.0)],
    )]);
    assert_eq!(push(&c, &[], &again).0, 204);
    assert_eq!(push(&c, &[], &again).0, 204);
    let w = c.export("w");
    assert_eq!(w[0].timestamps, vec![NOW - 60_000, NOW]);
    // Older than the out-of-order window (1h by default): dropped, counted.
    let too_old = body(vec![series(
        &[("__name__", "w"), ("job", "j")],
        &[(NOW - 7_200_000, 1.0)],
    )]);
    assert_eq!(push(&c, &[], &too_old).0, 204);
    let s = c.scrape();
    assert_eq!(
        s.value(
            "lookout_tsdb_samples_dropped_total",
            &[("reason", "too_old")]
        ),
        Some(1.0)
    );
    assert!(
        s.value("lookout_tsdb_duplicate_samples_total", &[])
            .unwrap_or(0.0)
            >= 3.0
    );
}

/// Pushes from several threads while the collector is killed with SIGKILL;
/// every push that was answered 204 must be readable after a restart.
#[test]
fn every_acknowledged_sample_survives_kill_9() {
    let mut c = Collector::start(HISTORY_ONLY);
    let acked: Arc<Mutex<Vec<(u32, i64)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let addr = c.addr;
    let mut threads = Vec::new();
    for worker in 0..3u32 {
        let acked = acked.clone();
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || {
            let mut i = 0i64;
            while !stop.load(Ordering::Relaxed) {
                let t = NOW + i * 1000;
                let ts: Vec<TimeSeries> = (0..50)
                    .map(|s| {
                        series(
                            &[
                                ("__name__", "load"),
                                ("series", &s.to_string()),
                                ("worker", &worker.to_string()),
                            ],
                            &[(t, i as f64)],
                        )
                    })
                    .collect();
                let b = body(ts);
                let mut h: Vec<(&str, &str)> = RW_HEADERS.to_vec();
                h.push(("Connection", "close"));
                if let Ok(r) = http_post(addr, "/api/v1/write", &h, &b)
                    && r.status == 204
                {
                    acked.lock().unwrap().push((worker, t));
                }
                i += 1;
            }
        }));
    }
    let enough = wait_for(Duration::from_secs(30), || {
        (acked.lock().unwrap().len() > 300).then_some(())
    });
    assert!(
        enough.is_some(),
        "pushes were not acknowledged; log:\n{}",
        c.log()
    );
    c.kill9();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    c.restart();
    let stored = c.export("load");
    assert_eq!(stored.len(), 150, "every series is back");
    let mut missing = Vec::new();
    for (worker, t) in &acked {
        for s in stored
            .iter()
            .filter(|s| s.labels["worker"] == worker.to_string())
        {
            if !s.timestamps.contains(t) {
                missing.push((s.labels["series"].clone(), *worker, *t));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} acknowledged samples lost of {}, e.g. {:?}; log:\n{}",
        missing.len(),
        acked.len() * 50,
        &missing[..missing.len().min(5)],
        c.log()
    );
    assert!(c.log().contains("storage opened"), "{}", c.log());
}

/// Forwarding: what the collector ingests reaches the onward store, also
/// when that store was refusing (5xx) for a while: the outbox holds it.
#[test]
fn ingested_samples_are_forwarded_through_an_outbox() {
    let onward = lookout_tests::CaptureServer::start();
    onward.set_status(503);
    let c = Collector::start(&format!(
        "{HISTORY_ONLY}forward:\n  - name: onward\n    url: http://{}/api/v1/write\n",
        onward.addr
    ));
    let b = body(vec![series(
        &[("__name__", "fwd"), ("job", "j")],
        &[(NOW, 42.0)],
    )]);
    assert_eq!(push(&c, &[], &b).0, 204);
    let refused = wait_for(Duration::from_secs(10), || {
        (!onward.requests().is_empty()).then_some(())
    });
    assert!(refused.is_some(), "the forwarder tried; log:\n{}", c.log());
    onward.set_status(204);
    let delivered = wait_for(Duration::from_secs(30), || {
        onward.requests().into_iter().find(|r| {
            r.status == 204
                && remote_write::decode(&r.body, 1 << 20).is_ok_and(|req| {
                    req.timeseries.iter().any(|ts| {
                        ts.labels.iter().any(|l| l.value == "fwd") && ts.samples[0].value == 42.0
                    })
                })
        })
    });
    assert!(
        delivered.is_some(),
        "forwarded after the store recovered; log:\n{}",
        c.log()
    );
    let s = c.scrape();
    assert!(
        s.value(
            "lookout_forward_push_retries_total",
            &[("endpoint", "onward")]
        )
        .unwrap_or(0.0)
            >= 1.0
    );
}
