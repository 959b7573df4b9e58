//! The Docker daemon: whether it answers, its version and storage, container
//! counts, each container's state, health, restarts, exit code and creation
//! parameters, and the filesystem that holds Docker's root directory.
//!
//! Only list, inspect and `/info` are used; per-container resource usage
//! comes from cgroups (see [`super::containers`]). Inspect results are
//! cached and refreshed when a container's state changes or an event names
//! it.

pub mod client;
pub mod data_usage;
pub mod events;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bollard::models::{ContainerInspectResponse, ContainerSummary, SystemInfo};
use bollard::query_parameters::ListContainersOptionsBuilder;
use lookout_protocol::{Family, Labels, MetricKind};

use crate::clock::parse_rfc3339;
use crate::config::{DockerConfig, Paths};
use crate::procfs::under_root;
use crate::registry::Problems;
use crate::samplers::inventory::{ContainerMeta, Inventory};
use crate::schedule::{AsyncSampler, Output};
use client::Connection;

pub const NAME: &str = "docker";

/// Container ids whose cached inspect is out of date; the event follower
/// adds to it, the sampler drains it.
#[derive(Clone, Default)]
pub struct Dirty(Arc<Mutex<HashSet<String>>>);

impl Dirty {
    pub fn mark(&self, id: &str) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string());
    }
    fn take(&self) -> HashSet<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Inspect is repeated at least this often even without a reason.
const INSPECT_MAX_AGE: Duration = Duration::from_secs(300);

struct Cached {
    key: String,
    at: Instant,
    inspect: ContainerInspectResponse,
}

pub struct DockerSampler {
    cfg: DockerConfig,
    paths: Paths,
    conn: Connection,
    inventory: Inventory,
    dirty: Dirty,
    cache: HashMap<String, Cached>,
    /// Docker labels the container sampler copies onto its series.
    allowlist: Vec<String>,
    problems: Problems,
}

impl DockerSampler {
    pub fn new(
        cfg: DockerConfig,
        paths: Paths,
        inventory: Inventory,
        dirty: Dirty,
        allowlist: Vec<String>,
    ) -> DockerSampler {
        DockerSampler {
            allowlist,
            conn: Connection::new(cfg.socket_path(), cfg.timeout),
            cfg,
            paths,
            inventory,
            dirty,
            cache: HashMap::new(),
            problems: Problems::default(),
        }
    }

