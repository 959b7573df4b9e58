//! The simulated controllers: what keeps derived objects consistent when
//! pods change (owner status, EndpointSlices), and the scripted faults and
//! changes the control API triggers (crash loops, scaling, churn).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::MissedTickBehavior;

use crate::Error;
use crate::cluster::{Core, lock};
use crate::resources::Kind;
use crate::store::{Object, Store};
use crate::time;
use crate::workloads::{self, Placement, Registry};

/// Whether every container of a running pod is ready.
pub(crate) fn containers_ready(pod: &Value) -> bool {
    pod.pointer("/status/phase").and_then(Value::as_str) == Some("Running")
        && pod
            .pointer("/status/containerStatuses")
            .and_then(Value::as_array)
            .is_some_and(|cs| cs.iter().all(|c| c["ready"] == json!(true)))
}

fn unready_containers(pod: &Value) -> Vec<String> {
    pod.pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter(|c| c["ready"] != json!(true))
                .filter_map(|c| c["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Sets a pod condition; returns whether it changed.
fn set_condition(
    pod: &mut Value,
    ty: &str,
    status: bool,
    reason: Option<&str>,
    message: Option<&str>,
    now: &str,
) -> bool {
    let Some(conds) = pod
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
    else {
        return false;
    };
    let want = if status { "True" } else { "False" };
    let Some(cond) = conds.iter_mut().find(|c| c["type"] == ty) else {
        return false;
    };
    if cond["status"] == want {
        return false;
    }
    let mut new = json!({"type": ty, "status": want, "lastTransitionTime": now});
    if let Some(r) = reason {
        new["reason"] = json!(r);
    }
    if let Some(m) = message {
        new["message"] = json!(m);
    }
    *cond = new;
    true
}

/// Sets the pod's Ready condition; returns whether it changed.
pub(crate) fn set_pod_ready(pod: &mut Value, ready: bool, now: &str) -> bool {
    let unready = unready_containers(pod);
    let message = (!unready.is_empty())
        .then(|| format!("containers with unready status: [{}]", unready.join(" ")));
    let reason = message.as_ref().map(|_| "ContainersNotReady");
    set_condition(pod, "Ready", ready, reason, message.as_deref(), now)
}

/// Brings owners' status and services' EndpointSlices up to date after
/// `pods` (new states, or deletion tombstones) changed.
pub(crate) fn pods_changed(core: &Core, pods: &[Arc<Object>]) {
    if pods.is_empty() {
        return;
    }
    let mut owners: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    let mut services: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for pod in pods {
        if let Some((kind, name)) = pod.owner() {
            owners
                .entry(pod.namespace().to_owned())
                .or_default()
                .insert((kind.to_owned(), name.to_owned()));
        }
        for svc in core
            .workloads
            .services_selecting(pod.namespace(), pod.labels())
        {
            services
                .entry(pod.namespace().to_owned())
                .or_default()
                .insert(svc.name);
        }
    }
    for (ns, owners) in owners {
        reconcile_owners(core, &ns, &owners);
    }
    for (ns, names) in services {
        let names: Vec<String> = names.into_iter().collect();
        reconcile_services(&core.store, &core.workloads, &ns, &names);
    }
}

/// Keeps `old`'s condition timestamps where a condition did not change, so
/// that an unchanged status compares equal.
fn keep_condition_times(old: &Value, new: &mut Value) {
    let (Some(old), Some(new)) = (
        old.get("conditions").and_then(Value::as_array),
        new.get_mut("conditions").and_then(Value::as_array_mut),
    ) else {
        return;
    };
    for cond in new {
        let same = old.iter().find(|o| {
            o["type"] == cond["type"]
                && o["status"] == cond["status"]
                && o["reason"] == cond["reason"]
        });
        if let Some(o) = same {
            for key in ["lastUpdateTime", "lastTransitionTime"] {
                if let Some(t) = o.get(key) {
                    cond[key] = t.clone();
                }
            }
        }
    }
}

/// Replaces `status` when `make` (given the object) yields something new.
fn update_status(
    store: &Store,
    kind: Kind,
    ns: &str,
    name: &str,
    make: impl FnOnce(&Value) -> Value,
) {
    let result = store.update(kind, ns, name, |v| {
        let mut status = make(v);
        keep_condition_times(&v["status"], &mut status);
        if v["status"] == status {
            return false;
        }
        v["status"] = status;
        true
    });
    if let Err(e) = result {
        tracing::debug!(kind = kind.info().kind, %ns, %name, error = %e, "status update skipped");
    }
}

fn generation(v: &Value) -> i64 {
    v.pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

fn spec_replicas(v: &Value) -> usize {
    v.pointer("/spec/replicas")
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(1)
}

/// Recomputes the status of controllers in `ns` from their pods (one scan
/// of the namespace for all of them).
fn reconcile_owners(core: &Core, ns: &str, owners: &BTreeSet<(String, String)>) {
    let mut counts: HashMap<(String, String), (usize, usize)> = HashMap::new();
    for pod in core.store.scan(Kind::PODS, Some(ns), |p| {
        p.owner()
            .is_some_and(|(k, n)| owners.contains(&(k.to_owned(), n.to_owned())))
    }) {
        if let Some((k, n)) = pod.owner() {
            let entry = counts.entry((k.to_owned(), n.to_owned())).or_default();
            entry.0 += 1;
            entry.1 += usize::from(pod.ready() == Some(true));
        }
    }
    let now = time::now_seconds();
    let store = &core.store;
    for owner in owners {
        let (pods, ready) = counts.get(owner).copied().unwrap_or_default();
        let name = owner.1.as_str();
        match owner.0.as_str() {
            "ReplicaSet" => {
                update_status(store, Kind::REPLICA_SETS, ns, name, |v| {
                    workloads::replica_set_status(generation(v), pods, ready)
                });
                let parent = store
                    .get(Kind::REPLICA_SETS, ns, name)
                    .and_then(|rs| rs.owner().map(|(_, n)| n.to_owned()));
                if let Some(deployment) = parent {
                    update_status(store, Kind::DEPLOYMENTS, ns, &deployment, |v| {
                        workloads::deployment_status(
                            generation(v),
                            spec_replicas(v),
                            pods,
                            ready,
                            ready,
                            &now,
                        )
                    });
                }
            }
            "DaemonSet" => update_status(store, Kind::DAEMON_SETS, ns, name, |v| {
                workloads::daemon_set_status(generation(v), core.nodes.len(), pods, ready)
            }),
            "StatefulSet" => update_status(store, Kind::STATEFUL_SETS, ns, name, |v| {
                let mut status = v["status"].clone();
                for (key, n) in [
                    ("replicas", pods),
                    ("readyReplicas", ready),
                    ("currentReplicas", pods),
                    ("updatedReplicas", pods),
                    ("availableReplicas", ready),
                ] {
                    status[key] = json!(n);
                }
                status["observedGeneration"] = json!(generation(v));
                status
            }),
            "ReplicationController" => {
                update_status(store, Kind::REPLICATION_CONTROLLERS, ns, name, |v| {
                    json!({"observedGeneration": generation(v), "replicas": pods, "fullyLabeledReplicas": pods,
                       "readyReplicas": ready, "availableReplicas": ready})
                })
            }
            _ => {}
        }
    }
}

/// Rewrites the EndpointSlices of the named services in `ns` from their
/// pods: every pod with an IP, ready or not.
pub(crate) fn reconcile_services(store: &Store, registry: &Registry, ns: &str, names: &[String]) {
    let services = registry.services_named(ns, names);
    if services.is_empty() {
        return;
    }
    let selects = |svc: &workloads::ServiceInfo, pod: &Object| {
        svc.selector
            .iter()
            .all(|(k, v)| pod.labels().any(|(pk, pv)| pk == k && pv == v))
    };
    let pods = store.scan(Kind::PODS, Some(ns), |p| {
        !p.field_value("status.podIP").is_empty() && services.iter().any(|s| selects(s, p))
    });
    for svc in &services {
        let endpoints: Vec<Value> = pods
            .iter()
            .filter(|p| selects(svc, p))
            .map(|p| {
                workloads::endpoint_json(
                    ns,
                    p.name(),
                    p.uid(),
                    p.field_value("status.podIP"),
                    p.field_value("spec.nodeName"),
                    p.ready() == Some(true),
                )
            })
            .collect();
        let endpoints = Value::Array(endpoints);
        let result = store.update(Kind::ENDPOINT_SLICES, ns, &svc.slice, |v| {
            if v["endpoints"] == endpoints {
                return false;
            }
            v["endpoints"] = endpoints;
            true
        });
        if let Err(e) = result {
            tracing::debug!(service = %svc.name, error = %e, "endpointslice update skipped");
        }
    }
}

/// Puts a pod's first container into CrashLoopBackOff; it keeps restarting
/// every `crashloop_interval` until the pod goes away.
pub(crate) fn start_crashloop(core: &Arc<Core>, ns: &str, pod: &str) -> Result<(), Error> {
    let unknown = || Error::UnknownPod {
        namespace: ns.to_owned(),
        name: pod.to_owned(),
    };
    let current = core.store.get(Kind::PODS, ns, pod).ok_or_else(unknown)?;
    if !lock(&core.crashloops).insert((ns.to_owned(), pod.to_owned())) {
        return Ok(());
    }
    let event_name = format!("{pod}.{:016x}", core.random(u64::MAX));
    let updated = crash(core, ns, pod, &event_name)?.unwrap_or(current);
    pods_changed(core, &[updated]);
    let core = core.clone();
    let (ns, pod) = (ns.to_owned(), pod.to_owned());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(core.config.crashloop_interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                () = core.shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if !core.etcd_running() {
                continue;
            }
            if crash(&core, &ns, &pod, &event_name).is_err() {
                // The pod is gone.
                lock(&core.crashloops).remove(&(ns.clone(), pod.clone()));
                return;
            }
        }
    });
    Ok(())
}

/// One more crash of the pod's first container, and its BackOff event.
fn crash(core: &Core, ns: &str, pod: &str, event_name: &str) -> Result<Option<Arc<Object>>, Error> {
    let now = time::now_seconds();
    let mut info = None;
    let updated = core.store.update(Kind::PODS, ns, pod, |v| {
        let Some(status) = v
            .pointer_mut("/status/containerStatuses/0")
            .and_then(Value::as_object_mut)
        else {
            return false;
        };
        let name = status.get("name").and_then(Value::as_str).unwrap_or("").to_owned();
        let restarts = status.get("restartCount").and_then(Value::as_u64).unwrap_or(0) + 1;
        let started = status
            .get("state")
            .and_then(|s| s.get("running"))
            .and_then(|r| r.get("startedAt"))
            .cloned()
            .unwrap_or_else(|| json!(now));
        let container_id = status.get("containerID").cloned().unwrap_or(Value::Null);
        status.insert("restartCount".into(), json!(restarts));
        status.insert("ready".into(), json!(false));
        status.insert("started".into(), json!(false));
        status.insert(
            "lastState".into(),
            json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": started,
                                  "finishedAt": now, "containerID": container_id}}),
        );
        let backoff = 10u64.saturating_mul(1 << restarts.min(5)).min(300);
        status.insert(
            "state".into(),
            json!({"waiting": {"reason": "CrashLoopBackOff",
                               "message": format!("back-off {backoff}s restarting failed container={name} pod={pod}_{ns}")}}),
        );
        let node = v.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("").to_owned();
        let uid = v.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("").to_owned();
        let message = format!("containers with unready status: [{name}]");
        set_condition(v, "ContainersReady", false, Some("ContainersNotReady"), Some(&message), &now);
        set_condition(v, "Ready", false, Some("ContainersNotReady"), Some(&message), &now);
        info = Some((name, node, uid, restarts));
        true
    })?;
    if let Some((container, node, uid, restarts)) = info {
        record_backoff_event(
            core, ns, pod, &uid, &container, &node, event_name, restarts, &now,
        );
    }
    Ok(updated)
}

