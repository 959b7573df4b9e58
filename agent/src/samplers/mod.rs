//! The agent's samplers, one module per source.

pub mod containers;
pub mod docker;
pub mod host;
pub mod inventory;
pub mod kubelet_summary;
pub mod node_health;
