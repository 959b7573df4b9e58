//! Lookout's notification pipeline, with Alertmanager's semantics:
//!
//! ```text
//! alerts ─► route ─► group (group_wait / group_interval / repeat_interval)
//!        ─► inhibit ─► mute windows ─► silences ─► notification log ─► receiver
//! ```
//!
//! Everything here is driven by time passed in (milliseconds since the
//! epoch), never by reading the clock, so tests run hours of simulated
//! time in milliseconds. The async driver that ticks the pipeline lives in
//! the collector.

pub mod alert;
pub mod receivers;

pub use alert::{Alert, AlertStatus, LabelSet, Notification};
pub use receivers::config::ReceiverConfig;
pub use receivers::{Notifier, NotifyError, NotifyFuture};
