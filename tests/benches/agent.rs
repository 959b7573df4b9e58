//! Agent cost, measured against its peers on the same machine in one run.
//!
//! For 0, 20 and 100 running containers:
//! - CPU per host sampling cycle, beside node_exporter's CPU per scrape;
//! - CPU per container per cycle through cgroups, beside reading the same
//!   containers through Docker's stats API (client and daemon CPU);
//! - the agent process's CPU per cycle and peak RSS, beside node_exporter's.
//!
//! Run with `scripts/bench-agent.sh` (builds the release binaries first).
//! Needs the Docker Engine and Debian's prometheus-node-exporter.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use lookout_agent::config::{ContainersConfig, HostConfig, Paths};
use lookout_agent::procfs::thread_cpu_time;
use lookout_agent::samplers::containers::ContainerSampler;
use lookout_agent::samplers::docker::client::get_json;
use lookout_agent::samplers::host::HostSampler;
use lookout_agent::samplers::inventory::Inventory;
use lookout_agent::schedule::BlockingSampler;
use lookout_tests::docker::{self, IMAGE};
use lookout_tests::{free_port, http_get, wait_for};

const CYCLES: u32 = 40;
const BATCHES: usize = 5;
/// Containers read through the stats API (each call takes about a second).
const STATS_SAMPLE: usize = 20;
const SCRAPES: u32 = 50;

fn process_cpu(pid: u32) -> f64 {
    lookout_tests::process_cpu_seconds(pid)
}

/// Peak RSS of a process, in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    lookout_tests::process_status_kib(pid, "VmHWM:") / 1024.0
}

/// The processes a stats call passes through: dockerd, containerd and the
/// per-container shims (which read the cgroups for the daemon).
fn stats_path_pids() -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let comm = comm.trim();
        if comm == "dockerd" || comm == "containerd" || comm.starts_with("containerd-shim") {
            pids.push(pid);
        }
    }
    pids
}

fn total_cpu(pids: &[u32]) -> f64 {
    pids.iter().map(|p| process_cpu(*p)).sum()
}

fn bin_dir() -> std::path::PathBuf {
    std::env::var_os("LOOKOUT_BIN_DIR")
        .map(Into::into)
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().expect("bench path");
            exe.parent()
                .and_then(|p| p.parent())
                .expect("target/<profile>")
                .to_path_buf()
        })
}

struct Fleet {
    ids: Vec<String>,
}

