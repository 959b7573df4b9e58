//! Ingest benchmark: the same agent-shaped remote-write payloads replayed
//! into the Lookout collector, Debian's `victoria-metrics` and Debian's
//! `prometheus` (remote-write receiver), one after another on this machine.
//!
//! Phase 1 (throughput and memory): AGENTS agents x CONTAINERS containers
//! (about 33 series a container plus about 200 host series an agent), ROUNDS
//! pushes 10 s apart per agent, sent by CLIENTS keep-alive connections.
//! Reports samples per second of wall time, samples per CPU-second of the
//! server (utime + stime), and the server's RSS per active series.
//!
//! Phase 2 (disk): STORE_AGENTS agents over 4 hours of 10 s pushes, so that
//! every store cuts a block; reports bytes on disk per sample after that.
//!
//! Run with `scripts/bench-ingest.sh`; sizes are set by the environment
//! variables named above (`LOOKOUT_BENCH_AGENTS`, ...).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lookout_protocol::remote_write::{self, Label, Sample, TimeSeries, WriteRequest};
use lookout_tests::{bin, free_port, http_get, process_cpu_seconds, process_status_kib, wait_for};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// How one series' value moves from push to push.
#[derive(Clone, Copy)]
enum Shape {
    Constant(f64),
    /// A counter of integers growing by up to `step` a push.
    IntCounter {
        step: u64,
    },
    /// A counter of seconds with nanosecond resolution (cgroup CPU time).
    NanoSeconds {
        max_step: u64,
    },
    /// A counter of seconds with hundredths (node_exporter's USER_HZ CPU).
    Hundredths {
        max_step: u64,
    },
    /// Bytes that wander by whole pages.
    Pages {
        base: f64,
        spread: u64,
    },
    /// Seconds since the epoch at push time (container_last_seen).
    Now,
}

struct SeriesDef {
    labels: Vec<Label>,
    shape: Shape,
    value: f64,
}

fn label(n: &str, v: &str) -> Label {
    Label {
        name: n.to_string(),
        value: v.to_string(),
    }
}

fn sorted(mut labels: Vec<Label>) -> Vec<Label> {
    labels.sort_by(|a, b| a.name.cmp(&b.name));
    labels
}

