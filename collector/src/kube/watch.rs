//! One kube-rs watcher per kind. Each event is converted to its compact
//! form at once and applied to the shared [`ClusterState`].
//!
//! A failed watch is dropped and, after a jittered backoff, started again
//! with a full list, as client-go's reflector does. kube's own retry would
//! resume from the last resourceVersion without any event to say it is
//! current again, so `lookout_kube_watch_up` could not come back to 1; a
//! list ends with `InitDone`, which does say so.

use std::fmt::Debug;
use std::sync::Arc;

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ReplicationController, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher;
use kube::{Api, Client, Resource};
use lookout_agent::shipper::Jitter;
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::objects::{
    NamespaceObj, NodeObj, PodObj, ServiceObj, SliceObj, WorkloadObj, key, lease_renew_ms,
};
use super::state::{ClusterState, Ev, LeaseObj};

pub type Shared = Arc<Mutex<ClusterState>>;

/// Starts a watcher for every kind Lookout follows.
pub fn start_all(
    client: &Client,
    state: &Shared,
    cancel: &CancellationToken,
    tasks: &mut JoinSet<()>,
) {
    let c = client.clone();
    follow(
        tasks,
        cancel,
        state,
        "nodes",
        Api::<Node>::all(c.clone()),
        |n| Some((key(&n.metadata), Arc::new(NodeObj::from(n)))),
        ClusterState::node,
    );
    follow(
        tasks,
        cancel,
        state,
        "leases",
        Api::<Lease>::namespaced(c.clone(), "kube-node-lease"),
        |l| {
            Some((
                key(&l.metadata),
                Arc::new(LeaseObj {
                    name: l.metadata.name.clone().unwrap_or_default(),
                    renew_ms: lease_renew_ms(l)?,
                }),
            ))
        },
        ClusterState::lease,
    );
    follow(
        tasks,
        cancel,
        state,
        "pods",
        Api::<Pod>::all(c.clone()),
        |p| Some((key(&p.metadata), Arc::new(PodObj::from(p)))),
        ClusterState::pod,
    );
    follow(
        tasks,
        cancel,
        state,
        "namespaces",
        Api::<Namespace>::all(c.clone()),
        |n| Some((key(&n.metadata), Arc::new(NamespaceObj::from(n)))),
        ClusterState::namespace,
    );
    follow(
        tasks,
        cancel,
        state,
        "services",
        Api::<Service>::all(c.clone()),
        |s| Some((key(&s.metadata), Arc::new(ServiceObj::from(s)))),
        ClusterState::service,
    );
    follow(
        tasks,
        cancel,
        state,
        "endpointslices",
        Api::<EndpointSlice>::all(c.clone()),
        |e| Some((key(&e.metadata), Arc::new(SliceObj::from(e)))),
        ClusterState::slice,
    );
    follow(
        tasks,
        cancel,
        state,
        "deployments",
        Api::<Deployment>::all(c.clone()),
        |d| Some((key(&d.metadata), Arc::new(WorkloadObj::deployment(d)))),
        |st, ev| st.workload("deployment", ev),
    );
    follow(
        tasks,
        cancel,
        state,
        "replicasets",
        Api::<ReplicaSet>::all(c.clone()),
        |r| Some((key(&r.metadata), Arc::new(WorkloadObj::replicaset(r)))),
        |st, ev| st.workload("replicaset", ev),
    );
    follow(
        tasks,
        cancel,
        state,
        "statefulsets",
        Api::<StatefulSet>::all(c.clone()),
        |s| Some((key(&s.metadata), Arc::new(WorkloadObj::statefulset(s)))),
        |st, ev| st.workload("statefulset", ev),
    );
    follow(
        tasks,
        cancel,
        state,
        "daemonsets",
        Api::<DaemonSet>::all(c.clone()),
        |d| Some((key(&d.metadata), Arc::new(WorkloadObj::daemonset(d)))),
        |st, ev| st.workload("daemonset", ev),
    );
    follow(
        tasks,
        cancel,
        state,
        "replicationcontrollers",
        Api::<ReplicationController>::all(c),
        |r| {
            Some((
                key(&r.metadata),
                Arc::new(WorkloadObj::replicationcontroller(r)),
            ))
        },
        |st, ev| st.workload("replicationcontroller", ev),
    );
}

#[allow(clippy::too_many_arguments)]
fn follow<K, T>(
    tasks: &mut JoinSet<()>,
    cancel: &CancellationToken,
    state: &Shared,
    resource: &'static str,
    api: Api<K>,
    convert: fn(&K) -> Option<(String, T)>,
    apply: fn(&mut ClusterState, Ev<T>),
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    T: Send + 'static,
{
    let state = state.clone();
    let cancel = cancel.clone();
    tasks.spawn(async move {
        let mut jitter = Jitter::seeded();
        let mut failures = 0u32;
        loop {
            let stream = watcher(api.clone(), watcher::Config::default());
            let mut stream = std::pin::pin!(stream);
            let error = loop {
                let next = tokio::select! {
                    _ = cancel.cancelled() => return,
                    next = stream.next() => next,
                };
                let event = match next {
                    Some(Ok(e)) => e,
                    Some(Err(e)) => break e.to_string(),
                    None => break "the watch stream ended".to_string(),
                };
                let mut st = state.lock();
                st.watch_event(resource);
                match event {
                    watcher::Event::Init => apply(&mut st, Ev::Begin),
                    watcher::Event::InitApply(obj) | watcher::Event::Apply(obj) => {
                        if let Some((k, v)) = convert(&obj) {
                            apply(&mut st, Ev::Apply(k, v));
                        }
                    }
                    watcher::Event::Delete(obj) => apply(&mut st, Ev::Delete(key(obj.meta()))),
                    watcher::Event::InitDone => {
                        apply(&mut st, Ev::Done);
                        st.watch_state(resource, true);
                        if failures > 0 {
                            tracing::info!(resource, "watch re-established");
                        }
                        failures = 0;
                    }
                }
            };
            if failures == 0 {
                tracing::warn!(
                    resource,
                    "watch failed, listing again with backoff: {error}"
                );
            }
            failures += 1;
            state.lock().watch_state(resource, false);
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(jitter.backoff(failures)) => {}
            }
        }
    });
}
