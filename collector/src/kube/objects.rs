//! Compact copies of the Kubernetes objects Lookout follows, and the series
//! each one yields under kube-state-metrics' names and labels.
//!
//! Watch events are converted at once and the API objects dropped: a
//! cluster of 30,000 pods is held as a few kilobytes a node and under a
//! kilobyte a pod, never as full objects with managed fields.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ContainerState, Namespace, Node, Pod, ReplicationController, ResourceRequirements, Service,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use lookout_protocol::model::Str;

use super::series::SeriesOut;

pub const POD_PHASES: [&str; 5] = ["Pending", "Running", "Succeeded", "Failed", "Unknown"];
const CONDITION_STATUSES: [(&str, &str); 3] =
    [("True", "true"), ("False", "false"), ("Unknown", "unknown")];

/// `namespace/name`, or `name` for cluster-scoped objects.
pub fn key(meta: &ObjectMeta) -> String {
    let name = meta.name.as_deref().unwrap_or("");
    match meta.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_string(),
    }
}

fn or_empty(v: &Option<String>) -> String {
    v.clone().unwrap_or_default()
}

/// Pods are the bulk of a cluster: their strings are kept inline when short
/// (names, IPs, phases), which saves an allocation each.
fn text(v: &Option<String>) -> Str {
    v.as_deref().map(Str::from).unwrap_or_default()
}

/// A Kubernetes quantity (`100m`, `128Mi`, `2`, `1e3`, `1G`) as a number,
/// in cores for CPU and bytes for memory, as kube-state-metrics writes them.
pub fn parse_quantity(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q
        .find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let base: f64 = num.parse().ok()?;
    let mult = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        _ => return None,
    };
    Some(base * mult)
}

fn resource_unit(resource: &str) -> &'static str {
    match resource {
        "cpu" => "core",
        "memory" | "ephemeral-storage" | "storage" => "byte",
        _ if resource.starts_with("hugepages-") => "byte",
        _ => "integer",
    }
}

/// Resource amounts: (resource name, number).
type Amounts = Vec<(Str, f64)>;

fn quantities(m: &Option<std::collections::BTreeMap<String, Quantity>>) -> Amounts {
    m.iter()
        .flatten()
        .filter_map(|(k, v)| parse_quantity(&v.0).map(|n| (Str::from(k.as_str()), n)))
        .collect()
}

// ---------------------------------------------------------------- nodes

#[derive(Clone, Debug, PartialEq)]
pub struct NodeObj {
    pub name: String,
    pub kubelet_version: String,
    pub runtime_version: String,
    pub os_image: String,
    pub kernel_version: String,
    pub internal_ip: String,
    pub provider_id: String,
    pub roles: Vec<String>,
    pub unschedulable: bool,
    pub taints: Vec<(String, String, String)>,
    /// (type, status) with status `True`, `False` or `Unknown`.
    pub conditions: Vec<(String, String)>,
    pub ready_heartbeat_ms: Option<i64>,
    pub capacity: Amounts,
    pub allocatable: Amounts,
}

impl NodeObj {
    pub fn from(n: &Node) -> NodeObj {
        let spec = n.spec.clone().unwrap_or_default();
        let status = n.status.as_ref();
        let info = status.and_then(|s| s.node_info.clone()).unwrap_or_default();
        let internal_ip = status
            .and_then(|s| s.addresses.as_ref())
            .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
            .map(|a| a.address.clone())
            .unwrap_or_default();
        let roles = n
            .metadata
            .labels
            .iter()
            .flatten()
            .filter_map(|(k, _)| k.strip_prefix("node-role.kubernetes.io/"))
            .filter(|r| !r.is_empty())
            .map(str::to_string)
            .collect();
        let conditions: Vec<(String, String)> = status
            .and_then(|s| s.conditions.as_ref())
            .iter()
            .flat_map(|c| c.iter())
            .map(|c| (c.type_.clone(), c.status.clone()))
            .collect();
        let ready_heartbeat_ms = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .and_then(|c| c.last_heartbeat_time.as_ref())
            .map(|t| t.0.as_millisecond());
        NodeObj {
            name: or_empty(&n.metadata.name),
            kubelet_version: info.kubelet_version,
            runtime_version: info.container_runtime_version,
            os_image: info.os_image,
            kernel_version: info.kernel_version,
            internal_ip,
            provider_id: or_empty(&spec.provider_id),
            roles,
            unschedulable: spec.unschedulable.unwrap_or(false),
            taints: spec
                .taints
                .iter()
                .flatten()
                .map(|t| (t.key.clone(), or_empty(&t.value), t.effect.clone()))
                .collect(),
            conditions,
            ready_heartbeat_ms,
            capacity: quantities(&status.and_then(|s| s.capacity.clone())),
            allocatable: quantities(&status.and_then(|s| s.allocatable.clone())),
        }
    }

