//! Runs samplers: each on its own interval with its own timeout, so a hung
//! filesystem or Docker daemon never stalls the others.
//!
//! Blocking samplers (files under `/proc`, `/sys`, cgroups) run on tokio's
//! blocking pool. When a run outlives its timeout, its thread cannot be
//! cancelled; the run is parked, the sampler's later turns are skipped (and
//! counted) until it returns, so a stuck read costs one thread, not one per
//! interval. Async samplers (HTTP, Docker) are simply dropped at the timeout.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use lookout_protocol::Family;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::config::Schedule;
use crate::procfs::thread_cpu_time;
use crate::registry::{Problems, Registry};

/// What one sampler run produced.
#[derive(Debug, Default)]
pub struct Output {
    pub families: Vec<Family>,
    /// Parts of the run that failed while the rest succeeded (one disk's
    /// statistics unreadable, say); they are counted as errors and have
    /// already been logged by the sampler.
    pub partial_failures: usize,
}

impl Output {
    pub fn new(families: Vec<Family>) -> Output {
        Output {
            families,
            partial_failures: 0,
        }
    }

    pub fn series(&self) -> usize {
        self.families.iter().map(|f| f.samples.len()).sum()
    }
}

/// A sampler whose work is blocking system calls.
pub trait BlockingSampler: Send + 'static {
    fn name(&self) -> &'static str;
    fn sample(&mut self, now: SystemTime) -> anyhow::Result<Output>;
}

/// A sampler whose work is network I/O.
pub trait AsyncSampler: Send + 'static {
    fn name(&self) -> &'static str;
    fn sample(&mut self, now: SystemTime) -> impl Future<Output = anyhow::Result<Output>> + Send;
}

/// How one turn of a sampler ended.
pub enum Turn {
    Done {
        result: anyhow::Result<Output>,
        cpu: Duration,
    },
    TimedOut,
    /// The previous run is still parked.
    Skipped,
    /// The sampler panicked; it is gone until the next reload.
    Lost(String),
}

/// One sampler, driven turn by turn.
pub trait Driven: Send {
    fn name(&self) -> &'static str;
    fn turn(
        &mut self,
        now: SystemTime,
        timeout: Duration,
    ) -> Pin<Box<dyn Future<Output = Turn> + Send + '_>>;
}

/// Drives a [`BlockingSampler`] on the blocking pool.
pub struct Blocking<S: BlockingSampler> {
    name: &'static str,
    idle: Option<S>,
    parked: Option<JoinHandle<(S, anyhow::Result<Output>, Duration)>>,
}

impl<S: BlockingSampler> Blocking<S> {
    pub fn new(sampler: S) -> Self {
        Blocking {
            name: sampler.name(),
            idle: Some(sampler),
            parked: None,
        }
    }
}

impl<S: BlockingSampler> Driven for Blocking<S> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn turn(
        &mut self,
        now: SystemTime,
        timeout: Duration,
    ) -> Pin<Box<dyn Future<Output = Turn> + Send + '_>> {
        Box::pin(async move {
            let sampler = match self.idle.take() {
                Some(s) => s,
                None => match self.parked.take() {
                    Some(h) if h.is_finished() => match h.await {
                        // The late result is stale by now; only the sampler is kept.
                        Ok((s, _, _)) => s,
                        Err(e) => return Turn::Lost(e.to_string()),
                    },
                    Some(h) => {
                        self.parked = Some(h);
                        return Turn::Skipped;
                    }
                    None => return Turn::Lost("sampler is gone".to_string()),
                },
            };
            let mut handle = tokio::task::spawn_blocking(move || {
                let mut sampler = sampler;
                let cpu0 = thread_cpu_time();
                let result = sampler.sample(now);
                (sampler, result, thread_cpu_time().saturating_sub(cpu0))
            });
            match tokio::time::timeout(timeout, &mut handle).await {
                Ok(Ok((sampler, result, cpu))) => {
                    self.idle = Some(sampler);
                    Turn::Done { result, cpu }
                }
                Ok(Err(e)) => Turn::Lost(e.to_string()),
                Err(_) => {
                    self.parked = Some(handle);
                    Turn::TimedOut
                }
            }
        })
    }
}

/// Drives an [`AsyncSampler`]; its CPU time is measured poll by poll.
pub struct Async<S: AsyncSampler> {
    sampler: S,
}

impl<S: AsyncSampler> Async<S> {
    pub fn new(sampler: S) -> Self {
        Async { sampler }
    }
}

impl<S: AsyncSampler> Driven for Async<S> {
    fn name(&self) -> &'static str {
        self.sampler.name()
    }

    fn turn(
        &mut self,
        now: SystemTime,
        timeout: Duration,
    ) -> Pin<Box<dyn Future<Output = Turn> + Send + '_>> {
        Box::pin(async move {
            let mut metered = CpuMetered {
                inner: Box::pin(self.sampler.sample(now)),
                cpu: Duration::ZERO,
            };
            match tokio::time::timeout(timeout, &mut metered).await {
                Ok(result) => Turn::Done {
                    result,
                    cpu: metered.cpu,
                },
                Err(_) => Turn::TimedOut,
            }
        })
    }
}

/// Adds up the thread CPU time spent inside each poll of a future.
struct CpuMetered<F> {
    inner: Pin<Box<F>>,
    cpu: Duration,
}

impl<F: Future> Future for CpuMetered<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let start = thread_cpu_time();
        let out = self.inner.as_mut().poll(cx);
        let spent = thread_cpu_time().saturating_sub(start);
        self.cpu += spent;
        out
    }
}

