//! The remote-write codec against a real Prometheus, both ways: what we
//! encode is accepted and queryable there, and what Prometheus sends decodes
//! here into valid series.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lookout_protocol::remote_write::{self, Label, Sample, TimeSeries, WriteRequest};
use lookout_tests::{CaptureServer, Prometheus, have_program, http_post, require, wait_for};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn label(n: &str, v: &str) -> Label {
    Label {
        name: n.into(),
        value: v.into(),
    }
}

#[test]
fn prometheus_accepts_what_we_encode() {
    let Some(prom) = Prometheus::receiver() else {
        return;
    };
    let t = now_ms() - 5_000;
    let req = WriteRequest {
        timeseries: vec![TimeSeries {
            labels: vec![
                label("__name__", "lookout_rw_test"),
                label("instance", "n1"),
                label("job", "lookout-agent"),
                label("quote", "a\"b\\c"),
            ],
            samples: vec![
                Sample {
                    value: 41.0,
                    timestamp: t - 1_000,
                },
                Sample {
                    value: 42.5,
                    timestamp: t,
                },
            ],
            exemplars: vec![],
            histograms: vec![],
        }],
        metadata: vec![],
    };
    let headers = [
        ("Content-Type", remote_write::CONTENT_TYPE),
        ("Content-Encoding", remote_write::CONTENT_ENCODING),
        (remote_write::VERSION_HEADER, remote_write::VERSION),
    ];
    let r = http_post(
        prom.addr,
        "/api/v1/write",
        &headers,
        &remote_write::encode(&req),
    )
    .unwrap();
    assert!(
        (200..300).contains(&r.status),
        "Prometheus answered {}: {}",
        r.status,
        r.body
    );
    let got = wait_for(Duration::from_secs(10), || {
        prom.query("lookout_rw_test{job=\"lookout-agent\"}")
    });
    let got =
        got.unwrap_or_else(|| panic!("series not queryable; prometheus log:\n{}", prom.log()));
    assert_eq!(got["value"][1], "42.5");
    assert_eq!(got["metric"]["quote"], "a\"b\\c");
    // A body that is not snappy is refused with 400, as our decoder does.
    let r = http_post(
        prom.addr,
        "/api/v1/write",
        &headers,
        b"definitely not snappy",
    )
    .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(
        remote_write::decode(b"definitely not snappy", 1 << 20)
            .unwrap_err()
            .http_status(),
        400
    );
}

#[test]
fn what_prometheus_sends_decodes_into_valid_series() {
    if !require(
        "prometheus (Debian package prometheus)",
        have_program("prometheus"),
    ) {
        return;
    }
    let receiver = CaptureServer::start();
    // Prometheus scrapes a port nothing listens on every second (its `up`
    // is 0) and remote-writes what it records to our receiver.
    let nothing_there = lookout_tests::free_port();
    let config = format!(
        "global: {{scrape_interval: 1s}}\nscrape_configs:\n- job_name: self\n  static_configs: [{{targets: ['127.0.0.1:{nothing_there}']}}]\nremote_write:\n- url: http://{}/api/v1/write\n  queue_config: {{batch_send_deadline: 1s}}\n",
        receiver.addr
    );
    let prom = Prometheus::start(&config, &[]);
    let up = wait_for(Duration::from_secs(30), || {
        receiver.requests().into_iter().find_map(|c| {
            let req = remote_write::decode(&c.body, 64 << 20).ok()?;
            req.timeseries
                .iter()
                .any(|ts| {
                    ts.labels
                        .iter()
                        .any(|l| l.name == "__name__" && l.value == "up")
                })
                .then_some((c, req))
        })
    });
    let (captured, req) = up.unwrap_or_else(|| {
        panic!(
            "no remote-write body with `up` arrived; prometheus log:\n{}",
            prom.log()
        )
    });
    assert_eq!(captured.method, "POST");
    assert_eq!(captured.path, "/api/v1/write");
    assert_eq!(
        captured.header("Content-Encoding"),
        Some(remote_write::CONTENT_ENCODING)
    );
    assert_eq!(
        captured.header("Content-Type"),
        Some(remote_write::CONTENT_TYPE)
    );
    assert_eq!(
        captured.header(remote_write::VERSION_HEADER),
        Some(remote_write::VERSION)
    );
    for ts in &req.timeseries {
        remote_write::validate_labels(&ts.labels)
            .unwrap_or_else(|e| panic!("Prometheus sent an invalid series: {e}"));
        let mut last = i64::MIN;
        for s in &ts.samples {
            assert!(s.timestamp > last, "samples are time-ordered per series");
            last = s.timestamp;
        }
    }
    let up_series = req
        .timeseries
        .iter()
        .find(|ts| ts.labels.iter().any(|l| l.value == "up"))
        .unwrap();
    assert_eq!(
        up_series.samples.last().unwrap().value,
        0.0,
        "the unreachable target is down"
    );
    assert!(
        up_series
            .labels
            .iter()
            .any(|l| l.name == "job" && l.value == "self")
    );
}
