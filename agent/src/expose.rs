//! The agent's HTTP endpoint: `/metrics` in Prometheus text or OpenMetrics
//! (by `Accept`), health and readiness, and a small index page.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use lookout_protocol::exposition::Format;
use tokio_util::sync::CancellationToken;

use crate::registry::Registry;

pub fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/-/healthy", get(|| async { "ok\n" }))
        .route("/-/ready", get(|| async { "ok\n" }))
        .route("/", get(index))
        .with_state(registry)
}

async fn metrics(State(registry): State<Arc<Registry>>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept);
    let body = tokio::task::spawn_blocking(move || registry.render(format)).await;
    match body {
        Ok(body) => ([(header::CONTENT_TYPE, format.content_type())], body).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("rendering metrics failed: {e}\n"),
        )
            .into_response(),
    }
}

async fn index() -> Html<&'static str> {
    Html(concat!(
        "<!doctype html><title>lookout-agent</title><h1>lookout-agent ",
        env!("CARGO_PKG_VERSION"),
        "</h1><ul><li><a href=\"/metrics\">/metrics</a>: everything this node reports</li>",
        "<li><a href=\"/-/healthy\">/-/healthy</a></li></ul>"
    ))
}

/// A bound listener and the server running on it.
pub struct Server {
    pub addr: SocketAddr,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    pub async fn bind(addr: SocketAddr, registry: Arc<Registry>) -> anyhow::Result<Server> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
        let addr = listener.local_addr()?;
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        let app = router(registry);
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
            if let Err(e) = served {
                tracing::error!("HTTP server stopped: {e}");
            }
        });
        Ok(Server { addr, cancel, task })
    }

    pub async fn stop(self) {
        self.cancel.cancel();
        let _ = self.task.await;
    }
}
