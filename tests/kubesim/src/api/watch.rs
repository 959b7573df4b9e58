//! `GET` of a collection with `watch=1`: newline-delimited JSON events over
//! a chunked response.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::sync::{broadcast, mpsc};
use tokio::time::MissedTickBehavior;

use super::{is_true, list, status, status_object, store_error};
use crate::cluster::Core;
use crate::resources::Kind;
use crate::selectors::Selector;
use crate::store::{self, Event, EventType, Object, StoreError, WatchFrom};

/// How many ready events go into one chunk at most.
const MAX_BATCH: usize = 512;

struct WatchRequest {
    kind: Kind,
    namespace: Option<String>,
    selector: Selector,
    bookmarks: bool,
    initial_events_end: bool,
    timeout: Duration,
}

pub(crate) fn serve(
    core: &Arc<Core>,
    kind: Kind,
    namespace: Option<&str>,
    query: &HashMap<String, String>,
) -> Response {
    let selector = match list::selector(kind, query) {
        Ok(s) => s,
        Err(e) => return list::bad_selector(&e),
    };
    let send_initial = is_true(query.get("sendInitialEvents"));
    let from = match query.get("resourceVersion").map(String::as_str) {
        None | Some("" | "0") => WatchFrom::Current,
        Some(_) if send_initial => WatchFrom::Current,
        Some(rv) => match rv.parse::<u64>() {
            Ok(rv) => WatchFrom::After(rv),
            Err(_) => {
                return status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!("resourceVersion: Invalid value: \"{rv}\": must be an integer"),
                );
            }
        },
    };
    let timeout = match query.get("timeoutSeconds").map(|t| t.parse::<u64>()) {
        Some(Ok(secs)) if secs > 0 => Duration::from_secs(secs),
        Some(Err(_)) => {
            return status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "timeoutSeconds: Invalid value",
            );
        }
        _ => core
            .config
            .watch_timeout
            .unwrap_or_else(|| Duration::from_secs(300 + core.random(300))),
    };
    let request = WatchRequest {
        kind,
        namespace: namespace.map(str::to_owned),
        selector,
        bookmarks: is_true(query.get("allowWatchBookmarks")),
        initial_events_end: send_initial,
        timeout,
    };
    let feed = match core.store.watch(kind, from, namespace, &request.selector) {
        Ok(feed) => feed,
        // A real apiserver answers 200 and reports an expired version as
        // the stream's only event.
        Err(StoreError::Expired(message)) => {
            let mut line = br#"{"type":"ERROR","object":"#.to_vec();
            line.extend_from_slice(
                status_object(410, "Expired", &message)
                    .to_string()
                    .as_bytes(),
            );
            line.extend_from_slice(b"}\n");
            return chunked(Body::from(line));
        }
        Err(e) => return store_error(&e),
    };
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    tokio::spawn(run(core.clone(), request, feed, tx));
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, Infallible>(chunk), rx))
    });
    chunked(Body::from_stream(stream))
}

fn chunked(body: Body) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-cache, private"),
        ],
        body,
    )
        .into_response()
}

fn push_event(out: &mut Vec<u8>, ty: EventType, object: &Object, kind: Kind) {
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(ty.as_str().as_bytes());
    out.extend_from_slice(b"\",\"object\":");
    object.write_typed(kind.info(), out);
    out.extend_from_slice(b"}\n");
}

fn push_bookmark(out: &mut Vec<u8>, kind: Kind, rv: u64, initial_events_end: bool) {
    let resource = kind.info();
    let annotations = if initial_events_end {
        r#","annotations":{"k8s.io/initial-events-end":"true"}"#
    } else {
        ""
    };
    out.extend_from_slice(
        format!(
            "{{\"type\":\"BOOKMARK\",\"object\":{{\"kind\":\"{}\",\"apiVersion\":\"{}\",\"metadata\":{{\"resourceVersion\":\"{rv}\"{annotations}}}}}}}\n",
            resource.kind,
            resource.api_version()
        )
        .as_bytes(),
    );
}

