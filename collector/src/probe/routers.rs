//! L7 routers in front of the cluster's services: their health, and their
//! route table compared with the services' ready endpoints.
//!
//! A router that misses an endpoint change keeps sending part of a
//! service's traffic to pods that are gone, unready or on a dead node,
//! while everything Kubernetes reports looks healthy. The table is read in
//! Cloud Foundry gorouter's `/routes` shape and each route endpoint checked
//! against the ready addresses of the EndpointSlices the collector follows.
//!
//! A route belongs to a service by its endpoints' `service`/`namespace`
//! tags when they carry both, else by its host when that reads
//! `<service>.<namespace>.<domain>` and the service exists. Routes of no
//! known service are checked all the same: a stale endpoint is stale
//! whoever owns it. A router shared with backends outside the cluster is
//! given the cluster's networks, and endpoints outside them are not judged.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use anyhow::Context;
use base64::Engine;
use hyper::header::HeaderValue;
use serde::Deserialize;

use super::http::{Answer, ProbeClient};
use crate::kube::config::RouterConfig;
use crate::kube::series::SeriesOut;
use crate::kube::state::ClusterState;

/// A large foundation's route table runs to tens of megabytes.
const MAX_TABLE: usize = 64 << 20;

/// Watches the comparison relies on: while one is down the collector's
/// copy of the cluster is out of date, and a route judged against it
/// could be called stale wrongly (e.g. while the apiserver balancer is
/// broken and the router has already followed the real cluster).
const WATCHES: [&str; 4] = ["pods", "endpointslices", "nodes", "services"];

/// One endpoint of a route. gorouter also sends `ttl`, `tls`,
/// `private_instance_id`, `server_cert_domain_san` and more; only the
/// address and the tags are read, the rest is ignored.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct RouteEndpoint {
    pub address: String,
    /// Tag values are strings in gorouter; anything else is ignored.
    #[serde(default)]
    pub tags: Option<HashMap<String, serde_json::Value>>,
}

impl RouteEndpoint {
    fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .as_ref()?
            .get(key)?
            .as_str()
            .filter(|v| !v.is_empty())
    }
}

/// Route (`host` or `host/path`) → its endpoints.
pub type RouteTable = BTreeMap<String, Vec<RouteEndpoint>>;

/// Parses a `/routes` answer. Anything but a JSON object of arrays of
/// endpoints with an `address` is an error; a `null` route is empty.
pub fn parse_table(body: &str) -> anyhow::Result<RouteTable> {
    let raw: BTreeMap<String, Option<Vec<RouteEndpoint>>> = serde_json::from_str(body)
        .context("not a route table (a JSON object of route → [{\"address\": …}])")?;
    Ok(raw
        .into_iter()
        .map(|(route, eps)| (route, eps.unwrap_or_default()))
        .collect())
}

/// `10.1.2.3:8080` → (`10.1.2.3`, 8080); `[fd00::1]:8080` → (`fd00::1`,
/// 8080); an address without a port (IPv6 included) → (address, None).
pub fn split_address(address: &str) -> (&str, Option<i32>) {
    let a = address.trim();
    if let Some(rest) = a.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((ip, tail)) => (ip, tail.strip_prefix(':').and_then(|p| p.parse().ok())),
            None => (a, None),
        };
    }
    match a.split_once(':') {
        // More than one colon without brackets: a bare IPv6 address.
        Some((_, port)) if port.contains(':') => (a, None),
        Some((ip, port)) => match port.parse() {
            Ok(p) => (ip, Some(p)),
            Err(_) => (a, None),
        },
        None => (a, None),
    }
}

/// An IP network in CIDR notation: `10.244.0.0/16`, `fd00::/8`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IpNetwork {
    base: IpAddr,
    prefix: u8,
}

impl FromStr for IpNetwork {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not a network: expected address/prefix"))?;
        let base: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?}: {addr:?} is not an IP address"))?;
        let max = if base.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|&p| p <= max)
            .ok_or_else(|| format!("{s:?}: the prefix length must be 0 to {max}"))?;
        Ok(IpNetwork { base, prefix })
    }
}

