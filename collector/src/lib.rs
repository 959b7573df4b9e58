//! The Lookout collector. Data flows through the modules in this order:
//! [`ingest`] (remote write in, agent liveness) → storage (the
//! `lookout-tsdb` crate) → [`api`] (the Prometheus-compatible read API);
//! [`forward`] sends a copy onward; [`serve`] wires them together.

pub mod api;
pub mod config;
pub mod forward;
pub mod ingest;
pub mod serve;
pub mod tls;
