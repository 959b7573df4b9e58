//! Simulated routers: gorouter's `/health` and `/routes`, a table that
//! follows the routed services' ready endpoints, and the faults.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams};
use lookout_kubesim::{SimHandle, route_name};
use serde_json::Value;

use crate::common::{client, control, eventually, http, refused, small, start};

/// The router's table: route → endpoint addresses.
async fn routes(sim: &SimHandle) -> anyhow::Result<Vec<(String, BTreeSet<String>)>> {
    let url = sim.router_url(0).expect("a router");
    let (status, body) = http("GET", &format!("{url}/routes")).await?;
    anyhow::ensure!(status == 200, "/routes answered {status}: {body}");
    let table: serde_json::Map<String, Value> = serde_json::from_str(&body)?;
    Ok(table
        .into_iter()
        .map(|(route, eps)| {
            let addrs = eps
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["address"].as_str().map(str::to_owned))
                .collect();
            (route, addrs)
        })
        .collect())
}

async fn route(sim: &SimHandle, name: &str) -> anyhow::Result<BTreeSet<String>> {
    Ok(routes(sim)
        .await?
        .into_iter()
        .find(|(r, _)| r == name)
        .map(|(_, a)| a)
        .unwrap_or_default())
}

/// The ready addresses of a service's slices, as `ip:port`.
async fn ready(slices: &Api<EndpointSlice>, service: &str) -> anyhow::Result<BTreeSet<String>> {
    let list = slices
        .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={service}")))
        .await?;
    let mut out = BTreeSet::new();
    for s in list.items {
        let port = s
            .ports
            .as_ref()
            .and_then(|p| p.first())
            .and_then(|p| p.port)
            .unwrap_or(0);
        for e in s.endpoints {
            if e.conditions.as_ref().and_then(|c| c.ready) != Some(false) {
                out.extend(e.addresses.iter().map(|a| format!("{a}:{port}")));
            }
        }
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_follows_the_routed_services_unless_frozen() -> anyhow::Result<()> {
    let sim = start(small()).await?;
    let url = sim.router_url(0).expect("a router").to_owned();
    assert_eq!(sim.addresses().routers, vec![url.clone()]);
    assert_eq!(
        http("GET", &format!("{url}/health")).await?,
        (200, "ok\n".into())
    );
    let client = client(sim.balancer_url())?;
    let services: Api<Service> = Api::namespaced(client.clone(), "app-0");
    let annotated = |s: &Service| {
        s.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("lookout.io/routed"))
            .cloned()
    };
    assert_eq!(
        annotated(&services.get("web-0000").await?).as_deref(),
        Some("true")
    );
    assert_eq!(annotated(&services.get("db").await?), None);

    // One route per routed service, with exactly its ready endpoints.
    let web = route_name("app-0", "web-0000");
    let api = route_name("app-1", "api-0001");
    assert_eq!(web, "web-0000.app-0.apps.sim.test");
    let names: Vec<String> = routes(&sim).await?.into_iter().map(|(r, _)| r).collect();
    assert_eq!(names, vec![api.clone(), web.clone()]);
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "app-0");
    let before = ready(&slices, "web-0000").await?;
    assert_eq!(before.len(), 3);
    assert_eq!(route(&sim, &web).await?, before);

    // Frozen, the table keeps the endpoint of a pod that went away.
    control(&sim, "/sim/routers/0/freeze").await?;
    assert!(sim.state().routers[0].frozen);
    sim.scale("app-0", "web-0000", 2, false)?;
    let after = eventually(Duration::from_secs(5), "the scale-down", || async {
        let r = ready(&slices, "web-0000").await?;
        Ok((r.len() == 2).then_some(r))
    })
    .await?;
    assert!(after.is_subset(&before));
    assert_eq!(
        route(&sim, &web).await?,
        before,
        "the frozen table keeps it"
    );

    // Unfrozen, it follows again, and drops an endpoint that turns unready.
    sim.unfreeze_router(0)?;
    assert_eq!(route(&sim, &web).await?, after);
    let pod = kube::Api::<k8s_openapi::api::core::v1::Pod>::namespaced(client, "app-0")
        .list(&ListParams::default().labels("app=web-0000"))
        .await?
        .items
        .into_iter()
        .next()
        .and_then(|p| p.metadata.name)
        .expect("a web pod");
    control(&sim, &format!("/sim/pods/app-0/{pod}/crashloop")).await?;
    let unready = eventually(
        Duration::from_secs(5),
        "the crash-looping pod's route to go",
        || async {
            let r = route(&sim, &web).await?;
            Ok((r.len() == 1).then_some(r))
        },
    )
    .await?;
    assert_eq!(unready, ready(&slices, "web-0000").await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_router_refuses_connections_until_started() -> anyhow::Result<()> {
    let sim = start(small()).await?;
    let url = sim.router_url(0).expect("a router").to_owned();
    control(&sim, "/sim/routers/0/stop").await?;
    assert!(refused(&url).await);
    assert!(!sim.state().routers[0].running);
    control(&sim, "/sim/routers/0/start").await?;
    assert_eq!(http("GET", &format!("{url}/health")).await?.0, 200);
    assert!(sim.state().routers[0].running);
    sim.stop_router(0).await?;
    assert!(refused(&url).await);
    sim.start_router(0).await?;
    assert_eq!(http("GET", &format!("{url}/routes")).await?.0, 200);

    for route in [
        "/sim/routers/1/freeze",
        "/sim/routers/x/stop",
        "/sim/routers/0/nope",
    ] {
        let (status, _) = http("POST", &format!("{}{route}", sim.control_url())).await?;
        assert_eq!(status, 404, "{route}");
    }
    assert!(sim.freeze_router(3).is_err());
    Ok(())
}
