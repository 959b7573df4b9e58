//! The collector following a simulated Kubernetes cluster through the real
//! kube client, and probing its simulated router: the shipped rule packs
//! and the example config's inhibit rules turn each fault into its one
//! alert at a webhook, and nothing else.
//!
//! The simulator (`lookout-kubesim`) runs in this process; the collector,
//! the webhook receiver and, where a node's own view matters, lookout-agents
//! pushing for their nodes are real processes and sockets. Time is
//! compressed: leases renew every second, a heartbeat is lost after 3 s,
//! rule groups evaluate every second, and every `for` of the shipped packs
//! is divided by 5 (the workload pack's by 20 where a test needs its
//! minutes-long `for`s to pass), which keeps their order: a dead node's KubernetesNodeDown still fires
//! before its KubeletDown, the balancer incident before any node alert.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use lookout_kubesim::{Component, SimConfig, SimHandle, Simulator};
use lookout_tests::{Agent, Collector, WebhookReceiver, wait_for};

/// Deadline for something that is due.
const DUE: Duration = Duration::from_secs(90);

struct Cluster {
    rt: tokio::runtime::Runtime,
    kubeconfig: PathBuf,
    sim: Option<SimHandle>,
    collector: Collector,
    hook: WebhookReceiver,
    dir: tempfile::TempDir,
}

fn sim_config(nodes: usize, ip_block: u8, port_base: Option<u16>) -> SimConfig {
    SimConfig {
        nodes,
        pods_per_node: 3,
        apiservers: 3,
        lease_renew: Duration::from_secs(1),
        node_grace: Duration::from_secs(3),
        bookmark_interval: Duration::from_secs(1),
        node_ip_block: ip_block,
        crashloop_interval: Duration::from_secs(1),
        rollout_delay: Duration::from_millis(500),
        port_base,
        ..SimConfig::default()
    }
}

/// `30s` → seconds.
fn seconds(d: &str) -> Option<f64> {
    let (n, unit) = d.split_at(d.find(|c: char| c.is_ascii_alphabetic())?);
    let n: f64 = n.parse().ok()?;
    Some(match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    })
}

/// A shipped pack with its group intervals set to 1 s, and every `for` and
/// minutes-long range window divided by `factor`.
fn compressed(text: &str, factor: f64) -> String {
    let window = window_rewriter();
    text.lines()
        .map(|l| {
            let l = &window(l, factor);
            let body = l.trim_start();
            let indent = &l[..l.len() - body.len()];
            if let Some(v) = body.strip_prefix("for: ")
                && let Some(s) = seconds(v.trim())
            {
                return format!(
                    "{indent}for: {}ms\n",
                    ((s / factor) * 1000.0).round() as u64
                );
            }
            if body.starts_with("interval: ") {
                return format!("{indent}interval: 1s\n");
            }
            format!("{l}\n")
        })
        .collect()
}

