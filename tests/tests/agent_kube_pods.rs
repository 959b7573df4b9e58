//! The agent's watch of its own node's pods against the simulator's API
//! server, through a kubeconfig as a systemd agent would have it: the agent
//! knows exactly the pods the API server places on its node, the kubelet
//! summary's container series carry each container's image from the pod
//! spec, and crash loops, scaling, an unreachable API server and a
//! restarted one (new history, so a fresh list) all end with the same
//! agreement.
//!
//! The simulator runs in this process; the agent is the real binary.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use lookout_kubesim::{SimConfig, SimHandle, Simulator};
use lookout_tests::{Agent, Scrape, http_get, wait_for};
use serde_json::Value;

/// The node the agent runs as.
const NODE: &str = "node-0002";
/// Deadline for something that is due.
const DUE: Duration = Duration::from_secs(30);

/// (namespace, name)
type PodKey = (String, String);
/// (namespace, pod, container)
type ContainerKey = (String, String, String);

/// A pod as the API server has it.
#[derive(Debug)]
struct ApiPod {
    node: String,
    /// The owning ReplicaSet, if any.
    replica_set: Option<String>,
    /// Container name → image.
    containers: BTreeMap<String, String>,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn sim_config(pods_per_node: usize, node_ip_block: u8, port_base: Option<u16>) -> SimConfig {
    SimConfig {
        nodes: 3,
        pods_per_node,
        node_ip_block,
        port_base,
        bookmark_interval: Duration::from_secs(1),
        crashloop_interval: Duration::from_millis(500),
        rollout_delay: Duration::from_millis(200),
        ..SimConfig::default()
    }
}

/// The first of `count` consecutive loopback ports that are free now, so
/// that a restarted simulator can take the same ones.
fn free_port_block(count: usize) -> u16 {
    let start = std::process::id() % 20000;
    (0..200u32)
        .map(|i| (20000 + (start + i * 64) % 20000) as u16)
        .find(|&base| {
            let held: Vec<_> = (0..count as u16)
                .map_while(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).ok())
                .collect();
            held.len() == count
        })
        .expect("a block of free ports")
}

fn socket_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap_or_else(|e| panic!("{url} is not http://ip:port: {e}"))
}

/// GETs a list from the API server, without any selector: the test's view
/// must not depend on the simulator's field selectors it checks.
fn api_list(api: SocketAddr, path: &str) -> Vec<Value> {
    let r = http_get(api, path, &[]).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(
        r.status, 200,
        "GET {path} answered {}: {}",
        r.status, r.body
    );
    let v: Value = serde_json::from_str(&r.body).expect("a JSON list");
    v["items"].as_array().cloned().unwrap_or_default()
}