    pub fn ready(&self) -> Option<bool> {
        self.conditions
            .iter()
            .find(|(t, _)| t == "Ready")
            .map(|(_, s)| s == "True")
    }

    pub fn series(&self, out: &mut SeriesOut) {
        let node = self.name.as_str();
        out.push(
            "kube_node_info",
            &[
                ("node", node),
                ("kubelet_version", &self.kubelet_version),
                ("container_runtime_version", &self.runtime_version),
                ("os_image", &self.os_image),
                ("kernel_version", &self.kernel_version),
                ("internal_ip", &self.internal_ip),
                ("provider_id", &self.provider_id),
            ],
            1.0,
        );
        out.push(
            "kube_node_spec_unschedulable",
            &[("node", node)],
            bool_value(self.unschedulable),
        );
        for (key, value, effect) in &self.taints {
            out.push(
                "kube_node_spec_taint",
                &[
                    ("node", node),
                    ("key", key),
                    ("value", value),
                    ("effect", effect),
                ],
                1.0,
            );
        }
        for role in &self.roles {
            out.push("kube_node_role", &[("node", node), ("role", role)], 1.0);
        }
        for (condition, status) in &self.conditions {
            for (k8s, label) in CONDITION_STATUSES {
                out.push(
                    "kube_node_status_condition",
                    &[("node", node), ("condition", condition), ("status", label)],
                    bool_value(status == k8s),
                );
            }
        }
        for (name, list) in [
            ("kube_node_status_capacity", &self.capacity),
            ("kube_node_status_allocatable", &self.allocatable),
        ] {
            for (resource, v) in list {
                out.push(
                    name,
                    &[
                        ("node", node),
                        ("resource", resource),
                        ("unit", resource_unit(resource)),
                    ],
                    *v,
                );
            }
        }
    }
}

/// A node's heartbeat: the renew time of its lease in `kube-node-lease`.
pub fn lease_renew_ms(l: &Lease) -> Option<i64> {
    l.spec
        .as_ref()?
        .renew_time
        .as_ref()
        .map(|t| t.0.as_millisecond())
}

// ----------------------------------------------------------------- pods

