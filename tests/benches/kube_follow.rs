//! The collector following a large simulated cluster: the initial list of
//! LOOKOUT_BENCH_NODES (1000) nodes with LOOKOUT_BENCH_PODS (30) pods each,
//! then about one change per node per second (lease renewals every 10 s,
//! like kubelets, and pod status changes for the rest) for
//! LOOKOUT_BENCH_SECONDS (120). Prints the time to the first complete
//! write, the collector's peak RSS and its CPU while following, and the
//! simulator's own CPU for scale.
//!
//! Run with `scripts/bench-kube.sh` (release binaries). There is no
//! kube-state-metrics binary on these machines to run beside it; the
//! reference figure is kube-state-metrics' known need of gigabytes on large
//! clusters, and the target is at most 300 MiB.

use std::time::{Duration, Instant};

use lookout_kubesim::{SimConfig, Simulator};
use lookout_tests::{Collector, process_cpu_seconds, process_status_kib, wait_for};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn scalar(c: &Collector, expr: &str) -> Option<f64> {
    c.query(expr)
        .first()
        .and_then(|s| s["value"][1].as_str())
        .and_then(|v| v.parse().ok())
}

/// The store's own count, not a query over every series (which would load
/// them all and measure the query, not the following).
fn head_series(c: &Collector) -> f64 {
    c.get("/metrics")
        .body
        .lines()
        .find_map(|l| l.strip_prefix("lookout_tsdb_head_series "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0)
}

fn main() -> anyhow::Result<()> {
    let nodes: usize = env_or("LOOKOUT_BENCH_NODES", 1000);
    let pods: usize = env_or("LOOKOUT_BENCH_PODS", 30);
    let seconds: u64 = env_or("LOOKOUT_BENCH_SECONDS", 120);
    let renew = Duration::from_secs(10);
    // Lease renewals give 0.1 change per node per second; pod changes the
    // other 0.9.
    let churn = 0.9;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let started = Instant::now();
    let sim = rt.block_on(Simulator::start(SimConfig {
        nodes,
        pods_per_node: pods,
        node_endpoints: false,
        lease_renew: renew,
        node_grace: Duration::from_secs(40),
        churn_per_node_per_sec: churn,
        ..SimConfig::default()
    }))?;
    let st = sim.state();
    println!(
        "kube bench: simulator with {} nodes, {} pods ready in {:.1} s",
        st.nodes,
        st.pods,
        started.elapsed().as_secs_f64()
    );
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig)?;
    let config = format!(
        "kube:\n  enabled: true\n  kubeconfig: {}\n  interval: 15s\n  probes:\n    nodes: false\n",
        kubeconfig.display()
    );
    let t0 = Instant::now();
    let c = Collector::start(&config);
    let pid = c.child.id();
    let cpu0 = process_cpu_seconds(pid);
    let want = st.pods as f64;
    let synced = wait_for(Duration::from_secs(600), || {
        (scalar(&c, "count(kube_pod_info)")? == want).then_some(())
    });
    if synced.is_none() {
        anyhow::bail!(
            "the collector did not write all {want} pods within 10 minutes; log:\n{}",
            c.log()
        );
    }
    let sync_s = t0.elapsed().as_secs_f64();
    let cpu_sync = process_cpu_seconds(pid) - cpu0;
    let hwm_sync = process_status_kib(pid, "VmHWM:") / 1024.0;
    let series = head_series(&c);
    println!(
        "  initial list and first write: {sync_s:.1} s, collector CPU {cpu_sync:.1} s, peak RSS so far {hwm_sync:.0} MiB, {series} series in the store"
    );

    let events0 = scalar(&c, "sum(lookout_kube_watch_events_total)").unwrap_or(0.0);
    let cpu1 = process_cpu_seconds(pid);
    let sim_cpu1 = process_cpu_seconds(std::process::id());
    let t1 = Instant::now();
    let mut max_rss: f64 = 0.0;
    let mut timeline = Vec::new();
    while t1.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_secs(1));
        let rss = process_status_kib(pid, "VmRSS:") / 1024.0;
        max_rss = max_rss.max(rss);
        let t = t1.elapsed().as_secs();
        if t.is_multiple_of(20) && timeline.last().is_none_or(|&(last, _, _)| last != t) {
            timeline.push((t, rss, head_series(&c)));
        }
    }
    let points: Vec<String> = timeline
        .iter()
        .map(|(t, rss, series)| format!("{t}s {rss:.0} MiB/{series:.0}"))
        .collect();
    println!(
        "  RSS and head series while following: {}",
        points.join(", ")
    );
    let elapsed = t1.elapsed().as_secs_f64();
    let cpu = process_cpu_seconds(pid) - cpu1;
    let sim_cpu = process_cpu_seconds(std::process::id()) - sim_cpu1;
    let events = scalar(&c, "sum(lookout_kube_watch_events_total)").unwrap_or(0.0) - events0;
    let hwm = process_status_kib(pid, "VmHWM:") / 1024.0;
    println!(
        "  at the end: RSS {:.0} MiB ({:.0} MiB anonymous), watch restarts {}, watches up {} of {}",
        process_status_kib(pid, "VmRSS:") / 1024.0,
        process_status_kib(pid, "RssAnon:") / 1024.0,
        scalar(&c, "sum(lookout_kube_watch_restarts_total)").unwrap_or(f64::NAN),
        scalar(&c, "sum(lookout_kube_watch_up)").unwrap_or(f64::NAN),
        scalar(&c, "count(lookout_kube_watch_up)").unwrap_or(f64::NAN),
    );
    println!(
        "  following for {elapsed:.0} s: {:.0} watch events/s, collector CPU {:.1} % of a core, RSS max {max_rss:.0} MiB; simulator and bench CPU {:.1} % of a core",
        events / elapsed,
        100.0 * cpu / elapsed,
        100.0 * sim_cpu / elapsed,
    );
    let verdict = if hwm <= 300.0 { "met" } else { "NOT met" };
    println!(
        "kube bench: nodes={nodes} pods={} peak_rss={hwm:.0}MiB (target <= 300 MiB: {verdict}) sync={sync_s:.1}s follow_cpu={:.1}% events_per_s={:.0}",
        st.pods,
        100.0 * cpu / elapsed,
        events / elapsed
    );
    drop(c);
    let _guard = rt.enter();
    sim.shutdown();
    Ok(())
}
