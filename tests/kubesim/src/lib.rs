//! A Kubernetes API simulator that speaks the real wire protocol, so that
//! kube-rs clients and `kube::runtime::watcher` run unchanged against it.
//!
//! One store (etcd) is served by several apiserver instances behind a TCP
//! balancer; simulated nodes renew leases, serve kubelet and kube-proxy
//! endpoints, and fall to Ready=Unknown when their heartbeats stop;
//! simulated L7 routers serve a route table that follows the routed
//! services' ready endpoints. A control API (and [`SimHandle`]'s methods)
//! injects faults and changes.
//! See the crate's README for what is and is not emulated.

mod api;
mod balancer;
mod cluster;
mod config;
mod control;
mod controllers;
mod health;
pub mod kubeconfig;
mod kubelet;
mod nodes;
pub mod resources;
mod rng;
mod router;
pub mod selectors;
mod server;
mod sim;
pub mod store;
mod time;
mod workloads;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use cluster::Component;
pub use config::{MAX_NODES, SimConfig};
pub use router::{ROUTE_DOMAIN, route_name};
pub use sim::{
    Addresses, ApiserverState, ComponentsState, NodeAddress, RouterState, SimHandle, SimState,
    Simulator,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("no node named {0:?}")]
    UnknownNode(String),
    #[error("no pod {namespace}/{name}")]
    UnknownPod { namespace: String, name: String },
    #[error("no deployment {namespace}/{name}")]
    UnknownDeployment { namespace: String, name: String },
    #[error("no apiserver instance {0} (there are {1})")]
    UnknownApiserver(usize, usize),
    #[error("no router {0} (there are {1})")]
    UnknownRouter(usize, usize),
    #[error("no component {0:?} (scheduler, controller-manager or etcd)")]
    UnknownComponent(String),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("writing {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}
