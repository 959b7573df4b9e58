//! Health endpoints in the Kubernetes format (`/livez`, `/readyz`,
//! `/healthz`, optionally `?verbose`, `?exclude=`, and `/<endpoint>/<check>`),
//! for the apiserver, scheduler and controller-manager, plus etcd's
//! `/health` and `/metrics`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::api::ApiState;
use crate::cluster::Core;

/// Which health endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Livez,
    Readyz,
    Healthz,
}

impl Endpoint {
    fn name(self) -> &'static str {
        match self {
            Endpoint::Livez => "livez",
            Endpoint::Readyz => "readyz",
            Endpoint::Healthz => "healthz",
        }
    }
}

/// One named check and whether it passes.
pub(crate) type Check = (&'static str, bool);

const APISERVER_HOOKS: &[&str] = &[
    "poststarthook/start-apiserver-admission-initializer",
    "poststarthook/generic-apiserver-start-informers",
    "poststarthook/start-apiextensions-informers",
    "poststarthook/start-apiextensions-controllers",
    "poststarthook/crd-informer-synced",
    "poststarthook/bootstrap-controller",
    "poststarthook/rbac/bootstrap-roles",
    "poststarthook/scheduling/bootstrap-system-priority-classes",
    "poststarthook/start-kube-aggregator-informers",
    "poststarthook/apiservice-registration-controller",
    "autoregister-completion",
];

pub(crate) fn apiserver_checks(core: &Core, endpoint: Endpoint) -> Vec<Check> {
    let etcd = core.etcd_running();
    let mut checks: Vec<Check> = vec![("ping", true), ("log", true), ("etcd", etcd)];
    if endpoint == Endpoint::Readyz {
        checks.push(("etcd-readiness", etcd));
        checks.push(("informer-sync", true));
    }
    checks.extend(APISERVER_HOOKS.iter().map(|h| (*h, true)));
    if endpoint == Endpoint::Readyz {
        checks.push(("shutdown", true));
    }
    checks
}

pub(crate) fn scheduler_checks(core: &Core, endpoint: Endpoint) -> Vec<Check> {
    let leader = core.leader_election_ok();
    match endpoint {
        Endpoint::Readyz => vec![
            ("ping", true),
            ("log", true),
            ("sched-handler-sync", true),
            ("leaderElection", leader),
            ("shutdown", true),
        ],
        _ => vec![("ping", true), ("log", true), ("leaderElection", leader)],
    }
}

pub(crate) fn controller_manager_checks(core: &Core, endpoint: Endpoint) -> Vec<Check> {
    let leader = core.leader_election_ok();
    let mut checks = vec![("ping", true), ("log", true), ("leaderElection", leader)];
    if endpoint != Endpoint::Readyz {
        checks.extend(
            [
                "serviceaccount-token-controller",
                "node-lifecycle-controller",
                "deployment-controller",
            ]
            .iter()
            .map(|c| (*c, true)),
        );
    }
    checks
}

fn text(code: StatusCode, body: String) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Renders a health answer the way k8s.io/apiserver's healthz handler does.
pub(crate) fn render(endpoint: Endpoint, checks: &[Check], query: &[(String, String)]) -> Response {
    let verbose = query
        .iter()
        .any(|(k, v)| k == "verbose" && v != "false" && v != "0");
    let excluded: Vec<&str> = query
        .iter()
        .filter(|(k, _)| k == "exclude")
        .map(|(_, v)| v.as_str())
        .collect();
    let mut body = String::new();
    let mut failed = false;
    for (name, ok) in checks {
        if excluded.contains(name) {
            body.push_str(&format!("[+]{name} excluded: ok\n"));
        } else if *ok {
            body.push_str(&format!("[+]{name} ok\n"));
        } else {
            failed = true;
            body.push_str(&format!("[-]{name} failed: reason withheld\n"));
        }
    }
    let name = endpoint.name();
    if failed {
        body.push_str(&format!("{name} check failed\n"));
        return text(StatusCode::INTERNAL_SERVER_ERROR, body);
    }
    if !verbose {
        return text(StatusCode::OK, "ok".to_owned());
    }
    body.push_str(&format!("{name} check passed\n"));
    text(StatusCode::OK, body)
}

/// `/<endpoint>/<check>`.
pub(crate) fn render_one(checks: &[Check], check: &str) -> Response {
    match checks.iter().find(|(name, _)| *name == check) {
        Some((_, true)) => text(StatusCode::OK, "ok".to_owned()),
        Some((name, false)) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal server error: {name} failed: reason withheld\n"),
        ),
        None => text(StatusCode::NOT_FOUND, "404 page not found\n".to_owned()),
    }
}

type ChecksFn = fn(&Core, Endpoint) -> Vec<Check>;

