//! Delivery around every integration: `send_resolved` filtering, a token
//! bucket per endpoint, retries with exponential backoff and jitter that
//! honour the peer's `Retry-After`, per-receiver counters, and one log line
//! per notification that could not be delivered.
//!
//! [`build`] turns one [`ReceiverConfig`] into its notifiers, each wrapped
//! in this delivery; a [`BuildContext`] holds what they share (HTTP client,
//! rate limiters, counters, clock) and should live as long as the process,
//! across config reloads, so that limits and counters carry over.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::config::{Problems, RateLimitConfig, ReceiverConfig, ReceiverProblem};
use super::http::HttpClient;
use super::message::TemplateFuncs;
use super::{
    Notifier, NotifyError, NotifyFuture, dingtalk, feishu, slack, teams, telegram, webhook, wecom,
    zabbix,
};
use crate::alert::{Alert, Notification};

/// The wall clock the receivers read for signatures and Zabbix
/// timestamps; tests fix it.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Settings of the delivery machinery that are not per integration.
#[derive(Clone)]
pub struct DeliveryOptions {
    /// TCP connect timeout of the shared HTTP client.
    pub connect_timeout: Duration,
    /// First wait before a retry; doubled each time up to `max_backoff`,
    /// plus up to a quarter of random jitter.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub clock: Clock,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        DeliveryOptions {
            connect_timeout: Duration::from_secs(10),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            clock: Arc::new(SystemTime::now),
        }
    }
}

/// What the receivers' runtime parts need.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) http: HttpClient,
    pub(crate) clock: Clock,
}

/// Shared by every notifier built from it; keep one per process.
pub struct BuildContext {
    shared: Shared,
    options: DeliveryOptions,
    funcs: TemplateFuncs,
    stats: StatsRegistry,
    limiters: Mutex<HashMap<String, Arc<RateLimiter>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("receiver {receiver:?}: {}", list(problems))]
    Config {
        receiver: String,
        problems: Vec<ReceiverProblem>,
    },
    #[error("cannot set up TLS for the receivers' HTTP client: {0}")]
    Tls(#[from] rustls::Error),
}

