//! An agent pushing into the collector, both real processes: an outage of
//! the collector loses nothing and duplicates nothing, and the collector
//! synthesizes `up` for the agent from its pushes.

use std::time::Duration;

use lookout_tests::{Agent, Collector, wait_for};

fn value_f64(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

#[test]
fn a_collector_outage_loses_and_duplicates_nothing_and_up_follows_the_agent() {
    let mut c = Collector::start("ingest:\n  agent_silence: 3s\n");
    let agent = Agent::start(&format!(
        "node_name: e2e-node\npush:\n  interval: 1s\n  outbox_dir: {}/outbox\n  endpoints:\n    - name: collector\n      url: http://{}/api/v1/write\n",
        tempfile::tempdir().unwrap().keep().display(),
        c.addr
    ));
    let per_batch = "process_resident_memory_bytes{job=\"lookout-agent\",instance=\"e2e-node\"}";
    let before = wait_for(Duration::from_secs(20), || {
        let e = c.export(per_batch);
        (e.len() == 1 && e[0].timestamps.len() >= 3).then(|| e[0].timestamps.len())
    });
    assert!(
        before.is_some(),
        "no pushes arrived; agent log:\n{}\ncollector log:\n{}",
        agent.log(),
        c.log()
    );
    let up = wait_for(Duration::from_secs(15), || {
        let e = c.export("up{job=\"lookout-agent\",instance=\"e2e-node\"}");
        e.first()
            .and_then(|s| s.values.last())
            .map(value_f64)
            .filter(|v| *v == 1.0)
    });
    assert_eq!(up, Some(1.0), "up for the pushing agent");
    let host_up = c.export("up{job=\"node-exporter\",instance=\"e2e-node\"}");
    assert_eq!(host_up.len(), 1, "up for the host job the agent pushes");

    c.stop();
    std::thread::sleep(Duration::from_secs(5));
    let queued = agent
        .scrape()
        .value("lookout_agent_outbox_bytes", &[("endpoint", "collector")]);
    assert!(
        queued.unwrap_or(0.0) > 0.0,
        "batches wait in the outbox during the outage"
    );
    c.restart();
    agent.wait_scrape(Duration::from_secs(30), "the outbox to drain", |s| {
        s.value("lookout_agent_outbox_bytes", &[("endpoint", "collector")])
            .filter(|v| *v == 0.0)
    });

    let e = c.export(per_batch);
    let ts = &e[0].timestamps;
    assert!(ts.windows(2).all(|w| w[0] < w[1]), "sorted, no duplicates");
    let gaps: Vec<i64> = ts
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|g| *g > 1_600)
        .collect();
    assert!(
        gaps.is_empty(),
        "one sample per 1s batch across the outage, no holes; gaps {gaps:?} in {ts:?}"
    );
    assert!(
        ts.len() >= before.unwrap_or(0) + 5,
        "the outage's batches arrived: {}",
        ts.len()
    );

    // The agent goes away: after the silence allowance, up turns 0.
    drop(agent);
    let down = wait_for(Duration::from_secs(20), || {
        let e = c.export("up{job=\"lookout-agent\",instance=\"e2e-node\"}");
        e.first()
            .and_then(|s| s.values.last())
            .map(value_f64)
            .filter(|v| *v == 0.0)
    });
    assert_eq!(
        down,
        Some(0.0),
        "up turns 0 for a silent agent; log:\n{}",
        c.log()
    );
    let host_down = c.export("up{job=\"node-exporter\",instance=\"e2e-node\"}");
    assert_eq!(host_down[0].values.last().map(value_f64), Some(0.0));
}
