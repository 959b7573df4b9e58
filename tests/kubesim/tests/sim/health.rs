//! Health endpoints and component outages.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use lookout_kubesim::Component;

use crate::common::{client, control, eventually, http, refused, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_endpoints_follow_component_state() -> anyhow::Result<()> {
    let sim = start(crate::common::small()).await?;
    let addrs = sim.addresses().clone();
    let api0 = &addrs.apiservers[0];

    assert_eq!(
        http("GET", &format!("{api0}/livez")).await?,
        (200, "ok".to_owned())
    );
    let (status, body) = http("GET", &format!("{api0}/readyz?verbose")).await?;
    assert_eq!(status, 200);
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.first(), Some(&"[+]ping ok"));
    assert!(lines.contains(&"[+]etcd ok"));
    assert!(lines.contains(&"[+]informer-sync ok"));
    assert!(lines.iter().any(|l| l.starts_with("[+]poststarthook/")));
    assert_eq!(lines.last(), Some(&"readyz check passed"));
    assert!(
        lines[..lines.len() - 1]
            .iter()
            .all(|l| l.starts_with("[+]") && l.ends_with(" ok"))
    );
    assert_eq!(
        http("GET", &format!("{api0}/healthz")).await?,
        (200, "ok".to_owned())
    );
    assert_eq!(
        http("GET", &format!("{api0}/livez/etcd")).await?,
        (200, "ok".to_owned())
    );
    for component in [&addrs.scheduler, &addrs.controller_manager] {
        let (status, body) = http("GET", &format!("{component}/healthz?verbose")).await?;
        assert_eq!(status, 200);
        assert!(
            body.contains("[+]leaderElection ok\n") && body.ends_with("healthz check passed\n"),
            "{body}"
        );
    }
    let (status, body) = http("GET", &format!("{}/health", addrs.etcd)).await?;
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"health":"true","reason":""}"#)
    );
    let (_, metrics) = http("GET", &format!("{}/metrics", addrs.etcd)).await?;
    assert!(
        metrics.lines().any(|l| l == "etcd_server_has_leader 1"),
        "{metrics}"
    );

    // etcd down: apiserver checks fail with 500, etcd reports no leader.
    control(&sim, "/sim/components/etcd/stop").await?;
    let (status, body) = http("GET", &format!("{api0}/readyz")).await?;
    assert_eq!(status, 500);
    assert!(body.contains("[-]etcd failed: reason withheld\n"), "{body}");
    assert!(body.contains("[+]ping ok\n"));
    assert!(body.ends_with("readyz check failed\n"), "{body}");
    let (status, body) = http("GET", &format!("{api0}/livez?verbose")).await?;
    assert_eq!(status, 500);
    assert!(body.ends_with("livez check failed\n"));
    assert_eq!(http("GET", &format!("{api0}/readyz/etcd")).await?.0, 500);
    let (status, body) = http("GET", &format!("{}/health", addrs.etcd)).await?;
    assert_eq!(status, 503);
    assert!(body.contains(r#""health":"false""#));
    let (_, metrics) = http("GET", &format!("{}/metrics", addrs.etcd)).await?;
    assert!(metrics.lines().any(|l| l == "etcd_server_has_leader 0"));
    let (_, body) = http("GET", &format!("{}/readyz?verbose", addrs.scheduler)).await?;
    assert!(
        body.contains("[-]leaderElection failed: reason withheld"),
        "{body}"
    );
    sim.start_component(Component::Etcd).await?;
    assert_eq!(
        http("GET", &format!("{api0}/readyz")).await?,
        (200, "ok".to_owned())
    );

    // A stopped scheduler refuses connections until started.
    control(&sim, "/sim/components/scheduler/stop").await?;
    assert!(refused(&addrs.scheduler).await);
    control(&sim, "/sim/components/scheduler/start").await?;
    assert_eq!(
        http("GET", &format!("{}/livez", addrs.scheduler)).await?.0,
        200
    );
    let (status, _) = http(
        "POST",
        &format!("{}/sim/components/kube-dns/stop", sim.control_url()),
    )
    .await?;
    assert_eq!(status, 404);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apiserver_and_balancer_outages() -> anyhow::Result<()> {
    let sim = start(crate::common::small()).await?;
    let addrs = sim.addresses().clone();
    let pods: Api<Pod> = Api::all(client(sim.balancer_url())?);
    assert_eq!(pods.list(&ListParams::default()).await?.items.len(), 15);

    control(&sim, "/sim/apiservers/1/stop").await?;
    assert!(
        refused(&addrs.apiservers[1]).await,
        "a stopped instance refuses connections"
    );
    // The balancer skips it: every request through it still answers.
    for _ in 0..6 {
        assert_eq!(
            http("GET", &format!("{}/readyz", addrs.balancer)).await?,
            (200, "ok".to_owned())
        );
        assert_eq!(
            pods.list(&ListParams::default().limit(5))
                .await?
                .items
                .len(),
            5
        );
    }
    assert!(!sim.state().apiservers[1].running);
    control(&sim, "/sim/apiservers/1/start").await?;
    assert_eq!(
        http("GET", &format!("{}/readyz", addrs.apiservers[1]))
            .await?
            .0,
        200
    );
    assert_eq!(
        http(
            "POST",
            &format!("{}/sim/apiservers/7/stop", sim.control_url())
        )
        .await?
        .0,
        404
    );

    control(&sim, "/sim/balancer/break").await?;
    assert!(
        refused(&addrs.balancer).await,
        "a broken balancer refuses connections"
    );
    assert!(pods.list(&ListParams::default()).await.is_err());
    assert_eq!(
        http("GET", &format!("{}/readyz", addrs.apiservers[0]))
            .await?
            .0,
        200,
        "instances answer directly"
    );
    assert_eq!(sim.state().balancer, "broken");
    control(&sim, "/sim/balancer/repair").await?;
    eventually(
        Duration::from_secs(5),
        "lists through the repaired balancer",
        || {
            let pods = pods.clone();
            async move {
                Ok(pods
                    .list(&ListParams::default())
                    .await
                    .ok()
                    .map(|l| l.items.len()))
            }
        },
    )
    .await?;
    Ok(())
}
