//! The `kube` section of `lookout.yaml`: which cluster to follow, how often
//! its state is written, and which control-plane endpoints are probed.

use std::path::PathBuf;
use std::time::Duration;

use lookout_agent::config::FieldError;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct KubeConfig {
    /// Follow a Kubernetes cluster. Off by default: a Docker fleet needs
    /// none of this.
    pub enabled: bool,
    /// A kubeconfig file. Empty: the in-cluster service account, else
    /// `$KUBECONFIG` or `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// How often the cluster-state series (kube-state-metrics names) are
    /// written, like a scrape interval.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// A node whose lease has not been renewed for this long has lost its
    /// heartbeat (`lookout_node_heartbeat_ok` 0). Kubernetes' own
    /// node-monitor grace period is 40 s (50 s from 1.32).
    #[serde(with = "humantime_serde")]
    pub node_heartbeat_grace: Duration,
    pub probes: ProbesConfig,
    pub incident: IncidentConfig,
}

impl Default for KubeConfig {
    fn default() -> Self {
        KubeConfig {
            enabled: false,
            kubeconfig: None,
            interval: Duration::from_secs(15),
            node_heartbeat_grace: Duration::from_secs(40),
            probes: ProbesConfig::default(),
            incident: IncidentConfig::default(),
        }
    }
}

/// Health probes of the control plane and of every node's kubelet and
/// kube-proxy, written as `up{job,instance}` with kube-prometheus's jobs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ProbesConfig {
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Each apiserver instance, probed directly (`/readyz?verbose`,
    /// `/livez?verbose`). Empty: the addresses of the `default/kubernetes`
    /// service's endpoints, with the balancer's scheme.
    pub apiservers: Vec<String>,
    /// The load balancer in front of the apiservers. Empty: the server of
    /// the kubeconfig.
    pub balancer: String,
    /// Scheduler health endpoints, e.g. `https://10.0.0.1:10259`.
    pub scheduler: Vec<String>,
    /// Controller-manager health endpoints, e.g. `https://10.0.0.1:10257`.
    pub controller_manager: Vec<String>,
    /// etcd client URLs; `/health` and `/metrics` are read.
    pub etcd: Vec<String>,
    /// Probe every node's kubelet and kube-proxy health on its InternalIP.
    pub nodes: bool,
    pub kubelet_health_port: u16,
    pub kube_proxy_health_port: u16,
    /// CA for https probes; the system's web roots otherwise.
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate (the scheduler and controller-manager serve
    /// self-signed ones by default). Health answers carry no secrets.
    pub insecure_skip_verify: bool,
    /// Most probes in flight at once.
    pub concurrency: usize,
    /// L7 routers whose health is probed and whose route table is compared
    /// with the services' ready endpoints.
    pub routers: Vec<RouterConfig>,
}

/// An L7 router in front of the cluster's services. Its route table is
/// read in Cloud Foundry gorouter's `/routes` shape: a JSON object from
/// route (`host` or `host/path`) to endpoints (`{"address": "ip:port", …}`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RouterConfig {
    /// The `router` label of its series; unique.
    pub name: String,
    /// Base URL, e.g. `http://10.0.0.5:8080`; the `instance` of its `up`.
    pub url: String,
    /// The route table: a path under `url`, or a full URL (gorouter serves
    /// it on its status port, 8082, apart from `/health` on 8080).
    pub routes_path: String,
    /// The health check, 200 when healthy: a path under `url` or a full URL.
    pub health_path: String,
    /// Basic-auth user for the route table request (gorouter's status
    /// port requires it); never sent with the health check.
    pub username: Option<String>,
    /// The password, from a file (trailing newline ignored) or from an
    /// environment variable: never inline in the config.
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
    /// The cluster's networks (CIDRs: pod and node ranges). When set, a
    /// route endpoint outside them belongs to a backend the cluster does
    /// not run and is not judged stale. Empty: every endpoint is judged.
    pub cluster_networks: Vec<String>,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            name: String::new(),
            url: String::new(),
            routes_path: "/routes".into(),
            health_path: "/health".into(),
            username: None,
            password_file: None,
            password_env: None,
            cluster_networks: Vec::new(),
        }
    }
}

