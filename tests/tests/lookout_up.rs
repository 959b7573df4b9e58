//! `lookout up`: the whole system on one machine. The collector runs with
//! embedded storage, the embedded agent pushes into it, and both say where
//! they are.

use std::process::{Command, Stdio};
use std::time::Duration;

use lookout_tests::{Scrape, bin, free_port, http_get, url_encode, wait_for};

#[test]
fn lookout_up_runs_the_collector_with_an_agent_pushing_into_it() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("up.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let agent_cfg = dir.path().join("agent.yaml");
    std::fs::write(&agent_cfg, "push:\n  interval: 1s\n").unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let agent_listen = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(bin("lookout"))
        .args(["up", "--listen", &listen, "--agent-listen", &agent_listen])
        .arg("--data")
        .arg(dir.path().join("data"))
        .arg("--agent-config")
        .arg(&agent_cfg)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let addr = listen.parse().unwrap();
    let agent_addr = agent_listen.parse().unwrap();
    let scrape = wait_for(Duration::from_secs(15), || {
        http_get(agent_addr, "/metrics", &[])
            .ok()
            .filter(|r| r.status == 200 && r.body.contains("node_load1"))
    });
    let stored = wait_for(Duration::from_secs(20), || {
        http_get(
            addr,
            &format!(
                "/api/v1/series?match[]={}",
                url_encode("node_load1{job=\"node-exporter\"}")
            ),
            &[],
        )
        .ok()
        .filter(|r| r.status == 200 && r.body.contains("node_load1"))
    });
    let up = wait_for(Duration::from_secs(20), || {
        http_get(
            addr,
            &format!(
                "/api/v1/series?match[]={}",
                url_encode("up{job=\"lookout-agent\"}")
            ),
            &[],
        )
        .ok()
        .filter(|r| r.status == 200 && r.body.contains("lookout-agent"))
    });
    // SAFETY: kill has no memory effects.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = wait_for(Duration::from_secs(10), || child.try_wait().ok().flatten());
    let text = std::fs::read_to_string(&log_path).unwrap();
    let scrape =
        scrape.unwrap_or_else(|| panic!("the embedded agent did not serve /metrics; log:\n{text}"));
    assert!(
        stored.is_some(),
        "the agent's samples reached the collector; log:\n{text}"
    );
    assert!(
        up.is_some(),
        "the collector synthesizes up for its agent; log:\n{text}"
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "lookout up stops cleanly on SIGTERM; log:\n{text}"
    );
    assert!(text.contains("monitoring host every 10s"), "{text}");
    assert!(
        text.contains(&format!("collector on http://{listen}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("Metrics at http://{agent_listen}/metrics")),
        "{text}"
    );
    let s = Scrape::parse(scrape.body);
    assert_eq!(
        s.value("lookout_agent_sampler_success", &[("sampler", "host")]),
        Some(1.0)
    );
    assert!(dir.path().join("data/storage/wal").is_dir());
}
