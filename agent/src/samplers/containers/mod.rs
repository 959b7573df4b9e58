//! Per-container CPU, memory, block I/O and network with cAdvisor's names,
//! read straight from cgroup files and `/proc/<pid>/net/dev`, never through
//! Docker's stats API (which costs the daemon seconds per container).
//!
//! Containers are found by scanning the cgroup tree (so they are reported
//! even when Docker is unreachable) and by the inventory's init PIDs (which
//! finds containers under a custom `--cgroup-parent`).

pub mod cgroup;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use lookout_protocol::model::sanitize_label_name;
use lookout_protocol::{Family, Labels};

use crate::config::{ContainersConfig, Paths};
use crate::procfs::{KeptFile, ReadBuf};
use crate::registry::Problems;
use crate::samplers::inventory::{ContainerMeta, Inventory, id_from_cgroup_name};
use crate::schedule::{BlockingSampler, Output};
use cgroup::{CgroupFiles, Layout, Reading};

pub const NAME: &str = "containers";

/// Spec files (limits, quota, shares) are re-read every this many cycles.
const SPEC_EVERY: u32 = 6;

struct Tracked {
    cgroup: String,
    /// Limits, quota and shares as last read, and cycles until the next read.
    spec: Reading,
    spec_age: u32,
    files: CgroupFiles,
    /// `/proc/<pid>/net/dev` of the init process; `None` for containers in
    /// the host's network namespace (their traffic is the host's).
    net: Option<KeptFile>,
    pid: Option<u32>,
    labels: Labels,
    meta: Option<std::sync::Arc<ContainerMeta>>,
}

pub struct ContainerSampler {
    cfg: ContainersConfig,
    paths: Paths,
    layout: Layout,
    inventory: Inventory,
    tracked: HashMap<String, Tracked>,
    host_netns: Option<u64>,
    device_names: HashMap<(u32, u32), String>,
    buf: ReadBuf,
    ticks: f64,
    problems: Problems,
}

impl ContainerSampler {
    pub fn new(cfg: ContainersConfig, paths: Paths, inventory: Inventory) -> ContainerSampler {
        let layout = Layout::detect(&paths.cgroup);
        let host_netns = netns_inode(&paths.proc, 1);
        ContainerSampler {
            cfg,
            layout,
            inventory,
            tracked: HashMap::new(),
            host_netns,
            device_names: HashMap::new(),
            buf: ReadBuf::new(),
            ticks: crate::procfs::clock_ticks_per_second(),
            problems: Problems::default(),
            paths,
        }
    }

    pub fn cgroup_version(&self) -> u8 {
        self.layout.version()
    }

    /// Container cgroups present now, by id.
    fn discover(&mut self) -> HashMap<String, String> {
        let mut found: HashMap<String, String> = HashMap::new();
        let root = self.layout.scan_root();
        // Docker with the cgroupfs driver, and with the systemd driver.
        scan_dir(&root, "docker", 0, &mut found);
        scan_dir(&root, "system.slice", 0, &mut found);
        // Kubernetes pods (any runtime), cgroupfs or systemd naming.
        scan_dir(&root, "kubepods", 3, &mut found);
        scan_dir(&root, "kubepods.slice", 3, &mut found);
        // Running containers elsewhere (--cgroup-parent): ask their init
        // process where it lives.
        for meta in self.inventory.all() {
            if found.contains_key(&meta.id) || meta.is_sandbox {
                continue;
            }
            if let Some(pid) = meta.pid
                && let Ok(text) =
                    std::fs::read_to_string(self.paths.proc.join(format!("{pid}/cgroup")))
                && let Some(path) = self.layout.path_from_proc_cgroup(&text)
                && path != "/"
            {
                found.insert(meta.id.clone(), path);
            }
        }
        found
    }

    fn labels_for(&self, cgroup: &str, meta: Option<&ContainerMeta>) -> Labels {
        let mut l = Labels::with_capacity(6);
        l.set("id", cgroup);
        l.set("name", meta.map(|m| m.name.as_str()).unwrap_or(""));
        l.set("image", meta.map(|m| m.image.as_str()).unwrap_or(""));
        if let Some(m) = meta {
            m.add_identity_labels(&mut l);
            for (k, v) in &m.allowlisted_labels {
                if self.cfg.docker_labels.contains(k) {
                    l.set(
                        format!("container_label_{}", sanitize_label_name(k)),
                        v.as_str(),
                    );
                }
            }
        }
        l
    }