fn list(problems: &[ReceiverProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl BuildContext {
    pub fn new(options: DeliveryOptions) -> Result<BuildContext, BuildError> {
        let http = HttpClient::new(options.connect_timeout)?;
        Ok(BuildContext {
            shared: Shared {
                http,
                clock: options.clock.clone(),
            },
            options,
            funcs: TemplateFuncs::default(),
            stats: StatsRegistry::default(),
            limiters: Mutex::new(HashMap::new()),
        })
    }

    /// The shared HTTP client, for senders outside the receivers
    /// (Alertmanager).
    pub(crate) fn http(&self) -> crate::receivers::http::HttpClient {
        self.shared.http.clone()
    }

    /// Delivery counters of every receiver built so far.
    pub fn stats(&self) -> &StatsRegistry {
        &self.stats
    }

    /// The bucket of one endpoint; the first integration to name an
    /// endpoint sets its rate.
    fn limiter(&self, key: String, rate: &RateLimitConfig) -> Option<Arc<RateLimiter>> {
        if rate.per_minute == 0 {
            return None;
        }
        let mut map = self.limiters.lock().unwrap_or_else(PoisonError::into_inner);
        Some(
            map.entry(key)
                .or_insert_with(|| Arc::new(RateLimiter::new(rate)))
                .clone(),
        )
    }
}

/// Delivery settings every integration has.
pub(crate) struct Common {
    pub(crate) send_resolved: bool,
    pub(crate) give_up_after: Duration,
    pub(crate) rate_limit: Option<RateLimitConfig>,
}

/// A resolved integration, before it gets its runtime parts.
pub(crate) enum Spec {
    Webhook(webhook::Spec),
    Slack(slack::Spec),
    DingTalk(dingtalk::Spec),
    Feishu(feishu::Spec),
    WeCom(wecom::Spec),
    Telegram(telegram::Spec),
    Teams(teams::Spec),
    Zabbix(zabbix::Spec),
}

pub(crate) struct Prepared {
    kind: &'static str,
    index: usize,
    common: Common,
    spec: Spec,
}

/// Resolves every integration of a receiver, recording problems. Shared by
/// [`ReceiverConfig::validate`] and [`build`], so both see the same errors.
pub(crate) fn resolve_all(
    cfg: &ReceiverConfig,
    funcs: &TemplateFuncs,
    problems: &mut Problems,
) -> Vec<Prepared> {
    let mut out = Vec::new();
    macro_rules! each {
        ($list:expr, $kind:literal, $module:ident, $variant:ident) => {
            for (index, c) in $list.iter().enumerate() {
                let field = format!(concat!($kind, "_configs[{}]"), index);
                check_common(problems, &field, c.timeout, &c.rate_limit);
                if let Some(spec) = $module::resolve(c, &field, funcs, problems) {
                    out.push(Prepared {
                        kind: $kind,
                        index,
                        common: Common {
                            send_resolved: c.send_resolved,
                            give_up_after: c.give_up_after,
                            rate_limit: c.rate_limit.clone(),
                        },
                        spec: Spec::$variant(spec),
                    });
                }
            }
        };
    }
    each!(cfg.webhook_configs, "webhook", webhook, Webhook);
    each!(cfg.slack_configs, "slack", slack, Slack);
    each!(cfg.dingtalk_configs, "dingtalk", dingtalk, DingTalk);
    each!(cfg.feishu_configs, "feishu", feishu, Feishu);
    each!(cfg.wecom_configs, "wecom", wecom, WeCom);
    each!(cfg.telegram_configs, "telegram", telegram, Telegram);
    each!(cfg.teams_configs, "teams", teams, Teams);
    each!(cfg.zabbix_configs, "zabbix", zabbix, Zabbix);
    out
}

fn check_common(
    problems: &mut Problems,
    field: &str,
    timeout: Duration,
    rate: &Option<RateLimitConfig>,
) {
    if timeout.is_zero() {
        problems.push(&format!("{field}.timeout"), "must be positive");
    }
    if let Some(rate) = rate
        && rate.burst == 0
    {
        problems.push(&format!("{field}.rate_limit.burst"), "must be at least 1");
    }
}

/// Messages per minute a kind sends to one endpoint unless configured:
/// the vendors' documented limits (DingTalk and WeCom 20 a minute, Slack
/// and Telegram about one a second).
fn default_rate(kind: &str) -> RateLimitConfig {
    let per_minute = match kind {
        "dingtalk" | "wecom" => 20,
        "slack" | "telegram" => 60,
        _ => 0,
    };
    RateLimitConfig {
        per_minute,
        burst: 1,
    }
}

/// Builds the notifiers of one receiver, each wrapped in retries, rate
/// limiting and counting. A receiver without integrations yields none
/// (Alertmanager's way of discarding alerts). Every problem is reported at
/// once, with paths relative to the receiver.
pub fn build(
    cfg: &ReceiverConfig,
    ctx: &BuildContext,
) -> Result<Vec<Arc<dyn Notifier>>, BuildError> {
    let mut problems = Problems::new("");
    let prepared = resolve_all(cfg, &ctx.funcs, &mut problems);
    if problems.len() > 0 {
        return Err(BuildError::Config {
            receiver: cfg.name.clone(),
            problems: problems.into_vec(),
        });
    }
    let counts = |kind: &str| prepared.iter().filter(|p| p.kind == kind).count();
    let mut out: Vec<Arc<dyn Notifier>> = Vec::with_capacity(prepared.len());
    for p in &prepared {
        let name = if counts(p.kind) > 1 && p.index > 0 {
            format!("{}[{}]/{}", p.kind, p.index, cfg.name)
        } else {
            format!("{}/{}", p.kind, cfg.name)
        };
        let shared = ctx.shared.clone();
        let (inner, rate_key, endpoint): (Box<dyn Notifier>, String, String) = match &p.spec {
            Spec::Webhook(s) => (
                Box::new(webhook::Webhook::new(s.clone(), name.clone(), shared)),
                s.rate_key(),
                s.display(),
            ),
            Spec::Slack(s) => (
                Box::new(slack::Slack::new(s.clone(), name.clone(), shared)),
                s.rate_key(),
                s.display(),
            ),
            Spec::DingTalk(s) => (
                Box::new(dingtalk::DingTalk::new(s.clone(), name.clone(), shared)),
                s.rate_key(),
                s.display(),
            ),
            Spec::Feishu(s) => (
                Box::new(feishu::Feishu::new(s.clone(), name.clone(), shared)),
                s.rate_key(),
                s.display(),
            ),
            Spec::WeCom(s) => (
                Box::new(wecom::WeCom::new(s.clone(), name.clone(), shared)),
                s.rate_key(),
                s.display(),
            ),
            Spec::Telegram(s) => (
                Box::new(telegram::Telegram::new(s.clone(), name.clone(), shared)),
                s.rate_key(),
                s.display(),
            ),
            Spec::Teams(s) => (
                Box::new(teams::Teams::new(s.clone(), name.clone(), shared)),
                s.rate_key(),
                s.display(),
            ),
            Spec::Zabbix(s) => (
                Box::new(zabbix::Zabbix::new(s.clone(), name.clone(), shared)),
                s.rate_key(),
                s.display(),
            ),
        };
        let rate = p
            .common
            .rate_limit
            .clone()
            .unwrap_or_else(|| default_rate(p.kind));
        let limiter = ctx.limiter(format!("{} {rate_key}", p.kind), &rate);
        out.push(Arc::new(Delivery {
            name,
            receiver: cfg.name.clone(),
            endpoint,
            inner,
            send_resolved: p.common.send_resolved,
            give_up_after: p.common.give_up_after,
            initial_backoff: ctx.options.initial_backoff,
            max_backoff: ctx.options.max_backoff,
            limiter,
            counters: ctx.stats.counters(&cfg.name, p.kind),
        }));
    }
    Ok(out)
}

/// One integration with retries, rate limiting and counting around it.
struct Delivery {
    name: String,
    receiver: String,
    /// Scheme and host (or Zabbix server), for logs.
    endpoint: String,
    inner: Box<dyn Notifier>,
    send_resolved: bool,
    give_up_after: Duration,
    initial_backoff: Duration,
    max_backoff: Duration,
    limiter: Option<Arc<RateLimiter>>,
    counters: Arc<Counters>,
}

impl Notifier for Delivery {
    fn name(&self) -> &str {
        &self.name
    }

    fn notify<'a>(&'a self, n: &'a Notification) -> NotifyFuture<'a> {
        Box::pin(self.deliver(n))
    }
}

impl Delivery {
    async fn deliver(&self, n: &Notification) -> Result<(), NotifyError> {
        let filtered;
        let n = if self.send_resolved {
            n
        } else {
            let firing: Vec<Alert> = n.firing().cloned().collect();
            if firing.is_empty() {
                return Ok(());
            }
            if firing.len() == n.alerts.len() {
                n
            } else {
                filtered = Notification {
                    alerts: firing,
                    ..n.clone()
                };
                &filtered
            }
        };

        let mut start = None;
        let mut attempt = 0u32;
        loop {
            if let Some(limiter) = &self.limiter
                && limiter.acquire().await
            {
                self.counters
                    .rate_limited_waits
                    .fetch_add(1, Ordering::Relaxed);
            }
            // The retry budget starts at the first attempt, not while the
            // notification queued behind others for the endpoint's bucket.
            let start = *start.get_or_insert_with(Instant::now);
            attempt += 1;
            let (message, retry_after) = match self.inner.notify(n).await {
                Ok(()) => {
                    self.counters.sent.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                Err(NotifyError::Permanent { message }) => {
                    self.counters.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        receiver = %self.receiver,
                        integration = %self.name,
                        endpoint = %self.endpoint,
                        group_key = %n.group_key,
                        attempts = attempt,
                        error = %message,
                        "notification rejected; not retrying"
                    );
                    return Err(NotifyError::Permanent { message });
                }
                Err(NotifyError::Retryable {
                    message,
                    retry_after,
                }) => (message, retry_after),
            };
            let backoff = self.backoff(attempt - 1);
            let wait = retry_after.map_or(backoff, |asked| asked.max(backoff));
            if let (Some(limiter), Some(asked)) = (&self.limiter, retry_after) {
                // Other notifications to the same endpoint hold back too.
                limiter.hold_until(Instant::now() + asked);
            }
            if start.elapsed() + wait > self.give_up_after {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    receiver = %self.receiver,
                    integration = %self.name,
                    endpoint = %self.endpoint,
                    group_key = %n.group_key,
                    attempts = attempt,
                    error = %message,
                    "notification dropped: still failing after {}",
                    humantime::format_duration(round_secs(start.elapsed()))
                );
                return Err(NotifyError::Retryable {
                    message,
                    retry_after,
                });
            }
            self.counters.retried.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                integration = %self.name,
                attempt,
                wait_ms = wait.as_millis() as u64,
                error = %message,
                "notification failed; retrying"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// `initial × 2^retry`, capped, plus up to 25 % jitter so receivers
    /// that failed together do not retry together.
    fn backoff(&self, retry: u32) -> Duration {
        let base = self
            .initial_backoff
            .saturating_mul(1u32 << retry.min(20))
            .min(self.max_backoff);
        let jitter_range = base.as_nanos() as u64 / 4;
        let jitter = if jitter_range == 0 {
            0
        } else {
            random_u64() % jitter_range
        };
        base + Duration::from_nanos(jitter)
    }
}

fn round_secs(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs())
}

/// Randomness for jitter without a dependency: std seeds each
/// `RandomState` from the OS and a per-thread counter.
fn random_u64() -> u64 {
    RandomState::new().build_hasher().finish()
}

/// A token bucket in GCRA form: one slot every `interval`, up to `burst`
/// back to back. Waiting callers reserve their slot before sleeping, so
/// they go out in order and none is dropped.
pub(crate) struct RateLimiter {
    interval: Duration,
    tolerance: Duration,
    /// When the next message would be on schedule ("theoretical arrival").
    next: Mutex<Instant>,
}

impl RateLimiter {
    fn new(rate: &RateLimitConfig) -> RateLimiter {
        let interval = Duration::from_secs(60) / rate.per_minute.max(1);
        let tolerance = interval * rate.burst.max(1).saturating_sub(1);
        RateLimiter {
            interval,
            tolerance,
            next: Mutex::new(Instant::now()),
        }
    }

    /// Waits for a slot; returns whether it had to wait.
    pub(crate) async fn acquire(&self) -> bool {
        let wait = {
            let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            let tat = (*next).max(now);
            let allowed_at = tat.checked_sub(self.tolerance).unwrap_or(now);
            *next = tat + self.interval;
            allowed_at.saturating_duration_since(now)
        };
        if wait.is_zero() {
            return false;
        }
        tokio::time::sleep(wait).await;
        true
    }

    /// Nothing more goes out before `until` (the endpoint said so).
    pub(crate) fn hold_until(&self, until: Instant) {
        let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
        *next = (*next).max(until + self.tolerance);
    }
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    dropped: AtomicU64,
    rate_limited_waits: AtomicU64,
}

/// Counts of one receiver's integrations of one kind.
///
/// Every notification ends as exactly one of `sent`, `failed` (the
/// endpoint refused it: 4xx or a vendor error code) or `dropped` (retryable
/// errors until `give_up_after` ran out). `retried` counts extra attempts,
/// `rate_limited_waits` the sends that waited for the endpoint's bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeliveryStats {
    pub sent: u64,
    pub failed: u64,
    pub retried: u64,
    pub dropped: u64,
    pub rate_limited_waits: u64,
}

/// One row of [`StatsRegistry::snapshot`], e.g. for
/// `lookout_notifications_total{receiver="ops",integration="dingtalk"}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntegrationStats {
    pub receiver: String,
    /// The kind: `webhook`, `slack`, `dingtalk`, `feishu`, `wecom`,
    /// `telegram`, `teams` or `zabbix`.
    pub integration: String,
    pub stats: DeliveryStats,
}