/// Rewrites range windows such as `[10m]` to `[<seconds / factor>s]`.
fn window_rewriter() -> impl Fn(&str, f64) -> String {
    |line: &str, factor: f64| {
        let mut out = String::with_capacity(line.len());
        let mut rest = line;
        while let Some(open) = rest.find('[') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            match after.find(']') {
                Some(close) if seconds(&after[..close]).is_some_and(|s| s >= 60.0) => {
                    let s = seconds(&after[..close]).unwrap_or(0.0) / factor;
                    out.push_str(&format!("[{}s]", s.round().max(1.0) as u64));
                    rest = &after[close + 1..];
                }
                _ => {
                    out.push('[');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The shipped packs, compressed, as (file name, text): every `for` divided
/// by 5, the workload pack's by `workload_factor`.
fn packs(workload_factor: f64) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(repo().join("rules"))
        .expect("rules/")
        .flatten()
    {
        let p = e.path();
        if p.extension().is_none_or(|x| x != "yaml") {
            continue;
        }
        let name = p.file_name().expect("name").to_string_lossy().to_string();
        let factor = if name == "kubernetes-workloads.yaml" {
            workload_factor
        } else {
            5.0
        };
        let text = std::fs::read_to_string(&p).expect("read pack");
        out.push((format!("pack-{name}"), compressed(&text, factor)));
    }
    assert!(out.len() >= 6, "the shipped packs are there: {out:?}");
    out
}

/// The example config's inhibit rules, as YAML to put under `notify:`.
fn shipped_inhibit_rules() -> String {
    let text = std::fs::read_to_string(repo().join("deploy/examples/lookout-alerting.yaml"))
        .expect("example config");
    let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("example yaml");
    let rules = v["notify"]["inhibit_rules"].clone();
    assert!(
        rules.as_sequence().is_some_and(|s| !s.is_empty()),
        "the example has inhibit rules"
    );
    let mut wrapper = serde_yaml_ng::Mapping::new();
    wrapper.insert("inhibit_rules".into(), rules);
    let yaml = serde_yaml_ng::to_string(&wrapper).expect("yaml");
    yaml.lines().map(|l| format!("  {l}\n")).collect()
}

impl Cluster {
    fn start(cfg: SimConfig, workload_factor: f64) -> Cluster {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let sim = rt
            .block_on(Simulator::start(cfg))
            .expect("the simulator starts");
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = dir.path().join("kubeconfig");
        sim.write_kubeconfig(&kubeconfig).expect("kubeconfig");
        let a = sim.addresses().clone();
        let hook = WebhookReceiver::start();
        let config = format!(
            "ingest:\n  agent_silence: 3s\n\
             kube:\n  enabled: true\n  kubeconfig: {kubeconfig}\n  interval: 1s\n  \
             node_heartbeat_grace: 3s\n  probes:\n    interval: 1s\n    timeout: 800ms\n    \
             scheduler: [{sched}]\n    controller_manager: [{cm}]\n    etcd: [{etcd}]\n    \
             kubelet_health_port: {kubelet}\n    kube_proxy_health_port: {proxy}\n    \
             routers:\n      - name: sim\n        url: {router}\n  \
             incident:\n    min_nodes: 3\n    lost_ratio: 0.5\n    hold: 5s\n\
             rules:\n  files: [\"pack-*.yaml\"]\n  evaluation_interval: 1s\n  resend_delay: 2s\n\
             notify:\n  route:\n    receiver: hook\n    group_by: [alertname, instance, node]\n    \
             group_wait: 1s\n    group_interval: 1s\n    repeat_interval: 1h\n    routes:\n      \
             - matchers: ['alertname=\"Watchdog\"']\n        receiver: blackhole\n  \
             receivers:\n    - name: blackhole\n    - name: hook\n      webhook_configs:\n        \
             - url: {hook}\n{inhibit}",
            kubeconfig = kubeconfig.display(),
            sched = a.scheduler,
            cm = a.controller_manager,
            etcd = a.etcd,
            kubelet = a.kubelet_healthz_port,
            proxy = a.kube_proxy_port,
            router = a.routers.first().expect("the simulator runs a router"),
            hook = hook.url(),
            inhibit = shipped_inhibit_rules(),
        );
        let packs = packs(workload_factor);
        let files: Vec<(&str, &str)> = packs
            .iter()
            .map(|(n, t)| (n.as_str(), t.as_str()))
            .collect();
        let collector = Collector::start_with_files(&config, &files);
        let c = Cluster {
            rt,
            kubeconfig,
            sim: Some(sim),
            collector,
            hook,
            dir,
        };
        c.wait_synced();
        c
    }

    /// A lookout-agent as it runs on `node`: host metrics, the node's
    /// kubelet and kube-proxy health, the kubelet summary, and the watch of
    /// the node's pods, pushed to the collector every second.
    fn start_agent(&self, node: &str) -> Agent {
        let a = self.sim().addresses();
        let ip = a
            .nodes
            .iter()
            .find(|n| n.name == node)
            .unwrap_or_else(|| panic!("{node} is simulated"))
            .ip;
        let outbox = self.dir.path().join(format!("outbox-{node}"));
        Agent::start(&format!(
            "node_name: {node}\n\
             kubernetes:\n  enabled: true\n  kubeconfig: {kubeconfig}\n\
             samplers:\n  containers: {{enabled: false}}\n  docker: {{enabled: false}}\n  \
             kubelet:\n    url: http://{ip}:{kubelet}/healthz\n  \
             kube_proxy:\n    url: http://{ip}:{proxy}/healthz\n  \
             kubelet_summary:\n    enabled: true\n    url: http://{ip}:{summary}/stats/summary\n\
             push:\n  interval: 1s\n  outbox_dir: {outbox}\n  endpoints:\n    \
             - name: collector\n      url: http://{collector}/api/v1/write\n",
            kubeconfig = self.kubeconfig.display(),
            kubelet = a.kubelet_healthz_port,
            proxy = a.kube_proxy_port,
            summary = a.kubelet_port,
            outbox = outbox.display(),
            collector = self.collector.addr,
        ))
    }

    /// Waits until the collector hears from the agent of `node` and has
    /// its view of the node's pods.
    fn wait_agent_pushing(&self, node: &str) {
        let seen = wait_for(DUE, || {
            let up = self.scalar(&format!("up{{job=\"lookout-agent\",instance=\"{node}\"}}"))?;
            let pods = self.scalar(&format!("lookout_agent_kube_pods{{instance=\"{node}\"}}"))?;
            let listed = self.scalar(&format!("count(kube_pod_info{{node=\"{node}\"}})"))?;
            let host = self.scalar(&format!(
                "count(node_cpu_seconds_total{{job=\"node-exporter\",instance=\"{node}\"}})"
            ))?;
            (up == 1.0 && pods == listed && host > 0.0).then_some(())
        });
        assert!(
            seen.is_some(),
            "the agent of {node} pushes host metrics and knows the node's pods\n{}",
            self.log()
        );
    }

    fn sim(&self) -> &SimHandle {
        self.sim.as_ref().expect("simulator running")
    }

    /// Runs a simulator call that starts tasks, inside its runtime.
    fn with_sim<T>(&self, f: impl FnOnce(&SimHandle) -> T) -> T {
        let _guard = self.rt.enter();
        f(self.sim())
    }

    fn log(&self) -> String {
        format!("collector log:\n{}", self.collector.log())
    }

    fn scalar(&self, expr: &str) -> Option<f64> {
        let r = self.collector.query(expr);
        r.first()
            .and_then(|s| s["value"][1].as_str())
            .and_then(|v| v.parse().ok())
    }

    /// Waits until the collector has every node and pod, and the probes
    /// see every apiserver and node answering.
    fn wait_synced(&self) {
        let st = self.sim().state();
        let (nodes, pods) = (st.nodes as f64, st.pods as f64);
        let synced = wait_for(DUE, || {
            let n = self.scalar("count(kube_node_info)")?;
            let p = self.scalar("count(kube_pod_info)")?;
            let up = self.scalar("count(up{job=\"kubelet\"} == 1)")?;
            let api = self.scalar("count(up{job=\"apiserver\"} == 1)")?;
            (n == nodes && p == pods && up == nodes && api == st.apiservers.len() as f64)
                .then_some(())
        });
        assert!(
            synced.is_some(),
            "the collector follows the cluster ({nodes} nodes, {pods} pods)\n{}",
            self.log()
        );
    }

    /// Firing alerts notified so far: (alertname, identifying label).
    fn firing(&self) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        for m in self.hook.messages() {
            for a in m.alerts() {
                if a["status"] != "firing" {
                    continue;
                }
                let l = &a["labels"];
                let name = l["alertname"].as_str().unwrap_or("").to_string();
                let id = [
                    "node",
                    "instance",
                    "pod",
                    "deployment",
                    "balancer",
                    "route",
                    "service",
                ]
                .iter()
                .find_map(|k| l[*k].as_str())
                .unwrap_or("")
                .to_string();
                out.insert((name, id));
            }
        }
        out
    }

    fn wait_firing(&self, name: &str, id: &str) {
        let seen = wait_for(DUE, || {
            self.firing()
                .contains(&(name.to_string(), id.to_string()))
                .then_some(())
        });
        assert!(
            seen.is_some(),
            "{name} {id} reaches the webhook; got {:?}\n{}",
            self.firing(),
            self.log()
        );
    }

    /// Waits `quiet`, then asserts the firing notifications are exactly
    /// `want`.
    fn assert_exactly(&self, quiet: Duration, want: &[(&str, &str)], what: &str) {
        std::thread::sleep(quiet);
        let want: BTreeSet<(String, String)> = want
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(
            self.firing(),
            want,
            "{what}: the firing notifications\n{}",
            self.log()
        );
    }

    /// A Deployment among those `expr` selects: (namespace, name, replicas).
    fn deployment(&self, expr: &str) -> (String, String, usize) {
        let name = self.label_of(expr, "deployment");
        let spec = format!("kube_deployment_spec_replicas{{deployment=\"{name}\"}}");
        let namespace = self.label_of(&spec, "namespace");
        let replicas = self.scalar(&spec).expect("replicas") as usize;
        (namespace, name, replicas)
    }

    fn label_of(&self, expr: &str, label: &str) -> String {
        let r = self.collector.query(expr);
        r.first()
            .and_then(|s| s["metric"][label].as_str())
            .unwrap_or_else(|| panic!("{expr} has a series with {label}: {r:?}"))
            .to_string()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(sim) = self.sim.take() {
            let _guard = self.rt.enter();
            sim.shutdown();
        }
    }
}

#[test]
fn a_dead_node_gives_one_alert_and_a_broken_balancer_one_incident() {
    // Workload alerts keep a fifth of their `for` (minutes): a dead node's
    // pods are unready, and their Deployments' replicas missing, for the
    // eviction timeout before Kubernetes reschedules them; that is not
    // worth a page unless it lasts.
    let c = Cluster::start(sim_config(6, 101, None), 5.0);
    // Two nodes run an agent, pushing to the collector.
    let _agent_1 = c.start_agent("node-0001");
    let agent_4 = c.start_agent("node-0004");
    c.wait_agent_pushing("node-0001");
    c.wait_agent_pushing("node-0004");
    assert_eq!(
        c.scalar("lookout_cluster_incident"),
        Some(0.0),
        "no incident while all is well"
    );
    c.assert_exactly(Duration::from_secs(3), &[], "a healthy cluster");

    // A node dies, and its agent with it: its heartbeat, kubelet,
    // kube-proxy and host metrics go together. One alert names it; its
    // KubeletDown, KubeProxyDown, NodeDown and LookoutAgentDown are
    // inhibited.
    c.rt.block_on(c.sim().kill_node("node-0004"))
        .expect("kill node");
    drop(agent_4);
    c.wait_firing("KubernetesNodeDown", "node-0004");
    // Past KubeletDown's (compressed) 24 s, so it would have fired.
    c.assert_exactly(
        Duration::from_secs(30),
        &[("KubernetesNodeDown", "node-0004")],
        "one dead node",
    );
    assert_eq!(
        c.scalar("up{job=\"kubelet\",node=\"node-0004\"}"),
        Some(0.0),
        "the dead node's kubelet is probed down\n{}",
        c.log()
    );
    for held_back in ["NodeDown", "LookoutAgentDown"] {
        assert_eq!(
            c.scalar(&format!(
                "ALERTS{{alertname=\"{held_back}\",alertstate=\"firing\",node=\"node-0004\"}}"
            )),
            Some(1.0),
            "{held_back} fires for the dead node's agent and is held back, not missing\n{}",
            c.log()
        );
    }
    // The node comes back, its agent first (as it starts with the host).
    let _agent_4 = c.start_agent("node-0004");
    c.wait_agent_pushing("node-0004");
    let agent_alerts_over = wait_for(DUE, || {
        c.collector
            .query("ALERTS{alertname=~\"NodeDown|LookoutAgentDown\",node=\"node-0004\"}")
            .is_empty()
            .then_some(())
    });
    assert!(
        agent_alerts_over.is_some(),
        "the agent's alerts end before the node's\n{}",
        c.log()
    );
    c.rt.block_on(c.sim().revive_node("node-0004"))
        .expect("revive");
    let back = wait_for(DUE, || {
        (c.scalar("lookout_nodes_heartbeat_lost")? == 0.0).then_some(())
    });
    assert!(back.is_some(), "the node is back\n{}", c.log());

    // The balancer fails: every worker loses its heartbeat at once, the
    // apiservers still answer directly. One incident, no node alerts.
    let before = c.firing();
    c.rt.block_on(c.sim().break_balancer())
        .expect("break balancer");
    let balancer = host_port(&c.sim().addresses().balancer);
    c.wait_firing("ApiserverBalancerDown", &balancer);
    c.assert_exactly(
        Duration::from_secs(20),
        &before
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .chain([("ApiserverBalancerDown", balancer.as_str())])
            .collect::<Vec<_>>(),
        "a broken balancer",
    );
    assert_eq!(
        c.scalar("lookout_cluster_incident{kind=\"apiserver_balancer\"}"),
        Some(1.0),
        "remediation sees the incident as a series"
    );
    assert!(
        c.scalar("lookout_nodes_heartbeat_lost").unwrap_or(0.0) >= 3.0,
        "the workers lost their heartbeat\n{}",
        c.log()
    );
}

/// `http://127.0.0.1:1234` → `127.0.0.1:1234`.
fn host_port(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_string()
}

#[test]
fn workload_and_control_plane_faults_each_give_their_alert() {
    let c = Cluster::start(sim_config(4, 102, None), 20.0);
    c.assert_exactly(Duration::from_secs(3), &[], "a healthy cluster");

    // A DaemonSet's pod crash-loops (a Deployment's would also lower its
    // available replicas, a second, true, alert).
    let ds_pod = c.label_of("kube_pod_owner{owner_kind=\"DaemonSet\"}", "pod");
    let ds_ns = c.label_of(
        &format!("kube_pod_owner{{owner_kind=\"DaemonSet\",pod=\"{ds_pod}\"}}"),
        "namespace",
    );
    c.with_sim(|s| s.crashloop(&ds_ns, &ds_pod))
        .expect("crashloop");
    // A deployment asks for more replicas than it gets.
    let (dep_ns, dep, replicas) = c.deployment("kube_deployment_spec_replicas");
    c.with_sim(|s| s.scale(&dep_ns, &dep, replicas + 2, true))
        .expect("scale");
    // One apiserver instance stops; the others (and the balancer) go on.
    c.rt.block_on(c.sim().stop_apiserver(1))
        .expect("stop apiserver");
    let api1 = host_port(c.sim().apiserver_url(1).expect("apiserver 1"));
    // The scheduler stops.
    c.rt.block_on(c.sim().stop_component(Component::Scheduler))
        .expect("stop scheduler");
    // One node's kube-proxy stops syncing its rules.
    c.with_sim(|s| s.make_kube_proxy_stale("node-0002"))
        .expect("stale kube-proxy");

    // The replicas asked for and never made stay Pending: each is a pod
    // not ready, besides the deployment's own alert.
    let pending: Vec<String> = wait_for(DUE, || {
        let r = c.collector.query(&format!(
            "kube_pod_status_phase{{phase=\"Pending\",namespace=\"{dep_ns}\"}} == 1"
        ));
        (r.len() == 2).then(|| {
            r.iter()
                .filter_map(|s| s["metric"]["pod"].as_str().map(str::to_string))
                .collect()
        })
    })
    .unwrap_or_else(|| panic!("two pods of {dep} stay Pending\n{}", c.log()));
    let mut want = vec![
        ("KubePodCrashLooping", ds_pod.as_str()),
        ("KubeDeploymentReplicasMismatch", dep.as_str()),
        ("KubeAPIServerInstanceDown", api1.as_str()),
        ("KubeSchedulerDown", ""),
        ("KubeProxyUnhealthy", "node-0002"),
    ];
    want.extend(pending.iter().map(|p| ("KubePodNotReady", p.as_str())));
    for (name, id) in &want {
        c.wait_firing(name, id);
    }
    c.assert_exactly(Duration::from_secs(10), &want, "five faults");
}

#[test]
fn the_collector_lists_again_after_an_outage_and_a_simulator_restart() {
    let port_base = 20000 + (std::process::id() % 20000) as u16;
    let mut c = Cluster::start(sim_config(4, 103, Some(port_base)), 5.0);
    assert_eq!(c.scalar("count(kube_pod_info)"), Some(12.0));
    // A short outage of the balancer the collector watches through: the
    // watches go down, and once it is back they list again and are up,
    // whether or not anything changed meanwhile.
    c.rt.block_on(c.sim().break_balancer())
        .expect("break balancer");
    let down = wait_for(DUE, || {
        (c.scalar("min(lookout_kube_watch_up)")? == 0.0).then_some(())
    });
    assert!(down.is_some(), "the watches go down\n{}", c.log());
    c.rt.block_on(c.sim().repair_balancer())
        .expect("repair balancer");
    let up_again = wait_for(DUE, || {
        (c.scalar("min(lookout_kube_watch_up)")? == 1.0).then_some(())
    });
    assert!(
        up_again.is_some(),
        "every watch is current again after the outage\n{}",
        c.log()
    );
    assert_eq!(c.scalar("count(kube_pod_info)"), Some(12.0));

    let restarts_before = c
        .scalar("sum(lookout_kube_watch_restarts_total)")
        .unwrap_or(0.0);

    // The simulator restarts with one node fewer: its history is new, so
    // the collector's resourceVersions are gone (410) and it lists again.
    if let Some(sim) = c.sim.take() {
        let _guard = c.rt.enter();
        sim.shutdown();
    }
    std::thread::sleep(Duration::from_millis(500));
    let sim =
        c.rt.block_on(Simulator::start(sim_config(3, 103, Some(port_base))))
            .expect("the simulator restarts on the same ports");
    c.sim = Some(sim);
    let relisted = wait_for(DUE, || {
        let pods = c.scalar("count(kube_pod_info)")?;
        let nodes = c.scalar("count(kube_node_info)")?;
        (pods == 9.0 && nodes == 3.0).then_some(())
    });
    assert!(
        relisted.is_some(),
        "after the restart the removed node's pods are gone: pods {:?}, nodes {:?}\n{}",
        c.scalar("count(kube_pod_info)"),
        c.scalar("count(kube_node_info)"),
        c.log()
    );
    assert!(
        c.collector
            .query("kube_pod_info{node=\"node-0004\"}")
            .is_empty(),
        "the vanished node's pods are stale at once, not after 5 minutes"
    );
    let restarts = wait_for(DUE, || {
        let r = c.scalar("sum(lookout_kube_watch_restarts_total)")?;
        (r > restarts_before).then_some(r)
    });
    assert!(restarts.is_some(), "the watches restarted\n{}", c.log());
    let all_up = wait_for(DUE, || {
        (c.scalar("min(lookout_kube_watch_up)")? == 1.0).then_some(())
    });
    assert!(all_up.is_some(), "every watch is up again\n{}", c.log());
}

#[test]
fn a_router_holding_stale_routes_is_reported() {
    // Four pods a node: Deployments of 3 and 2 replicas, both routed, so
    // one can lose a pod and keep its route.
    let cfg = SimConfig {
        pods_per_node: 4,
        ..sim_config(4, 104, None)
    };
    let c = Cluster::start(cfg, 20.0);
    let routed = wait_for(DUE, || {
        let ok = c.scalar("lookout_router_table_ok{router=\"sim\"}")?;
        let stale = c.scalar("sum(lookout_router_stale_endpoints{router=\"sim\"})")?;
        let routed = c.scalar("count(lookout_service_routed == 1)")?;
        (ok == 1.0 && stale == 0.0 && routed >= 2.0).then_some(())
    });
    assert!(
        routed.is_some(),
        "the router's table is read, nothing is stale, the routed services are routed\n{}",
        c.log()
    );
    assert_eq!(c.scalar("up{job=\"router\",router=\"sim\"}"), Some(1.0));
    c.assert_exactly(Duration::from_secs(3), &[], "a healthy cluster and router");

    // A routed Deployment that keeps a pod after losing one.
    let candidates = "kube_deployment_spec_replicas >= 2 and on (namespace, deployment) \
                      label_replace(lookout_service_routed == 1, \"deployment\", \"$1\", \"service\", \"(.*)\")";
    let (ns, dep, replicas) = c.deployment(candidates);
    let route = lookout_kubesim::route_name(&ns, &dep);

    // The router stops following the cluster, then one pod goes away.
    // Scaling down is no mismatch for the workload rules: only the route
    // to the deleted pod is wrong.
    c.sim().freeze_router(0).expect("freeze the router");
    c.with_sim(|s| s.scale(&ns, &dep, replicas - 1, false))
        .expect("scale down");
    c.wait_firing("RouterStaleRoutes", &route);
    c.assert_exactly(
        Duration::from_secs(15),
        &[("RouterStaleRoutes", route.as_str())],
        "a router holding a stale route",
    );
    let stale = format!("lookout_router_stale_endpoints{{router=\"sim\",route=\"{route}\"}}");
    assert_eq!(c.scalar(&stale), Some(1.0), "{}", c.log());
    assert_eq!(c.label_of(&stale, "service"), dep);
    assert_eq!(c.label_of(&stale, "namespace"), ns);
    assert_eq!(
        c.scalar(&format!(
            "lookout_router_route_endpoints{{router=\"sim\",route=\"{route}\"}}"
        )),
        Some(replicas as f64),
        "the frozen table still lists every endpoint"
    );

    // Following the cluster again, the router drops the route to the
    // deleted pod and the count goes back to 0.
    c.sim().unfreeze_router(0).expect("unfreeze the router");
    let cleared = wait_for(DUE, || (c.scalar(&stale)? == 0.0).then_some(()));
    assert!(
        cleared.is_some(),
        "the stale count returns to 0\n{}",
        c.log()
    );
}
