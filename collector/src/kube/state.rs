//! The cluster as the watchers last saw it: one table per kind, the
//! transitions counted as they happen, and stale markers for the series of
//! objects that changed shape or went away.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use lookout_protocol::remote_write::TimeSeries;

use super::objects::{NamespaceObj, NodeObj, PodObj, ServiceObj, SliceObj, WorkloadObj};
use super::series::{SeriesOut, stale, vanished};
use super::table::{Change, Table};

pub const KSM_JOB: &str = "kube-state-metrics";
pub const LOOKOUT_JOB: &str = "lookout";

/// One step of a watcher, reduced to what the tables need.
pub enum Ev<T> {
    /// A list begins (first start, or a re-list after 410 Gone or an error).
    Begin,
    Apply(String, T),
    Delete(String),
    /// The list is complete.
    Done,
}

/// Something that yields kube-state-metrics series.
pub trait Emits {
    fn emit(&self, out: &mut SeriesOut);
}

impl Emits for NodeObj {
    fn emit(&self, out: &mut SeriesOut) {
        self.series(out)
    }
}
impl Emits for PodObj {
    fn emit(&self, out: &mut SeriesOut) {
        self.series(out)
    }
}
impl Emits for WorkloadObj {
    fn emit(&self, out: &mut SeriesOut) {
        self.series(out)
    }
}
impl Emits for ServiceObj {
    fn emit(&self, out: &mut SeriesOut) {
        self.series(out)
    }
}
impl Emits for NamespaceObj {
    fn emit(&self, out: &mut SeriesOut) {
        self.series(out)
    }
}
impl Emits for LeaseObj {
    fn emit(&self, out: &mut SeriesOut) {
        out.push(
            "kube_lease_renew_time",
            &[("lease", &self.name), ("namespace", "kube-node-lease")],
            self.renew_ms as f64 / 1000.0,
        );
    }
}
/// Endpoint counts are written per service, from all its slices.
impl Emits for SliceObj {
    fn emit(&self, _out: &mut SeriesOut) {}
}

#[derive(Clone, Debug, PartialEq)]
pub struct LeaseObj {
    pub name: String,
    pub renew_ms: i64,
}

#[derive(Clone, Debug, Default)]
pub struct WatchHealth {
    pub up: bool,
    pub restarts: u64,
    pub events: u64,
}

/// Kinds followed, in the order their series are written.
pub const WORKLOAD_KINDS: [&str; 5] = [
    "deployment",
    "replicaset",
    "statefulset",
    "daemonset",
    "replicationcontroller",
];

#[derive(Default)]
pub struct ClusterState {
    pub nodes: Table<Arc<NodeObj>>,
    pub leases: Table<Arc<LeaseObj>>,
    pub pods: Table<Arc<PodObj>>,
    pub workloads: BTreeMap<&'static str, Table<Arc<WorkloadObj>>>,
    pub services: Table<Arc<ServiceObj>>,
    pub slices: Table<Arc<SliceObj>>,
    pub namespaces: Table<Arc<NamespaceObj>>,
    /// Series to mark stale at the next write.
    stale: Vec<TimeSeries>,
    /// (kind, added|deleted) → count, after the first list.
    changes: BTreeMap<(&'static str, &'static str), u64>,
    pod_phase_transitions: BTreeMap<(String, String), u64>,
    namespace_phase_transitions: BTreeMap<(String, String), u64>,
    pub watches: BTreeMap<&'static str, WatchHealth>,
}

impl<T: Emits> Emits for Arc<T> {
    fn emit(&self, out: &mut SeriesOut) {
        (**self).emit(out)
    }
}

fn series_of<T: Emits>(obj: &T) -> Vec<TimeSeries> {
    let mut out = SeriesOut::new(0, KSM_JOB);
    obj.emit(&mut out);
    out.series
}

