//! The agent against the real Docker Engine: containers that burn CPU, hold
//! memory, talk to each other, exit, get OOM-killed and turn unhealthy.

use std::time::{Duration, Instant, SystemTime};

use lookout_agent::clock::{parse_rfc3339, unix_seconds};
use lookout_tests::docker::{self, Container, SocketProxy};
use lookout_tests::{Agent, Scrape, require};

/// Fast intervals so tests see changes quickly; node probes off (no
/// kubelet on this machine).
fn config(docker_endpoint: &str) -> String {
    format!(
        "samplers:
  host: {{interval: 1s, timeout: 1s, mount_timeout: 500ms}}
  containers: {{interval: 300ms, timeout: 300ms}}
  docker: {{interval: 500ms, timeout: 500ms, endpoint: \"{docker_endpoint}\"}}
  kubelet: {{enabled: false}}
  kube_proxy: {{enabled: false}}
"
    )
}

fn start_agent() -> Agent {
    Agent::start(&config(docker::SOCKET))
}

fn docker_ready() -> bool {
    if !require("the Docker Engine", docker::available()) {
        return false;
    }
    docker::ensure_image();
    true
}

/// When Docker emitted `action` for container `id`, in unix seconds.
fn docker_event_time(id: &str, action: &str, since: SystemTime) -> f64 {
    let since = format!("{:.3}", unix_seconds(since) - 1.0);
    let until = format!("{:.3}", unix_seconds(SystemTime::now()) + 1.0);
    let out = docker::docker(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        &format!("container={id}"),
        "--filter",
        &format!("event={action}"),
        "--format",
        "{{.TimeNano}}",
    ]);
    let nanos: i64 = out
        .lines()
        .next()
        .unwrap_or_else(|| panic!("docker reported no {action} event for {id}"))
        .trim()
        .parse()
        .expect("TimeNano");
    nanos as f64 / 1e9
}

fn event_count(s: &Scrape, event: &str, name: &str) -> f64 {
    s.find(
        "lookout_container_events_total",
        &[("event", event), ("name", name)],
    )
    .map(|x| x.value)
    .sum()
}

/// Waits until the agent follows Docker's event stream.
fn wait_events_connected(agent: &Agent) {
    agent.wait_scrape(Duration::from_secs(10), "the event stream", |s| {
        s.value("lookout_docker_events_connected", &[])
            .filter(|v| *v == 1.0)
    });
}

/// Waits until the agent counts `event` for the container and returns when
/// that was first seen (unix seconds).
fn wait_counted(agent: &Agent, event: &str, name: &str, at_least: f64) -> f64 {
    agent.wait_scrape(
        Duration::from_secs(20),
        &format!("{event} counted for {name}"),
        |s| (event_count(s, event, name) >= at_least).then(|| unix_seconds(SystemTime::now())),
    )
}

#[test]
fn busy_container_accumulates_about_one_cpu_second_per_second() {
    if !docker_ready() {
        return;
    }
    let c = Container::run("cpu", &[], &["sh", "-c", "while :; do :; done"]);
    let agent = start_agent();
    let id = c.cgroup_id();
    let read = |s: &Scrape| {
        Some((
            s.value(
                "container_cpu_usage_seconds_total",
                &[("id", &id), ("cpu", "total")],
            )?,
            s.value("container_last_seen", &[("id", &id)])?,
        ))
    };
    let (cpu0, seen0) = agent.wait_scrape(
        Duration::from_secs(15),
        "cpu series of the busy container",
        read,
    );
    std::thread::sleep(Duration::from_secs(3));
    let (cpu1, seen1) = agent.wait_scrape(Duration::from_secs(5), "a later cpu reading", |s| {
        read(s).filter(|(_, seen)| *seen > seen0 + 2.5)
    });
    let rate = (cpu1 - cpu0) / (seen1 - seen0);
    assert!(
        (0.7..=1.3).contains(&rate),
        "busy container used {rate:.2} CPU-seconds per second"
    );
    // The series carry the container's name and image.
    let s = agent.scrape();
    let sample = s
        .find("container_cpu_usage_seconds_total", &[("id", &id)])
        .next()
        .expect("series");
    assert_eq!(sample.labels.get("name"), Some(c.name.as_str()));
    assert_eq!(sample.labels.get("image"), Some(docker::IMAGE));
}

#[test]
fn memory_held_shows_in_working_set() {
    if !docker_ready() {
        return;
    }
    const HELD: f64 = 64.0 * 1024.0 * 1024.0;
    let c = Container::run(
        "mem",
        &["--tmpfs", "/hold:size=128m", "--memory", "256m"],
        &[
            "sh",
            "-c",
            "dd if=/dev/zero of=/hold/x bs=1M count=64 2>/dev/null; sleep 600",
        ],
    );
    let agent = start_agent();
    let id = c.cgroup_id();
    let ws = agent.wait_scrape(
        Duration::from_secs(20),
        "working set of at least 64 MiB",
        |s| {
            s.value("container_memory_working_set_bytes", &[("id", &id)])
                .filter(|v| *v >= HELD)
        },
    );
    let s = agent.scrape();
    let usage = s
        .value("container_memory_usage_bytes", &[("id", &id)])
        .expect("usage");
    assert!(usage >= ws, "usage {usage} below working set {ws}");
    assert_eq!(
        s.value("container_spec_memory_limit_bytes", &[("id", &id)]),
        Some(256.0 * 1024.0 * 1024.0)
    );
}

#[test]
fn bytes_sent_between_containers_are_counted_on_both_sides() {
    if !docker_ready() {
        return;
    }
    const SENT: f64 = 4_000_000.0;
    // The listener's stdin must stay open: busybox nc closes the
    // connection when its stdin ends.
    let receiver = Container::run(
        "rx",
        &[],
        &["sh", "-c", "sleep 600 | nc -l -p 9000 > /dev/null"],
    );
    let ip = receiver.inspect("{{.NetworkSettings.IPAddress}}");
    assert!(!ip.is_empty(), "receiver has no IP on the default bridge");
    std::thread::sleep(Duration::from_millis(500));
    let sender = Container::run(
        "tx",
        &[],
        &[
            "sh",
            "-c",
            &format!(
                "head -c {} /dev/zero | nc {ip} 9000; sleep 600",
                SENT as u64
            ),
        ],
    );
    let agent = start_agent();
    let (rid, sid) = (receiver.cgroup_id(), sender.cgroup_id());
    agent.wait_scrape(
        Duration::from_secs(20),
        "received and transmitted bytes",
        |s| {
            let rx = s.value(
                "container_network_receive_bytes_total",
                &[("id", &rid), ("interface", "eth0")],
            )?;
            let tx = s.value(
                "container_network_transmit_bytes_total",
                &[("id", &sid), ("interface", "eth0")],
            )?;
            (rx >= SENT && tx >= SENT).then_some(())
        },
    );
    let s = agent.scrape();
    assert!(
        s.value("container_network_receive_packets_total", &[("id", &rid)])
            .unwrap_or(0.0)
            > 0.0
    );
    // Loopback is not reported.
    assert!(
        s.value(
            "container_network_receive_bytes_total",
            &[("id", &rid), ("interface", "lo")]
        )
        .is_none()
    );
}

#[test]
fn nonzero_exit_is_reported_and_die_counted_within_a_second() {
    if !docker_ready() {
        return;
    }
    let agent = start_agent();
    wait_events_connected(&agent);
    let started = SystemTime::now();
    let c = Container::run("exit", &[], &["sh", "-c", "sleep 1; exit 3"]);
    let counted_at = wait_counted(&agent, "die", &c.name, 1.0);
    let died_at = docker_event_time(&c.id, "die", started);
    assert!(
        counted_at - died_at <= 1.0,
        "die counted {:.3}s after it happened",
        counted_at - died_at
    );
    agent.wait_scrape(
        Duration::from_secs(10),
        "exit code 3 and state exited",
        |s| {
            let code = s.value("lookout_docker_container_exit_code", &[("name", &c.name)])?;
            let exited = s.value(
                "lookout_docker_container_state",
                &[("name", &c.name), ("state", "exited")],
            )?;
            let running = s.value(
                "lookout_docker_container_state",
                &[("name", &c.name), ("state", "running")],
            )?;
            (code == 3.0 && exited == 1.0 && running == 0.0).then_some(())
        },
    );
    let s = agent.scrape();
    let info = s
        .find("lookout_docker_container_info", &[("name", &c.name)])
        .next()
        .expect("info series");
    assert_eq!(info.labels.get("command"), Some("sh -c sleep 1; exit 3"));
    assert_eq!(info.labels.get("restart_policy"), Some("no"));
    assert_eq!(event_count(&s, "die", &c.name), 1.0, "one death, one count");
}

#[test]
fn oom_killed_container_is_reported_and_oom_counted_within_a_second() {
    if !docker_ready() {
        return;
    }
    let agent = start_agent();
    wait_events_connected(&agent);
    let started = SystemTime::now();
    // tail keeps the last 100 MB of an endless stream: it must outgrow 32 MiB.
    let c = Container::run(
        "oom",
        &["--memory", "32m", "--memory-swap", "32m"],
        &["tail", "-c", "100000000", "/dev/zero"],
    );
    let counted_at = wait_counted(&agent, "oom", &c.name, 1.0);
    let oom_at = docker_event_time(&c.id, "oom", started);
    assert!(
        counted_at - oom_at <= 1.0,
        "oom counted {:.3}s after it happened",
        counted_at - oom_at
    );
    agent.wait_scrape(Duration::from_secs(10), "OOM-killed state", |s| {
        let oom = s.value("lookout_docker_container_oom_killed", &[("name", &c.name)])?;
        let code = s.value("lookout_docker_container_exit_code", &[("name", &c.name)])?;
        (oom == 1.0 && code == 137.0).then_some(())
    });
}

#[test]
fn oom_kills_inside_a_living_container_are_counted_from_its_cgroup() {
    if !docker_ready() {
        return;
    }
    let c = Container::run(
        "oomlive",
        &["--memory", "32m", "--memory-swap", "32m"],
        &["sh", "-c", "tail -c 100000000 /dev/zero; sleep 600"],
    );
    let agent = start_agent();
    let id = c.cgroup_id();
    agent.wait_scrape(
        Duration::from_secs(20),
        "container_oom_events_total >= 1",
        |s| {
            s.value("container_oom_events_total", &[("id", &id)])
                .filter(|v| *v >= 1.0)
        },
    );
}

#[test]
fn unhealthy_container_is_reported_and_counted() {
    if !docker_ready() {
        return;
    }
    let agent = start_agent();
    let c = Container::run(
        "health",
        &[
            "--health-cmd",
            "exit 1",
            "--health-interval",
            "1s",
            "--health-retries",
            "1",
            "--health-timeout",
            "1s",
        ],
        &["sleep", "600"],
    );
    agent.wait_scrape(Duration::from_secs(30), "unhealthy health status", |s| {
        let unhealthy = s.value(
            "lookout_docker_container_health_status",
            &[("name", &c.name), ("health", "unhealthy")],
        )?;
        let healthy = s.value(
            "lookout_docker_container_health_status",
            &[("name", &c.name), ("health", "healthy")],
        )?;
        (unhealthy == 1.0 && healthy == 0.0).then_some(())
    });
    agent.wait_scrape(Duration::from_secs(10), "health_status event", |s| {
        s.value(
            "lookout_container_events_total",
            &[
                ("event", "health_status"),
                ("health", "unhealthy"),
                ("name", &c.name),
            ],
        )
    });
}

#[test]
fn kill_and_restart_events_are_counted() {
    if !docker_ready() {
        return;
    }
    let agent = start_agent();
    wait_events_connected(&agent);
    let c = Container::run("restart", &[], &["sleep", "600"]);
    docker::docker(&["restart", "-t", "0", &c.id]);
    wait_counted(&agent, "restart", &c.name, 1.0);
    wait_counted(&agent, "kill", &c.name, 1.0);
    agent.wait_scrape(Duration::from_secs(10), "running again", |s| {
        s.value(
            "lookout_docker_container_state",
            &[("name", &c.name), ("state", "running")],
        )
        .filter(|v| *v == 1.0)
    });
}

#[test]
fn unreachable_docker_reports_down_while_host_and_cgroups_keep_working() {
    if !docker_ready() {
        return;
    }
    let c = Container::run("nodocker", &[], &["sleep", "600"]);
    let agent = Agent::start(&config("unix:///nonexistent/docker.sock"));
    let id = c.cgroup_id();
    agent.wait_scrape(
        Duration::from_secs(15),
        "docker down, host and container series present",
        |s| {
            let down = s.value("lookout_docker_up", &[])? == 0.0;
            let host = s
                .value("node_cpu_seconds_total", &[("mode", "idle")])
                .is_some();
            let cgroup = s
                .value("container_memory_usage_bytes", &[("id", &id)])
                .is_some();
            let host_ok = s.value("lookout_agent_sampler_success", &[("sampler", "host")])? == 1.0;
            (down && host && cgroup && host_ok).then_some(())
        },
    );
    let log = agent.log();
    assert_eq!(
        log.matches("lookout_docker_up is 0").count(),
        1,
        "the outage is logged once:\n{log}"
    );
}

#[test]
fn a_hung_docker_daemon_does_not_stall_other_samplers() {
    if !docker_ready() {
        return;
    }
    // A socket that accepts connections and never answers.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hung.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let held = std::thread::spawn(move || {
        let mut conns = Vec::new();
        for c in listener.incoming().take(64).flatten() {
            conns.push(c);
        }
    });
    let agent = Agent::start(&config(&format!("unix://{}", path.display())));
    let t0 = agent.wait_scrape(Duration::from_secs(10), "host time", |s| {
        s.value("node_time_seconds", &[])
    });
    agent.wait_scrape(
        Duration::from_secs(10),
        "host sampler moving on while docker times out",
        |s| {
            let t = s.value("node_time_seconds", &[])?;
            let timeouts = s.value(
                "lookout_agent_sampler_timeouts_total",
                &[("sampler", "docker")],
            )?;
            (t >= t0 + 2.0 && timeouts >= 2.0).then_some(())
        },
    );
    drop(agent);
    drop(held);
}