impl WatchRequest {
    fn in_scope(&self, object: &Object) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| object.namespace() == ns)
            && self.selector.matches(object)
    }

    /// Appends what this watcher sees of `event`. An object that starts or
    /// stops matching the selectors is ADDED or DELETED for this watcher.
    fn render(&self, event: &Event, out: &mut Vec<u8>) {
        let now = self.in_scope(&event.object);
        let before = event.prev.as_deref().is_some_and(|p| self.in_scope(p));
        match event.ty {
            EventType::Added if now => push_event(out, EventType::Added, &event.object, self.kind),
            EventType::Deleted if now || before => {
                push_event(out, EventType::Deleted, &event.object, self.kind)
            }
            EventType::Modified => match (before, now) {
                (true, true) => push_event(out, EventType::Modified, &event.object, self.kind),
                (false, true) => push_event(out, EventType::Added, &event.object, self.kind),
                (true, false) => {
                    // The last state this watcher matched, at the change's version.
                    if let Some(prev) = &event.prev
                        && let Ok(gone) =
                            store::restamp(self.kind.info(), prev, event.resource_version())
                    {
                        push_event(out, EventType::Deleted, &gone, self.kind);
                    }
                }
                (false, false) => {}
            },
            _ => {}
        }
    }
}

async fn run(
    core: Arc<Core>,
    request: WatchRequest,
    feed: store::WatchFeed,
    tx: mpsc::Sender<Bytes>,
) {
    let store::WatchFeed {
        initial,
        backlog,
        mut live,
        after,
        resource_version,
    } = feed;
    // Highest resourceVersion sent; a bookmark never goes below it.
    let mut sent_rv = after;
    let mut out = Vec::new();
    for object in &initial {
        push_event(&mut out, EventType::Added, object, request.kind);
        if out.len() > 1 << 20
            && tx
                .send(Bytes::from(std::mem::take(&mut out)))
                .await
                .is_err()
        {
            return;
        }
    }
    for event in backlog.iter().filter(|e| e.resource_version() > after) {
        request.render(event, &mut out);
        sent_rv = sent_rv.max(event.resource_version());
    }
    if request.initial_events_end {
        push_bookmark(&mut out, request.kind, resource_version.max(sent_rv), true);
    }
    if !out.is_empty()
        && tx
            .send(Bytes::from(std::mem::take(&mut out)))
            .await
            .is_err()
    {
        return;
    }

    let deadline = tokio::time::sleep(request.timeout);
    tokio::pin!(deadline);
    let mut bookmark = tokio::time::interval(core.config.bookmark_interval);
    bookmark.set_missed_tick_behavior(MissedTickBehavior::Delay);
    bookmark.tick().await;
    loop {
        tokio::select! {
            () = &mut deadline => return,
            () = tx.closed() => return,
            () = core.shutdown.cancelled() => return,
            received = live.recv() => {
                let Some(event) = accept(received) else { return };
                render_live(&request, &event, after, &mut sent_rv, &mut out);
                // Batch whatever else is already queued into the same chunk.
                if !drain_queued(&mut live, MAX_BATCH, &request, after, &mut sent_rv, &mut out) {
                    return;
                }
            }
            _ = bookmark.tick(), if request.bookmarks => {
                // Read the version first: every event at or below it is
                // already queued, so draining the queue makes the bookmark true.
                let rv = core.store.resource_version();
                if !drain_queued(&mut live, usize::MAX, &request, after, &mut sent_rv, &mut out) {
                    return;
                }
                sent_rv = sent_rv.max(rv);
                push_bookmark(&mut out, request.kind, sent_rv, false);
            }
        }
        if !out.is_empty()
            && tx
                .send(Bytes::from(std::mem::take(&mut out)))
                .await
                .is_err()
        {
            return;
        }
    }
}