impl IpNetwork {
    /// Whether `ip` lies in the network; an IPv4 address is never in an
    /// IPv6 network or the other way round.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let (base, ip, width) = match (self.base, ip) {
            (IpAddr::V4(b), IpAddr::V4(i)) => (u32::from(b) as u128, u32::from(i) as u128, 32),
            (IpAddr::V6(b), IpAddr::V6(i)) => (u128::from(b), u128::from(i), 128),
            _ => return false,
        };
        let host_bits = width - u32::from(self.prefix);
        host_bits >= 128 || (base >> host_bits) == (ip >> host_bits)
    }
}

/// The route's host, lower case, without path or port.
fn route_host(route: &str) -> String {
    let host = route.split('/').next().unwrap_or("");
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    };
    host.to_ascii_lowercase()
}

/// The (namespace, service) a route belongs to: from its endpoints' tags
/// when one carries both, else from a host `<service>.<namespace>.<…>`
/// naming a service that exists.
pub fn route_service(
    route: &str,
    endpoints: &[RouteEndpoint],
    services: &HashSet<(String, String)>,
) -> Option<(String, String)> {
    if let Some((ns, svc)) = endpoints
        .iter()
        .find_map(|e| Some((e.tag("namespace")?, e.tag("service")?)))
    {
        return Some((ns.to_string(), svc.to_string()));
    }
    let host = route_host(route);
    let mut labels = host.split('.');
    let (svc, ns) = (labels.next()?, labels.next()?);
    labels.next()?;
    let key = (ns.to_string(), svc.to_string());
    services.contains(&key).then_some(key)
}

/// A ready address of a service, with the ports its slice lists.
#[derive(Debug)]
struct ReadyAt {
    namespace: String,
    service: String,
    ports: Vec<i32>,
}

/// What the comparison needs from the cluster state, taken under its lock
/// once a round.
#[derive(Debug, Default)]
pub struct ClusterView {
    /// The watches behind it are up and listed: the view is current.
    pub current: bool,
    /// Ready EndpointSlice addresses: IP → where it is ready.
    ready: HashMap<String, Vec<ReadyAt>>,
    /// IPs of pods on nodes whose Ready condition is not True.
    on_unready_nodes: HashSet<String>,
    /// Every service, as (namespace, name).
    services: HashSet<(String, String)>,
    /// Services annotated to be routed.
    routed: Vec<(String, String)>,
}

impl ClusterView {
    pub fn from_state(st: &ClusterState) -> ClusterView {
        let current = WATCHES
            .iter()
            .all(|r| st.watches.get(r).is_some_and(|w| w.up))
            && st.pods.synced
            && st.slices.synced
            && st.nodes.synced
            && st.services.synced;
        let mut view = ClusterView {
            current,
            ..ClusterView::default()
        };
        for s in st.services.values() {
            let key = (s.namespace.clone(), s.name.clone());
            if s.routed {
                view.routed.push(key.clone());
            }
            view.services.insert(key);
        }
        view.routed.sort();
        for s in st.slices.values() {
            if s.service.is_empty() {
                continue;
            }
            for (ip, first_port, ready) in &s.addresses {
                if !ready {
                    continue;
                }
                let ports = if s.ports.is_empty() {
                    first_port.iter().copied().collect()
                } else {
                    s.ports.clone()
                };
                view.ready.entry(ip.clone()).or_default().push(ReadyAt {
                    namespace: s.namespace.clone(),
                    service: s.service.clone(),
                    ports,
                });
            }
        }
        let unready: HashSet<&str> = st
            .nodes
            .values()
            .filter(|n| n.ready() == Some(false))
            .map(|n| n.name.as_str())
            .collect();
        if !unready.is_empty() {
            for p in st.pods.values() {
                // A finished pod's IP may already belong to another pod.
                let live = !matches!(p.phase.as_str(), "Succeeded" | "Failed");
                if live && !p.pod_ip.is_empty() && unready.contains(p.node.as_str()) {
                    view.on_unready_nodes.insert(p.pod_ip.to_string());
                }
            }
        }
        view
    }