impl RouterConfig {
    /// The full URL of `path_or_url` (a path under `url`, or a URL).
    pub fn resolve(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with('/') {
            format!("{}{path_or_url}", self.url.trim_end_matches('/'))
        } else {
            path_or_url.to_string()
        }
    }
}

impl Default for ProbesConfig {
    fn default() -> Self {
        ProbesConfig {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(3),
            apiservers: Vec::new(),
            balancer: String::new(),
            scheduler: Vec::new(),
            controller_manager: Vec::new(),
            etcd: Vec::new(),
            nodes: true,
            kubelet_health_port: 10248,
            kube_proxy_health_port: 10256,
            ca_file: None,
            insecure_skip_verify: true,
            concurrency: 64,
            routers: Vec::new(),
        }
    }
}

/// When many nodes lose their heartbeat together while the apiservers
/// answer directly but not through the balancer, that is one incident (the
/// balancer), not a node failure each.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct IncidentConfig {
    /// Smallest cluster the detection applies to.
    pub min_nodes: usize,
    /// Share of nodes without heartbeat that makes it an incident.
    pub lost_ratio: f64,
    /// How long the incident is held after its cause clears, so nodes
    /// catching up on their heartbeats are not reported one by one.
    #[serde(with = "humantime_serde")]
    pub hold: Duration,
}

impl Default for IncidentConfig {
    fn default() -> Self {
        IncidentConfig {
            min_nodes: 3,
            lost_ratio: 0.5,
            hold: Duration::from_secs(120),
        }
    }
}

impl KubeConfig {
    pub fn validate(&self, errors: &mut Vec<FieldError>) {
        let mut err = |field: &str, message: String| {
            errors.push(FieldError {
                field: format!("kube.{field}"),
                message,
            })
        };
        if self.interval < Duration::from_secs(1) {
            err("interval", "must be at least 1s".into());
        }
        if self.node_heartbeat_grace < Duration::from_secs(1) {
            err("node_heartbeat_grace", "must be at least 1s".into());
        }
        let p = &self.probes;
        if p.interval < Duration::from_millis(500) {
            err("probes.interval", "must be at least 500ms".into());
        }
        if p.timeout.is_zero() || p.timeout > p.interval {
            err(
                "probes.timeout",
                "must be above 0 and at most probes.interval".into(),
            );
        }
        if p.concurrency == 0 {
            err("probes.concurrency", "must be above 0".into());
        }
        let lists = [
            ("probes.apiservers", &p.apiservers),
            ("probes.scheduler", &p.scheduler),
            ("probes.controller_manager", &p.controller_manager),
            ("probes.etcd", &p.etcd),
        ];
        for (field, urls) in lists {
            for (n, u) in urls.iter().enumerate() {
                if !is_http_url(u) {
                    err(
                        &format!("{field}[{n}]"),
                        format!("{u:?} is not an http(s) URL"),
                    );
                }
            }
        }
        if !p.balancer.is_empty() && !is_http_url(&p.balancer) {
            err(
                "probes.balancer",
                format!("{:?} is not an http(s) URL", p.balancer),
            );
        }
        validate_routers(&p.routers, &mut err);
        let i = &self.incident;
        if !(i.lost_ratio > 0.0 && i.lost_ratio <= 1.0) {
            err("incident.lost_ratio", "must be in (0, 1]".into());
        }
        if i.min_nodes == 0 {
            err("incident.min_nodes", "must be above 0".into());
        }
    }
}

