//! Operating the agent: config validation, `--once`, reload on SIGHUP, stop
//! on SIGTERM, systemd notifications, and the node health probes.

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

use lookout_tests::{Agent, Scrape, StubServer, bin, wait_for};

/// A config with only cheap samplers, for tests that are not about Docker.
const QUIET: &str = "samplers:
  host: {interval: 200ms, timeout: 200ms, mount_timeout: 100ms}
  containers: {enabled: false}
  docker: {enabled: false}
  kubelet: {enabled: false}
  kube_proxy: {enabled: false}
";

/// Runs `lookout-agent` with `flags` (and a config file, if given) to
/// completion.
fn run_agent(flags: &[&str], config: Option<&std::path::Path>) -> std::process::Output {
    let mut cmd = Command::new(bin("lookout-agent"));
    cmd.args(flags);
    if let Some(path) = config {
        cmd.arg("--config").arg(path);
    }
    cmd.output().expect("run lookout-agent")
}

#[test]
fn check_config_names_every_bad_field_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.yaml");
    std::fs::write(&path, "samplers:\n  docker:\n    data_usage_interval: 10s\n  host:\n    interval: 1s\n    timeout: 2s\n").unwrap();
    let out = run_agent(&["--check-config"], Some(&path));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(
        err.contains("samplers.docker.data_usage_interval: must be at least 1m"),
        "{err}"
    );
    assert!(err.contains("samplers.host.timeout"), "{err}");

    std::fs::write(&path, "samplers:\n  dockr: {}\n").unwrap();
    let out = run_agent(&["--check-config"], Some(&path));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("samplers.dockr") && err.contains("unknown field"),
        "{err}"
    );

    let out = run_agent(&["--check-config"], Some(&dir.path().join("missing.yaml")));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));

    std::fs::write(&path, QUIET).unwrap();
    let out = run_agent(&["--check-config"], Some(&path));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid"));
}

#[test]
fn default_config_printed_is_valid() {
    let out = run_agent(&["--print-default-config"], None);
    assert!(out.status.success());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.yaml");
    std::fs::write(&path, &out.stdout).unwrap();
    let check = run_agent(&["--check-config"], Some(&path));
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn once_prints_one_full_sampling_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.yaml");
    std::fs::write(&path, QUIET).unwrap();
    let out = run_agent(&["--once"], Some(&path));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = Scrape::parse(String::from_utf8(out.stdout).unwrap());
    assert!(s.value("node_memory_MemTotal_bytes", &[]).unwrap() > 0.0);
    assert!(
        s.find("node_cpu_seconds_total", &[("mode", "idle")])
            .count()
            >= 1
    );
    assert_eq!(
        s.value("lookout_agent_sampler_success", &[("sampler", "host")]),
        Some(1.0)
    );

    let out = run_agent(&["--once", "--openmetrics"], Some(&path));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.ends_with("# EOF\n"));
    assert!(
        text.contains("# TYPE node_cpu_seconds counter\n"),
        "OpenMetrics counters are declared without _total"
    );
}

#[test]
fn sighup_reloads_and_a_bad_reload_keeps_the_running_config() {
    let agent = Agent::start(QUIET);
    agent.wait_scrape(Duration::from_secs(5), "host series", |s| {
        s.value("node_load1", &[])
    });
    // Disable the host sampler, turn on a kubelet probe instead.
    let stub = StubServer::start(200, "ok");
    let listen = format!("listen: \"{}\"\n", agent.addr);
    let reloaded = format!(
        "{listen}samplers:\n  host: {{enabled: false}}\n  containers: {{enabled: false}}\n  docker: {{enabled: false}}\n  kube_proxy: {{enabled: false}}\n  kubelet: {{interval: 200ms, timeout: 200ms, url: \"http://{}/healthz\"}}\n",
        stub.addr
    );
    std::fs::write(agent.config_path(), &reloaded).unwrap();
    agent.signal(libc::SIGHUP);
    agent.wait_scrape(
        Duration::from_secs(5),
        "host gone, kubelet probe present",
        |s| {
            (s.value("node_load1", &[]).is_none()
                && s.value("lookout_kubelet_healthz_up", &[])? == 1.0)
                .then_some(())
        },
    );
    // A broken file: the agent keeps running what it had.
    std::fs::write(
        agent.config_path(),
        format!("{listen}samplers:\n  kubelet: {{interval: nope}}\n"),
    )
    .unwrap();
    agent.signal(libc::SIGHUP);
    let log_has = |needle: &str| {
        wait_for(Duration::from_secs(5), || {
            agent.log().contains(needle).then_some(())
        })
        .is_some()
    };
    assert!(log_has("keeping the running config"), "{}", agent.log());
    assert!(
        agent.log().contains("samplers.kubelet.interval"),
        "{}",
        agent.log()
    );
    let hits = stub.hits.load(std::sync::atomic::Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        stub.hits.load(std::sync::atomic::Ordering::SeqCst) > hits,
        "the kubelet probe still runs"
    );
    assert_eq!(
        agent.scrape().value("lookout_kubelet_healthz_up", &[]),
        Some(1.0)
    );
}

