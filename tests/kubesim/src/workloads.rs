//! The generated workload: namespaces, controllers, pods, services and
//! their EndpointSlices, all derived deterministically from the config.
//!
//! Each node carries exactly `pods_per_node` pods: one from the kube-proxy
//! DaemonSet, the rest from CoreDNS, a StatefulSet, a
//! ReplicationController and application Deployments, placed round robin.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::cluster::lock;
use crate::config::SimConfig;
use crate::nodes::{self, NodeSim};
use crate::resources::Kind;
use crate::rng::{Rng, hash_str};
use crate::router::ROUTED_ANNOTATION;
use crate::store::{Store, StoreError};
use crate::time;

/// One container of a pod template.
#[derive(Debug, Clone)]
pub(crate) struct ContainerSpec {
    pub name: &'static str,
    pub image: &'static str,
    pub port: Option<u16>,
    pub requests: Option<(&'static str, &'static str)>,
    pub limits: Option<(Option<&'static str>, &'static str)>,
}

/// What a controller stamps its pods from.
#[derive(Debug, Clone)]
pub(crate) struct PodTemplate {
    pub labels: Vec<(String, String)>,
    pub containers: Vec<ContainerSpec>,
    pub host_network: bool,
    pub priority_class: Option<&'static str>,
}

impl PodTemplate {
    fn labels_json(&self) -> Value {
        Value::Object(
            self.labels
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect(),
        )
    }

    fn qos_class(&self) -> &'static str {
        if self
            .containers
            .iter()
            .all(|c| c.requests.is_none() && c.limits.is_none())
        {
            "BestEffort"
        } else if self
            .containers
            .iter()
            .all(|c| match (c.requests, c.limits) {
                (Some((cpu, mem)), Some((Some(lcpu), lmem))) => cpu == lcpu && mem == lmem,
                _ => false,
            })
        {
            "Guaranteed"
        } else {
            "Burstable"
        }
    }

    fn containers_json(&self) -> Value {
        self.containers
            .iter()
            .map(|c| {
                let mut resources = json!({});
                if let Some((cpu, mem)) = c.requests {
                    resources["requests"] = json!({"cpu": cpu, "memory": mem});
                }
                if let Some((cpu, mem)) = c.limits {
                    resources["limits"] = json!({"memory": mem});
                    if let Some(cpu) = cpu {
                        resources["limits"]["cpu"] = json!(cpu);
                    }
                }
                let mut spec = json!({
                    "name": c.name,
                    "image": c.image,
                    "imagePullPolicy": "IfNotPresent",
                    "resources": resources,
                });
                if let Some(port) = c.port {
                    spec["ports"] = json!([{"containerPort": port, "protocol": "TCP"}]);
                }
                spec
            })
            .collect()
    }
}

/// An owner reference.
#[derive(Debug, Clone)]
pub(crate) struct OwnerRef {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub name: String,
    pub uid: String,
}

impl OwnerRef {
    fn json(&self) -> Value {
        json!([{"apiVersion": self.api_version, "kind": self.kind, "name": self.name,
                "uid": self.uid, "controller": true, "blockOwnerDeletion": true}])
    }
}

/// Where a new pod goes.
pub(crate) enum Placement<'a> {
    /// Running and ready on a node (`pod_ip` is the node's for host-network pods).
    Running { node: &'a NodeSim, pod_ip: String },
    /// Pending, unschedulable.
    Unschedulable,
}

fn hex(rng: &mut Rng, bytes: usize) -> String {
    (0..bytes.div_ceil(8))
        .map(|_| format!("{:016x}", rng.next_u64()))
        .collect::<String>()
        .chars()
        .take(bytes * 2)
        .collect()
}