fn endpoint_routes<S: Clone + Send + Sync + 'static>(
    core_of: fn(&S) -> &Core,
    checks: ChecksFn,
) -> Router<S> {
    let mut router = Router::new();
    for endpoint in [Endpoint::Livez, Endpoint::Readyz, Endpoint::Healthz] {
        let all = move |State(s): State<S>, Query(q): Query<Vec<(String, String)>>| async move {
            render(endpoint, &checks(core_of(&s), endpoint), &q)
        };
        let one = move |State(s): State<S>, Path(check): Path<String>| async move {
            render_one(&checks(core_of(&s), endpoint), &check)
        };
        router = router
            .route(&format!("/{}", endpoint.name()), get(all))
            .route(&format!("/{}/{{*check}}", endpoint.name()), get(one));
    }
    router
}

pub(crate) fn apiserver_routes() -> Router<ApiState> {
    endpoint_routes(|s: &ApiState| &s.core, apiserver_checks)
}

/// The scheduler's or controller-manager's health server.
pub(crate) fn component_router(core: Arc<Core>, checks: ChecksFn) -> Router {
    endpoint_routes(|c: &Arc<Core>| c, checks).with_state(core)
}

/// etcd's client endpoints. A stopped etcd here is a member without a
/// leader: it still answers, with `health: false`.
pub(crate) fn etcd_router(core: Arc<Core>) -> Router {
    Router::new()
        .route(
            "/health",
            get(|State(core): State<Arc<Core>>| async move {
                let (code, body) = if core.etcd_running() {
                    (StatusCode::OK, json!({"health": "true", "reason": ""}))
                } else {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        json!({"health": "false", "reason": "RAFT NO LEADER"}),
                    )
                };
                (
                    code,
                    [(header::CONTENT_TYPE, "application/json")],
                    body.to_string(),
                )
                    .into_response()
            }),
        )
        .route(
            "/version",
            get(|| async { r#"{"etcdserver":"3.6.4","etcdcluster":"3.6.0"}"# }),
        )
        .route("/metrics", get(etcd_metrics))
        .with_state(core)
}

async fn etcd_metrics(State(core): State<Arc<Core>>) -> Response {
    let up = u8::from(core.etcd_running());
    let changes = core.etcd_leader_changes.load(Ordering::SeqCst);
    let rv = core.store.resource_version();
    let body = format!(
        "# HELP etcd_server_has_leader Whether or not a leader exists. 1 is existence, 0 is not.\n\
         # TYPE etcd_server_has_leader gauge\n\
         etcd_server_has_leader {up}\n\
         # HELP etcd_server_is_leader Whether or not this member is a leader. 1 if is, 0 otherwise.\n\
         # TYPE etcd_server_is_leader gauge\n\
         etcd_server_is_leader {up}\n\
         # HELP etcd_server_leader_changes_seen_total The number of leader changes seen.\n\
         # TYPE etcd_server_leader_changes_seen_total counter\n\
         etcd_server_leader_changes_seen_total {changes}\n\
         # HELP etcd_debugging_mvcc_current_revision The current revision of store.\n\
         # TYPE etcd_debugging_mvcc_current_revision gauge\n\
         etcd_debugging_mvcc_current_revision {rv}\n"
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body(r: Response) -> (StatusCode, String) {
        let code = r.status();
        let bytes = r
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        (code, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn formats() {
        let checks = [("ping", true), ("etcd", true)];
        assert_eq!(
            body(render(Endpoint::Livez, &checks, &[])).await,
            (StatusCode::OK, "ok".into())
        );
        let verbose = [("verbose".to_owned(), String::new())];
        assert_eq!(
            body(render(Endpoint::Livez, &checks, &verbose)).await,
            (
                StatusCode::OK,
                "[+]ping ok\n[+]etcd ok\nlivez check passed\n".into()
            )
        );
        let failing = [("ping", true), ("etcd", false)];
        assert_eq!(
            body(render(Endpoint::Readyz, &failing, &[])).await,
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "[+]ping ok\n[-]etcd failed: reason withheld\nreadyz check failed\n".into()
            )
        );
        let exclude = [
            ("exclude".to_owned(), "etcd".to_owned()),
            ("verbose".to_owned(), "1".to_owned()),
        ];
        assert_eq!(
            body(render(Endpoint::Readyz, &failing, &exclude)).await.1,
            "[+]ping ok\n[+]etcd excluded: ok\nreadyz check passed\n"
        );
        assert_eq!(
            body(render_one(&failing, "ping")).await,
            (StatusCode::OK, "ok".into())
        );
        assert_eq!(
            body(render_one(&failing, "etcd")).await.0,
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            body(render_one(&failing, "nope")).await.0,
            StatusCode::NOT_FOUND
        );
    }
}
