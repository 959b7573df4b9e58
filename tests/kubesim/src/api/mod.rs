//! The apiserver's HTTP API: discovery, GET of one object, list and watch.
//! Every instance serves the same router over the shared store.

mod discovery;
mod list;
mod watch;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde_json::{Value, json};

use crate::cluster::Core;
use crate::health;
use crate::resources::Kind;
use crate::store::StoreError;

#[derive(Clone)]
pub(crate) struct ApiState {
    pub core: Arc<Core>,
    pub instance: usize,
}

pub(crate) fn router(core: Arc<Core>, instance: usize) -> Router {
    Router::new()
        .merge(health::apiserver_routes())
        .route("/version", get(discovery::version))
        .route("/api", get(discovery::core_versions))
        .route("/apis", get(discovery::group_list))
        .route("/api/{*path}", any(core_group))
        .route("/apis/{*path}", any(named_group))
        .fallback(|| async { not_found_path() })
        .with_state(ApiState { core, instance })
}

/// A `Status` error body with its HTTP code.
pub(crate) fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    status_with(code, reason, message, None)
}

fn status_with(code: StatusCode, reason: &str, message: &str, details: Option<Value>) -> Response {
    let mut body = status_object(code.as_u16(), reason, message);
    if let Some(d) = details {
        body["details"] = d;
    }
    (code, json_body(body.to_string().into_bytes())).into_response()
}

pub(crate) fn status_object(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    })
}

pub(crate) fn json_body(bytes: Vec<u8>) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(bytes))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn not_found_path() -> Response {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        "the server could not find the requested resource",
    )
}

pub(crate) fn store_error(e: &StoreError) -> Response {
    match e {
        StoreError::NotFound { plural, name } => status_with(
            StatusCode::NOT_FOUND,
            "NotFound",
            &e.to_string(),
            Some(json!({"name": name, "kind": plural})),
        ),
        StoreError::AlreadyExists { .. } => {
            status(StatusCode::CONFLICT, "AlreadyExists", &e.to_string())
        }
        StoreError::Invalid(m) => status(StatusCode::BAD_REQUEST, "BadRequest", m),
        StoreError::Expired(m) => status(StatusCode::GONE, "Expired", m),
    }
}

/// What a path under `/api` or `/apis` names.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    /// `/apis/{group}`
    Group(String),
    /// `/api/v1`, `/apis/{group}/{version}`
    Resources { group: String, version: String },
    Collection {
        kind: Kind,
        namespace: Option<String>,
    },
    Object {
        kind: Kind,
        namespace: Option<String>,
        name: String,
    },
}

/// Parses the part after `/api/` (core) or `/apis/`.
fn parse_target(core_group: bool, path: &str) -> Option<Target> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest) = if core_group {
        let (version, rest) = segments.split_first()?;
        ("", *version, rest)
    } else {
        match segments.as_slice() {
            [group] => return Some(Target::Group((*group).to_owned())),
            [group, version, rest @ ..] => (*group, *version, rest),
            _ => return None,
        }
    };
    let lookup = |plural: &str| Kind::lookup(group, version, plural);
    let owned = |s: &str| s.to_owned();
    match rest {
        [] => Kind::all()
            .any(|k| k.info().group == group && k.info().version == version)
            .then(|| Target::Resources {
                group: owned(group),
                version: owned(version),
            }),
        ["namespaces", ns, plural, tail @ ..] => {
            let kind = lookup(plural).filter(|k| k.info().namespaced)?;
            let namespace = Some(owned(ns));
            match tail {
                [] => Some(Target::Collection { kind, namespace }),
                [name] | [name, "status"] => Some(Target::Object {
                    kind,
                    namespace,
                    name: owned(name),
                }),
                _ => None,
            }
        }
        [plural, tail @ ..] => {
            let kind = lookup(plural)?;
            match tail {
                [] => Some(Target::Collection {
                    kind,
                    namespace: None,
                }),
                [name] | [name, "status"] if !kind.info().namespaced => Some(Target::Object {
                    kind,
                    namespace: None,
                    name: owned(name),
                }),
                _ => None,
            }
        }
    }
}

async fn core_group(
    State(state): State<ApiState>,
    method: Method,
    Path(path): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    serve(state, method, true, &path, query)
}

async fn named_group(
    State(state): State<ApiState>,
    method: Method,
    Path(path): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    serve(state, method, false, &path, query)
}

fn serve(
    state: ApiState,
    method: Method,
    core_group: bool,
    path: &str,
    query: HashMap<String, String>,
) -> Response {
    let Some(target) = parse_target(core_group, path) else {
        return not_found_path();
    };
    if method != Method::GET && method != Method::HEAD {
        return status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "the simulator serves reads only: get, list and watch",
        );
    }
    match target {
        Target::Group(group) => discovery::group(&group),
        Target::Resources { group, version } => discovery::resources(&group, &version),
        Target::Object {
            kind,
            namespace,
            name,
        } => get_object(&state.core, kind, namespace.as_deref().unwrap_or(""), &name),
        Target::Collection { kind, namespace } => {
            if is_true(query.get("watch")) {
                watch::serve(&state.core, kind, namespace.as_deref(), &query)
            } else {
                list::serve(&state.core, kind, namespace.as_deref(), &query)
            }
        }
    }
}

pub(crate) fn is_true(v: Option<&String>) -> bool {
    v.is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

fn get_object(core: &Core, kind: Kind, namespace: &str, name: &str) -> Response {
    match core.store.get(kind, namespace, name) {
        Some(object) => {
            let mut out = Vec::with_capacity(object.json().len() + 64);
            object.write_typed(kind.info(), &mut out);
            json_body(out)
        }
        None => store_error(&StoreError::NotFound {
            plural: kind.info().plural,
            name: name.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            parse_target(true, "v1/pods"),
            Some(Target::Collection {
                kind: Kind::PODS,
                namespace: None
            })
        );
        assert_eq!(
            parse_target(true, "v1/namespaces/ns1/pods/p"),
            Some(Target::Object {
                kind: Kind::PODS,
                namespace: Some("ns1".into()),
                name: "p".into()
            })
        );
        assert_eq!(
            parse_target(true, "v1/namespaces/kube-system"),
            Some(Target::Object {
                kind: Kind::NAMESPACES,
                namespace: None,
                name: "kube-system".into()
            })
        );
        assert_eq!(
            parse_target(false, "apps/v1/namespaces/a/deployments"),
            Some(Target::Collection {
                kind: Kind::DEPLOYMENTS,
                namespace: Some("a".into())
            })
        );
        assert_eq!(
            parse_target(false, "coordination.k8s.io/v1/leases"),
            Some(Target::Collection {
                kind: Kind::LEASES,
                namespace: None
            })
        );
        assert_eq!(parse_target(true, "v1/pods/p"), None);
        assert_eq!(parse_target(true, "v1/widgets"), None);
        assert_eq!(parse_target(false, "apps/v1/pods"), None);
        assert_eq!(parse_target(true, "v1/namespaces/a/nodes"), None);
        assert!(matches!(
            parse_target(false, "apps"),
            Some(Target::Group(_))
        ));
        assert!(matches!(
            parse_target(true, "v1"),
            Some(Target::Resources { .. })
        ));
    }
}
