//! Wires the agent together: builds the samplers a config asks for, runs
//! them next to the HTTP endpoint, reloads on SIGHUP (keeping counters and
//! the endpoint), and stops cleanly on SIGTERM.

use std::path::PathBuf;
use std::sync::Arc;

use lookout_protocol::exposition::Format;
use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::config::{Config, Schedule};
use crate::expose::Server;
use crate::kube::pods::NodePods;
use crate::kube::watch::{self as pod_watch, PodWatch};
use crate::registry::{Problems, Registry};
use crate::samplers::containers::{self, ContainerSampler};
use crate::samplers::docker::data_usage::{self, DataUsageSampler};
use crate::samplers::docker::{self, Dirty, DockerSampler, events};
use crate::samplers::host::{self, HostSampler};
use crate::samplers::inventory::Inventory;
use crate::samplers::kubelet_summary::SummarySampler;
use crate::samplers::node_health::{Component, HealthProbe};
use crate::schedule::{Async, Blocking, Driven, run_forever, run_turn};

/// State that outlives reloads.
pub struct Agent {
    pub registry: Arc<Registry>,
    inventory: Inventory,
    dirty: Dirty,
}

/// The samplers of one config, running.
pub struct Running {
    cancel: CancellationToken,
    tasks: JoinSet<()>,
}

impl Running {
    pub async fn stop(mut self) {
        self.cancel.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

impl Agent {
    pub fn new(clock: SharedClock) -> Agent {
        Agent {
            registry: Arc::new(Registry::new(clock)),
            inventory: Inventory::default(),
            dirty: Dirty::default(),
        }
    }

    /// The configured samplers, in the order `--once` runs them (Docker
    /// before containers, so container series carry names). `pods` are the
    /// pod watch's, when it runs.
    fn build(
        &self,
        cfg: &Config,
        pods: Option<&NodePods>,
    ) -> anyhow::Result<Vec<(Box<dyn Driven>, Schedule)>> {
        let s = &cfg.samplers;
        let mut out: Vec<(Box<dyn Driven>, Schedule)> = Vec::new();
        if s.host.enabled {
            out.push((
                Box::new(Blocking::new(HostSampler::new(
                    s.host.clone(),
                    cfg.paths.clone(),
                )?)),
                s.host.schedule(),
            ));
        }
        if s.docker.enabled {
            let sampler = DockerSampler::new(
                s.docker.clone(),
                cfg.paths.clone(),
                self.inventory.clone(),
                self.dirty.clone(),
                s.containers.docker_labels.clone(),
            );
            out.push((Box::new(Async::new(sampler)), s.docker.schedule()));
            out.push((
                Box::new(Async::new(DataUsageSampler::new(&s.docker))),
                Schedule {
                    interval: s.docker.data_usage_interval,
                    timeout: s.docker.data_usage_timeout,
                },
            ));
        }
        if s.containers.enabled {
            let sampler = ContainerSampler::new(
                s.containers.clone(),
                cfg.paths.clone(),
                self.inventory.clone(),
            );
            out.push((Box::new(Blocking::new(sampler)), s.containers.schedule()));
        }
        if s.kubelet.enabled {
            out.push((
                Box::new(Async::new(HealthProbe::new(
                    Component::Kubelet,
                    &s.kubelet.url,
                    s.kubelet.timeout,
                )?)),
                s.kubelet.schedule(),
            ));
        }
        if s.kube_proxy.enabled {
            out.push((
                Box::new(Async::new(HealthProbe::new(
                    Component::KubeProxy,
                    &s.kube_proxy.url,
                    s.kube_proxy.timeout,
                )?)),
                s.kube_proxy.schedule(),
            ));
        }
        if s.kubelet_summary.enabled {
            out.push((
                Box::new(Async::new(SummarySampler::new(
                    &s.kubelet_summary,
                    pods.cloned(),
                )?)),
                s.kubelet_summary.schedule(),
            ));
        }
        Ok(out)
    }

    /// Starts every configured sampler on its own schedule.
    pub fn start(&self, cfg: &Config) -> anyhow::Result<Running> {
        let cancel = CancellationToken::new();
        let mut tasks = JoinSet::new();
        // A new set per start: a reload lists the pods again, perhaps of
        // another node name.
        let pods = cfg.kubernetes.enabled.then(NodePods::default);
        let built = self.build(cfg, pods.as_ref())?;
        let mut names: Vec<&'static str> = built.iter().map(|(d, _)| d.name()).collect();
        if let Some(pods) = pods {
            let node = cfg
                .kubernetes_node_name()
                .map_err(|why| anyhow::anyhow!("node_name: {why}"))?;
            names.push(pod_watch::NAME);
            let watch = PodWatch {
                kubeconfig: cfg.kubernetes.kubeconfig.clone(),
                node,
                pods,
                registry: self.registry.clone(),
            };
            tasks.spawn(watch.follow(cancel.child_token()));
        }
        for (driven, schedule) in built {
            tasks.spawn(run_forever(
                driven,
                schedule,
                self.registry.clone(),
                cancel.child_token(),
            ));
        }
        if cfg.samplers.docker.enabled && cfg.samplers.docker.events {
            names.push(events::NAME);
            tasks.spawn(events::follow(
                cfg.samplers.docker.socket_path().to_string(),
                self.registry.clone(),
                self.dirty.clone(),
                cancel.child_token(),
            ));
            tasks.spawn(prune_event_series(
                self.registry.clone(),
                self.inventory.clone(),
                cancel.child_token(),
            ));
        }
        if !cfg.push.endpoints.is_empty() {
            names.push(crate::shipper::NAME);
            crate::shipper::start(
                &cfg.push,
                &cfg.node_name(),
                self.registry.clone(),
                cancel.child_token(),
                &mut tasks,
            )?;
        }
        self.registry.retain_samplers(&names);
        Ok(Running { cancel, tasks })
    }

    /// Runs every configured sampler once, in order, and renders the result.
    pub async fn sample_once(&self, cfg: &Config, format: Format) -> anyhow::Result<String> {
        let mut problems = Problems::default();
        for (mut driven, schedule) in self.build(cfg, None)? {
            run_turn(driven.as_mut(), schedule, &self.registry, &mut problems).await;
        }
        Ok(self.registry.render(format))
    }
}

/// Event counters of containers that no longer exist are dropped after an
/// hour without events, so churn does not grow the agent without bound but a
/// scraper still sees the last increments of a removed container.
async fn prune_event_series(
    registry: Arc<Registry>,
    inventory: Inventory,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(300));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        registry.prune_counters(
            events::EVENTS_METRIC,
            std::time::Duration::from_secs(3600),
            |labels| {
                labels
                    .get("name")
                    .is_some_and(|n| inventory.contains_name(n))
            },
        );
    }
}

