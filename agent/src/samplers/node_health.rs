//! Health of the node's Kubernetes components: kubelet's `/healthz` (port
//! 10248) and kube-proxy's `/healthz` (port 10256, whose `lastUpdated` tells
//! how long ago the proxy rules were last synced).
//!
//! A node without them (a plain Docker host) reports 0 and says why in the
//! log once, not every interval.

use std::time::{Duration, Instant, SystemTime};

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use lookout_protocol::{Family, Labels, MetricKind};

use crate::clock::parse_rfc3339;
use crate::registry::Problems;
use crate::schedule::{AsyncSampler, Output};

/// Health answers are a few bytes; anything past this is not a health answer.
const MAX_BODY: usize = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    Kubelet,
    KubeProxy,
}

impl Component {
    fn sampler_name(self) -> &'static str {
        match self {
            Component::Kubelet => "kubelet",
            Component::KubeProxy => "kube_proxy",
        }
    }
    fn metric_prefix(self) -> &'static str {
        match self {
            Component::Kubelet => "lookout_kubelet_healthz",
            Component::KubeProxy => "lookout_kube_proxy_healthz",
        }
    }
    fn what(self) -> &'static str {
        match self {
            Component::Kubelet => "kubelet",
            Component::KubeProxy => "kube-proxy",
        }
    }
}

pub struct HealthProbe {
    component: Component,
    url: hyper::Uri,
    client: Client<HttpConnector, Empty<Bytes>>,
    problems: Problems,
}

/// The outcome of one probe.
#[derive(Debug, PartialEq)]
pub struct Probe {
    pub healthy: bool,
    pub duration: Duration,
    /// kube-proxy only: seconds since the last successful rules sync.
    pub sync_age_seconds: Option<f64>,
    pub problem: Option<String>,
}

impl HealthProbe {
    pub fn new(component: Component, url: &str, timeout: Duration) -> anyhow::Result<HealthProbe> {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        Ok(HealthProbe {
            component,
            url: url.parse()?,
            client: Client::builder(TokioExecutor::new()).build(connector),
            problems: Problems::default(),
        })
    }

    pub async fn probe(&self) -> Probe {
        let started = Instant::now();
        let result = async {
            let resp = self
                .client
                .get(self.url.clone())
                .await
                .map_err(|e| crate::registry::error_chain(&e))?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| format!("reading the answer failed: {e}"))?
                .to_bytes();
            Ok::<_, String>((status, body))
        }
        .await;
        let duration = started.elapsed();
        match result {
            Err(problem) => Probe {
                healthy: false,
                duration,
                sync_age_seconds: None,
                problem: Some(problem),
            },
            Ok((status, body)) => {
                let text = String::from_utf8_lossy(&body);
                let sync_age_seconds = match self.component {
                    Component::KubeProxy => kube_proxy_sync_age(&text),
                    Component::Kubelet => None,
                };
                let healthy = status.is_success();
                let problem = (!healthy).then(|| {
                    format!(
                        "answered HTTP {status}: {}",
                        text.trim().chars().take(200).collect::<String>()
                    )
                });
                Probe {
                    healthy,
                    duration,
                    sync_age_seconds,
                    problem,
                }
            }
        }
    }
}

/// kube-proxy answers `{"lastUpdated": "...", "currentTime": "...", ...}`;
/// the age is measured on its own clock.
pub fn kube_proxy_sync_age(body: &str) -> Option<f64> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let last = parse_rfc3339(v.get("lastUpdated")?.as_str()?)?;
    let now = parse_rfc3339(v.get("currentTime")?.as_str()?)?;
    Some((now - last).max(0.0))
}

impl AsyncSampler for HealthProbe {
    fn name(&self) -> &'static str {
        self.component.sampler_name()
    }

    async fn sample(&mut self, _now: SystemTime) -> anyhow::Result<Output> {
        let p = self.probe().await;
        let name = self.component.sampler_name();
        match &p.problem {
            Some(problem) => self.problems.report(
                name,
                "down",
                &format!(
                    "{} health endpoint {} {problem}; {}_up is 0",
                    self.component.what(),
                    self.url,
                    self.component.metric_prefix()
                ),
            ),
            None => self.problems.clear(
                name,
                "down",
                &format!(
                    "{} health endpoint {} is healthy",
                    self.component.what(),
                    self.url
                ),
            ),
        }
        let prefix = self.component.metric_prefix();
        let labels = Labels::from_pairs([("url", self.url.to_string())]);
        let mut up = Family::gauge(
            format!("{prefix}_up"),
            format!(
                "1 if {} answered its health check with success.",
                self.component.what()
            ),
        );
        up.push(labels.clone(), if p.healthy { 1.0 } else { 0.0 });
        let mut duration = Family::gauge(
            format!("{prefix}_duration_seconds"),
            format!("How long the {} health check took.", self.component.what()),
        );
        duration.push(labels.clone(), p.duration.as_secs_f64());
        let mut out = vec![up, duration];
        if self.component == Component::KubeProxy
            && let Some(age) = p.sync_age_seconds
        {
            let mut f = Family::new(
                "lookout_kube_proxy_sync_age_seconds",
                "Seconds since kube-proxy last synced its rules (currentTime - lastUpdated of its /healthz).",
                MetricKind::Gauge,
            );
            f.push(labels, age);
            out.push(f);
        }
        Ok(Output::new(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_age_from_kube_proxy_answer() {
        let body = r#"{"lastUpdated": "2024-05-01T10:00:00.5Z","currentTime": "2024-05-01T10:00:12.5Z", "nodeEligible": true}"#;
        assert_eq!(kube_proxy_sync_age(body), Some(12.0));
        assert_eq!(kube_proxy_sync_age("ok"), None);
        assert_eq!(
            kube_proxy_sync_age(
                r#"{"lastUpdated": "0001-01-01T00:00:00Z","currentTime": "2024-05-01T10:00:12Z"}"#
            ),
            None
        );
    }
}