#[test]
fn events_missed_while_the_daemon_is_away_are_counted_once_after_reconnecting() {
    if !docker_ready() {
        return;
    }
    let proxy = SocketProxy::start();
    let agent = Agent::start(&config(&format!("unix://{}", proxy.path.display())));
    wait_events_connected(&agent);
    proxy.cut();
    agent.wait_scrape(Duration::from_secs(10), "the stream noticed as lost", |s| {
        s.value("lookout_docker_events_connected", &[])
            .filter(|v| *v == 0.0)
    });
    // This container lives and dies while the agent cannot see Docker.
    let c = Container::run("away", &[], &["sh", "-c", "exit 5"]);
    assert_eq!(docker::docker(&["wait", &c.id]), "5");
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        assert_eq!(event_count(&agent.scrape(), "die", &c.name), 0.0);
        std::thread::sleep(Duration::from_millis(100));
    }
    proxy.restore();
    wait_counted(&agent, "die", &c.name, 1.0);
    let s = agent.scrape();
    assert!(
        s.value("lookout_docker_events_reconnects_total", &[])
            .unwrap_or(0.0)
            >= 1.0
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        event_count(&agent.scrape(), "die", &c.name),
        1.0,
        "counted exactly once"
    );
}

#[test]
fn started_at_matches_docker() {
    if !docker_ready() {
        return;
    }
    let c = Container::run("start", &[], &["sleep", "600"]);
    let started = parse_rfc3339(&c.inspect("{{.State.StartedAt}}")).expect("StartedAt");
    let agent = start_agent();
    let id = c.cgroup_id();
    let v = agent.wait_scrape(Duration::from_secs(10), "start time", |s| {
        s.value("container_start_time_seconds", &[("id", &id)])
    });
    assert!((v - started).abs() < 0.001, "{v} vs {started}");
}