#[derive(Clone, Debug, PartialEq)]
pub struct ContainerObj {
    pub name: Str,
    pub restarts: i64,
    pub ready: bool,
    pub running: bool,
    pub waiting_reason: Option<Str>,
    pub terminated_reason: Option<Str>,
    pub last_terminated_reason: Option<Str>,
    pub requests: Amounts,
    pub limits: Amounts,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PodObj {
    pub namespace: Str,
    pub name: Str,
    pub uid: Str,
    pub node: Str,
    pub host_ip: Str,
    pub pod_ip: Str,
    pub created_by_kind: Str,
    pub created_by_name: Str,
    /// (kind, name, is controller)
    pub owners: Vec<(Str, Str, bool)>,
    pub phase: Str,
    /// The Ready condition's status: `True`, `False`, `Unknown` or empty.
    pub ready: Str,
    pub reason: Str,
    pub containers: Vec<ContainerObj>,
}

fn state_parts(state: &Option<ContainerState>) -> (bool, Option<Str>, Option<Str>) {
    let Some(s) = state else {
        return (false, None, None);
    };
    (
        s.running.is_some(),
        s.waiting.as_ref().map(|w| text(&w.reason)),
        s.terminated.as_ref().map(|t| text(&t.reason)),
    )
}

fn resources(r: &Option<ResourceRequirements>) -> (Amounts, Amounts) {
    match r {
        Some(r) => (quantities(&r.requests), quantities(&r.limits)),
        None => (Vec::new(), Vec::new()),
    }
}

impl PodObj {
    pub fn from(p: &Pod) -> PodObj {
        let status = p.status.clone().unwrap_or_default();
        let spec = p.spec.as_ref();
        let owners: Vec<(Str, Str, bool)> = p
            .metadata
            .owner_references
            .iter()
            .flatten()
            .map(|o| {
                (
                    Str::from(o.kind.as_str()),
                    Str::from(o.name.as_str()),
                    o.controller.unwrap_or(false),
                )
            })
            .collect();
        let (created_by_kind, created_by_name) = owners
            .iter()
            .find(|o| o.2)
            .map(|o| (o.0.clone(), o.1.clone()))
            .unwrap_or_default();
        let statuses = status.container_statuses.unwrap_or_default();
        let containers = spec
            .map(|s| s.containers.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|c| {
                let st = statuses.iter().find(|st| st.name == c.name);
                let (running, waiting, terminated) =
                    st.map(|st| state_parts(&st.state)).unwrap_or_default();
                let last_terminated = st.and_then(|st| state_parts(&st.last_state).2);
                let (requests, limits) = resources(&c.resources);
                ContainerObj {
                    name: Str::from(c.name.as_str()),
                    restarts: st.map(|st| st.restart_count as i64).unwrap_or(0),
                    ready: st.is_some_and(|st| st.ready),
                    running,
                    waiting_reason: waiting,
                    terminated_reason: terminated,
                    last_terminated_reason: last_terminated,
                    requests,
                    limits,
                }
            })
            .collect();
        let ready = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Ready")
            .map(|c| Str::from(c.status.as_str()))
            .unwrap_or_default();
        PodObj {
            namespace: text(&p.metadata.namespace),
            name: text(&p.metadata.name),
            uid: text(&p.metadata.uid),
            node: text(&spec.and_then(|s| s.node_name.clone())),
            host_ip: text(&status.host_ip),
            pod_ip: text(&status.pod_ip),
            created_by_kind,
            created_by_name,
            owners,
            phase: text(&status.phase),
            ready,
            reason: text(&status.reason),
            containers,
        }
    }

