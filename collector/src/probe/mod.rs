//! Health probes of the cluster's components, written as `up{job,instance}`
//! with the jobs kube-prometheus's rules select on, and the detection of
//! the load-balancer incident.
//!
//! Each round probes every apiserver directly and through the balancer,
//! the scheduler, controller-manager and etcd, and every node's kubelet and
//! kube-proxy, then decides whether the balancer is at fault: many nodes
//! lost their heartbeat at once while the apiservers answer directly but
//! not through the balancer. That is one incident, named by the balancer,
//! and per-node alerts are held back while it lasts.
//!
//! Configured L7 routers are probed too (`routers`): their health, and
//! their route table compared with the services' ready endpoints.

pub mod health;
pub mod http;
pub mod routers;

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::kube::config::KubeConfig;
use crate::kube::series::{LastWritten, SeriesOut};
use crate::kube::watch::Shared;
use crate::serve::App;
use http::{Answer, ProbeClient};

#[derive(Clone, Debug, PartialEq)]
enum Target {
    Apiserver(String),
    Balancer(String),
    Component {
        job: &'static str,
        url: String,
    },
    Etcd(String),
    Kubelet {
        node: String,
        ip: String,
    },
    KubeProxy {
        node: String,
        ip: String,
    },
    /// Index into the prober's routers.
    Router(usize),
}

/// What one round found, for the incident decision.
#[derive(Default, Debug)]
struct RoundFacts {
    direct_up: usize,
    direct_total: usize,
    balancer_up: Option<bool>,
    /// (router index, its route table when read).
    routers: Vec<(usize, Option<routers::RouteTable>)>,
}

/// `host:port` of a URL, the `instance` of its series.
fn instance_of(url: &str) -> String {
    match url.parse::<hyper::Uri>() {
        Ok(u) => {
            let port = u.port_u16().unwrap_or(match u.scheme_str() {
                Some("https") => 443,
                _ => 80,
            });
            format!("{}:{port}", u.host().unwrap_or(""))
        }
        Err(_) => url.to_string(),
    }
}

fn scheme_of(url: &str) -> &'static str {
    if url.starts_with("http://") {
        "http"
    } else {
        "https"
    }
}

fn join(base: &str, path: &str) -> String {
    format!("{}{}", base.trim_end_matches('/'), path)
}

/// The incident's state across rounds.
#[derive(Default)]
pub struct IncidentState {
    active: bool,
    clear_since_ms: Option<i64>,
}

impl IncidentState {
    /// `starts`: the full condition holds now; `holds`: part of the cause
    /// remains (balancer still failing, or heartbeats still missing).
    /// Returns whether the incident is active.
    pub fn update(&mut self, now_ms: i64, starts: bool, holds: bool, hold_ms: i64) -> bool {
        if starts || (self.active && holds) {
            if !self.active {
                tracing::warn!(
                    "load-balancer incident: nodes lost their heartbeat while the apiservers answer directly but not through the balancer"
                );
            }
            self.active = true;
            self.clear_since_ms = None;
        } else if self.active {
            let since = *self.clear_since_ms.get_or_insert(now_ms);
            if now_ms - since >= hold_ms {
                self.active = false;
                self.clear_since_ms = None;
                tracing::info!("load-balancer incident over");
            }
        }
        self.active
    }
}

pub struct Prober {
    cfg: KubeConfig,
    client: ProbeClient,
    state: Shared,
    /// The balancer: configured, or the kubeconfig's server.
    balancer: Option<String>,
    last: LastWritten,
    incident: IncidentState,
    routers: Vec<routers::RouterProbe>,
}

impl Prober {
    pub fn new(
        cfg: &KubeConfig,
        state: Shared,
        kubeconfig_server: Option<String>,
    ) -> anyhow::Result<Prober> {
        let p = &cfg.probes;
        let client = ProbeClient::new(p.timeout, p.ca_file.as_deref(), p.insecure_skip_verify)?;
        let balancer = if p.balancer.is_empty() {
            kubeconfig_server
        } else {
            Some(p.balancer.clone())
        };
        let routers = p
            .routers
            .iter()
            .map(routers::RouterProbe::new)
            .collect::<anyhow::Result<Vec<_>>>()
            .context("kube.probes.routers")?;
        Ok(Prober {
            cfg: cfg.clone(),
            client,
            state,
            balancer,
            last: LastWritten::default(),
            incident: IncidentState::default(),
            routers,
        })
    }

