//! Following a Kubernetes cluster: kube-rs watchers keep a compact copy of
//! the objects (`state`), which is written every interval as
//! kube-state-metrics' series, with transitions counted and vanished
//! series marked stale; the probes (`crate::probe`) read the same state
//! for the nodes to probe and the heartbeats.

pub mod config;
pub mod objects;
pub mod series;
pub mod state;
/// The table of one kind's objects, shared with the agent's pod watch.
pub use lookout_agent::kube::table;
pub mod watch;

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::serve::App;
use state::ClusterState;
use watch::Shared;

/// Series appended per call while writing the cluster state, so a large
/// cluster's round never sits in memory whole.
const WRITE_BATCH: usize = 5_000;

/// Starts the watchers, the state writer and the probes.
pub async fn start(
    app: &Arc<App>,
    cancel: &CancellationToken,
    tasks: &mut JoinSet<()>,
) -> anyhow::Result<Option<Shared>> {
    let cfg = app.cfg.kube.clone();
    if !cfg.enabled {
        return Ok(None);
    }
    let (client, server) =
        lookout_agent::kube::client(cfg.kubeconfig.as_deref(), "kube.kubeconfig").await?;
    tracing::info!(server = %server, "following the Kubernetes cluster");
    let state: Shared = Arc::new(Mutex::new(ClusterState::default()));
    watch::start_all(&client, &state, cancel, tasks);
    tasks.spawn(write_loop(app.clone(), state.clone(), cancel.clone()));
    let prober = crate::probe::Prober::new(&cfg, state.clone(), Some(server))?;
    tasks.spawn(prober.run(app.clone(), cancel.clone()));
    Ok(Some(state))
}

async fn write_loop(app: Arc<App>, state: Shared, cancel: CancellationToken) {
    let cfg = &app.cfg.kube;
    let grace_ms = cfg.node_heartbeat_grace.as_millis() as i64;
    let mut tick = tokio::time::interval(cfg.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let app2 = app.clone();
        let state = state.clone();
        let done = tokio::task::spawn_blocking(move || {
            let snapshot = state.lock().snapshot(app2.now_ms(), grace_ms);
            snapshot.write(WRITE_BATCH, |batch| app2.append_local(batch))
        })
        .await;
        match done {
            Ok(Ok(n)) => tracing::debug!(series = n, "cluster state written"),
            Ok(Err(e)) => tracing::error!("cannot store the cluster state: {e}"),
            Err(e) => tracing::error!("cluster state write task failed: {e}"),
        }
    }
}