    /// Finds the init PID of a container and opens its network counters.
    fn attach_network(&self, t: &mut Tracked) {
        let pid = t
            .meta
            .as_ref()
            .and_then(|m| m.pid)
            .or_else(|| first_pid(&self.layout, &t.cgroup));
        t.pid = pid;
        t.net = None;
        let Some(pid) = pid else { return };
        let in_host_netns =
            self.host_netns.is_some() && netns_inode(&self.paths.proc, pid) == self.host_netns;
        if !in_host_netns {
            t.net = KeptFile::open(self.paths.proc.join(format!("{pid}/net/dev"))).ok();
        }
    }

    fn device_name(&mut self, major: u32, minor: u32) -> String {
        if let Some(n) = self.device_names.get(&(major, minor)) {
            return n.clone();
        }
        let uevent = std::fs::read_to_string(
            self.paths
                .sys
                .join(format!("dev/block/{major}:{minor}/uevent")),
        )
        .unwrap_or_default();
        let name = uevent
            .lines()
            .find_map(|l| l.strip_prefix("DEVNAME="))
            .map(|n| format!("/dev/{n}"))
            .unwrap_or_else(|| format!("{major}:{minor}"));
        self.device_names.insert((major, minor), name.clone());
        name
    }
}

/// Scans `root/dir` (and up to `depth` levels below it) for container
/// cgroup directories.
fn scan_dir(root: &Path, dir: &str, depth: usize, found: &mut HashMap<String, String>) {
    fn walk(base: &Path, rel: &str, depth: usize, found: &mut HashMap<String, String>) {
        let Ok(entries) = std::fs::read_dir(base.join(rel.trim_start_matches('/'))) else {
            return;
        };
        for e in entries.flatten() {
            if !e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                continue;
            }
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            let child = format!("{rel}/{name}");
            if let Some(id) = id_from_cgroup_name(name) {
                found.insert(id.to_string(), child);
            } else if depth > 0 {
                walk(base, &child, depth - 1, found);
            }
        }
    }
    walk(root, &format!("/{dir}"), depth, found);
}

fn first_pid(layout: &Layout, cgroup: &str) -> Option<u32> {
    let dir = match layout {
        Layout::V1 { .. } => layout.dir("memory", cgroup),
        Layout::V2 { .. } => layout.dir("", cgroup),
    };
    let text = std::fs::read_to_string(dir.join("cgroup.procs")).ok()?;
    text.lines().next()?.trim().parse().ok()
}

fn netns_inode(proc: &Path, pid: u32) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(proc.join(format!("{pid}/ns/net")))
        .ok()
        .map(|m| m.ino())
}

/// The families of one cycle, filled container by container.
struct Families {
    all: Vec<Family>,
}

macro_rules! family_index {
    ($($idx:ident = ($kind:ident, $name:literal, $help:literal)),* $(,)?) => {
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        #[derive(Clone, Copy)]
        #[repr(usize)]
        enum F { $($idx),* }
        fn new_families() -> Families {
            Families { all: vec![$(Family::$kind($name, $help)),*] }
        }
    };
}

family_index! {
    CpuUsage = (counter, "container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds."),
    CpuUser = (counter, "container_cpu_user_seconds_total", "Cumulative user cpu time consumed in seconds."),
    CpuSystem = (counter, "container_cpu_system_seconds_total", "Cumulative system cpu time consumed in seconds."),
    CfsPeriods = (counter, "container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals."),
    CfsThrottledPeriods = (counter, "container_cpu_cfs_throttled_periods_total", "Number of throttled period intervals."),
    CfsThrottledSeconds = (counter, "container_cpu_cfs_throttled_seconds_total", "Total time duration the container has been throttled."),
    CpuQuota = (gauge, "container_spec_cpu_quota", "CPU quota of the container."),
    CpuPeriod = (gauge, "container_spec_cpu_period", "CPU period of the container."),
    CpuShares = (gauge, "container_spec_cpu_shares", "CPU share of the container."),
    MemUsage = (gauge, "container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed."),
    MemWorkingSet = (gauge, "container_memory_working_set_bytes", "Current working set in bytes."),
    MemRss = (gauge, "container_memory_rss", "Size of RSS in bytes."),
    MemCache = (gauge, "container_memory_cache", "Number of bytes of page cache memory."),
    MemMapped = (gauge, "container_memory_mapped_file", "Size of memory mapped files in bytes."),
    MemSwap = (gauge, "container_memory_swap", "Container swap usage in bytes."),
    MemFailcnt = (counter, "container_memory_failcnt", "Number of memory usage hits limits."),
    MemLimit = (gauge, "container_spec_memory_limit_bytes", "Memory limit for the container (0 = unlimited)."),
    OomEvents = (counter, "container_oom_events_total", "Count of out of memory events observed for the container."),
    FsReads = (counter, "container_fs_reads_bytes_total", "Cumulative count of bytes read."),
    FsWrites = (counter, "container_fs_writes_bytes_total", "Cumulative count of bytes written."),
    RxBytes = (counter, "container_network_receive_bytes_total", "Cumulative count of bytes received."),
    RxPackets = (counter, "container_network_receive_packets_total", "Cumulative count of packets received."),
    RxErrors = (counter, "container_network_receive_errors_total", "Cumulative count of errors encountered while receiving."),
    RxDropped = (counter, "container_network_receive_packets_dropped_total", "Cumulative count of packets dropped while receiving."),
    TxBytes = (counter, "container_network_transmit_bytes_total", "Cumulative count of bytes transmitted."),
    TxPackets = (counter, "container_network_transmit_packets_total", "Cumulative count of packets transmitted."),
    TxErrors = (counter, "container_network_transmit_errors_total", "Cumulative count of errors encountered while transmitting."),
    TxDropped = (counter, "container_network_transmit_packets_dropped_total", "Cumulative count of packets dropped while transmitting."),
    StartTime = (gauge, "container_start_time_seconds", "Start time of the container since unix epoch in seconds."),
    LastSeen = (gauge, "container_last_seen", "Last time a container was seen by the exporter."),
}

