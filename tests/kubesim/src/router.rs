//! Simulated L7 routers with Cloud Foundry gorouter's surface: `GET
//! /health` (`ok`) and `GET /routes` (its route table as JSON).
//!
//! A router's table follows the ready endpoints of the services annotated
//! `lookout.io/routed: "true"`, one route `<service>.<namespace>.apps.sim.test`
//! each. Frozen, it stops following: it keeps serving the table it had,
//! routes to pods that have since gone included, which is how a router
//! that lost its route updates looks from outside.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::cluster::{Core, lock};
use crate::resources::Kind;

/// The annotation that asks for a service to be routed.
pub(crate) const ROUTED_ANNOTATION: &str = "lookout.io/routed";
/// The domain under which routes are named.
pub const ROUTE_DOMAIN: &str = "apps.sim.test";

/// gorouter's default route TTL, in seconds.
const TTL: u64 = 120;

/// One simulated router.
pub(crate) struct RouterSim {
    pub index: usize,
    /// Whether its port listens (stop/start).
    pub running: AtomicBool,
    /// The table it keeps serving while frozen.
    frozen: Mutex<Option<Arc<Value>>>,
}

impl RouterSim {
    pub fn new(index: usize) -> RouterSim {
        RouterSim {
            index,
            running: AtomicBool::new(true),
            frozen: Mutex::new(None),
        }
    }

    /// Keeps the current table from now on; freezing a frozen router
    /// changes nothing.
    pub fn freeze(&self, core: &Core) {
        let mut frozen = lock(&self.frozen);
        if frozen.is_none() {
            *frozen = Some(Arc::new(route_table(core)));
        }
    }

    pub fn unfreeze(&self) {
        *lock(&self.frozen) = None;
    }

    pub fn is_frozen(&self) -> bool {
        lock(&self.frozen).is_some()
    }

    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    pub fn set_running(&self, up: bool) {
        self.running.store(up, Ordering::SeqCst);
    }

    /// What `/routes` answers now.
    fn table(&self, core: &Core) -> Arc<Value> {
        if let Some(t) = lock(&self.frozen).as_ref() {
            return t.clone();
        }
        Arc::new(route_table(core))
    }
}

/// The route of a service.
pub fn route_name(namespace: &str, service: &str) -> String {
    format!("{service}.{namespace}.{ROUTE_DOMAIN}")
}

/// The table from the store: for every routed service, its ready
/// endpoints at the port of its EndpointSlice; services without a ready
/// endpoint have no route, as in gorouter once their routes are pruned.
pub(crate) fn route_table(core: &Core) -> Value {
    let routed: HashSet<(String, String)> = core
        .store
        .scan(Kind::SERVICES, None, |_| true)
        .iter()
        .filter(|s| {
            s.to_value()
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(ROUTED_ANNOTATION))
                .and_then(Value::as_str)
                == Some("true")
        })
        .map(|s| (s.namespace().to_owned(), s.name().to_owned()))
        .collect();
    let mut routes: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let slices = core.store.scan(Kind::ENDPOINT_SLICES, None, |s| {
        s.labels().any(|(k, v)| {
            k == "kubernetes.io/service-name"
                && routed.contains(&(s.namespace().to_owned(), v.to_owned()))
        })
    });
    for slice in slices {
        let Some(service) = slice
            .labels()
            .find(|(k, _)| *k == "kubernetes.io/service-name")
            .map(|(_, v)| v.to_owned())
        else {
            continue;
        };
        let v = slice.to_value();
        let Some(port) = v.pointer("/ports/0/port").and_then(Value::as_u64) else {
            continue;
        };
        let endpoints = v["endpoints"].as_array().cloned().unwrap_or_default();
        for ep in endpoints {
            // As in Kubernetes, an unset `ready` means ready.
            if ep.pointer("/conditions/ready") == Some(&json!(false)) {
                continue;
            }
            let instance = ep
                .pointer("/targetRef/uid")
                .and_then(Value::as_str)
                .unwrap_or("");
            for ip in ep["addresses"].as_array().into_iter().flatten() {
                let Some(ip) = ip.as_str() else {
                    continue;
                };
                routes
                    .entry(route_name(slice.namespace(), &service))
                    .or_default()
                    .push(json!({
                        "address": format!("{ip}:{port}"),
                        "ttl": TTL,
                        "tls": false,
                        "tags": {"component": "lookout-kubesim"},
                        "private_instance_id": instance,
                        "server_cert_domain_san": "",
                    }));
            }
        }
    }
    json!(routes)
}

type RouterState = State<(Arc<Core>, Arc<RouterSim>)>;

/// The router's HTTP surface.
pub(crate) fn router(core: Arc<Core>, sim: Arc<RouterSim>) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route("/routes", get(routes))
        .fallback(|| async { (StatusCode::NOT_FOUND, "404 page not found\n") })
        .with_state((core, sim))
}

async fn routes(State((core, sim)): RouterState) -> Response {
    let table = sim.table(&core);
    (
        [(header::CONTENT_TYPE, "application/json")],
        table.to_string(),
    )
        .into_response()
}
