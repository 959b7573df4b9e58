//! The simulated cluster's shared state: the store plus which simulated
//! processes are up. Every HTTP surface and background loop holds an
//! `Arc<Core>`; the listeners themselves live in [`crate::sim::Sim`].

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use tokio_util::sync::CancellationToken;

use crate::config::SimConfig;
use crate::nodes::NodeSim;
use crate::rng::Rng;
use crate::store::Store;
use crate::workloads::Registry;

/// A control-plane component that can be stopped and started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Component {
    Scheduler,
    ControllerManager,
    Etcd,
}

impl Component {
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Scheduler => "scheduler",
            Component::ControllerManager => "controller-manager",
            Component::Etcd => "etcd",
        }
    }
}

impl std::str::FromStr for Component {
    type Err = crate::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "scheduler" | "kube-scheduler" => Ok(Component::Scheduler),
            "controller-manager" | "kube-controller-manager" => Ok(Component::ControllerManager),
            "etcd" => Ok(Component::Etcd),
            _ => Err(crate::Error::UnknownComponent(s.to_owned())),
        }
    }
}

pub(crate) struct Core {
    pub config: SimConfig,
    pub store: Store,
    pub started: SystemTime,
    pub shutdown: CancellationToken,
    pub apiserver_addrs: Vec<SocketAddr>,
    pub apiserver_up: Vec<AtomicBool>,
    pub balancer_up: AtomicBool,
    pub etcd_up: AtomicBool,
    pub etcd_leader_changes: AtomicU64,
    pub scheduler_up: AtomicBool,
    pub controller_manager_up: AtomicBool,
    pub nodes: Vec<NodeSim>,
    node_index: HashMap<String, usize>,
    pub workloads: Registry,
    /// Pods whose container is crash-looping, by (namespace, name).
    pub crashloops: Mutex<HashSet<(String, String)>>,
    rng: Mutex<Rng>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded values stay consistent across a panic (plain inserts).
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Core {
    pub fn new(
        config: SimConfig,
        store: Store,
        apiserver_addrs: Vec<SocketAddr>,
        nodes: Vec<NodeSim>,
        workloads: Registry,
        shutdown: CancellationToken,
        seed: u64,
    ) -> Core {
        let node_index = nodes.iter().map(|n| (n.name.clone(), n.index)).collect();
        Core {
            apiserver_up: apiserver_addrs
                .iter()
                .map(|_| AtomicBool::new(true))
                .collect(),
            apiserver_addrs,
            config,
            store,
            started: SystemTime::now(),
            shutdown,
            balancer_up: AtomicBool::new(true),
            etcd_up: AtomicBool::new(true),
            etcd_leader_changes: AtomicU64::new(1),
            scheduler_up: AtomicBool::new(true),
            controller_manager_up: AtomicBool::new(true),
            nodes,
            node_index,
            workloads,
            crashloops: Mutex::new(HashSet::new()),
            rng: Mutex::new(Rng::new(seed)),
        }
    }

    pub fn node(&self, name: &str) -> Option<&NodeSim> {
        self.node_index.get(name).map(|&i| &self.nodes[i])
    }

    pub fn random(&self, below: u64) -> u64 {
        lock(&self.rng).below(below)
    }

    pub fn etcd_running(&self) -> bool {
        self.etcd_up.load(Ordering::SeqCst)
    }

    pub fn apiserver_running(&self, index: usize) -> bool {
        self.apiserver_up
            .get(index)
            .is_some_and(|up| up.load(Ordering::SeqCst))
    }

    pub fn balancer_running(&self) -> bool {
        self.balancer_up.load(Ordering::SeqCst)
    }

    /// Whether a write from `node` can reach etcd: control-plane nodes talk
    /// to the first apiserver locally, every other node goes through the
    /// balancer to any running instance.
    pub fn writes_reach_etcd_from(&self, node: &NodeSim) -> bool {
        if !self.etcd_running() {
            return false;
        }
        if node.control_plane {
            self.apiserver_running(0)
        } else {
            self.balancer_running()
                && (0..self.apiserver_up.len()).any(|i| self.apiserver_running(i))
        }
    }

    /// Whether the scheduler and controller-manager, which talk to the
    /// first node's local apiserver, can hold their leader leases.
    pub fn leader_election_ok(&self) -> bool {
        self.etcd_running() && self.apiserver_running(0)
    }

    /// Whether the controller-manager's loops (node lifecycle, rollouts)
    /// can act.
    pub fn controllers_running(&self) -> bool {
        self.controller_manager_up.load(Ordering::SeqCst) && self.leader_election_ok()
    }
}
