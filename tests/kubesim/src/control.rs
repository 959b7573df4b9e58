//! The control API: scripted faults and changes, JSON answers.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::Error;
use crate::cluster::Component;
use crate::controllers;
use crate::sim::Sim;

type S = State<Arc<Sim>>;

fn ok() -> Response {
    (StatusCode::OK, axum::Json(json!({"ok": true}))).into_response()
}

fn fail(code: StatusCode, message: &str) -> Response {
    (code, axum::Json(json!({"ok": false, "error": message}))).into_response()
}

fn answer(result: Result<(), Error>) -> Response {
    match result {
        Ok(()) => ok(),
        Err(e) => {
            let code = match e {
                Error::UnknownNode(_)
                | Error::UnknownPod { .. }
                | Error::UnknownDeployment { .. }
                | Error::UnknownApiserver(..)
                | Error::UnknownRouter(..)
                | Error::UnknownComponent(_) => StatusCode::NOT_FOUND,
                Error::Config(_) => StatusCode::BAD_REQUEST,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            fail(code, &e.to_string())
        }
    }
}

pub(crate) fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route(
            "/sim/state",
            get(|State(sim): S| async move { axum::Json(sim.state()) }),
        )
        .route(
            "/sim/nodes/{node}/kill",
            post(|State(sim): S, Path(node): Path<String>| async move {
                answer(sim.kill_node(&node).await)
            }),
        )
        .route(
            "/sim/nodes/{node}/revive",
            post(|State(sim): S, Path(node): Path<String>| async move {
                answer(sim.revive_node(&node).await)
            }),
        )
        .route(
            "/sim/nodes/{node}/heartbeats/stop",
            post(|State(sim): S, Path(node): Path<String>| async move {
                answer(sim.set_heartbeats(&node, false))
            }),
        )
        .route(
            "/sim/nodes/{node}/heartbeats/start",
            post(|State(sim): S, Path(node): Path<String>| async move {
                answer(sim.set_heartbeats(&node, true))
            }),
        )
        .route(
            "/sim/nodes/{node}/kube-proxy/stale",
            post(|State(sim): S, Path(node): Path<String>| async move {
                answer(sim.make_kube_proxy_stale(&node))
            }),
        )
        .route(
            "/sim/pods/{namespace}/{pod}/crashloop",
            post(
                |State(sim): S, Path((ns, pod)): Path<(String, String)>| async move {
                    answer(controllers::start_crashloop(&sim.core, &ns, &pod))
                },
            ),
        )
        .route("/sim/deployments/{namespace}/{name}/scale", post(scale))
        .route(
            "/sim/balancer/break",
            post(|State(sim): S| async move { answer(sim.set_balancer(false).await) }),
        )
        .route(
            "/sim/balancer/repair",
            post(|State(sim): S| async move { answer(sim.set_balancer(true).await) }),
        )
        .route("/sim/apiservers/{index}/{action}", post(apiserver))
        .route("/sim/components/{component}/{action}", post(component))
        .route("/sim/routers/{index}/{action}", post(l7_router))
        .route(
            "/sim/compact",
            post(|State(sim): S| async move {
                sim.core.store.compact();
                ok()
            }),
        )
        .fallback(|| async { fail(StatusCode::NOT_FOUND, "no such control route") })
        .with_state(sim)
}

async fn scale(
    State(sim): S,
    Path((ns, name)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(Ok(replicas)) = query.get("replicas").map(|r| r.parse::<usize>()) else {
        return fail(
            StatusCode::BAD_REQUEST,
            "replicas must be a non-negative integer",
        );
    };
    let stuck = match query.get("stuck").map(String::as_str) {
        None | Some("false" | "0") => false,
        Some("true" | "1" | "") => true,
        Some(_) => return fail(StatusCode::BAD_REQUEST, "stuck must be true or false"),
    };
    answer(controllers::scale(&sim.core, &ns, &name, replicas, stuck))
}

fn start_or_stop(action: &str) -> Option<bool> {
    match action {
        "start" => Some(true),
        "stop" => Some(false),
        _ => None,
    }
}

async fn apiserver(State(sim): S, Path((index, action)): Path<(String, String)>) -> Response {
    let Some(up) = start_or_stop(&action) else {
        return fail(StatusCode::NOT_FOUND, "no such control route");
    };
    let Ok(index) = index.parse::<usize>() else {
        return fail(
            StatusCode::NOT_FOUND,
            &format!("no apiserver instance {index:?}"),
        );
    };
    answer(sim.set_apiserver(index, up).await)
}

async fn component(State(sim): S, Path((component, action)): Path<(String, String)>) -> Response {
    let Some(up) = start_or_stop(&action) else {
        return fail(StatusCode::NOT_FOUND, "no such control route");
    };
    match component.parse::<Component>() {
        Ok(c) => answer(sim.set_component(c, up).await),
        Err(e) => answer(Err(e)),
    }
}

async fn l7_router(State(sim): S, Path((index, action)): Path<(String, String)>) -> Response {
    let Ok(index) = index.parse::<usize>() else {
        return fail(StatusCode::NOT_FOUND, &format!("no router {index:?}"));
    };
    match action.as_str() {
        "freeze" => answer(sim.freeze_router(index)),
        "unfreeze" => answer(sim.unfreeze_router(index)),
        "stop" => answer(sim.set_router(index, false).await),
        "start" => answer(sim.set_router(index, true).await),
        _ => fail(StatusCode::NOT_FOUND, "no such control route"),
    }
}