#[allow(clippy::too_many_arguments)]
fn record_backoff_event(
    core: &Core,
    ns: &str,
    pod: &str,
    uid: &str,
    container: &str,
    node: &str,
    event_name: &str,
    count: u64,
    now: &str,
) {
    let exists = core.store.get(Kind::EVENTS, ns, event_name).is_some();
    let result = if exists {
        core.store
            .update(Kind::EVENTS, ns, event_name, |v| {
                v["count"] = json!(count);
                v["lastTimestamp"] = json!(now);
                true
            })
            .map(|_| ())
    } else {
        core.store
            .create(
                Kind::EVENTS,
                json!({
                    "metadata": {"name": event_name, "namespace": ns},
                    "involvedObject": {"kind": "Pod", "namespace": ns, "name": pod, "uid": uid,
                                       "apiVersion": "v1", "fieldPath": format!("spec.containers{{{container}}}")},
                    "reason": "BackOff",
                    "message": format!("Back-off restarting failed container {container} in pod {pod}_{ns}({uid})"),
                    "source": {"component": "kubelet", "host": node},
                    "firstTimestamp": now,
                    "lastTimestamp": now,
                    "count": count,
                    "type": "Warning",
                    "reportingComponent": "kubelet",
                    "reportingInstance": node,
                }),
            )
            .map(|_| ())
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "event not recorded");
    }
}

