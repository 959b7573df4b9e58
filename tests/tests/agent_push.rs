//! The agent pushing over remote write: into a real Prometheus, through a
//! receiver outage, across `kill -9`, and past a receiver that refuses.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lookout_protocol::remote_write;
use lookout_tests::{Agent, CaptureServer, Prometheus, have_program, require, wait_for};

fn config(node: &str, outbox: &Path, url: &str) -> String {
    format!(
        "node_name: {node}
samplers:
  host: {{interval: 500ms, timeout: 500ms, mount_timeout: 200ms}}
  containers: {{enabled: false}}
  docker: {{enabled: false}}
  kubelet: {{enabled: false}}
  kube_proxy: {{enabled: false}}
push:
  interval: 1s
  outbox_dir: {}
  endpoints:
  - name: rx
    url: {url}
    timeout: 2s
",
        outbox.display()
    )
}

/// A receiver answering `status`, and an agent pushing to it with its own
/// outbox (kept alive by the returned guard).
fn agent_pushing_to_receiver_answering(
    status: u16,
    node: &str,
) -> (CaptureServer, tempfile::TempDir, Agent) {
    let rx = CaptureServer::start();
    rx.set_status(status);
    let outbox = tempfile::tempdir().unwrap();
    let agent = Agent::start(&config(
        node,
        outbox.path(),
        &format!("http://{}/api/v1/write", rx.addr),
    ));
    (rx, outbox, agent)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The host sampling times in a delivered body (node_time_seconds samples).
fn host_times(body: &[u8]) -> Vec<i64> {
    let req = remote_write::decode(body, 64 << 20).expect("the agent sends valid bodies");
    req.timeseries
        .iter()
        .filter(|t| {
            t.labels
                .iter()
                .any(|l| l.name == "__name__" && l.value == "node_time_seconds")
        })
        .flat_map(|t| t.samples.iter().map(|s| s.timestamp))
        .collect()
}

/// Checks what a receiver got with 2xx: every body valid, no body twice, and
/// host samples in strictly increasing time order. Returns the host times.
fn delivered_in_order_once(rx: &CaptureServer) -> Vec<i64> {
    let delivered: Vec<_> = rx
        .requests()
        .into_iter()
        .filter(|c| (200..300).contains(&c.status))
        .collect();
    let mut seen = HashSet::new();
    for c in &delivered {
        assert!(seen.insert(c.body.clone()), "a batch was delivered twice");
        assert_eq!(
            c.header(remote_write::VERSION_HEADER),
            Some(remote_write::VERSION)
        );
    }
    let times: Vec<i64> = delivered.iter().flat_map(|c| host_times(&c.body)).collect();
    assert!(
        times.windows(2).all(|w| w[0] < w[1]),
        "host samples out of order or repeated: {times:?}"
    );
    times
}

/// Which agent process made a batch: its `process_start_time_seconds`.
fn made_by(body: &[u8]) -> Option<f64> {
    let req = remote_write::decode(body, 64 << 20).ok()?;
    req.timeseries
        .iter()
        .find(|t| {
            t.labels
                .iter()
                .any(|l| l.name == "__name__" && l.value == "process_start_time_seconds")
        })
        .and_then(|t| t.samples.first())
        .map(|s| s.value)
}

fn metric(agent: &Agent, name: &str, labels: &[(&str, &str)]) -> f64 {
    agent.scrape().value(name, labels).unwrap_or(0.0)
}

#[test]
fn the_agent_pushes_into_prometheus() {
    let Some(prom) = Prometheus::receiver() else {
        return;
    };
    let outbox = tempfile::tempdir().unwrap();
    let agent = Agent::start(&config(
        "push-node",
        outbox.path(),
        &format!("http://{}/api/v1/write", prom.addr),
    ));
    let got = wait_for(Duration::from_secs(20), || {
        prom.query("node_load1{job=\"node-exporter\",instance=\"push-node\"}")
    });
    assert!(
        got.is_some(),
        "host series never arrived; agent log:\n{}\nprometheus log:\n{}",
        agent.log(),
        prom.log()
    );
    assert!(
        wait_for(Duration::from_secs(10), || prom.query(
            "lookout_agent_build_info{job=\"lookout-agent\",instance=\"push-node\"}"
        ))
        .is_some()
    );
    let cpus = wait_for(Duration::from_secs(10), || {
        prom.query("count(node_cpu_seconds_total{mode=\"idle\",job=\"node-exporter\"})")
    })
    .expect("cpu series");
    assert!(cpus["value"][1].as_str().unwrap().parse::<f64>().unwrap() >= 1.0);
    assert!(
        metric(
            &agent,
            "lookout_agent_push_sent_batches_total",
            &[("endpoint", "rx")]
        ) >= 1.0
    );
    for reason in ["outbox_full", "corrupt", "rejected"] {
        assert_eq!(
            metric(
                &agent,
                "lookout_agent_push_dropped_batches_total",
                &[("endpoint", "rx"), ("reason", reason)]
            ),
            0.0
        );
    }
}

#[test]
fn batches_made_during_an_outage_arrive_once_and_in_order() {
    let (rx, _outbox, agent) = agent_pushing_to_receiver_answering(503, "outage-node");
    let outage_started = now_ms();
    agent.wait_scrape(
        Duration::from_secs(20),
        "retries and a filling outbox",
        |s| {
            let retries = s.value("lookout_agent_push_retries_total", &[("endpoint", "rx")])?;
            let waiting = s.value("lookout_agent_outbox_bytes", &[("endpoint", "rx")])?;
            let age = s.value(
                "lookout_agent_outbox_oldest_unsent_age_seconds",
                &[("endpoint", "rx")],
            )?;
            (retries >= 2.0 && waiting > 0.0 && age >= 3.0).then_some(())
        },
    );
    let outage_ended = now_ms();
    rx.set_status(204);
    agent.wait_scrape(Duration::from_secs(60), "the outbox drained", |s| {
        (s.value("lookout_agent_outbox_bytes", &[("endpoint", "rx")])? == 0.0).then_some(())
    });
    let times = delivered_in_order_once(&rx);
    assert!(
        times.first().is_some_and(|t| *t < outage_started + 2_000),
        "the first batches, made when the outage began, were delivered: first host sample at {:?}, outage began {outage_started}",
        times.first()
    );
    // No gap: host samples every 500ms, batches every second; anything lost
    // would show as a hole of several seconds.
    let covered: Vec<i64> = times
        .iter()
        .copied()
        .filter(|t| *t <= outage_ended)
        .collect();
    assert!(
        covered.windows(2).all(|w| w[1] - w[0] < 2_500),
        "a gap in what was delivered: {covered:?}"
    );
    let sent = metric(
        &agent,
        "lookout_agent_push_sent_batches_total",
        &[("endpoint", "rx")],
    );
    let delivered = rx.requests().iter().filter(|c| c.status == 204).count() as f64;
    assert!(
        sent <= delivered && sent >= delivered - 1.0,
        "sent {sent} vs received {delivered}"
    );
    assert_eq!(
        metric(
            &agent,
            "lookout_agent_push_dropped_batches_total",
            &[("endpoint", "rx"), ("reason", "outbox_full")]
        ),
        0.0
    );
    let log = agent.log();
    assert_eq!(
        log.matches("batches wait in the outbox").count(),
        1,
        "the outage is logged once:\n{log}"
    );
    assert!(log.contains("accepts pushes again"), "{log}");
}

#[test]
fn an_outbox_survives_kill_9_and_drains_after_restart() {
    let rx = CaptureServer::start();
    rx.set_status(503);
    let outbox = tempfile::tempdir().unwrap();
    let url = format!("http://{}/api/v1/write", rx.addr);
    let mut first = Agent::start(&config("kill-node", outbox.path(), &url));
    first.wait_scrape(Duration::from_secs(20), "several batches waiting", |s| {
        (s.value(
            "lookout_agent_outbox_oldest_unsent_age_seconds",
            &[("endpoint", "rx")],
        )? >= 3.0)
            .then_some(())
    });
    let first_process = metric(&first, "process_start_time_seconds", &[]);
    first.child.kill().unwrap(); // SIGKILL
    first.child.wait().unwrap();
    let killed_at = now_ms();
    let segments = std::fs::read_dir(outbox.path().join("rx"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        .count();
    assert!(segments >= 1, "the outbox is on disk");
    assert!(
        rx.requests().iter().all(|c| c.status != 204),
        "nothing was delivered before the kill"
    );
    // What the killed agent left: count the batches in a copy of its outbox.
    let copy = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(outbox.path().join("rx"))
        .unwrap()
        .flatten()
    {
        std::fs::copy(e.path(), copy.path().join(e.file_name())).unwrap();
    }
    let mut left = lookout_agent::outbox::Outbox::open(copy.path(), 1 << 30, 4 << 20).unwrap();
    let mut waiting = 0;
    while let Some(r) = left.peek().unwrap() {
        left.ack(&r, None).unwrap();
        waiting += 1;
    }
    assert!(
        waiting >= 3,
        "several batches waited at the kill: {waiting}"
    );
    rx.set_status(204);
    let second = Agent::start(&config("kill-node", outbox.path(), &url));
    let times = wait_for(Duration::from_secs(30), || {
        let t = delivered_in_order_once(&rx);
        t.iter().any(|t| *t > killed_at).then_some(t)
    })
    .unwrap_or_else(|| panic!("the outbox did not drain; log:\n{}", second.log()));
    let delivered_from_before = rx
        .requests()
        .iter()
        .filter(|c| c.status == 204 && made_by(&c.body) == Some(first_process))
        .count();
    assert_eq!(
        delivered_from_before, waiting,
        "every batch left at the kill is delivered once"
    );
    assert!(times.iter().any(|t| *t < killed_at));
}

#[test]
fn a_batch_the_receiver_refuses_is_dropped_and_counted() {
    let (_rx, _outbox, agent) = agent_pushing_to_receiver_answering(400, "reject-node");
    agent.wait_scrape(Duration::from_secs(20), "rejected batches counted", |s| {
        (s.value(
            "lookout_agent_push_dropped_batches_total",
            &[("endpoint", "rx"), ("reason", "rejected")],
        )? >= 2.0)
            .then_some(())
    });
    assert_eq!(
        metric(
            &agent,
            "lookout_agent_push_retries_total",
            &[("endpoint", "rx")]
        ),
        0.0,
        "4xx is not retried"
    );
    assert!(
        agent.log().contains("refused a batch (HTTP 400"),
        "{}",
        agent.log()
    );
}

#[test]
fn the_agent_pushes_into_victoria_metrics() {
    if !require(
        "victoria-metrics (Debian package victoria-metrics)",
        have_program("victoria-metrics"),
    ) {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let port = lookout_tests::free_port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let log = std::fs::File::create(data.path().join("vm.log")).unwrap();
    let mut vm = std::process::Command::new("victoria-metrics")
        .arg(format!("-httpListenAddr={addr}"))
        .arg(format!(
            "-storageDataPath={}",
            data.path().join("data").display()
        ))
        // Return fresh samples at once instead of after the default 30s.
        .arg("-search.latencyOffset=0s")
        .arg("-search.disableCache")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let ready = wait_for(Duration::from_secs(20), || {
        lookout_tests::http_get(addr, "/health", &[])
            .ok()
            .filter(|r| r.status == 200)
    });
    let outbox = tempfile::tempdir().unwrap();
    let agent = ready.map(|_| {
        Agent::start(&config(
            "vm-node",
            outbox.path(),
            &format!("http://{addr}/api/v1/write"),
        ))
    });
    let found = agent.as_ref().and_then(|_| {
        wait_for(Duration::from_secs(30), || {
            let r = lookout_tests::http_get(addr, "/api/v1/query?query=node_load1%7Bjob%3D%22node-exporter%22%2Cinstance%3D%22vm-node%22%7D", &[]).ok()?;
            let v: serde_json::Value = serde_json::from_str(&r.body).ok()?;
            v["data"]["result"].as_array().filter(|a| !a.is_empty()).map(|a| a[0].clone())
        })
    });
    let vm_log = std::fs::read_to_string(data.path().join("vm.log")).unwrap_or_default();
    let _ = vm.kill();
    let _ = vm.wait();
    let agent =
        agent.unwrap_or_else(|| panic!("victoria-metrics did not start; its log:\n{vm_log}"));
    assert!(
        found.is_some(),
        "host series never queryable in VictoriaMetrics; agent log:\n{}\nvm log:\n{vm_log}",
        agent.log()
    );
    assert!(
        metric(
            &agent,
            "lookout_agent_push_sent_batches_total",
            &[("endpoint", "rx")]
        ) >= 1.0
    );
}