/// A pod as the kubelet reports it: running with every container ready,
/// or pending when unschedulable.
#[allow(clippy::too_many_arguments)]
pub(crate) fn pod_value(
    namespace: &str,
    name: &str,
    uid: &str,
    template: &PodTemplate,
    owner: &OwnerRef,
    placement: Placement<'_>,
    now: &str,
    rng: &mut Rng,
) -> Value {
    let mut spec = json!({
        "containers": template.containers_json(),
        "restartPolicy": "Always",
        "schedulerName": "default-scheduler",
        "serviceAccountName": "default",
        "terminationGracePeriodSeconds": 30,
        "tolerations": [
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        ],
    });
    if template.host_network {
        spec["hostNetwork"] = json!(true);
    }
    if let Some(pc) = template.priority_class {
        spec["priorityClassName"] = json!(pc);
    }
    let mut status = json!({"qosClass": template.qos_class()});
    match placement {
        Placement::Running { node, pod_ip } => {
            spec["nodeName"] = json!(node.name);
            let cond = |ty: &str| json!({"type": ty, "status": "True", "lastTransitionTime": now});
            let statuses: Vec<Value> = template
                .containers
                .iter()
                .map(|c| {
                    json!({
                        "name": c.name,
                        "image": c.image,
                        "imageID": format!("{}@sha256:{:016x}{:016x}", c.image.split(':').next().unwrap_or(c.image),
                                           hash_str(c.image), hash_str(c.name)),
                        "containerID": format!("containerd://{}", hex(rng, 32)),
                        "ready": true,
                        "started": true,
                        "restartCount": 0,
                        "state": {"running": {"startedAt": now}},
                        "lastState": {},
                    })
                })
                .collect();
            status = json!({
                "phase": "Running",
                "conditions": [cond("PodReadyToStartContainers"), cond("Initialized"), cond("Ready"),
                               cond("ContainersReady"), cond("PodScheduled")],
                "hostIP": node.ip.to_string(),
                "hostIPs": [{"ip": node.ip.to_string()}],
                "podIP": pod_ip,
                "podIPs": [{"ip": pod_ip}],
                "startTime": now,
                "containerStatuses": statuses,
                "qosClass": template.qos_class(),
            });
        }
        Placement::Unschedulable => {
            status["phase"] = json!("Pending");
            status["conditions"] = json!([{
                "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.",
                "lastTransitionTime": now,
            }]);
        }
    }
    json!({
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid,
            "labels": template.labels_json(),
            "ownerReferences": owner.json(),
        },
        "spec": spec,
        "status": status,
    })
}

/// A Service the simulator keeps an EndpointSlice for.
#[derive(Debug, Clone)]
pub(crate) struct ServiceInfo {
    pub namespace: String,
    pub name: String,
    pub selector: Vec<(String, String)>,
    pub slice: String,
}

/// A Deployment's current ReplicaSet and pod template.
#[derive(Debug, Clone)]
pub(crate) struct DeploymentInfo {
    pub replica_set: String,
    pub replica_set_uid: String,
    pub template: Arc<PodTemplate>,
}

struct RegistryInner {
    services: Vec<ServiceInfo>,
    /// (namespace, first selector label, value) → services.
    service_index: HashMap<(String, String, String), Vec<usize>>,
    deployments: HashMap<(String, String), DeploymentInfo>,
    names: Rng,
    next_node: usize,
}

/// What the controllers need to know about the generated workload.
pub(crate) struct Registry {
    inner: Mutex<RegistryInner>,
}

impl Registry {
    fn new(seed: u64) -> Registry {
        Registry {
            inner: Mutex::new(RegistryInner {
                services: Vec::new(),
                service_index: HashMap::new(),
                deployments: HashMap::new(),
                names: Rng::new(seed),
                next_node: 0,
            }),
        }
    }

    fn add_service(&self, service: ServiceInfo) {
        let mut inner = lock(&self.inner);
        if let Some((k, v)) = service.selector.first() {
            let idx = inner.services.len();
            inner
                .service_index
                .entry((service.namespace.clone(), k.clone(), v.clone()))
                .or_default()
                .push(idx);
        }
        inner.services.push(service);
    }

