//! Query benchmark: PromQL in the Lookout collector against Debian's
//! `prometheus`, on the same data, in one run.
//!
//! 1. Simulates the series of a Kubernetes cluster of NODES nodes as
//!    kube-prometheus scrapes it: node_exporter, cAdvisor (through the
//!    kubelet), the kubelet's own metrics, kube-state-metrics, three
//!    control-plane nodes' apiserver and scheduler, Grafana, and `up` for
//!    every target. Counters grow (a few restart), gauges wobble, histogram
//!    buckets stay cumulative.
//! 2. Starts `lookout serve` and `prometheus --web.enable-remote-write-receiver`
//!    and pushes the same HISTORY_MIN minutes of 30 s scrapes, ending now,
//!    to each by remote write 1.0, one after the other.
//! 3. Backfills the recorded series that other kube-prometheus rules read
//!    (`node_namespace_pod:kube_pod_info:`, `code_verb:apiserver_request_total:increase1h`,
//!    ...) from Prometheus's evaluation of those rules, into both stores, so
//!    that rules built on rules have data, as in a running Prometheus.
//! 4. Runs every recording rule's `expr` of the kube-prometheus rule files as
//!    an instant query at the end of the history, and typical dashboard range
//!    queries over the whole history (step 30 s), on both servers in turn:
//!    one warm-up (whose answers are cross-checked), then REPEAT timed runs,
//!    the median counted.
//! 5. Reports time per group and ratio, the slowest queries, mismatches and
//!    errors, peak RSS (VmHWM) of both servers, and a summary line.
//!
//! Run with `scripts/bench-query.sh`. Environment: `LOOKOUT_BENCH_NODES`
//! (1000), `LOOKOUT_BENCH_PODS` (pods a node, 30), `LOOKOUT_BENCH_HISTORY_MIN`
//! (30, at most 60: Prometheus refuses samples more than an hour behind its
//! newest), `LOOKOUT_BENCH_REPEAT` (3), `LOOKOUT_BENCH_CLIENTS` (push
//! connections, 4), `LOOKOUT_BENCH_BATCH` (series a push, 10000),
//! `LOOKOUT_BENCH_RULES` (rule directory, `../shared/conformance/kube-prometheus`
//! beside the workspace).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use lookout_protocol::remote_write::{self, Label, Sample, TimeSeries, WriteRequest};
use lookout_tests::{
    Collector, Prometheus, have_program, http_get, process_cpu_seconds, process_status_kib,
    require, url_encode,
};

/// The scrape interval of the simulated targets and the step of the range
/// queries.
const SCRAPE_MS: i64 = 30_000;
/// How long one query may take before the bench gives up on it.
const QUERY_TIMEOUT: Duration = Duration::from_secs(600);
/// Relative tolerance of the cross-check. Engines may sum in different
/// orders, so the last bits of a float differ; anything above this is a
/// different answer.
const REL_TOLERANCE: f64 = 1e-6;
/// Absolute tolerance for values that cancel to about zero (`1 - x` with x
/// near 1), where a relative comparison of rounding noise is meaningless.
const ABS_TOLERANCE: f64 = 1e-12;
/// Mismatching queries printed in full.
const MISMATCHES_SHOWN: usize = 5;

struct Settings {
    nodes: usize,
    pods: usize,
    history_min: usize,
    repeat: usize,
    clients: usize,
    batch: usize,
    rules_dir: PathBuf,
}

fn env_usize(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .with_context(|| format!("{name}={v:?} is not a whole number")),
        Err(_) => Ok(default),
    }
}

impl Settings {
    fn from_env() -> anyhow::Result<Settings> {
        let s = Settings {
            nodes: env_usize("LOOKOUT_BENCH_NODES", 1000)?,
            pods: env_usize("LOOKOUT_BENCH_PODS", 30)?,
            history_min: env_usize("LOOKOUT_BENCH_HISTORY_MIN", 30)?,
            repeat: env_usize("LOOKOUT_BENCH_REPEAT", 3)?,
            clients: env_usize("LOOKOUT_BENCH_CLIENTS", 4)?,
            batch: env_usize("LOOKOUT_BENCH_BATCH", 10_000)?,
            rules_dir: std::env::var_os("LOOKOUT_BENCH_RULES")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    Path::new(env!("CARGO_MANIFEST_DIR"))
                        .join("../../shared/conformance/kube-prometheus")
                }),
        };
        // Shorter to print; a missing directory is reported when read.
        let s = Settings {
            rules_dir: std::fs::canonicalize(&s.rules_dir).unwrap_or(s.rules_dir),
            ..s
        };
        if s.nodes == 0 || s.repeat == 0 || s.clients == 0 || s.batch == 0 {
            bail!("LOOKOUT_BENCH_NODES, _REPEAT, _CLIENTS and _BATCH must be above 0");
        }
        if s.pods < 8 {
            bail!("LOOKOUT_BENCH_PODS must be at least 8 (the fixed per-node pods plus workloads)");
        }
        // Rates over 5m need more than 5 minutes; Prometheus refuses samples
        // more than an hour behind its newest, and the recorded series are
        // pushed after the raw data.
        if !(6..=60).contains(&s.history_min) {
            bail!("LOOKOUT_BENCH_HISTORY_MIN must be between 6 and 60 minutes");
        }
        Ok(s)
    }

    fn steps(&self) -> u32 {
        (self.history_min as i64 * 60_000 / SCRAPE_MS) as u32
    }
}

// ---------------------------------------------------------------------------
// Deterministic noise

fn mix(mut x: u64) -> u64 {
    // splitmix64
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A number in [0, 1) fixed by `seed` and scrape `k`.
fn unit(seed: u64, k: u32) -> f64 {
    let x = mix(seed ^ (k as u64).wrapping_mul(0xd1b5_4a32_d192_ed03));
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// A number in [0, n) fixed by `seed`.
fn pick(seed: u64, n: u64) -> u64 {
    mix(seed) % n.max(1)
}

const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `len` characters of Kubernetes' random-name alphabet. Distinct `n` below
/// 27^len give distinct names: multiplying by a number prime to 27 permutes
/// the residues, so generated pod names never collide.
fn k8s_suffix(n: u64, len: u32) -> String {
    let modulus = 27u128.pow(len);
    let mut x = (n as u128 % modulus) * 7_368_787 % modulus;
    let mut out = String::with_capacity(len as usize);
    for _ in 0..len {
        out.push(NAME_ALPHABET[(x % 27) as usize] as char);
        x /= 27;
    }
    out
}

fn uuid(seed: u64) -> String {
    let a = mix(seed);
    let b = mix(a);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        (b >> 48) & 0xfff,
        b & 0xffff_ffff_ffff
    )
}

fn hex64(seed: u64) -> String {
    (0..4)
        .map(|i| format!("{:016x}", mix(seed.wrapping_add(i))))
        .collect()
}

// ---------------------------------------------------------------------------
// Series values

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Const,
    Gauge,
    Counter,
}

/// How one series' value moves, as a function of the scrape number alone,
/// so that the history pushed to each server is the same without keeping
/// any state per series.
#[derive(Clone, Copy)]
struct Gen {
    kind: Kind,
    base: f64,
    /// Counter: mean increase a scrape; gauge: width of the wobble.
    step: f64,
    /// Values are whole multiples of this (0: any float).
    quantum: f64,
    /// Counters: the value is `scale` times the raw count; the buckets of
    /// one histogram share a seed and scale by their share of observations,
    /// so they stay cumulative.
    scale: f64,
    seed: u64,
    /// Counters: the scrape at which the counter restarts from 0 (0: never).
    reset_at: u32,
    /// Milliseconds after the 30 s grid at which the target is scraped;
    /// never 0, so no sample sits on the edge of a query window, where
    /// Prometheus 2 (closed windows) and 3 (left-open) differ.
    offset_ms: u32,
}

impl Gen {
    fn new(kind: Kind, base: f64, step: f64, quantum: f64) -> Gen {
        Gen {
            kind,
            base,
            step,
            quantum,
            scale: 1.0,
            seed: 0,
            reset_at: 0,
            offset_ms: 0,
        }
    }

    fn constant(v: f64) -> Gen {
        Gen::new(Kind::Const, v, 0.0, 0.0)
    }

    fn gauge(base: f64, spread: f64, quantum: f64) -> Gen {
        Gen::new(Kind::Gauge, base, spread, quantum)
    }

    fn counter(base: f64, step: f64, quantum: f64) -> Gen {
        Gen::new(Kind::Counter, base, step, quantum)
    }

    fn value(&self, k: u32) -> f64 {
        let v = match self.kind {
            Kind::Const => return self.base,
            Kind::Gauge => self.base + self.step * unit(self.seed, k),
            Kind::Counter => {
                let (origin, since) = if self.reset_at > 0 && k >= self.reset_at {
                    (0.0, k - self.reset_at)
                } else {
                    (self.base, k)
                };
                // Grows by 0.5 to 1.5 steps a scrape: never decreases.
                let raw = origin + self.step * (since as f64 + 0.5 * unit(self.seed, k));
                self.scale * raw
            }
        };
        if self.quantum > 0.0 {
            (v / self.quantum).floor() * self.quantum
        } else {
            v
        }
    }
}

// ---------------------------------------------------------------------------
// The simulated cluster

/// Every series: labels already encoded as the `labels` fields of a
/// remote-write `TimeSeries` (so a push is a copy, not an encoding), and how
/// its value moves.
struct Cluster {
    labels: Vec<u8>,
    ends: Vec<usize>,
    gens: Vec<Gen>,
}

impl Cluster {
    fn len(&self) -> usize {
        self.gens.len()
    }

    fn labels_pb(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.labels[start..self.ends[i]]
    }
}

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Appends `TimeSeries.labels` (field 1) entries for sorted labels.
fn put_labels(buf: &mut Vec<u8>, labels: &[(&str, &str)]) {
    for (n, v) in labels {
        let inner =
            1 + varint_len(n.len() as u64) + n.len() + 1 + varint_len(v.len() as u64) + v.len();
        buf.push(0x0a);
        put_varint(buf, inner as u64);
        buf.push(0x0a);
        put_varint(buf, n.len() as u64);
        buf.extend_from_slice(n.as_bytes());
        buf.push(0x12);
        put_varint(buf, v.len() as u64);
        buf.extend_from_slice(v.as_bytes());
    }
}

/// Appends one `WriteRequest.timeseries` entry (field 1) holding one sample.
fn put_series(buf: &mut Vec<u8>, labels_pb: &[u8], t_ms: i64, v: f64) {
    // Sample: value (field 1, fixed64), timestamp (field 2, varint).
    let sample_len = 1 + 8 + 1 + varint_len(t_ms as u64);
    let ts_len = labels_pb.len() + 1 + varint_len(sample_len as u64) + sample_len;
    buf.push(0x0a);
    put_varint(buf, ts_len as u64);
    buf.extend_from_slice(labels_pb);
    buf.push(0x12);
    put_varint(buf, sample_len as u64);
    buf.push(0x09);
    buf.extend_from_slice(&v.to_le_bytes());
    buf.push(0x10);
    put_varint(buf, t_ms as u64);
}

/// The labels a scrape target adds to its series, and when it is scraped.
struct Target {
    labels: Vec<(&'static str, String)>,
    offset_ms: u32,
}

fn target(labels: &[(&'static str, &str)]) -> Target {
    let key: u64 = labels
        .iter()
        .flat_map(|(n, v)| n.bytes().chain(v.bytes()))
        .fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
        });
    Target {
        labels: labels.iter().map(|(n, v)| (*n, v.to_string())).collect(),
        offset_ms: 1000 + pick(key, 28_001) as u32,
    }
}

struct Builder {
    cluster: Cluster,
    steps: u32,
    next_seed: u64,
}

impl Builder {
    fn seed(&mut self) -> u64 {
        self.next_seed += 1;
        mix(self.next_seed)
    }

    /// About 1% of counters restart somewhere in the history, as counters
    /// of restarted containers do, so that `rate` sees resets.
    fn reset_for(&self, seed: u64) -> u32 {
        if self.steps > 2 && pick(seed ^ 0x5eed, 100) == 0 {
            1 + pick(seed, self.steps as u64 - 1) as u32
        } else {
            0
        }
    }

