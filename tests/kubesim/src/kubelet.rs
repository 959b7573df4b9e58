//! Per-node endpoints: the kubelet's `/healthz` (10248) and its stats and
//! metrics (10250, plain HTTP here), and kube-proxy's `/healthz` (10256).
//! Usage figures are derived from pod names and elapsed time: plausible,
//! stable and monotonic where they are counters.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::cluster::{Core, lock};
use crate::resources::Kind;
use crate::rng::hash_str;
use crate::store::Object;
use crate::time::{self, Precision};

#[derive(Clone)]
struct NodeState {
    core: Arc<Core>,
    node: usize,
}

impl NodeState {
    fn name(&self) -> &str {
        &self.core.nodes[self.node].name
    }

    fn pods(&self) -> Vec<Arc<Object>> {
        let name = self.name();
        self.core
            .store
            .scan(Kind::PODS, None, |p| p.field_value("spec.nodeName") == name)
    }
}

pub(crate) fn healthz_router() -> Router {
    Router::new().route("/healthz", get(|| async { "ok" }))
}

pub(crate) fn kubelet_router(core: Arc<Core>, node: usize) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/stats/summary", get(stats_summary))
        .route("/metrics/resource", get(metrics_resource))
        .route("/metrics", get(metrics))
        .route("/pods", get(pods))
        .with_state(NodeState { core, node })
}

pub(crate) fn kube_proxy_router(core: Arc<Core>, node: usize) -> Router {
    Router::new()
        .route("/healthz", get(proxy_health))
        .route("/livez", get(proxy_health))
        .with_state(NodeState { core, node })
}

/// One container's usage.
struct Usage {
    nano_cores: u64,
    core_nanos: u64,
    working_set: u64,
    rss: u64,
}

fn usage(core: &Core, pod: &str, container: &str, now: SystemTime) -> Usage {
    let h = hash_str(&format!("{pod}/{container}"));
    let nano_cores = 2_000_000 + h % 48_000_000;
    let elapsed = now.duration_since(core.started).unwrap_or(Duration::ZERO);
    // Pods started a while before the simulator "booted".
    let lifetime = elapsed.as_secs_f64() + 3600.0 + (h % 7200) as f64;
    let working_set = (20 << 20) + (h >> 16) % (200 << 20);
    Usage {
        nano_cores,
        core_nanos: (nano_cores as f64 * lifetime) as u64,
        working_set,
        rss: working_set * 3 / 4,
    }
}

struct PodInfo {
    name: String,
    namespace: String,
    uid: String,
    start: String,
    containers: Vec<String>,
}