#[test]
fn allowlisted_and_kubernetes_labels_are_copied_and_sandboxes_skipped() {
    if !docker_ready() {
        return;
    }
    let labels = [
        "--label",
        "com.example.team=core",
        "--label",
        "com.example.secret=no",
        "--label",
        "io.kubernetes.pod.namespace=shop",
        "--label",
        "io.kubernetes.pod.name=web-7d9f",
        "--label",
        "io.kubernetes.container.name=nginx",
        "--label",
        "io.kubernetes.docker.type=container",
    ];
    let app = Container::run("k8s", &labels, &["sleep", "600"]);
    let sandbox = Container::run(
        "k8s-pause",
        &[
            "--label",
            "io.kubernetes.docker.type=podsandbox",
            "--label",
            "io.kubernetes.pod.name=web-7d9f",
        ],
        &["sleep", "600"],
    );
    let agent = Agent::start(&config(docker::SOCKET).replace(
        "  containers: {interval: 300ms, timeout: 300ms}",
        "  containers: {interval: 300ms, timeout: 300ms, docker_labels: [com.example.team]}",
    ));
    let id = app.cgroup_id();
    let sample = agent.wait_scrape(
        Duration::from_secs(15),
        "the pod container with its identity",
        |s| {
            s.find(
                "container_memory_usage_bytes",
                &[("id", &id), ("pod", "web-7d9f")],
            )
            .next()
            .cloned()
        },
    );
    assert_eq!(sample.labels.get("namespace"), Some("shop"));
    assert_eq!(sample.labels.get("container"), Some("nginx"));
    assert_eq!(
        sample.labels.get("container_label_com_example_team"),
        Some("core")
    );
    assert!(
        sample.labels.iter().all(|l| !l.name.contains("secret")),
        "only allowlisted labels are copied: {}",
        sample.labels
    );
    // A container whose cgroup appears before its inspection is done is
    // reported once without identity; once inspected, a sandbox is left out.
    let sandbox_id = sandbox.cgroup_id();
    let gone = lookout_tests::wait_for(Duration::from_secs(5), || {
        agent
            .scrape()
            .value("container_memory_usage_bytes", &[("id", &sandbox_id)])
            .is_none()
            .then_some(())
    });
    assert!(gone.is_some(), "pod sandboxes are not reported");
}