    /// Adds a series with its own seed.
    fn add(&mut self, t: &Target, name: &str, extra: &[(&str, &str)], mut shape: Gen) {
        shape.seed = self.seed();
        if shape.kind == Kind::Counter {
            shape.reset_at = self.reset_for(shape.seed);
        }
        self.add_gen(t, name, extra, shape);
    }

    /// Adds a series as `shape` says. Series labels win over the target's
    /// (Prometheus's `honor_labels`, as kube-prometheus sets it for
    /// kube-state-metrics and cAdvisor); empty values are left out, as a
    /// scrape leaves them out.
    fn add_gen(&mut self, t: &Target, name: &str, extra: &[(&str, &str)], mut shape: Gen) {
        let mut labels: Vec<(&str, &str)> = Vec::with_capacity(1 + extra.len() + t.labels.len());
        labels.push(("__name__", name));
        labels.extend(extra.iter().copied());
        for (n, v) in &t.labels {
            if !extra.iter().any(|(e, _)| e == n) {
                labels.push((n, v));
            }
        }
        labels.retain(|(_, v)| !v.is_empty());
        labels.sort_unstable_by(|a, b| a.0.cmp(b.0));
        debug_assert!(labels.windows(2).all(|w| w[0].0 != w[1].0), "{labels:?}");
        put_labels(&mut self.cluster.labels, &labels);
        self.cluster.ends.push(self.cluster.labels.len());
        shape.offset_ms = t.offset_ms;
        self.cluster.gens.push(shape);
    }

    /// Adds several series with the same extra labels.
    fn add_all(&mut self, t: &Target, extra: &[(&str, &str)], series: &[(&str, Gen)]) {
        for (name, shape) in series {
            self.add(t, name, extra, *shape);
        }
    }

    fn up(&mut self, t: &Target, value: f64) {
        self.add(t, "up", &[], Gen::constant(value));
    }

    /// A classic histogram: cumulative `_bucket`s, `_count` and `_sum`
    /// growing by about `rate` observations a scrape, exponentially
    /// distributed with the given mean.
    fn histogram(
        &mut self,
        t: &Target,
        name: &str,
        extra: &[(&str, &str)],
        les: &[f64],
        rate: f64,
        mean: f64,
    ) {
        let seed = self.seed();
        let reset_at = self.reset_for(seed);
        let base = rate * (1000 + pick(seed, 100_000)) as f64;
        let counter = |scale: f64| Gen {
            scale,
            seed,
            reset_at,
            ..Gen::counter(base, rate, 1.0)
        };
        let bucket = format!("{name}_bucket");
        for le in les {
            let le_text = le.to_string();
            let mut l = extra.to_vec();
            l.push(("le", &le_text));
            self.add_gen(t, &bucket, &l, counter(1.0 - (-le / mean).exp()));
        }
        let mut l = extra.to_vec();
        l.push(("le", "+Inf"));
        self.add_gen(t, &bucket, &l, counter(1.0));
        self.add_gen(t, &format!("{name}_count"), extra, counter(1.0));
        let sum = Gen {
            quantum: 0.0,
            ..counter(mean)
        };
        self.add_gen(t, &format!("{name}_sum"), extra, sum);
    }
}

const APPS: &[&str] = &[
    "api", "web", "worker", "cache", "auth", "billing", "search", "ingest", "frontend", "notifier",
    "payments", "catalog",
];
const DATABASES: &[&str] = &[
    "postgres",
    "redis",
    "kafka",
    "zookeeper",
    "etcd",
    "elasticsearch",
];
const CRONJOBS: &[&str] = &["backup", "report", "cleanup", "sync"];
const PHASES: &[&str] = &["Pending", "Running", "Succeeded", "Failed", "Unknown"];
const TEAM_NAMESPACES: usize = 20;
const CONTROL_PLANE_NODES: usize = 3;
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
const MIB: f64 = 1024.0 * 1024.0;

fn node_name(i: usize) -> String {
    format!("node-{i:04}")
}

fn node_ip(i: usize) -> String {
    format!("10.{}.{}.{}", 16 + i / 62_500, (i / 250) % 250, i % 250 + 2)
}

fn pod_ip(g: usize) -> String {
    format!(
        "10.{}.{}.{}",
        128 + (g / 62_500) % 100,
        (g / 250) % 250,
        g % 250 + 2
    )
}

fn team_ns(n: usize) -> String {
    format!("team-{:02}", n % TEAM_NAMESPACES)
}

/// One pod, as kube-state-metrics and cAdvisor describe it.
struct Pod {
    namespace: String,
    name: String,
    uid: String,
    owner_kind: &'static str,
    owner_name: String,
    /// (name, image)
    containers: Vec<(String, String)>,
    phase: &'static str,
    host_network: bool,
    priority_class: &'static str,
    cpu_request: f64,
    memory_request: f64,
    limits: bool,
}

/// What owns the deployment-shaped pods of deployment `d`: most
/// ReplicaSets belong to a Deployment, some to an Argo Rollout, some to
/// nothing, so that every kube-prometheus `pod_owner` rule finds pods.
fn replicaset_owner(d: usize) -> &'static str {
    if d % 7 == 6 {
        ""
    } else if d % 11 == 10 {
        "Rollout"
    } else {
        "Deployment"
    }
}

fn deployment_name(d: usize) -> String {
    format!("{}-{d}", APPS[d % APPS.len()])
}

fn replicaset_name(d: usize) -> String {
    format!("{}-{}", deployment_name(d), k8s_suffix(d as u64 + 1, 10))
}

/// Objects above pods, counted while pods are placed.
struct Workloads {
    deployments: usize,
    /// (pods, running pods) per deployment.
    deployment_pods: Vec<(u32, u32)>,
    statefulset_pods: BTreeMap<usize, u32>,
    namespaces: BTreeSet<String>,
}

fn make_pod(node: usize, slot: usize, pods: usize, w: &mut Workloads) -> Pod {
    let g = node * pods + slot;
    let suffix = k8s_suffix(g as u64, 5);
    let r = mix(g as u64 ^ 0x90d);
    let mut pod = Pod {
        namespace: String::new(),
        name: String::new(),
        uid: uuid(g as u64),
        owner_kind: "",
        owner_name: String::new(),
        containers: Vec::new(),
        phase: "Running",
        host_network: false,
        priority_class: "",
        cpu_request: 0.05 * (1 + r % 20) as f64,
        memory_request: 64.0 * MIB * (1 + (r >> 8) % 16) as f64,
        limits: !(r >> 16).is_multiple_of(4),
    };
    let nname = node_name(node);
    match slot {
        0 => {
            pod.namespace = "monitoring".into();
            pod.name = format!("node-exporter-{suffix}");
            pod.owner_kind = "DaemonSet";
            pod.owner_name = "node-exporter".into();
            pod.containers = vec![
                (
                    "node-exporter".into(),
                    "quay.io/prometheus/node-exporter:v1.8.2".into(),
                ),
                (
                    "kube-rbac-proxy".into(),
                    "quay.io/brancz/kube-rbac-proxy:v0.18.1".into(),
                ),
            ];
            pod.host_network = true;
            pod.priority_class = "system-cluster-critical";
        }
        1 => {
            pod.namespace = "kube-system".into();
            pod.name = format!("kube-proxy-{suffix}");
            pod.owner_kind = "DaemonSet";
            pod.owner_name = "kube-proxy".into();
            pod.containers = vec![(
                "kube-proxy".into(),
                "registry.k8s.io/kube-proxy:v1.31.2".into(),
            )];
            pod.host_network = true;
            pod.priority_class = "system-node-critical";
        }
        2 => {
            pod.namespace = "kube-system".into();
            pod.name = format!("nginx-proxy-{nname}");
            pod.owner_kind = "Node";
            pod.owner_name = nname.clone();
            pod.containers = vec![(
                "nginx-proxy".into(),
                "docker.io/library/nginx:1.25.4-alpine".into(),
            )];
            pod.host_network = true;
            pod.priority_class = "system-node-critical";
        }
        3 => {
            let s = node / 3;
            let sts = format!("{}-{s}", DATABASES[s % DATABASES.len()]);
            pod.namespace = team_ns(s);
            pod.name = format!("{sts}-{}", node % 3);
            pod.owner_kind = "StatefulSet";
            pod.containers = vec![(
                DATABASES[s % DATABASES.len()].into(),
                format!(
                    "docker.io/library/{}:16.{}",
                    DATABASES[s % DATABASES.len()],
                    s % 4
                ),
            )];
            pod.owner_name = sts;
            *w.statefulset_pods.entry(s).or_default() += 1;
        }
        4 => {
            // A finished Job's pod: most Jobs belong to a CronJob, some to
            // nothing (`kube_job_owner{owner_kind=""}`).
            let job = if node % 10 == 5 {
                pod.namespace = team_ns(node);
                format!("migrate-{node}")
            } else {
                let c = node % (w.deployments / 20).max(1);
                pod.namespace = team_ns(c);
                format!("{}-{c}-{}", CRONJOBS[c % CRONJOBS.len()], 29_000_000 + node)
            };
            pod.name = format!("{job}-{suffix}");
            pod.owner_kind = "Job";
            pod.owner_name = job;
            pod.containers = vec![(
                "job".into(),
                "registry.example.com/tools/batch:2.1.0".into(),
            )];
            pod.phase = "Succeeded";
        }
        5 if node % 10 == 3 => {
            pod.namespace = "default".into();
            pod.name = format!("debug-{nname}");
            pod.containers = vec![("debug".into(), "docker.io/library/busybox:1.36".into())];
        }
        5 if node % 20 == 9 => {
            let rc = format!("legacy-rc-{}", node / 20);
            pod.namespace = "default".into();
            pod.name = format!("{rc}-{suffix}");
            pod.owner_kind = "ReplicationController";
            pod.owner_name = rc;
            pod.containers = vec![(
                "legacy".into(),
                "registry.example.com/old/legacy:0.9".into(),
            )];
        }
        _ => {
            let d = g % w.deployments;
            let app = APPS[d % APPS.len()];
            pod.namespace = team_ns(d);
            let rs = replicaset_name(d);
            pod.name = format!("{rs}-{suffix}");
            pod.owner_kind = "ReplicaSet";
            pod.owner_name = rs;
            pod.containers = vec![(
                app.into(),
                format!(
                    "registry.example.com/{}/{app}:1.{}.{}",
                    pod.namespace,
                    d % 9,
                    d % 5
                ),
            )];
            if d.is_multiple_of(3) {
                pod.containers.push((
                    "istio-proxy".into(),
                    "docker.io/istio/proxyv2:1.23.2".into(),
                ));
            }
            if g % 97 == 13 {
                pod.phase = "Pending";
            }
            let e = &mut w.deployment_pods[d];
            e.0 += 1;
            e.1 += (pod.phase == "Running") as u32;
        }
    }
    w.namespaces.insert(pod.namespace.clone());
    pod
}