    fn targets(&self) -> Vec<Target> {
        let p = &self.cfg.probes;
        let st = self.state.lock();
        let mut out = Vec::new();
        if p.apiservers.is_empty() {
            let scheme = self.balancer.as_deref().map(scheme_of).unwrap_or("https");
            out.extend(
                st.apiserver_endpoints()
                    .into_iter()
                    .map(|a| Target::Apiserver(format!("{scheme}://{a}"))),
            );
        } else {
            out.extend(p.apiservers.iter().cloned().map(Target::Apiserver));
        }
        if let Some(b) = &self.balancer {
            out.push(Target::Balancer(b.clone()));
        }
        for u in &p.scheduler {
            out.push(Target::Component {
                job: "kube-scheduler",
                url: u.clone(),
            });
        }
        for u in &p.controller_manager {
            out.push(Target::Component {
                job: "kube-controller-manager",
                url: u.clone(),
            });
        }
        out.extend(p.etcd.iter().cloned().map(Target::Etcd));
        if p.nodes {
            for n in st.nodes.values() {
                if n.internal_ip.is_empty() {
                    continue;
                }
                out.push(Target::Kubelet {
                    node: n.name.clone(),
                    ip: n.internal_ip.clone(),
                });
                out.push(Target::KubeProxy {
                    node: n.name.clone(),
                    ip: n.internal_ip.clone(),
                });
            }
        }
        out.extend((0..self.routers.len()).map(Target::Router));
        out
    }

