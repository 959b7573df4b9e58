//! Deployments scaled through the control API, and a large cluster.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, ResourceExt};
use lookout_kubesim::SimConfig;

use crate::common::{client, control, eventually, start};

fn replicas(d: &Deployment) -> (i32, i32, i32, i64, i64) {
    let status = d.status.clone().unwrap_or_default();
    (
        status.replicas.unwrap_or(0),
        status.available_replicas.unwrap_or(0),
        status.unavailable_replicas.unwrap_or(0),
        status.observed_generation.unwrap_or(0),
        d.metadata.generation.unwrap_or(0),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_follows_unless_stuck() -> anyhow::Result<()> {
    let sim = start(crate::common::small()).await?;
    let client = client(sim.balancer_url())?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "app-0");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "app-0");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "app-0");
    let web = deployments.get("web-0000").await?;
    assert_eq!(replicas(&web), (3, 3, 0, 1, 1));
    let rs_name = pods
        .list(&ListParams::default().labels("app=web-0000"))
        .await?
        .items[0]
        .owner_references()[0]
        .name
        .clone();

    control(&sim, "/sim/deployments/app-0/web-0000/scale?replicas=5").await?;
    let scaled = deployments.get("web-0000").await?;
    assert_eq!(scaled.spec.as_ref().and_then(|s| s.replicas), Some(5));
    assert_eq!(scaled.metadata.generation, Some(2));
    let done = eventually(Duration::from_secs(5), "the rollout", || async {
        let d = deployments.get("web-0000").await?;
        Ok((replicas(&d) == (5, 5, 0, 2, 2)).then_some(d))
    })
    .await?;
    assert_eq!(done.status.and_then(|s| s.ready_replicas), Some(5));
    assert_eq!(
        pods.list(&ListParams::default().labels("app=web-0000"))
            .await?
            .items
            .len(),
        5
    );
    let rs: Api<ReplicaSet> = Api::namespaced(client.clone(), "app-0");
    let rs = rs.get(&rs_name).await?;
    assert_eq!(rs.spec.and_then(|s| s.replicas), Some(5));
    assert_eq!(rs.status.and_then(|s| s.available_replicas), Some(5));
    let slice = slices
        .list(&ListParams::default().labels("kubernetes.io/service-name=web-0000"))
        .await?;
    assert_eq!(slice.items.len(), 1);
    assert_eq!(
        slice.items[0].endpoints.len(),
        5,
        "the service's slice lists the new pods"
    );

    control(
        &sim,
        "/sim/deployments/app-0/web-0000/scale?replicas=8&stuck=true",
    )
    .await?;
    let stuck = eventually(Duration::from_secs(5), "the stuck rollout", || async {
        let d = deployments.get("web-0000").await?;
        Ok((replicas(&d).2 == 3).then_some(d))
    })
    .await?;
    assert_eq!(
        replicas(&stuck),
        (8, 5, 3, 3, 3),
        "available stays, unavailable grows"
    );
    let pending = pods
        .list(
            &ListParams::default()
                .labels("app=web-0000")
                .fields("status.phase=Pending"),
        )
        .await?;
    assert_eq!(pending.items.len(), 3);

    control(&sim, "/sim/deployments/app-0/web-0000/scale?replicas=2").await?;
    eventually(Duration::from_secs(5), "the scale-down", || async {
        let d = deployments.get("web-0000").await?;
        Ok((replicas(&d) == (2, 2, 0, 4, 4)).then_some(()))
    })
    .await?;
    assert_eq!(
        pods.list(&ListParams::default().labels("app=web-0000"))
            .await?
            .items
            .len(),
        2
    );
    let (status, _) = crate::common::http(
        "POST",
        &format!(
            "{}/sim/deployments/app-0/nope/scale?replicas=1",
            sim.control_url()
        ),
    )
    .await?;
    assert_eq!(status, 404);
    let (status, _) = crate::common::http(
        "POST",
        &format!("{}/sim/deployments/app-0/web-0000/scale", sim.control_url()),
    )
    .await?;
    assert_eq!(status, 400);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashloop_restarts_and_unreadies_the_pod() -> anyhow::Result<()> {
    let sim = start(crate::common::small()).await?;
    let client = client(sim.balancer_url())?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "app-0");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "app-0");
    let pod = pods
        .list(&ListParams::default().labels("app=web-0000"))
        .await?
        .items[0]
        .name_any();
    control(&sim, &format!("/sim/pods/app-0/{pod}/crashloop")).await?;
    let restarts = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .map(|c| c[0].restart_count)
            .unwrap_or(0)
    };
    let first = restarts(&pods.get(&pod).await?);
    assert!(first >= 1);
    eventually(Duration::from_secs(5), "more restarts", || async {
        Ok((restarts(&pods.get(&pod).await?) >= first + 2).then_some(()))
    })
    .await?;
    let d = deployments.get("web-0000").await?;
    assert_eq!(
        (replicas(&d).1, replicas(&d).2),
        (2, 1),
        "one replica unavailable"
    );
    let (status, _) = crate::common::http(
        "POST",
        &format!("{}/sim/pods/app-0/nope/crashloop", sim.control_url()),
    )
    .await?;
    assert_eq!(status, 404);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_nodes_with_thirty_pods_each() -> anyhow::Result<()> {
    let sim = start(SimConfig {
        nodes: 1000,
        pods_per_node: 30,
        lease_renew: Duration::from_secs(10),
        node_grace: Duration::from_secs(40),
        node_endpoints: false,
        ..SimConfig::default()
    })
    .await?;
    let client = client(sim.balancer_url())?;
    let pods: Api<Pod> = Api::all(client.clone());
    let mut count = 0;
    let mut params = ListParams::default().limit(5000);
    loop {
        let page = pods.list(&params).await?;
        count += page.items.len();
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = ListParams::default().limit(5000).continue_token(&token),
            None => break,
        }
    }
    assert_eq!(count, 30_000);
    let nodes: Api<Node> = Api::all(client);
    assert_eq!(nodes.list(&ListParams::default()).await?.items.len(), 1000);
    let on_last = pods
        .list(&ListParams::default().fields("spec.nodeName=node-1000"))
        .await?;
    assert_eq!(on_last.items.len(), 30);
    assert_eq!(sim.state().pods, 30_000);
    Ok(())
}
