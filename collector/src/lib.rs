//! The Lookout collector. Data flows through the modules in this order:
//! [`ingest`] (remote write in, agent liveness) → storage (the
//! `lookout-tsdb` crate) → PromQL (the `lookout-promql` crate) → [`api`]
//! (the Prometheus-compatible HTTP API); [`forward`] sends a copy onward;
//! [`serve`] wires them together; [`query_cli`] is `lookout query`.

pub mod api;
pub mod config;
pub mod forward;
pub mod ingest;
pub mod kube;
pub mod notify;
pub mod probe;
pub mod query_cli;
pub mod rules;
pub mod rules_cli;
pub mod serve;
pub mod silence_cli;
pub mod statefile;
pub mod tls;