/// Applies one event to a table; returns (old, new) of what changed.
fn step<T: Emits + Clone>(
    table: &mut Table<T>,
    kind: &'static str,
    ev: Ev<T>,
    stale_out: &mut Vec<TimeSeries>,
    changes: &mut BTreeMap<(&'static str, &'static str), u64>,
) -> Vec<(Option<T>, Option<T>)> {
    match ev {
        Ev::Begin => {
            table.begin_relist();
            Vec::new()
        }
        Ev::Apply(key, obj) => {
            let synced = table.synced;
            match table.apply(key, obj.clone()) {
                Change::Added => {
                    if synced {
                        *changes.entry((kind, "added")).or_default() += 1;
                    }
                    vec![(None, Some(obj))]
                }
                Change::Updated(old) => {
                    stale_out.extend(vanished(&series_of(&old), &series_of(&obj), 0));
                    vec![(Some(old), Some(obj))]
                }
            }
        }
        Ev::Delete(key) => match table.delete(&key) {
            Some(old) => {
                gone(&old, kind, stale_out, changes);
                vec![(Some(old), None)]
            }
            None => Vec::new(),
        },
        Ev::Done => {
            let removed = table.end_relist();
            removed
                .into_iter()
                .map(|(_, old)| {
                    gone(&old, kind, stale_out, changes);
                    (Some(old), None)
                })
                .collect()
        }
    }
}

fn gone<T: Emits>(
    old: &T,
    kind: &'static str,
    stale_out: &mut Vec<TimeSeries>,
    changes: &mut BTreeMap<(&'static str, &'static str), u64>,
) {
    stale_out.extend(series_of(old).into_iter().map(|s| stale(s.labels, 0)));
    *changes.entry((kind, "deleted")).or_default() += 1;
}

impl ClusterState {
    pub fn node(&mut self, ev: Ev<Arc<NodeObj>>) {
        step(
            &mut self.nodes,
            "node",
            ev,
            &mut self.stale,
            &mut self.changes,
        );
    }

    pub fn lease(&mut self, ev: Ev<Arc<LeaseObj>>) {
        step(
            &mut self.leases,
            "lease",
            ev,
            &mut self.stale,
            &mut self.changes,
        );
    }

    pub fn pod(&mut self, ev: Ev<Arc<PodObj>>) {
        for (old, new) in step(
            &mut self.pods,
            "pod",
            ev,
            &mut self.stale,
            &mut self.changes,
        ) {
            let from = old.as_ref().map(|p| p.phase.as_str()).unwrap_or("");
            let to = new.as_ref().map(|p| p.phase.as_str()).unwrap_or("");
            // A pod first seen or gone is counted in `changes`; here only
            // the phase moves of pods that stay.
            if old.is_some() && new.is_some() && from != to {
                *self
                    .pod_phase_transitions
                    .entry((from.to_string(), to.to_string()))
                    .or_default() += 1;
            }
        }
    }

    pub fn workload(&mut self, kind: &'static str, ev: Ev<Arc<WorkloadObj>>) {
        let table = self.workloads.entry(kind).or_default();
        step(table, kind, ev, &mut self.stale, &mut self.changes);
    }

    pub fn service(&mut self, ev: Ev<Arc<ServiceObj>>) {
        step(
            &mut self.services,
            "service",
            ev,
            &mut self.stale,
            &mut self.changes,
        );
    }

    pub fn slice(&mut self, ev: Ev<Arc<SliceObj>>) {
        let before = self.endpoint_counts();
        step(
            &mut self.slices,
            "endpointslice",
            ev,
            &mut self.stale,
            &mut self.changes,
        );
        // A service whose last slice went away loses its endpoint series.
        let after = self.endpoint_counts();
        for (ns, svc) in before.keys() {
            if !after.contains_key(&(ns.clone(), svc.clone())) {
                let mut out = SeriesOut::new(0, KSM_JOB);
                endpoint_series(&mut out, ns, svc, (0, 0));
                self.stale
                    .extend(out.series.into_iter().map(|s| stale(s.labels, 0)));
            }
        }
    }

    pub fn namespace(&mut self, ev: Ev<Arc<NamespaceObj>>) {
        for (old, new) in step(
            &mut self.namespaces,
            "namespace",
            ev,
            &mut self.stale,
            &mut self.changes,
        ) {
            if let (Some(o), Some(n)) = (&old, &new)
                && o.phase != n.phase
            {
                *self
                    .namespace_phase_transitions
                    .entry((o.phase.clone(), n.phase.clone()))
                    .or_default() += 1;
            }
        }
    }

    pub fn watch_event(&mut self, resource: &'static str) {
        self.watches.entry(resource).or_default().events += 1;
    }

    pub fn watch_state(&mut self, resource: &'static str, up: bool) {
        let w = self.watches.entry(resource).or_default();
        if w.up && !up {
            w.restarts += 1;
        }
        w.up = up;
    }