fn agent_series(agent: usize, containers: usize, rng: &mut Rng) -> Vec<SeriesDef> {
    let node = format!("node-{agent:04}");
    let mut out = Vec::new();
    let add = |name: &str,
               extra: &[(&str, String)],
               job: &str,
               shape: Shape,
               out: &mut Vec<SeriesDef>| {
        let mut l = vec![
            label("__name__", name),
            label("instance", &node),
            label("job", job),
        ];
        for (n, v) in extra {
            l.push(label(n, v));
        }
        out.push(SeriesDef {
            labels: sorted(l),
            shape,
            value: 0.0,
        });
    };
    // Host, node_exporter-shaped: about 200 series.
    for cpu in 0..4 {
        for mode in [
            "idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user",
        ] {
            add(
                "node_cpu_seconds_total",
                &[("cpu", cpu.to_string()), ("mode", mode.to_string())],
                "node-exporter",
                Shape::Hundredths {
                    max_step: if mode == "idle" { 1000 } else { 50 },
                },
                &mut out,
            );
        }
    }
    for i in 0..60 {
        let shape = if i % 3 == 0 {
            Shape::Constant((rng.below(1 << 34) * 4096) as f64)
        } else {
            Shape::Pages {
                base: (rng.below(1 << 22) * 4096) as f64,
                spread: 4096,
            }
        };
        add(
            &format!("node_memory_field{i}_bytes"),
            &[],
            "node-exporter",
            shape,
            &mut out,
        );
    }
    for dev in ["sda", "sdb", "nvme0n1"] {
        for m in [
            "node_disk_reads_completed_total",
            "node_disk_writes_completed_total",
            "node_disk_read_bytes_total",
            "node_disk_written_bytes_total",
            "node_disk_io_time_seconds_total",
            "node_disk_read_time_seconds_total",
            "node_disk_write_time_seconds_total",
            "node_disk_io_now",
        ] {
            add(
                m,
                &[("device", dev.to_string())],
                "node-exporter",
                Shape::IntCounter { step: 5000 },
                &mut out,
            );
        }
    }
    for dev in ["eth0", "eth1", "lo", "docker0"] {
        for m in [
            "node_network_receive_bytes_total",
            "node_network_transmit_bytes_total",
            "node_network_receive_packets_total",
            "node_network_transmit_packets_total",
            "node_network_receive_errs_total",
            "node_network_transmit_errs_total",
            "node_network_receive_drop_total",
            "node_network_transmit_drop_total",
            "node_network_up",
            "node_network_mtu_bytes",
        ] {
            let shape = if m.ends_with("_total") {
                Shape::IntCounter {
                    step: if m.contains("bytes") { 1_000_000 } else { 500 },
                }
            } else {
                Shape::Constant(1500.0)
            };
            add(
                m,
                &[("device", dev.to_string())],
                "node-exporter",
                shape,
                &mut out,
            );
        }
    }
    for mount in ["/", "/boot", "/var/lib/docker", "/home"] {
        for m in [
            "node_filesystem_size_bytes",
            "node_filesystem_avail_bytes",
            "node_filesystem_free_bytes",
            "node_filesystem_files",
            "node_filesystem_files_free",
            "node_filesystem_readonly",
        ] {
            let shape = if m.contains("avail") || m.contains("free") {
                Shape::Pages {
                    base: (rng.below(1 << 24) * 4096) as f64,
                    spread: 256,
                }
            } else {
                Shape::Constant(rng.below(1 << 40) as f64)
            };
            add(
                m,
                &[
                    ("mountpoint", mount.to_string()),
                    ("device", "/dev/sda1".into()),
                    ("fstype", "ext4".into()),
                ],
                "node-exporter",
                shape,
                &mut out,
            );
        }
    }
    for m in ["node_load1", "node_load5", "node_load15"] {
        add(
            m,
            &[],
            "node-exporter",
            Shape::Hundredths { max_step: 30 },
            &mut out,
        );
    }
    add(
        "node_boot_time_seconds",
        &[],
        "node-exporter",
        Shape::Constant(1_700_000_000.0),
        &mut out,
    );
    // Containers, cAdvisor-shaped: 33 series each.
    for c in 0..containers {
        let id: String = (0..4).map(|_| format!("{:016x}", rng.next())).collect();
        let pod = format!("app-{}-{:05x}", c % 17, rng.below(1 << 20));
        let base = [
            (
                "id",
                format!("/kubepods/burstable/pod{:x}/{id}", rng.below(1 << 40)),
            ),
            (
                "image",
                format!(
                    "registry.example.com/team/app-{}:1.{}.{}",
                    c % 17,
                    c % 5,
                    c % 3
                ),
            ),
            (
                "name",
                format!("k8s_app_{pod}_default_{:x}_0", rng.below(1 << 32)),
            ),
            ("namespace", format!("ns-{}", c % 9)),
            ("pod", pod.clone()),
            ("container", format!("app-{}", c % 17)),
        ];
        let cadd =
            |name: &str, extra: &[(&str, String)], shape: Shape, out: &mut Vec<SeriesDef>| {
                let mut l: Vec<(&str, String)> = base.to_vec();
                l.extend_from_slice(extra);
                let mut labels = vec![
                    label("__name__", name),
                    label("instance", &node),
                    label("job", "cadvisor"),
                ];
                labels.extend(l.iter().map(|(n, v)| label(n, v)));
                out.push(SeriesDef {
                    labels: sorted(labels),
                    shape,
                    value: 0.0,
                });
            };
        for m in [
            "container_cpu_usage_seconds_total",
            "container_cpu_user_seconds_total",
            "container_cpu_system_seconds_total",
            "container_cpu_cfs_throttled_seconds_total",
        ] {
            cadd(
                m,
                &[],
                Shape::NanoSeconds {
                    max_step: 3_000_000_000,
                },
                &mut out,
            );
        }
        for m in [
            "container_cpu_cfs_periods_total",
            "container_cpu_cfs_throttled_periods_total",
        ] {
            cadd(m, &[], Shape::IntCounter { step: 100 }, &mut out);
        }
        for m in [
            "container_memory_usage_bytes",
            "container_memory_working_set_bytes",
            "container_memory_rss",
            "container_memory_cache",
            "container_memory_mapped_file",
            "container_memory_max_usage_bytes",
        ] {
            cadd(
                m,
                &[],
                Shape::Pages {
                    base: (rng.below(1 << 17) * 4096) as f64,
                    spread: 64,
                },
                &mut out,
            );
        }
        for m in [
            "container_memory_swap",
            "container_memory_failcnt",
            "container_spec_memory_limit_bytes",
            "container_spec_cpu_quota",
            "container_spec_cpu_period",
            "container_spec_cpu_shares",
            "container_start_time_seconds",
            "container_oom_events_total",
        ] {
            cadd(m, &[], Shape::Constant(rng.below(1 << 30) as f64), &mut out);
        }
        for m in [
            "container_network_receive_bytes_total",
            "container_network_transmit_bytes_total",
            "container_network_receive_packets_total",
            "container_network_transmit_packets_total",
            "container_network_receive_errors_total",
            "container_network_transmit_errors_total",
            "container_network_receive_packets_dropped_total",
            "container_network_transmit_packets_dropped_total",
        ] {
            let step = if m.contains("bytes") {
                200_000
            } else if m.contains("packets_total") {
                300
            } else {
                0
            };
            cadd(
                m,
                &[("interface", "eth0".into())],
                Shape::IntCounter { step },
                &mut out,
            );
        }
        for m in [
            "container_fs_reads_bytes_total",
            "container_fs_writes_bytes_total",
        ] {
            cadd(
                m,
                &[("device", "/dev/sda".into())],
                Shape::IntCounter { step: 40_960 },
                &mut out,
            );
        }
        for m in ["container_processes", "container_threads"] {
            cadd(
                m,
                &[],
                Shape::Constant((1 + rng.below(40)) as f64),
                &mut out,
            );
        }
        cadd("container_last_seen", &[], Shape::Now, &mut out);
    }
    for s in out.iter_mut() {
        s.value = match s.shape {
            Shape::Constant(v) => v,
            Shape::Pages { base, .. } => base,
            _ => rng.below(1 << 30) as f64,
        };
    }
    out
}

