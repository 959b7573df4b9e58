//! Node objects and the kubelet and kube-proxy endpoints on node IPs.

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams, ResourceExt};
use lookout_kubesim::SimConfig;

use crate::common::{control, http, refused, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_serve_kubelet_and_kube_proxy_endpoints() -> anyhow::Result<()> {
    let sim = start(SimConfig {
        node_endpoints: true,
        // Its own loopback block, so parallel simulators do not collide.
        node_ip_block: 211,
        ..crate::common::small()
    })
    .await?;
    let addrs = sim.addresses().clone();
    assert_eq!(addrs.nodes[1].ip.to_string(), "127.211.0.2");
    let ip = addrs.nodes[1].ip;

    // The node objects point at the same addresses.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&path)?;
    let kubeconfig = kube::config::Kubeconfig::read_from(&path)?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    let nodes: Api<Node> = Api::all(kube::Client::try_from(config)?);
    let list = nodes.list(&ListParams::default()).await?;
    assert_eq!(list.items.len(), 3);
    let node = &list.items[1];
    assert_eq!(node.name_any(), "node-0002");
    let status = node.status.as_ref().expect("status");
    let internal = status
        .addresses
        .as_ref()
        .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
        .map(|a| a.address.clone());
    assert_eq!(internal.as_deref(), Some("127.211.0.2"));
    let info = status.node_info.as_ref().expect("nodeInfo");
    assert!(info.kubelet_version.starts_with("v1."));
    assert!(info.container_runtime_version.starts_with("containerd://"));
    assert!(!info.os_image.is_empty() && !info.kernel_version.is_empty());
    assert!(
        status
            .capacity
            .as_ref()
            .is_some_and(|c| c.contains_key("cpu")
                && c.contains_key("memory")
                && c.contains_key("pods"))
    );
    assert!(
        status
            .allocatable
            .as_ref()
            .is_some_and(|c| c.contains_key("cpu"))
    );
    let conditions: Vec<&str> = status
        .conditions
        .iter()
        .flatten()
        .map(|c| c.type_.as_str())
        .collect();
    assert_eq!(
        conditions,
        ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
    );
    assert_eq!(
        node.labels()
            .get("kubernetes.io/hostname")
            .map(String::as_str),
        Some("node-0002")
    );
    assert!(
        list.items[0]
            .labels()
            .contains_key("node-role.kubernetes.io/control-plane")
    );
    assert!(
        !node
            .labels()
            .contains_key("node-role.kubernetes.io/control-plane")
    );

    let kubelet = format!("http://{ip}:{}", addrs.kubelet_port);
    assert_eq!(
        http(
            "GET",
            &format!("http://{ip}:{}/healthz", addrs.kubelet_healthz_port)
        )
        .await?,
        (200, "ok".to_owned())
    );
    let (status, body) = http("GET", &format!("{kubelet}/stats/summary")).await?;
    assert_eq!(status, 200);
    let summary: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(summary["node"]["nodeName"], "node-0002");
    assert!(
        summary["node"]["cpu"]["usageNanoCores"]
            .as_u64()
            .is_some_and(|n| n > 0)
    );
    assert!(
        summary["node"]["memory"]["workingSetBytes"]
            .as_u64()
            .is_some_and(|n| n > 0)
    );
    let pods = summary["pods"].as_array().expect("pods");
    assert_eq!(pods.len(), 5);
    assert!(
        pods.iter()
            .all(|p| p["podRef"]["uid"].as_str().is_some_and(|u| u.len() == 36))
    );
    assert!(
        pods.iter()
            .all(|p| p["containers"].as_array().is_some_and(|c| !c.is_empty()))
    );
    let (status, metrics) = http("GET", &format!("{kubelet}/metrics/resource")).await?;
    assert_eq!(status, 200);
    assert!(metrics.contains("# TYPE container_cpu_usage_seconds_total counter\n"));
    assert_eq!(
        metrics
            .lines()
            .filter(|l| l.starts_with("pod_memory_working_set_bytes{"))
            .count(),
        5
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("node_cpu_usage_seconds_total "))
    );

    let proxy = format!("http://{ip}:{}/healthz", addrs.kube_proxy_port);
    let (status, body) = http("GET", &proxy).await?;
    assert_eq!(status, 200);
    let health: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(health["nodeEligible"], true);
    control(&sim, "/sim/nodes/node-0002/kube-proxy/stale").await?;
    let (status, body) = http("GET", &proxy).await?;
    assert_eq!(status, 503);
    let health: serde_json::Value = serde_json::from_str(&body)?;
    let last = health["lastUpdated"].as_str().expect("lastUpdated");
    let now = health["currentTime"].as_str().expect("currentTime");
    assert!(last < now, "{last} vs {now}");
    let age = now.parse::<timestamp::Ts>()?.0 - last.parse::<timestamp::Ts>()?.0;
    assert!(age > Duration::from_secs(60), "lastUpdated is old: {age:?}");

    // A killed node's endpoints stop answering; its neighbours' do not.
    control(&sim, "/sim/nodes/node-0002/kill").await?;
    assert!(refused(&kubelet).await);
    assert!(refused(&format!("http://{ip}:{}", addrs.kubelet_healthz_port)).await);
    assert!(refused(&proxy).await);
    let other = addrs.nodes[2].ip;
    assert_eq!(
        http(
            "GET",
            &format!("http://{other}:{}/healthz", addrs.kubelet_healthz_port)
        )
        .await?
        .0,
        200
    );
    control(&sim, "/sim/nodes/node-0002/revive").await?;
    assert_eq!(http("GET", &format!("{kubelet}/healthz")).await?.0, 200);
    assert_eq!(
        http("GET", &proxy).await?.0,
        200,
        "revival clears the stale kube-proxy"
    );
    Ok(())
}

/// RFC 3339 to seconds, enough for comparing the timestamps above.
mod timestamp {
    use std::time::Duration;

    pub struct Ts(pub Duration);

    impl std::str::FromStr for Ts {
        type Err = anyhow::Error;

        fn from_str(s: &str) -> Result<Self, Self::Err> {
            let t: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time =
                serde_json::from_value(serde_json::json!(s))?;
            let secs = t.0.as_second();
            let nanos = t.0.subsec_nanosecond();
            Ok(Ts(Duration::new(
                u64::try_from(secs)?,
                u32::try_from(nanos)?,
            )))
        }
    }

    impl std::ops::Sub for Ts {
        type Output = Duration;
        fn sub(self, rhs: Ts) -> Duration {
            self.0.saturating_sub(rhs.0)
        }
    }
}