    pub fn series(&self, out: &mut SeriesOut) {
        let id = [
            ("namespace", self.namespace.as_str()),
            ("pod", self.name.as_str()),
            ("uid", self.uid.as_str()),
        ];
        let with = |extra: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
            id.iter()
                .chain(extra.iter())
                .map(|(k, v)| (*k, v.to_string()))
                .collect()
        };
        out.push_owned(
            "kube_pod_info",
            with(&[
                ("node", &self.node),
                ("host_ip", &self.host_ip),
                ("pod_ip", &self.pod_ip),
                ("created_by_kind", &self.created_by_kind),
                ("created_by_name", &self.created_by_name),
            ]),
            1.0,
        );
        if self.owners.is_empty() {
            out.push_owned(
                "kube_pod_owner",
                with(&[
                    ("owner_kind", "<none>"),
                    ("owner_name", "<none>"),
                    ("owner_is_controller", "<none>"),
                ]),
                1.0,
            );
        }
        for (kind, name, controller) in &self.owners {
            out.push_owned(
                "kube_pod_owner",
                with(&[
                    ("owner_kind", kind),
                    ("owner_name", name),
                    (
                        "owner_is_controller",
                        if *controller { "true" } else { "false" },
                    ),
                ]),
                1.0,
            );
        }
        // One-hot families keep only their set member (and, for readiness,
        // `condition="true"` always): kube-state-metrics also writes the
        // zeros, 8 of 10 series a pod, but the rules select these with
        // `== 1` or `> 0` (readiness also with `{condition="true"} == 0`),
        // and at 30,000 pods the zeros would be most of the store. For the
        // same reason containers' readiness, running and waiting flags are
        // left out (no shipped or peer rule reads them; the pod's readiness
        // and the waiting reason say it).
        if POD_PHASES.contains(&self.phase.as_str()) {
            out.push_owned(
                "kube_pod_status_phase",
                with(&[("phase", &self.phase)]),
                1.0,
            );
        }
        if !self.ready.is_empty() {
            out.push_owned(
                "kube_pod_status_ready",
                with(&[("condition", "true")]),
                bool_value(self.ready == "True"),
            );
            if let Some((_, label)) = CONDITION_STATUSES
                .iter()
                .find(|(k8s, _)| *k8s == self.ready && *k8s != "True")
            {
                out.push_owned("kube_pod_status_ready", with(&[("condition", label)]), 1.0);
            }
        }
        if !self.reason.is_empty() {
            out.push_owned(
                "kube_pod_status_reason",
                with(&[("reason", &self.reason)]),
                1.0,
            );
        }
        for c in &self.containers {
            let cn = c.name.as_str();
            out.push_owned(
                "kube_pod_container_status_restarts_total",
                with(&[("container", cn)]),
                c.restarts as f64,
            );
            if let Some(r) = c.waiting_reason.as_deref().filter(|r| !r.is_empty()) {
                out.push_owned(
                    "kube_pod_container_status_waiting_reason",
                    with(&[("container", cn), ("reason", r)]),
                    1.0,
                );
            }
            if let Some(r) = c.terminated_reason.as_deref().filter(|r| !r.is_empty()) {
                out.push_owned(
                    "kube_pod_container_status_terminated_reason",
                    with(&[("container", cn), ("reason", r)]),
                    1.0,
                );
            }
            if let Some(r) = c
                .last_terminated_reason
                .as_deref()
                .filter(|r| !r.is_empty())
            {
                out.push_owned(
                    "kube_pod_container_status_last_terminated_reason",
                    with(&[("container", cn), ("reason", r)]),
                    1.0,
                );
            }
            for (name, list) in [
                ("kube_pod_container_resource_requests", &c.requests),
                ("kube_pod_container_resource_limits", &c.limits),
            ] {
                for (resource, v) in list {
                    out.push_owned(
                        name,
                        with(&[
                            ("container", cn),
                            ("node", &self.node),
                            ("resource", resource),
                            ("unit", resource_unit(resource)),
                        ]),
                        *v,
                    );
                }
            }
        }
    }
}

fn bool_value(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

fn n(v: Option<i32>) -> f64 {
    v.unwrap_or(0) as f64
}

fn n64(v: Option<i64>) -> f64 {
    v.unwrap_or(0) as f64
}

// ------------------------------------------------------------ workloads

/// A controller reduced to the numbers kube-state-metrics reports:
/// `(series suffix, value)` pairs under its kind's prefix.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadObj {
    /// `deployment`, `replicaset`, `statefulset`, `daemonset` or
    /// `replicationcontroller`: the label naming the object, and the
    /// metric prefix `kube_<kind>_`.
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    pub values: Vec<(&'static str, f64)>,
    /// Extra series with one label: (suffix, label, value), e.g. the
    /// statefulset's revisions or a replicaset's owner.
    pub labelled: Vec<(&'static str, Vec<(&'static str, String)>)>,
}

impl WorkloadObj {
    fn new(kind: &'static str, meta: &ObjectMeta) -> WorkloadObj {
        WorkloadObj {
            kind,
            namespace: or_empty(&meta.namespace),
            name: or_empty(&meta.name),
            values: Vec::new(),
            labelled: Vec::new(),
        }
    }

    pub fn deployment(d: &Deployment) -> WorkloadObj {
        let mut w = WorkloadObj::new("deployment", &d.metadata);
        let spec = d.spec.as_ref();
        let st = d.status.clone().unwrap_or_default();
        w.values = vec![
            (
                "spec_replicas",
                n(spec.and_then(|s| s.replicas).or(Some(1))),
            ),
            ("status_replicas", n(st.replicas)),
            ("status_replicas_available", n(st.available_replicas)),
            ("status_replicas_unavailable", n(st.unavailable_replicas)),
            ("status_replicas_updated", n(st.updated_replicas)),
            ("status_replicas_ready", n(st.ready_replicas)),
            ("status_observed_generation", n64(st.observed_generation)),
            ("metadata_generation", n64(d.metadata.generation)),
            (
                "spec_paused",
                bool_value(spec.and_then(|s| s.paused).unwrap_or(false)),
            ),
        ];
        w
    }