fn simulate(nodes: usize, pods: usize, steps: u32) -> Cluster {
    let mut b = Builder {
        cluster: Cluster {
            labels: Vec::new(),
            ends: Vec::new(),
            gens: Vec::new(),
        },
        steps,
        next_seed: 0,
    };
    let deployments = (nodes * 2).max(3);
    let mut w = Workloads {
        deployments,
        deployment_pods: vec![(0, 0); deployments],
        statefulset_pods: BTreeMap::new(),
        namespaces: ["default", "kube-system", "monitoring"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    };
    let ksm = target(&[
        ("job", "kube-state-metrics"),
        ("instance", "10.96.0.20:8443"),
        ("container", "kube-rbac-proxy-main"),
    ]);
    b.up(&ksm, 1.0);
    for i in 0..nodes.min(CONTROL_PLANE_NODES) {
        control_plane(&mut b, i);
    }
    for i in 0..nodes {
        let placed: Vec<Pod> = (0..pods).map(|j| make_pod(i, j, pods, &mut w)).collect();
        node(&mut b, &ksm, i, pods, &placed);
    }
    workload_objects(&mut b, &ksm, nodes, &w);
    grafana(&mut b);
    b.cluster
}

fn control_plane(b: &mut Builder, i: usize) {
    let ip = node_ip(i);
    let api = target(&[
        ("job", "apiserver"),
        ("instance", &format!("{ip}:6443")),
        ("endpoint", "https"),
        ("namespace", "default"),
        ("service", "kubernetes"),
    ]);
    b.up(&api, 1.0);
    let resources: &[(&str, &str)] = &[
        ("pods", ""),
        ("nodes", ""),
        ("configmaps", ""),
        ("secrets", ""),
        ("events", ""),
        ("deployments", "apps"),
        ("leases", "coordination.k8s.io"),
    ];
    // (verb, scope, codes with their share of requests)
    type Codes = &'static [(&'static str, f64)];
    let verbs: &[(&str, &str, Codes)] = &[
        ("GET", "resource", &[("200", 1.0), ("404", 0.02)]),
        ("LIST", "namespace", &[("200", 1.0)]),
        ("LIST", "cluster", &[("200", 1.0), ("500", 0.002)]),
        ("WATCH", "namespace", &[("200", 1.0)]),
        (
            "POST",
            "resource",
            &[("201", 1.0), ("409", 0.01), ("500", 0.001)],
        ),
        ("PUT", "resource", &[("200", 1.0), ("409", 0.05)]),
        ("PATCH", "resource", &[("200", 1.0)]),
        ("DELETE", "resource", &[("200", 1.0), ("404", 0.01)]),
    ];
    let les = [
        0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0,
        20.0, 30.0, 45.0, 60.0,
    ];
    for (r, (resource, group)) in resources.iter().enumerate() {
        for (verb, scope, codes) in verbs {
            let rate = 20.0 * (1 + (r * 7 + verb.len()) % 9) as f64;
            let labels = [
                ("verb", *verb),
                ("resource", *resource),
                ("group", *group),
                ("version", "v1"),
                ("scope", *scope),
                ("component", "apiserver"),
            ];
            for &(code, share) in *codes {
                let mut l = labels.to_vec();
                l.push(("code", code));
                b.add(
                    &api,
                    "apiserver_request_total",
                    &l,
                    Gen::counter(rate * 1e4, rate * share, 1.0),
                );
            }
            // The apiserver leaves long-running requests out of its SLI.
            if *verb != "WATCH" {
                let mean = if *scope == "cluster" { 0.8 } else { 0.12 };
                b.histogram(
                    &api,
                    "apiserver_request_sli_duration_seconds",
                    &labels,
                    &les,
                    rate,
                    mean,
                );
            }
        }
    }
    let scheduler = target(&[
        ("job", "kube-scheduler"),
        ("instance", &format!("{ip}:10259")),
        ("endpoint", "https"),
        ("namespace", "kube-system"),
        ("service", "kube-scheduler"),
    ]);
    b.up(&scheduler, 1.0);
    let les: Vec<f64> = (0..15).map(|k| 0.001 * (1u32 << k) as f64).collect();
    for (result, rate) in [("scheduled", 3.0), ("unschedulable", 0.2)] {
        b.histogram(
            &scheduler,
            "scheduler_scheduling_attempt_duration_seconds",
            &[("profile", "default-scheduler"), ("result", result)],
            &les,
            rate,
            0.01,
        );
    }
    b.histogram(
        &scheduler,
        "scheduler_scheduling_algorithm_duration_seconds",
        &[],
        &les,
        3.0,
        0.004,
    );
    b.histogram(
        &scheduler,
        "scheduler_pod_scheduling_sli_duration_seconds",
        &[("attempts", "1")],
        &les,
        3.0,
        0.02,
    );
}

fn grafana(b: &mut Builder) {
    let t = target(&[
        ("job", "grafana"),
        ("instance", "10.96.0.30:3000"),
        ("namespace", "monitoring"),
        ("pod", "grafana-7c9f6d8b4-x2k9p"),
        ("container", "grafana"),
        ("service", "grafana"),
        ("endpoint", "http"),
    ]);
    b.up(&t, 1.0);
    for (handler, rate) in [
        ("/api/dashboards/uid/:uid", 2.0),
        ("/api/ds/query", 40.0),
        ("/api/search", 1.0),
        ("/api/health", 2.0),
    ] {
        for (code, share) in [("200", 1.0), ("500", 0.01)] {
            b.add(
                &t,
                "grafana_http_request_duration_seconds_count",
                &[
                    ("handler", handler),
                    ("method", "GET"),
                    ("status_code", code),
                ],
                Gen::counter(1e4 * rate, rate * share, 1.0),
            );
        }
    }
}

/// Everything one node runs and reports: node_exporter, the kubelet (its
/// own metrics and cAdvisor's), and kube-state-metrics' view of the node and
/// its pods.
fn node(b: &mut Builder, ksm: &Target, i: usize, pods: usize, placed: &[Pod]) {
    let name = node_name(i);
    let ip = node_ip(i);
    // node_exporter is scraped through its pod (slot 0), as kube-prometheus
    // does, so its series carry that pod's namespace and name.
    node_exporter(b, i, &name, &ip, &placed[0].name);
    let cadvisor = kubelet(b, i, &name, &ip, pods);
    ksm_node(b, ksm, i, &name, &ip);
    for (j, pod) in placed.iter().enumerate() {
        let g = i * pods + j;
        let scheduled = pod.phase != "Pending";
        ksm_pod(
            b,
            ksm,
            pod,
            g,
            scheduled.then_some((name.as_str(), ip.as_str())),
        );
        if pod.phase == "Running" {
            cadvisor_pod(b, &cadvisor, pod, g);
        }
    }
}

fn node_memory(i: usize) -> f64 {
    GIB * [16.0, 32.0, 64.0][i % 3]
}

fn node_exporter(b: &mut Builder, i: usize, name: &str, ip: &str, pod: &str) {
    let seed = mix(i as u64 ^ 0x00de);
    let memory = node_memory(i);
    let ne = target(&[
        ("job", "node-exporter"),
        ("instance", &format!("{ip}:9100")),
        ("namespace", "monitoring"),
        ("pod", pod),
        ("container", "node-exporter"),
        ("endpoint", "https"),
        ("service", "node-exporter"),
    ]);
    b.up(&ne, 1.0);
    let uptime = 1e5 + pick(seed, 2_000_000) as f64;
    for cpu in ["0", "1", "2", "3"] {
        for (mode, share) in [
            ("idle", 0.7),
            ("user", 0.18),
            ("system", 0.06),
            ("iowait", 0.02),
            ("irq", 0.003),
            ("softirq", 0.01),
            ("nice", 0.002),
            ("steal", 0.005),
        ] {
            let shape = Gen::counter(uptime * share, 30.0 * share, 0.01);
            b.add(
                &ne,
                "node_cpu_seconds_total",
                &[("cpu", cpu), ("mode", mode)],
                shape,
            );
        }
    }
    let page = 4096.0;
    b.add_all(
        &ne,
        &[],
        &[
            ("node_memory_MemTotal_bytes", Gen::constant(memory)),
            (
                "node_memory_MemAvailable_bytes",
                Gen::gauge(memory * 0.45, memory * 0.1, page),
            ),
            (
                "node_memory_MemFree_bytes",
                Gen::gauge(memory * 0.15, memory * 0.05, page),
            ),
            (
                "node_memory_Buffers_bytes",
                Gen::gauge(memory * 0.02, memory * 0.005, page),
            ),
            (
                "node_memory_Cached_bytes",
                Gen::gauge(memory * 0.25, memory * 0.05, page),
            ),
            (
                "node_memory_Slab_bytes",
                Gen::gauge(memory * 0.03, memory * 0.005, page),
            ),
            ("node_load1", Gen::gauge(0.8, 1.5, 0.01)),
            ("node_load5", Gen::gauge(0.9, 1.5, 0.01)),
            ("node_load15", Gen::gauge(1.0, 1.5, 0.01)),
            (
                "node_vmstat_pgmajfault",
                Gen::counter(uptime * 0.1, 3.0, 1.0),
            ),
            ("node_boot_time_seconds", Gen::constant(1.7e9 - uptime)),
        ],
    );
    for (mountpoint, device, fstype, size) in [
        ("/", "/dev/sda1", "ext4", 100.0 * GIB),
        ("/var/lib/kubelet", "/dev/nvme0n1p1", "xfs", 500.0 * GIB),
    ] {
        let used = 0.2 + 0.7 * unit(seed, mountpoint.len() as u32);
        b.add_all(
            &ne,
            &[
                ("device", device),
                ("fstype", fstype),
                ("mountpoint", mountpoint),
            ],
            &[
                ("node_filesystem_size_bytes", Gen::constant(size)),
                (
                    "node_filesystem_avail_bytes",
                    Gen::gauge(size * (0.95 - used), GIB, page),
                ),
                (
                    "node_filesystem_free_bytes",
                    Gen::gauge(size * (1.0 - used), GIB, page),
                ),
                ("node_filesystem_files", Gen::constant(size / 16384.0)),
                (
                    "node_filesystem_files_free",
                    Gen::gauge(size / 20000.0, 1000.0, 1.0),
                ),
                ("node_filesystem_readonly", Gen::constant(0.0)),
            ],
        );
    }
    for (device, bytes) in [("eth0", 3e6), ("lo", 2e5)] {
        b.add_all(
            &ne,
            &[("device", device)],
            &[
                (
                    "node_network_receive_bytes_total",
                    Gen::counter(bytes * 1e4, bytes, 1.0),
                ),
                (
                    "node_network_transmit_bytes_total",
                    Gen::counter(bytes * 1e4, bytes, 1.0),
                ),
                (
                    "node_network_receive_packets_total",
                    Gen::counter(bytes, bytes / 800.0, 1.0),
                ),
                (
                    "node_network_transmit_packets_total",
                    Gen::counter(bytes, bytes / 800.0, 1.0),
                ),
                (
                    "node_network_receive_drop_total",
                    Gen::counter(50.0, 0.3, 1.0),
                ),
                (
                    "node_network_transmit_drop_total",
                    Gen::counter(50.0, 0.3, 1.0),
                ),
                (
                    "node_network_receive_errs_total",
                    Gen::counter(3.0, 0.02, 1.0),
                ),
                (
                    "node_network_transmit_errs_total",
                    Gen::counter(3.0, 0.02, 1.0),
                ),
            ],
        );
    }
    for device in ["sda", "nvme0n1"] {
        b.add_all(
            &ne,
            &[("device", device)],
            &[
                (
                    "node_disk_io_time_seconds_total",
                    Gen::counter(uptime * 0.05, 1.5, 0.001),
                ),
                (
                    "node_disk_io_time_weighted_seconds_total",
                    Gen::counter(uptime * 0.1, 3.0, 0.001),
                ),
                (
                    "node_disk_read_bytes_total",
                    Gen::counter(uptime * 2e4, 6e5, 512.0),
                ),
                (
                    "node_disk_written_bytes_total",
                    Gen::counter(uptime * 5e4, 1.5e6, 512.0),
                ),
            ],
        );
    }
    let uname = [
        ("nodename", name),
        ("sysname", "Linux"),
        ("release", "6.1.0-28-amd64"),
        ("machine", "x86_64"),
    ];
    b.add(&ne, "node_uname_info", &uname, Gen::constant(1.0));
}