    /// Where `address` is a ready endpoint: same IP, and the same port
    /// unless either side names none.
    fn ready_at<'a>(&'a self, address: &str) -> impl Iterator<Item = &'a ReadyAt> {
        let (ip, port) = split_address(address);
        self.ready
            .get(ip)
            .into_iter()
            .flatten()
            .filter(move |r| match port {
                None => true,
                Some(p) => r.ports.is_empty() || r.ports.contains(&p),
            })
    }

    /// A route endpoint is stale when its address is no ready endpoint of
    /// any service, or when its pod is on a node that is not Ready.
    pub fn is_stale(&self, address: &str) -> bool {
        let (ip, _) = split_address(address);
        self.on_unready_nodes.contains(ip) || self.ready_at(address).next().is_none()
    }
}

/// Whether an endpoint is the cluster's to judge: always when no networks
/// are configured, else when its IP lies in one of them. An address that is
/// not an IP cannot be placed outside and is judged.
fn in_cluster(address: &str, networks: &[IpNetwork]) -> bool {
    if networks.is_empty() {
        return true;
    }
    match split_address(address).0.parse::<IpAddr>() {
        Ok(ip) => networks.iter().any(|n| n.contains(ip)),
        Err(_) => true,
    }
}

/// One route as compared: endpoints, stale ones, and its service.
#[derive(Debug, PartialEq)]
pub struct RouteCheck<'a> {
    pub route: &'a str,
    pub endpoints: usize,
    pub stale: usize,
    /// Endpoints outside the cluster's networks, not judged.
    pub outside: usize,
    /// (namespace, service), when known.
    pub service: Option<(String, String)>,
}

pub fn check_routes<'a>(
    table: &'a RouteTable,
    view: &ClusterView,
    networks: &[IpNetwork],
) -> Vec<RouteCheck<'a>> {
    table
        .iter()
        .map(|(route, eps)| {
            let (judged, outside): (Vec<&RouteEndpoint>, Vec<&RouteEndpoint>) =
                eps.iter().partition(|e| in_cluster(&e.address, networks));
            RouteCheck {
                route,
                endpoints: eps.len(),
                stale: judged.iter().filter(|e| view.is_stale(&e.address)).count(),
                outside: outside.len(),
                service: route_service(route, eps, &view.services),
            }
        })
        .collect()
}

/// Whether each service annotated to be routed has a route pointing at
/// one of its ready addresses, in any of `tables`. `complete`: every
/// router's table was read, so a service found in none has no route;
/// otherwise only the services found are reported (1), as the others may
/// be routed through a router that could not be read.
pub fn routed_services(
    tables: &[&RouteTable],
    view: &ClusterView,
    complete: bool,
) -> Vec<((String, String), bool)> {
    let mut seen: HashSet<(&str, &str)> = HashSet::new();
    for table in tables {
        for ep in table.values().flatten() {
            for r in view.ready_at(&ep.address) {
                seen.insert((&r.namespace, &r.service));
            }
        }
    }
    view.routed
        .iter()
        .filter_map(|(ns, svc)| {
            let routed = seen.contains(&(ns.as_str(), svc.as_str()));
            (routed || complete).then(|| ((ns.clone(), svc.clone()), routed))
        })
        .collect()
}

/// Why a table read failed, for `lookout_router_table_errors_total`.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Failure {
    Unreachable,
    Status,
    Body,
}

const FAILURES: [(Failure, &str); 3] = [
    (Failure::Unreachable, "unreachable"),
    (Failure::Status, "status"),
    (Failure::Body, "body"),
];

/// A configured router, ready to probe: URLs resolved, credentials read.
pub struct RouterProbe {
    pub name: String,
    /// `host:port` of its URL.
    pub instance: String,
    health_url: String,
    routes_url: String,
    /// `Basic …`, marked sensitive; never logged.
    authorization: Option<HeaderValue>,
    /// The cluster's networks; empty: every endpoint is the cluster's.
    networks: Vec<IpNetwork>,
    errors: [AtomicU64; 3],
    /// The table read is failing: logged when it starts and when it ends.
    failing: AtomicBool,
}

