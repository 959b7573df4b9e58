//! Alert latency end to end on the real Docker Engine, with the shipped
//! rule pack and the example config's notification timings: a container
//! is killed, the embedded agent sees Docker's `die` event and pushes it at
//! once, the 2 s rule group fires `ContainerDied`, the route's 3 s
//! `group_wait` passes, and the webhook receives the notification.
//!
//! Each kill is timed from just before `docker kill` to the webhook's
//! arrival; the next kill waits until the previous alert has resolved and
//! its group is gone, so every kill meets a fresh group as an isolated crash
//! would. A burst of containers killed together is also checked to arrive
//! as one notification.
//!
//! Run with `scripts/bench-alert.sh` (release binaries); sizes:
//! LOOKOUT_BENCH_KILLS (20), LOOKOUT_BENCH_BURST (5).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lookout_tests::docker::{self, Container};
use lookout_tests::{CaptureServer, bin, free_port, http_get, wait_for};
use serde_json::Value;

struct Up {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The example config's route, pointed at the bench's webhook.
fn config(webhook: &str, rules: &str) -> String {
    format!(
        r#"
rules:
  files: ["{rules}"]
notify:
  route:
    receiver: bench
    group_by: [alertname, instance]
    group_wait: 3s
    group_interval: 10s
    repeat_interval: 4h
  receivers:
    - name: bench
      webhook_configs:
        - url: http://{webhook}/alerts
"#
    )
}

fn start(webhook: &str) -> Up {
    let dir = tempfile::tempdir().expect("temporary directory");
    let rules = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../rules/*.yaml");
    let cfg = dir.path().join("lookout.yaml");
    std::fs::write(&cfg, config(webhook, &rules.display().to_string())).expect("write config");
    let addr = format!("127.0.0.1:{}", free_port());
    let agent = format!("127.0.0.1:{}", free_port());
    let log = std::fs::File::create(dir.path().join("lookout.log")).expect("log file");
    let child = Command::new(bin("lookout"))
        .args([
            "up",
            "--listen",
            &addr,
            "--agent-listen",
            &agent,
            "--config",
        ])
        .arg(&cfg)
        .arg("--data")
        .arg(dir.path().join("data"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start lookout up");
    Up {
        child,
        addr,
        _dir: dir,
    }
}

/// Alerts (labels, status) of every webhook notification received so far,
/// with the index of the request that carried them.
fn notifications(server: &CaptureServer) -> Vec<(usize, String, Vec<Value>)> {
    server
        .requests()
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let v: Value = serde_json::from_slice(&r.body).ok()?;
            let status = v["status"].as_str()?.to_string();
            let alerts = v["alerts"].as_array()?.clone();
            Some((i, status, alerts))
        })
        .collect()
}

fn names_in(alerts: &[Value], status: &str) -> Vec<String> {
    alerts
        .iter()
        .filter(|a| a["status"] == status && a["labels"]["alertname"] == "ContainerDied")
        .filter_map(|a| a["labels"]["name"].as_str().map(str::to_string))
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn main() {
    if !docker::available() {
        eprintln!("alert latency bench: the Docker Engine is not reachable; nothing measured");
        std::process::exit(1);
    }
    docker::ensure_image();
    let kills: usize = std::env::var("LOOKOUT_BENCH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let burst: usize = std::env::var("LOOKOUT_BENCH_BURST")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let webhook = CaptureServer::start();
    let up = start(&webhook.addr.to_string());
    // Ready when the embedded agent's Docker series have reached the store.
    let ready = wait_for(Duration::from_secs(60), || {
        let addr = up.addr.parse().ok()?;
        let r = http_get(addr, "/api/v1/query?query=lookout_docker_up", &[]).ok()?;
        let v: Value = serde_json::from_str(&r.body).ok()?;
        (v["data"]["result"][0]["value"][1] == "1").then_some(())
    });
    if ready.is_none() {
        eprintln!("alert latency bench: lookout up did not report Docker within 60 s");
        std::process::exit(1);
    }
    println!(
        "alert latency: {kills} kills, shipped rules (2 s group), group_wait 3 s, webhook receiver"
    );
    let mut latencies = Vec::with_capacity(kills);
    for k in 0..kills {
        let c = Container::run("alert", &[], &["sleep", "600"]);
        // Let the agent's inventory see the container run.
        std::thread::sleep(Duration::from_millis(1500));
        let seen = notifications(&webhook).len();
        let t0 = Instant::now();
        docker::docker(&["kill", &c.id]);
        let arrived = wait_for(Duration::from_secs(60), || {
            notifications(&webhook)
                .into_iter()
                .skip(seen)
                .any(|(_, status, alerts)| {
                    status == "firing" && names_in(&alerts, "firing").contains(&c.name)
                })
                .then(Instant::now)
        });
        let Some(at) = arrived else {
            eprintln!("kill {k}: no notification within 60 s");
            std::process::exit(1);
        };
        let latency = at.duration_since(t0).as_secs_f64();
        println!("  kill {:>2}: {latency:.2} s", k + 1);
        latencies.push(latency);
        // Wait for the resolution, so the next kill meets a fresh group.
        let resolved = wait_for(Duration::from_secs(90), || {
            notifications(&webhook)
                .into_iter()
                .skip(seen)
                .any(|(_, _, alerts)| names_in(&alerts, "resolved").contains(&c.name))
                .then_some(())
        });
        if resolved.is_none() {
            eprintln!("kill {k}: no resolved notification within 90 s");
            std::process::exit(1);
        }
        // The group is removed at the flush that reported the resolution.
        std::thread::sleep(Duration::from_millis(500));
    }
    let mut sorted = latencies.clone();
    sorted.sort_by(f64::total_cmp);
    let p50 = percentile(&sorted, 0.5);
    let p99 = percentile(&sorted, 0.99);
    let max = sorted.last().copied().unwrap_or(f64::NAN);
    println!(
        "alert latency over {} kills: p50 {p50:.2} s, p99 {p99:.2} s, max {max:.2} s (target p99 <= 10 s: {})",
        sorted.len(),
        if p99 <= 10.0 { "met" } else { "NOT met" }
    );

    // A burst with one cause: containers killed together arrive together.
    let group: Vec<Container> = (0..burst)
        .map(|_| Container::run("burst", &[], &["sleep", "600"]))
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let seen = notifications(&webhook).len();
    let t0 = Instant::now();
    let mut args = vec!["kill"];
    args.extend(group.iter().map(|c| c.id.as_str()));
    docker::docker(&args);
    let names: Vec<String> = group.iter().map(|c| c.name.clone()).collect();
    let first = wait_for(Duration::from_secs(60), || {
        notifications(&webhook)
            .into_iter()
            .skip(seen)
            .find(|(_, status, alerts)| {
                status == "firing" && !names_in(alerts, "firing").is_empty()
            })
            .map(|n| (n, Instant::now()))
    });
    let Some(((_, _, alerts), at)) = first else {
        eprintln!("burst: no notification within 60 s");
        std::process::exit(1);
    };
    // Anything more about these containers within the next 5 s would be
    // a second message for one cause.
    std::thread::sleep(Duration::from_secs(5));
    let later = notifications(&webhook)
        .into_iter()
        .skip(seen)
        .filter(|(_, status, alerts)| {
            status == "firing" && names_in(alerts, "firing").iter().any(|n| names.contains(n))
        })
        .count();
    let in_first = names_in(&alerts, "firing")
        .iter()
        .filter(|n| names.contains(n))
        .count();
    println!(
        "burst of {burst} kills: first notification after {:.2} s carried {in_first} of {burst} alerts; firing notifications for the burst: {later}",
        at.duration_since(t0).as_secs_f64()
    );
    println!(
        "alert bench: kills={} p50={p50:.2}s p99={p99:.2}s max={max:.2}s burst={burst} grouped_into={later} notification(s)",
        sorted.len()
    );
}