/// The kubelet's own metrics and its probe endpoint; returns the cAdvisor
/// target, whose series the node's pods add.
fn kubelet(b: &mut Builder, i: usize, name: &str, ip: &str, pods: usize) -> Target {
    let instance = format!("{ip}:10250");
    let with_path = |path: &str| {
        target(&[
            ("job", "kubelet"),
            ("metrics_path", path),
            ("instance", &instance),
            ("node", name),
            ("endpoint", "https-metrics"),
            ("service", "kubelet"),
        ])
    };
    let kubelet = with_path("/metrics");
    b.up(&kubelet, 1.0);
    b.add(
        &kubelet,
        "kubelet_node_name",
        &[("node", name)],
        Gen::constant(1.0),
    );
    b.add(
        &kubelet,
        "kubelet_running_pods",
        &[],
        Gen::constant(pods as f64),
    );
    let les = [
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
    b.histogram(
        &kubelet,
        "kubelet_pleg_relist_duration_seconds",
        &[],
        &les,
        30.0,
        0.02,
    );
    // A probes endpoint down on some nodes gives `count:up0` something.
    b.up(
        &with_path("/metrics/probes"),
        if i % 50 == 7 { 0.0 } else { 1.0 },
    );
    let cadvisor = with_path("/metrics/cadvisor");
    b.up(&cadvisor, 1.0);
    cadvisor
}

/// kube-state-metrics about the node itself.
fn ksm_node(b: &mut Builder, ksm: &Target, i: usize, name: &str, ip: &str) {
    let memory = node_memory(i);
    let provider_id = format!("aws:///eu-west-1a/i-{:017x}", mix(i as u64) >> 4);
    let info = [
        ("node", name),
        ("internal_ip", ip),
        ("kernel_version", "6.1.0-28-amd64"),
        ("os_image", "Debian GNU/Linux 12 (bookworm)"),
        ("container_runtime_version", "containerd://1.7.22"),
        ("kubelet_version", "v1.31.2"),
        ("provider_id", &provider_id),
    ];
    b.add(ksm, "kube_node_info", &info, Gen::constant(1.0));
    for condition in [
        "Ready",
        "MemoryPressure",
        "DiskPressure",
        "PIDPressure",
        "NetworkUnavailable",
    ] {
        for status in ["true", "false", "unknown"] {
            let on = (condition == "Ready") == (status == "true") && status != "unknown";
            let l = [("node", name), ("condition", condition), ("status", status)];
            b.add(
                ksm,
                "kube_node_status_condition",
                &l,
                Gen::constant(on as u8 as f64),
            );
        }
    }
    for (metric, cpu, mem) in [
        ("kube_node_status_capacity", 4.0, memory),
        ("kube_node_status_allocatable", 3.92, memory - GIB),
    ] {
        for (resource, unit_name, v) in [
            ("cpu", "core", cpu),
            ("memory", "byte", mem),
            ("pods", "integer", 110.0),
            ("ephemeral_storage", "byte", 100.0 * GIB),
        ] {
            let l = [("node", name), ("resource", resource), ("unit", unit_name)];
            b.add(ksm, metric, &l, Gen::constant(v));
        }
    }
    b.add(
        ksm,
        "kube_node_spec_unschedulable",
        &[("node", name)],
        Gen::constant(0.0),
    );
    if i < CONTROL_PLANE_NODES {
        let l = [("node", name), ("role", "control-plane")];
        b.add(ksm, "kube_node_role", &l, Gen::constant(1.0));
    }
}

fn ksm_pod(b: &mut Builder, ksm: &Target, pod: &Pod, g: usize, node: Option<(&str, &str)>) {
    let (node, host_ip) = node.unwrap_or(("", ""));
    let ip = if pod.host_network {
        host_ip.to_string()
    } else {
        pod_ip(g)
    };
    let id = [
        ("namespace", pod.namespace.as_str()),
        ("pod", pod.name.as_str()),
        ("uid", pod.uid.as_str()),
    ];
    b.add(
        ksm,
        "kube_pod_info",
        &with_labels(
            &id,
            &[
                ("node", node),
                ("host_ip", host_ip),
                ("pod_ip", if node.is_empty() { "" } else { &ip }),
                ("created_by_kind", pod.owner_kind),
                ("created_by_name", &pod.owner_name),
                ("priority_class", pod.priority_class),
                (
                    "host_network",
                    if pod.host_network { "true" } else { "false" },
                ),
            ],
        ),
        Gen::constant(1.0),
    );
    b.add(
        ksm,
        "kube_pod_owner",
        &with_labels(
            &id,
            &[
                ("owner_kind", pod.owner_kind),
                ("owner_name", &pod.owner_name),
                (
                    "owner_is_controller",
                    if pod.owner_kind.is_empty() {
                        ""
                    } else {
                        "true"
                    },
                ),
            ],
        ),
        Gen::constant(1.0),
    );
    for &phase in PHASES {
        b.add(
            ksm,
            "kube_pod_status_phase",
            &with_labels(&id, &[("phase", phase)]),
            Gen::constant((pod.phase == phase) as u8 as f64),
        );
    }
    for condition in ["true", "false", "unknown"] {
        let ready = pod.phase == "Running";
        let v = match condition {
            "true" => ready,
            "false" => !ready,
            _ => false,
        };
        b.add(
            ksm,
            "kube_pod_status_ready",
            &with_labels(&id, &[("condition", condition)]),
            Gen::constant(v as u8 as f64),
        );
    }
    for (c, (container, image)) in pod.containers.iter().enumerate() {
        let share = if c == 0 { 1.0 } else { 0.2 };
        let cid = if pod.phase == "Pending" {
            String::new()
        } else {
            format!("containerd://{}", hex64(g as u64 * 8 + c as u64))
        };
        let cl = with_labels(&id, &[("container", container)]);
        b.add(
            ksm,
            "kube_pod_container_info",
            &with_labels(
                &id,
                &[
                    ("container", container),
                    ("image", image),
                    ("image_spec", image),
                    ("container_id", &cid),
                ],
            ),
            Gen::constant(1.0),
        );
        b.add(
            ksm,
            "kube_pod_container_status_restarts_total",
            &cl,
            Gen::counter(0.0, 0.002, 1.0),
        );
        let mut metrics = vec![("kube_pod_container_resource_requests", 1.0)];
        if pod.limits {
            metrics.push(("kube_pod_container_resource_limits", 2.0));
        }
        for (metric, factor) in metrics {
            for (resource, unit_name, v) in [
                ("cpu", "core", pod.cpu_request * share * factor),
                (
                    "memory",
                    "byte",
                    (pod.memory_request * share * factor / MIB).round() * MIB,
                ),
            ] {
                b.add(
                    ksm,
                    metric,
                    &with_labels(
                        &id,
                        &[
                            ("container", container),
                            ("node", node),
                            ("resource", resource),
                            ("unit", unit_name),
                        ],
                    ),
                    Gen::constant(v),
                );
            }
        }
    }
    if pod.owner_kind == "Job" {
        let no_owner = pod.owner_name.starts_with("migrate-");
        let cron = pod
            .owner_name
            .rsplit_once('-')
            .map(|(c, _)| c)
            .unwrap_or_default();
        let j = [
            ("namespace", pod.namespace.as_str()),
            ("job_name", pod.owner_name.as_str()),
        ];
        let mut owner = j.to_vec();
        if !no_owner {
            owner.extend([
                ("owner_kind", "CronJob"),
                ("owner_name", cron),
                ("owner_is_controller", "true"),
            ]);
        }
        b.add(ksm, "kube_job_owner", &owner, Gen::constant(1.0));
        b.add(ksm, "kube_job_status_succeeded", &j, Gen::constant(1.0));
        b.add(ksm, "kube_job_status_active", &j, Gen::constant(0.0));
        b.add(ksm, "kube_job_status_failed", &j, Gen::constant(0.0));
        b.add(
            ksm,
            "kube_job_status_start_time",
            &j,
            Gen::constant(1.7e9 + g as f64),
        );
    }
}

fn with_labels<'a>(a: &[(&'a str, &'a str)], b: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut l = a.to_vec();
    l.extend_from_slice(b);
    l
}

fn cadvisor_pod(b: &mut Builder, cadvisor: &Target, pod: &Pod, g: usize) {
    let cgroup = format!(
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice",
        pod.uid.replace('-', "_")
    );
    let size = 1.0 + pick(g as u64 ^ 0xc0, 8) as f64;
    let cpu = 0.4 * size * pod.cpu_request;
    let memory = pod.memory_request * (0.5 + 0.1 * size);
    // The pod's cgroup (no container, image or name label): totals and the
    // pod's network.
    let base = [
        ("namespace", pod.namespace.as_str()),
        ("pod", pod.name.as_str()),
        ("id", cgroup.as_str()),
    ];
    let cpu_total = Gen::counter(cpu * 3e4, cpu * 30.0, 0.0);
    b.add(
        cadvisor,
        "container_cpu_usage_seconds_total",
        &base,
        cpu_total,
    );
    memory_series(b, cadvisor, &base, memory * 1.2);
    if !pod.host_network {
        let bytes = 2e4 * size * size;
        let (traffic, packets) = (
            Gen::counter(bytes * 1e4, bytes, 1.0),
            Gen::counter(bytes * 10.0, bytes / 700.0, 1.0),
        );
        let dropped = Gen::counter(0.0, 0.05, 1.0);
        b.add_all(
            cadvisor,
            &with_labels(&base, &[("interface", "eth0")]),
            &[
                ("container_network_receive_bytes_total", traffic),
                ("container_network_transmit_bytes_total", traffic),
                ("container_network_receive_packets_total", packets),
                ("container_network_transmit_packets_total", packets),
                ("container_network_receive_packets_dropped_total", dropped),
                ("container_network_transmit_packets_dropped_total", dropped),
            ],
        );
    }
    for (c, (container, image)) in pod.containers.iter().enumerate() {
        let id = format!(
            "{cgroup}/cri-containerd-{}.scope",
            hex64(g as u64 * 8 + c as u64)
        );
        let l = [
            ("namespace", pod.namespace.as_str()),
            ("pod", pod.name.as_str()),
            ("container", container.as_str()),
            ("image", image.as_str()),
            ("id", id.as_str()),
        ];
        let share = if c == 0 { 0.85 } else { 0.15 };
        let usage = Gen::counter(cpu * share * 3e4, cpu * share * 30.0, 0.0);
        b.add(cadvisor, "container_cpu_usage_seconds_total", &l, usage);
        if pod.limits {
            b.add_all(
                cadvisor,
                &l,
                &[
                    (
                        "container_cpu_cfs_periods_total",
                        Gen::counter(3e5, 300.0, 1.0),
                    ),
                    (
                        "container_cpu_cfs_throttled_periods_total",
                        Gen::counter(1e4, 300.0 * 0.05 * size / 8.0, 1.0),
                    ),
                    (
                        "container_cpu_cfs_throttled_seconds_total",
                        Gen::counter(500.0, 0.3, 0.0),
                    ),
                ],
            );
        }
        memory_series(b, cadvisor, &l, memory * share);
        b.add_all(
            cadvisor,
            &with_labels(&l, &[("device", "/dev/nvme0n1")]),
            &[
                (
                    "container_fs_reads_bytes_total",
                    Gen::counter(1e8, 4096.0 * size, 4096.0),
                ),
                (
                    "container_fs_writes_bytes_total",
                    Gen::counter(2e8, 8192.0 * size, 4096.0),
                ),
            ],
        );
    }
}

fn memory_series(b: &mut Builder, t: &Target, labels: &[(&str, &str)], working_set: f64) {
    let around = |share: f64| Gen::gauge(working_set * share, working_set * 0.05, 4096.0);
    b.add_all(
        t,
        labels,
        &[
            ("container_memory_working_set_bytes", around(1.0)),
            ("container_memory_usage_bytes", around(1.3)),
            ("container_memory_rss", around(0.8)),
            ("container_memory_cache", around(0.4)),
            ("container_memory_swap", Gen::constant(0.0)),
        ],
    );
}