impl RouterProbe {
    pub fn new(cfg: &RouterConfig) -> anyhow::Result<RouterProbe> {
        let authorization = match &cfg.username {
            None => None,
            Some(user) => {
                let password = match (&cfg.password_file, &cfg.password_env) {
                    (Some(path), _) => std::fs::read_to_string(path).with_context(|| {
                        format!(
                            "router {:?}: cannot read password_file {}",
                            cfg.name,
                            path.display()
                        )
                    })?,
                    (None, Some(var)) => std::env::var(var).with_context(|| {
                        format!(
                            "router {:?}: environment variable {var} (password_env) is not set",
                            cfg.name
                        )
                    })?,
                    (None, None) => anyhow::bail!(
                        "router {:?}: username needs password_file or password_env",
                        cfg.name
                    ),
                };
                Some(basic_auth(user, password.trim_end_matches(['\r', '\n']))?)
            }
        };
        Ok(RouterProbe {
            name: cfg.name.clone(),
            instance: super::instance_of(&cfg.url),
            health_url: cfg.resolve(&cfg.health_path),
            routes_url: cfg.resolve(&cfg.routes_path),
            authorization,
            networks: cfg
                .cluster_networks
                .iter()
                .map(|n| n.parse())
                .collect::<Result<_, String>>()
                .map_err(|e| anyhow::anyhow!("router {:?}: cluster_networks: {e}", cfg.name))?,
            errors: Default::default(),
            failing: AtomicBool::new(false),
        })
    }

    /// `up{job="router"}`: whether the health check answers 200.
    pub async fn healthy(&self, client: &ProbeClient) -> bool {
        let a = client.get(&self.health_url).await;
        super::log_failure("router", &self.instance, &a);
        matches!(a, Answer::Http { status: 200, .. })
    }

    /// Reads and parses the route table; failures are counted and logged
    /// when they start and when they end.
    pub async fn read_table(&self, client: &ProbeClient) -> Option<RouteTable> {
        let answer = client
            .get_with(&self.routes_url, self.authorization.as_ref(), MAX_TABLE)
            .await;
        let result = match answer {
            Answer::Http { status: 200, body } => {
                parse_table(&body).map_err(|e| (Failure::Body, format!("{e:#}")))
            }
            Answer::Http { status, .. } => Err((Failure::Status, format!("answered {status}"))),
            Answer::Failed(e) => Err((Failure::Unreachable, e)),
        };
        match result {
            Ok(table) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(router = %self.name, "route table readable again");
                }
                Some(table)
            }
            Err((why, message)) => {
                if let Some(i) = FAILURES.iter().position(|(f, _)| *f == why) {
                    self.errors[i].fetch_add(1, Ordering::Relaxed);
                }
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        router = %self.name,
                        url = %self.routes_url,
                        "cannot read the route table: {message}"
                    );
                }
                None
            }
        }
    }
}

fn basic_auth(user: &str, password: &str) -> anyhow::Result<HeaderValue> {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut v = HeaderValue::from_str(&format!("Basic {token}"))
        .context("the router credentials do not make a header")?;
    v.set_sensitive(true);
    Ok(v)
}

