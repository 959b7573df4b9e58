//! Real peers writing into the collector: Debian's Prometheus scraping
//! Debian's node_exporter and remote-writing what it scrapes.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use lookout_tests::{
    Collector, Scrape, free_port, have_program, http_get, require, url_encode, wait_for,
};

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn prometheus_remote_writes_node_exporter_into_the_collector() {
    if !require(
        "prometheus (Debian package prometheus)",
        have_program("prometheus"),
    ) || !require(
        "prometheus-node-exporter (Debian package prometheus-node-exporter)",
        have_program("prometheus-node-exporter"),
    ) {
        return;
    }
    let exporter_port = free_port();
    let exporter_addr = format!("127.0.0.1:{exporter_port}").parse().unwrap();
    let _exporter = Killed(
        Command::new("prometheus-node-exporter")
            .arg(format!("--web.listen-address=127.0.0.1:{exporter_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node_exporter"),
    );
    let exposed = wait_for(Duration::from_secs(15), || {
        http_get(exporter_addr, "/metrics", &[])
            .ok()
            .filter(|r| r.status == 200)
    })
    .expect("node_exporter serves /metrics");
    let exposed = Scrape::parse(exposed.body);

    let c = Collector::start("");
    let prom = lookout_tests::Prometheus::start(
        &format!(
            "global: {{scrape_interval: 1s}}\n\
             scrape_configs:\n  - job_name: node\n    static_configs: [{{targets: ['{exporter_addr}']}}]\n\
             remote_write:\n  - url: http://{}/api/v1/write\n    queue_config: {{batch_send_deadline: 1s, max_samples_per_send: 2000}}\n",
            c.addr
        ),
        &[],
    );
    let names = wait_for(Duration::from_secs(45), || {
        let v = c.api(&format!(
            "/api/v1/label/__name__/values?match[]={}",
            url_encode("{job=\"node\"}")
        ));
        let names: BTreeSet<String> = v
            .as_array()?
            .iter()
            .filter_map(|n| n.as_str().map(str::to_string))
            .collect();
        names.contains("node_boot_time_seconds").then_some(names)
    });
    let names = names.unwrap_or_else(|| {
        panic!(
            "no node_exporter series arrived; prometheus log:\n{}\ncollector log:\n{}",
            prom.log(),
            c.log()
        )
    });
    let expected: BTreeSet<String> = exposed.samples.iter().map(|s| s.name.to_string()).collect();
    let absent: Vec<&String> = expected.difference(&names).collect();
    assert!(
        absent.len() <= expected.len() / 50,
        "{} of {} exporter metric names missing in the collector, e.g. {:?}",
        absent.len(),
        expected.len(),
        &absent[..absent.len().min(10)]
    );
    assert!(names.contains("up"), "Prometheus's own up for the target");

    // Constant series carry the exporter's exact values.
    for name in ["node_boot_time_seconds", "node_memory_MemTotal_bytes"] {
        let want = exposed
            .value(name, &[])
            .unwrap_or_else(|| panic!("{name} exposed"));
        let got = c.export(&format!("{name}{{job=\"node\"}}"));
        assert_eq!(got.len(), 1, "{name}");
        assert!(
            got[0].values.iter().all(|v| v.as_f64() == Some(want)),
            "{name}: exporter says {want}, collector has {:?}",
            got[0].values
        );
        assert_eq!(
            got[0].labels.get("instance").map(String::as_str),
            Some(exporter_addr.to_string().as_str())
        );
    }
    let s = c.scrape();
    assert!(
        s.value("lookout_ingest_requests_total", &[("code", "204")])
            .unwrap_or(0.0)
            >= 1.0
    );
    assert_eq!(s.value("lookout_tsdb_invalid_series_total", &[]), Some(0.0));
}
