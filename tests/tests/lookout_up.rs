//! `lookout up`: the whole system on one machine. Until the collector lands
//! it runs the agent in-process; it must say what it monitors and where.

use std::process::{Command, Stdio};
use std::time::Duration;

use lookout_tests::{Scrape, bin, free_port, http_get, wait_for};

#[test]
fn lookout_up_says_what_it_monitors_and_serves_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("up.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = Command::new(bin("lookout"))
        .args(["up", "--listen", &listen])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let addr = listen.parse().unwrap();
    let scrape = wait_for(Duration::from_secs(15), || {
        http_get(addr, "/metrics", &[])
            .ok()
            .filter(|r| r.status == 200 && r.body.contains("node_load1"))
    });
    // SAFETY: kill has no memory effects.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = wait_for(Duration::from_secs(5), || child.try_wait().ok().flatten());
    let text = std::fs::read_to_string(&log_path).unwrap();
    let scrape =
        scrape.unwrap_or_else(|| panic!("lookout up did not serve /metrics; log:\n{text}"));
    assert!(
        status.is_some_and(|s| s.success()),
        "lookout up stops cleanly on SIGTERM; log:\n{text}"
    );
    assert!(text.contains("monitoring host every 10s"), "{text}");
    assert!(
        text.contains("docker (unix:///var/run/docker.sock)"),
        "{text}"
    );
    assert!(
        text.contains(&format!("Metrics at http://{listen}/metrics")),
        "{text}"
    );
    let s = Scrape::parse(scrape.body);
    assert_eq!(
        s.value("lookout_agent_sampler_success", &[("sampler", "host")]),
        Some(1.0)
    );
}