    /// Probes one target; returns its series (by job) and facts.
    async fn probe(&self, t: Target, now_ms: i64) -> (Vec<SeriesOut>, RoundFacts) {
        let p = &self.cfg.probes;
        let started = Instant::now();
        let mut facts = RoundFacts::default();
        let mut outs = Vec::new();
        match t {
            Target::Apiserver(url) => {
                let instance = instance_of(&url);
                let mut o = SeriesOut::new(now_ms, "apiserver");
                let ready = self.client.get(&join(&url, "/readyz?verbose")).await;
                let up = matches!(ready, Answer::Http { status: 200, .. });
                facts.direct_total = 1;
                facts.direct_up = usize::from(up);
                o.push("up", &[("instance", &instance)], f64::from(u8::from(up)));
                checks(&mut o, &instance, "readyz", &ready);
                let live = self.client.get(&join(&url, "/livez?verbose")).await;
                checks(&mut o, &instance, "livez", &live);
                duration(&mut o, &instance, started);
                log_failure("apiserver", &instance, &ready);
                outs.push(o);
            }
            Target::Balancer(url) => {
                let balancer = instance_of(&url);
                let mut o = SeriesOut::new(now_ms, "lookout");
                let ready = self.client.get(&join(&url, "/readyz")).await;
                let up = matches!(ready, Answer::Http { status: 200, .. });
                facts.balancer_up = Some(up);
                o.push(
                    "lookout_apiserver_balancer_up",
                    &[("balancer", &balancer)],
                    f64::from(u8::from(up)),
                );
                outs.push(o);
            }
            Target::Component { job, url } => {
                let instance = instance_of(&url);
                let mut o = SeriesOut::new(now_ms, job);
                let a = self.client.get(&join(&url, "/healthz?verbose")).await;
                let up = matches!(a, Answer::Http { status: 200, .. });
                o.push("up", &[("instance", &instance)], f64::from(u8::from(up)));
                checks(&mut o, &instance, "healthz", &a);
                duration(&mut o, &instance, started);
                log_failure(job, &instance, &a);
                outs.push(o);
            }
            Target::Etcd(url) => {
                let instance = instance_of(&url);
                let mut o = SeriesOut::new(now_ms, "etcd");
                let a = self.client.get(&join(&url, "/health")).await;
                let up =
                    matches!(&a, Answer::Http { status: 200, body } if health::etcd_healthy(body));
                o.push("up", &[("instance", &instance)], f64::from(u8::from(up)));
                if let Answer::Http { status: 200, body } =
                    self.client.get(&join(&url, "/metrics")).await
                    && let Some(v) = health::etcd_has_leader(&body)
                {
                    o.push("etcd_server_has_leader", &[("instance", &instance)], v);
                }
                duration(&mut o, &instance, started);
                log_failure("etcd", &instance, &a);
                outs.push(o);
            }
            Target::Kubelet { node, ip } => {
                let mut o = SeriesOut::new(now_ms, "kubelet");
                let url = format!("http://{ip}:{}/healthz", p.kubelet_health_port);
                let a = self.client.get(&url).await;
                let up = matches!(&a, Answer::Http { status: 200, .. });
                // kube-prometheus selects the kubelet's `up` by its metrics
                // path; the instance is the kubelet's API port, as a scrape
                // of it would name it.
                o.push(
                    "up",
                    &[
                        ("instance", &format!("{ip}:10250")),
                        ("node", &node),
                        ("metrics_path", "/metrics"),
                    ],
                    f64::from(u8::from(up)),
                );
                outs.push(o);
            }
            Target::KubeProxy { node, ip } => {
                let mut o = SeriesOut::new(now_ms, "kube-proxy");
                let instance = format!("{ip}:{}", p.kube_proxy_health_port);
                let url = format!("http://{instance}/healthz");
                let a = self.client.get(&url).await;
                let (answered, healthy, age) = match &a {
                    Answer::Http { status, body } => {
                        let age = health::kube_proxy_sync_age(body);
                        (age.is_some() || *status == 200, *status == 200, age)
                    }
                    Answer::Failed(_) => (false, false, None),
                };
                let id = [("instance", instance.as_str()), ("node", node.as_str())];
                o.push("up", &id, f64::from(u8::from(answered)));
                o.push(
                    "lookout_kube_proxy_healthy",
                    &id,
                    f64::from(u8::from(healthy)),
                );
                if let Some(age) = age {
                    o.push("lookout_kube_proxy_sync_age_seconds", &id, age);
                }
                outs.push(o);
            }
            Target::Router(i) => {
                let Some(r) = self.routers.get(i) else {
                    return (outs, facts);
                };
                let mut o = SeriesOut::new(now_ms, "router");
                let (up, table) = tokio::join!(r.healthy(&self.client), r.read_table(&self.client));
                o.push(
                    "up",
                    &[("instance", &r.instance), ("router", &r.name)],
                    f64::from(u8::from(up)),
                );
                duration(&mut o, &r.instance, started);
                facts.routers.push((i, table));
                outs.push(o);
            }
        }
        (outs, facts)
    }

