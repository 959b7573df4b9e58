//! Receivers: where notifications go. Each receiver kind turns a
//! [`Notification`] into its vendor's request; the [`Notifier`] trait is the
//! one interface the dispatcher calls, so other sinks (remediation hooks)
//! plug in the same way.
//!
//! - [`config`]: the `receivers:` entries, secrets and [`config::ReceiverConfig::validate`];
//! - [`build`] makes one receiver's notifiers, each wrapped by [`delivery`]
//!   (retries, per-endpoint rate limits, counters in [`StatsRegistry`]);
//! - one module per kind: `webhook` (Alertmanager's payload v4), `slack`,
//!   `dingtalk`, `feishu`, `wecom`, `telegram`, `teams`, `zabbix` (sender
//!   protocol);
//! - `message` renders the built-in English and Chinese texts and custom
//!   Go templates over [`template_data`], Alertmanager's data model.

pub mod config;
pub mod delivery;
mod dingtalk;
mod feishu;
pub(crate) mod http;
mod message;
mod slack;
mod teams;
mod telegram;
pub mod template_data;
pub mod webhook;
mod wecom;
mod zabbix;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::alert::Notification;

pub use delivery::{
    BuildContext, BuildError, Clock, DeliveryOptions, DeliveryStats, IntegrationStats,
    StatsRegistry, build,
};

pub type NotifyFuture<'a> = Pin<Box<dyn Future<Output = Result<(), NotifyError>> + Send + 'a>>;

/// Something that delivers notifications.
pub trait Notifier: Send + Sync {
    /// Kind and name for logs and metrics, e.g. `webhook/ops`.
    fn name(&self) -> &str;
    fn notify<'a>(&'a self, notification: &'a Notification) -> NotifyFuture<'a>;
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// Worth trying again (network error, 5xx, 429), possibly after a delay
    /// the peer asked for.
    #[error("{message}")]
    Retryable {
        message: String,
        retry_after: Option<Duration>,
    },
    /// Trying again will not help (4xx, a vendor error code, bad config).
    #[error("{message}")]
    Permanent { message: String },
}
