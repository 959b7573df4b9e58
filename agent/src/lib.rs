//! The Lookout node agent.
//!
//! Samplers (`samplers/`) read the host, cgroups, Docker and the node's
//! Kubernetes components; the scheduler (`schedule`) runs each on its own
//! interval and timeout; the registry (`registry`) keeps their latest output;
//! `expose` serves it as `/metrics`; `service` wires it together and handles
//! reloads and shutdown. `kube` watches this node's pods when asked to.

pub mod cli;
pub mod clock;
pub mod config;
pub mod expose;
pub mod https;
pub mod kube;
pub mod outbox;
pub mod procfs;
pub mod registry;
pub mod samplers;
pub mod schedule;
pub mod service;
pub mod shipper;
pub mod systemd;