/// kube-state-metrics' series of the objects above pods.
fn workload_objects(b: &mut Builder, ksm: &Target, nodes: usize, w: &Workloads) {
    for (d, &(pods, running)) in w.deployment_pods.iter().enumerate() {
        if pods == 0 {
            continue;
        }
        let ns = team_ns(d);
        let owner = replicaset_owner(d);
        let owner_name = if owner.is_empty() {
            String::new()
        } else {
            deployment_name(d)
        };
        let rs = replicaset_name(d);
        let r = [("namespace", ns.as_str()), ("replicaset", rs.as_str())];
        let mut l = r.to_vec();
        l.extend([
            ("owner_kind", owner),
            ("owner_name", owner_name.as_str()),
            (
                "owner_is_controller",
                if owner.is_empty() { "" } else { "true" },
            ),
        ]);
        b.add(ksm, "kube_replicaset_owner", &l, Gen::constant(1.0));
        b.add(
            ksm,
            "kube_replicaset_spec_replicas",
            &r,
            Gen::constant(pods as f64),
        );
        b.add(
            ksm,
            "kube_replicaset_status_ready_replicas",
            &r,
            Gen::constant(running as f64),
        );
        if owner == "Deployment" {
            let name = deployment_name(d);
            let l = [("namespace", ns.as_str()), ("deployment", name.as_str())];
            let generation = (1 + d % 5) as f64;
            for (m, v) in [
                ("kube_deployment_spec_replicas", pods),
                ("kube_deployment_status_replicas", pods),
                ("kube_deployment_status_replicas_available", running),
                ("kube_deployment_status_replicas_updated", pods),
            ] {
                b.add(ksm, m, &l, Gen::constant(v as f64));
            }
            b.add(
                ksm,
                "kube_deployment_metadata_generation",
                &l,
                Gen::constant(generation),
            );
            b.add(
                ksm,
                "kube_deployment_status_observed_generation",
                &l,
                Gen::constant(generation),
            );
        }
    }
    for (ns, ds) in [
        ("monitoring", "node-exporter"),
        ("kube-system", "kube-proxy"),
    ] {
        let l = [("namespace", ns), ("daemonset", ds)];
        for m in [
            "kube_daemonset_status_desired_number_scheduled",
            "kube_daemonset_status_current_number_scheduled",
            "kube_daemonset_status_number_available",
            "kube_daemonset_status_updated_number_scheduled",
        ] {
            b.add(ksm, m, &l, Gen::constant(nodes as f64));
        }
        b.add(
            ksm,
            "kube_daemonset_status_number_misscheduled",
            &l,
            Gen::constant(0.0),
        );
    }
    for (&s, &pods) in &w.statefulset_pods {
        let ns = team_ns(s);
        let name = format!("{}-{s}", DATABASES[s % DATABASES.len()]);
        let l = [("namespace", ns.as_str()), ("statefulset", name.as_str())];
        for m in [
            "kube_statefulset_replicas",
            "kube_statefulset_status_replicas_ready",
            "kube_statefulset_status_replicas_current",
            "kube_statefulset_status_replicas_updated",
        ] {
            b.add(ksm, m, &l, Gen::constant(pods as f64));
        }
    }
    for ns in &w.namespaces {
        for (phase, v) in [("Active", 1.0), ("Terminating", 0.0)] {
            b.add(
                ksm,
                "kube_namespace_status_phase",
                &[("namespace", ns.as_str()), ("phase", phase)],
                Gen::constant(v),
            );
        }
    }
}

// ---------------------------------------------------------------------------
// HTTP

/// A keep-alive HTTP/1.1 connection for pushes.
struct Conn {
    addr: SocketAddr,
    stream: Option<BufReader<TcpStream>>,
}

impl Conn {
    fn new(addr: SocketAddr) -> Conn {
        Conn { addr, stream: None }
    }

    fn exchange(&mut self, path: &str, body: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
        // Taken out while in use: a failed exchange drops the connection.
        let mut conn = match self.stream.take() {
            Some(c) => c,
            None => {
                let s = TcpStream::connect(self.addr)?;
                s.set_nodelay(true)?;
                s.set_read_timeout(Some(QUERY_TIMEOUT))?;
                BufReader::new(s)
            }
        };
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: {}\r\nContent-Encoding: {}\r\n{}: {}\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            remote_write::CONTENT_TYPE,
            remote_write::CONTENT_ENCODING,
            remote_write::VERSION_HEADER,
            remote_write::VERSION,
            body.len()
        );
        conn.get_mut().write_all(head.as_bytes())?;
        conn.get_mut().write_all(body)?;
        let (status, body, close) = read_response(&mut conn)?;
        if !close {
            self.stream = Some(conn);
        }
        Ok((status, body))
    }

    /// Posts a remote-write body, reconnecting on connection errors; a
    /// refusal (non-2xx) is returned, not retried.
    fn push(&mut self, body: &[u8]) -> Result<(), String> {
        let mut last = String::new();
        for _ in 0..5 {
            match self.exchange("/api/v1/write", body) {
                Ok((s, _)) if (200..300).contains(&s) => return Ok(()),
                Ok((s, text)) => {
                    return Err(format!("HTTP {s}: {}", snippet(&text, 300)));
                }
                Err(e) => {
                    last = e.to_string();
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
        Err(format!("connection failed 5 times: {last}"))
    }
}

/// Reads one response: status, body, and whether the server closes.
fn read_response(conn: &mut BufReader<TcpStream>) -> std::io::Result<(u16, Vec<u8>, bool)> {
    let mut line = String::new();
    conn.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut len = None;
    let mut chunked = false;
    let mut close = line.starts_with("HTTP/1.0");
    loop {
        line.clear();
        conn.read_line(&mut line)?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().ok();
        } else if let Some(v) = lower.strip_prefix("transfer-encoding:") {
            chunked = v.contains("chunked");
        } else if let Some(v) = lower.strip_prefix("connection:") {
            close = v.contains("close");
        }
    }
    let mut body = Vec::new();
    if status == 204 || status == 304 || status < 200 {
        // No body, whatever the headers say.
    } else if chunked {
        loop {
            line.clear();
            conn.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| std::io::Error::other(format!("bad chunk size {line:?}")))?;
            if size == 0 {
                // Trailers end with an empty line.
                loop {
                    line.clear();
                    conn.read_line(&mut line)?;
                    if line == "\r\n" || line.is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            conn.read_exact(&mut body[start..])?;
            line.clear();
            conn.read_line(&mut line)?;
        }
    } else if let Some(n) = len {
        body.resize(n, 0);
        conn.read_exact(&mut body)?;
    } else {
        conn.read_to_end(&mut body)?;
        close = true;
    }
    Ok((status, body, close))
}

/// One GET on a fresh HTTP/1.0 connection (the server answers without
/// chunking and closes), with a long read timeout for slow queries.
fn get(addr: SocketAddr, target: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(QUERY_TIMEOUT))?;
    let mut conn = BufReader::new(s);
    write!(
        conn.get_mut(),
        "GET {target} HTTP/1.0\r\nHost: {addr}\r\n\r\n"
    )?;
    let (status, body, _) = read_response(&mut conn)?;
    Ok((status, body))
}

fn snippet(body: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(empty body)".into();
    }
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_string(),
    }
}

// ---------------------------------------------------------------------------
// Loading

struct Server {
    name: &'static str,
    addr: SocketAddr,
    pid: u32,
}

impl Server {
    fn hwm_mib(&self) -> f64 {
        process_status_kib(self.pid, "VmHWM:") / 1024.0
    }

    fn rss_mib(&self) -> f64 {
        process_status_kib(self.pid, "VmRSS:") / 1024.0
    }

    /// A gauge from the server's own /metrics (`name value` line).
    fn self_metric(&self, name: &str) -> Option<f64> {
        let r = http_get(self.addr, "/metrics", &[]).ok()?;
        r.body.lines().find_map(|l| {
            l.strip_prefix(name)
                .filter(|rest| rest.starts_with(' '))
                .and_then(|rest| rest.trim().parse().ok())
        })
    }
}

#[derive(Default)]
struct LoadErrors {
    count: u64,
    first: Option<String>,
}

/// When scrape `k` of a series happened.
fn sample_time(start_ms: i64, k: u32, shape: &Gen) -> i64 {
    start_ms + k as i64 * SCRAPE_MS + shape.offset_ms as i64
}

/// The remote-write body of series `range` at scrape `k`.
fn encode_batch(
    cluster: &Cluster,
    range: std::ops::Range<usize>,
    start_ms: i64,
    k: u32,
    raw: &mut Vec<u8>,
) -> Vec<u8> {
    raw.clear();
    for i in range {
        let shape = &cluster.gens[i];
        put_series(
            raw,
            cluster.labels_pb(i),
            sample_time(start_ms, k, shape),
            shape.value(k),
        );
    }
    snap::raw::Encoder::new()
        .compress_vec(raw)
        .expect("snappy compresses any buffer below 4 GiB")
}

/// Decodes the first body with the collector's own decoder and compares it
/// with what was meant: the bench encodes remote write by hand for speed,
/// and a slip there would skew everything after.
fn check_encoding(cluster: &Cluster, start_ms: i64) -> anyhow::Result<()> {
    let n = cluster.len().min(3);
    let body = encode_batch(cluster, 0..n, start_ms, 0, &mut Vec::new());
    let req = remote_write::decode(&body, 64 << 20)
        .context("the bench's own remote-write encoding does not decode")?;
    if req.timeseries.len() != n {
        bail!("encoded {n} series, decoded {}", req.timeseries.len());
    }
    for (i, ts) in req.timeseries.iter().enumerate() {
        let mut expected = Vec::new();
        put_labels(
            &mut expected,
            &ts.labels
                .iter()
                .map(|l| (l.name.as_str(), l.value.as_str()))
                .collect::<Vec<_>>(),
        );
        let shape = &cluster.gens[i];
        let sample_ok = ts.samples.len() == 1
            && ts.samples[0].timestamp == sample_time(start_ms, 0, shape)
            && ts.samples[0].value.to_bits() == shape.value(0).to_bits();
        if expected != cluster.labels_pb(i)
            || !sample_ok
            || !ts.labels.iter().any(|l| l.name == "__name__")
        {
            bail!("series {i} does not round-trip through remote_write::decode: {ts:?}");
        }
    }
    Ok(())
}

/// Pushes every scrape of every series, in time order, over `clients`
/// connections; returns wall seconds. All connections finish a scrape
/// before any starts the next, so no series runs far ahead of others.
fn load(
    server: &Server,
    cluster: &Cluster,
    start_ms: i64,
    steps: u32,
    s: &Settings,
) -> (f64, LoadErrors) {
    let errors = Mutex::new(LoadErrors::default());
    let abort = AtomicBool::new(false);
    let barrier = Barrier::new(s.clients);
    let chunks: Vec<std::ops::Range<usize>> = (0..cluster.len())
        .step_by(s.batch)
        .map(|a| a..(a + s.batch).min(cluster.len()))
        .collect();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for c in 0..s.clients {
            let (chunks, errors, abort, barrier) = (&chunks, &errors, &abort, &barrier);
            scope.spawn(move || {
                let mut conn = Conn::new(server.addr);
                let mut raw = Vec::new();
                for k in 0..steps {
                    for range in chunks.iter().skip(c).step_by(s.clients) {
                        if abort.load(Ordering::Relaxed) {
                            break;
                        }
                        let body = encode_batch(cluster, range.clone(), start_ms, k, &mut raw);
                        if let Err(e) = conn.push(&body) {
                            let mut errors = errors.lock().unwrap_or_else(|e| e.into_inner());
                            errors.count += 1;
                            if errors.first.is_none() {
                                errors.first = Some(e.clone());
                            }
                            if e.starts_with("connection failed") {
                                abort.store(true, Ordering::Relaxed);
                            }
                        }
                    }
                    barrier.wait();
                }
            });
        }
    });
    let secs = started.elapsed().as_secs_f64();
    (secs, errors.into_inner().unwrap_or_else(|e| e.into_inner()))
}

// ---------------------------------------------------------------------------
// Rules and queries

struct Rule {
    /// `record{labels}`, numbered when the same record appears again.
    name: String,
    record: String,
    labels: Vec<(String, String)>,
    expr: String,
}