fn validate_routers(routers: &[RouterConfig], err: &mut impl FnMut(&str, String)) {
    let mut names = std::collections::HashSet::new();
    for (n, r) in routers.iter().enumerate() {
        let field = |f: &str| format!("probes.routers[{n}].{f}");
        if r.name.is_empty() {
            err(&field("name"), "is required".into());
        } else if !names.insert(r.name.as_str()) {
            err(
                &field("name"),
                format!("{:?} is used by another router", r.name),
            );
        }
        if !is_http_url(&r.url) {
            err(&field("url"), format!("{:?} is not an http(s) URL", r.url));
        }
        for (f, v) in [
            ("routes_path", &r.routes_path),
            ("health_path", &r.health_path),
        ] {
            if !v.starts_with('/') && !is_http_url(v) {
                err(
                    &field(f),
                    format!("{v:?} is neither a path (/…) nor an http(s) URL"),
                );
            }
        }
        let secrets =
            usize::from(r.password_file.is_some()) + usize::from(r.password_env.is_some());
        match &r.username {
            Some(u) if u.is_empty() || u.contains(':') => {
                err(
                    &field("username"),
                    "must be non-empty and without ':'".into(),
                );
            }
            Some(_) if secrets != 1 => err(
                &field("username"),
                "needs exactly one of password_file or password_env".into(),
            ),
            None if secrets > 0 => err(
                &field("username"),
                "is required with password_file or password_env".into(),
            ),
            _ => {}
        }
        for (i, n) in r.cluster_networks.iter().enumerate() {
            if let Err(e) = n.parse::<crate::probe::routers::IpNetwork>() {
                err(&field(&format!("cluster_networks[{i}]")), e);
            }
        }
        if r.password_env.as_deref() == Some("") {
            err(&field("password_env"), "must name a variable".into());
        }
    }
}

fn is_http_url(u: &str) -> bool {
    matches!(u.parse::<hyper::Uri>(), Ok(uri)
        if matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(cfg: &KubeConfig) -> Vec<String> {
        let mut e = Vec::new();
        cfg.validate(&mut e);
        e.into_iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect()
    }

    fn router(name: &str, url: &str) -> RouterConfig {
        RouterConfig {
            name: name.into(),
            url: url.into(),
            ..RouterConfig::default()
        }
    }

    #[test]
    fn routers_are_checked_field_by_field() {
        let mut cfg = KubeConfig::default();
        cfg.probes.routers = vec![
            router("a", "http://10.0.0.5:8080"),
            RouterConfig {
                username: Some("status".into()),
                password_env: Some("GOROUTER_PASSWORD".into()),
                routes_path: "http://10.0.0.5:8082/routes".into(),
                ..router("b", "https://router.example")
            },
        ];
        assert_eq!(errors(&cfg), Vec::<String>::new());

        cfg.probes.routers = vec![
            router("a", "http://10.0.0.5:8080"),
            RouterConfig {
                health_path: "health".into(),
                username: Some("status".into()),
                ..router("a", "10.0.0.6")
            },
            RouterConfig {
                password_file: Some("/etc/pw".into()),
                cluster_networks: vec!["10.244.0.0/16".into(), "10.96.0.0".into()],
                ..router("", "http://x")
            },
        ];
        let e = errors(&cfg);
        for want in [
            "kube.probes.routers[1].name: \"a\" is used by another router",
            "kube.probes.routers[1].url: \"10.0.0.6\" is not an http(s) URL",
            "kube.probes.routers[1].health_path: \"health\" is neither a path (/…) nor an http(s) URL",
            "kube.probes.routers[1].username: needs exactly one of password_file or password_env",
            "kube.probes.routers[2].name: is required",
            "kube.probes.routers[2].username: is required with password_file or password_env",
            "kube.probes.routers[2].cluster_networks[1]: \"10.96.0.0\" is not a network: expected address/prefix",
        ] {
            assert!(e.iter().any(|x| x == want), "{want} in {e:#?}");
        }
        assert_eq!(e.len(), 7, "{e:#?}");
    }

    #[test]
    fn paths_are_joined_to_the_url_and_urls_kept() {
        let r = router("a", "http://10.0.0.5:8080/");
        assert_eq!(r.resolve(&r.routes_path), "http://10.0.0.5:8080/routes");
        assert_eq!(
            r.resolve("http://10.0.0.5:8082/routes"),
            "http://10.0.0.5:8082/routes"
        );
    }

    #[test]
    fn an_inline_password_is_refused() {
        let e = crate::config::Config::parse(
            "kube:\n  probes:\n    routers:\n      - name: a\n        url: http://x\n        password: hunter2\n",
            "x.yaml",
        )
        .expect_err("no inline passwords")
        .to_string();
        assert!(e.contains("unknown field `password`"), "{e}");
        assert!(!e.contains("hunter2"), "the value is not repeated: {e}");
    }
}