impl Fleet {
    fn grow_to(&mut self, n: usize) {
        while self.ids.len() < n {
            let name = docker::unique_name("bench");
            self.ids.push(docker::docker(&[
                "run", "-d", "--name", &name, IMAGE, "sleep", "3600",
            ]));
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for chunk in self.ids.chunks(50) {
            let mut args = vec!["rm", "-f"];
            args.extend(chunk.iter().map(String::as_str));
            let _ = Command::new("docker")
                .args(&args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// CPU seconds per cycle of a blocking sampler after a warm-up cycle: the
/// median of `BATCHES` batches of `CYCLES` cycles, since the kernel's share
/// (most of it) varies with what else the machine is doing.
fn cpu_per_cycle(sampler: &mut dyn BlockingSampler) -> (f64, usize) {
    let warm = sampler.sample(SystemTime::now()).expect("warm-up sample");
    let series = warm.series();
    let mut batches: Vec<f64> = (0..BATCHES)
        .map(|_| {
            let start = thread_cpu_time();
            for _ in 0..CYCLES {
                let out = sampler.sample(SystemTime::now()).expect("sample");
                std::hint::black_box(out);
            }
            (thread_cpu_time() - start).as_secs_f64() / CYCLES as f64
        })
        .collect();
    batches.sort_by(f64::total_cmp);
    (batches[BATCHES / 2], series)
}

struct NodeExporter {
    child: std::process::Child,
    addr: std::net::SocketAddr,
}

impl NodeExporter {
    fn start() -> NodeExporter {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}").parse().unwrap();
        let child = Command::new("prometheus-node-exporter")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus-node-exporter (Debian package) is needed");
        wait_for(Duration::from_secs(10), || {
            http_get(addr, "/metrics", &[])
                .ok()
                .filter(|r| r.status == 200)
        })
        .expect("node_exporter up");
        NodeExporter { child, addr }
    }

    /// CPU per scrape and lines per scrape.
    fn measure(&self) -> (f64, usize) {
        let lines = http_get(self.addr, "/metrics", &[])
            .map(|r| r.body.lines().filter(|l| !l.starts_with('#')).count())
            .unwrap_or(0);
        let before = process_cpu(self.child.id());
        for _ in 0..SCRAPES {
            let _ = http_get(self.addr, "/metrics", &[]);
        }
        (
            (process_cpu(self.child.id()) - before) / SCRAPES as f64,
            lines,
        )
    }
}

impl Drop for NodeExporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The agent as a process: CPU per cycle (every sampler at 1 s, plus a
/// scrape per cycle) and peak RSS.
fn agent_process(seconds: u64) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(
        dir.path().join("agent.yaml"),
        format!(
            "listen: \"127.0.0.1:{port}\"\nsamplers:\n  host: {{interval: 1s, timeout: 1s, mount_timeout: 500ms}}\n  containers: {{interval: 1s, timeout: 1s}}\n  docker: {{interval: 1s, timeout: 1s}}\n  kubelet: {{enabled: false}}\n  kube_proxy: {{enabled: false}}\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(bin_dir().join("lookout-agent"))
        .arg("-c")
        .arg(dir.path().join("agent.yaml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("release lookout-agent (run scripts/bench-agent.sh)");
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_for(Duration::from_secs(10), || {
        http_get(addr, "/metrics", &[])
            .ok()
            .filter(|r| r.status == 200)
    })
    .expect("agent up");
    std::thread::sleep(Duration::from_secs(2));
    let before = process_cpu(child.id());
    let t0 = Instant::now();
    for _ in 0..seconds {
        std::thread::sleep(Duration::from_secs(1));
        let _ = http_get(addr, "/metrics", &[]);
    }
    let cpu = process_cpu(child.id()) - before;
    let cycles = t0.elapsed().as_secs_f64();
    let rss = peak_rss_mib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    (cpu / cycles, rss)
}

/// Reads up to [`STATS_SAMPLE`] containers once each through
/// `/containers/<id>/stats` (`stream=false&one-shot=true`, the cheapest
/// form): CPU of the client and of every process on the daemon's side per
/// container, less what those processes use idle over the same time, and
/// wall time per container.
fn docker_stats_api(ids: &[String], rt: &tokio::runtime::Runtime) -> Option<(f64, f64)> {
    let ids = &ids[..ids.len().min(STATS_SAMPLE)];
    if ids.is_empty() {
        return None;
    }
    let pids = stats_path_pids();
    if pids.is_empty() {
        return None;
    }
    // Idle baseline: the same processes, without stats calls, over as long
    // as the calls take (about a second each); a short window is dominated
    // by the shims' periodic housekeeping.
    let idle0 = total_cpu(&pids);
    let idle_t = Instant::now();
    std::thread::sleep(Duration::from_secs(ids.len() as u64));
    let idle_rate = (total_cpu(&pids) - idle0) / idle_t.elapsed().as_secs_f64();
    let d0 = total_cpu(&pids);
    let c0 = thread_cpu_time();
    let t0 = Instant::now();
    rt.block_on(async {
        for id in ids {
            get_json(
                docker::SOCKET,
                &format!("/v1.41/containers/{id}/stats?stream=false&one-shot=true"),
            )
            .await
            .expect("stats");
        }
    });
    let elapsed = t0.elapsed().as_secs_f64();
    let daemon = (total_cpu(&pids) - d0 - idle_rate * elapsed).max(0.0);
    let cpu = daemon + (thread_cpu_time() - c0).as_secs_f64();
    Some((cpu / ids.len() as f64, elapsed / ids.len() as f64))
}

fn main() {
    if !docker::available() {
        eprintln!("agent bench: the Docker Engine is needed");
        std::process::exit(1);
    }
    docker::ensure_image();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let node_exporter = NodeExporter::start();
    let mut fleet = Fleet { ids: Vec::new() };
    println!(
        "agent benchmark ({} CPUs, cgroup {} , Docker {})",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        lookout_agent::samplers::containers::describe_layout(&Paths::default()),
        docker::docker(&["version", "--format", "{{.Server.Version}}"])
    );
    println!();
    println!(
        "{:>10} | {:>14} {:>14} {:>7} | {:>16} {:>16} {:>16} {:>8} | {:>12} {:>10} {:>12} {:>10} {:>7}",
        "containers",
        "host µs/cycle",
        "n_e µs/scrape",
        "ratio",
        "cgroup µs/ctr",
        "stats API µs/ctr",
        "stats wall ms",
        "ratio",
        "agent µs/cyc",
        "agent MiB",
        "n_e µs/scr",
        "n_e MiB",
        "ratio"
    );
    for n in [0usize, 20, 100] {
        fleet.grow_to(n);
        // Let the daemon finish starting them before measuring.
        std::thread::sleep(Duration::from_secs(10));
        let mut host = HostSampler::new(HostConfig::default(), Paths::default()).unwrap();
        let (host_cpu, host_series) = cpu_per_cycle(&mut host);
        let (ne_cpu, ne_lines) = node_exporter.measure();
        let inventory = Inventory::default();
        let mut containers =
            ContainerSampler::new(ContainersConfig::default(), Paths::default(), inventory);
        let (ctr_cpu, ctr_series) = cpu_per_cycle(&mut containers);
        let per_container = if n > 0 { ctr_cpu / n as f64 } else { 0.0 };
        let stats = docker_stats_api(&fleet.ids, &rt);
        let (agent_cpu, agent_rss) = agent_process(15);
        let ne_rss = peak_rss_mib(node_exporter.child.id());
        let (stats_cpu, stats_wall) = stats.unwrap_or((0.0, 0.0));
        let fmt_ratio = |a: f64, b: f64| {
            if b > 0.0 {
                format!("{:.3}x", a / b)
            } else {
                "-".to_string()
            }
        };
        println!(
            "{:>10} | {:>14.1} {:>14.1} {:>7} | {:>16.2} {:>16.1} {:>16.1} {:>8} | {:>12.1} {:>10.1} {:>12.1} {:>10.1} {:>7}",
            n,
            host_cpu * 1e6,
            ne_cpu * 1e6,
            fmt_ratio(host_cpu, ne_cpu),
            per_container * 1e6,
            stats_cpu * 1e6,
            stats_wall * 1e3,
            if n > 0 {
                format!("1/{:.0}", stats_cpu / per_container.max(1e-12))
            } else {
                "-".into()
            },
            agent_cpu * 1e6,
            agent_rss,
            ne_cpu * 1e6,
            ne_rss,
            fmt_ratio(agent_rss, ne_rss),
        );
        println!(
            "{:>10} | host series {host_series}, node_exporter lines {ne_lines}, container series {ctr_series}",
            ""
        );
    }
    println!();
    println!(
        "host µs/cycle: CPU of one host sampling (thread time, median of 5 batches of 40 cycles); n_e µs/scrape: node_exporter CPU per /metrics scrape (50 scrapes)."
    );
    println!(
        "cgroup µs/ctr: container sampler CPU per container per cycle (same batches); stats API µs/ctr: CPU of dockerd, containerd, the shims and the client per one-shot stats call, less their idle CPU, over up to 20 containers."
    );
    println!(
        "agent µs/cyc: whole agent process CPU per second with every sampler at 1s and one scrape per second; MiB: peak RSS (VmHWM)."
    );
}
