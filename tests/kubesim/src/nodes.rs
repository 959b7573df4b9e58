//! Simulated nodes: their Node and Lease objects, kubelet heartbeats, and
//! the controller-manager's node lifecycle controller.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};
use tokio::time::MissedTickBehavior;

use crate::cluster::{Core, lock};
use crate::config::SimConfig;
use crate::controllers;
use crate::resources::Kind;
use crate::time::{self, Precision};

pub(crate) const LEASE_NAMESPACE: &str = "kube-node-lease";
pub(crate) const LEASE_DURATION_SECONDS: u64 = 40;
const UNREACHABLE_TAINT: &str = "node.kubernetes.io/unreachable";
pub(crate) const KUBELET_VERSION: &str = "v1.34.1";

/// One simulated node's state outside the store.
pub(crate) struct NodeSim {
    pub index: usize,
    pub name: String,
    pub ip: Ipv4Addr,
    pub control_plane: bool,
    /// False once killed: no heartbeats, no kubelet or kube-proxy.
    pub alive: AtomicBool,
    /// Lease renewals enabled.
    pub heartbeats: AtomicBool,
    /// The Ready condition the lifecycle controller last left in the store.
    pub ready: AtomicBool,
    /// Set when kube-proxy was made stale: its frozen `lastUpdated`.
    pub proxy_stale_since: Mutex<Option<SystemTime>>,
    last_renew: Mutex<Instant>,
    pod_ips: AtomicU32,
}

impl NodeSim {
    pub fn new(config: &SimConfig, index: usize) -> NodeSim {
        NodeSim {
            index,
            name: config.node_name(index),
            ip: config.node_ip(index),
            control_plane: index == 0,
            alive: AtomicBool::new(true),
            heartbeats: AtomicBool::new(true),
            ready: AtomicBool::new(true),
            proxy_stale_since: Mutex::new(None),
            last_renew: Mutex::new(Instant::now()),
            pod_ips: AtomicU32::new(0),
        }
    }

    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    pub fn last_renew(&self) -> Instant {
        *lock(&self.last_renew)
    }

    /// The node's pod CIDR, `10.<64+i/256>.<i%256>.0/24`.
    pub fn pod_cidr(&self) -> String {
        let (a, b) = self.cidr_octets();
        format!("10.{a}.{b}.0/24")
    }

    fn cidr_octets(&self) -> (usize, usize) {
        (64 + self.index / 256, self.index % 256)
    }

    /// The next pod IP from the node's CIDR (wrapping within .2–.254).
    pub fn allocate_pod_ip(&self) -> String {
        let n = self.pod_ips.fetch_add(1, Ordering::Relaxed) % 253;
        let (a, b) = self.cidr_octets();
        format!("10.{a}.{b}.{}", n + 2)
    }

    pub fn zone(&self) -> &'static str {
        ["zone-a", "zone-b", "zone-c"][self.index % 3]
    }
}

fn capacity(node: &NodeSim) -> (&'static str, &'static str, &'static str, &'static str) {
    // (cpu, memory, allocatable cpu, allocatable memory)
    if node.control_plane {
        ("4", "16315752Ki", "4", "16213352Ki")
    } else {
        ("8", "32827868Ki", "7900m", "32213468Ki")
    }
}

/// The four standard conditions, all healthy or all unknown.
fn conditions(ready: bool, since: &str, heartbeat: &str) -> Value {
    let cond = |ty: &str, healthy_status: &str, reason: &str, message: &str| {
        if ready {
            json!({"type": ty, "status": healthy_status, "reason": reason, "message": message,
                   "lastHeartbeatTime": heartbeat, "lastTransitionTime": since})
        } else {
            json!({"type": ty, "status": "Unknown", "reason": "NodeStatusUnknown",
                   "message": "Kubelet stopped posting node status.",
                   "lastHeartbeatTime": heartbeat, "lastTransitionTime": since})
        }
    };
    json!([
        cond(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available"
        ),
        cond(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure"
        ),
        cond(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available"
        ),
        cond(
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status"
        ),
    ])
}

