//! The simulator's configuration.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::Error;

/// Most nodes the loopback addressing scheme can number.
pub const MAX_NODES: usize = 250 * 256;

/// What to simulate. `Default` gives a small cluster with the real
/// components' timings.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Simulated nodes (`node-0001`…); the first is the control plane.
    pub nodes: usize,
    /// Pods on each node, the DaemonSet's pod included.
    pub pods_per_node: usize,
    /// apiserver instances, each on its own port, sharing one store.
    pub apiservers: usize,
    /// Application namespaces (`app-0`…) besides the system ones.
    pub app_namespaces: usize,
    /// How often each node renews its Lease (the kubelet's 10 s).
    pub lease_renew: Duration,
    /// How long a Lease may go unrenewed before the node turns Ready=Unknown.
    pub node_grace: Duration,
    /// Interval between BOOKMARK events on watches that allow them.
    pub bookmark_interval: Duration,
    /// Watch length when the client sends no `timeoutSeconds`; `None` picks
    /// 5–10 minutes per watch.
    pub watch_timeout: Option<Duration>,
    /// Events kept per resource kind for watches and paginated lists.
    pub history_limit: usize,
    /// First port of a consecutive range for the apiservers, balancer,
    /// control API, scheduler, controller-manager, etcd and routers; `None`
    /// picks free ports.
    pub port_base: Option<u16>,
    /// Serve kubelet and kube-proxy endpoints on each node's IP.
    pub node_endpoints: bool,
    /// Second octet of node IPs: node i is `127.<block>.<i/250>.<i%250+1>`.
    pub node_ip_block: u8,
    pub kubelet_port: u16,
    pub kubelet_healthz_port: u16,
    pub kube_proxy_port: u16,
    /// Extra pod changes per node per second, on top of lease renewals.
    pub churn_per_node_per_sec: f64,
    /// How often a crash-looping container restarts.
    pub crashloop_interval: Duration,
    /// Delay before a scaled Deployment's pods and status follow.
    pub rollout_delay: Duration,
    /// Simulated L7 routers (gorouter's `/health` and `/routes`), each on
    /// its own port.
    pub routers: usize,
    /// resourceVersion before the first object; `None` uses the start time
    /// in microseconds. A simulator cannot write faster than one object a
    /// microsecond, so a restarted one's versions are all above any its
    /// predecessor handed out (milliseconds are not enough: a quick restart
    /// of a big cluster would reuse versions).
    pub base_resource_version: Option<u64>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            nodes: 3,
            pods_per_node: 5,
            apiservers: 3,
            app_namespaces: 3,
            lease_renew: Duration::from_secs(10),
            node_grace: Duration::from_secs(40),
            bookmark_interval: Duration::from_secs(5),
            watch_timeout: None,
            history_limit: 100_000,
            port_base: None,
            node_endpoints: true,
            node_ip_block: 1,
            kubelet_port: 10250,
            kubelet_healthz_port: 10248,
            kube_proxy_port: 10256,
            churn_per_node_per_sec: 0.0,
            crashloop_interval: Duration::from_secs(3),
            rollout_delay: Duration::from_secs(1),
            routers: 1,
            base_resource_version: None,
        }
    }
}

impl SimConfig {
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: &str| Err(Error::Config(m.to_owned()));
        if self.nodes == 0 || self.nodes > MAX_NODES {
            return bad(&format!("nodes must be 1..={MAX_NODES}"));
        }
        if self.apiservers == 0 || self.apiservers > 64 {
            return bad("apiservers must be 1..=64");
        }
        if self.app_namespaces == 0 {
            return bad("app_namespaces must be at least 1");
        }
        if self.lease_renew.is_zero() || self.node_grace.is_zero() {
            return bad("lease_renew and node_grace must be positive");
        }
        if self.bookmark_interval.is_zero() {
            return bad("bookmark_interval must be positive");
        }
        if self.crashloop_interval.is_zero() {
            return bad("crashloop_interval must be positive");
        }
        if !(self.churn_per_node_per_sec.is_finite() && self.churn_per_node_per_sec >= 0.0) {
            return bad("churn_per_node_per_sec must be a non-negative number");
        }
        if self.routers > 64 {
            return bad("routers must be 0..=64");
        }
        if self.node_ip_block == 0 || self.node_ip_block == 255 {
            return bad("node_ip_block must be 1..=254");
        }
        if let Some(base) = self.port_base
            && usize::from(base) + self.port_count() > usize::from(u16::MAX)
        {
            return bad("port_base leaves no room for every listener");
        }
        Ok(())
    }

    /// Ports taken from `port_base`.
    pub fn port_count(&self) -> usize {
        self.apiservers + 5 + self.routers
    }

    /// `node-0001` for index 0.
    pub fn node_name(&self, index: usize) -> String {
        format!("node-{:04}", index + 1)
    }

    /// Node `index`'s loopback address (Linux routes all of 127/8 to `lo`).
    pub fn node_ip(&self, index: usize) -> Ipv4Addr {
        let third = u8::try_from(index / 250).unwrap_or(u8::MAX);
        let fourth = u8::try_from(index % 250 + 1).unwrap_or(1);
        Ipv4Addr::new(127, self.node_ip_block, third, fourth)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_addresses() {
        let c = SimConfig::default();
        assert_eq!(c.node_name(0), "node-0001");
        assert_eq!(c.node_ip(0), Ipv4Addr::new(127, 1, 0, 1));
        assert_eq!(c.node_ip(249), Ipv4Addr::new(127, 1, 0, 250));
        assert_eq!(c.node_ip(250), Ipv4Addr::new(127, 1, 1, 1));
        assert!(c.validate().is_ok());
        let bad = SimConfig {
            nodes: 0,
            ..SimConfig::default()
        };
        assert!(bad.validate().is_err());
    }
}