    pub fn replicaset(r: &ReplicaSet) -> WorkloadObj {
        let mut w = WorkloadObj::new("replicaset", &r.metadata);
        let st = r.status.clone().unwrap_or_default();
        w.values = vec![
            (
                "spec_replicas",
                n(r.spec.as_ref().and_then(|s| s.replicas).or(Some(1))),
            ),
            ("status_replicas", st.replicas as f64),
            ("status_ready_replicas", n(st.ready_replicas)),
            ("status_observed_generation", n64(st.observed_generation)),
            ("metadata_generation", n64(r.metadata.generation)),
        ];
        for o in r.metadata.owner_references.iter().flatten() {
            w.labelled.push((
                "owner",
                vec![
                    ("owner_kind", o.kind.clone()),
                    ("owner_name", o.name.clone()),
                    (
                        "owner_is_controller",
                        o.controller.unwrap_or(false).to_string(),
                    ),
                ],
            ));
        }
        w
    }

    pub fn statefulset(s: &StatefulSet) -> WorkloadObj {
        let mut w = WorkloadObj::new("statefulset", &s.metadata);
        let st = s.status.clone().unwrap_or_default();
        w.values = vec![
            (
                "replicas",
                n(s.spec.as_ref().and_then(|s| s.replicas).or(Some(1))),
            ),
            ("status_replicas", st.replicas as f64),
            ("status_replicas_ready", n(st.ready_replicas)),
            ("status_replicas_current", n(st.current_replicas)),
            ("status_replicas_updated", n(st.updated_replicas)),
            ("status_replicas_available", n(st.available_replicas)),
            ("status_observed_generation", n64(st.observed_generation)),
            ("metadata_generation", n64(s.metadata.generation)),
        ];
        if let Some(r) = st.current_revision {
            w.labelled
                .push(("status_current_revision", vec![("revision", r)]));
        }
        if let Some(r) = st.update_revision {
            w.labelled
                .push(("status_update_revision", vec![("revision", r)]));
        }
        w
    }

    pub fn daemonset(d: &DaemonSet) -> WorkloadObj {
        let mut w = WorkloadObj::new("daemonset", &d.metadata);
        let st = d.status.clone().unwrap_or_default();
        w.values = vec![
            (
                "status_desired_number_scheduled",
                st.desired_number_scheduled as f64,
            ),
            (
                "status_current_number_scheduled",
                st.current_number_scheduled as f64,
            ),
            (
                "status_updated_number_scheduled",
                n(st.updated_number_scheduled),
            ),
            ("status_number_available", n(st.number_available)),
            ("status_number_misscheduled", st.number_misscheduled as f64),
            ("status_number_ready", st.number_ready as f64),
            ("status_number_unavailable", n(st.number_unavailable)),
            ("status_observed_generation", n64(st.observed_generation)),
            ("metadata_generation", n64(d.metadata.generation)),
        ];
        w
    }

    pub fn replicationcontroller(r: &ReplicationController) -> WorkloadObj {
        let mut w = WorkloadObj::new("replicationcontroller", &r.metadata);
        let st = r.status.clone().unwrap_or_default();
        w.values = vec![
            (
                "spec_replicas",
                n(r.spec.as_ref().and_then(|s| s.replicas).or(Some(1))),
            ),
            ("status_replicas", st.replicas as f64),
            ("status_ready_replicas", n(st.ready_replicas)),
            ("status_available_replicas", n(st.available_replicas)),
            ("status_observed_generation", n64(st.observed_generation)),
            ("metadata_generation", n64(r.metadata.generation)),
        ];
        w
    }

    pub fn series(&self, out: &mut SeriesOut) {
        let id = [
            ("namespace", self.namespace.as_str()),
            (self.kind, self.name.as_str()),
        ];
        for (suffix, v) in &self.values {
            out.push(&format!("kube_{}_{}", self.kind, suffix), &id, *v);
        }
        for (suffix, labels) in &self.labelled {
            let mut all: Vec<(&str, &str)> = id.to_vec();
            all.extend(labels.iter().map(|(k, v)| (*k, v.as_str())));
            out.push(&format!("kube_{}_{}", self.kind, suffix), &all, 1.0);
        }
    }
}