/// Runs one turn and records its outcome in the registry. Returns false when
/// the sampler is lost.
pub async fn run_turn(
    driven: &mut dyn Driven,
    schedule: Schedule,
    registry: &Registry,
    problems: &mut Problems,
) -> bool {
    let name = driven.name();
    let now = registry.clock().now();
    let started = Instant::now();
    let turn = driven.turn(now, schedule.timeout).await;
    let elapsed = started.elapsed();
    match turn {
        Turn::Done {
            result: Ok(out),
            cpu,
        } => {
            problems.clear(name, "run", &format!("sampler {name} works again"));
            problems.clear(
                name,
                "timeout",
                &format!("sampler {name} answers in time again"),
            );
            let series = out.series();
            let partial = out.partial_failures as u64;
            registry.publish_at(name, out.families, crate::clock::unix_millis(now));
            registry.update_stats(name, |s| {
                s.runs += 1;
                s.errors += partial;
                s.cpu_seconds += cpu.as_secs_f64();
                s.last_duration = elapsed;
                s.success = true;
                s.last_success_unix = crate::clock::unix_seconds(now);
                s.series = series;
            });
        }
        Turn::Done {
            result: Err(e),
            cpu,
        } => {
            problems.report(name, "run", &format!("sampler {name} failed: {e:#}"));
            registry.withdraw(name);
            registry.update_stats(name, |s| {
                s.runs += 1;
                s.errors += 1;
                s.cpu_seconds += cpu.as_secs_f64();
                s.last_duration = elapsed;
                s.success = false;
                s.series = 0;
            });
        }
        Turn::TimedOut => {
            problems.report(
                name,
                "timeout",
                &format!(
                    "sampler {name} did not finish within {}; its series are withdrawn until it does",
                    humantime::format_duration(schedule.timeout)
                ),
            );
            registry.withdraw(name);
            registry.update_stats(name, |s| {
                s.runs += 1;
                s.timeouts += 1;
                s.last_duration = elapsed;
                s.success = false;
                s.series = 0;
            });
        }
        Turn::Skipped => {
            registry.update_stats(name, |s| s.skipped += 1);
        }
        Turn::Lost(why) => {
            tracing::error!(
                sampler = name,
                "sampler crashed and is stopped until the next reload: {why}"
            );
            registry.withdraw(name);
            registry.update_stats(name, |s| {
                s.errors += 1;
                s.success = false;
            });
            return false;
        }
    }
    true
}

/// Runs a sampler every `schedule.interval` until cancelled.
pub async fn run_forever(
    mut driven: Box<dyn Driven>,
    schedule: Schedule,
    registry: Arc<Registry>,
    cancel: CancellationToken,
) {
    let mut ticker = tokio::time::interval(schedule.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut problems = Problems::default();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let alive = tokio::select! {
            _ = cancel.cancelled() => return,
            alive = run_turn(driven.as_mut(), schedule, &registry, &mut problems) => alive,
        };
        if !alive {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lookout_protocol::MetricKind;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Sleepy {
        calls: Arc<AtomicUsize>,
        sleep: Duration,
    }

    impl BlockingSampler for Sleepy {
        fn name(&self) -> &'static str {
            "sleepy"
        }
        fn sample(&mut self, _now: SystemTime) -> anyhow::Result<Output> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            if n == 0 {
                std::thread::sleep(self.sleep);
            }
            Ok(Output::new(vec![Family::single(
                "x",
                "x",
                MetricKind::Gauge,
                n as f64,
            )]))
        }
    }

    fn schedule(ms: u64) -> Schedule {
        Schedule {
            interval: Duration::from_millis(ms * 4),
            timeout: Duration::from_millis(ms),
        }
    }

    #[tokio::test]
    async fn a_hung_blocking_run_is_parked_and_skipped_not_repeated() {
        let registry = Registry::new(crate::clock::system());
        let calls = Arc::new(AtomicUsize::new(0));
        let mut d = Blocking::new(Sleepy {
            calls: calls.clone(),
            sleep: Duration::from_millis(300),
        });
        let mut p = Problems::default();
        assert!(run_turn(&mut d, schedule(50), &registry, &mut p).await);
        let s = registry.stats("sleepy").unwrap();
        assert_eq!((s.timeouts, s.success), (1, false));
        assert!(registry.snapshot("sleepy").is_none());
        // Still stuck: skipped, and no second thread started.
        assert!(run_turn(&mut d, schedule(50), &registry, &mut p).await);
        assert_eq!(registry.stats("sleepy").unwrap().skipped, 1);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(350)).await;
        // Returned: the sampler is taken back and runs normally.
        assert!(run_turn(&mut d, schedule(50), &registry, &mut p).await);
        let s = registry.stats("sleepy").unwrap();
        assert!(s.success);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(
            registry.snapshot("sleepy").unwrap()[0].samples[0].value,
            1.0
        );
    }

    struct Hangs;
    impl AsyncSampler for Hangs {
        fn name(&self) -> &'static str {
            "hangs"
        }
        async fn sample(&mut self, _now: SystemTime) -> anyhow::Result<Output> {
            std::future::pending::<()>().await;
            unreachable!()
        }
    }

    #[tokio::test]
    async fn an_async_sampler_is_cut_off_at_its_timeout() {
        let registry = Registry::new(crate::clock::system());
        let mut d = Async::new(Hangs);
        let mut p = Problems::default();
        let t = Instant::now();
        assert!(run_turn(&mut d, schedule(30), &registry, &mut p).await);
        assert!(t.elapsed() < Duration::from_secs(1));
        assert_eq!(registry.stats("hangs").unwrap().timeouts, 1);
    }
}
