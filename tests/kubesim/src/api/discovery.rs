//! `/version` and the legacy discovery documents.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::{ApiState, json_body, status};
use crate::nodes::KUBELET_VERSION;
use crate::resources::{Kind, RESOURCES};

pub(crate) async fn version() -> Response {
    json_body(
        json!({
            "major": "1",
            "minor": "34",
            "emulationMajor": "1",
            "emulationMinor": "34",
            "minCompatibilityMajor": "1",
            "minCompatibilityMinor": "33",
            "gitVersion": KUBELET_VERSION,
            "gitCommit": "93248f9ae092f571eb870b7664c534bfc7d00f03",
            "gitTreeState": "clean",
            "buildDate": "2025-09-09T19:44:50Z",
            "goVersion": "go1.24.6",
            "compiler": "gc",
            "platform": "linux/amd64",
        })
        .to_string()
        .into_bytes(),
    )
}

pub(crate) async fn core_versions(State(state): State<ApiState>) -> Response {
    let addr = state
        .core
        .apiserver_addrs
        .get(state.instance)
        .map(ToString::to_string);
    json_body(
        json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": addr}],
        })
        .to_string()
        .into_bytes(),
    )
}

fn group_json(group: &str) -> Value {
    let gv = json!({"groupVersion": format!("{group}/v1"), "version": "v1"});
    json!({"name": group, "versions": [gv], "preferredVersion": gv})
}

pub(crate) async fn group_list() -> Response {
    let groups: Vec<Value> = Kind::groups().into_iter().map(group_json).collect();
    json_body(
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
            .to_string()
            .into_bytes(),
    )
}

pub(crate) fn group(group: &str) -> Response {
    if !Kind::groups().contains(&group) {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        );
    }
    let mut body = group_json(group);
    body["kind"] = json!("APIGroup");
    body["apiVersion"] = json!("v1");
    json_body(body.to_string().into_bytes())
}

pub(crate) fn resources(group: &str, version: &str) -> Response {
    let mut list = Vec::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        list.push(json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": ["get", "list", "watch"],
            "shortNames": r.short_names,
        }));
        list.push(json!({
            "name": format!("{}/status", r.plural),
            "singularName": "",
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": ["get"],
        }));
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    json_body(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": list})
            .to_string()
            .into_bytes(),
    )
}