// ------------------------------------------- services, endpoints, namespaces

#[derive(Clone, Debug, PartialEq)]
pub struct ServiceObj {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub cluster_ip: String,
    pub type_: String,
    /// Annotated `lookout.io/routed: "true"`: an L7 router is expected to
    /// route to it (`lookout_service_routed`).
    pub routed: bool,
}

/// The annotation that asks for a service to be routed.
pub const ROUTED_ANNOTATION: &str = "lookout.io/routed";

impl ServiceObj {
    pub fn from(svc: &Service) -> ServiceObj {
        let spec = svc.spec.clone().unwrap_or_default();
        let routed = svc
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ROUTED_ANNOTATION))
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        ServiceObj {
            namespace: or_empty(&svc.metadata.namespace),
            name: or_empty(&svc.metadata.name),
            uid: or_empty(&svc.metadata.uid),
            cluster_ip: or_empty(&spec.cluster_ip),
            type_: spec.type_.unwrap_or_else(|| "ClusterIP".into()),
            routed,
        }
    }

    pub fn series(&self, out: &mut SeriesOut) {
        let id = [
            ("namespace", self.namespace.as_str()),
            ("service", self.name.as_str()),
            ("uid", self.uid.as_str()),
        ];
        let mut info = id.to_vec();
        info.push(("cluster_ip", &self.cluster_ip));
        out.push("kube_service_info", &info, 1.0);
        let mut t = id.to_vec();
        t.push(("type", &self.type_));
        out.push("kube_service_spec_type", &t, 1.0);
    }
}

/// One EndpointSlice: which service it serves and its addresses.
#[derive(Clone, Debug, PartialEq)]
pub struct SliceObj {
    pub namespace: String,
    pub service: String,
    /// (address, port of the first port, ready)
    pub addresses: Vec<(String, Option<i32>, bool)>,
    /// Every port the slice lists: a router may reach a multi-port
    /// service's pods on any of them.
    pub ports: Vec<i32>,
}