    async fn sample_daemon(&mut self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let client = self.conn.client().await?.clone();
        let info = client.info().await?;
        let version = client.version().await?;
        let api = self.conn.api_version().unwrap_or_default();
        let mut info_fam = Family::gauge(
            "lookout_docker_info",
            "The Docker daemon's version and set-up; the value is always 1.",
        );
        let s = |v: &Option<String>| v.clone().unwrap_or_default();
        info_fam.push(
            Labels::from_pairs([
                ("version", s(&version.version)),
                ("api_version", api.clone()),
                ("storage_driver", s(&info.driver)),
                (
                    "cgroup_driver",
                    info.cgroup_driver
                        .map(|d| d.to_string())
                        .unwrap_or_default(),
                ),
                (
                    "cgroup_version",
                    info.cgroup_version
                        .map(|d| d.to_string())
                        .unwrap_or_default(),
                ),
                ("root_dir", s(&info.docker_root_dir)),
                ("kernel_version", s(&info.kernel_version)),
                ("os", s(&info.operating_system)),
            ]),
            1.0,
        );
        out.push(info_fam);
        let mut counts = Family::gauge(
            "lookout_docker_containers",
            "Containers by state (running, paused, stopped); their sum is all containers.",
        );
        for (state, v) in [
            ("running", info.containers_running),
            ("paused", info.containers_paused),
            ("stopped", info.containers_stopped),
        ] {
            counts.push(
                Labels::from_pairs([("state", state)]),
                v.unwrap_or(0) as f64,
            );
        }
        out.push(counts);
        out.push(Family::single(
            "lookout_docker_images",
            "Images the daemon holds.",
            MetricKind::Gauge,
            info.images.unwrap_or(0) as f64,
        ));
        out.extend(devicemapper(&info));
        self.root_filesystem(&info, out).await;

        let listed = client
            .list_containers(Some(
                ListContainersOptionsBuilder::default().all(true).build(),
            ))
            .await?;
        let dirty = self.dirty.take();
        let mut metas = Vec::with_capacity(listed.len());
        let mut keep = HashSet::new();
        for summary in &listed {
            let Some(id) = summary.id.clone() else {
                continue;
            };
            keep.insert(id.clone());
            let key = cache_key(summary);
            let fresh = match self.cache.get(&id) {
                Some(c) => c.key == key && !dirty.contains(&id) && c.at.elapsed() < INSPECT_MAX_AGE,
                None => false,
            };
            if !fresh {
                match client.inspect_container(&id, None).await {
                    Ok(inspect) => {
                        self.cache.insert(
                            id.clone(),
                            Cached {
                                key,
                                at: Instant::now(),
                                inspect,
                            },
                        );
                    }
                    // Removed between list and inspect.
                    Err(bollard::errors::Error::DockerResponseServerError {
                        status_code: 404,
                        ..
                    }) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        self.cache.retain(|id, _| keep.contains(id));
        let mut per = PerContainer::new();
        let mut ids: Vec<&String> = self.cache.keys().collect();
        ids.sort();
        for id in ids {
            let inspect = &self.cache[id].inspect;
            let meta = meta_of(inspect, &self.allowlist);
            per.add(inspect, &meta);
            metas.push(meta);
        }
        out.extend(per.families());
        self.inventory.replace(metas);
        Ok(())
    }

    async fn root_filesystem(&mut self, info: &SystemInfo, out: &mut Vec<Family>) {
        let Some(root) = info.docker_root_dir.clone() else {
            return;
        };
        let path: PathBuf = under_root(&self.paths.rootfs, &root);
        let stats = tokio::time::timeout(
            self.cfg.timeout,
            tokio::task::spawn_blocking(move || crate::procfs::statvfs(&path)),
        )
        .await;
        match stats {
            Ok(Ok(Ok(s))) => {
                self.problems.clear(
                    NAME,
                    "rootfs",
                    &format!("Docker root dir {root} is readable again"),
                );
                let l = Labels::from_pairs([("root_dir", root.as_str())]);
                for (name, help, v) in [
                    (
                        "lookout_docker_data_size_bytes",
                        "Size of the filesystem holding Docker's root dir.",
                        s.size_bytes,
                    ),
                    (
                        "lookout_docker_data_used_bytes",
                        "Used space on the filesystem holding Docker's root dir.",
                        s.size_bytes - s.free_bytes,
                    ),
                    (
                        "lookout_docker_data_avail_bytes",
                        "Space available to Docker on the filesystem holding its root dir.",
                        s.avail_bytes,
                    ),
                    (
                        "lookout_docker_data_files",
                        "Inodes of the filesystem holding Docker's root dir.",
                        s.files,
                    ),
                    (
                        "lookout_docker_data_files_free",
                        "Free inodes of the filesystem holding Docker's root dir.",
                        s.files_free,
                    ),
                ] {
                    let mut f = Family::gauge(name, help);
                    f.push(l.clone(), v as f64);
                    out.push(f);
                }
            }
            Ok(Ok(Err(e))) => self.problems.report(
                NAME,
                "rootfs",
                &format!("statfs of Docker root dir {root} failed: {e}"),
            ),
            _ => self.problems.report(
                NAME,
                "rootfs",
                &format!("statfs of Docker root dir {root} did not answer in time"),
            ),
        }
    }
}

/// What makes a cached inspect stale: a new state or health in the listing.
fn cache_key(s: &ContainerSummary) -> String {
    let state = s.state.map(|st| st.to_string()).unwrap_or_default();
    let status = s.status.as_deref().unwrap_or("");
    let health = ["(healthy)", "(unhealthy)", "(health: starting)"]
        .into_iter()
        .find(|h| status.contains(h))
        .unwrap_or("");
    format!("{state}{health}")
}

fn meta_of(inspect: &ContainerInspectResponse, allowlist: &[String]) -> ContainerMeta {
    let state = inspect.state.as_ref();
    let running = state.and_then(|s| s.running).unwrap_or(false);
    let mut meta = ContainerMeta {
        id: inspect.id.clone().unwrap_or_default(),
        name: inspect
            .name
            .as_deref()
            .unwrap_or("")
            .trim_start_matches('/')
            .to_string(),
        image: inspect
            .config
            .as_ref()
            .and_then(|c| c.image.clone())
            .unwrap_or_default(),
        pid: state
            .and_then(|s| s.pid)
            .filter(|p| running && *p > 0)
            .map(|p| p as u32),
        started_at: state
            .and_then(|s| s.started_at.as_deref())
            .and_then(parse_rfc3339)
            .filter(|_| running),
        ..ContainerMeta::default()
    };
    if let Some(labels) = inspect.config.as_ref().and_then(|c| c.labels.as_ref()) {
        meta.apply_runtime_labels(labels, allowlist);
    }
    meta
}

const STATES: [&str; 7] = [
    "created",
    "running",
    "paused",
    "restarting",
    "removing",
    "exited",
    "dead",
];
const HEALTH: [&str; 3] = ["starting", "healthy", "unhealthy"];

struct PerContainer {
    state: Family,
    health: Family,
    restarts: Family,
    exit_code: Family,
    oom_killed: Family,
    created: Family,
    started: Family,
    info: Family,
}

impl PerContainer {
    fn new() -> Self {
        PerContainer {
            state: Family::gauge(
                "lookout_docker_container_state",
                "1 for the container's current state, 0 for the others.",
            ),
            health: Family::gauge(
                "lookout_docker_container_health_status",
                "1 for the container's current health, 0 for the others; only for containers with a health check.",
            ),
            restarts: Family::gauge(
                "lookout_docker_container_restarts",
                "Times Docker restarted the container (its RestartCount).",
            ),
            exit_code: Family::gauge(
                "lookout_docker_container_exit_code",
                "Exit code of the container's last run.",
            ),
            oom_killed: Family::gauge(
                "lookout_docker_container_oom_killed",
                "1 if the container's last run was killed for lack of memory.",
            ),
            created: Family::gauge(
                "lookout_docker_container_created_timestamp_seconds",
                "When the container was created.",
            ),
            started: Family::gauge(
                "lookout_docker_container_started_timestamp_seconds",
                "When the running container last started.",
            ),
            info: Family::gauge(
                "lookout_docker_container_info",
                "The container's creation parameters; the value is always 1.",
            ),
        }
    }

    fn add(&mut self, inspect: &ContainerInspectResponse, meta: &ContainerMeta) {
        let mut l = Labels::from_pairs([
            ("id", meta.id.as_str()),
            ("name", meta.name.as_str()),
            ("image", meta.image.as_str()),
        ]);
        meta.add_identity_labels(&mut l);
        let state = inspect.state.as_ref();
        let current = state
            .and_then(|s| s.status)
            .map(|s| s.to_string())
            .unwrap_or_default();
        for s in STATES {
            self.state
                .push(l.with("state", s), if s == current { 1.0 } else { 0.0 });
        }
        if let Some(h) = state
            .and_then(|s| s.health.as_ref())
            .and_then(|h| h.status)
            .map(|h| h.to_string())
            && h != "none"
            && !h.is_empty()
        {
            for s in HEALTH {
                self.health
                    .push(l.with("health", s), if s == h { 1.0 } else { 0.0 });
            }
        }
        self.restarts
            .push(l.clone(), inspect.restart_count.unwrap_or(0) as f64);
        self.exit_code.push(
            l.clone(),
            state.and_then(|s| s.exit_code).unwrap_or(0) as f64,
        );
        self.oom_killed.push(
            l.clone(),
            if state.and_then(|s| s.oom_killed).unwrap_or(false) {
                1.0
            } else {
                0.0
            },
        );
        if let Some(t) = inspect.created.as_deref().and_then(parse_rfc3339) {
            self.created.push(l.clone(), t);
        }
        if let Some(t) = meta.started_at {
            self.started.push(l.clone(), t);
        }
        let host = inspect.host_config.as_ref();
        let cpu_limit = host
            .and_then(|h| match (h.nano_cpus, h.cpu_quota, h.cpu_period) {
                (Some(n), _, _) if n > 0 => Some(n as f64 / 1e9),
                (_, Some(q), Some(p)) if q > 0 && p > 0 => Some(q as f64 / p as f64),
                (_, Some(q), _) if q > 0 => Some(q as f64 / 100_000.0),
                _ => None,
            })
            .map(|c| format!("{c}"))
            .unwrap_or_default();
        let memory_limit = host
            .and_then(|h| h.memory)
            .filter(|m| *m > 0)
            .map(|m| m.to_string())
            .unwrap_or_default();
        let restart_policy = host
            .and_then(|h| h.restart_policy.as_ref())
            .and_then(|r| r.name)
            .map(|n| n.to_string())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "no".to_string());
        let config = inspect.config.as_ref();
        let command: Vec<String> = config
            .map(|c| {
                c.entrypoint
                    .iter()
                    .flatten()
                    .chain(c.cmd.iter().flatten())
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        self.info.push(
            l.with("command", command.join(" "))
                .with("restart_policy", restart_policy)
                .with("cpu_limit", cpu_limit)
                .with("memory_limit", memory_limit),
            1.0,
        );
    }

    fn families(self) -> Vec<Family> {
        vec![
            self.state,
            self.health,
            self.restarts,
            self.exit_code,
            self.oom_killed,
            self.created,
            self.started,
            self.info,
        ]
    }
}

/// Devicemapper's Data and Metadata Space figures from `/info`'s
/// DriverStatus (human-readable sizes such as "1.2 GB"); only on daemons
/// older than Engine 25 that still use that driver.
fn devicemapper(info: &SystemInfo) -> Vec<Family> {
    if info.driver.as_deref() != Some("devicemapper") {
        return Vec::new();
    }
    let mut out = Vec::new();
    for pair in info.driver_status.iter().flatten() {
        let [key, value] = pair.as_slice() else {
            continue;
        };
        let name = match key.as_str() {
            "Data Space Used" => "lookout_docker_devicemapper_data_space_used_bytes",
            "Data Space Total" => "lookout_docker_devicemapper_data_space_total_bytes",
            "Data Space Available" => "lookout_docker_devicemapper_data_space_available_bytes",
            "Metadata Space Used" => "lookout_docker_devicemapper_metadata_space_used_bytes",
            "Metadata Space Total" => "lookout_docker_devicemapper_metadata_space_total_bytes",
            "Metadata Space Available" => {
                "lookout_docker_devicemapper_metadata_space_available_bytes"
            }
            _ => continue,
        };
        if let Some(bytes) = parse_human_size(value) {
            out.push(Family::single(
                name,
                format!("Devicemapper {key}, from the daemon's DriverStatus."),
                MetricKind::Gauge,
                bytes,
            ));
        }
    }
    out
}

/// Parses Docker's human sizes ("1.2 GB", "512 kB", "10B"): decimal units.
pub fn parse_human_size(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: f64 = number.parse().ok()?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "tb" | "t" => 1e12,
        "pb" | "p" => 1e15,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0f64.powi(4),
        _ => return None,
    };
    Some(n * mult)
}

impl AsyncSampler for DockerSampler {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn sample(&mut self, _now: SystemTime) -> anyhow::Result<Output> {
        let mut out = Vec::with_capacity(24);
        let up = match self.sample_daemon(&mut out).await {
            Ok(()) => {
                self.problems.clear(
                    NAME,
                    "down",
                    &format!("Docker at {} answers again", self.conn.socket()),
                );
                true
            }
            Err(e) => {
                self.problems
                    .report(NAME, "down", &format!("{e:#}; lookout_docker_up is 0"));
                // Renegotiate next time: the daemon may have been upgraded.
                self.conn.reset();
                out.clear();
                false
            }
        };
        out.push(Family::single(
            "lookout_docker_up",
            "1 if the Docker daemon answered the last sampling.",
            MetricKind::Gauge,
            if up { 1.0 } else { 0.0 },
        ));
        Ok(Output::new(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(parse_human_size("1.2 GB"), Some(1.2e9));
        assert_eq!(parse_human_size("512 kB"), Some(512e3));
        assert_eq!(parse_human_size("10B"), Some(10.0));
        assert_eq!(parse_human_size("2 MiB"), Some(2.0 * 1024.0 * 1024.0));
        assert_eq!(parse_human_size("lots"), None);
    }

    #[test]
    fn devicemapper_figures_only_for_that_driver() {
        let mut info = SystemInfo {
            driver: Some("devicemapper".into()),
            driver_status: Some(vec![
                vec!["Pool Name".into(), "docker-thinpool".into()],
                vec!["Data Space Used".into(), "1.5 GB".into()],
                vec!["Data Space Total".into(), "10 GB".into()],
                vec!["Metadata Space Available".into(), "2 MB".into()],
            ]),
            ..SystemInfo::default()
        };
        let fams = devicemapper(&info);
        let v = |n: &str| {
            fams.iter()
                .find(|f| f.name == n)
                .map(|f| f.samples[0].value)
        };
        assert_eq!(
            v("lookout_docker_devicemapper_data_space_used_bytes"),
            Some(1.5e9)
        );
        assert_eq!(
            v("lookout_docker_devicemapper_data_space_total_bytes"),
            Some(1e10)
        );
        assert_eq!(
            v("lookout_docker_devicemapper_metadata_space_available_bytes"),
            Some(2e6)
        );
        info.driver = Some("overlay2".into());
        assert!(devicemapper(&info).is_empty());
    }
}