fn advance(s: &mut SeriesDef, rng: &mut Rng, t_ms: i64) -> f64 {
    s.value = match s.shape {
        Shape::Constant(v) => v,
        Shape::IntCounter { step } => s.value + rng.below(step + 1) as f64,
        Shape::NanoSeconds { max_step } => {
            let ns = (s.value * 1e9).round() as u64 + rng.below(max_step);
            ns as f64 / 1e9
        }
        Shape::Hundredths { max_step } => {
            let h = (s.value * 100.0).round() as u64 + rng.below(max_step);
            h as f64 / 100.0
        }
        Shape::Pages { base, spread } => base + (rng.below(spread) * 4096) as f64,
        Shape::Now => (t_ms / 1000) as f64,
    };
    s.value
}

/// Encoded bodies, agent-major within each round, and the sample count.
fn payloads(
    agents: usize,
    containers: usize,
    rounds: usize,
    start_ms: i64,
) -> (Vec<Vec<u8>>, u64, u64) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut defs: Vec<Vec<SeriesDef>> = (0..agents)
        .map(|a| agent_series(a, containers, &mut rng))
        .collect();
    let series: u64 = defs.iter().map(|d| d.len() as u64).sum();
    let mut bodies = Vec::with_capacity(agents * rounds);
    let mut samples = 0u64;
    for r in 0..rounds {
        for (a, d) in defs.iter_mut().enumerate() {
            // Agents push at their own offset within the 10 s interval.
            let t = start_ms + r as i64 * 10_000 + (a as i64 * 7919) % 10_000;
            let timeseries: Vec<TimeSeries> = d
                .iter_mut()
                .map(|s| {
                    let v = advance(s, &mut rng, t);
                    TimeSeries {
                        labels: s.labels.clone(),
                        samples: vec![Sample {
                            value: v,
                            timestamp: t,
                        }],
                        ..Default::default()
                    }
                })
                .collect();
            samples += timeseries.len() as u64;
            bodies.push(remote_write::encode(&WriteRequest {
                timeseries,
                metadata: Vec::new(),
            }));
        }
    }
    (bodies, samples, series)
}

