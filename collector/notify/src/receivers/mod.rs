//! Receivers: where notifications go. Each receiver kind turns a
//! [`Notification`] into its vendor's request; the [`Notifier`] trait is the
//! one interface the dispatcher calls, so other sinks (remediation hooks)
//! plug in the same way.

pub mod config;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::alert::Notification;

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
    Retryable { message: String, retry_after: Option<Duration> },
    /// Trying again will not help (4xx, a vendor error code, bad config).
    #[error("{message}")]
    Permanent { message: String },
}