pub(crate) fn node_value(config: &SimConfig, node: &NodeSim) -> Value {
    let now = time::now_seconds();
    let (cpu, memory, alloc_cpu, alloc_memory) = capacity(node);
    let mut labels = json!({
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": node.name,
        "kubernetes.io/os": "linux",
        "topology.kubernetes.io/zone": node.zone(),
    });
    let mut taints = Vec::new();
    if node.control_plane {
        labels["node-role.kubernetes.io/control-plane"] = json!("");
        labels["node.kubernetes.io/exclude-from-external-load-balancers"] = json!("");
        taints
            .push(json!({"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}));
    }
    let id = crate::rng::hash_str(&node.name);
    json!({
        "metadata": {
            "name": node.name,
            "labels": labels,
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": {
            "podCIDR": node.pod_cidr(),
            "podCIDRs": [node.pod_cidr()],
            "providerID": format!("kubesim://{}", node.name),
            "taints": taints,
        },
        "status": {
            "capacity": {"cpu": cpu, "memory": memory, "pods": "110",
                         "ephemeral-storage": "102626232Ki", "hugepages-2Mi": "0"},
            "allocatable": {"cpu": alloc_cpu, "memory": alloc_memory, "pods": "110",
                            "ephemeral-storage": "94580335255", "hugepages-2Mi": "0"},
            "conditions": conditions(true, &now, &now),
            "addresses": [
                {"type": "InternalIP", "address": node.ip.to_string()},
                {"type": "Hostname", "address": node.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": config.kubelet_port}},
            "nodeInfo": {
                "machineID": format!("{id:032x}"),
                "systemUUID": format!("{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                    id >> 32, (id >> 16) & 0xffff, id & 0xffff, node.index & 0xffff, id & 0xffff_ffff_ffff),
                "bootID": format!("{:016x}{:016x}", id.rotate_left(7), id.rotate_left(19)),
                "kernelVersion": "6.8.0-79-generic",
                "osImage": "Ubuntu 24.04.3 LTS",
                "containerRuntimeVersion": "containerd://2.1.4",
                "kubeletVersion": KUBELET_VERSION,
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        },
    })
}

pub(crate) fn lease_value(node: &NodeSim, node_uid: &str) -> Value {
    json!({
        "metadata": {
            "name": node.name,
            "namespace": LEASE_NAMESPACE,
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node.name, "uid": node_uid}],
        },
        "spec": {
            "holderIdentity": node.name,
            "leaseDurationSeconds": LEASE_DURATION_SECONDS,
            "renewTime": time::rfc3339(SystemTime::now(), Precision::Micros),
        },
    })
}

/// A leader-election lease of a control-plane component in kube-system.
pub(crate) fn leader_lease_value(name: &str, holder: &str) -> Value {
    let now = time::rfc3339(SystemTime::now(), Precision::Micros);
    json!({
        "metadata": {"name": name, "namespace": "kube-system"},
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": 15,
            "acquireTime": now,
            "renewTime": now,
            "leaseTransitions": 0,
        },
    })
}

fn set_renew_time(lease: &mut Value) -> bool {
    lease["spec"]["renewTime"] = json!(time::rfc3339(SystemTime::now(), Precision::Micros));
    true
}

/// Renews one node's Lease if the node is up and its writes can reach etcd.
fn renew(core: &Core, node: &NodeSim) {
    if !node.is_alive()
        || !node.heartbeats.load(Ordering::SeqCst)
        || !core.writes_reach_etcd_from(node)
    {
        return;
    }
    match core
        .store
        .update(Kind::LEASES, LEASE_NAMESPACE, &node.name, set_renew_time)
    {
        Ok(_) => *lock(&node.last_renew) = Instant::now(),
        Err(e) => tracing::warn!(node = %node.name, error = %e, "lease renewal failed"),
    }
}

fn renew_leader_leases(core: &Core) {
    if !core.leader_election_ok() {
        return;
    }
    for (name, up) in [
        ("kube-scheduler", &core.scheduler_up),
        ("kube-controller-manager", &core.controller_manager_up),
    ] {
        if up.load(Ordering::SeqCst) {
            let _ = core
                .store
                .update(Kind::LEASES, "kube-system", name, set_renew_time);
        }
    }
}

/// Renews every node's lease once per `lease_renew`, the nodes' turns
/// spread evenly over the interval.
pub(crate) async fn heartbeat_loop(core: Arc<Core>) {
    let n = core.nodes.len() as u128;
    let period = core.config.lease_renew.as_nanos().max(1);
    let step = Duration::from_nanos(u64::try_from(period / n).unwrap_or(u64::MAX))
        .max(Duration::from_millis(5));
    let mut tick = tokio::time::interval(step);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let start = Instant::now();
    let mut done: u128 = 0;
    loop {
        tokio::select! {
            () = core.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let due = start.elapsed().as_nanos() * n / period;
        // After a stall, renew each node once rather than replaying every missed turn.
        done = done.max(due.saturating_sub(n));
        while done < due {
            let i = usize::try_from(done % n).unwrap_or(0);
            if i == 0 {
                renew_leader_leases(&core);
            }
            renew(&core, &core.nodes[i]);
            done += 1;
        }
    }
}

/// The node lifecycle controller: nodes whose lease has not been renewed
/// within the grace period become Ready=Unknown and tainted unreachable;
/// they come back when renewals resume.
pub(crate) async fn lifecycle_loop(core: Arc<Core>) {
    let every =
        (core.config.node_grace / 8).clamp(Duration::from_millis(100), Duration::from_secs(5));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    // Like the real controller, count a lease's age only from when this
    // controller could last observe it.
    let mut observing_since = Instant::now();
    let mut paused = false;
    loop {
        tokio::select! {
            () = core.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if !core.controllers_running() {
            paused = true;
            continue;
        }
        if paused {
            paused = false;
            observing_since = Instant::now();
        }
        let now = Instant::now();
        let mut lost = Vec::new();
        let mut back = Vec::new();
        for node in &core.nodes {
            let seen = node.last_renew().max(observing_since);
            let stale = now.duration_since(seen) > core.config.node_grace;
            let ready = node.ready.load(Ordering::SeqCst);
            if stale && ready {
                lost.push(node);
            } else if !stale && !ready {
                back.push(node);
            }
        }
        if !lost.is_empty() {
            tracing::info!(nodes = lost.len(), "nodes stopped posting status");
            set_nodes_ready(&core, &lost, false);
        }
        if !back.is_empty() {
            tracing::info!(nodes = back.len(), "nodes posting status again");
            set_nodes_ready(&core, &back, true);
        }
    }
}

/// Moves nodes to Ready=True or Unknown with the matching taints, and
/// their pods' Ready condition with them.
fn set_nodes_ready(core: &Core, nodes: &[&NodeSim], ready: bool) {
    let now = time::now_seconds();
    for node in nodes {
        let result = core.store.update(Kind::NODES, "", &node.name, |v| {
            let heartbeat = v
                .pointer("/status/conditions/3/lastHeartbeatTime")
                .cloned()
                .unwrap_or_else(|| json!(now));
            let heartbeat = if ready { json!(now) } else { heartbeat };
            v["status"]["conditions"] = conditions(ready, &now, heartbeat.as_str().unwrap_or(&now));
            let mut taints: Vec<Value> = v["spec"]["taints"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|t| t["key"] != UNREACHABLE_TAINT)
                .collect();
            if !ready {
                taints.push(
                    json!({"key": UNREACHABLE_TAINT, "effect": "NoSchedule", "timeAdded": now}),
                );
                taints.push(
                    json!({"key": UNREACHABLE_TAINT, "effect": "NoExecute", "timeAdded": now}),
                );
            }
            v["spec"]["taints"] = Value::Array(taints);
            true
        });
        match result {
            Ok(_) => node.ready.store(ready, Ordering::SeqCst),
            Err(e) => tracing::warn!(node = %node.name, error = %e, "node status update failed"),
        }
    }
    let names: HashSet<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
    let pods = core.store.scan(Kind::PODS, None, |p| {
        names.contains(p.field_value("spec.nodeName"))
    });
    let mut changed = Vec::with_capacity(pods.len());
    for pod in pods {
        let result = core
            .store
            .update(Kind::PODS, pod.namespace(), pod.name(), |v| {
                let target = ready && controllers::containers_ready(v);
                controllers::set_pod_ready(v, target, &now)
            });
        if let Ok(Some(updated)) = result {
            changed.push(updated);
        }
    }
    controllers::pods_changed(core, &changed);
}