/// The round's router series (job="lookout"), from each router's table
/// (`None`: not read) and the cluster view. Stale counts and routed
/// services are written only while the view is current: an out-of-date
/// copy of the cluster would make wrong ones.
pub fn write_round(
    out: &mut SeriesOut,
    routers: &[RouterProbe],
    tables: &[Option<RouteTable>],
    view: Option<&ClusterView>,
) {
    let view = view.filter(|v| v.current);
    for (r, table) in routers.iter().zip(tables) {
        let router = r.name.as_str();
        out.push(
            "lookout_router_table_ok",
            &[("router", router)],
            f64::from(u8::from(table.is_some())),
        );
        for ((_, reason), n) in FAILURES.iter().zip(&r.errors) {
            out.push(
                "lookout_router_table_errors_total",
                &[("router", router), ("reason", reason)],
                n.load(Ordering::Relaxed) as f64,
            );
        }
        let Some(table) = table else {
            continue;
        };
        out.push(
            "lookout_router_routes",
            &[("router", router)],
            table.len() as f64,
        );
        for (route, eps) in table {
            out.push(
                "lookout_router_route_endpoints",
                &[("router", router), ("route", route)],
                eps.len() as f64,
            );
        }
        let Some(view) = view else {
            continue;
        };
        for c in check_routes(table, view, &r.networks) {
            let (ns, svc) = c.service.unwrap_or_default();
            // Written for every route, 0 included, so that a route's stale
            // count goes back to 0 rather than vanishing.
            out.push(
                "lookout_router_stale_endpoints",
                &[
                    ("router", router),
                    ("route", c.route),
                    ("namespace", &ns),
                    ("service", &svc),
                ],
                c.stale as f64,
            );
        }
    }
    let Some(view) = view else {
        return;
    };
    let read: Vec<&RouteTable> = tables.iter().flatten().collect();
    if read.is_empty() {
        return;
    }
    let complete = read.len() == tables.len();
    for ((ns, svc), routed) in routed_services(&read, view, complete) {
        out.push(
            "lookout_service_routed",
            &[("namespace", &ns), ("service", &svc)],
            f64::from(u8::from(routed)),
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use k8s_openapi::api::core::v1::{Node, Pod, Service};
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use serde_json::json;

    use super::*;
    use crate::kube::objects::{NodeObj, PodObj, ServiceObj, SliceObj};
    use crate::kube::state::Ev;

    const GOROUTER: &str = r#"{
      "web.app-0.apps.example.com": [
        {"address": "10.1.0.5:8080", "ttl": 120, "tls": false,
         "tags": {"component": "route-emitter"}, "private_instance_id": "a1",
         "server_cert_domain_san": "web"},
        {"address": "10.1.0.6:8080", "ttl": 120, "tls": true, "tags": null}
      ],
      "shop.example.com/cart": [
        {"address": "10.1.0.7:9000", "tags": {"service": "cart", "namespace": "shop"},
         "route_service_url": "https://rs.example"}
      ],
      "legacy.example.com": null
    }"#;

    #[test]
    fn gorouter_tables_parse_and_unknown_fields_are_ignored() {
        let t = parse_table(GOROUTER).expect("parses");
        assert_eq!(t.len(), 3);
        assert_eq!(t["web.app-0.apps.example.com"].len(), 2);
        assert_eq!(t["web.app-0.apps.example.com"][1].address, "10.1.0.6:8080");
        assert!(t["legacy.example.com"].is_empty());
        assert_eq!(t["shop.example.com/cart"][0].tag("service"), Some("cart"));
    }

    #[test]
    fn bad_bodies_are_errors() {
        for body in [
            "",
            "ok",
            "[]",
            r#"{"a": [{"ttl": 1}]}"#,
            r#"{"a": {"address": "1.2.3.4:5"}}"#,
            r#"{"a": [{"address": 5}]}"#,
            "{\"a\": [",
        ] {
            let e = parse_table(body).expect_err(body);
            assert!(format!("{e:#}").contains("not a route table"), "{e:#}");
        }
        assert!(parse_table("{}").expect("empty table").is_empty());
    }

    #[test]
    fn addresses_split_into_ip_and_port() {
        assert_eq!(split_address("10.1.2.3:8080"), ("10.1.2.3", Some(8080)));
        assert_eq!(split_address("10.1.2.3"), ("10.1.2.3", None));
        assert_eq!(split_address("[fd00::1]:443"), ("fd00::1", Some(443)));
        assert_eq!(split_address("[fd00::1]"), ("fd00::1", None));
        assert_eq!(split_address("fd00::1"), ("fd00::1", None));
        assert_eq!(split_address("10.1.2.3:http"), ("10.1.2.3:http", None));
        assert_eq!(split_address(" 10.1.2.3:80 "), ("10.1.2.3", Some(80)));
    }

    #[test]
    fn routes_match_services_by_tags_then_by_host() {
        let services: HashSet<(String, String)> = [
            ("app-0".to_string(), "web".to_string()),
            ("shop".to_string(), "cart".to_string()),
        ]
        .into();
        let t = parse_table(GOROUTER).expect("parses");
        let of = |route: &str| route_service(route, &t[route], &services);
        assert_eq!(
            of("web.app-0.apps.example.com"),
            Some(("app-0".into(), "web".into()))
        );
        assert_eq!(
            of("shop.example.com/cart"),
            Some(("shop".into(), "cart".into())),
            "tags win over the host"
        );
        assert_eq!(of("legacy.example.com"), None, "no such service");
        let none: Vec<RouteEndpoint> = Vec::new();
        assert_eq!(
            route_service("WEB.App-0.apps.example.com:443/x", &none, &services),
            Some(("app-0".into(), "web".into())),
            "case, port and path do not matter"
        );
        assert_eq!(
            route_service("web.app-0", &none, &services),
            None,
            "a host of two labels names no namespace"
        );
    }

    fn node(name: &str, ready: &str) -> Arc<NodeObj> {
        let n: Node = serde_json::from_value(json!({
            "metadata": {"name": name},
            "status": {"conditions": [{"type": "Ready", "status": ready}]}
        }))
        .expect("node");
        Arc::new(NodeObj::from(&n))
    }

    fn pod(name: &str, node: &str, ip: &str) -> Arc<PodObj> {
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "app-0"},
            "spec": {"nodeName": node, "containers": []},
            "status": {"phase": "Running", "podIP": ip}
        }))
        .expect("pod");
        Arc::new(PodObj::from(&p))
    }

    fn service(ns: &str, name: &str, routed: Option<&str>) -> Arc<ServiceObj> {
        let mut meta = json!({"name": name, "namespace": ns});
        if let Some(v) = routed {
            meta["annotations"] = json!({"lookout.io/routed": v});
        }
        let s: Service = serde_json::from_value(json!({"metadata": meta})).expect("service");
        Arc::new(ServiceObj::from(&s))
    }

    fn slice(ns: &str, svc: &str, ports: &[i32], eps: &[(&str, bool)]) -> Arc<SliceObj> {
        let s: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": format!("{svc}-x"), "namespace": ns,
                         "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4",
            "ports": ports.iter().map(|p| json!({"port": p})).collect::<Vec<_>>(),
            "endpoints": eps.iter().map(|(ip, ready)| json!({
                "addresses": [ip], "conditions": {"ready": ready}
            })).collect::<Vec<_>>(),
        }))
        .expect("slice");
        Arc::new(SliceObj::from(&s))
    }

    /// web (routed): 10.1.0.5 and 10.1.0.6 ready, 10.1.0.9 not;
    /// 10.1.0.6 runs on a node that is not Ready. api (routed): 10.1.0.8
    /// ready on two ports. cart: not annotated.
    fn cluster() -> ClusterState {
        let mut st = ClusterState::default();
        for r in WATCHES {
            st.watch_state(r, true);
        }
        st.node(Ev::Begin);
        st.node(Ev::Apply("n1".into(), node("n1", "True")));
        st.node(Ev::Apply("n2".into(), node("n2", "Unknown")));
        st.node(Ev::Done);
        st.pod(Ev::Begin);
        st.pod(Ev::Apply("app-0/w1".into(), pod("w1", "n1", "10.1.0.5")));
        st.pod(Ev::Apply("app-0/w2".into(), pod("w2", "n2", "10.1.0.6")));
        st.pod(Ev::Done);
        st.service(Ev::Begin);
        for (ns, name, routed) in [
            ("app-0", "web", Some("true")),
            ("app-0", "api", Some("TRUE")),
            ("shop", "cart", Some("no")),
        ] {
            st.service(Ev::Apply(format!("{ns}/{name}"), service(ns, name, routed)));
        }
        st.service(Ev::Done);
        st.slice(Ev::Begin);
        st.slice(Ev::Apply(
            "app-0/web-x".into(),
            slice(
                "app-0",
                "web",
                &[8080],
                &[("10.1.0.5", true), ("10.1.0.6", true), ("10.1.0.9", false)],
            ),
        ));
        st.slice(Ev::Apply(
            "app-0/api-x".into(),
            slice("app-0", "api", &[8443, 9090], &[("10.1.0.8", true)]),
        ));
        st.slice(Ev::Done);
        st
    }

    fn table(routes: &[(&str, &[&str])]) -> RouteTable {
        routes
            .iter()
            .map(|(r, addrs)| {
                let eps = addrs
                    .iter()
                    .map(|a| RouteEndpoint {
                        address: a.to_string(),
                        tags: None,
                    })
                    .collect();
                (r.to_string(), eps)
            })
            .collect()
    }

    #[test]
    fn the_routed_annotation_is_read() {
        assert!(service("a", "b", Some("true")).routed);
        assert!(service("a", "b", Some(" True ")).routed);
        assert!(!service("a", "b", Some("yes")).routed);
        assert!(!service("a", "b", None).routed);
    }

    #[test]
    fn endpoints_gone_unready_or_on_unready_nodes_are_stale() {
        let view = ClusterView::from_state(&cluster());
        assert!(view.current);
        assert!(!view.is_stale("10.1.0.5:8080"), "ready");
        assert!(!view.is_stale("10.1.0.5"), "ready, no port given");
        assert!(view.is_stale("10.1.0.5:9999"), "ready IP, port not served");
        assert!(view.is_stale("10.1.0.6:8080"), "ready, but its node is not");
        assert!(view.is_stale("10.1.0.9:8080"), "not ready");
        assert!(view.is_stale("10.1.0.77:8080"), "no such endpoint");
        assert!(
            !view.is_stale("10.1.0.8:9090"),
            "a multi-port service's second port"
        );
        assert!(view.is_stale("garbage"));
    }

    #[test]
    fn routes_are_checked_and_routed_services_found() {
        let view = ClusterView::from_state(&cluster());
        let t = table(&[
            (
                "web.app-0.apps.example.com",
                &["10.1.0.5:8080", "10.1.0.6:8080", "10.1.0.77:8080"],
            ),
            ("other.example.com", &["10.1.0.5:8080"]),
        ]);
        let checks = check_routes(&t, &view, &[]);
        assert_eq!(
            checks,
            vec![
                RouteCheck {
                    route: "other.example.com",
                    endpoints: 1,
                    stale: 0,
                    outside: 0,
                    service: None,
                },
                RouteCheck {
                    route: "web.app-0.apps.example.com",
                    endpoints: 3,
                    stale: 2,
                    outside: 0,
                    service: Some(("app-0".into(), "web".into())),
                },
            ]
        );
        let routed = routed_services(&[&t], &view, true);
        assert_eq!(
            routed,
            vec![
                (("app-0".into(), "api".into()), false),
                (("app-0".into(), "web".into()), true),
            ]
        );
        assert_eq!(
            routed_services(&[&t], &view, false),
            vec![(("app-0".into(), "web".into()), true)],
            "with a table unread, a service found in none is not judged"
        );
    }

    #[test]
    fn networks_parse_and_contain_their_addresses() {
        let net = |s: &str| s.parse::<IpNetwork>().expect(s);
        let ip = |s: &str| s.parse::<IpAddr>().expect(s);
        assert!(net("10.244.0.0/16").contains(ip("10.244.3.7")));
        assert!(!net("10.244.0.0/16").contains(ip("10.245.0.1")));
        assert!(net("0.0.0.0/0").contains(ip("192.0.2.1")));
        assert!(net("192.0.2.7/32").contains(ip("192.0.2.7")));
        assert!(!net("192.0.2.7/32").contains(ip("192.0.2.8")));
        assert!(net("fd00::/8").contains(ip("fd12::1")));
        assert!(net("::/0").contains(ip("2001:db8::1")));
        assert!(!net("fd00::/8").contains(ip("10.0.0.1")), "families differ");
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "fd00::/129",
            "host/8",
            "10.0.0.0/x",
        ] {
            assert!(bad.parse::<IpNetwork>().is_err(), "{bad}");
        }
    }

    #[test]
    fn endpoints_outside_the_cluster_networks_are_not_judged() {
        let view = ClusterView::from_state(&cluster());
        let t = table(&[(
            "shared.example.com",
            &[
                "10.1.0.5:8080",
                "10.1.0.77:8080",
                "192.0.2.10:443",
                "garbage",
            ],
        )]);
        let networks = ["10.1.0.0/16".parse().expect("network")];
        let checks = check_routes(&t, &view, &networks);
        assert_eq!(checks[0].endpoints, 4);
        assert_eq!(checks[0].outside, 1, "192.0.2.10 is someone else's backend");
        assert_eq!(
            checks[0].stale, 2,
            "10.1.0.77 is gone; an address that is no IP is judged"
        );
        assert_eq!(
            check_routes(&t, &view, &[])[0].stale,
            3,
            "no networks: all judged"
        );
    }

    fn probe(name: &str) -> RouterProbe {
        RouterProbe::new(&RouterConfig {
            name: name.into(),
            url: "http://10.0.0.5:8080".into(),
            ..RouterConfig::default()
        })
        .expect("probe")
    }

    fn values(out: &SeriesOut) -> BTreeMap<String, f64> {
        out.debug_lines()
            .lines()
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect()
    }

    #[test]
    fn a_round_writes_tables_stale_counts_and_routed_services() {
        let st = cluster();
        let view = ClusterView::from_state(&st);
        let routers = [probe("a"), probe("b")];
        let t = table(&[
            (
                "web.app-0.apps.example.com",
                &["10.1.0.5:8080", "10.1.0.9:8080"],
            ),
            ("api.app-0.apps.example.com", &["10.1.0.8:8443"]),
        ]);
        let mut out = SeriesOut::new(1000, "lookout");
        write_round(&mut out, &routers, &[Some(t.clone()), None], Some(&view));
        let v = values(&out);
        let get = |k: &str| v.get(k).copied();
        assert_eq!(
            get(r#"lookout_router_table_ok{job="lookout",router="a"}"#),
            Some(1.0)
        );
        assert_eq!(
            get(r#"lookout_router_table_ok{job="lookout",router="b"}"#),
            Some(0.0)
        );
        assert_eq!(
            get(r#"lookout_router_routes{job="lookout",router="a"}"#),
            Some(2.0)
        );
        assert_eq!(
            get(
                r#"lookout_router_route_endpoints{job="lookout",route="web.app-0.apps.example.com",router="a"}"#
            ),
            Some(2.0)
        );
        assert_eq!(
            get(
                r#"lookout_router_stale_endpoints{job="lookout",namespace="app-0",route="web.app-0.apps.example.com",router="a",service="web"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            get(
                r#"lookout_router_stale_endpoints{job="lookout",namespace="app-0",route="api.app-0.apps.example.com",router="a",service="api"}"#
            ),
            Some(0.0),
            "written at 0 too"
        );
        assert_eq!(
            get(r#"lookout_service_routed{job="lookout",namespace="app-0",service="web"}"#),
            Some(1.0)
        );
        assert_eq!(
            get(r#"lookout_router_table_errors_total{job="lookout",reason="body",router="b"}"#),
            Some(0.0)
        );

        // Both tables read, api's route gone: api has none.
        let web_only = table(&[("web.app-0.apps.example.com", &["10.1.0.5:8080"])]);
        let mut out = SeriesOut::new(2000, "lookout");
        write_round(
            &mut out,
            &routers,
            &[Some(web_only.clone()), Some(web_only)],
            Some(&view),
        );
        let v = values(&out);
        assert_eq!(
            v.get(r#"lookout_service_routed{job="lookout",namespace="app-0",service="api"}"#),
            Some(&0.0)
        );
    }

    #[test]
    fn nothing_is_judged_against_an_out_of_date_cluster() {
        let mut st = cluster();
        st.watch_state("endpointslices", false);
        let view = ClusterView::from_state(&st);
        assert!(!view.current);
        let routers = [probe("a")];
        let t = table(&[("web.app-0.apps.example.com", &["10.1.0.77:8080"])]);
        let mut out = SeriesOut::new(1000, "lookout");
        write_round(&mut out, &routers, &[Some(t)], Some(&view));
        let lines = out.debug_lines();
        assert!(lines.contains("lookout_router_routes"), "{lines}");
        assert!(!lines.contains("lookout_router_stale_endpoints"), "{lines}");
        assert!(!lines.contains("lookout_service_routed"), "{lines}");
    }

    #[test]
    fn credentials_come_from_a_file_or_the_environment_and_stay_hidden() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cret\n").expect("write");
        let cfg = RouterConfig {
            name: "a".into(),
            url: "http://10.0.0.5:8080".into(),
            username: Some("status".into()),
            password_file: Some(file),
            ..RouterConfig::default()
        };
        let p = RouterProbe::new(&cfg).expect("probe");
        let auth = p.authorization.as_ref().expect("auth");
        assert!(auth.is_sensitive());
        assert_eq!(
            auth.to_str().expect("ascii"),
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("status:s3cret")
            )
        );
        assert!(!format!("{auth:?}").contains("c3Rh"), "not in Debug output");

        let missing = RouterConfig {
            password_file: None,
            password_env: Some("LOOKOUT_TEST_NO_SUCH_VARIABLE".into()),
            ..cfg
        };
        let e = RouterProbe::new(&missing).err().expect("unset variable");
        assert!(
            e.to_string().contains("LOOKOUT_TEST_NO_SUCH_VARIABLE"),
            "{e}"
        );
    }
}