    /// Ready and not-ready addresses per (namespace, service).
    pub fn endpoint_counts(&self) -> HashMap<(String, String), (usize, usize)> {
        let mut out: HashMap<(String, String), (usize, usize)> = HashMap::new();
        for s in self.slices.values() {
            if s.service.is_empty() {
                continue;
            }
            let e = out
                .entry((s.namespace.clone(), s.service.clone()))
                .or_default();
            for (_, _, ready) in &s.addresses {
                if *ready {
                    e.0 += 1;
                } else {
                    e.1 += 1;
                }
            }
        }
        out
    }

    /// The ready addresses of `default/kubernetes`: the apiserver
    /// instances, as `ip:port`.
    pub fn apiserver_endpoints(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .slices
            .values()
            .filter(|s| s.namespace == "default" && s.service == "kubernetes")
            .flat_map(|s| s.addresses.iter())
            .filter(|a| a.2)
            .map(|(ip, port, _)| match port {
                Some(p) => format!("{ip}:{p}"),
                None => format!("{ip}:443"),
            })
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// When each node was last heard of: its lease's renew time, or the
    /// Ready condition's heartbeat where no lease is kept.
    pub fn heartbeats(&self) -> Vec<(Arc<NodeObj>, Option<i64>)> {
        self.nodes
            .values()
            .map(|n| {
                let lease = self.leases.get(&format!("kube-node-lease/{}", n.name));
                let renew = match (lease.map(|l| l.renew_ms), n.ready_heartbeat_ms) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
                (n.clone(), renew)
            })
            .collect()
    }

    /// (nodes, nodes whose heartbeat is older than `grace_ms`).
    pub fn heartbeat_summary(&self, now_ms: i64, grace_ms: i64) -> (usize, usize) {
        let beats = self.heartbeats();
        let lost = beats
            .iter()
            .filter(|(_, renew)| renew.is_some_and(|r| now_ms - r > grace_ms))
            .count();
        (beats.len(), lost)
    }

    /// What to write this round, taken under the lock and written outside
    /// it: the objects are shared, not copied.
    pub fn snapshot(&mut self, now_ms: i64, grace_ms: i64) -> Snapshot {
        let mut lookout = SeriesOut::new(now_ms, LOOKOUT_JOB);
        let beats = self.heartbeats();
        let (mut total, mut lost) = (0, 0);
        for (node, renew) in &beats {
            total += 1;
            let Some(r) = renew else {
                continue;
            };
            let age = ((now_ms - r) as f64 / 1000.0).max(0.0);
            let ok = now_ms - r <= grace_ms;
            if !ok {
                lost += 1;
            }
            lookout.push(
                "lookout_node_heartbeat_age_seconds",
                &[("node", &node.name)],
                age,
            );
            lookout.push(
                "lookout_node_heartbeat_ok",
                &[("node", &node.name)],
                if ok { 1.0 } else { 0.0 },
            );
        }
        lookout.push("lookout_nodes", &[], total as f64);
        lookout.push("lookout_nodes_heartbeat_lost", &[], lost as f64);
        let mut counts: Vec<(&str, usize)> = vec![
            ("node", self.nodes.len()),
            ("lease", self.leases.len()),
            ("pod", self.pods.len()),
            ("service", self.services.len()),
            ("endpointslice", self.slices.len()),
            ("namespace", self.namespaces.len()),
        ];
        for (kind, t) in &self.workloads {
            counts.push((kind, t.len()));
        }
        for (kind, n) in counts {
            lookout.push("lookout_kube_objects", &[("kind", kind)], n as f64);
        }
        for ((kind, change), n) in &self.changes {
            lookout.push(
                "lookout_kube_object_changes_total",
                &[("kind", kind), ("change", change)],
                *n as f64,
            );
        }
        for ((from, to), n) in &self.pod_phase_transitions {
            lookout.push(
                "lookout_kube_pod_phase_transitions_total",
                &[("from", from), ("to", to)],
                *n as f64,
            );
        }
        for ((from, to), n) in &self.namespace_phase_transitions {
            lookout.push(
                "lookout_kube_namespace_phase_transitions_total",
                &[("from", from), ("to", to)],
                *n as f64,
            );
        }
        for (resource, w) in &self.watches {
            lookout.push(
                "lookout_kube_watch_up",
                &[("resource", resource)],
                if w.up { 1.0 } else { 0.0 },
            );
            lookout.push(
                "lookout_kube_watch_restarts_total",
                &[("resource", resource)],
                w.restarts as f64,
            );
            lookout.push(
                "lookout_kube_watch_events_total",
                &[("resource", resource)],
                w.events as f64,
            );
        }
        let mut endpoints = SeriesOut::new(now_ms, KSM_JOB);
        let mut counts: Vec<_> = self.endpoint_counts().into_iter().collect();
        counts.sort();
        for ((ns, svc), c) in counts {
            endpoint_series(&mut endpoints, &ns, &svc, c);
        }
        let mut stale = std::mem::take(&mut self.stale);
        for s in &mut stale {
            for sample in &mut s.samples {
                sample.timestamp = now_ms;
            }
        }
        let mut objects: Vec<Arc<dyn EmitsSend>> =
            Vec::with_capacity(self.nodes.len() + self.pods.len() + self.leases.len() + 1024);
        objects.extend(self.namespaces.values().map(|o| o.clone() as _));
        objects.extend(self.nodes.values().map(|o| o.clone() as _));
        objects.extend(self.leases.values().map(|o| o.clone() as _));
        for t in self.workloads.values() {
            objects.extend(t.values().map(|o| o.clone() as _));
        }
        objects.extend(self.services.values().map(|o| o.clone() as _));
        objects.extend(self.pods.values().map(|o| o.clone() as _));
        Snapshot {
            now_ms,
            objects,
            extra: [stale, endpoints.series, lookout.series],
        }
    }
}

fn endpoint_series(out: &mut SeriesOut, ns: &str, svc: &str, (ready, not_ready): (usize, usize)) {
    let id = [("namespace", ns), ("endpoint", svc)];
    out.push("kube_endpoint_address_available", &id, ready as f64);
    out.push("kube_endpoint_address_not_ready", &id, not_ready as f64);
}

pub trait EmitsSend: Emits + Send + Sync {}
impl<T: Emits + Send + Sync> EmitsSend for T {}

/// One round of cluster-state series, produced in batches so a large
/// cluster's series are never all in memory at once.
pub struct Snapshot {
    pub now_ms: i64,
    objects: Vec<Arc<dyn EmitsSend>>,
    extra: [Vec<TimeSeries>; 3],
}

impl Snapshot {
    /// Calls `write` with batches of about `batch` series.
    pub fn write<E>(
        self,
        batch: usize,
        mut write: impl FnMut(Vec<TimeSeries>) -> Result<(), E>,
    ) -> Result<usize, E> {
        let mut written = 0;
        for extra in self.extra {
            written += extra.len();
            if !extra.is_empty() {
                write(extra)?;
            }
        }
        let mut out = SeriesOut::new(self.now_ms, KSM_JOB);
        for o in &self.objects {
            o.emit(&mut out);
            if out.len() >= batch {
                written += out.len();
                write(out.take())?;
            }
        }
        if !out.is_empty() {
            written += out.len();
            write(out.take())?;
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lookout_protocol::remote_write::is_stale_nan;

    fn pod(name: &str, phase: &str, waiting: Option<&str>) -> Arc<PodObj> {
        Arc::new(PodObj {
            namespace: "ns".into(),
            name: name.into(),
            uid: format!("uid-{name}").into(),
            node: "n1".into(),
            host_ip: Default::default(),
            pod_ip: Default::default(),
            created_by_kind: Default::default(),
            created_by_name: Default::default(),
            owners: Vec::new(),
            phase: phase.into(),
            ready: "True".into(),
            reason: Default::default(),
            containers: vec![super::super::objects::ContainerObj {
                name: "c".into(),
                restarts: 0,
                ready: waiting.is_none(),
                running: waiting.is_none(),
                waiting_reason: waiting.map(Into::into),
                terminated_reason: None,
                last_terminated_reason: None,
                requests: Vec::new(),
                limits: Vec::new(),
            }],
        })
    }

    fn collect(snap: Snapshot) -> Vec<TimeSeries> {
        let mut all = Vec::new();
        snap.write(7, |b| {
            all.extend(b);
            Ok::<_, ()>(())
        })
        .expect("write");
        all
    }

    fn has(all: &[TimeSeries], name: &str, pairs: &[(&str, &str)]) -> Option<f64> {
        all.iter()
            .find(|s| {
                s.labels
                    .iter()
                    .any(|l| l.name == "__name__" && l.value == name)
                    && pairs
                        .iter()
                        .all(|(k, v)| s.labels.iter().any(|l| l.name == *k && l.value == *v))
            })
            .map(|s| s.samples[0].value)
    }

    #[test]
    fn transitions_are_counted_and_vanished_series_go_stale() {
        let mut st = ClusterState::default();
        st.pod(Ev::Begin);
        st.pod(Ev::Apply("ns/a".into(), pod("a", "Pending", None)));
        st.pod(Ev::Apply("ns/b".into(), pod("b", "Running", None)));
        st.pod(Ev::Done);
        let first = collect(st.snapshot(1000, 40_000));
        assert_eq!(
            has(
                &first,
                "kube_pod_status_phase",
                &[("pod", "a"), ("phase", "Pending")]
            ),
            Some(1.0)
        );
        assert_eq!(
            has(&first, "lookout_kube_object_changes_total", &[]),
            None,
            "the state found at start is not a change"
        );

        st.pod(Ev::Apply(
            "ns/a".into(),
            pod("a", "Running", Some("CrashLoopBackOff")),
        ));
        st.pod(Ev::Apply("ns/a".into(), pod("a", "Running", None)));
        st.pod(Ev::Delete("ns/b".into()));
        let second = collect(st.snapshot(2000, 40_000));
        assert_eq!(
            has(
                &second,
                "lookout_kube_pod_phase_transitions_total",
                &[("from", "Pending"), ("to", "Running")]
            ),
            Some(1.0)
        );
        assert_eq!(
            has(
                &second,
                "lookout_kube_object_changes_total",
                &[("kind", "pod"), ("change", "deleted")]
            ),
            Some(1.0)
        );
        let waiting = has(
            &second,
            "kube_pod_container_status_waiting_reason",
            &[("pod", "a")],
        )
        .expect("the waiting reason that went away is marked stale");
        assert!(is_stale_nan(waiting));
        let b = has(&second, "kube_pod_info", &[("pod", "b")]).expect("deleted pod stale");
        assert!(is_stale_nan(b));
        let third = collect(st.snapshot(3000, 40_000));
        assert!(has(&third, "kube_pod_info", &[("pod", "b")]).is_none());
    }

    #[test]
    fn a_relist_after_410_drops_objects_deleted_meanwhile() {
        let mut st = ClusterState::default();
        st.pod(Ev::Begin);
        st.pod(Ev::Apply("ns/a".into(), pod("a", "Running", None)));
        st.pod(Ev::Apply("ns/b".into(), pod("b", "Running", None)));
        st.pod(Ev::Done);
        st.pod(Ev::Begin);
        st.pod(Ev::Apply("ns/a".into(), pod("a", "Running", None)));
        st.pod(Ev::Done);
        assert_eq!(st.pods.len(), 1);
        let all = collect(st.snapshot(5, 1));
        assert!(is_stale_nan(
            has(&all, "kube_pod_info", &[("pod", "b")]).expect("stale")
        ));
    }

    #[test]
    fn heartbeats_come_from_leases() {
        let mut st = ClusterState::default();
        let node: k8s_openapi::api::core::v1::Node =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "n1"}, "status": {}}))
                .expect("node");
        st.node(Ev::Apply("n1".into(), Arc::new(NodeObj::from(&node))));
        st.lease(Ev::Apply(
            "kube-node-lease/n1".into(),
            Arc::new(LeaseObj {
                name: "n1".into(),
                renew_ms: 10_000,
            }),
        ));
        assert_eq!(st.heartbeat_summary(20_000, 40_000), (1, 0));
        assert_eq!(st.heartbeat_summary(60_000, 40_000), (1, 1));
        let all = collect(st.snapshot(60_000, 40_000));
        assert_eq!(
            has(&all, "lookout_node_heartbeat_ok", &[("node", "n1")]),
            Some(0.0)
        );
        assert_eq!(
            has(
                &all,
                "lookout_node_heartbeat_age_seconds",
                &[("node", "n1")]
            ),
            Some(50.0)
        );
        assert_eq!(
            has(&all, "kube_lease_renew_time", &[("lease", "n1")]),
            Some(10.0)
        );
    }
}
