//! Starting the simulator and the operations the control API exposes.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::cluster::{Component, Core, lock};
use crate::config::SimConfig;
use crate::nodes::{self, NodeSim};
use crate::resources::Kind;
use crate::router::{self, RouterSim};
use crate::server::{self, Listener, Service};
use crate::{
    Error, api, balancer, control, controllers, health, kubeconfig, kubelet, time, workloads,
};

/// Where everything listens; printed as one JSON line at start.
#[derive(Debug, Clone, Serialize)]
pub struct Addresses {
    /// `http://127.0.0.1:<port>` per apiserver instance.
    pub apiservers: Vec<String>,
    pub balancer: String,
    pub control: String,
    pub scheduler: String,
    pub controller_manager: String,
    pub etcd: String,
    /// Whether nodes serve kubelet and kube-proxy endpoints.
    pub node_endpoints: bool,
    pub kubelet_port: u16,
    pub kubelet_healthz_port: u16,
    pub kube_proxy_port: u16,
    pub nodes: Vec<NodeAddress>,
    /// `http://127.0.0.1:<port>` per router (`/health`, `/routes`).
    pub routers: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeAddress {
    pub name: String,
    pub ip: Ipv4Addr,
    pub control_plane: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApiserverState {
    pub index: usize,
    pub url: String,
    pub running: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RouterState {
    pub index: usize,
    pub url: String,
    pub running: bool,
    /// The table no longer follows the cluster.
    pub frozen: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ComponentsState {
    pub scheduler: bool,
    pub controller_manager: bool,
    pub etcd: bool,
}

/// A summary of the simulated cluster (`GET /sim/state`).
#[derive(Debug, Clone, Serialize)]
pub struct SimState {
    #[serde(rename = "rv")]
    pub resource_version: u64,
    pub nodes: usize,
    pub nodes_alive: usize,
    pub nodes_ready: usize,
    pub pods: usize,
    pub crashlooping_pods: usize,
    /// `"up"` or `"broken"`.
    pub balancer: String,
    pub apiservers: Vec<ApiserverState>,
    pub components: ComponentsState,
    pub routers: Vec<RouterState>,
    pub addresses: Addresses,
}

/// The running simulator behind a [`SimHandle`] and the control API.
pub(crate) struct Sim {
    pub core: Arc<Core>,
    apiservers: Vec<Arc<Listener>>,
    balancer: Arc<Listener>,
    scheduler: Arc<Listener>,
    controller_manager: Arc<Listener>,
    /// Per node: kubelet healthz, kubelet, kube-proxy (empty when disabled).
    node_endpoints: Vec<Vec<Arc<Listener>>>,
    routers: Vec<(Arc<RouterSim>, Arc<Listener>)>,
    addresses: Addresses,
}

impl Sim {
    fn node(&self, name: &str) -> Result<&NodeSim, Error> {
        self.core
            .node(name)
            .ok_or_else(|| Error::UnknownNode(name.to_owned()))
    }

    pub async fn kill_node(&self, name: &str) -> Result<(), Error> {
        let node = self.node(name)?;
        node.alive.store(false, Ordering::SeqCst);
        for l in &self.node_endpoints[node.index] {
            l.stop().await;
        }
        tracing::info!(node = %name, "killed");
        Ok(())
    }

    pub async fn revive_node(&self, name: &str) -> Result<(), Error> {
        let node = self.node(name)?;
        for l in &self.node_endpoints[node.index] {
            l.start().await?;
        }
        *lock(&node.proxy_stale_since) = None;
        node.alive.store(true, Ordering::SeqCst);
        tracing::info!(node = %name, "revived");
        Ok(())
    }

    pub fn set_heartbeats(&self, name: &str, on: bool) -> Result<(), Error> {
        self.node(name)?.heartbeats.store(on, Ordering::SeqCst);
        Ok(())
    }

    pub fn make_kube_proxy_stale(&self, name: &str) -> Result<(), Error> {
        let node = self.node(name)?;
        let mut stale = lock(&node.proxy_stale_since);
        if stale.is_none() {
            // Older than kube-proxy's default 30 s healthTimeout plus a resync.
            *stale = Some(SystemTime::now() - Duration::from_secs(120));
        }
        Ok(())
    }

    pub async fn set_balancer(&self, up: bool) -> Result<(), Error> {
        if up {
            self.balancer.start().await?;
            self.core.balancer_up.store(true, Ordering::SeqCst);
        } else {
            self.core.balancer_up.store(false, Ordering::SeqCst);
            self.balancer.stop().await;
        }
        tracing::info!(up, "balancer");
        Ok(())
    }

    pub async fn set_apiserver(&self, index: usize, up: bool) -> Result<(), Error> {
        let listener = self
            .apiservers
            .get(index)
            .ok_or(Error::UnknownApiserver(index, self.apiservers.len()))?;
        if up {
            listener.start().await?;
            self.core.apiserver_up[index].store(true, Ordering::SeqCst);
        } else {
            self.core.apiserver_up[index].store(false, Ordering::SeqCst);
            listener.stop().await;
        }
        tracing::info!(index, up, "apiserver");
        Ok(())
    }

    pub async fn set_component(&self, component: Component, up: bool) -> Result<(), Error> {
        let core = &self.core;
        match component {
            Component::Etcd => {
                if up && !core.etcd_up.swap(true, Ordering::SeqCst) {
                    core.etcd_leader_changes.fetch_add(1, Ordering::SeqCst);
                }
                core.etcd_up.store(up, Ordering::SeqCst);
            }
            Component::Scheduler | Component::ControllerManager => {
                let (flag, listener) = if component == Component::Scheduler {
                    (&core.scheduler_up, &self.scheduler)
                } else {
                    (&core.controller_manager_up, &self.controller_manager)
                };
                if up {
                    listener.start().await?;
                    flag.store(true, Ordering::SeqCst);
                } else {
                    flag.store(false, Ordering::SeqCst);
                    listener.stop().await;
                }
            }
        }
        tracing::info!(component = component.as_str(), up, "component");
        Ok(())
    }

    fn router(&self, index: usize) -> Result<&(Arc<RouterSim>, Arc<Listener>), Error> {
        self.routers
            .get(index)
            .ok_or(Error::UnknownRouter(index, self.routers.len()))
    }

    /// The router's table stops following the cluster.
    pub fn freeze_router(&self, index: usize) -> Result<(), Error> {
        self.router(index)?.0.freeze(&self.core);
        tracing::info!(index, "router frozen");
        Ok(())
    }

    pub fn unfreeze_router(&self, index: usize) -> Result<(), Error> {
        self.router(index)?.0.unfreeze();
        tracing::info!(index, "router follows the cluster again");
        Ok(())
    }

    pub async fn set_router(&self, index: usize, up: bool) -> Result<(), Error> {
        let (router, listener) = self.router(index)?;
        if up {
            listener.start().await?;
            router.set_running(true);
        } else {
            router.set_running(false);
            listener.stop().await;
        }
        tracing::info!(index, up, "router");
        Ok(())
    }

    pub fn state(&self) -> SimState {
        let core = &self.core;
        SimState {
            resource_version: core.store.resource_version(),
            nodes: core.nodes.len(),
            nodes_alive: core.nodes.iter().filter(|n| n.is_alive()).count(),
            nodes_ready: core
                .nodes
                .iter()
                .filter(|n| n.ready.load(Ordering::SeqCst))
                .count(),
            pods: core.store.count(Kind::PODS),
            crashlooping_pods: lock(&core.crashloops).len(),
            balancer: if core.balancer_running() {
                "up"
            } else {
                "broken"
            }
            .to_owned(),
            apiservers: self
                .apiservers
                .iter()
                .enumerate()
                .map(|(index, l)| ApiserverState {
                    index,
                    url: l.url(),
                    running: core.apiserver_running(index),
                })
                .collect(),
            components: ComponentsState {
                scheduler: core.scheduler_up.load(Ordering::SeqCst),
                controller_manager: core.controller_manager_up.load(Ordering::SeqCst),
                etcd: core.etcd_running(),
            },
            routers: self
                .routers
                .iter()
                .map(|(r, l)| RouterState {
                    index: r.index,
                    url: l.url(),
                    running: r.is_running(),
                    frozen: r.is_frozen(),
                })
                .collect(),
            addresses: self.addresses.clone(),
        }
    }
}

/// Entry point of the library.
pub struct Simulator;

impl Simulator {
    /// Builds the cluster, binds every listener and starts the background
    /// loops. Must run inside a Tokio runtime; everything stops when the
    /// returned handle is dropped.
    pub async fn start(config: SimConfig) -> Result<SimHandle, Error> {
        config.validate()?;
        let shutdown = CancellationToken::new();
        let base_rv = config
            .base_resource_version
            .unwrap_or_else(|| time::unix_micros(SystemTime::now()));
        let mut ports = (0u16..).map(|i| config.port_base.map_or(0, |b| b + i));
        let mut next_addr = || SocketAddr::from(([127, 0, 0, 1], ports.next().unwrap_or(0)));

        let mut api_sockets = Vec::with_capacity(config.apiservers);
        for _ in 0..config.apiservers {
            api_sockets.push(server::bind(next_addr()).await?);
        }
        let balancer_socket = server::bind(next_addr()).await?;
        let control_socket = server::bind(next_addr()).await?;
        let scheduler_socket = server::bind(next_addr()).await?;
        let cm_socket = server::bind(next_addr()).await?;
        let etcd_socket = server::bind(next_addr()).await?;
        let mut router_sockets = Vec::with_capacity(config.routers);
        for _ in 0..config.routers {
            router_sockets.push(server::bind(next_addr()).await?);
        }
        let api_addrs: Vec<SocketAddr> = api_sockets
            .iter()
            .map(|s| s.local_addr())
            .collect::<Result<_, _>>()
            .map_err(|source| Error::Bind {
                addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                source,
            })?;

        let (store, nodes, registry) = {
            let config = config.clone();
            let api_addrs = api_addrs.clone();
            tokio::task::spawn_blocking(move || {
                let store = crate::store::Store::new(base_rv, config.history_limit);
                let nodes: Vec<NodeSim> = (0..config.nodes)
                    .map(|i| NodeSim::new(&config, i))
                    .collect();
                let registry = workloads::generate(&config, &store, &nodes, &api_addrs, base_rv)?;
                Ok::<_, Error>((store, nodes, registry))
            })
            .await
            .map_err(|e| Error::Config(format!("generating the workload panicked: {e}")))??
        };
        let core = Arc::new(Core::new(
            config.clone(),
            store,
            api_addrs,
            nodes,
            registry,
            shutdown.clone(),
            base_rv,
        ));

        let apiservers = api_sockets
            .into_iter()
            .enumerate()
            .map(|(i, socket)| {
                Listener::serve(
                    format!("apiserver-{i}"),
                    socket,
                    Service::Http(api::router(core.clone(), i)),
                    &shutdown,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let balancer = Listener::serve(
            "balancer",
            balancer_socket,
            Service::Tcp(balancer::handler(core.clone())),
            &shutdown,
        )?;
        let scheduler = Listener::serve(
            "scheduler",
            scheduler_socket,
            Service::Http(health::component_router(
                core.clone(),
                health::scheduler_checks,
            )),
            &shutdown,
        )?;
        let controller_manager = Listener::serve(
            "controller-manager",
            cm_socket,
            Service::Http(health::component_router(
                core.clone(),
                health::controller_manager_checks,
            )),
            &shutdown,
        )?;
        let etcd = Listener::serve(
            "etcd",
            etcd_socket,
            Service::Http(health::etcd_router(core.clone())),
            &shutdown,
        )?;

        let routers = router_sockets
            .into_iter()
            .enumerate()
            .map(|(i, socket)| {
                let sim = Arc::new(RouterSim::new(i));
                let listener = Listener::serve(
                    format!("router-{i}"),
                    socket,
                    Service::Http(router::router(core.clone(), sim.clone())),
                    &shutdown,
                )?;
                Ok((sim, listener))
            })
            .collect::<Result<Vec<_>, Error>>()?;

        let mut node_endpoints = Vec::with_capacity(core.nodes.len());
        for node in &core.nodes {
            let mut listeners = Vec::new();
            if config.node_endpoints {
                let ip = node.ip;
                let endpoints = [
                    (
                        "kubelet-healthz",
                        config.kubelet_healthz_port,
                        kubelet::healthz_router(),
                    ),
                    (
                        "kubelet",
                        config.kubelet_port,
                        kubelet::kubelet_router(core.clone(), node.index),
                    ),
                    (
                        "kube-proxy",
                        config.kube_proxy_port,
                        kubelet::kube_proxy_router(core.clone(), node.index),
                    ),
                ];
                for (what, port, router) in endpoints {
                    let socket = server::bind(SocketAddr::from((ip, port))).await?;
                    listeners.push(Listener::serve(
                        format!("{what}@{}", node.name),
                        socket,
                        Service::Http(router),
                        &shutdown,
                    )?);
                }
            }
            node_endpoints.push(listeners);
        }

        let control_addr = control_socket.local_addr().map_err(|source| Error::Bind {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            source,
        })?;
        let addresses = Addresses {
            apiservers: apiservers.iter().map(|l| l.url()).collect(),
            balancer: balancer.url(),
            control: format!("http://{control_addr}"),
            scheduler: scheduler.url(),
            controller_manager: controller_manager.url(),
            etcd: etcd.url(),
            node_endpoints: config.node_endpoints,
            kubelet_port: config.kubelet_port,
            kubelet_healthz_port: config.kubelet_healthz_port,
            kube_proxy_port: config.kube_proxy_port,
            nodes: core
                .nodes
                .iter()
                .map(|n| NodeAddress {
                    name: n.name.clone(),
                    ip: n.ip,
                    control_plane: n.control_plane,
                })
                .collect(),
            routers: routers.iter().map(|(_, l)| l.url()).collect(),
        };
        let sim = Arc::new(Sim {
            core: core.clone(),
            apiservers,
            balancer,
            scheduler,
            controller_manager,
            node_endpoints,
            routers,
            addresses,
        });
        let control = Listener::serve(
            "control",
            control_socket,
            Service::Http(control::router(sim.clone())),
            &shutdown,
        )?;

        tokio::spawn(nodes::heartbeat_loop(core.clone()));
        tokio::spawn(nodes::lifecycle_loop(core.clone()));
        tokio::spawn(controllers::churn_loop(core.clone()));
        tracing::info!(
            nodes = core.nodes.len(),
            pods = core.store.count(Kind::PODS),
            rv = core.store.resource_version(),
            "simulator ready"
        );
        Ok(SimHandle {
            sim,
            _control: control,
            shutdown,
        })
    }
}

/// A running simulator. Dropping it stops everything.
pub struct SimHandle {
    sim: Arc<Sim>,
    _control: Arc<Listener>,
    shutdown: CancellationToken,
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl SimHandle {
    pub fn addresses(&self) -> &Addresses {
        &self.sim.addresses
    }

    /// The balancer's URL (what clients should use).
    pub fn balancer_url(&self) -> &str {
        &self.sim.addresses.balancer
    }

    /// Instance `index`'s URL.
    pub fn apiserver_url(&self, index: usize) -> Option<&str> {
        self.sim.addresses.apiservers.get(index).map(String::as_str)
    }

    pub fn control_url(&self) -> &str {
        &self.sim.addresses.control
    }

    pub fn config(&self) -> &SimConfig {
        &self.sim.core.config
    }

    pub fn state(&self) -> SimState {
        self.sim.state()
    }

    /// The latest resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.sim.core.store.resource_version()
    }

    /// Forgets watch history: older resourceVersions and continue tokens get 410.
    pub fn compact(&self) {
        self.sim.core.store.compact();
    }

    pub async fn kill_node(&self, node: &str) -> Result<(), Error> {
        self.sim.kill_node(node).await
    }

    pub async fn revive_node(&self, node: &str) -> Result<(), Error> {
        self.sim.revive_node(node).await
    }

    pub fn stop_heartbeats(&self, node: &str) -> Result<(), Error> {
        self.sim.set_heartbeats(node, false)
    }

    pub fn start_heartbeats(&self, node: &str) -> Result<(), Error> {
        self.sim.set_heartbeats(node, true)
    }

    pub fn make_kube_proxy_stale(&self, node: &str) -> Result<(), Error> {
        self.sim.make_kube_proxy_stale(node)
    }

    pub fn crashloop(&self, namespace: &str, pod: &str) -> Result<(), Error> {
        controllers::start_crashloop(&self.sim.core, namespace, pod)
    }

    pub fn scale(
        &self,
        namespace: &str,
        deployment: &str,
        replicas: usize,
        stuck: bool,
    ) -> Result<(), Error> {
        controllers::scale(&self.sim.core, namespace, deployment, replicas, stuck)
    }

    pub async fn break_balancer(&self) -> Result<(), Error> {
        self.sim.set_balancer(false).await
    }

    pub async fn repair_balancer(&self) -> Result<(), Error> {
        self.sim.set_balancer(true).await
    }

    pub async fn stop_apiserver(&self, index: usize) -> Result<(), Error> {
        self.sim.set_apiserver(index, false).await
    }

    pub async fn start_apiserver(&self, index: usize) -> Result<(), Error> {
        self.sim.set_apiserver(index, true).await
    }

    pub async fn stop_component(&self, component: Component) -> Result<(), Error> {
        self.sim.set_component(component, false).await
    }

    pub async fn start_component(&self, component: Component) -> Result<(), Error> {
        self.sim.set_component(component, true).await
    }

    /// Router `index`'s URL.
    pub fn router_url(&self, index: usize) -> Option<&str> {
        self.sim.addresses.routers.get(index).map(String::as_str)
    }

    /// Router `index`'s table stops following the cluster: it keeps routes
    /// to pods that go away or turn unready.
    pub fn freeze_router(&self, index: usize) -> Result<(), Error> {
        self.sim.freeze_router(index)
    }

    /// The table follows the cluster again.
    pub fn unfreeze_router(&self, index: usize) -> Result<(), Error> {
        self.sim.unfreeze_router(index)
    }

    /// The router's port refuses connections.
    pub async fn stop_router(&self, index: usize) -> Result<(), Error> {
        self.sim.set_router(index, false).await
    }

    pub async fn start_router(&self, index: usize) -> Result<(), Error> {
        self.sim.set_router(index, true).await
    }

    /// Writes a kubeconfig pointing at the balancer.
    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), Error> {
        kubeconfig::write(path, self.balancer_url())
    }

    /// Stops every listener and loop.
    pub fn shutdown(self) {
        drop(self);
    }
}
