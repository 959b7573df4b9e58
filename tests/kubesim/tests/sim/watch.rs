//! Watches: kube-rs's watcher over the simulator, bookmarks, 410 Gone.

use std::pin::pin;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, ResourceExt, WatchEvent, WatchParams};
use kube::runtime::watcher;
use lookout_kubesim::SimConfig;

use crate::common::{client, control, start};

fn waiting_reason(pod: &Pod) -> Option<String> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()?
        .state
        .as_ref()?
        .waiting
        .as_ref()?
        .reason
        .clone()
}

/// Takes the next watcher event within `secs`.
async fn next<S: futures_util::Stream + Unpin>(stream: &mut S, secs: u64) -> S::Item {
    tokio::time::timeout(Duration::from_secs(secs), stream.next())
        .await
        .expect("an event in time")
        .expect("the stream goes on")
}

/// Consumes Init, InitApply…, InitDone and returns the objects.
async fn initial_list<S>(stream: &mut S) -> Vec<Pod>
where
    S: futures_util::Stream<Item = Result<watcher::Event<Pod>, watcher::Error>> + Unpin,
{
    let mut objects = Vec::new();
    loop {
        match next(stream, 10).await {
            Ok(watcher::Event::Init) => objects.clear(),
            Ok(watcher::Event::InitApply(p)) => objects.push(p),
            Ok(watcher::Event::InitDone) => return objects,
            Ok(other) => panic!("unexpected event during the initial list: {other:?}"),
            Err(e) => panic!("watcher error during the initial list: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_sees_initial_list_then_a_crashloop() -> anyhow::Result<()> {
    let sim = start(crate::common::small()).await?;
    let pods: Api<Pod> = Api::all(client(sim.balancer_url())?);
    let mut stream = pin!(watcher(pods, watcher::Config::default()));
    let initial = initial_list(&mut stream).await;
    assert_eq!(initial.len(), 15);
    let target = initial
        .iter()
        .find(|p| p.name_any() == "db-1")
        .expect("the StatefulSet's second pod");
    assert_eq!(waiting_reason(target), None);

    control(&sim, "/sim/pods/app-0/db-1/crashloop").await?;
    let crashed = loop {
        match next(&mut stream, 10).await {
            Ok(watcher::Event::Apply(p)) if p.name_any() == "db-1" => break p,
            Ok(watcher::Event::Apply(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(
        waiting_reason(&crashed).as_deref(),
        Some("CrashLoopBackOff")
    );
    let status = crashed.status.as_ref().expect("status");
    let container = &status
        .container_statuses
        .as_ref()
        .expect("container statuses")[0];
    assert!(container.restart_count >= 1);
    assert!(!container.ready);
    let last = container
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .expect("last termination");
    assert_eq!((last.exit_code, last.reason.as_deref()), (1, Some("Error")));
    let ready = status
        .conditions
        .as_ref()
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .expect("Ready condition");
    assert_eq!(ready.status, "False");

    // It keeps restarting.
    let later = loop {
        match next(&mut stream, 10).await {
            Ok(watcher::Event::Apply(p)) if p.name_any() == "db-1" => {
                let restarts = p
                    .status
                    .as_ref()
                    .and_then(|s| s.container_statuses.as_ref())
                    .map(|c| c[0].restart_count);
                if restarts > Some(container.restart_count) {
                    break p;
                }
            }
            Ok(_) => {}
            Err(e) => panic!("watcher error: {e}"),
        }
    };
    assert_eq!(waiting_reason(&later).as_deref(), Some("CrashLoopBackOff"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookmarks_carry_increasing_versions() -> anyhow::Result<()> {
    let sim = start(crate::common::small()).await?;
    let pods: Api<Pod> = Api::all(client(sim.balancer_url())?);
    let list = pods.list(&ListParams::default().limit(1)).await?;
    let rv = list.metadata.resource_version.expect("resourceVersion");
    let mut stream = pods
        .watch(&WatchParams::default().timeout(30), &rv)
        .await?
        .boxed();
    let mut versions: Vec<u64> = Vec::new();
    while versions.len() < 3 {
        match next(&mut stream, 5).await? {
            WatchEvent::Bookmark(b) => versions.push(b.metadata.resource_version.parse()?),
            other => panic!("no pod changes expected, got {other:?}"),
        }
    }
    let start: u64 = rv.parse()?;
    assert!(versions[0] >= start, "{versions:?} from {start}");
    // Leases renew every second, so the version moves between bookmarks.
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_a_compacted_version_is_gone() -> anyhow::Result<()> {
    let sim = start(crate::common::small()).await?;
    let pods: Api<Pod> = Api::all(client(sim.balancer_url())?);
    let list = pods.list(&ListParams::default()).await?;
    let rv: u64 = list
        .metadata
        .resource_version
        .expect("resourceVersion")
        .parse()?;

    // Replaying from a version still in history works.
    sim.crashloop("app-0", "db-0")?;
    let mut stream = pods
        .watch(&WatchParams::default(), &rv.to_string())
        .await?
        .boxed();
    match next(&mut stream, 5).await? {
        WatchEvent::Modified(p) => assert_eq!(p.name_any(), "db-0"),
        other => panic!("expected the crash-looping pod, got {other:?}"),
    }

    crate::common::eventually(
        Duration::from_secs(5),
        "leases to move the version on",
        || async { Ok((sim.resource_version() > rv).then_some(())) },
    )
    .await?;
    sim.compact();
    let mut stream = pods
        .watch(&WatchParams::default(), &rv.to_string())
        .await?
        .boxed();
    match next(&mut stream, 5).await? {
        WatchEvent::Error(status) => {
            assert_eq!(status.code, 410);
            assert_eq!(status.reason, "Expired");
            assert!(
                status
                    .message
                    .starts_with(&format!("too old resource version: {rv} (")),
                "{}",
                status.message
            );
        }
        other => panic!("expected 410, got {other:?}"),
    }
    assert!(
        tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await?
            .is_none(),
        "the stream ends after the error"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_relists_after_410() -> anyhow::Result<()> {
    // No bookmarks during the test: the watcher resumes from its list's version.
    let sim = start(SimConfig {
        bookmark_interval: Duration::from_secs(600),
        ..crate::common::small()
    })
    .await?;
    let pods: Api<Pod> = Api::all(client(sim.balancer_url())?);
    // Short watches, so the watcher reconnects (and meets the compaction) quickly.
    let mut stream = pin!(watcher(pods, watcher::Config::default().timeout(1)));
    let first = initial_list(&mut stream).await;
    assert_eq!(first.len(), 15);
    let listed_at = sim.resource_version();
    crate::common::eventually(
        Duration::from_secs(5),
        "leases to move the version on",
        || async { Ok((sim.resource_version() > listed_at).then_some(())) },
    )
    .await?;
    sim.compact();

    let mut saw_gone = false;
    loop {
        match next(&mut stream, 10).await {
            Err(watcher::Error::WatchError(status)) if status.code == 410 => saw_gone = true,
            Ok(watcher::Event::Init) => break,
            Err(e) => panic!("unexpected watcher error {e}"),
            Ok(other) => panic!("unexpected {other:?}"),
        }
    }
    assert!(saw_gone, "the watcher was told its version is gone");
    let mut relisted = Vec::new();
    loop {
        match next(&mut stream, 10).await {
            Ok(watcher::Event::InitApply(p)) => relisted.push(p.name_any()),
            Ok(watcher::Event::InitDone) => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(relisted.len(), 15);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_list_watcher_gets_initial_events() -> anyhow::Result<()> {
    let sim = start(crate::common::small()).await?;
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client(sim.balancer_url())?, "kube-node-lease");
    let mut stream = pin!(watcher(
        leases,
        watcher::Config::default().streaming_lists()
    ));
    assert!(matches!(
        next(&mut stream, 5).await,
        Ok(watcher::Event::Init)
    ));
    let mut names = Vec::new();
    loop {
        match next(&mut stream, 5).await {
            Ok(watcher::Event::InitApply(l)) => names.push(l.name_any()),
            Ok(watcher::Event::InitDone) => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    names.sort();
    assert_eq!(names, ["node-0001", "node-0002", "node-0003"]);
    // Then renewals arrive as changes.
    match next(&mut stream, 5).await {
        Ok(watcher::Event::Apply(l)) => assert!(names.contains(&l.name_any())),
        other => panic!("unexpected {other:?}"),
    }
    Ok(())
}

/// A base port with `count` free ports after it.
fn free_port_base(count: u16) -> u16 {
    (0..200u16)
        .map(|i| 21_000 + i * 37)
        .find(|&base| {
            (base..base + count).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
        })
        .expect("a free port range")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_simulator_sends_old_watchers_to_relist() -> anyhow::Result<()> {
    let config = SimConfig {
        port_base: Some(free_port_base(8)),
        ..crate::common::small()
    };
    let sim = start(config.clone()).await?;
    let url = sim.balancer_url().to_owned();
    let pods: Api<Pod> = Api::all(client(&url)?);
    let old_rv = pods
        .list(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .expect("resourceVersion");
    sim.shutdown();

    // Same ports right away: the new instance waits for the old sockets to close.
    let sim = start(config).await?;
    assert_eq!(sim.balancer_url(), url);
    let list = crate::common::eventually(Duration::from_secs(5), "the restarted simulator", || {
        let pods = pods.clone();
        async move { Ok(pods.list(&ListParams::default()).await.ok()) }
    })
    .await?;
    assert_eq!(list.items.len(), 15);
    let new_rv: u64 = list
        .metadata
        .resource_version
        .expect("resourceVersion")
        .parse()?;
    assert!(
        new_rv > old_rv.parse()?,
        "versions only grow across restarts"
    );
    let mut stream = pods.watch(&WatchParams::default(), &old_rv).await?.boxed();
    match next(&mut stream, 5).await? {
        WatchEvent::Error(status) => assert_eq!(status.code, 410),
        other => panic!("expected 410, got {other:?}"),
    }
    Ok(())
}
