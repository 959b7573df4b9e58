//! The HTTP client of the health probes: GET with a deadline, a small body
//! limit, http or https (web roots, a given CA, or no verification for the
//! self-signed certificates control-plane components serve by default).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::Request;
use hyper::header::{AUTHORIZATION, HeaderValue};
use lookout_agent::https::{self, HttpsClient, Verify};

/// Health answers are a few hundred bytes; `/metrics` of etcd a few
/// hundred kilobytes.
const MAX_BODY: usize = 4 << 20;

#[derive(Clone)]
pub struct ProbeClient {
    client: HttpsClient,
    timeout: Duration,
}

/// What a probe got: the status and body, or why there was no answer.
#[derive(Debug, Clone)]
pub enum Answer {
    Http { status: u16, body: String },
    Failed(String),
}

impl ProbeClient {
    pub fn new(
        timeout: Duration,
        ca_file: Option<&std::path::Path>,
        insecure: bool,
    ) -> anyhow::Result<ProbeClient> {
        // The agent's client: the same TLS set-up (ring, a CA file or the
        // web roots, or any certificate) serves both.
        let verify = if insecure {
            Verify::Nothing
        } else {
            Verify::Roots(ca_file)
        };
        let client =
            https::client(timeout, verify).map_err(|e| anyhow::anyhow!("kube.probes: {e:#}"))?;
        Ok(ProbeClient { client, timeout })
    }

    pub async fn get(&self, url: &str) -> Answer {
        self.get_with(url, None, MAX_BODY).await
    }

    /// GET with an optional `Authorization` header and a body limit of
    /// `max_body` bytes (a route table can be far larger than a health
    /// answer).
    pub async fn get_with(
        &self,
        url: &str,
        authorization: Option<&HeaderValue>,
        max_body: usize,
    ) -> Answer {
        let uri: hyper::Uri = match url.parse() {
            Ok(u) => u,
            Err(e) => return Answer::Failed(format!("bad URL {url:?}: {e}")),
        };
        let mut req = match Request::get(uri).body(Empty::<Bytes>::new()) {
            Ok(r) => r,
            Err(e) => return Answer::Failed(format!("bad request for {url:?}: {e}")),
        };
        if let Some(v) = authorization {
            req.headers_mut().insert(AUTHORIZATION, v.clone());
        }
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| error_chain(&e))?;
            let status = resp.status().as_u16();
            let body = Limited::new(resp.into_body(), max_body)
                .collect()
                .await
                .map_err(|e| format!("reading the answer: {e}"))?
                .to_bytes();
            Ok::<_, String>(Answer::Http {
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
            })
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => Answer::Failed(e),
            Err(_) => Answer::Failed(format!(
                "no answer within {}",
                humantime::format_duration(self.timeout)
            )),
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}
