//! `lookout-kubesim`: runs the Kubernetes API simulator until interrupted.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use lookout_kubesim::{SimConfig, Simulator};

/// A Kubernetes API simulator for tests and benchmarks: apiservers behind a
/// balancer, nodes with leases, kubelet and kube-proxy endpoints, and a
/// control API for faults. Prints one JSON line with every address once
/// ready; logs go to stderr (RUST_LOG sets the level).
#[derive(Debug, Parser)]
#[command(name = "lookout-kubesim", version)]
struct Args {
    /// Simulated nodes (node-0001…); the first is the control plane.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Pods per node, the DaemonSet's included.
    #[arg(long, default_value_t = 5)]
    pods_per_node: usize,
    /// apiserver instances sharing one store.
    #[arg(long, default_value_t = 3)]
    apiservers: usize,
    /// Application namespaces (app-0…).
    #[arg(long, default_value_t = 3)]
    namespaces: usize,
    /// Lease renewal interval of each node.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    lease_renew: Duration,
    /// Unrenewed lease age after which a node turns Ready=Unknown.
    #[arg(long, default_value = "40s", value_parser = humantime::parse_duration)]
    node_grace: Duration,
    /// Interval between BOOKMARK events on watches.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    bookmark_interval: Duration,
    /// Watch length when a client sends no timeoutSeconds [default: random 5–10 min].
    #[arg(long, value_parser = humantime::parse_duration)]
    watch_timeout: Option<Duration>,
    /// Watch events kept per resource kind; older versions get 410 Gone.
    #[arg(long, default_value_t = 100_000)]
    history: usize,
    /// First of consecutive ports: apiservers, balancer, control, scheduler,
    /// controller-manager, etcd, routers [default: free ports].
    #[arg(long)]
    port_base: Option<u16>,
    /// Serve no kubelet or kube-proxy endpoints (for big clusters).
    #[arg(long)]
    no_node_endpoints: bool,
    /// Second octet of node IPs: node i is 127.<block>.<i/250>.<i%250+1>.
    #[arg(long, default_value_t = 1)]
    node_ip_block: u8,
    /// Kubelet stats and metrics port on each node IP (plain HTTP).
    #[arg(long, default_value_t = 10250)]
    kubelet_port: u16,
    /// Kubelet /healthz port on each node IP.
    #[arg(long, default_value_t = 10248)]
    kubelet_healthz_port: u16,
    /// kube-proxy /healthz port on each node IP.
    #[arg(long, default_value_t = 10256)]
    kube_proxy_port: u16,
    /// Extra pod modifications per node per second, besides lease renewals.
    #[arg(long, default_value_t = 0.0)]
    churn_per_node_per_sec: f64,
    /// Restart interval of crash-looping containers.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    crashloop_interval: Duration,
    /// Delay before a scaled Deployment's pods follow.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    rollout_delay: Duration,
    /// Simulated L7 routers (gorouter's /health and /routes).
    #[arg(long, default_value_t = 1)]
    routers: usize,
    /// Write a kubeconfig pointing at the balancer.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
}

impl Args {
    fn config(&self) -> SimConfig {
        SimConfig {
            nodes: self.nodes,
            pods_per_node: self.pods_per_node,
            apiservers: self.apiservers,
            app_namespaces: self.namespaces,
            lease_renew: self.lease_renew,
            node_grace: self.node_grace,
            bookmark_interval: self.bookmark_interval,
            watch_timeout: self.watch_timeout,
            history_limit: self.history,
            port_base: self.port_base,
            node_endpoints: !self.no_node_endpoints,
            node_ip_block: self.node_ip_block,
            kubelet_port: self.kubelet_port,
            kubelet_healthz_port: self.kubelet_healthz_port,
            kube_proxy_port: self.kube_proxy_port,
            churn_per_node_per_sec: self.churn_per_node_per_sec,
            crashloop_interval: self.crashloop_interval,
            rollout_delay: self.rollout_delay,
            routers: self.routers,
            base_resource_version: None,
        }
    }
}

/// Three listeners per node need more descriptors than the usual soft limit.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    raise_fd_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let sim = Simulator::start(args.config())
        .await
        .context("starting the simulator")?;
    if let Some(path) = &args.kubeconfig {
        sim.write_kubeconfig(path)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let mut line = serde_json::to_value(sim.addresses()).context("encoding addresses")?;
    line["kubeconfig"] = serde_json::json!(args.kubeconfig);
    println!("{line}");
    tokio::signal::ctrl_c()
        .await
        .context("waiting for a signal")?;
    tracing::info!("shutting down");
    sim.shutdown();
    Ok(())
}