/// Sets a Deployment's replicas; after `rollout_delay` its ReplicaSet and
/// pods follow (or, when `stuck`, the new pods stay Pending).
pub(crate) fn scale(
    core: &Arc<Core>,
    ns: &str,
    name: &str,
    replicas: usize,
    stuck: bool,
) -> Result<(), Error> {
    let unknown = || Error::UnknownDeployment {
        namespace: ns.to_owned(),
        name: name.to_owned(),
    };
    let info = core.workloads.deployment(ns, name).ok_or_else(unknown)?;
    core.store
        .update(Kind::DEPLOYMENTS, ns, name, |v| {
            v["spec"]["replicas"] = json!(replicas);
            true
        })
        .map_err(|_| unknown())?;
    let core = core.clone();
    let (ns, name) = (ns.to_owned(), name.to_owned());
    tokio::spawn(async move {
        tokio::select! {
            () = core.shutdown.cancelled() => return,
            () = tokio::time::sleep(core.config.rollout_delay) => {}
        }
        // The deployment controller acts once it can.
        while !core.controllers_running() {
            tokio::select! {
                () = core.shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
        roll_out(&core, &ns, &name, &info, replicas, stuck);
    });
    Ok(())
}

fn roll_out(
    core: &Core,
    ns: &str,
    name: &str,
    info: &workloads::DeploymentInfo,
    replicas: usize,
    stuck: bool,
) {
    let rs = &info.replica_set;
    let _ = core.store.update(Kind::REPLICA_SETS, ns, rs, |v| {
        v["spec"]["replicas"] = json!(replicas);
        v["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] =
            json!(replicas.to_string());
        true
    });
    let mut pods = core.store.scan(Kind::PODS, Some(ns), |p| {
        p.owner() == Some(("ReplicaSet", rs.as_str()))
    });
    // Pending pods go first, then unready ones, when shrinking (and pending
    // ones are replaced by scheduled ones when not stuck).
    pods.sort_by_key(|p| {
        (
            p.field_value("status.phase") == "Running",
            p.ready() == Some(true),
        )
    });
    let mut changed = Vec::new();
    let mut keep = pods.len();
    let remove = |pod: &Arc<Object>, changed: &mut Vec<Arc<Object>>| {
        if let Ok(tombstone) = core.store.delete(Kind::PODS, ns, pod.name()) {
            changed.push(tombstone);
        }
    };
    for pod in &pods {
        let pending = pod.field_value("status.phase") != "Running";
        if keep > replicas || (pending && !stuck) {
            remove(pod, &mut changed);
            keep -= 1;
        }
    }
    let alive: Vec<usize> = core
        .nodes
        .iter()
        .filter(|n| n.is_alive() && n.ready.load(Ordering::SeqCst))
        .map(|n| n.index)
        .collect();
    let owner = workloads::OwnerRef {
        api_version: "apps/v1",
        kind: "ReplicaSet",
        name: rs.clone(),
        uid: info.replica_set_uid.clone(),
    };
    let now = time::now_seconds();
    let mut rng = core.workloads.rng();
    for _ in keep..replicas {
        let (suffix, uid) = core.workloads.new_pod_identity();
        let pod_name = format!("{rs}-{suffix}");
        let placement = if stuck || alive.is_empty() {
            Placement::Unschedulable
        } else {
            let node = &core.nodes[alive[core.workloads.next_node(alive.len())]];
            Placement::Running {
                node,
                pod_ip: node.allocate_pod_ip(),
            }
        };
        let value = workloads::pod_value(
            ns,
            &pod_name,
            &uid,
            &info.template,
            &owner,
            placement,
            &now,
            &mut rng,
        );
        match core.store.create(Kind::PODS, value) {
            Ok(pod) => changed.push(pod),
            Err(e) => tracing::warn!(pod = %pod_name, error = %e, "pod not created"),
        }
    }
    tracing::info!(namespace = %ns, deployment = %name, replicas, stuck, "scaled");
    pods_changed(core, &changed);
    // A scale to the same size changes no pod but must still be observed.
    reconcile_owners(
        core,
        ns,
        &BTreeSet::from([("ReplicaSet".to_owned(), rs.clone())]),
    );
}

const CHURN_ANNOTATION: &str = "kubesim.lookout/churn";

/// Modifies pods at `churn_per_node_per_sec × nodes` per second (an
/// annotation bump), so watches carry a steady change rate.
pub(crate) async fn churn_loop(core: Arc<Core>) {
    let per_sec = core.config.churn_per_node_per_sec * core.nodes.len() as f64;
    if per_sec <= 0.0 {
        return;
    }
    let step = Duration::from_millis(50);
    let mut tick = tokio::time::interval(step);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut last = tokio::time::Instant::now();
    let mut owed = 0.0f64;
    let mut keys: Vec<(String, String)> = Vec::new();
    let mut cursor = 0usize;
    let mut counter = 0u64;
    loop {
        tokio::select! {
            () = core.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = tokio::time::Instant::now();
        owed += per_sec * now.duration_since(last).as_secs_f64();
        last = now;
        // Never try to catch up on more than a second's worth.
        owed = owed.min(per_sec.max(1.0));
        if !core.etcd_running() {
            continue;
        }
        while owed >= 1.0 {
            owed -= 1.0;
            if cursor >= keys.len() {
                keys = core
                    .store
                    .scan(Kind::PODS, None, |_| true)
                    .iter()
                    .map(|p| (p.namespace().to_owned(), p.name().to_owned()))
                    .collect();
                cursor = 0;
                if keys.is_empty() {
                    owed = 0.0;
                    break;
                }
            }
            let (ns, name) = &keys[cursor];
            cursor += 1;
            counter += 1;
            let _ = core.store.update(Kind::PODS, ns, name, |v| {
                v["metadata"]["annotations"][CHURN_ANNOTATION] = json!(counter.to_string());
                true
            });
        }
    }
}