#[test]
fn daemon_counts_and_data_usage_match_docker() {
    if !docker_ready() {
        return;
    }
    let _c = Container::run("df", &[], &["sleep", "600"]);
    let agent = start_agent();
    let s = agent.wait_scrape(
        Duration::from_secs(20),
        "docker counts and /system/df",
        |s| {
            (s.value("lookout_docker_up", &[])? == 1.0
                && s.value("lookout_docker_disk_usage_objects", &[("type", "images")])? >= 1.0)
                .then(|| Scrape::parse(s.text.clone()))
        },
    );
    let running: f64 = docker::docker(&["info", "--format", "{{.ContainersRunning}}"])
        .parse()
        .unwrap();
    let images: f64 = docker::docker(&["info", "--format", "{{.Images}}"])
        .parse()
        .unwrap();
    let reported = s
        .value("lookout_docker_containers", &[("state", "running")])
        .unwrap();
    // Other tests may start or stop containers meanwhile; allow a little drift.
    assert!(
        (reported - running).abs() <= 3.0,
        "running: agent {reported}, docker {running}"
    );
    assert_eq!(s.value("lookout_docker_images", &[]), Some(images));
    let version = docker::docker(&["version", "--format", "{{.Server.Version}}"]);
    assert!(
        s.find("lookout_docker_info", &[("version", &version)])
            .next()
            .is_some()
    );
    assert!(s.value("lookout_docker_data_size_bytes", &[]).unwrap() > 0.0);
    assert!(
        s.value("lookout_docker_disk_usage_bytes", &[("type", "images")])
            .unwrap()
            > 0.0
    );
    assert!(
        s.value(
            "lookout_docker_disk_usage_active_objects",
            &[("type", "containers")]
        )
        .unwrap()
            >= 1.0
    );
}