    /// Services in `namespace` whose selector matches `labels`.
    pub fn services_selecting<'a>(
        &self,
        namespace: &str,
        labels: impl Iterator<Item = (&'a str, &'a str)> + Clone,
    ) -> Vec<ServiceInfo> {
        let inner = lock(&self.inner);
        let mut found = Vec::new();
        for (k, v) in labels.clone() {
            let key = (namespace.to_owned(), k.to_owned(), v.to_owned());
            for &i in inner.service_index.get(&key).into_iter().flatten() {
                let svc = &inner.services[i];
                let all = svc
                    .selector
                    .iter()
                    .all(|(sk, sv)| labels.clone().any(|(lk, lv)| lk == sk && lv == sv));
                if all {
                    found.push(svc.clone());
                }
            }
        }
        found
    }

    /// The named services of `namespace`.
    pub fn services_named(&self, namespace: &str, names: &[String]) -> Vec<ServiceInfo> {
        lock(&self.inner)
            .services
            .iter()
            .filter(|s| s.namespace == namespace && names.contains(&s.name))
            .cloned()
            .collect()
    }

    pub fn deployment(&self, namespace: &str, name: &str) -> Option<DeploymentInfo> {
        lock(&self.inner)
            .deployments
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// A fresh pod name suffix and uid.
    pub fn new_pod_identity(&self) -> (String, String) {
        let mut inner = lock(&self.inner);
        let suffix = inner.names.suffix(5);
        (suffix, inner.names.uuid())
    }

    pub fn rng(&self) -> Rng {
        let mut inner = lock(&self.inner);
        Rng::new(inner.names.next_u64())
    }

    /// Round robin over `count` nodes for new pods.
    pub fn next_node(&self, count: usize) -> usize {
        let mut inner = lock(&self.inner);
        inner.next_node = inner.next_node.wrapping_add(1);
        inner.next_node % count.max(1)
    }
}

fn c(
    name: &'static str,
    image: &'static str,
    port: Option<u16>,
    requests: Option<(&'static str, &'static str)>,
    limits: Option<(Option<&'static str>, &'static str)>,
) -> ContainerSpec {
    ContainerSpec {
        name,
        image,
        port,
        requests,
        limits,
    }
}

/// Application flavours deployments cycle through.
fn app_containers(flavour: usize) -> (&'static str, Vec<ContainerSpec>) {
    match flavour % 5 {
        0 => (
            "web",
            vec![c(
                "web",
                "registry.example/web:1.4.2",
                Some(8080),
                Some(("100m", "128Mi")),
                Some((Some("500m"), "256Mi")),
            )],
        ),
        1 => (
            "api",
            vec![c(
                "api",
                "registry.example/api:2.0.1",
                Some(8443),
                Some(("250m", "256Mi")),
                Some((Some("250m"), "256Mi")),
            )],
        ),
        2 => (
            "worker",
            vec![c(
                "worker",
                "registry.example/worker:3.1.0",
                None,
                Some(("200m", "512Mi")),
                Some((None, "1Gi")),
            )],
        ),
        3 => (
            "cache",
            vec![c(
                "cache",
                "registry.example/cache:7.2.5",
                Some(6379),
                Some(("50m", "64Mi")),
                Some((Some("100m"), "128Mi")),
            )],
        ),
        _ => (
            "frontend",
            vec![
                c(
                    "nginx",
                    "registry.example/nginx:1.27.3",
                    Some(8080),
                    Some(("100m", "64Mi")),
                    Some((Some("200m"), "128Mi")),
                ),
                c(
                    "log-shipper",
                    "registry.example/log-shipper:0.9.1",
                    None,
                    Some(("10m", "32Mi")),
                    Some((None, "64Mi")),
                ),
            ],
        ),
    }
}

const DEPLOYMENT_SIZES: [usize; 5] = [3, 5, 2, 10, 4];

struct Gen<'a> {
    nodes: &'a [NodeSim],
    store: &'a Store,
    rng: Rng,
    now: String,
    registry: Registry,
    /// The first failed create; generation goes on and reports it at the end.
    error: Option<StoreError>,
    /// Workload pods placed so far; pod j goes to node j % N.
    placed: usize,
    cluster_ips: u32,
}

/// How a workload's pods are exposed: a Service on one port, annotated
/// `lookout.io/routed: "true"` when an L7 router is to route to it.
#[derive(Clone, Copy)]
struct Exposed {
    port_name: &'static str,
    port: u16,
    routed: bool,
}

/// The pods made for one controller, for its service's EndpointSlice.
struct Placed {
    pods: Vec<(String, String, String, String)>, // name, uid, ip, node
}

impl<'a> Gen<'a> {
    /// Stores an object right away: holding a workload's worth of `Value`s
    /// would cost several times the stored size at the peak.
    fn push(&mut self, kind: Kind, value: Value) {
        if let Err(e) = self.store.create(kind, value) {
            self.error.get_or_insert(e);
        }
    }

    fn uid(&mut self) -> String {
        self.rng.uuid()
    }

    fn cluster_ip(&mut self) -> String {
        let n = self.cluster_ips;
        self.cluster_ips += 1;
        format!("10.96.{}.{}", n / 256, n % 256)
    }

