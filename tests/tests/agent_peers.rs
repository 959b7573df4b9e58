//! The agent's output checked by real Prometheus tools: `promtool check
//! metrics`, and a Prometheus server scraping the agent.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use lookout_tests::docker::{self, Container};
use lookout_tests::{Agent, Prometheus, have_program, http_get, require, wait_for};

const CONFIG: &str = "samplers:
  host: {interval: 1s, timeout: 1s, mount_timeout: 500ms}
  containers: {interval: 1s, timeout: 1s}
  docker: {interval: 1s, timeout: 1s}
  kubelet: {enabled: false}
  kube_proxy: {enabled: false}
";

/// Names kept for compatibility that promtool's linter flags: node_exporter's
/// camelCase memory names (`node_memory_MemTotal_bytes`) and cAdvisor's
/// `container_memory_failcnt` counter. Rules and dashboards depend on those
/// exact names, so these findings are expected and nothing else is.
fn is_expected_lint(line: &str) -> bool {
    (line.starts_with("node_memory_")
        && line.ends_with("metric names should be written in 'snake_case' not 'camelCase'"))
        || line == "container_memory_failcnt counter metrics should have \"_total\" suffix"
}

#[test]
fn promtool_accepts_the_agents_metrics() {
    if !require(
        "promtool (Debian package prometheus)",
        have_program("promtool"),
    ) {
        return;
    }
    let with_docker = docker::available();
    let _c = with_docker.then(|| {
        Container::run(
            "promtool",
            &["--health-cmd", "true", "--health-interval", "1s"],
            &["sleep", "600"],
        )
    });
    let agent = Agent::start(CONFIG);
    let text = agent.wait_scrape(
        Duration::from_secs(15),
        "a scrape with every sampler's series",
        |s| {
            let complete = s.value("node_load1", &[]).is_some()
                && (!with_docker
                    || (s.value("lookout_docker_up", &[]) == Some(1.0)
                        && s.find("container_cpu_usage_seconds_total", &[]).count() > 0));
            complete.then(|| s.text.clone())
        },
    );
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // promtool exits 1 on a parse error and 3 when it only has lint findings.
    let code = out.status.code().unwrap_or(-1);
    assert!(
        code == 0 || code == 3,
        "promtool failed ({code}):\n{report}"
    );
    let unexpected: Vec<&str> = report
        .lines()
        .filter(|l| !l.trim().is_empty() && !is_expected_lint(l.trim()))
        .collect();
    assert!(
        unexpected.is_empty(),
        "promtool findings:\n{}",
        unexpected.join("\n")
    );
}

#[test]
fn prometheus_scrapes_the_agent() {
    if !require(
        "prometheus (Debian package prometheus)",
        have_program("prometheus"),
    ) {
        return;
    }
    let agent = Agent::start(CONFIG);
    let prom = Prometheus::start(
        &format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nscrape_configs:\n- job_name: lookout-agent\n  static_configs: [{{targets: ['{}']}}]\n",
            agent.addr
        ),
        &[],
    );
    let target = wait_for(Duration::from_secs(30), || {
        let r = http_get(prom.addr, "/api/v1/targets", &[]).ok()?;
        let v: serde_json::Value = serde_json::from_str(&r.body).ok()?;
        let t = v["data"]["activeTargets"].as_array()?.first()?.clone();
        (t["health"] == "up").then_some(t)
    })
    .unwrap_or_else(|| {
        panic!(
            "Prometheus never scraped the agent successfully; its log:\n{}",
            prom.log()
        )
    });
    assert_eq!(target["lastError"], "", "{target}");
    let samples = wait_for(Duration::from_secs(15), || {
        let v = prom.query("scrape_samples_scraped")?;
        v["value"][1]
            .as_str()?
            .parse::<f64>()
            .ok()
            .filter(|n| *n > 100.0)
    });
    assert!(
        samples.is_some(),
        "Prometheus stored fewer than 100 samples per scrape"
    );
    let cpus: f64 = prom
        .query("count(count by(cpu)(node_cpu_seconds_total))")
        .and_then(|v| v["value"][1].as_str().and_then(|s| s.parse().ok()))
        .expect("node_cpu_seconds_total is queryable");
    let expected = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as f64;
    assert!(
        cpus >= expected,
        "Prometheus sees {cpus} CPUs, this machine has at least {expected}"
    );
}
