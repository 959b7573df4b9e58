//! Shared by the receivers' tests: a local HTTP server that records every
//! request and answers as the test says, sample notifications, and a
//! build context with a fixed clock and short backoffs.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use lookout_notify::receivers::{BuildContext, DeliveryOptions, Notifier, build};
use lookout_notify::{Alert, LabelSet, Notification, ReceiverConfig};

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// Path and query, as sent.
    pub uri: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Recorded {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }

    /// A query parameter as sent (still percent-encoded).
    pub fn raw_query(&self, name: &str) -> Option<String> {
        let q = self.uri.split_once('?')?.1;
        q.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == name).then(|| v.to_string())
        })
    }
}

#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Reply {
    pub fn new(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: body.to_string(),
        }
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Reply {
        self.headers.push((name, value.to_string()));
        self
    }
}

type Handler = dyn Fn(&Recorded) -> Reply + Send + Sync;

struct ServerState {
    requests: Mutex<Vec<Recorded>>,
    script: Mutex<VecDeque<Reply>>,
    handler: Box<Handler>,
}

pub struct TestServer {
    pub addr: SocketAddr,
    state: Arc<ServerState>,
}

impl TestServer {
    /// Answers with `handler` (which sees the request) unless a scripted
    /// reply is queued.
    pub async fn start(handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> TestServer {
        let state = Arc::new(ServerState {
            requests: Mutex::new(Vec::new()),
            script: Mutex::new(VecDeque::new()),
            handler: Box::new(handler),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TestServer { addr, state }
    }

    /// Answers the next requests with these, in order, then with the handler.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.script.lock().expect("lock").extend(replies);
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().expect("lock").clone()
    }
}

async fn handle(State(state): State<Arc<ServerState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1 << 24)
        .await
        .map(|b| b.to_vec())
        .unwrap_or_default();
    let uri = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let query = parts
        .uri
        .query()
        .map(|q| {
            q.split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_default();
    let rec = Recorded {
        method: parts.method.to_string(),
        uri,
        path: parts.uri.path().to_string(),
        query,
        headers: parts.headers.clone(),
        body,
        at: Instant::now(),
    };
    let scripted = state.script.lock().expect("lock").pop_front();
    let reply = scripted.unwrap_or_else(|| (state.handler)(&rec));
    state.requests.lock().expect("lock").push(rec);
    let mut resp = Response::new(Body::from(reply.body));
    *resp.status_mut() = StatusCode::from_u16(reply.status).expect("status");
    for (name, value) in reply.headers {
        resp.headers_mut()
            .insert(name, HeaderValue::from_str(&value).expect("header"));
    }
    resp
}

/// A context whose clock reads `at` and whose retries wait 50 ms.
pub fn context_at(at: SystemTime) -> BuildContext {
    BuildContext::new(DeliveryOptions {
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        clock: Arc::new(move || at),
        ..DeliveryOptions::default()
    })
    .expect("context")
}

pub fn context() -> BuildContext {
    context_at(SystemTime::now())
}

pub fn at_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// Builds a receiver from YAML and returns its only notifier.
pub fn one_notifier(yaml: &str, ctx: &BuildContext) -> Arc<dyn Notifier> {
    let cfg: ReceiverConfig = serde_yaml_ng::from_str(yaml).expect("receiver YAML");
    let mut list = build(&cfg, ctx).expect("build");
    assert_eq!(list.len(), 1, "one integration expected");
    list.remove(0)
}

pub fn labels(pairs: &[(&str, &str)]) -> LabelSet {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// 2023-11-14T22:13:20Z.
pub const T0: i64 = 1_700_000_000_000;

/// Two firing KubePodCrashLooping alerts in prod, grouped by alertname
/// and namespace, and one resolved.
pub fn sample() -> Notification {
    let pod = |name: &str, node: &str| Alert {
        labels: labels(&[
            ("alertname", "KubePodCrashLooping"),
            ("namespace", "prod"),
            ("pod", name),
            ("container", "app"),
            ("node", node),
            ("severity", "critical"),
            ("job", "kube-state-metrics"),
        ]),
        annotations: labels(&[
            ("summary", &format!("Pod prod/{name} is crash looping.")),
            (
                "description",
                &format!("Pod prod/{name} (app) restarted 5 times in 10 minutes."),
            ),
            (
                "runbook_url",
                "https://runbooks.example/KubePodCrashLooping",
            ),
        ]),
        starts_at_ms: T0,
        ends_at_ms: None,
        generator_url: "http://lookout:9190/graph?g0.expr=x".to_string(),
    };
    let mut gone = pod("web-0", "n1");
    gone.starts_at_ms = T0 - 3_600_000;
    gone.ends_at_ms = Some(T0 - 60_000);
    Notification {
        receiver: "ops".to_string(),
        group_key: "{}/{}:{alertname=\"KubePodCrashLooping\", namespace=\"prod\"}".to_string(),
        group_labels: labels(&[("alertname", "KubePodCrashLooping"), ("namespace", "prod")]),
        alerts: vec![pod("web-1", "n1"), pod("web-2", "n2"), gone],
        now_ms: T0 + 5_000,
        external_url: "http://lookout:9190".to_string(),
        reason: String::new(),
    }
}

/// Only the resolved alerts of `n`, and time moved so all are resolved.
pub fn all_resolved(n: &Notification) -> Notification {
    let mut n = n.clone();
    for a in &mut n.alerts {
        a.ends_at_ms.get_or_insert(n.now_ms - 1000);
    }
    n
}

/// True when the test may skip for a missing tool: never under CI.
pub fn may_skip(what: &str) -> bool {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{what} is required under CI=true");
    }
    eprintln!("note: {what} is missing; skipping (install it to run this test)");
    true
}