    fn next_workload_node(&mut self) -> &'a NodeSim {
        let node = &self.nodes[self.placed % self.nodes.len()];
        self.placed += 1;
        node
    }

    fn make_pods(
        &mut self,
        namespace: &str,
        names: Vec<String>,
        template: &PodTemplate,
        owner: &OwnerRef,
        nodes: Option<&'a [NodeSim]>,
    ) -> Placed {
        let mut placed = Placed { pods: Vec::new() };
        for (i, name) in names.into_iter().enumerate() {
            let node = match nodes {
                Some(nodes) => &nodes[i],
                None => self.next_workload_node(),
            };
            let ip = if template.host_network {
                node.ip.to_string()
            } else {
                node.allocate_pod_ip()
            };
            let uid = self.uid();
            let now = self.now.clone();
            let pod = pod_value(
                namespace,
                &name,
                &uid,
                template,
                owner,
                Placement::Running {
                    node,
                    pod_ip: ip.clone(),
                },
                &now,
                &mut self.rng,
            );
            self.push(Kind::PODS, pod);
            placed.pods.push((name, uid, ip, node.name.clone()));
        }
        placed
    }

    fn service(
        &mut self,
        namespace: &str,
        name: &str,
        selector: &[(String, String)],
        exposed: Exposed,
        headless: bool,
        placed: &Placed,
    ) {
        let Exposed {
            port_name,
            port,
            routed,
        } = exposed;
        let cluster_ip = if headless {
            "None".to_owned()
        } else {
            self.cluster_ip()
        };
        let selector_json: serde_json::Map<String, Value> = selector
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        let mut metadata = json!({"name": name, "namespace": namespace, "labels": {"app": name}});
        if routed {
            metadata["annotations"] = json!({ROUTED_ANNOTATION: "true"});
        }
        self.push(
            Kind::SERVICES,
            json!({
                "metadata": metadata,
                "spec": {
                    "type": "ClusterIP",
                    "clusterIP": cluster_ip,
                    "clusterIPs": [cluster_ip],
                    "selector": selector_json,
                    "ports": [{"name": port_name, "port": port, "targetPort": port, "protocol": "TCP"}],
                    "sessionAffinity": "None",
                    "ipFamilies": ["IPv4"],
                    "ipFamilyPolicy": "SingleStack",
                    "internalTrafficPolicy": "Cluster",
                },
                "status": {"loadBalancer": {}},
            }),
        );
        let slice = format!("{name}-{}", self.rng.suffix(5));
        let endpoints: Vec<Value> = placed
            .pods
            .iter()
            .map(|(pod, uid, ip, node)| endpoint_json(namespace, pod, uid, ip, node, true))
            .collect();
        self.push(
            Kind::ENDPOINT_SLICES,
            slice_json(namespace, name, &slice, port_name, port, endpoints),
        );
        self.registry.add_service(ServiceInfo {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            selector: selector.to_vec(),
            slice,
        });
    }

    fn deployment(
        &mut self,
        namespace: &str,
        name: &str,
        app_label: (&str, &str),
        containers: Vec<ContainerSpec>,
        replicas: usize,
        service: Option<Exposed>,
    ) {
        let deploy_uid = self.uid();
        let rs_uid = self.uid();
        let hash = self.rng.suffix(10);
        let rs_name = format!("{name}-{hash}");
        let selector = vec![(app_label.0.to_owned(), app_label.1.to_owned())];
        let template = PodTemplate {
            labels: vec![
                (app_label.0.to_owned(), app_label.1.to_owned()),
                ("pod-template-hash".to_owned(), hash.clone()),
            ],
            containers,
            host_network: false,
            priority_class: (namespace == "kube-system").then_some("system-cluster-critical"),
        };
        let owner = OwnerRef {
            api_version: "apps/v1",
            kind: "ReplicaSet",
            name: rs_name.clone(),
            uid: rs_uid.clone(),
        };
        let names = self
            .rng
            .distinct_suffixes(replicas, 5)
            .into_iter()
            .map(|s| format!("{rs_name}-{s}"))
            .collect();
        let placed = self.make_pods(namespace, names, &template, &owner, None);
        let template_spec = json!({
            "metadata": {"labels": PodTemplate { labels: selector.clone(), ..template.clone() }.labels_json()},
            "spec": {"containers": template.containers_json(), "restartPolicy": "Always"},
        });
        let n = replicas;
        self.push(
            Kind::DEPLOYMENTS,
            json!({
                "metadata": {"name": name, "namespace": namespace, "uid": deploy_uid,
                             "labels": {app_label.0: app_label.1},
                             "annotations": {"deployment.kubernetes.io/revision": "1"}},
                "spec": {
                    "replicas": n,
                    "selector": {"matchLabels": {app_label.0: app_label.1}},
                    "template": template_spec,
                    "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
                    "revisionHistoryLimit": 10,
                    "progressDeadlineSeconds": 600,
                },
                "status": deployment_status(1, n, n, n, n, &self.now),
            }),
        );
        let mut rs_template = template_spec.clone();
        rs_template["metadata"]["labels"]["pod-template-hash"] = json!(hash);
        self.push(
            Kind::REPLICA_SETS,
            json!({
                "metadata": {"name": rs_name, "namespace": namespace, "uid": rs_uid,
                             "labels": {app_label.0: app_label.1, "pod-template-hash": hash},
                             "annotations": {"deployment.kubernetes.io/desired-replicas": n.to_string(),
                                             "deployment.kubernetes.io/max-replicas": (n + n.div_ceil(4)).to_string(),
                                             "deployment.kubernetes.io/revision": "1"},
                             "ownerReferences": OwnerRef { api_version: "apps/v1", kind: "Deployment",
                                                           name: name.to_owned(), uid: deploy_uid }.json()},
                "spec": {
                    "replicas": n,
                    "selector": {"matchLabels": {app_label.0: app_label.1, "pod-template-hash": hash}},
                    "template": rs_template,
                },
                "status": replica_set_status(1, n, n),
            }),
        );
        if let Some(exposed) = service {
            self.service(namespace, name, &selector, exposed, false, &placed);
        }
        lock(&self.registry.inner).deployments.insert(
            (namespace.to_owned(), name.to_owned()),
            DeploymentInfo {
                replica_set: rs_name,
                replica_set_uid: owner.uid,
                template: Arc::new(template),
            },
        );
    }

    fn daemon_set(&mut self) {
        let uid = self.uid();
        let hash = self.rng.suffix(10);
        let template = PodTemplate {
            labels: vec![
                ("controller-revision-hash".to_owned(), hash.clone()),
                ("k8s-app".to_owned(), "kube-proxy".to_owned()),
                ("pod-template-generation".to_owned(), "1".to_owned()),
            ],
            containers: vec![c(
                "kube-proxy",
                "registry.k8s.io/kube-proxy:v1.34.1",
                None,
                None,
                None,
            )],
            host_network: true,
            priority_class: Some("system-node-critical"),
        };
        let owner = OwnerRef {
            api_version: "apps/v1",
            kind: "DaemonSet",
            name: "kube-proxy".to_owned(),
            uid: uid.clone(),
        };
        let names = self
            .rng
            .distinct_suffixes(self.nodes.len(), 5)
            .into_iter()
            .map(|s| format!("kube-proxy-{s}"))
            .collect();
        let nodes = self.nodes;
        self.make_pods("kube-system", names, &template, &owner, Some(nodes));
        let n = self.nodes.len();
        self.push(
            Kind::DAEMON_SETS,
            json!({
                "metadata": {"name": "kube-proxy", "namespace": "kube-system", "uid": uid,
                             "labels": {"k8s-app": "kube-proxy"},
                             "annotations": {"deprecated.daemonset.template.generation": "1"}},
                "spec": {
                    "selector": {"matchLabels": {"k8s-app": "kube-proxy"}},
                    "template": {"metadata": {"labels": {"k8s-app": "kube-proxy"}},
                                 "spec": {"containers": template.containers_json(), "hostNetwork": true}},
                    "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
                    "revisionHistoryLimit": 10,
                },
                "status": daemon_set_status(1, n, n, n),
            }),
        );
    }

    fn stateful_set(&mut self, namespace: &str, replicas: usize) {
        let uid = self.uid();
        let revision = format!("db-{}", self.rng.suffix(10));
        let owner = OwnerRef {
            api_version: "apps/v1",
            kind: "StatefulSet",
            name: "db".to_owned(),
            uid: uid.clone(),
        };
        let containers = vec![c(
            "postgres",
            "registry.example/postgres:16.4",
            Some(5432),
            Some(("500m", "1Gi")),
            Some((Some("1"), "2Gi")),
        )];
        let mut placed = Placed { pods: Vec::new() };
        for i in 0..replicas {
            let template = PodTemplate {
                labels: vec![
                    ("app".to_owned(), "db".to_owned()),
                    ("apps.kubernetes.io/pod-index".to_owned(), i.to_string()),
                    ("controller-revision-hash".to_owned(), revision.clone()),
                    (
                        "statefulset.kubernetes.io/pod-name".to_owned(),
                        format!("db-{i}"),
                    ),
                ],
                containers: containers.clone(),
                host_network: false,
                priority_class: None,
            };
            let p = self.make_pods(namespace, vec![format!("db-{i}")], &template, &owner, None);
            placed.pods.extend(p.pods);
        }
        let n = replicas;
        self.push(
            Kind::STATEFUL_SETS,
            json!({
                "metadata": {"name": "db", "namespace": namespace, "uid": uid, "labels": {"app": "db"}},
                "spec": {
                    "replicas": n,
                    "serviceName": "db",
                    "selector": {"matchLabels": {"app": "db"}},
                    "template": {"metadata": {"labels": {"app": "db"}},
                                 "spec": {"containers": PodTemplate { labels: vec![], containers, host_network: false, priority_class: None }.containers_json()}},
                    "podManagementPolicy": "OrderedReady",
                    "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                    "revisionHistoryLimit": 10,
                },
                "status": {
                    "observedGeneration": 1, "replicas": n, "readyReplicas": n, "currentReplicas": n,
                    "updatedReplicas": n, "availableReplicas": n, "currentRevision": revision,
                    "updateRevision": revision, "collisionCount": 0,
                },
            }),
        );
        let selector = vec![("app".to_owned(), "db".to_owned())];
        let exposed = Exposed {
            port_name: "postgres",
            port: 5432,
            routed: false,
        };
        self.service(namespace, "db", &selector, exposed, true, &placed);
    }

    fn replication_controller(&mut self, namespace: &str, replicas: usize) {
        let uid = self.uid();
        let template = PodTemplate {
            labels: vec![("app".to_owned(), "legacy".to_owned())],
            containers: vec![c(
                "legacy",
                "registry.example/legacy:0.3.7",
                Some(8000),
                Some(("50m", "64Mi")),
                Some((Some("100m"), "128Mi")),
            )],
            host_network: false,
            priority_class: None,
        };
        let owner = OwnerRef {
            api_version: "v1",
            kind: "ReplicationController",
            name: "legacy".to_owned(),
            uid: uid.clone(),
        };
        let names = (0..replicas)
            .map(|_| format!("legacy-{}", self.rng.suffix(5)))
            .collect();
        let placed = self.make_pods(namespace, names, &template, &owner, None);
        let n = replicas;
        self.push(
            Kind::REPLICATION_CONTROLLERS,
            json!({
                "metadata": {"name": "legacy", "namespace": namespace, "uid": uid, "labels": {"app": "legacy"}},
                "spec": {
                    "replicas": n,
                    "selector": {"app": "legacy"},
                    "template": {"metadata": {"labels": {"app": "legacy"}},
                                 "spec": {"containers": template.containers_json()}},
                },
                "status": {"observedGeneration": 1, "replicas": n, "fullyLabeledReplicas": n,
                           "readyReplicas": n, "availableReplicas": n},
            }),
        );
        let selector = vec![("app".to_owned(), "legacy".to_owned())];
        let exposed = Exposed {
            port_name: "http",
            port: 8000,
            routed: false,
        };
        self.service(namespace, "legacy", &selector, exposed, false, &placed);
    }

    fn kubernetes_service(&mut self, apiservers: &[SocketAddr]) {
        let cluster_ip = self.cluster_ip();
        self.push(
            Kind::SERVICES,
            json!({
                "metadata": {"name": "kubernetes", "namespace": "default",
                             "labels": {"component": "apiserver", "provider": "kubernetes"}},
                "spec": {"type": "ClusterIP", "clusterIP": cluster_ip, "clusterIPs": [cluster_ip],
                         "ports": [{"name": "https", "port": 443, "targetPort": 6443, "protocol": "TCP"}],
                         "sessionAffinity": "None", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                         "internalTrafficPolicy": "Cluster"},
                "status": {"loadBalancer": {}},
            }),
        );
        // The instances share an IP but not a port, and a slice or subset
        // has one port list: one of each per instance.
        let subsets: Vec<Value> = apiservers
            .iter()
            .map(|a| {
                json!({"addresses": [{"ip": a.ip().to_string()}],
                            "ports": [{"name": "https", "port": a.port(), "protocol": "TCP"}]})
            })
            .collect();
        self.push(
            Kind::ENDPOINTS,
            json!({
                "metadata": {"name": "kubernetes", "namespace": "default",
                             "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
                "subsets": subsets,
            }),
        );
        for (i, a) in apiservers.iter().enumerate() {
            let name = if i == 0 {
                "kubernetes".to_owned()
            } else {
                format!("kubernetes-{i}")
            };
            self.push(
                Kind::ENDPOINT_SLICES,
                json!({
                    "metadata": {"name": name, "namespace": "default",
                                 "labels": {"kubernetes.io/service-name": "kubernetes",
                                            "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
                    "addressType": "IPv4",
                    "endpoints": [{"addresses": [a.ip().to_string()],
                                   "conditions": {"ready": true, "serving": true, "terminating": false}}],
                    "ports": [{"name": "https", "port": a.port(), "protocol": "TCP"}],
                }),
            );
        }
    }
}

pub(crate) fn endpoint_json(
    namespace: &str,
    pod: &str,
    uid: &str,
    ip: &str,
    node: &str,
    ready: bool,
) -> Value {
    json!({
        "addresses": [ip],
        "conditions": {"ready": ready, "serving": ready, "terminating": false},
        "nodeName": node,
        "targetRef": {"kind": "Pod", "namespace": namespace, "name": pod, "uid": uid},
    })
}

fn slice_json(
    namespace: &str,
    service: &str,
    name: &str,
    port_name: &str,
    port: u16,
    endpoints: Vec<Value>,
) -> Value {
    json!({
        "metadata": {"name": name, "namespace": namespace, "generateName": format!("{service}-"),
                     "labels": {"kubernetes.io/service-name": service,
                                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
    })
}

/// A Deployment's status as the deployment controller writes it.
pub(crate) fn deployment_status(
    generation: i64,
    spec_replicas: usize,
    replicas: usize,
    ready: usize,
    available: usize,
    now: &str,
) -> Value {
    let mut status = json!({"observedGeneration": generation, "replicas": replicas, "updatedReplicas": replicas});
    if ready > 0 {
        status["readyReplicas"] = json!(ready);
    }
    if available > 0 {
        status["availableReplicas"] = json!(available);
    }
    let unavailable = spec_replicas.max(replicas).saturating_sub(available);
    if unavailable > 0 {
        status["unavailableReplicas"] = json!(unavailable);
    }
    // maxUnavailable 25%, rounded down.
    let min_available = spec_replicas - spec_replicas / 4;
    let available_cond = if available >= min_available {
        json!({"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
               "message": "Deployment has minimum availability.", "lastUpdateTime": now, "lastTransitionTime": now})
    } else {
        json!({"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
               "message": "Deployment does not have minimum availability.", "lastUpdateTime": now, "lastTransitionTime": now})
    };
    let progressing = if available >= spec_replicas && replicas == spec_replicas {
        json!({"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
               "message": "ReplicaSet has successfully progressed.", "lastUpdateTime": now, "lastTransitionTime": now})
    } else {
        json!({"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
               "message": "ReplicaSet is progressing.", "lastUpdateTime": now, "lastTransitionTime": now})
    };
    status["conditions"] = json!([available_cond, progressing]);
    status
}

pub(crate) fn replica_set_status(generation: i64, replicas: usize, ready: usize) -> Value {
    let mut status = json!({"observedGeneration": generation, "replicas": replicas, "fullyLabeledReplicas": replicas});
    if ready > 0 {
        status["readyReplicas"] = json!(ready);
        status["availableReplicas"] = json!(ready);
    }
    status
}

pub(crate) fn daemon_set_status(
    generation: i64,
    desired: usize,
    current: usize,
    ready: usize,
) -> Value {
    let mut status = json!({
        "observedGeneration": generation,
        "desiredNumberScheduled": desired,
        "currentNumberScheduled": current,
        "updatedNumberScheduled": current,
        "numberMisscheduled": 0,
        "numberReady": ready,
        "numberAvailable": ready,
    });
    if desired > ready {
        status["numberUnavailable"] = json!(desired - ready);
    }
    status
}

/// Fills `store` with the cluster: namespaces, nodes and their leases,
/// control-plane leases, workloads, services. Returns what the controllers
/// need to keep it consistent.
pub(crate) fn generate(
    config: &SimConfig,
    store: &Store,
    nodes: &[NodeSim],
    apiservers: &[SocketAddr],
    seed: u64,
) -> Result<Registry, StoreError> {
    let mut g = Gen {
        nodes,
        store,
        error: None,
        rng: Rng::new(seed ^ 0x006b_7562_6573_696d),
        now: time::now_seconds(),
        registry: Registry::new(seed),
        placed: 0,
        cluster_ips: 1,
    };
    let mut namespaces: Vec<String> = ["default", "kube-system", "kube-public", "kube-node-lease"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    namespaces.extend((0..config.app_namespaces).map(|i| format!("app-{i}")));
    for ns in &namespaces {
        g.push(
            Kind::NAMESPACES,
            json!({"metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
                   "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}),
        );
    }
    // Node objects are created first so leases can name their uid.
    let node_values: Vec<Value> = nodes.iter().map(|n| nodes::node_value(config, n)).collect();
    store.create_all(Kind::NODES, node_values)?;
    let leases: Vec<Value> = nodes
        .iter()
        .map(|n| {
            let uid = store
                .get(Kind::NODES, "", &n.name)
                .map(|o| o.uid().to_owned())
                .unwrap_or_default();
            nodes::lease_value(n, &uid)
        })
        .collect();
    store.create_all(Kind::LEASES, leases)?;
    let holder = format!("{}_{}", nodes[0].name, g.rng.uuid());
    g.push(
        Kind::LEASES,
        nodes::leader_lease_value("kube-scheduler", &holder),
    );
    g.push(
        Kind::LEASES,
        nodes::leader_lease_value("kube-controller-manager", &holder),
    );

    g.kubernetes_service(apiservers);
    // kube-dns has the conventional address; its slice is filled once its
    // pods exist (below).
    g.cluster_ips = 10;
    let dns_selector = vec![("k8s-app".to_owned(), "kube-dns".to_owned())];
    g.service(
        "kube-system",
        "kube-dns",
        &dns_selector,
        Exposed {
            port_name: "dns-tcp",
            port: 53,
            routed: false,
        },
        false,
        &Placed { pods: Vec::new() },
    );
    g.cluster_ips = 100;
    if config.pods_per_node > 0 {
        g.daemon_set();
    }
    let mut remaining = nodes.len() * config.pods_per_node.saturating_sub(1);
    let mut take = |n: usize| {
        let t = n.min(remaining);
        remaining -= t;
        t
    };
    let coredns = take(2);
    let db = take(3);
    let legacy = take(2);
    let mut sizes = Vec::new();
    let mut k = 0;
    loop {
        let n = take(DEPLOYMENT_SIZES[k % DEPLOYMENT_SIZES.len()]);
        if n == 0 {
            break;
        }
        sizes.push(n);
        k += 1;
    }
    g.deployment(
        "kube-system",
        "coredns",
        ("k8s-app", "kube-dns"),
        vec![c(
            "coredns",
            "registry.k8s.io/coredns/coredns:v1.12.1",
            Some(53),
            Some(("100m", "70Mi")),
            Some((None, "170Mi")),
        )],
        coredns,
        None,
    );
    if db > 0 {
        g.stateful_set("app-0", db);
    }
    if legacy > 0 {
        g.replication_controller("app-0", legacy);
    }
    for (k, n) in sizes.into_iter().enumerate() {
        let (flavour, containers) = app_containers(k);
        let ns = format!("app-{}", k % config.app_namespaces);
        let name = format!("{flavour}-{k:04}");
        // The HTTP-facing flavours sit behind the routers; the cache does not.
        let service = containers[0].port.map(|port| Exposed {
            port_name: "http",
            port,
            routed: flavour != "cache",
        });
        g.deployment(&ns, &name, ("app", &name), containers, n, service);
    }

    let Gen {
        registry, error, ..
    } = g;
    if let Some(e) = error {
        return Err(e);
    }
    // kube-dns was declared before its pods existed; fill its slice now.
    crate::controllers::reconcile_services(
        store,
        &registry,
        "kube-system",
        &["kube-dns".to_owned()],
    );
    Ok(registry)
}
