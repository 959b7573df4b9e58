//! PromQL over the collector's HTTP API and `lookout query`, against the
//! real binary: result shapes, GET and POST, limits and error types.

use std::process::Command;

use lookout_tests::{Collector, bin, http_post, rw_body, rw_series, url_encode};
use serde_json::{Value, json};

/// These tests push data stamped in the past; the collector's own series,
/// stamped now, would push it out of the out-of-order window.
const HISTORY_ONLY: &str = "self_scrape_interval: 0s\n";

const END: i64 = 1_790_000_600_000;
const START: i64 = END - 600_000;

/// 10 minutes of two counters every 15 s, ending at `END`.
fn load(c: &Collector) {
    let mut series = Vec::new();
    for (instance, per_step) in [("a", 15.0), ("b", 30.0)] {
        let samples: Vec<(i64, f64)> = (0..=40)
            .map(|i| (START + i * 15_000, i as f64 * per_step))
            .collect();
        series.push(rw_series(
            &[
                ("__name__", "requests_total"),
                ("instance", instance),
                ("job", "web"),
            ],
            &samples,
        ));
    }
    let (status, text) = c.push(&[], &rw_body(series));
    assert_eq!(status, 204, "{text}");
}

fn get(c: &Collector, path: &str) -> (u16, Value) {
    let r = c.get(path);
    let v = serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{path}: {e}: {}", r.body));
    (r.status, v)
}

fn secs(ms: i64) -> String {
    format!("{}", ms as f64 / 1000.0)
}

#[test]
fn queries_answer_in_prometheus_shapes() {
    let c = Collector::start(HISTORY_ONLY);
    load(&c);

    // Instant vector: rate of 15 per 15 s and 30 per 15 s.
    let q = url_encode("sum by (instance) (rate(requests_total[5m]))");
    let (status, v) = get(&c, &format!("/api/v1/query?query={q}&time={}", secs(END)));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], "success");
    assert_eq!(v["data"]["resultType"], "vector");
    let mut got: Vec<(String, f64)> = v["data"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["metric"]["instance"].as_str().unwrap_or("").to_string(),
                s["value"][1]
                    .as_str()
                    .and_then(|x| x.parse().ok())
                    .unwrap_or(f64::NAN),
            )
        })
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got.len(), 2, "{v}");
    assert!(
        (got[0].1 - 1.0).abs() < 1e-9 && (got[1].1 - 2.0).abs() < 1e-9,
        "{got:?}"
    );
    assert_eq!(v["data"]["result"][0]["value"][0], json!(END / 1000));

    // The same as a POST form, and a scalar.
    let r = http_post(
        c.addr,
        "/api/v1/query",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        format!(
            "query={}&time={}",
            url_encode("scalar(count(requests_total)) * 2"),
            secs(END)
        )
        .as_bytes(),
    )
    .expect("POST /api/v1/query");
    let v: Value = serde_json::from_str(&r.body).expect("json");
    assert_eq!(
        v["data"],
        json!({"resultType": "scalar", "result": [END / 1000, "4"]})
    );

    // A range vector at an instant: the raw samples of the window.
    let q = url_encode("requests_total{instance=\"a\"}[1m]");
    let (_, v) = get(&c, &format!("/api/v1/query?query={q}&time={}", secs(END)));
    assert_eq!(v["data"]["resultType"], "matrix");
    assert_eq!(
        v["data"]["result"][0]["values"].as_array().map(Vec::len),
        Some(4)
    );

    // Range query: one point per step, name dropped by rate.
    let q = url_encode("rate(requests_total{instance=\"b\"}[2m])");
    let (status, v) = get(
        &c,
        &format!(
            "/api/v1/query_range?query={q}&start={}&end={}&step=60",
            secs(END - 300_000),
            secs(END)
        ),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["resultType"], "matrix");
    let s = &v["data"]["result"][0];
    assert_eq!(s["metric"], json!({"instance": "b", "job": "web"}));
    let values = s["values"].as_array().cloned().unwrap_or_default();
    assert_eq!(values.len(), 6);
    assert!(
        values.iter().all(|p| p[1]
            .as_str()
            .and_then(|x| x.parse::<f64>().ok())
            .is_some_and(|x| (x - 2.0).abs() < 1e-9)),
        "{values:?}"
    );

    // Infos come back in the envelope.
    let q = url_encode(
        "rate(label_replace(requests_total, \"__name__\", \"requests\", \"\", \"\")[5m:1m])",
    );
    let (_, v) = get(&c, &format!("/api/v1/query?query={q}&time={}", secs(END)));
    assert_eq!(v["status"], "success");
    assert!(
        v["infos"][0]
            .as_str()
            .is_some_and(|m| m.contains("might not be a counter")),
        "{v}"
    );

    // `limit` truncates with a warning.
    let q = url_encode("requests_total");
    let (_, v) = get(
        &c,
        &format!("/api/v1/query?query={q}&time={}&limit=1", secs(END)),
    );
    assert_eq!(v["data"]["result"].as_array().map(Vec::len), Some(1));
    assert!(
        v["warnings"][0]
            .as_str()
            .unwrap_or("")
            .contains("truncated"),
        "{v}"
    );

    // What Grafana calls when it connects.
    for path in [
        "/api/v1/status/buildinfo",
        "/api/v1/metadata",
        "/api/v1/rules",
        "/api/v1/labels",
    ] {
        let (status, v) = get(&c, path);
        assert_eq!(
            (status, &v["status"]),
            (200, &json!("success")),
            "{path}: {v}"
        );
    }

    // `lookout query` prints the answer for a terminal, and JSON on request.
    let out = Command::new(bin("lookout"))
        .args([
            "query",
            "--url",
            &format!("http://{}", c.addr),
            "--time",
            &secs(END),
        ])
        .arg("sort_desc(sum by (instance) (increase(requests_total[5m])))")
        .output()
        .expect("run lookout query");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            format!("{{instance=\"b\"}} => 600 @{}", END / 1000),
            format!("{{instance=\"a\"}} => 300 @{}", END / 1000)
        ]
    );
    let out = Command::new(bin("lookout"))
        .args([
            "query",
            "--url",
            &format!("http://{}", c.addr),
            "--json",
            "--start",
        ])
        .arg(secs(END - 60_000))
        .args([
            "--end",
            &secs(END),
            "--step",
            "30s",
            "count(requests_total)",
        ])
        .output()
        .expect("run lookout query");
    let v: Value = serde_json::from_slice(&out.stdout).expect("json from lookout query --json");
    assert_eq!(
        v["data"]["result"][0]["values"].as_array().map(Vec::len),
        Some(3)
    );
    let out = Command::new(bin("lookout"))
        .args(["query", "--url", &format!("http://{}", c.addr), "sum(("])
        .output()
        .expect("run lookout query");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad_data"),
        "{out:?}"
    );
}