impl Families {
    fn push(&mut self, f: F, labels: &Labels, v: Option<f64>) {
        if let Some(v) = v {
            self.all[f as usize].push(labels.clone(), v);
        }
    }
}

impl BlockingSampler for ContainerSampler {
    fn name(&self) -> &'static str {
        NAME
    }

    fn sample(&mut self, now: SystemTime) -> anyhow::Result<Output> {
        let present = self.discover();
        self.tracked.retain(|id, _| present.contains_key(id));
        let mut fams = new_families();
        let now_s = crate::clock::unix_seconds(now);
        let mut failures = 0;
        let mut ids: Vec<&String> = present.keys().collect();
        ids.sort();
        for id in ids {
            let cgroup = &present[id];
            let meta = self.inventory.get(id);
            if meta.as_ref().is_some_and(|m| m.is_sandbox) {
                continue;
            }
            // (Re)open when new, moved, or when the inventory learned more.
            let stale = match self.tracked.get(id) {
                None => true,
                Some(t) => &t.cgroup != cgroup || t.meta != meta,
            };
            if stale {
                let files = match CgroupFiles::open(&self.layout, cgroup) {
                    Ok(f) => f,
                    // Gone between the scan and the open: normal churn.
                    Err(_) => continue,
                };
                let labels = self.labels_for(cgroup, meta.as_deref());
                let mut t = Tracked {
                    cgroup: cgroup.clone(),
                    spec: Reading::default(),
                    spec_age: 0,
                    files,
                    net: None,
                    pid: None,
                    labels,
                    meta: meta.clone(),
                };
                self.attach_network(&mut t);
                self.tracked.insert(id.clone(), t);
            }
            let Some(t) = self.tracked.get_mut(id) else {
                continue;
            };
            let read = t
                .files
                .read_usage(&mut self.buf, self.ticks)
                .and_then(|mut r| {
                    if t.spec_age == 0 {
                        t.files.read_spec(&mut self.buf, &mut t.spec)?;
                        t.spec_age = SPEC_EVERY;
                    }
                    t.spec_age -= 1;
                    r.cpu_quota = t.spec.cpu_quota;
                    r.cpu_period = t.spec.cpu_period;
                    r.cpu_shares = t.spec.cpu_shares;
                    r.memory_limit = t.spec.memory_limit;
                    Ok(r)
                });
            let reading: Reading = match read {
                Ok(r) => r,
                Err(e) => {
                    if e.kind() != std::io::ErrorKind::NotFound
                        && e.raw_os_error() != Some(libc::ENODEV)
                    {
                        self.problems.report(
                            NAME,
                            id,
                            &format!("reading cgroup {cgroup} failed: {e}"),
                        );
                        failures += 1;
                    }
                    self.tracked.remove(id);
                    continue;
                }
            };
            let t = &self.tracked[id];
            let l = &t.labels;
            let cpu_labels = l.with("cpu", "total");
            fams.push(F::CpuUsage, &cpu_labels, reading.cpu_usage_seconds);
            fams.push(F::CpuUser, l, reading.cpu_user_seconds);
            fams.push(F::CpuSystem, l, reading.cpu_system_seconds);
            fams.push(F::CfsPeriods, l, reading.cfs_periods);
            fams.push(F::CfsThrottledPeriods, l, reading.cfs_throttled_periods);
            fams.push(F::CfsThrottledSeconds, l, reading.cfs_throttled_seconds);
            fams.push(F::CpuQuota, l, reading.cpu_quota);
            fams.push(F::CpuPeriod, l, reading.cpu_period);
            fams.push(F::CpuShares, l, reading.cpu_shares);
            fams.push(F::MemUsage, l, reading.memory_usage);
            fams.push(F::MemWorkingSet, l, reading.memory_working_set);
            fams.push(F::MemRss, l, reading.memory_rss);
            fams.push(F::MemCache, l, reading.memory_cache);
            fams.push(F::MemMapped, l, reading.memory_mapped_file);
            fams.push(F::MemSwap, l, reading.memory_swap);
            fams.push(F::MemFailcnt, l, reading.memory_failcnt);
            fams.push(F::MemLimit, l, reading.memory_limit);
            fams.push(F::OomEvents, l, reading.oom_kills);
            fams.push(F::StartTime, l, t.meta.as_ref().and_then(|m| m.started_at));
            fams.push(F::LastSeen, l, Some(now_s));
            let labels = l.clone();
            for (maj, min, r, w) in reading.io {
                let dev_labels = labels.with("device", self.device_name(maj, min));
                fams.push(F::FsReads, &dev_labels, Some(r));
                fams.push(F::FsWrites, &dev_labels, Some(w));
            }
            self.network(id, &labels, &mut fams);
        }
        Ok(Output {
            families: fams.all,
            partial_failures: failures,
        })
    }
}