fn yaml_text(v: &serde_yaml_ng::Value) -> Option<String> {
    match v {
        serde_yaml_ng::Value::String(s) => Some(s.clone()),
        serde_yaml_ng::Value::Number(n) => Some(n.to_string()),
        serde_yaml_ng::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The recording rules of every `*.yaml` rule file in `dir` (alerting rules
/// are skipped), in file and group order; also the number of files and of
/// alerting rules.
/// Evaluation interval of both servers in the rule phase.
const RULE_INTERVAL_S: u64 = 20;
/// Evaluation rounds measured (after one round of warm-up).
const RULE_ROUNDS: usize = 3;

/// The whole rule set (every group of every file, alerting rules too) is
/// loaded into both servers by reload; each server's own account of its
/// groups' evaluation time (`/api/v1/rules`, `evaluationTime`) is summed
/// per round, once every group has been evaluated again.
fn rule_evaluation(
    from: &Path,
    into: &Path,
    lookout: &Server,
    prometheus: &Server,
) -> anyhow::Result<String> {
    let mut files = 0;
    for e in std::fs::read_dir(from)?.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            // One interval for every group, so each is evaluated within the
            // measurement window (a 3m group would take minutes per round).
            let text = std::fs::read_to_string(&p)?;
            let same_interval: String = text
                .lines()
                .map(|l| {
                    let body = l.trim_start().trim_start_matches("- ");
                    match body.strip_prefix("interval:") {
                        // Keep the line (it may open a list item) and
                        // replace only the value.
                        Some(_) => {
                            let keep = l.len() - body.len();
                            format!("{}interval: {RULE_INTERVAL_S}s\n", &l[..keep])
                        }
                        None => format!("{l}\n"),
                    }
                })
                .collect();
            std::fs::write(into.join(e.file_name()), same_interval)?;
            files += 1;
        }
    }
    for server in [lookout, prometheus] {
        let (status, body) = Conn::new(server.addr).exchange("/-/reload", b"")?;
        if status != 200 {
            bail!(
                "{} refused the reload: {}",
                server.name,
                snippet(&body, 300)
            );
        }
    }
    // Per group: its last evaluation's time and duration.
    // (group, last evaluation, its duration) for each group, and the rule count.
    type Groups = (Vec<(String, String, f64)>, usize);
    let read = |server: &Server| -> anyhow::Result<Groups> {
        let r = http_get(server.addr, "/api/v1/rules", &[])?;
        let v: serde_json::Value = serde_json::from_str(&r.body)?;
        let groups = v["data"]["groups"].as_array().cloned().unwrap_or_default();
        let mut rules = 0;
        let mut out = Vec::new();
        for g in &groups {
            rules += g["rules"].as_array().map_or(0, |r| r.len());
            out.push((
                format!(
                    "{}/{}",
                    g["file"].as_str().unwrap_or(""),
                    g["name"].as_str().unwrap_or("")
                ),
                g["lastEvaluation"].as_str().unwrap_or("").to_string(),
                g["evaluationTime"].as_f64().unwrap_or(0.0),
            ));
        }
        Ok((out, rules))
    };
    let mut per_server = Vec::new();
    let mut per_group: Vec<BTreeMap<String, f64>> = Vec::new();
    for server in [lookout, prometheus] {
        // Group -> (last evaluation seen, durations after the first).
        let mut seen: BTreeMap<String, (String, Vec<f64>)> = BTreeMap::new();
        let deadline =
            Instant::now() + Duration::from_secs(RULE_INTERVAL_S * (RULE_ROUNDS as u64 + 3));
        let mut rules;
        loop {
            let (groups, n) = read(server)?;
            rules = n;
            for (name, last, took) in groups {
                if last.starts_with("0001") || last.is_empty() {
                    continue;
                }
                let entry = seen
                    .entry(name)
                    .or_insert_with(|| (last.clone(), Vec::new()));
                if entry.0 != last {
                    entry.0 = last;
                    entry.1.push(took);
                }
            }
            let done = !seen.is_empty() && seen.values().all(|(_, d)| d.len() >= RULE_ROUNDS);
            if done || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        let measured: Vec<f64> = seen
            .values()
            .filter(|(_, d)| !d.is_empty())
            .map(|(_, d)| d.iter().sum::<f64>() / d.len() as f64)
            .collect();
        if measured.len() < seen.len() || seen.is_empty() {
            bail!(
                "{}: only {} of {} groups were evaluated twice in time",
                server.name,
                measured.len(),
                seen.len()
            );
        }
        let total: f64 = measured.iter().sum();
        println!(
            "rule evaluation, {}: {} groups, {rules} rules; mean time to evaluate every group once: {total:.3} s",
            server.name,
            seen.len(),
        );
        per_server.push(total);
        // Mean per group, keyed by the group's name (the file path differs
        // between servers only in form).
        per_group.push(
            seen.iter()
                .filter(|(_, (_, d))| !d.is_empty())
                .map(|(k, (_, d))| {
                    let name = k.rsplit('/').next().unwrap_or(k).to_string();
                    (name, d.iter().sum::<f64>() / d.len() as f64)
                })
                .collect::<BTreeMap<String, f64>>(),
        );
    }
    let mut slowest: Vec<(&String, f64)> = per_group[0].iter().map(|(k, v)| (k, *v)).collect();
    slowest.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!("  slowest groups in lookout (lookout s, prometheus s, ratio):");
    for (name, t) in slowest.iter().take(8) {
        let p = per_group[1].get(*name).copied().unwrap_or(f64::NAN);
        println!("    {t:8.3} {p:8.3} {:6.2}x  {name}", t / p.max(1e-9));
    }
    Ok(format!(
        "rule bench: {files} rule files, whole rule set evaluated once: lookout {:.3} s, prometheus {:.3} s; lookout/prometheus {:.2}x",
        per_server[0],
        per_server[1],
        per_server[0] / per_server[1].max(1e-9)
    ))
}

fn load_rules(dir: &Path) -> anyhow::Result<(Vec<Rule>, usize, usize)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| {
            format!(
                "cannot read the rule directory {} (set LOOKOUT_BENCH_RULES)",
                dir.display()
            )
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no rule files (*.yaml) in {}", dir.display());
    }
    let mut rules = Vec::new();
    let mut alerts = 0;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for file in &files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text)
            .with_context(|| format!("{} is not YAML", file.display()))?;
        let groups = doc["groups"]
            .as_sequence()
            .with_context(|| format!("{}: no `groups` list", file.display()))?;
        for (gi, group) in groups.iter().enumerate() {
            let Some(list) = group["rules"].as_sequence() else {
                bail!("{}: groups[{gi}] has no `rules` list", file.display());
            };
            for (ri, rule) in list.iter().enumerate() {
                let Some(record) = rule["record"].as_str() else {
                    alerts += 1;
                    continue;
                };
                let expr = yaml_text(&rule["expr"]).with_context(|| {
                    format!(
                        "{}: groups[{gi}].rules[{ri}] ({record}) has no expr",
                        file.display()
                    )
                })?;
                let mut labels: Vec<(String, String)> = rule["labels"]
                    .as_mapping()
                    .map(|m| {
                        m.iter()
                            .filter_map(|(k, v)| Some((yaml_text(k)?, yaml_text(v)?)))
                            .collect()
                    })
                    .unwrap_or_default();
                labels.sort();
                let mut name = record.to_string();
                if !labels.is_empty() {
                    let l: Vec<String> =
                        labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
                    name.push_str(&format!("{{{}}}", l.join(", ")));
                }
                let n = seen.entry(name.clone()).or_default();
                *n += 1;
                if *n > 1 {
                    name.push_str(&format!(" #{n}"));
                }
                rules.push(Rule {
                    name,
                    record: record.to_string(),
                    labels,
                    expr: expr.trim().to_string(),
                });
            }
        }
    }
    Ok((rules, files.len(), alerts))
}

/// Whether `expr` selects the metric `name` (not merely a longer name
/// containing it).
fn references(expr: &str, name: &str) -> bool {
    let is_name_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    expr.match_indices(name).any(|(i, _)| {
        let before = expr[..i].chars().next_back();
        let after = expr[i + name.len()..].chars().next();
        !before.is_some_and(is_name_char) && !after.is_some_and(is_name_char)
    })
}

/// Typical Grafana panels of the kube-prometheus dashboards, as range
/// queries over the whole history.
const DASHBOARD_QUERIES: &[(&str, &str)] = &[
    (
        "CPU by namespace",
        r#"sum by (namespace) (rate(container_cpu_usage_seconds_total{job="kubelet", metrics_path="/metrics/cadvisor", container!=""}[5m]))"#,
    ),
    (
        "node CPU utilisation",
        r#"1 - avg by (instance) (rate(node_cpu_seconds_total{job="node-exporter", mode="idle"}[5m]))"#,
    ),
    (
        "top 10 pods by memory",
        r#"topk(10, sum by (namespace, pod) (container_memory_working_set_bytes{job="kubelet", metrics_path="/metrics/cadvisor", container!=""}))"#,
    ),
    (
        "memory by namespace",
        r#"sum by (namespace) (container_memory_working_set_bytes{job="kubelet", metrics_path="/metrics/cadvisor", container!="", image!=""})"#,
    ),
    (
        "node memory utilisation",
        r#"1 - node_memory_MemAvailable_bytes{job="node-exporter"} / node_memory_MemTotal_bytes{job="node-exporter"}"#,
    ),
    (
        "network receive by instance",
        r#"sum by (instance) (rate(node_network_receive_bytes_total{job="node-exporter", device!="lo"}[5m]))"#,
    ),
    (
        "filesystem usage",
        r#"max by (instance, mountpoint) (1 - node_filesystem_avail_bytes{job="node-exporter", fstype!=""} / node_filesystem_size_bytes{job="node-exporter", fstype!=""})"#,
    ),
    (
        "pods by phase",
        r#"count by (phase) (kube_pod_status_phase{job="kube-state-metrics"} == 1)"#,
    ),
    (
        "CPU requests commitment",
        r#"sum(kube_pod_container_resource_requests{job="kube-state-metrics", resource="cpu"}) / sum(kube_node_status_allocatable{job="kube-state-metrics", resource="cpu"})"#,
    ),
    (
        "pod network receive by namespace",
        r#"sum by (namespace) (rate(container_network_receive_bytes_total{job="kubelet", metrics_path="/metrics/cadvisor"}[5m]))"#,
    ),
    (
        "CPU throttling by namespace",
        r#"sum by (namespace) (increase(container_cpu_cfs_throttled_periods_total{job="kubelet", container!=""}[5m])) / sum by (namespace) (increase(container_cpu_cfs_periods_total{job="kubelet", container!=""}[5m]))"#,
    ),
    (
        "apiserver p99 latency by verb",
        r#"histogram_quantile(0.99, sum by (le, verb) (rate(apiserver_request_sli_duration_seconds_bucket{job="apiserver", subresource!~"proxy|attach|log|exec|portforward"}[5m])))"#,
    ),
    (
        "node load per CPU",
        r#"node_load1{job="node-exporter"} / on (instance) group_left count by (instance) (node_cpu_seconds_total{job="node-exporter", mode="idle"})"#,
    ),
];

/// Instant or range, with the times of the run.
#[derive(Clone, Copy)]
enum When {
    At(i64),
    Range { start: i64, end: i64, step: i64 },
}

fn secs_param(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

fn query_target(expr: &str, when: When) -> String {
    match when {
        When::At(t) => format!(
            "/api/v1/query?query={}&time={}",
            url_encode(expr),
            secs_param(t)
        ),
        When::Range { start, end, step } => format!(
            "/api/v1/query_range?query={}&start={}&end={}&step={}",
            url_encode(expr),
            secs_param(start),
            secs_param(end),
            secs_param(step)
        ),
    }
}

/// One series of an answer: a vector's element has one point, a matrix's
/// many; a scalar is one series without labels.
struct ResultSeries {
    labels: BTreeMap<String, String>,
    points: Vec<(i64, f64)>,
}

struct Answer {
    result_type: String,
    series: Vec<ResultSeries>,
}

fn parse_value(v: &serde_json::Value) -> Option<f64> {
    match v.as_str()? {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        s => s.parse().ok(),
    }
}

fn parse_point(p: &serde_json::Value) -> Option<(i64, f64)> {
    let t = p.get(0)?.as_f64()?;
    Some(((t * 1000.0).round() as i64, parse_value(p.get(1)?)?))
}

/// Parses a Prometheus API answer (status, then the JSON envelope) into
/// its result, or says what went wrong.
fn parse_answer(status: u16, body: &[u8]) -> Result<Answer, String> {
    let json: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => return Err(format!("HTTP {status}: {}", snippet(body, 200))),
    };
    if status != 200 || json["status"] != "success" {
        return Err(format!(
            "HTTP {status}: {}: {}",
            json["errorType"].as_str().unwrap_or("?"),
            json["error"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| snippet(body, 200))
        ));
    }
    let data = &json["data"];
    let result_type = data["resultType"].as_str().unwrap_or_default().to_string();
    let result = &data["result"];
    let malformed = || format!("malformed {result_type} result: {}", snippet(body, 200));
    let series = match result_type.as_str() {
        "vector" | "matrix" => {
            let list = result.as_array().ok_or_else(malformed)?;
            let mut out = Vec::with_capacity(list.len());
            for s in list {
                let labels = s["metric"]
                    .as_object()
                    .ok_or_else(malformed)?
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect();
                let points = if result_type == "vector" {
                    vec![parse_point(&s["value"]).ok_or_else(malformed)?]
                } else {
                    s["values"]
                        .as_array()
                        .ok_or_else(malformed)?
                        .iter()
                        .map(parse_point)
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(malformed)?
                };
                out.push(ResultSeries { labels, points });
            }
            out
        }
        "scalar" => vec![ResultSeries {
            labels: BTreeMap::new(),
            points: vec![parse_point(result).ok_or_else(malformed)?],
        }],
        _ => return Err(format!("unexpected resultType {result_type:?}")),
    };
    Ok(Answer {
        result_type,
        series,
    })
}