fn pod_info(pod: &Object) -> PodInfo {
    let v = pod.to_value();
    PodInfo {
        name: pod.name().to_owned(),
        namespace: pod.namespace().to_owned(),
        uid: pod.uid().to_owned(),
        start: v
            .pointer("/status/startTime")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        containers: v
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

const NODE_MEMORY: u64 = 32 << 30;
const NODE_FS: u64 = 100 << 30;

async fn stats_summary(State(s): State<NodeState>) -> Response {
    let now = SystemTime::now();
    let t = time::rfc3339(now, Precision::Seconds);
    let pods: Vec<PodInfo> = s.pods().iter().map(|p| pod_info(p)).collect();
    let system = usage(&s.core, s.name(), "system", now);
    let (mut cores, mut core_ns, mut ws) =
        (system.nano_cores * 5, system.core_nanos * 5, 600u64 << 20);
    let mut pod_stats = Vec::new();
    for pod in &pods {
        let mut containers = Vec::new();
        let (mut p_cores, mut p_ns, mut p_ws) = (0, 0, 0);
        for c in &pod.containers {
            let u = usage(&s.core, &pod.name, c, now);
            p_cores += u.nano_cores;
            p_ns += u.core_nanos;
            p_ws += u.working_set;
            containers.push(json!({
                "name": c,
                "startTime": pod.start,
                "cpu": {"time": t, "usageNanoCores": u.nano_cores, "usageCoreNanoSeconds": u.core_nanos},
                "memory": {"time": t, "usageBytes": u.working_set + (4 << 20), "workingSetBytes": u.working_set,
                           "rssBytes": u.rss, "pageFaults": u.core_nanos / 1_000_000, "majorPageFaults": 0},
                "rootfs": {"time": t, "availableBytes": NODE_FS / 2, "capacityBytes": NODE_FS, "usedBytes": 24576,
                           "inodesFree": 6_000_000, "inodes": 6_553_600, "inodesUsed": 12},
                "logs": {"time": t, "availableBytes": NODE_FS / 2, "capacityBytes": NODE_FS, "usedBytes": 8192,
                         "inodesFree": 6_000_000, "inodes": 6_553_600, "inodesUsed": 1},
            }));
        }
        cores += p_cores;
        core_ns += p_ns;
        ws += p_ws;
        let net = p_ns / 1000;
        pod_stats.push(json!({
            "podRef": {"name": pod.name, "namespace": pod.namespace, "uid": pod.uid},
            "startTime": pod.start,
            "containers": containers,
            "cpu": {"time": t, "usageNanoCores": p_cores, "usageCoreNanoSeconds": p_ns},
            "memory": {"time": t, "usageBytes": p_ws + (4 << 20), "workingSetBytes": p_ws, "rssBytes": p_ws * 3 / 4},
            "network": {"time": t, "name": "eth0", "rxBytes": net, "rxErrors": 0, "txBytes": net / 2, "txErrors": 0,
                        "interfaces": [{"name": "eth0", "rxBytes": net, "rxErrors": 0, "txBytes": net / 2, "txErrors": 0}]},
            "volume": [],
            "ephemeral-storage": {"time": t, "availableBytes": NODE_FS / 2, "capacityBytes": NODE_FS, "usedBytes": 32768},
            "process_stats": {"process_count": pod.containers.len()},
        }));
    }
    let net = core_ns / 500;
    let body = json!({
        "node": {
            "nodeName": s.name(),
            "systemContainers": [
                {"name": "kubelet", "startTime": time::rfc3339(s.core.started, Precision::Seconds),
                 "cpu": {"time": t, "usageNanoCores": system.nano_cores, "usageCoreNanoSeconds": system.core_nanos},
                 "memory": {"time": t, "workingSetBytes": 80u64 << 20, "usageBytes": 96u64 << 20}},
            ],
            "startTime": time::rfc3339(s.core.started - Duration::from_secs(86_400), Precision::Seconds),
            "cpu": {"time": t, "usageNanoCores": cores, "usageCoreNanoSeconds": core_ns},
            "memory": {"time": t, "availableBytes": NODE_MEMORY.saturating_sub(ws), "usageBytes": ws + (1 << 30),
                       "workingSetBytes": ws, "rssBytes": ws * 3 / 4, "pageFaults": core_ns / 100_000, "majorPageFaults": 12},
            "network": {"time": t, "name": "eth0", "rxBytes": net, "rxErrors": 0, "txBytes": net / 2, "txErrors": 0,
                        "interfaces": [{"name": "eth0", "rxBytes": net, "rxErrors": 0, "txBytes": net / 2, "txErrors": 0}]},
            "fs": {"time": t, "availableBytes": NODE_FS * 3 / 5, "capacityBytes": NODE_FS, "usedBytes": NODE_FS * 2 / 5,
                   "inodesFree": 6_000_000, "inodes": 6_553_600, "inodesUsed": 553_600},
            "runtime": {"imageFs": {"time": t, "availableBytes": NODE_FS * 3 / 5, "capacityBytes": NODE_FS,
                                    "usedBytes": 8u64 << 30, "inodesFree": 6_000_000, "inodes": 6_553_600, "inodesUsed": 553_600}},
            "rlimit": {"time": t, "maxpid": 4_194_304, "curproc": 300 + pods.len() * 4},
        },
        "pods": pod_stats,
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn prom(body: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

async fn metrics_resource(State(s): State<NodeState>) -> Response {
    let now = SystemTime::now();
    let ts = time::unix_millis(now);
    let pods: Vec<PodInfo> = s.pods().iter().map(|p| pod_info(p)).collect();
    let mut cpu = String::new();
    let mut mem = String::new();
    let mut start = String::new();
    let mut pod_cpu = String::new();
    let mut pod_mem = String::new();
    let system = usage(&s.core, s.name(), "system", now);
    let (mut node_ns, mut node_ws) = (system.core_nanos * 5, 600u64 << 20);
    let started = time::unix_secs_f64(s.core.started) - 3600.0;
    for pod in &pods {
        let (mut p_ns, mut p_ws) = (0, 0);
        for c in &pod.containers {
            let u = usage(&s.core, &pod.name, c, now);
            let labels = format!(
                "container=\"{c}\",namespace=\"{}\",pod=\"{}\"",
                pod.namespace, pod.name
            );
            let _ = writeln!(
                cpu,
                "container_cpu_usage_seconds_total{{{labels}}} {} {ts}",
                u.core_nanos as f64 / 1e9
            );
            let _ = writeln!(
                mem,
                "container_memory_working_set_bytes{{{labels}}} {} {ts}",
                u.working_set
            );
            let _ = writeln!(
                start,
                "container_start_time_seconds{{{labels}}} {started:.3} {ts}"
            );
            p_ns += u.core_nanos;
            p_ws += u.working_set;
        }
        let labels = format!("namespace=\"{}\",pod=\"{}\"", pod.namespace, pod.name);
        let _ = writeln!(
            pod_cpu,
            "pod_cpu_usage_seconds_total{{{labels}}} {} {ts}",
            p_ns as f64 / 1e9
        );
        let _ = writeln!(
            pod_mem,
            "pod_memory_working_set_bytes{{{labels}}} {p_ws} {ts}"
        );
        node_ns += p_ns;
        node_ws += p_ws;
    }
    let mut body = String::new();
    let family = |body: &mut String, name: &str, help: &str, ty: &str, samples: &str| {
        let _ = write!(
            body,
            "# HELP {name} [STABLE] {help}\n# TYPE {name} {ty}\n{samples}"
        );
    };
    family(
        &mut body,
        "container_cpu_usage_seconds_total",
        "Cumulative cpu time consumed by the container in core-seconds",
        "counter",
        &cpu,
    );
    family(
        &mut body,
        "container_memory_working_set_bytes",
        "Current working set of the container in bytes",
        "gauge",
        &mem,
    );
    family(
        &mut body,
        "container_start_time_seconds",
        "Start time of the container since unix epoch in seconds",
        "gauge",
        &start,
    );
    family(
        &mut body,
        "node_cpu_usage_seconds_total",
        "Cumulative cpu time consumed by the node in core-seconds",
        "counter",
        &format!(
            "node_cpu_usage_seconds_total {} {ts}\n",
            node_ns as f64 / 1e9
        ),
    );
    family(
        &mut body,
        "node_memory_working_set_bytes",
        "Current working set of the node in bytes",
        "gauge",
        &format!("node_memory_working_set_bytes {node_ws} {ts}\n"),
    );
    family(
        &mut body,
        "pod_cpu_usage_seconds_total",
        "Cumulative cpu time consumed by the pod in core-seconds",
        "counter",
        &pod_cpu,
    );
    family(
        &mut body,
        "pod_memory_working_set_bytes",
        "Current working set of the pod in bytes",
        "gauge",
        &pod_mem,
    );
    family(
        &mut body,
        "resource_scrape_error",
        "1 if there was an error while getting container metrics, 0 otherwise",
        "gauge",
        "resource_scrape_error 0\n",
    );
    prom(body)
}

async fn metrics(State(s): State<NodeState>) -> Response {
    let running = s.pods().len();
    prom(format!(
        "# HELP kubelet_node_name [ALPHA] The node's name. The count is always 1.\n\
         # TYPE kubelet_node_name gauge\n\
         kubelet_node_name{{node=\"{}\"}} 1\n\
         # HELP kubelet_running_pods [ALPHA] Number of pods that have a running pod sandbox\n\
         # TYPE kubelet_running_pods gauge\n\
         kubelet_running_pods {running}\n",
        s.name()
    ))
}

async fn pods(State(s): State<NodeState>) -> Response {
    let mut out = br#"{"kind":"PodList","apiVersion":"v1","metadata":{},"items":["#.to_vec();
    for (i, pod) in s.pods().iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        pod.write_typed(Kind::PODS.info(), &mut out);
    }
    out.extend_from_slice(b"]}");
    ([(header::CONTENT_TYPE, "application/json")], out).into_response()
}

/// kube-proxy's health: healthy while its rules are fresh; once made stale
/// it reports the frozen `lastUpdated` with 503.
async fn proxy_health(State(s): State<NodeState>) -> Response {
    let now = SystemTime::now();
    let stale = *lock(&s.core.nodes[s.node].proxy_stale_since);
    let (code, last) = match stale {
        Some(since) => (StatusCode::SERVICE_UNAVAILABLE, since),
        // Rules resync about every 30 s; report the last one.
        None => (
            StatusCode::OK,
            now - Duration::from_millis(time::unix_millis(now) % 30_000),
        ),
    };
    let body = json!({
        "lastUpdated": time::rfc3339(last, Precision::Nanos),
        "currentTime": time::rfc3339(now, Precision::Nanos),
        "nodeEligible": true,
    });
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}