#[test]
fn sigterm_stops_cleanly() {
    let mut agent = Agent::start(QUIET);
    agent.signal(libc::SIGTERM);
    let started = Instant::now();
    let status = wait_for(Duration::from_secs(5), || {
        agent.child.try_wait().ok().flatten()
    })
    .expect("agent exits after SIGTERM");
    assert!(status.success(), "exit status {status}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(agent.log().contains("stopped"));
}

#[test]
fn systemd_hears_ready_watchdog_reloading_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let sock_str = sock_path.display().to_string();
    let agent = Agent::start_with_env(
        QUIET,
        &[("NOTIFY_SOCKET", &sock_str), ("WATCHDOG_USEC", "400000")],
    );
    let mut seen: Vec<String> = Vec::new();
    let recv_until = |needle: &str, seen: &mut Vec<String>| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let mut buf = [0u8; 1024];
            if let Ok(n) = sock.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).to_string();
                seen.push(msg.clone());
                if msg.contains(needle) {
                    return;
                }
            }
        }
        panic!("systemd never heard {needle}; heard {seen:?}");
    };
    recv_until("READY=1", &mut seen);
    recv_until("WATCHDOG=1", &mut seen);
    recv_until("WATCHDOG=1", &mut seen);
    agent.signal(libc::SIGHUP);
    recv_until("RELOADING=1", &mut seen);
    assert!(
        seen.last().unwrap().contains("MONOTONIC_USEC="),
        "reload carries a timestamp: {seen:?}"
    );
    recv_until("READY=1", &mut seen);
    agent.signal(libc::SIGTERM);
    recv_until("STOPPING=1", &mut seen);
}

#[test]
fn kubelet_and_kube_proxy_health_are_probed() {
    let kubelet = StubServer::start(200, "ok");
    let proxy = StubServer::start(
        200,
        r#"{"lastUpdated": "2024-05-01T10:00:00Z","currentTime": "2024-05-01T10:00:07.5Z","nodeEligible":true}"#,
    );
    let cfg = format!(
        "samplers:\n  host: {{enabled: false}}\n  containers: {{enabled: false}}\n  docker: {{enabled: false}}\n  kubelet: {{interval: 200ms, timeout: 200ms, url: \"http://{}/healthz\"}}\n  kube_proxy: {{interval: 200ms, timeout: 200ms, url: \"http://{}/healthz\"}}\n",
        kubelet.addr, proxy.addr
    );
    let agent = Agent::start(&cfg);
    let s = agent.wait_scrape(Duration::from_secs(5), "both probes up", |s| {
        (s.value("lookout_kubelet_healthz_up", &[])? == 1.0
            && s.value("lookout_kube_proxy_healthz_up", &[])? == 1.0)
            .then(|| Scrape::parse(s.text.clone()))
    });
    assert_eq!(
        s.value("lookout_kube_proxy_sync_age_seconds", &[]),
        Some(7.5)
    );
    let d = s
        .value("lookout_kubelet_healthz_duration_seconds", &[])
        .unwrap();
    assert!(d > 0.0 && d < 1.0, "{d}");
    // kube-proxy turns unhealthy (rules not synced): 503, still with times.
    proxy.set(503, r#"{"lastUpdated": "2024-05-01T10:00:00Z","currentTime": "2024-05-01T10:02:00Z","nodeEligible":true}"#);
    agent.wait_scrape(
        Duration::from_secs(5),
        "kube-proxy down with a 120s sync age",
        |s| {
            (s.value("lookout_kube_proxy_healthz_up", &[])? == 0.0
                && s.value("lookout_kube_proxy_sync_age_seconds", &[])? == 120.0)
                .then_some(())
        },
    );
    assert!(agent.log().contains("answered HTTP 503"), "{}", agent.log());
}

#[test]
fn absent_node_components_report_zero_and_are_logged_once() {
    let closed = lookout_tests::free_port();
    let cfg = format!(
        "samplers:\n  host: {{enabled: false}}\n  containers: {{enabled: false}}\n  docker: {{enabled: false}}\n  kubelet: {{interval: 100ms, timeout: 100ms, url: \"http://127.0.0.1:{closed}/healthz\"}}\n  kube_proxy: {{enabled: false}}\n"
    );
    let agent = Agent::start(&cfg);
    agent.wait_scrape(Duration::from_secs(5), "at least 5 failed probes", |s| {
        (s.value("lookout_kubelet_healthz_up", &[])? == 0.0
            && s.value(
                "lookout_agent_sampler_runs_total",
                &[("sampler", "kubelet")],
            )? >= 5.0)
            .then_some(())
    });
    let log = agent.log();
    assert_eq!(
        log.matches("kubelet health endpoint").count(),
        1,
        "logged once:\n{log}"
    );
    assert!(
        log.contains("Connection refused"),
        "the log says why:\n{log}"
    );
}

#[test]
fn metrics_endpoint_negotiates_openmetrics() {
    let agent = Agent::start(QUIET);
    let addr = agent.addr;
    let r = lookout_tests::http_get(
        addr,
        "/metrics",
        &[(
            "Accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )],
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text; version=1.0.0")
    );
    assert!(r.body.ends_with("# EOF\n"));
    let r = lookout_tests::http_get(addr, "/metrics", &[]).unwrap();
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(!r.body.contains("# EOF"));
}