    /// One round: probe everything, decide the incident, write the series.
    pub async fn round(&mut self, app: &Arc<App>) {
        let now_ms = app.now_ms();
        let targets = self.targets();
        let this = &*self;
        let results: Vec<(Vec<SeriesOut>, RoundFacts)> = futures_util::stream::iter(targets)
            .map(|t| this.probe(t, now_ms))
            .buffer_unordered(self.cfg.probes.concurrency)
            .collect()
            .await;
        let mut series = Vec::new();
        let mut facts = RoundFacts::default();
        for (outs, f) in results {
            facts.direct_total += f.direct_total;
            facts.direct_up += f.direct_up;
            if f.balancer_up.is_some() {
                facts.balancer_up = f.balancer_up;
            }
            facts.routers.extend(f.routers);
            for mut o in outs {
                series.extend(o.take());
            }
        }
        let grace_ms = self.cfg.node_heartbeat_grace.as_millis() as i64;
        let (nodes, lost) = self.state.lock().heartbeat_summary(app.now_ms(), grace_ms);
        if let Some(balancer) = self.balancer.as_deref().map(instance_of) {
            let inc = &self.cfg.incident;
            let lost_share = if nodes == 0 {
                0.0
            } else {
                lost as f64 / nodes as f64
            };
            let many_lost = nodes >= inc.min_nodes && lost_share >= inc.lost_ratio;
            let balancer_down = facts.balancer_up == Some(false);
            let starts = many_lost && balancer_down && facts.direct_up > 0;
            let holds = many_lost || balancer_down;
            let active = self
                .incident
                .update(now_ms, starts, holds, inc.hold.as_millis() as i64);
            let mut o = SeriesOut::new(now_ms, "lookout");
            o.push(
                "lookout_cluster_incident",
                &[("kind", "apiserver_balancer"), ("balancer", &balancer)],
                f64::from(u8::from(active)),
            );
            series.extend(o.take());
        }
        if !self.routers.is_empty() {
            series.extend(self.router_series(now_ms, std::mem::take(&mut facts.routers)));
        }
        self.last.close_round(&mut series, now_ms);
        let app2 = app.clone();
        match tokio::task::spawn_blocking(move || app2.append_local(series)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!("cannot store probe results: {e}"),
            Err(e) => tracing::error!("probe write task failed: {e}"),
        }
    }

    /// The round's route-table series, compared with the cluster as the
    /// watchers see it now.
    fn router_series(
        &self,
        now_ms: i64,
        read: Vec<(usize, Option<routers::RouteTable>)>,
    ) -> Vec<lookout_protocol::remote_write::TimeSeries> {
        let mut tables: Vec<Option<routers::RouteTable>> = vec![None; self.routers.len()];
        for (i, t) in read {
            if let Some(slot) = tables.get_mut(i) {
                *slot = t;
            }
        }
        let view = tables
            .iter()
            .any(Option::is_some)
            .then(|| routers::ClusterView::from_state(&self.state.lock()));
        let mut o = SeriesOut::new(now_ms, "lookout");
        routers::write_round(&mut o, &self.routers, &tables, view.as_ref());
        o.take()
    }

    pub async fn run(mut self, app: Arc<App>, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(self.cfg.probes.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            self.round(&app).await;
        }
    }
}

fn checks(o: &mut SeriesOut, instance: &str, endpoint: &str, a: &Answer) {
    if let Answer::Http { body, .. } = a {
        for c in health::parse_checks(body) {
            o.push(
                "lookout_health_check",
                &[
                    ("instance", instance),
                    ("endpoint", endpoint),
                    ("check", &c.name),
                ],
                f64::from(u8::from(c.ok)),
            );
        }
    }
}

fn duration(o: &mut SeriesOut, instance: &str, started: Instant) {
    o.push(
        "lookout_probe_duration_seconds",
        &[("instance", instance)],
        started.elapsed().as_secs_f64(),
    );
}

fn log_failure(job: &str, instance: &str, a: &Answer) {
    match a {
        Answer::Http { status: 200, .. } => {}
        Answer::Http { status, .. } => {
            tracing::debug!(job, instance, status, "health probe failed")
        }
        Answer::Failed(e) => tracing::debug!(job, instance, "health probe failed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_incident_starts_on_the_full_condition_and_is_held_after_it_clears() {
        let mut s = IncidentState::default();
        assert!(
            !s.update(0, false, true, 10_000),
            "a part alone does not start it"
        );
        assert!(s.update(1_000, true, true, 10_000));
        assert!(
            s.update(2_000, false, true, 10_000),
            "held while part remains"
        );
        assert!(s.update(3_000, false, false, 10_000), "held after clearing");
        assert!(s.update(12_000, false, false, 10_000));
        assert!(
            !s.update(13_000, false, false, 10_000),
            "over after the hold"
        );
    }

    #[test]
    fn instances_are_host_and_port() {
        assert_eq!(instance_of("https://10.0.0.1:6443"), "10.0.0.1:6443");
        assert_eq!(instance_of("https://lb.example"), "lb.example:443");
        assert_eq!(instance_of("http://127.0.0.1:8080/"), "127.0.0.1:8080");
    }
}
