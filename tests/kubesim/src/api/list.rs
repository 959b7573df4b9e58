//! `GET` of a collection without `watch`.

use std::collections::HashMap;

use axum::http::StatusCode;
use axum::response::Response;

use super::{json_body, status, store_error};
use crate::cluster::Core;
use crate::resources::Kind;
use crate::selectors::{Selector, SelectorError};
use crate::store::ListOptions;

/// Parses the selectors shared by list and watch.
pub(crate) fn selector(
    kind: Kind,
    query: &HashMap<String, String>,
) -> Result<Selector, SelectorError> {
    Selector::parse(
        query.get("labelSelector").map(String::as_str),
        query.get("fieldSelector").map(String::as_str),
        kind.info(),
    )
}

/// A 400 for a bad selector.
pub(crate) fn bad_selector(e: &SelectorError) -> Response {
    status(StatusCode::BAD_REQUEST, "BadRequest", &e.to_string())
}

pub(crate) fn serve(
    core: &Core,
    kind: Kind,
    namespace: Option<&str>,
    query: &HashMap<String, String>,
) -> Response {
    let selector = match selector(kind, query) {
        Ok(s) => s,
        Err(e) => return bad_selector(&e),
    };
    let limit = match query.get("limit").map(|l| l.parse::<usize>()) {
        None => None,
        Some(Ok(l)) => Some(l),
        Some(Err(_)) => {
            return status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "limit: Invalid value: must be a non-negative integer",
            );
        }
    };
    let exact = if query.get("resourceVersionMatch").map(String::as_str) == Some("Exact") {
        match query.get("resourceVersion").map(|rv| rv.parse::<u64>()) {
            Some(Ok(rv)) if rv > 0 => Some(rv),
            _ => {
                return status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "resourceVersionMatch=Exact requires a non-zero resourceVersion",
                );
            }
        }
    } else {
        None
    };
    let continue_token = query
        .get("continue")
        .map(String::as_str)
        .filter(|c| !c.is_empty());
    let opts = ListOptions {
        namespace,
        selector,
        limit,
        continue_token,
        exact,
    };
    let page = match core.store.list(kind, &opts) {
        Ok(page) => page,
        Err(e) => return store_error(&e),
    };
    let resource = kind.info();
    let size: usize = page.items.iter().map(|o| o.json().len() + 1).sum();
    let mut out = Vec::with_capacity(size + 256);
    out.extend_from_slice(b"{\"kind\":\"");
    out.extend_from_slice(resource.list_kind().as_bytes());
    out.extend_from_slice(b"\",\"apiVersion\":\"");
    out.extend_from_slice(resource.api_version().as_bytes());
    out.extend_from_slice(b"\",\"metadata\":{\"resourceVersion\":\"");
    out.extend_from_slice(page.resource_version.to_string().as_bytes());
    out.push(b'"');
    if let Some(token) = &page.continue_token {
        out.extend_from_slice(b",\"continue\":\"");
        out.extend_from_slice(token.as_bytes());
        out.push(b'"');
    }
    out.extend_from_slice(b"},\"items\":[");
    for (i, item) in page.items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // Items go without kind/apiVersion, as the real apiserver sends them.
        out.extend_from_slice(item.json());
    }
    out.extend_from_slice(b"]}");
    json_body(out)
}