fn labels_text(labels: &BTreeMap<String, String>) -> String {
    let name = labels.get("__name__").map(String::as_str).unwrap_or("");
    let rest: Vec<String> = labels
        .iter()
        .filter(|(k, _)| *k != "__name__")
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    format!("{name}{{{}}}", rest.join(", "))
}

fn close(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan())
        || a == b
        || (a - b).abs() <= (REL_TOLERANCE * a.abs().max(b.abs())).max(ABS_TOLERANCE)
}

/// How two answers differ: differing series out of all series seen, and a
/// few of them described.
struct Diff {
    differing: usize,
    of: usize,
    details: Vec<String>,
}

fn compare(lookout: &Answer, prometheus: &Answer) -> Option<Diff> {
    const DETAILS: usize = 3;
    if lookout.result_type != prometheus.result_type {
        return Some(Diff {
            differing: 1,
            of: 1,
            details: vec![format!(
                "result type: lookout {}, prometheus {}",
                lookout.result_type, prometheus.result_type
            )],
        });
    }
    let index = |a: &'_ Answer| -> (HashMap<String, usize>, usize) {
        let mut m = HashMap::with_capacity(a.series.len());
        let mut dupes = 0;
        for (i, s) in a.series.iter().enumerate() {
            if m.insert(labels_text(&s.labels), i).is_some() {
                dupes += 1;
            }
        }
        (m, dupes)
    };
    let (l_index, l_dupes) = index(lookout);
    let (p_index, p_dupes) = index(prometheus);
    let mut details = Vec::new();
    let mut differing = 0;
    let mut note = |details: &mut Vec<String>, text: String| {
        differing += 1;
        if details.len() < DETAILS {
            details.push(text);
        }
    };
    if l_dupes + p_dupes > 0 {
        note(
            &mut details,
            format!("duplicate label sets: lookout {l_dupes}, prometheus {p_dupes}"),
        );
    }
    let mut keys: Vec<&String> = p_index.keys().chain(l_index.keys()).collect();
    keys.sort();
    keys.dedup();
    let fmt_point = |p: Option<&(i64, f64)>| match p {
        Some((t, v)) => format!("{v} @{}", secs_param(*t)),
        None => "no point".into(),
    };
    for key in &keys {
        match (l_index.get(*key), p_index.get(*key)) {
            (Some(&li), Some(&pi)) => {
                let (lp, pp) = (&lookout.series[li].points, &prometheus.series[pi].points);
                let first = (0..lp.len().max(pp.len())).find(|&i| match (lp.get(i), pp.get(i)) {
                    (Some(a), Some(b)) => a.0 != b.0 || !close(a.1, b.1),
                    _ => true,
                });
                if let Some(i) = first {
                    let count = if lp.len() == pp.len() {
                        String::new()
                    } else {
                        format!(" ({} points vs {})", lp.len(), pp.len())
                    };
                    note(
                        &mut details,
                        format!(
                            "{key}: lookout {}, prometheus {}{count}",
                            fmt_point(lp.get(i)),
                            fmt_point(pp.get(i))
                        ),
                    );
                }
            }
            (Some(&li), None) => note(
                &mut details,
                format!(
                    "{key}: only in lookout ({})",
                    fmt_point(lookout.series[li].points.first())
                ),
            ),
            (None, Some(&pi)) => note(
                &mut details,
                format!(
                    "{key}: only in prometheus ({})",
                    fmt_point(prometheus.series[pi].points.first())
                ),
            ),
            (None, None) => {}
        }
    }
    (differing > 0).then_some(Diff {
        differing,
        of: keys.len(),
        details,
    })
}

// ---------------------------------------------------------------------------
// Recorded series

/// Rules whose record other rules read, in an order that evaluates every
/// rule after the ones it reads.
fn backfill_order(rules: &[Rule]) -> (Vec<&Rule>, Vec<String>) {
    let records: BTreeSet<&str> = rules.iter().map(|r| r.record.as_str()).collect();
    let needed: BTreeSet<&str> = records
        .iter()
        .copied()
        .filter(|rec| {
            rules
                .iter()
                .any(|r| r.record != *rec && references(&r.expr, rec))
        })
        .collect();
    let mut pending: Vec<&Rule> = rules
        .iter()
        .filter(|r| needed.contains(r.record.as_str()))
        .collect();
    let mut order = Vec::new();
    loop {
        let (ready, rest): (Vec<&Rule>, Vec<&Rule>) = pending.iter().copied().partition(|r| {
            needed
                .iter()
                .filter(|dep| **dep != r.record.as_str() && references(&r.expr, dep))
                .all(|dep| !pending.iter().any(|p| p.record == *dep))
        });
        if ready.is_empty() {
            let stuck = rest.iter().map(|r| r.name.clone()).collect();
            return (order, stuck);
        }
        order.extend(ready);
        pending = rest;
        if pending.is_empty() {
            return (order, Vec::new());
        }
    }
}

struct Backfill {
    rules: usize,
    series: usize,
    samples: usize,
    secs: f64,
    problems: Vec<String>,
}

/// Evaluates the rules that other rules read on Prometheus over the whole
/// history (as its rule manager would have, every 30 s) and pushes the
/// results, as the recorded series, to both servers.
fn backfill(
    rules: &[Rule],
    servers: &[&Server],
    prometheus: &Server,
    start_ms: i64,
    end_ms: i64,
) -> Backfill {
    let started = Instant::now();
    let (order, stuck) = backfill_order(rules);
    let mut out = Backfill {
        rules: 0,
        series: 0,
        samples: 0,
        secs: 0.0,
        problems: stuck
            .into_iter()
            .map(|n| format!("{n}: its dependencies form a cycle; not backfilled"))
            .collect(),
    };
    // Half a step off the grid: recorded samples never sit on a query
    // window's edge either.
    let when = When::Range {
        start: start_ms + SCRAPE_MS / 2,
        end: end_ms - SCRAPE_MS / 2,
        step: SCRAPE_MS,
    };
    let mut conns: Vec<Conn> = servers.iter().map(|s| Conn::new(s.addr)).collect();
    for rule in order {
        let answer = get(prometheus.addr, &query_target(&rule.expr, when))
            .map_err(|e| e.to_string())
            .and_then(|(status, body)| parse_answer(status, &body));
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                out.problems.push(format!(
                    "{}: prometheus could not evaluate it: {e}",
                    rule.name
                ));
                continue;
            }
        };
        let series: Vec<TimeSeries> = answer
            .series
            .into_iter()
            .map(|s| {
                let mut labels = s.labels;
                labels.insert("__name__".into(), rule.record.clone());
                for (k, v) in &rule.labels {
                    labels.insert(k.clone(), v.clone());
                }
                TimeSeries {
                    labels: labels
                        .into_iter()
                        .map(|(name, value)| Label { name, value })
                        .collect(),
                    samples: s
                        .points
                        .into_iter()
                        .map(|(timestamp, value)| Sample { value, timestamp })
                        .collect(),
                    ..Default::default()
                }
            })
            .collect();
        out.rules += 1;
        out.series += series.len();
        out.samples += series.iter().map(|s| s.samples.len()).sum::<usize>();
        for batch in series.chunks(1000) {
            let body = remote_write::encode(&WriteRequest {
                timeseries: batch.to_vec(),
                metadata: Vec::new(),
            });
            for (server, conn) in servers.iter().zip(conns.iter_mut()) {
                if let Err(e) = conn.push(&body) {
                    out.problems.push(format!(
                        "{}: {} refused the recorded series: {e}",
                        rule.name, server.name
                    ));
                }
            }
        }
    }
    out.secs = started.elapsed().as_secs_f64();
    out
}

// ---------------------------------------------------------------------------
// Running queries

struct Query {
    group: usize,
    name: String,
    expr: String,
    when: When,
}

const GROUPS: [&str; 2] = ["recording rules (instant)", "dashboard range queries"];

/// What one server did with one query.
enum Run {
    /// Median seconds of the timed runs.
    Timed(f64),
    Failed(String),
}

impl Run {
    fn secs(&self) -> Option<f64> {
        match self {
            Run::Timed(s) => Some(*s),
            Run::Failed(_) => None,
        }
    }

    fn show_ms(&self) -> String {
        match self {
            Run::Timed(s) => format!("{:.1}", s * 1000.0),
            Run::Failed(_) => "error".into(),
        }
    }
}

struct Outcome {
    group: usize,
    name: String,
    expr: String,
    lookout: Run,
    prometheus: Run,
    /// Series in Prometheus's answer.
    series: Option<usize>,
    diff: Option<Diff>,
}

fn lookout_run(o: &Outcome) -> &Run {
    &o.lookout
}

fn prometheus_run(o: &Outcome) -> &Run {
    &o.prometheus
}

fn timed_get(server: &Server, target: &str) -> (f64, Result<(u16, Vec<u8>), String>) {
    let t = Instant::now();
    let r = get(server.addr, target).map_err(|e| format!("{}: {e}", server.name));
    (t.elapsed().as_secs_f64(), r)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Warms both servers up with the query (cross-checking their answers),
/// then times `repeat` runs on each, alternating which goes first so that
/// noise on the machine falls on both alike.
fn run_query(q: &Query, lookout: &Server, prometheus: &Server, repeat: usize) -> Outcome {
    let target = query_target(&q.expr, q.when);
    let servers = [lookout, prometheus];
    let answers: Vec<Result<Answer, String>> = servers
        .iter()
        .map(|s| match timed_get(s, &target).1 {
            Ok((status, body)) => parse_answer(status, &body),
            Err(e) => Err(e),
        })
        .collect();
    let diff = match (&answers[0], &answers[1]) {
        (Ok(l), Ok(p)) => compare(l, p),
        _ => None,
    };
    let series = answers[1].as_ref().ok().map(|a| a.series.len());
    // Answers are checked: drop them before timing, so that a large one
    // does not sit in this process's memory meanwhile.
    let mut failed: [Option<String>; 2] = [None, None];
    for (i, a) in answers.into_iter().enumerate() {
        if let Err(e) = a {
            failed[i] = Some(e);
        }
    }
    let mut times: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for r in 0..repeat {
        for i in [r % 2, 1 - r % 2] {
            if failed[i].is_some() {
                continue;
            }
            let (secs, result) = timed_get(servers[i], &target);
            match result {
                Ok((200, _)) => times[i].push(secs),
                Ok((status, body)) => {
                    failed[i] = Some(format!(
                        "HTTP {status} on a repeat: {}",
                        snippet(&body, 200)
                    ))
                }
                Err(e) => failed[i] = Some(e),
            }
        }
    }
    let [l_times, p_times] = times;
    let [l_failed, p_failed] = failed;
    let run = |failed: Option<String>, times: Vec<f64>| match failed {
        Some(e) => Run::Failed(e),
        None => Run::Timed(median(times)),
    };
    Outcome {
        group: q.group,
        name: q.name.clone(),
        expr: q.expr.clone(),
        series,
        lookout: run(l_failed, l_times),
        prometheus: run(p_failed, p_times),
        diff,
    }
}

// ---------------------------------------------------------------------------
// Report

fn group_report(group: usize, outcomes: &[&Outcome], repeat: usize) -> (f64, f64) {
    let n = outcomes.len();
    let both: Vec<&&Outcome> = outcomes
        .iter()
        .filter(|o| o.lookout.secs().is_some() && o.prometheus.secs().is_some())
        .collect();
    let l_total: f64 = both.iter().filter_map(|o| o.lookout.secs()).sum();
    let p_total: f64 = both.iter().filter_map(|o| o.prometheus.secs()).sum();
    let answered =
        |f: fn(&Outcome) -> &Run| outcomes.iter().filter(|o| f(o).secs().is_some()).count();
    let non_empty = outcomes
        .iter()
        .filter(|o| o.series.is_some_and(|n| n > 0))
        .count();
    let mismatches = outcomes.iter().filter(|o| o.diff.is_some()).count();
    println!(
        "\n{} : {n} queries, median of {repeat} after a warm-up",
        GROUPS[group]
    );
    println!(
        "  answered: lookout {}, prometheus {} ({non_empty} non-empty); cross-checked {}, mismatching {mismatches}",
        answered(lookout_run),
        answered(prometheus_run),
        both.len()
    );
    let p_all: f64 = outcomes.iter().filter_map(|o| o.prometheus.secs()).sum();
    if both.is_empty() {
        println!(
            "  total median time: lookout n/a (answered none that prometheus answered); prometheus {:.1} ms over its {} answers",
            p_all * 1000.0,
            answered(prometheus_run)
        );
    } else {
        println!(
            "  total median time over the {} queries both answered: lookout {:.1} ms, prometheus {:.1} ms, lookout/prometheus {:.2}x",
            both.len(),
            l_total * 1000.0,
            p_total * 1000.0,
            l_total / p_total.max(1e-12)
        );
    }
    let empty: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.series == Some(0))
        .map(|o| o.name.as_str())
        .collect();
    if !empty.is_empty() {
        println!("  empty in prometheus: {}", empty.join(", "));
    }
    let mut slow: Vec<&&Outcome> = outcomes.iter().collect();
    let key = |o: &Outcome| {
        o.lookout
            .secs()
            .unwrap_or(0.0)
            .max(o.prometheus.secs().unwrap_or(0.0))
    };
    slow.sort_by(|a, b| key(b).total_cmp(&key(a)));
    println!("  slowest {}:", slow.len().min(10));
    println!(
        "    {:>10} {:>13} {:>7} {:>7}  query",
        "lookout ms", "prometheus ms", "ratio", "series"
    );
    for o in slow.iter().take(10) {
        let ratio = match (o.lookout.secs(), o.prometheus.secs()) {
            (Some(l), Some(p)) => format!("{:.2}x", l / p.max(1e-12)),
            _ => "-".into(),
        };
        let series = o
            .series
            .map(|n| n.to_string())
            .unwrap_or_else(|| "-".into());
        println!(
            "    {:>10} {:>13} {ratio:>7} {series:>7}  {}",
            o.lookout.show_ms(),
            o.prometheus.show_ms(),
            o.name
        );
    }
    (l_total, p_total)
}