/// How the agent was asked to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The file to (re)load on SIGHUP; `None` runs on `initial` only.
    pub config_path: Option<PathBuf>,
    pub initial: Config,
    /// Applied over every loaded config (command-line flags).
    pub listen_override: Option<String>,
    /// An endpoint pushed to whatever the config says, with its outbox
    /// directory (`lookout up` points its embedded agent at its collector).
    pub push_override: Option<(crate::config::EndpointConfig, PathBuf)>,
    /// Who is running the agent, for the start-up message.
    pub role: &'static str,
}

fn apply_overrides(mut cfg: Config, opts: &RunOptions) -> Config {
    if let Some(l) = &opts.listen_override {
        cfg.listen = l.clone();
    }
    if let Some((endpoint, outbox)) = &opts.push_override {
        if !cfg.push.endpoints.iter().any(|e| e.url == endpoint.url) {
            cfg.push.endpoints.push(endpoint.clone());
        }
        cfg.push.outbox_dir = outbox.clone();
    }
    cfg
}

/// What the agent watches, in one line for the log and systemd's status.
pub fn describe(cfg: &Config) -> String {
    let s = &cfg.samplers;
    let every = |d: std::time::Duration| humantime::format_duration(d).to_string();
    let mut parts = Vec::new();
    if s.host.enabled {
        parts.push(format!("host every {}", every(s.host.interval)));
    }
    if s.containers.enabled {
        parts.push(format!(
            "containers ({}) every {}",
            containers::describe_layout(&cfg.paths),
            every(s.containers.interval)
        ));
    }
    if s.docker.enabled {
        parts.push(format!(
            "docker ({}) every {}, data usage every {}{}",
            s.docker.endpoint,
            every(s.docker.interval),
            every(s.docker.data_usage_interval),
            if s.docker.events {
                ", events as they happen"
            } else {
                ""
            }
        ));
    }
    if s.kubelet.enabled {
        parts.push(format!("kubelet {}", s.kubelet.url));
    }
    if s.kube_proxy.enabled {
        parts.push(format!("kube-proxy {}", s.kube_proxy.url));
    }
    if s.kubelet_summary.enabled {
        parts.push(format!(
            "kubelet summary {} every {}",
            s.kubelet_summary.url,
            every(s.kubelet_summary.interval)
        ));
    }
    if cfg.kubernetes.enabled {
        parts.push(format!(
            "this node's pods from the Kubernetes API ({})",
            match &cfg.kubernetes.kubeconfig {
                Some(path) => format!("kubeconfig {}", path.display()),
                None => "in-cluster or $KUBECONFIG credentials".to_string(),
            }
        ));
    }
    let mut text = if parts.is_empty() {
        "nothing (every sampler is disabled)".to_string()
    } else {
        parts.join("; ")
    };
    if !cfg.push.endpoints.is_empty() {
        let urls: Vec<&str> = cfg.push.endpoints.iter().map(|e| e.url.as_str()).collect();
        text.push_str(&format!(
            "; pushing every {} to {} (outbox in {})",
            every(cfg.push.interval),
            urls.join(", "),
            cfg.push.outbox_dir.display()
        ));
    }
    text
}

