//! The agent's samplers, one module per source.

pub mod containers;
pub mod host;
pub mod inventory;