impl SliceObj {
    pub fn from(e: &EndpointSlice) -> SliceObj {
        let service = e
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("kubernetes.io/service-name"))
            .cloned()
            .unwrap_or_default();
        let port = e
            .ports
            .as_ref()
            .and_then(|p| p.first())
            .and_then(|p| p.port);
        let addresses = e
            .endpoints
            .iter()
            .flat_map(|ep| {
                // Kubernetes: an unset `ready` is to be read as ready.
                let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
                ep.addresses.iter().map(move |a| (a.clone(), port, ready))
            })
            .collect();
        let ports = e.ports.iter().flatten().filter_map(|p| p.port).collect();
        SliceObj {
            namespace: or_empty(&e.metadata.namespace),
            service,
            addresses,
            ports,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct NamespaceObj {
    pub name: String,
    pub phase: String,
}

impl NamespaceObj {
    pub fn from(ns: &Namespace) -> NamespaceObj {
        NamespaceObj {
            name: or_empty(&ns.metadata.name),
            phase: ns
                .status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_else(|| "Active".into()),
        }
    }

    pub fn series(&self, out: &mut SeriesOut) {
        for phase in ["Active", "Terminating"] {
            out.push(
                "kube_namespace_status_phase",
                &[("namespace", self.name.as_str()), ("phase", phase)],
                bool_value(self.phase == phase),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse_as_kube_state_metrics_reports_them() {
        assert_eq!(parse_quantity("100m"), Some(0.1));
        assert_eq!(parse_quantity("2"), Some(2.0));
        assert_eq!(parse_quantity("128Mi"), Some(134217728.0));
        assert_eq!(parse_quantity("1G"), Some(1e9));
        assert_eq!(parse_quantity("1e3"), Some(1000.0));
        assert_eq!(parse_quantity("16Gi"), Some(17179869184.0));
        assert_eq!(parse_quantity("12x"), None);
        assert_eq!(parse_quantity(""), None);
    }

    #[test]
    fn a_crash_looping_pod_yields_its_waiting_reason_and_restarts() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-1", "namespace": "shop", "uid": "u1",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "name": "web-7f", "uid": "r1", "controller": true}]},
            "spec": {"nodeName": "node-0001", "containers": [{"name": "app",
                "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}}]},
            "status": {"phase": "Running", "hostIP": "10.0.0.1", "podIP": "10.1.0.5",
                "conditions": [{"type": "Ready", "status": "False"}],
                "containerStatuses": [{"name": "app", "ready": false, "restartCount": 4,
                    "image": "x", "imageID": "",
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"reason": "Error", "exitCode": 1}}}]}
        }))
        .expect("pod json");
        let p = PodObj::from(&pod);
        let mut out = SeriesOut::new(0, "kube-state-metrics");
        p.series(&mut out);
        let text = out.debug_lines();
        for want in [
            r#"kube_pod_container_status_waiting_reason{container="app",job="kube-state-metrics",namespace="shop",pod="web-1",reason="CrashLoopBackOff",uid="u1"} 1"#,
            r#"kube_pod_container_status_restarts_total{container="app",job="kube-state-metrics",namespace="shop",pod="web-1",uid="u1"} 4"#,
            r#"kube_pod_container_status_last_terminated_reason{container="app",job="kube-state-metrics",namespace="shop",pod="web-1",reason="Error",uid="u1"} 1"#,
            r#"kube_pod_status_phase{job="kube-state-metrics",namespace="shop",phase="Running",pod="web-1",uid="u1"} 1"#,
            r#"kube_pod_status_ready{condition="false",job="kube-state-metrics",namespace="shop",pod="web-1",uid="u1"} 1"#,
            r#"kube_pod_status_ready{condition="true",job="kube-state-metrics",namespace="shop",pod="web-1",uid="u1"} 0"#,
            r#"kube_pod_owner{job="kube-state-metrics",namespace="shop",owner_is_controller="true",owner_kind="ReplicaSet",owner_name="web-7f",pod="web-1",uid="u1"} 1"#,
            r#"kube_pod_container_resource_requests{container="app",job="kube-state-metrics",namespace="shop",node="node-0001",pod="web-1",resource="cpu",uid="u1",unit="core"} 0.25"#,
            r#"kube_pod_info{created_by_kind="ReplicaSet",created_by_name="web-7f",host_ip="10.0.0.1",job="kube-state-metrics",namespace="shop",node="node-0001",pod="web-1",pod_ip="10.1.0.5",uid="u1"} 1"#,
        ] {
            assert!(text.contains(want), "missing {want}\nin\n{text}");
        }
        assert!(
            !text.contains(r#"phase="Pending""#),
            "only the current phase is written"
        );
    }

    #[test]
    fn node_conditions_yield_all_three_statuses() {
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n1", "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "spec": {"unschedulable": true,
                "taints": [{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]},
            "status": {"conditions": [{"type": "Ready", "status": "Unknown"}],
                "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                "addresses": [{"type": "InternalIP", "address": "10.0.0.9"}]}
        }))
        .expect("node json");
        let n = NodeObj::from(&node);
        assert_eq!(n.ready(), Some(false));
        assert_eq!(n.internal_ip, "10.0.0.9");
        let mut out = SeriesOut::new(0, "kube-state-metrics");
        n.series(&mut out);
        let text = out.debug_lines();
        for want in [
            r#"kube_node_status_condition{condition="Ready",job="kube-state-metrics",node="n1",status="unknown"} 1"#,
            r#"kube_node_status_condition{condition="Ready",job="kube-state-metrics",node="n1",status="true"} 0"#,
            r#"kube_node_spec_unschedulable{job="kube-state-metrics",node="n1"} 1"#,
            r#"kube_node_role{job="kube-state-metrics",node="n1",role="control-plane"} 1"#,
            r#"kube_node_spec_taint{effect="NoExecute",job="kube-state-metrics",key="node.kubernetes.io/unreachable",node="n1"} 1"#,
            r#"kube_node_status_capacity{job="kube-state-metrics",node="n1",resource="memory",unit="byte"} 8589934592"#,
        ] {
            assert!(text.contains(want), "missing {want}\nin\n{text}");
        }
    }
}
