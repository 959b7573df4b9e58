//! Lists: pagination, consistency across pages, selectors, errors.

use std::collections::HashSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, ResourceExt};
use lookout_kubesim::SimConfig;

use crate::common::{client, start};

fn api_status(err: &kube::Error) -> Option<(u16, String)> {
    match err {
        kube::Error::Api(s) => Some((s.code, s.reason.clone())),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paginated_list_is_complete_and_consistent() -> anyhow::Result<()> {
    let sim = start(SimConfig {
        nodes: 10,
        pods_per_node: 30,
        ..crate::common::small()
    })
    .await?;
    let pods: Api<Pod> = Api::all(client(sim.balancer_url())?);

    let first = pods.list(&ListParams::default().limit(50)).await?;
    assert_eq!(first.items.len(), 50);
    let list_rv = first
        .metadata
        .resource_version
        .clone()
        .expect("list has a resourceVersion");
    let mut token = first.metadata.continue_.clone().expect("more pages");
    let mut seen: Vec<String> = first
        .items
        .iter()
        .map(|p| format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any()))
        .collect();

    // Changes made mid-pagination must not leak into later pages.
    sim.scale("app-0", "web-0000", 8, false)?;
    let extra = crate::common::eventually(Duration::from_secs(10), "scaled pods", || {
        let pods = pods.clone();
        async move {
            let now = pods.list(&ListParams::default()).await?;
            Ok((now.items.len() == 305).then_some(now))
        }
    })
    .await?;
    assert_ne!(
        extra.metadata.resource_version.as_deref(),
        Some(list_rv.as_str())
    );

    let mut pages = 1;
    loop {
        let page = pods
            .list(&ListParams::default().limit(50).continue_token(&token))
            .await?;
        pages += 1;
        assert_eq!(
            page.metadata.resource_version.as_deref(),
            Some(list_rv.as_str()),
            "every page at the first page's version"
        );
        seen.extend(
            page.items
                .iter()
                .map(|p| format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any())),
        );
        match page.metadata.continue_.filter(|t| !t.is_empty()) {
            Some(t) => token = t,
            None => break,
        }
    }
    assert_eq!(pages, 6);
    assert_eq!(seen.len(), 300, "every pod as of the first page, once");
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), 300);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "items come in (namespace, name) order");

    // A continue token from before a compaction has expired.
    let page = pods.list(&ListParams::default().limit(100)).await?;
    let token = page.metadata.continue_.expect("more pages");
    tokio::time::sleep(Duration::from_millis(1500)).await; // leases move the version on
    sim.compact();
    let err = pods
        .list(&ListParams::default().limit(100).continue_token(&token))
        .await
        .expect_err("an expired continue token is refused");
    assert_eq!(api_status(&err), Some((410, "Expired".to_owned())));

    let err = pods
        .list(&ListParams::default().continue_token("garbage"))
        .await
        .expect_err("a malformed continue token is refused");
    assert_eq!(api_status(&err).map(|s| s.0), Some(400));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selectors_filter_lists() -> anyhow::Result<()> {
    let sim = start(SimConfig {
        nodes: 4,
        pods_per_node: 6,
        ..crate::common::small()
    })
    .await?;
    let client = client(sim.balancer_url())?;
    let pods: Api<Pod> = Api::all(client.clone());
    let all = pods.list(&ListParams::default()).await?;
    assert_eq!(all.items.len(), 24);

    let on_node = pods
        .list(&ListParams::default().fields("spec.nodeName=node-0003"))
        .await?;
    assert_eq!(on_node.items.len(), 6);
    assert!(
        on_node
            .items
            .iter()
            .all(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some("node-0003"))
    );
    let elsewhere = pods
        .list(&ListParams::default().fields("spec.nodeName!=node-0003"))
        .await?;
    assert_eq!(elsewhere.items.len(), 18);
    let double_eq = pods
        .list(
            &ListParams::default()
                .fields("spec.nodeName==node-0003,metadata.namespace=kube-system"),
        )
        .await?;
    assert_eq!(double_eq.items.len(), 1, "one kube-proxy pod per node");

    let web = pods
        .list(&ListParams::default().labels("app=web-0000"))
        .await?;
    assert_eq!(web.items.len(), 3);
    assert!(
        web.items
            .iter()
            .all(|p| p.labels().get("app").map(String::as_str) == Some("web-0000"))
    );
    let not_web = pods
        .list(&ListParams::default().labels("app!=web-0000"))
        .await?;
    assert_eq!(not_web.items.len(), 21);
    let without_app = pods.list(&ListParams::default().labels("!app")).await?;
    // kube-proxy (one per node) and CoreDNS (two) carry k8s-app instead.
    assert_eq!(without_app.items.len(), 6);
    let with_app = pods
        .list(&ListParams::default().labels("app,pod-template-hash"))
        .await?;
    assert!(
        with_app
            .items
            .iter()
            .all(|p| p.labels().contains_key("pod-template-hash"))
    );
    assert_eq!(
        with_app.items.len(),
        24 - 6 - 3 - 2,
        "deployment pods minus CoreDNS, db and legacy"
    );

    let namespaced: Api<Pod> = Api::namespaced(client, "kube-system");
    let system = namespaced.list(&ListParams::default()).await?;
    assert_eq!(system.items.len(), 6);
    let one = namespaced.get(&system.items[0].name_any()).await?;
    assert_eq!(one.name_any(), system.items[0].name_any());
    let missing = namespaced
        .get("no-such-pod")
        .await
        .expect_err("missing pod");
    assert_eq!(api_status(&missing), Some((404, "NotFound".to_owned())));

    let bad = pods
        .list(&ListParams::default().fields("spec.colour=red"))
        .await
        .expect_err("unknown field");
    assert_eq!(api_status(&bad), Some((400, "BadRequest".to_owned())));
    let bad = pods
        .list(&ListParams::default().labels("app in ("))
        .await
        .expect_err("bad label selector");
    assert_eq!(api_status(&bad).map(|s| s.0), Some(400));
    Ok(())
}