struct Server {
    name: &'static str,
    child: Child,
    addr: SocketAddr,
    write_path: &'static str,
    data: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(name: &'static str, dir: &Path) -> Server {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let data = dir.join(name);
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    let (mut cmd, write_path, ready) = match name {
        "lookout" => {
            let mut c = Command::new(bin("lookout"));
            c.arg("serve")
                .arg("--listen")
                .arg(addr.to_string())
                .arg("--storage-path")
                .arg(&data);
            (c, "/api/v1/write", "/-/ready")
        }
        "victoria-metrics" => {
            let mut c = Command::new("victoria-metrics");
            c.arg(format!("-storageDataPath={}", data.display()))
                .arg(format!("-httpListenAddr={addr}"))
                .arg("-retentionPeriod=100y")
                .arg("-search.latencyOffset=0s");
            (c, "/api/v1/write", "/health")
        }
        _ => {
            std::fs::write(
                dir.join("prometheus.yml"),
                "global: {scrape_interval: 1m}\n",
            )
            .unwrap();
            let mut c = Command::new("prometheus");
            c.arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--web.enable-remote-write-receiver")
            .arg("--storage.tsdb.retention.time=100y");
            (c, "/api/v1/write", "/-/ready")
        }
    };
    let child = cmd
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start server");
    let s = Server {
        name,
        child,
        addr,
        write_path,
        data,
    };
    wait_for(Duration::from_secs(60), || {
        http_get(s.addr, ready, &[])
            .ok()
            .filter(|r| r.status == 200)
    })
    .unwrap_or_else(|| panic!("{name} did not become ready"));
    s
}

/// Posts one body on a keep-alive connection; returns the status.
fn post(
    conn: &mut BufReader<TcpStream>,
    addr: SocketAddr,
    path: &str,
    body: &[u8],
) -> std::io::Result<u16> {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\nX-Prometheus-Remote-Write-Version: 0.1.0\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let s = conn.get_mut();
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut line = String::new();
    conn.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut len = 0usize;
    loop {
        line.clear();
        conn.read_line(&mut line)?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut rest = vec![0u8; len];
    conn.read_exact(&mut rest)?;
    Ok(status)
}

/// Sends every body over `clients` connections; returns wall seconds.
/// Bodies are agent-major within rounds; each agent's bodies go through
/// one connection in round order, as a real agent sends them (Prometheus
/// refuses a series' samples out of order).
fn replay(server: &Server, bodies: &Arc<Vec<Vec<u8>>>, agents: usize, clients: usize) -> f64 {
    let started = Instant::now();
    // All clients finish a round before any starts the next, so no agent
    // runs ahead of the others (Prometheus refuses samples more than an hour
    // behind its newest).
    let barrier = Arc::new(std::sync::Barrier::new(clients));
    let rounds = bodies.len() / agents;
    let threads: Vec<_> = (0..clients)
        .map(|k| {
            let bodies = bodies.clone();
            let barrier = barrier.clone();
            let addr = server.addr;
            let path = server.write_path;
            std::thread::spawn(move || {
                let connect = || {
                    let s = TcpStream::connect(addr).expect("connect");
                    s.set_nodelay(true).ok();
                    s.set_read_timeout(Some(Duration::from_secs(300))).ok();
                    BufReader::new(s)
                };
                let mut conn = connect();
                for r in 0..rounds {
                    for a in (k..agents).step_by(clients) {
                        let body = &bodies[r * agents + a];
                        let mut tries = 0;
                        loop {
                            match post(&mut conn, addr, path, body) {
                                Ok(s) if (200..300).contains(&s) => break,
                                Ok(s) => panic!("push answered {s}"),
                                Err(e) => {
                                    tries += 1;
                                    assert!(tries < 5, "push failed: {e}");
                                    conn = connect();
                                }
                            }
                        }
                    }
                    barrier.wait();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    started.elapsed().as_secs_f64()
}

fn dir_bytes(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Bytes per sample of the blocks a store has cut: (bytes, samples).
fn block_bytes(server: &Server) -> (u64, u64) {
    match server.name {
        "victoria-metrics" => (dir_bytes(&server.data), 0),
        name => {
            let blocks_dir = if name == "lookout" {
                server.data.join("blocks")
            } else {
                server.data.clone()
            };
            let mut bytes = 0;
            let mut samples = 0;
            for e in std::fs::read_dir(&blocks_dir)
                .into_iter()
                .flatten()
                .flatten()
            {
                let meta = e.path().join("meta.json");
                let Ok(text) = std::fs::read_to_string(&meta) else {
                    continue;
                };
                let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                let n = v["numSamples"]
                    .as_u64()
                    .or_else(|| v["stats"]["numSamples"].as_u64())
                    .unwrap_or(0);
                samples += n;
                bytes += dir_bytes(&e.path());
            }
            (bytes, samples)
        }
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let agents = env_usize("LOOKOUT_BENCH_AGENTS", 300);
    let containers = env_usize("LOOKOUT_BENCH_CONTAINERS", 100);
    let rounds = env_usize("LOOKOUT_BENCH_ROUNDS", 6);
    let clients = env_usize("LOOKOUT_BENCH_CLIENTS", 4);
    let store_agents = env_usize("LOOKOUT_BENCH_STORE_AGENTS", 10);
    let only: Option<String> = std::env::var("LOOKOUT_BENCH_ONLY").ok();
    let servers: Vec<&'static str> = ["lookout", "victoria-metrics", "prometheus"]
        .into_iter()
        .filter(|s| {
            only.as_deref()
                .is_none_or(|o| o.split(',').any(|x| x == *s))
        })
        .collect();
    let tmp = std::env::var("LOOKOUT_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir());
    let work = tempfile::tempdir_in(tmp).expect("work dir");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;

    let phases = std::env::var("LOOKOUT_BENCH_PHASES").unwrap_or_else(|_| "1,2".into());
    if phases.split(',').any(|p| p == "1") {
        phase_one(
            &servers,
            work.path(),
            agents,
            containers,
            rounds,
            clients,
            now_ms,
        );
    }
    if phases.split(',').any(|p| p == "2") {
        phase_two(
            &servers,
            work.path(),
            store_agents,
            containers,
            clients,
            now_ms,
        );
    }
}

fn phase_one(
    servers: &[&'static str],
    work: &Path,
    agents: usize,
    containers: usize,
    rounds: usize,
    clients: usize,
    now_ms: i64,
) {
    let t = Instant::now();
    let (bodies, samples, series) =
        payloads(agents, containers, rounds, now_ms - rounds as i64 * 10_000);
    let wire: usize = bodies.iter().map(|b| b.len()).sum();
    let bodies = Arc::new(bodies);
    println!(
        "phase 1: {agents} agents x {containers} containers = {series} series, {rounds} rounds, {samples} samples, {:.1} MiB on the wire ({:.1} s to generate), {clients} client connections",
        wire as f64 / 1048576.0,
        t.elapsed().as_secs_f64()
    );
    let mut rows: Vec<(&str, f64, f64, f64)> = Vec::new();
    let phase1 = work.join("throughput");
    for name in servers {
        let s = start(name, &phase1);
        let pid = s.child.id();
        let rss_before = process_status_kib(pid, "VmRSS:");
        let cpu0 = process_cpu_seconds(pid);
        let wall = replay(&s, &bodies, agents, clients);
        // Let background work (flushes, merges) that the pushes caused finish.
        std::thread::sleep(Duration::from_secs(3));
        let cpu = process_cpu_seconds(pid) - cpu0;
        let rss = process_status_kib(pid, "VmRSS:") * 1024.0;
        let per_wall = samples as f64 / wall;
        let per_cpu = samples as f64 / cpu.max(1e-9);
        println!(
            "  {name:17} {per_wall:>11.0} samples/s wall ({wall:.1} s)  {per_cpu:>11.0} samples/CPU-s ({cpu:.1} CPU-s)  RSS {:.0} MiB = {:.0} B/series (idle {:.0} MiB)",
            rss / 1048576.0,
            rss / series as f64,
            rss_before / 1024.0
        );
        rows.push((name, per_wall, per_cpu, rss / series as f64));
        drop(s);
    }
    if let Some(l) = rows.iter().find(|r| r.0 == "lookout") {
        for other in rows.iter().filter(|r| r.0 != "lookout") {
            println!(
                "  ratio lookout/{}: throughput {:.2}x wall, {:.2}x per CPU-second; RSS per series {:.2}x",
                other.0,
                l.1 / other.1,
                l.2 / other.2,
                l.3 / other.3
            );
        }
    }
}

/// Phase 2: 4 h of data, so that every store writes a block.
fn phase_two(
    servers: &[&'static str],
    work: &Path,
    store_agents: usize,
    containers: usize,
    clients: usize,
    now_ms: i64,
) {
    let store_rounds = 4 * 360 + 60;
    let t = Instant::now();
    let start_ms = now_ms - store_rounds as i64 * 10_000;
    let (bodies, samples, series) = payloads(store_agents, containers, store_rounds, start_ms);
    let bodies = Arc::new(bodies);
    println!(
        "phase 2: {store_agents} agents x {containers} containers = {series} series over {:.1} h: {samples} samples ({:.1} s to generate)",
        store_rounds as f64 / 360.0,
        t.elapsed().as_secs_f64()
    );
    let mut bps: Vec<(&str, f64)> = Vec::new();
    let phase2 = work.join("disk");
    for name in servers {
        let s = start(name, &phase2);
        let wall = replay(&s, &bodies, store_agents, clients);
        let (bytes, in_blocks) = match *name {
            "victoria-metrics" => {
                let _ = http_get(s.addr, "/internal/force_flush", &[]);
                let _ = http_get(s.addr, "/internal/force_merge", &[]);
                // Merges run in the background; wait until the size settles.
                let mut last = 0;
                for _ in 0..60 {
                    std::thread::sleep(Duration::from_secs(2));
                    let now = dir_bytes(&s.data);
                    if now == last {
                        break;
                    }
                    last = now;
                }
                (dir_bytes(&s.data), samples)
            }
            _ => {
                let got = wait_for(Duration::from_secs(240), || {
                    let (b, n) = block_bytes(&s);
                    (n > 0).then_some((b, n))
                });
                got.unwrap_or_else(|| {
                    let log = std::fs::read_to_string(phase2.join(format!("{name}.log")))
                        .unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(20).collect();
                    println!(
                        "  {name}: no block within 240 s; log tail:\n{}",
                        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                    );
                    (0, 0)
                })
            }
        };
        let per = bytes as f64 / in_blocks.max(1) as f64;
        println!(
            "  {name:17} {:.3} bytes/sample on disk ({bytes} bytes for {in_blocks} samples in blocks; ingest {:.0} samples/s)",
            per,
            samples as f64 / wall
        );
        bps.push((name, per));
        drop(s);
    }
    if let Some(l) = bps.iter().find(|r| r.0 == "lookout") {
        for other in bps.iter().filter(|r| r.0 != "lookout") {
            println!(
                "  ratio lookout/{}: bytes per sample {:.2}x",
                other.0,
                l.1 / other.1
            );
        }
    }
}
