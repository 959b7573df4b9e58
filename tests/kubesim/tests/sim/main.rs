//! End-to-end tests of the simulator with the real kube-rs client.

mod common;
mod health;
mod heartbeats;
mod list;
mod node_endpoints;
mod routers;
mod scale;
mod watch;