/// A watcher that fell too far behind is closed, as the apiserver does;
/// the client resumes from its last version.
fn accept(received: Result<Arc<Event>, broadcast::error::RecvError>) -> Option<Arc<Event>> {
    match received {
        Ok(event) => Some(event),
        Err(broadcast::error::RecvError::Lagged(n)) => {
            tracing::info!(missed = n, "closing a watch that fell behind");
            None
        }
        Err(broadcast::error::RecvError::Closed) => None,
    }
}

/// Renders up to `limit` events already queued. False when the watch must
/// end: the channel closed, or the watcher fell behind.
fn drain_queued(
    live: &mut broadcast::Receiver<Arc<Event>>,
    limit: usize,
    request: &WatchRequest,
    after: u64,
    sent_rv: &mut u64,
    out: &mut Vec<u8>,
) -> bool {
    for _ in 0..limit {
        match live.try_recv() {
            Ok(event) => render_live(request, &event, after, sent_rv, out),
            Err(broadcast::error::TryRecvError::Empty) => return true,
            Err(_) => return false,
        }
    }
    true
}

fn render_live(
    request: &WatchRequest,
    event: &Event,
    after: u64,
    sent_rv: &mut u64,
    out: &mut Vec<u8>,
) {
    if event.resource_version() <= after {
        return;
    }
    request.render(event, out);
    *sent_rv = (*sent_rv).max(event.resource_version());
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::store::Store;

    fn request(field_selector: Option<&str>) -> WatchRequest {
        WatchRequest {
            kind: Kind::PODS,
            namespace: None,
            selector: Selector::parse(None, field_selector, Kind::PODS.info()).expect("valid"),
            bookmarks: false,
            initial_events_end: false,
            timeout: Duration::from_secs(1),
        }
    }

    fn lines(out: &[u8]) -> Vec<Value> {
        out.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).expect("one JSON event per line"))
            .collect()
    }

    #[test]
    fn objects_leaving_or_entering_the_selection() {
        let store = Store::new(0, 100);
        store
            .create(
                Kind::PODS,
                json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": {"nodeName": "n1"}}),
            )
            .expect("create");
        let mut feed = store
            .watch(Kind::PODS, WatchFrom::After(1), None, &Selector::default())
            .expect("watch");
        store
            .update(Kind::PODS, "ns", "p", |v| {
                v["spec"]["nodeName"] = json!("n2");
                true
            })
            .expect("update");
        let event = feed.live.try_recv().expect("an event");

        let mut out = Vec::new();
        request(Some("spec.nodeName=n1")).render(&event, &mut out);
        let seen = lines(&out);
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0]["type"], "DELETED");
        assert_eq!(seen[0]["object"]["kind"], "Pod");
        assert_eq!(
            seen[0]["object"]["spec"]["nodeName"], "n1",
            "the state that matched"
        );
        assert_eq!(
            seen[0]["object"]["metadata"]["resourceVersion"], "2",
            "at the change's version"
        );

        let mut out = Vec::new();
        request(Some("spec.nodeName=n2")).render(&event, &mut out);
        assert_eq!(lines(&out)[0]["type"], "ADDED");

        let mut out = Vec::new();
        request(None).render(&event, &mut out);
        assert_eq!(lines(&out)[0]["type"], "MODIFIED");

        let mut out = Vec::new();
        request(Some("spec.nodeName=n3")).render(&event, &mut out);
        assert!(out.is_empty());

        let mut out = Vec::new();
        push_bookmark(&mut out, Kind::LEASES, 42, true);
        let bookmark = &lines(&out)[0];
        assert_eq!(bookmark["type"], "BOOKMARK");
        assert_eq!(bookmark["object"]["apiVersion"], "coordination.k8s.io/v1");
        assert_eq!(bookmark["object"]["metadata"]["resourceVersion"], "42");
        assert_eq!(
            bookmark["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
            "true"
        );
    }
}
