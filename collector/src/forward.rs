//! Onward remote write: a copy of everything ingested goes to other
//! Prometheus-compatible stores (for operators who outgrow one collector),
//! each through its own on-disk outbox, with the same sender, retries and
//! drop accounting as the agent's push.

use std::path::Path;
use std::sync::Arc;

use lookout_agent::shipper::{self, Endpoint, EndpointSpec, OnChange};
use lookout_protocol::Family;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::ForwardConfig;

#[derive(Default)]
pub struct Forwarders {
    endpoints: Vec<Arc<Endpoint>>,
}

impl Forwarders {
    pub fn start(
        configs: &[ForwardConfig],
        storage: &Path,
        cancel: &CancellationToken,
        tasks: &mut JoinSet<()>,
    ) -> anyhow::Result<Forwarders> {
        let mut endpoints = Vec::new();
        for c in configs {
            endpoints.push(Arc::new(Endpoint::open(EndpointSpec {
                name: c.name.clone(),
                url: &c.url,
                bearer_token_file: c.bearer_token_file.as_deref(),
                timeout: c.timeout,
                outbox_dir: storage.join("forward").join(&c.name),
                outbox_max_bytes: c.outbox_max_mib << 20,
                user_agent: concat!("lookout/", env!("CARGO_PKG_VERSION")).to_string(),
                node: None,
            })?));
        }
        let on_change: OnChange = Arc::new(|| {});
        for e in &endpoints {
            tasks.spawn(shipper::send_loop(
                e.clone(),
                on_change.clone(),
                cancel.child_token(),
            ));
            tracing::info!(forward = e.name(), "forwarding ingested samples");
        }
        Ok(Forwarders { endpoints })
    }

    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// Queues a remote-write body for every forwarder. Blocking (outbox
    /// file I/O); a failure is logged and counted by the outbox.
    pub fn enqueue(&self, body: &[u8]) {
        let now = lookout_agent::clock::unix_millis(std::time::SystemTime::now());
        for e in &self.endpoints {
            if let Err(err) = e.enqueue(now, body) {
                tracing::error!(
                    forward = e.name(),
                    "cannot queue a batch for forwarding: {err}; it is not forwarded"
                );
            }
        }
    }

    pub fn families(&self, now_ms: i64) -> Vec<Family> {
        if self.endpoints.is_empty() {
            return Vec::new();
        }
        shipper::stat_families("lookout_forward", &self.endpoints, now_ms)
    }
}