impl ContainerSampler {
    fn network(&mut self, id: &str, labels: &Labels, fams: &mut Families) {
        let Some(t) = self.tracked.get_mut(id) else {
            return;
        };
        if t.net.is_none() {
            return;
        }
        let read = t
            .net
            .as_ref()
            .map(|f| f.read_str(&mut self.buf).map(|s| s.to_string()));
        let text = match read {
            Some(Ok(text)) => text,
            _ => {
                // The init process was replaced (container restart): find
                // the new one next cycle.
                self.reattach_network(id);
                return;
            }
        };
        for (dev, v) in crate::procfs::net_dev_rows(&text) {
            if dev == "lo" {
                continue;
            }
            let l = labels.with("interface", dev);
            fams.push(F::RxBytes, &l, Some(v[0]));
            fams.push(F::RxPackets, &l, Some(v[1]));
            fams.push(F::RxErrors, &l, Some(v[2]));
            fams.push(F::RxDropped, &l, Some(v[3]));
            fams.push(F::TxBytes, &l, Some(v[8]));
            fams.push(F::TxPackets, &l, Some(v[9]));
            fams.push(F::TxErrors, &l, Some(v[10]));
            fams.push(F::TxDropped, &l, Some(v[11]));
        }
    }

    fn reattach_network(&mut self, id: &str) {
        if let Some(mut t) = self.tracked.remove(id) {
            t.meta = None; // force a fresh PID lookup
            self.attach_network(&mut t);
            self.tracked.insert(id.to_string(), t);
        }
    }
}

/// The cgroup root a path belongs to, for messages.
pub fn describe_layout(paths: &Paths) -> String {
    let layout = Layout::detect(&paths.cgroup);
    format!(
        "cgroup v{} at {}",
        layout.version(),
        PathBuf::from(&paths.cgroup).display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samplers::inventory::is_container_id;

    #[test]
    fn scan_finds_docker_systemd_and_kubepods_containers() {
        let root = tempfile::tempdir().unwrap();
        let id1 = "a".repeat(64);
        let id2 = "b".repeat(64);
        let id3 = "c".repeat(64);
        std::fs::create_dir_all(root.path().join(format!("docker/{id1}"))).unwrap();
        std::fs::create_dir_all(root.path().join(format!("system.slice/docker-{id2}.scope")))
            .unwrap();
        std::fs::create_dir_all(root.path().join(format!("kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1_2.slice/cri-containerd-{id3}.scope"))).unwrap();
        std::fs::create_dir_all(root.path().join("system.slice/sshd.service")).unwrap();
        let mut found = HashMap::new();
        scan_dir(root.path(), "docker", 0, &mut found);
        scan_dir(root.path(), "system.slice", 0, &mut found);
        scan_dir(root.path(), "kubepods.slice", 3, &mut found);
        assert_eq!(found.len(), 3);
        assert_eq!(found[&id1], format!("/docker/{id1}"));
        assert_eq!(found[&id2], format!("/system.slice/docker-{id2}.scope"));
        assert!(found[&id3].ends_with(&format!("cri-containerd-{id3}.scope")));
        assert!(is_container_id(&id3));
    }
}