fn api_pods(api: SocketAddr) -> BTreeMap<PodKey, ApiPod> {
    let mut out = BTreeMap::new();
    for p in api_list(api, "/api/v1/pods") {
        let s = |ptr: &str| p.pointer(ptr).and_then(Value::as_str).unwrap_or("");
        let containers = p["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                (
                    c["name"].as_str().unwrap_or("").to_string(),
                    c["image"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        let replica_set = p["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|o| o["kind"] == "ReplicaSet")
            .and_then(|o| o["name"].as_str())
            .map(str::to_string);
        out.insert(
            (
                s("/metadata/namespace").to_string(),
                s("/metadata/name").to_string(),
            ),
            ApiPod {
                node: s("/spec/nodeName").to_string(),
                replica_set,
                containers,
            },
        );
    }
    out
}

/// What the agent should show for the API server's pods of [`NODE`]:
/// every container of every pod, with its spec's image.
fn expected_images(pods: &BTreeMap<PodKey, ApiPod>) -> BTreeMap<ContainerKey, Option<String>> {
    pods.iter()
        .filter(|(_, p)| p.node == NODE)
        .flat_map(|((ns, name), p)| {
            p.containers
                .iter()
                .map(move |(c, image)| ((ns.clone(), name.clone(), c.clone()), Some(image.clone())))
        })
        .collect()
}

/// The agent's container CPU series from the kubelet summary, with their
/// `image` label (`None` when absent).
fn agent_images(s: &Scrape) -> BTreeMap<ContainerKey, Option<String>> {
    s.find("container_cpu_usage_seconds_total", &[("cpu", "total")])
        .filter(|p| p.labels.get("container").is_some_and(|c| !c.is_empty()))
        .map(|p| {
            let l = |k: &str| p.labels.get(k).unwrap_or_default().to_string();
            (
                (l("namespace"), l("pod"), l("container")),
                p.labels.get("image").map(str::to_string),
            )
        })
        .collect()
}

fn gauge(s: &Scrape, name: &str) -> Option<f64> {
    s.value(name, &[])
}

/// Waits until the agent's watch is current, knows as many pods as the API
/// server places on [`NODE`], and every container series of those pods
/// (the kubelet's view) carries its image; returns the API server's pods.
fn wait_in_sync(agent: &Agent, api: SocketAddr, what: &str) -> BTreeMap<PodKey, ApiPod> {
    let mut last_want = BTreeMap::new();
    let found = wait_for(DUE, || {
        let pods = api_pods(api);
        let want = expected_images(&pods);
        let own = pods.values().filter(|p| p.node == NODE).count();
        let s = agent.scrape();
        let ok = gauge(&s, "lookout_agent_kube_watch_up") == Some(1.0)
            && gauge(&s, "lookout_agent_kube_pods") == Some(own as f64)
            && agent_images(&s) == want;
        last_want = want;
        ok.then_some(pods)
    });
    found.unwrap_or_else(|| {
        panic!(
            "{what}: the agent does not agree with the API server on {NODE}'s pods\n\
             want (namespace, pod, container) → image:\n{last_want:#?}\nlast scrape:\n{}\nagent log:\n{}",
            agent.scrape().text,
            agent.log()
        )
    })
}

fn start_agent(sim: &SimHandle, dir: &Path) -> Agent {
    let kubeconfig = dir.join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let node = sim
        .addresses()
        .nodes
        .iter()
        .find(|n| n.name == NODE)
        .expect("the node")
        .clone();
    let kubelet = SocketAddr::new(node.ip.into(), sim.addresses().kubelet_port);
    Agent::start(&format!(
        "node_name: {NODE}\n\
         kubernetes:\n  enabled: true\n  kubeconfig: {kubeconfig}\n\
         samplers:\n  host: {{enabled: false}}\n  containers: {{enabled: false}}\n  \
         docker: {{enabled: false}}\n  kubelet: {{enabled: false}}\n  \
         kube_proxy: {{enabled: false}}\n  kubelet_summary:\n    enabled: true\n    \
         url: http://{kubelet}/stats/summary\n    interval: 500ms\n    timeout: 400ms\n",
        kubeconfig = kubeconfig.display()
    ))
}

#[test]
fn the_agent_knows_its_nodes_pods_and_follows_them() {
    let rt = runtime();
    let sim = rt
        .block_on(Simulator::start(sim_config(5, 106, None)))
        .expect("the simulator starts");
    let api = socket_of(sim.balancer_url());
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start_agent(&sim, dir.path());
    // Crash loops and rollouts run as tasks of the runtime.
    let _guard = rt.enter();

    // Several nodes, and the agent knows exactly its own node's pods.
    let pods = wait_in_sync(&agent, api, "at start");
    let own: Vec<&PodKey> = pods
        .iter()
        .filter(|(_, p)| p.node == NODE)
        .map(|(k, _)| k)
        .collect();
    assert_eq!(own.len(), 5, "the node runs 5 pods");
    let nodes: BTreeSet<&str> = pods.values().map(|p| p.node.as_str()).collect();
    assert_eq!(nodes.len(), 3, "pods on three nodes: {nodes:?}");
    let s = agent.scrape();
    // Pod-level series keep no image, as cAdvisor's pod cgroups.
    let pod_level: Vec<_> = s
        .find("container_cpu_usage_seconds_total", &[("container", "")])
        .collect();
    assert_eq!(pod_level.len(), 5, "{}", s.text);
    assert!(
        pod_level.iter().all(|p| p.labels.get("image").is_none()),
        "{}",
        s.text
    );
    assert!(
        agent
            .log()
            .contains(&format!("listed 5 pods of node {NODE}")),
        "{}",
        agent.log()
    );

    // A crash loop changes the pod's status again and again: the updates
    // arrive, and the pod stays known once, with its image.
    let events = |s: &Scrape| gauge(s, "lookout_agent_kube_watch_events_total").unwrap_or(0.0);
    let before = events(&agent.scrape());
    let (ns, pod) = own
        .iter()
        .find(|(ns, _)| ns != "kube-system")
        .map(|(ns, name)| (ns.clone(), name.clone()))
        .expect("an application pod on the node");
    sim.crashloop(&ns, &pod).expect("crash loop");
    agent.wait_scrape(DUE, "the crash loop's updates", |s| {
        (events(s) >= before + 3.0).then_some(())
    });
    let after_crashes = wait_in_sync(&agent, api, "during a crash loop");
    assert_eq!(after_crashes.len(), pods.len());
    assert_eq!(
        gauge(&agent.scrape(), "lookout_agent_kube_watch_restarts_total"),
        Some(0.0),
        "updates need no new list"
    );

    // A Deployment with a pod here, scaled to nothing: its pods are deleted
    // and leave the agent's set; scaled up again, new pods come, some here.
    let rs = pods
        .iter()
        .filter(|(_, p)| p.node == NODE)
        .find_map(|((ns, _), p)| Some((ns.clone(), p.replica_set.clone()?)))
        .expect("a Deployment's pod on the node");
    let deployment = api_list(
        api,
        &format!("/apis/apps/v1/namespaces/{}/replicasets", rs.0),
    )
    .into_iter()
    .find(|r| r["metadata"]["name"] == rs.1.as_str())
    .and_then(|r| {
        r["metadata"]["ownerReferences"][0]["name"]
            .as_str()
            .map(str::to_string)
    })
    .expect("the ReplicaSet's Deployment");
    let owned_here = |pods: &BTreeMap<PodKey, ApiPod>| {
        pods.values()
            .filter(|p| p.node == NODE && p.replica_set.as_deref() == Some(rs.1.as_str()))
            .count()
    };
    sim.scale(&rs.0, &deployment, 0, false).expect("scale to 0");
    let scaled_down = wait_for(DUE, || {
        let pods = api_pods(api);
        (owned_here(&pods) == 0).then_some(())
    });
    assert!(scaled_down.is_some(), "{deployment} scaled to 0");
    let pods = wait_in_sync(&agent, api, "after scaling to 0");
    assert!(pods.values().filter(|p| p.node == NODE).count() < 5);
    sim.scale(&rs.0, &deployment, 6, false).expect("scale to 6");
    let scaled_up = wait_for(DUE, || {
        let pods = api_pods(api);
        (owned_here(&pods) > 0).then_some(())
    });
    assert!(scaled_up.is_some(), "{deployment} has pods on {NODE} again");
    wait_in_sync(&agent, api, "after scaling to 6");

    // The API server unreachable: the watch says so, and is current again
    // once it is back.
    let restarts = |s: &Scrape| gauge(s, "lookout_agent_kube_watch_restarts_total");
    rt.block_on(sim.break_balancer())
        .expect("break the balancer");
    agent.wait_scrape(DUE, "the watch down", |s| {
        (gauge(s, "lookout_agent_kube_watch_up") == Some(0.0)).then_some(())
    });
    let s = agent.scrape();
    assert_eq!(restarts(&s), Some(1.0), "{}", s.text);
    // Meanwhile the pods known stay known: images need no API server.
    assert_eq!(
        agent_images(&s).values().filter(|i| i.is_none()).count(),
        0,
        "{}",
        s.text
    );
    rt.block_on(sim.repair_balancer())
        .expect("repair the balancer");
    wait_in_sync(&agent, api, "after the balancer is repaired");
    let log = agent.log();
    let warned = format!("the watch of node {NODE}'s pods through");
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains(&warned)),
        "the failure is logged as a warning:\n{log}"
    );
    assert!(
        log.contains("the watch is current again"),
        "the recovery is logged:\n{log}"
    );
}

#[test]
fn after_the_api_server_restarts_the_agent_lists_again() {
    let rt = runtime();
    let port_base = free_port_block(sim_config(5, 107, None).port_count());
    let sim = rt
        .block_on(Simulator::start(sim_config(5, 107, Some(port_base))))
        .expect("the simulator starts");
    let api = socket_of(sim.balancer_url());
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start_agent(&sim, dir.path());
    let before = wait_in_sync(&agent, api, "at start");

    {
        let _guard = rt.enter();
        sim.shutdown();
    }
    agent.wait_scrape(DUE, "the watch down while nothing answers", |s| {
        (gauge(s, "lookout_agent_kube_watch_up") == Some(0.0)).then_some(())
    });
    // The new simulator has a new history (the agent's resourceVersion is
    // gone) and three pods a node, all new: only a new list can drop the
    // five the agent knew.
    let sim = rt
        .block_on(Simulator::start(sim_config(3, 107, Some(port_base))))
        .expect("the simulator restarts on the same ports");
    let after = wait_in_sync(&agent, api, "after the restart");
    let own = |pods: &BTreeMap<PodKey, ApiPod>| -> BTreeSet<PodKey> {
        pods.iter()
            .filter(|(_, p)| p.node == NODE)
            .map(|(k, _)| k.clone())
            .collect()
    };
    assert_eq!(own(&after).len(), 3);
    assert_ne!(
        own(&before),
        own(&after),
        "the restarted cluster has new pods"
    );
    let s = agent.scrape();
    assert!(
        gauge(&s, "lookout_agent_kube_watch_restarts_total").is_some_and(|r| r >= 1.0),
        "{}",
        s.text
    );
    drop(sim);
}
