//! The agent's kubelet summary sampler against the simulator's kubelet: one
//! cAdvisor-named CPU series per container of the node's pods, values as the
//! kubelet reports them, network per pod; and when the node dies, the
//! sampler says so and its series are withdrawn rather than left stale.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lookout_kubesim::{SimConfig, Simulator};
use lookout_tests::{Agent, Scrape, http_get, wait_for};
use serde_json::Value;

/// (namespace, pod, container)
type Key = (String, String, String);

/// What the kubelet reports per container: usageCoreNanoSeconds and
/// usageNanoCores (how fast the former grows).
struct Fetched {
    containers: BTreeMap<Key, (f64, f64)>,
    pods: BTreeSet<(String, String)>,
}

fn fetch_summary(addr: SocketAddr) -> Fetched {
    let r = http_get(addr, "/stats/summary", &[]).expect("GET /stats/summary");
    assert_eq!(r.status, 200, "summary answered {}: {}", r.status, r.body);
    let v: Value = serde_json::from_str(&r.body).expect("summary JSON");
    let mut containers = BTreeMap::new();
    let mut pods = BTreeSet::new();
    for pod in v["pods"].as_array().expect("pods") {
        let ns = pod["podRef"]["namespace"].as_str().expect("namespace");
        let name = pod["podRef"]["name"].as_str().expect("pod name");
        pods.insert((ns.to_string(), name.to_string()));
        for c in pod["containers"].as_array().expect("containers") {
            let cname = c["name"].as_str().expect("container name");
            let ns_total = c["cpu"]["usageCoreNanoSeconds"].as_f64().expect("cpu");
            let rate = c["cpu"]["usageNanoCores"].as_f64().expect("rate");
            containers.insert(
                (ns.to_string(), name.to_string(), cname.to_string()),
                (ns_total, rate),
            );
        }
    }
    Fetched { containers, pods }
}

fn cpu_series(s: &Scrape) -> BTreeMap<Key, f64> {
    s.find("container_cpu_usage_seconds_total", &[("cpu", "total")])
        .filter(|p| p.labels.get("container").is_some_and(|c| !c.is_empty()))
        .map(|p| {
            let l = |k: &str| p.labels.get(k).unwrap_or_default().to_string();
            ((l("namespace"), l("pod"), l("container")), p.value)
        })
        .collect()
}

fn success(s: &Scrape) -> Option<f64> {
    s.value(
        "lookout_agent_sampler_success",
        &[("sampler", "kubelet_summary")],
    )
}

#[test]
fn summary_series_follow_the_kubelet_and_go_when_it_dies() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let sim = rt
        .block_on(Simulator::start(SimConfig {
            nodes: 2,
            pods_per_node: 3,
            node_ip_block: 105,
            ..SimConfig::default()
        }))
        .expect("the simulator starts");
    let node = sim.addresses().nodes[1].clone();
    let kubelet = SocketAddr::new(node.ip.into(), sim.addresses().kubelet_port);

    let agent = Agent::start(&format!(
        "samplers:\n  host: {{enabled: false}}\n  containers: {{enabled: false}}\n  \
         docker: {{enabled: false}}\n  kubelet: {{enabled: false}}\n  \
         kube_proxy: {{enabled: false}}\n  kubelet_summary:\n    enabled: true\n    \
         url: http://{kubelet}/stats/summary\n    interval: 500ms\n    timeout: 400ms\n"
    ));

    // The kubelet's own answer just before and just after the scrape
    // brackets the values the agent can have sampled.
    let found = wait_for(Duration::from_secs(20), || {
        let before = fetch_summary(kubelet);
        let scrape = agent.scrape();
        let after = fetch_summary(kubelet);
        let got: BTreeSet<Key> = cpu_series(&scrape).into_keys().collect();
        let want: BTreeSet<Key> = after.containers.keys().cloned().collect();
        (!want.is_empty() && got == want && before.containers.keys().eq(after.containers.keys()))
            .then_some((before, scrape, after))
    });
    let Some((before, scrape, after)) = found else {
        panic!(
            "no CPU series for every container of the node's pods; last scrape:\n{}\nagent log:\n{}",
            agent.scrape().text,
            agent.log()
        );
    };
    assert_eq!(success(&scrape), Some(1.0), "{}", scrape.text);
    assert_eq!(after.pods.len(), 3, "the node runs 3 pods");

    for (key, value) in cpu_series(&scrape) {
        let (lo_ns, rate) = before.containers[&key];
        let (hi_ns, _) = after.containers[&key];
        // The agent sampled at most an interval plus a timeout before the
        // first fetch: allow two seconds of growth at the reported rate.
        let lo = lo_ns / 1e9 - rate / 1e9 * 2.0;
        let hi = hi_ns / 1e9 + 1e-6;
        assert!(
            (lo..=hi).contains(&value),
            "{key:?}: {value} not within [{lo}, {hi}]"
        );
    }
    for (ns, pod) in &after.pods {
        for name in [
            "container_network_receive_bytes_total",
            "container_network_transmit_bytes_total",
        ] {
            let labels = [
                ("namespace", ns.as_str()),
                ("pod", pod.as_str()),
                ("container", ""),
                ("interface", "eth0"),
            ];
            assert!(
                scrape.value(name, &labels).is_some(),
                "{name} missing for {ns}/{pod}:\n{}",
                scrape.text
            );
        }
        assert!(
            scrape
                .value(
                    "container_memory_working_set_bytes",
                    &[("namespace", ns), ("pod", pod), ("container", "")]
                )
                .is_some(),
            "pod-level memory missing for {ns}/{pod}"
        );
    }

    rt.block_on(sim.kill_node(&node.name))
        .expect("kill the node");
    let failed_at = Instant::now();
    agent.wait_scrape(
        Duration::from_secs(10),
        "the sampler failing and its series withdrawn",
        |s| {
            (success(s) == Some(0.0)
                && s.find("container_cpu_usage_seconds_total", &[])
                    .next()
                    .is_none()
                && s.find("container_network_receive_bytes_total", &[])
                    .next()
                    .is_none())
            .then_some(())
        },
    );
    // Many failed runs later, the failure has been logged once (twice if
    // the kill cut a request short and the error changed), not per run.
    std::thread::sleep(Duration::from_secs(3).saturating_sub(failed_at.elapsed()));
    let log = agent.log();
    let failures = log
        .lines()
        .filter(|l| l.contains("sampler kubelet_summary failed"))
        .count();
    assert!(
        (1..=2).contains(&failures),
        "{failures} failure lines:\n{log}"
    );
    // Still failing, still withdrawn.
    let s = agent.scrape();
    assert_eq!(success(&s), Some(0.0));
    assert!(
        s.find("container_memory_working_set_bytes", &[])
            .next()
            .is_none(),
        "{}",
        s.text
    );
}