#[test]
fn bad_queries_get_the_right_error_type() {
    let c = Collector::start(&format!("{HISTORY_ONLY}api:\n  query_max_samples: 50\n"));
    load(&c);
    let at = secs(END);
    let cases: [(&str, u16, &str, &str); 7] = [
        (
            "sum(rate(requests_total[5m])",
            400,
            "bad_data",
            "parse error",
        ),
        (
            "no_such_function(requests_total)",
            400,
            "bad_data",
            "parse error",
        ),
        ("requests_total{", 400, "bad_data", "parse error"),
        ("", 400, "bad_data", "query"),
        // 2 series x 20 samples in 5 m fit in 50; 2 x 40 over 10 m do not.
        (
            "count_over_time(requests_total[10m])",
            422,
            "execution",
            "too many samples",
        ),
        (
            "requests_total + on(job) requests_total",
            422,
            "execution",
            "many-to-many",
        ),
        (
            "label_replace(requests_total, \"instance\", \"x\", \"\", \"\")",
            422,
            "execution",
            "same labelset",
        ),
    ];
    for (expr, status, kind, text) in cases {
        let (s, v) = get(
            &c,
            &format!("/api/v1/query?query={}&time={at}", url_encode(expr)),
        );
        assert_eq!(s, status, "{expr}: {v}");
        assert_eq!(v["status"], "error", "{expr}: {v}");
        assert_eq!(v["errorType"], kind, "{expr}: {v}");
        let msg = v["error"].as_str().unwrap_or("");
        assert!(msg.contains(text), "{expr}: {msg}");
    }
    let (s, v) = get(
        &c,
        &format!(
            "/api/v1/query?query={}&time={at}",
            url_encode("count_over_time(requests_total[5m])")
        ),
    );
    assert_eq!(s, 200, "{v}");

    // Syntax errors say where.
    let (_, v) = get(
        &c,
        &format!(
            "/api/v1/query?query={}",
            url_encode("sum(requests_total) by (")
        ),
    );
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|m| m.chars().any(|ch| ch.is_ascii_digit())),
        "{v}"
    );

    // Range parameters.
    let q = url_encode("requests_total");
    for (params, text) in [
        (format!("start={at}&end={at}&step=0"), "step"),
        (
            format!("start={at}&end={}&step=1ms", secs(END + 60_000)),
            "11000 points",
        ),
        (
            format!("start={at}&end={}&step=1", secs(END - 1_000)),
            "end",
        ),
        (format!("start=soon&end={at}&step=1"), "start"),
        (format!("start={at}&end={at}"), "step"),
    ] {
        let (s, v) = get(&c, &format!("/api/v1/query_range?query={q}&{params}"));
        assert_eq!(
            (s, &v["errorType"]),
            (400, &json!("bad_data")),
            "{params}: {v}"
        );
        assert!(
            v["error"].as_str().is_some_and(|m| m.contains(text)),
            "{params}: {v}"
        );
    }
    let (s, v) = get(
        &c,
        &format!(
            "/api/v1/query_range?query={}&start={at}&end={at}&step=1",
            url_encode("requests_total[5m]")
        ),
    );
    assert_eq!((s, &v["errorType"]), (400, &json!("bad_data")), "{v}");
}

#[test]
fn a_query_past_its_timeout_answers_503() {
    let c = Collector::start(HISTORY_ONLY);
    load(&c);
    // A subquery at 1 ms resolution over an hour: millions of steps.
    let q = url_encode("max_over_time(sum(requests_total)[1h:1ms])");
    let (s, v) = get(
        &c,
        &format!("/api/v1/query?query={q}&time={}&timeout=50ms", secs(END)),
    );
    assert_eq!((s, &v["errorType"]), (503, &json!("timeout")), "{v}");
    // The collector is still there and answers the next query.
    let (s, _) = get(&c, &format!("/api/v1/query?query=1&time={}", secs(END)));
    assert_eq!(s, 200);
}
