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
pub mod alertmanager;
pub mod config;
pub mod dispatch;
pub mod inhibit;
pub mod matchers;
pub mod receivers;
pub mod rfc3339;
pub mod route;
pub mod severity;
pub mod silence;
pub mod timeinterval;

pub use alert::{Alert, AlertStatus, LabelSet, Notification};
pub use config::{ConfigErrors, ConfigProblem, NotifyConfig};
pub use dispatch::{
    AlertState, AlertView, GettableAlert, GroupView, LogRecord, NotifyReason, Pipeline,
    PipelineError,
};
pub use matchers::{MatchOp, Matcher, MatcherError, Matchers};
pub use receivers::config::ReceiverConfig;
pub use receivers::{Notifier, NotifyError, NotifyFuture};
pub use severity::Severity;
pub use silence::{
    GettableSilence, PostableSilence, SilenceError, SilenceMatcher, SilenceState, Silences,
};