/// Counters keyed by (receiver, integration kind).
type CounterMap = BTreeMap<(String, String), Arc<Counters>>;

/// Counters by receiver and integration kind, shared with the notifiers.
#[derive(Clone, Default)]
pub struct StatsRegistry {
    inner: Arc<Mutex<CounterMap>>,
}

impl StatsRegistry {
    fn counters(&self, receiver: &str, integration: &str) -> Arc<Counters> {
        let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry((receiver.to_string(), integration.to_string()))
            .or_default()
            .clone()
    }

    /// Every receiver and kind built so far, sorted, with current counts.
    pub fn snapshot(&self) -> Vec<IntegrationStats> {
        let map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        map.iter()
            .map(|((receiver, integration), c)| IntegrationStats {
                receiver: receiver.clone(),
                integration: integration.clone(),
                stats: load(c),
            })
            .collect()
    }

    pub fn get(&self, receiver: &str, integration: &str) -> Option<DeliveryStats> {
        let map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(&(receiver.to_string(), integration.to_string()))
            .map(|c| load(c))
    }
}

fn load(c: &Counters) -> DeliveryStats {
    DeliveryStats {
        sent: c.sent.load(Ordering::Relaxed),
        failed: c.failed.load(Ordering::Relaxed),
        retried: c.retried.load(Ordering::Relaxed),
        dropped: c.dropped.load(Ordering::Relaxed),
        rate_limited_waits: c.rate_limited_waits.load(Ordering::Relaxed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bucket_spaces_messages_and_never_drops() {
        let limiter = RateLimiter::new(&RateLimitConfig {
            per_minute: 20,
            burst: 1,
        });
        let t0 = Instant::now();
        assert!(!limiter.acquire().await);
        assert!(limiter.acquire().await);
        assert_eq!(Instant::now() - t0, Duration::from_secs(3));
        assert!(limiter.acquire().await);
        assert_eq!(Instant::now() - t0, Duration::from_secs(6));
    }

    #[tokio::test(start_paused = true)]
    async fn bucket_burst_and_hold() {
        let limiter = RateLimiter::new(&RateLimitConfig {
            per_minute: 60,
            burst: 3,
        });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(!limiter.acquire().await);
        }
        assert!(limiter.acquire().await);
        assert_eq!(Instant::now() - t0, Duration::from_secs(1));
        limiter.hold_until(Instant::now() + Duration::from_secs(10));
        let t1 = Instant::now();
        assert!(limiter.acquire().await);
        assert_eq!(Instant::now() - t1, Duration::from_secs(10));
    }
}
