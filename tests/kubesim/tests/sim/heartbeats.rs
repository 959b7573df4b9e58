//! Node heartbeats through the balancer and the node lifecycle controller.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ListParams, ResourceExt};
use lookout_kubesim::SimConfig;

use crate::common::{client, control, eventually, start};

async fn renew_times(leases: &Api<Lease>) -> anyhow::Result<BTreeMap<String, Option<MicroTime>>> {
    let list = leases.list(&ListParams::default()).await?;
    Ok(list
        .items
        .iter()
        .map(|l| {
            let renewed = l.spec.as_ref().and_then(|s| s.renew_time.clone());
            (l.name_any(), renewed)
        })
        .collect())
}

fn ready_status(node: &Node) -> String {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.clone())
        .unwrap_or_default()
}

fn unreachable_taints(node: &Node) -> Vec<String> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .map(|t| {
            t.iter()
                .filter(|t| t.key == "node.kubernetes.io/unreachable")
                .map(|t| t.effect.clone())
                .collect()
        })
        .unwrap_or_default()
}

async fn readiness(nodes: &Api<Node>) -> anyhow::Result<BTreeMap<String, String>> {
    Ok(nodes
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .map(|n| (n.name_any(), ready_status(n)))
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balancer_outage_stops_heartbeats_and_nodes_go_unknown() -> anyhow::Result<()> {
    let sim = start(SimConfig {
        nodes: 4,
        node_grace: Duration::from_secs(3),
        ..crate::common::small()
    })
    .await?;
    // Observe directly: the balancer is about to break.
    let client = client(sim.apiserver_url(0).expect("instance 0"))?;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let nodes: Api<Node> = Api::all(client.clone());

    let before = renew_times(&leases).await?;
    assert_eq!(before.len(), 4);
    let lease = leases.get("node-0002").await?;
    let spec = lease.spec.expect("lease spec");
    assert_eq!(spec.holder_identity.as_deref(), Some("node-0002"));
    assert_eq!(spec.lease_duration_seconds, Some(40));
    eventually(Duration::from_secs(5), "every lease renewed", || async {
        let now = renew_times(&leases).await?;
        Ok(now.iter().all(|(name, t)| before[name] < *t).then_some(()))
    })
    .await?;
    assert!(readiness(&nodes).await?.values().all(|s| s == "True"));

    control(&sim, "/sim/balancer/break").await?;
    // Let renewals in flight settle, then watch for a while.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let frozen = renew_times(&leases).await?;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let after = renew_times(&leases).await?;
    assert!(
        after["node-0001"] > frozen["node-0001"],
        "the control-plane node renews locally"
    );
    for node in ["node-0002", "node-0003", "node-0004"] {
        assert_eq!(
            after[node], frozen[node],
            "{node} renewed through a broken balancer"
        );
    }

    let states = eventually(Duration::from_secs(8), "nodes to turn Unknown", || async {
        let r = readiness(&nodes).await?;
        Ok((r.values().filter(|s| *s == "Unknown").count() == 3).then_some(r))
    })
    .await?;
    assert_eq!(states["node-0001"], "True");
    let lost = nodes.get("node-0003").await?;
    assert_eq!(unreachable_taints(&lost), ["NoSchedule", "NoExecute"]);
    let reason = lost
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .and_then(|c| c.reason.clone());
    assert_eq!(reason.as_deref(), Some("NodeStatusUnknown"));
    let pods: Api<Pod> = Api::all(client.clone());
    let on_lost = pods
        .list(&ListParams::default().fields("spec.nodeName=node-0003"))
        .await?;
    assert_eq!(on_lost.items.len(), 5);
    for pod in &on_lost.items {
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.clone());
        assert_eq!(
            ready.as_deref(),
            Some("False"),
            "{} on a lost node",
            pod.name_any()
        );
    }

    control(&sim, "/sim/balancer/repair").await?;
    eventually(Duration::from_secs(8), "nodes to come back", || async {
        let r = readiness(&nodes).await?;
        Ok(r.values().all(|s| s == "True").then_some(()))
    })
    .await?;
    assert!(unreachable_taints(&nodes.get("node-0003").await?).is_empty());
    let renewed = renew_times(&leases).await?;
    assert!(renewed["node-0003"] > after["node-0003"]);
    let on_back = pods
        .list(&ListParams::default().fields("spec.nodeName=node-0003"))
        .await?;
    assert!(on_back.items.iter().all(|p| {
        p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| c.status == "True")
    }));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_heartbeats_lose_only_that_node() -> anyhow::Result<()> {
    let sim = start(SimConfig {
        node_grace: Duration::from_secs(2),
        ..crate::common::small()
    })
    .await?;
    let client = client(sim.balancer_url())?;
    let nodes: Api<Node> = Api::all(client.clone());
    control(&sim, "/sim/nodes/node-0002/heartbeats/stop").await?;
    let states = eventually(
        Duration::from_secs(8),
        "node-0002 to turn Unknown",
        || async {
            let r = readiness(&nodes).await?;
            Ok((r["node-0002"] == "Unknown").then_some(r))
        },
    )
    .await?;
    assert_eq!(states["node-0001"], "True");
    assert_eq!(states["node-0003"], "True");
    assert_eq!(sim.state().nodes_ready, 2);

    // A killed node stops too; reviving and restarting brings both back.
    sim.kill_node("node-0003").await?;
    eventually(
        Duration::from_secs(8),
        "node-0003 to turn Unknown",
        || async { Ok((readiness(&nodes).await?["node-0003"] == "Unknown").then_some(())) },
    )
    .await?;
    sim.start_heartbeats("node-0002")?;
    sim.revive_node("node-0003").await?;
    eventually(Duration::from_secs(8), "all nodes Ready", || async {
        Ok(readiness(&nodes)
            .await?
            .values()
            .all(|s| s == "True")
            .then_some(()))
    })
    .await?;
    let (status, body) = crate::common::http(
        "POST",
        &format!("{}/sim/nodes/node-9999/kill", sim.control_url()),
    )
    .await?;
    assert_eq!(status, 404, "{body}");
    Ok(())
}