/// Distinct error messages of one server with their counts, most common
/// first.
/// Distinct error messages of one server, most common first, each with
/// the queries that got it.
fn error_summary(outcomes: &[Outcome], f: fn(&Outcome) -> &Run) -> Vec<(String, Vec<&str>)> {
    let mut by_message: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for o in outcomes {
        if let Run::Failed(e) = f(o) {
            let e = e.chars().take(200).collect::<String>();
            by_message.entry(e).or_default().push(&o.name);
        }
    }
    let mut v: Vec<(String, Vec<&str>)> = by_message.into_iter().collect();
    v.sort_by_key(|(_, queries)| std::cmp::Reverse(queries.len()));
    v
}

// ---------------------------------------------------------------------------

fn main() -> anyhow::Result<()> {
    // `cargo bench -- --list` (and test harnesses) probe for benchmarks.
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let s = Settings::from_env()?;
    let (rules, files, alerts) = load_rules(&s.rules_dir)?;
    if !require(
        "prometheus (Debian package prometheus)",
        have_program("prometheus"),
    ) {
        return Ok(());
    }
    let steps = s.steps();

    let t = Instant::now();
    let cluster = simulate(s.nodes, s.pods, steps);
    println!(
        "query bench: {} nodes x {} pods: {} series ({:.0} MiB of labels, built in {:.1} s); {} recording rules from {files} files in {} ({alerts} alerting rules skipped); {} dashboard range queries",
        s.nodes,
        s.pods,
        cluster.len(),
        cluster.labels.len() as f64 / 1048576.0,
        t.elapsed().as_secs_f64(),
        rules.len(),
        s.rules_dir.display(),
        DASHBOARD_QUERIES.len()
    );

    // Both servers run with their defaults, except limits that would refuse
    // a large cluster's answers or cut its slowest queries short: raised
    // alike in both.
    // Both load their rules from one folder, empty until the rule phase at
    // the end, so rule evaluation does not disturb the query timings.
    let rule_dir = tempfile::tempdir().context("temporary rule folder")?;
    let rule_glob = rule_dir.path().join("*.yaml").display().to_string();
    let mut collector = Collector::start(&format!(
        "api:\n  max_series: 100000000\n  query_timeout: 10m\n  query_max_samples: 1000000000\nrules:\n  files: [\"{rule_glob}\"]\n  evaluation_interval: {RULE_INTERVAL_S}s\n"
    ));
    let prom = Prometheus::start(
        &format!(
            "global: {{scrape_interval: 30s, evaluation_interval: {RULE_INTERVAL_S}s}}\nrule_files: [\"{rule_glob}\"]\n"
        ),
        &[
            "--web.enable-remote-write-receiver",
            "--web.enable-lifecycle",
            "--query.max-samples=1000000000",
            "--query.timeout=10m",
        ],
    );
    let lookout = Server {
        name: "lookout",
        addr: collector.addr,
        pid: collector.child.id(),
    };
    let prometheus = Server {
        name: "prometheus",
        addr: prom.addr,
        pid: prom.pid(),
    };

    // The history ends at the last 30 s boundary before now; each target
    // scrapes at its own offset inside every 30 s.
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_millis() as i64;
    let end_ms = now_ms.div_euclid(SCRAPE_MS) * SCRAPE_MS;
    let start_ms = end_ms - steps as i64 * SCRAPE_MS;
    check_encoding(&cluster, start_ms)?;
    let samples = cluster.len() as u64 * steps as u64;
    println!(
        "loading {} scrapes of every series ({} min at 30 s, ending {}): {samples} samples per server, {} connections, {} series a request",
        steps,
        s.history_min,
        secs_param(end_ms),
        s.clients,
        s.batch
    );
    for (server, head_metric) in [
        (&lookout, "lookout_tsdb_head_series"),
        (&prometheus, "prometheus_tsdb_head_series"),
    ] {
        let cpu0 = process_cpu_seconds(server.pid);
        let (secs, errors) = load(server, &cluster, start_ms, steps, &s);
        let cpu = process_cpu_seconds(server.pid) - cpu0;
        let head = server
            .self_metric(head_metric)
            .map(|v| format!("{v:.0}"))
            .unwrap_or_else(|| "?".into());
        println!(
            "  {:10} {secs:7.1} s  {:>9.0} samples/s  server CPU {cpu:.1} s  head series {head}  RSS {:.0} MiB  VmHWM {:.0} MiB",
            server.name,
            samples as f64 / secs,
            server.rss_mib(),
            server.hwm_mib()
        );
        if errors.count > 0 {
            println!(
                "  {}: {} pushes refused or failed; first: {}",
                server.name,
                errors.count,
                errors.first.unwrap_or_default()
            );
        }
    }

    let bf = backfill(
        &rules,
        &[&lookout, &prometheus],
        &prometheus,
        start_ms,
        end_ms,
    );
    println!(
        "recorded series that rules read, evaluated by prometheus and pushed to both: {} rules, {} series, {} samples ({:.1} s)",
        bf.rules, bf.series, bf.samples, bf.secs
    );
    for p in bf.problems.iter().take(10) {
        println!("  {p}");
    }
    if bf.problems.len() > 10 {
        println!("  and {} more problems", bf.problems.len() - 10);
    }
    let loaded_hwm = [lookout.hwm_mib(), prometheus.hwm_mib()];

    let mut queries: Vec<Query> = rules
        .iter()
        .map(|r| Query {
            group: 0,
            name: r.name.clone(),
            expr: r.expr.clone(),
            when: When::At(end_ms),
        })
        .collect();
    queries.extend(DASHBOARD_QUERIES.iter().map(|(name, expr)| Query {
        group: 1,
        name: name.to_string(),
        expr: expr.to_string(),
        when: When::Range {
            start: start_ms,
            end: end_ms,
            step: SCRAPE_MS,
        },
    }));
    let t = Instant::now();
    let mut outcomes = Vec::with_capacity(queries.len());
    // Progress on stderr: a counter that rewrites its line on a terminal, a
    // line a query in a log (a full-size run takes long enough to watch).
    let terminal = std::io::stderr().is_terminal();
    for (i, q) in queries.iter().enumerate() {
        if terminal {
            eprint!("\r  query {}/{} ", i + 1, queries.len());
            let _ = std::io::stderr().flush();
        }
        let started = Instant::now();
        let o = run_query(q, &lookout, &prometheus, s.repeat);
        if !terminal {
            eprintln!(
                "  query {}/{} ({:.1} s): lookout {} ms, prometheus {} ms: {}",
                i + 1,
                queries.len(),
                started.elapsed().as_secs_f64(),
                o.lookout.show_ms(),
                o.prometheus.show_ms(),
                o.name
            );
        }
        outcomes.push(o);
    }
    if terminal {
        eprintln!();
    }
    println!("queries done in {:.1} s", t.elapsed().as_secs_f64());
    if let Ok(Some(status)) = collector.child.try_wait() {
        let log = collector.log();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        println!(
            "lookout exited during the bench ({status}); its log ends:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }

    let mut l_total = 0.0;
    let mut p_total = 0.0;
    for g in 0..GROUPS.len() {
        let in_group: Vec<&Outcome> = outcomes.iter().filter(|o| o.group == g).collect();
        let (l, p) = group_report(g, &in_group, s.repeat);
        l_total += l;
        p_total += p;
    }

    let mismatching: Vec<&Outcome> = outcomes.iter().filter(|o| o.diff.is_some()).collect();
    println!(
        "\nmismatches: {} queries answer differently",
        mismatching.len()
    );
    for o in mismatching.iter().take(MISMATCHES_SHOWN) {
        if let Some(d) = &o.diff {
            println!(
                "  {} ({} of {} series differ)\n    query: {}",
                o.name,
                d.differing,
                d.of,
                o.expr.replace('\n', " ")
            );
            for line in &d.details {
                println!("    {line}");
            }
        }
    }
    if mismatching.len() > MISMATCHES_SHOWN {
        let rest: Vec<&str> = mismatching[MISMATCHES_SHOWN..]
            .iter()
            .map(|o| o.name.as_str())
            .collect();
        println!("  also: {}", rest.join(", "));
    }
    for (name, f) in [
        ("lookout", lookout_run as fn(&Outcome) -> &Run),
        ("prometheus", prometheus_run),
    ] {
        let errors = error_summary(&outcomes, f);
        let total: usize = errors.iter().map(|e| e.1.len()).sum();
        println!("errors from {name}: {total} queries");
        for (e, queries) in errors.iter().take(5) {
            let more = if queries.len() > 3 { ", ..." } else { "" };
            println!(
                "  {} x {e}\n    in: {}{more}",
                queries.len(),
                queries[..queries.len().min(3)].join(", ")
            );
        }
        if errors.len() > 5 {
            println!("  and {} other messages", errors.len() - 5);
        }
    }

    let rule_phase = rule_evaluation(&s.rules_dir, rule_dir.path(), &lookout, &prometheus);
    match &rule_phase {
        Ok(line) => println!("{line}"),
        Err(e) => println!("rule evaluation phase failed: {e:#}"),
    }

    let final_hwm = [lookout.hwm_mib(), prometheus.hwm_mib()];
    println!(
        "peak RSS (VmHWM) after loading: lookout {:.0} MiB, prometheus {:.0} MiB; after the queries: lookout {:.0} MiB, prometheus {:.0} MiB",
        loaded_hwm[0], loaded_hwm[1], final_hwm[0], final_hwm[1]
    );
    let compared = outcomes
        .iter()
        .filter(|o| o.lookout.secs().is_some() && o.prometheus.secs().is_some())
        .count();
    const TARGET: f64 = 0.5;
    let (ratio, verdict) = if compared > 0 {
        let r = l_total / p_total.max(1e-12);
        (
            format!("{r:.2}x"),
            if r <= TARGET { "met" } else { "missed" },
        )
    } else {
        ("n/a".to_string(), "not measured")
    };
    println!(
        "query bench: nodes={} series={} rules={} lookout/prometheus time={ratio} (target <= {TARGET}x: {verdict}; over {compared} of {} queries) peak RSS lookout={:.0} MiB prometheus={:.0} MiB mismatches={} errors lookout={} prometheus={}",
        s.nodes,
        cluster.len() + bf.series,
        rules.len(),
        outcomes.len(),
        final_hwm[0],
        final_hwm[1],
        mismatching.len(),
        outcomes
            .iter()
            .filter(|o| o.lookout.secs().is_none())
            .count(),
        outcomes
            .iter()
            .filter(|o| o.prometheus.secs().is_none())
            .count(),
    );
    Ok(())
}
