//! The watch of this node's pods (`spec.nodeName=<node>`): every event is
//! turned into a [`PodRecord`] at once, so the agent holds a few hundred
//! bytes a pod rather than the API objects.
//!
//! A failed watch is dropped and started again after a jittered backoff, so
//! it always resumes with a full list: `lookout_agent_kube_watch_up` is 1
//! only from a completed list on, and the pods the list no longer returns
//! are removed. A node's pods are at most a few hundred, so the list is
//! cheap; kube's own resume from a resourceVersion would come back without
//! any event to tell that the watch is current again.

use std::path::PathBuf;
use std::sync::Arc;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::watcher;
use lookout_protocol::{Family, MetricKind};
use tokio_util::sync::CancellationToken;

use super::pods::{NodePods, PodRecord};
use crate::registry::{Problems, Registry, error_chain};
use crate::shipper::Jitter;

/// The registry entry of the watch's own series.
pub const NAME: &str = "kube_pods";

/// What the watch needs to run.
pub struct PodWatch {
    /// `None`: in-cluster credentials, `$KUBECONFIG` or `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// This node's name as Kubernetes knows it.
    pub node: String,
    pub pods: NodePods,
    pub registry: Arc<Registry>,
}

#[derive(Default)]
struct Stats {
    up: bool,
    restarts: u64,
    events: u64,
}

/// Why one run of the watch ended.
enum Ended {
    Cancelled,
    Failed(String),
}

impl PodWatch {
    /// Runs until cancelled.
    pub async fn follow(self, cancel: CancellationToken) {
        let mut stats = Stats::default();
        let mut problems = Problems::default();
        let mut jitter = Jitter::seeded();
        let mut failures = 0u32;
        let mut client: Option<(kube::Client, String)> = None;
        loop {
            self.publish(&stats);
            let (kube_client, server) = match &client {
                Some(c) => c.clone(),
                None => {
                    let built = tokio::select! {
                        _ = cancel.cancelled() => return,
                        c = super::client(self.kubeconfig.as_deref(), "kubernetes.kubeconfig") => c,
                    };
                    match built {
                        Ok(c) => {
                            tracing::info!(
                                sampler = NAME,
                                "watching the pods of node {} through {}",
                                self.node,
                                c.1
                            );
                            client = Some(c.clone());
                            c
                        }
                        Err(e) => {
                            problems.report(
                                NAME,
                                "watch",
                                &format!(
                                    "cannot watch the pods of node {}: {e:#}; retrying",
                                    self.node
                                ),
                            );
                            failures += 1;
                            if !pause(&mut jitter, failures, &cancel).await {
                                return;
                            }
                            continue;
                        }
                    }
                }
            };
            match self
                .watch(kube_client, &server, &mut stats, &mut problems, &cancel)
                .await
            {
                Ended::Cancelled => return,
                Ended::Failed(why) => {
                    if stats.up {
                        stats.restarts += 1;
                        failures = 0;
                    }
                    failures += 1;
                    stats.up = false;
                    self.publish(&stats);
                    problems.report(
                        NAME,
                        "watch",
                        &format!(
                            "the watch of node {}'s pods through {server} failed: {why}; \
                             listing again after a backoff (pods known: {})",
                            self.node,
                            self.pods.read().len()
                        ),
                    );
                    if !pause(&mut jitter, failures, &cancel).await {
                        return;
                    }
                }
            }
        }
    }

    /// One watch, from its list to its first error.
    async fn watch(
        &self,
        client: kube::Client,
        server: &str,
        stats: &mut Stats,
        problems: &mut Problems,
        cancel: &CancellationToken,
    ) -> Ended {
        let config = watcher::Config::default().fields(&format!("spec.nodeName={}", self.node));
        let stream = watcher(Api::<Pod>::all(client), config);
        let mut stream = std::pin::pin!(stream);
        loop {
            let next = tokio::select! {
                _ = cancel.cancelled() => return Ended::Cancelled,
                next = stream.next() => next,
            };
            let event = match next {
                Some(Ok(event)) => event,
                Some(Err(e)) => return Ended::Failed(format!("{}{}", error_chain(&e), hint(&e))),
                None => return Ended::Failed("the watch stream ended".to_string()),
            };
            match event {
                watcher::Event::Init => self.pods.write().begin_relist(),
                watcher::Event::InitApply(pod) | watcher::Event::Apply(pod) => {
                    stats.events += 1;
                    if let Some(record) = PodRecord::from_pod(&pod) {
                        self.pods.write().apply(record);
                    }
                }
                watcher::Event::Delete(pod) => {
                    stats.events += 1;
                    let meta = &pod.metadata;
                    if let (Some(ns), Some(name)) = (&meta.namespace, &meta.name) {
                        self.pods.write().delete(ns, name);
                    }
                }
                watcher::Event::InitDone => {
                    let (known, gone) = {
                        let mut pods = self.pods.write();
                        let gone = pods.end_relist();
                        (pods.len(), gone)
                    };
                    stats.up = true;
                    let listed =
                        format!("listed {known} pods of node {} through {server}", self.node);
                    let listed = if gone > 0 {
                        format!("{listed}; {gone} known before are gone")
                    } else {
                        listed
                    };
                    if problems.is_active(NAME, "watch") {
                        problems.clear(
                            NAME,
                            "watch",
                            &format!("the watch is current again: {listed}"),
                        );
                    } else {
                        tracing::info!(sampler = NAME, "{listed}");
                    }
                }
            }
            self.publish(stats);
        }
    }

    fn publish(&self, stats: &Stats) {
        let known = self.pods.read().len();
        self.registry.publish(
            NAME,
            vec![
                Family::single(
                    "lookout_agent_kube_watch_up",
                    "1 while the watch of this node's pods is current (listed, and watching since).",
                    MetricKind::Gauge,
                    if stats.up { 1.0 } else { 0.0 },
                ),
                Family::single(
                    "lookout_agent_kube_pods",
                    "Pods of this node the watch knows.",
                    MetricKind::Gauge,
                    known as f64,
                ),
                Family::single(
                    "lookout_agent_kube_watch_restarts_total",
                    "Times a current watch of this node's pods was lost (it then lists again).",
                    MetricKind::Counter,
                    stats.restarts as f64,
                ),
                Family::single(
                    "lookout_agent_kube_watch_events_total",
                    "Pod additions, changes and deletions received, listed ones included.",
                    MetricKind::Counter,
                    stats.events as f64,
                ),
            ],
        );
    }
}

/// Waits out a backoff; false when cancelled meanwhile.
async fn pause(jitter: &mut Jitter, failures: u32, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => false,
        _ = tokio::time::sleep(jitter.backoff(failures)) => true,
    }
}

/// What an operator should check, for the answers that have one cause.
fn hint(e: &watcher::Error) -> &'static str {
    let code = match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s))
        | watcher::Error::WatchError(s) => s.code,
        _ => 0,
    };
    match code {
        401 => " (the API server does not accept the credentials)",
        403 => " (the credentials need get, list and watch on pods)",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(code: u16) -> watcher::Error {
        let status = kube::core::Status {
            code,
            ..kube::core::Status::failure("pods is forbidden", "Forbidden")
        };
        watcher::Error::InitialListFailed(kube::Error::Api(Box::new(status)))
    }

    #[test]
    fn refusals_say_what_to_check() {
        assert!(hint(&refused(403)).contains("get, list and watch on pods"));
        assert!(hint(&refused(401)).contains("credentials"));
        assert_eq!(hint(&refused(500)), "");
        assert_eq!(hint(&watcher::Error::NoResourceVersion), "");
    }
}