/// Runs until SIGTERM or SIGINT; reloads on SIGHUP.
pub async fn run(agent: Agent, opts: RunOptions) -> anyhow::Result<()> {
    let mut cfg = apply_overrides(opts.initial.clone(), &opts);
    let mut server = Server::bind(cfg.listen_addr(), agent.registry.clone()).await?;
    let mut running = agent.start(&cfg)?;
    let node = cfg.node_name();
    tracing::info!(
        "{} {} on node {node}: monitoring {}. Metrics at http://{}/metrics",
        opts.role,
        env!("CARGO_PKG_VERSION"),
        describe(&cfg),
        server.addr
    );
    let lifetime = CancellationToken::new();
    crate::systemd::spawn_watchdog(lifetime.clone());
    crate::systemd::ready(&format!("serving http://{}/metrics", server.addr));

    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: stopping"); break; }
            _ = int.recv() => { tracing::info!("SIGINT: stopping"); break; }
            _ = hup.recv() => {
                let Some(path) = &opts.config_path else {
                    tracing::info!("SIGHUP: no config file to reload (running on defaults)");
                    continue;
                };
                crate::systemd::reloading();
                match Config::load(path) {
                    Err(e) => tracing::error!("SIGHUP: keeping the running config; the new one is invalid: {e}"),
                    Ok(new) => {
                        let new = apply_overrides(new, &opts);
                        if new.listen != cfg.listen {
                            match Server::bind(new.listen_addr(), agent.registry.clone()).await {
                                Ok(s) => {
                                    let old = std::mem::replace(&mut server, s);
                                    old.stop().await;
                                }
                                Err(e) => {
                                    tracing::error!("SIGHUP: keeping the running config: {e}");
                                    crate::systemd::ready("reload failed; running the previous config");
                                    continue;
                                }
                            }
                        }
                        running.stop().await;
                        running = match agent.start(&new) {
                            Ok(r) => r,
                            Err(e) => {
                                tracing::error!("SIGHUP: cannot start the new samplers ({e:#}); restarting the previous ones");
                                agent.start(&cfg)?
                            }
                        };
                        if new != cfg {
                            tracing::info!("SIGHUP: reloaded {}: monitoring {}. Metrics at http://{}/metrics", path.display(), describe(&new), server.addr);
                        } else {
                            tracing::info!("SIGHUP: reloaded {} (unchanged)", path.display());
                        }
                        cfg = new;
                    }
                }
                crate::systemd::ready(&format!("serving http://{}/metrics", server.addr));
            }
        }
    }
    crate::systemd::stopping();
    lifetime.cancel();
    running.stop().await;
    server.stop().await;
    tracing::info!("stopped");
    Ok(())
}

pub use data_usage::NAME as DATA_USAGE_SAMPLER;
pub use docker::NAME as DOCKER_SAMPLER;
pub use host::NAME as HOST_SAMPLER;
