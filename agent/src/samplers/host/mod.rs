//! Host metrics with node_exporter's names: CPU, memory and swap, load,
//! filesystems, disks, network interfaces, pressure, and the kernel counters
//! the kube-prometheus and kubernetes-mixin rules read.

pub mod parse;
mod statfs;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use lookout_protocol::{Family, Labels, MetricKind};
use regex::Regex;

use crate::config::{HostConfig, Paths};
use crate::procfs::{KeptFile, ReadBuf, under_root};
use crate::registry::Problems;
use crate::schedule::{BlockingSampler, Output};
use statfs::{Answer, StatfsWorker};

pub const NAME: &str = "host";

pub struct HostSampler {
    cfg: HostConfig,
    paths: Paths,
    exclude_fstypes: Regex,
    exclude_mountpoints: Regex,
    exclude_disks: Regex,
    exclude_interfaces: Regex,
    files: Vec<(Source, Option<KeptFile>)>,
    statfs: StatfsWorker,
    ticks: f64,
    buf: ReadBuf,
    problems: Problems,
}

/// The kernel files the host sampler reads every cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Stat,
    Meminfo,
    Loadavg,
    Diskstats,
    NetDev,
    Vmstat,
    Mounts,
    FileNr,
    ConntrackCount,
    ConntrackMax,
    Pressure(&'static str),
}

impl Source {
    const ALL: [Source; 14] = [
        Source::Stat,
        Source::Meminfo,
        Source::Loadavg,
        Source::Diskstats,
        Source::NetDev,
        Source::Vmstat,
        Source::Mounts,
        Source::FileNr,
        Source::ConntrackCount,
        Source::ConntrackMax,
        Source::Pressure("cpu"),
        Source::Pressure("memory"),
        Source::Pressure("io"),
        Source::Pressure("irq"),
    ];

    fn path(self, proc: &Path) -> PathBuf {
        match self {
            Source::Stat => proc.join("stat"),
            Source::Meminfo => proc.join("meminfo"),
            Source::Loadavg => proc.join("loadavg"),
            Source::Diskstats => proc.join("diskstats"),
            Source::NetDev => proc.join("net/dev"),
            Source::Vmstat => proc.join("vmstat"),
            // PID 1's view is the host's even when the agent has its own
            // mount namespace.
            Source::Mounts => proc.join("1/mounts"),
            Source::FileNr => proc.join("sys/fs/file-nr"),
            Source::ConntrackCount => proc.join("sys/net/netfilter/nf_conntrack_count"),
            Source::ConntrackMax => proc.join("sys/net/netfilter/nf_conntrack_max"),
            Source::Pressure(r) => proc.join("pressure").join(r),
        }
    }

    /// Files every Linux host has; a failure to read them is a problem.
    /// The others (conntrack, pressure) exist only with some kernels.
    fn required(self) -> bool {
        matches!(
            self,
            Source::Stat | Source::Meminfo | Source::Loadavg | Source::Mounts
        )
    }
}

impl HostSampler {
    pub fn new(cfg: HostConfig, paths: Paths) -> anyhow::Result<HostSampler> {
        let re = |p: &str| Regex::new(p);
        Ok(HostSampler {
            exclude_fstypes: re(&cfg.exclude_fstypes)?,
            exclude_mountpoints: re(&cfg.exclude_mountpoints)?,
            exclude_disks: re(&cfg.exclude_disks)?,
            exclude_interfaces: re(&cfg.exclude_interfaces)?,
            files: Source::ALL.iter().map(|s| (*s, None)).collect(),
            statfs: StatfsWorker::new(),
            ticks: crate::procfs::clock_ticks_per_second(),
            buf: ReadBuf::new(),
            problems: Problems::default(),
            cfg,
            paths,
        })
    }

    /// Reads one source into `self.buf`, opening it on first use. Returns
    /// false when the file is unavailable.
    fn read(&mut self, source: Source) -> bool {
        let proc = self.paths.proc.clone();
        let Some(slot) = self.files.iter_mut().find(|(s, _)| *s == source) else {
            return false;
        };
        if slot.1.is_none() {
            let mut path = source.path(&proc);
            if source == Source::Mounts && !path.exists() {
                path = proc.join("self/mounts");
            }
            match KeptFile::open(&path) {
                Ok(f) => slot.1 = Some(f),
                Err(e) => {
                    if source.required() {
                        self.problems.report(
                            NAME,
                            &format!("{source:?}"),
                            &format!("cannot open {}: {e}", path.display()),
                        );
                    }
                    return false;
                }
            }
        }
        let file = slot.1.as_ref().expect("opened above");
        match file.read(&mut self.buf) {
            Ok(()) => {
                self.problems.clear(
                    NAME,
                    &format!("{source:?}"),
                    &format!("{} is readable again", file.path().display()),
                );
                true
            }
            Err(e) => {
                // Pressure files exist but fail with EOPNOTSUPP when PSI is
                // off; that is not a problem to report.
                if source.required() {
                    self.problems.report(
                        NAME,
                        &format!("{source:?}"),
                        &format!("cannot read {}: {e}", file.path().display()),
                    );
                }
                slot.1 = None;
                false
            }
        }
    }

    fn text(&self) -> &str {
        self.buf.as_str()
    }

    fn filesystems(&mut self, out: &mut Vec<Family>) {
        if !self.read(Source::Mounts) {
            return;
        }
        let mounts = parse::mounts(self.text());
        const FS: [(&str, &str); 5] = [
            ("node_filesystem_size_bytes", "Filesystem size in bytes."),
            (
                "node_filesystem_free_bytes",
                "Filesystem free space in bytes.",
            ),
            (
                "node_filesystem_avail_bytes",
                "Filesystem space available to non-root users in bytes.",
            ),
            ("node_filesystem_files", "Filesystem total file nodes."),
            (
                "node_filesystem_files_free",
                "Filesystem total free file nodes.",
            ),
        ];
        let mut fams: Vec<Family> = FS.iter().map(|(n, h)| Family::gauge(*n, *h)).collect();
        let mut readonly =
            Family::gauge("node_filesystem_readonly", "Filesystem read-only status.");
        let mut device_error = Family::gauge(
            "node_filesystem_device_error",
            "Whether an error occurred while getting statistics for the given device.",
        );
        for m in mounts {
            if self.exclude_fstypes.is_match(&m.fstype)
                || self.exclude_mountpoints.is_match(&m.mountpoint)
            {
                continue;
            }
            let labels = Labels::from_pairs([
                ("device", m.device.as_str()),
                ("fstype", m.fstype.as_str()),
                ("mountpoint", m.mountpoint.as_str()),
            ]);
            let path = under_root(&self.paths.rootfs, &m.mountpoint);
            match self
                .statfs
                .statfs(&m.mountpoint, path, self.cfg.mount_timeout)
            {
                Answer::Stats(s) => {
                    let values = [
                        s.size_bytes,
                        s.free_bytes,
                        s.avail_bytes,
                        s.files,
                        s.files_free,
                    ];
                    for (f, v) in fams.iter_mut().zip(values) {
                        f.push(labels.clone(), v as f64);
                    }
                    readonly.push(
                        labels.clone(),
                        if m.readonly || s.readonly { 1.0 } else { 0.0 },
                    );
                    device_error.push(labels, 0.0);
                    self.problems.clear(
                        NAME,
                        &m.mountpoint,
                        &format!("filesystem {} answers again", m.mountpoint),
                    );
                }
                Answer::Error(e) => {
                    // Mounts that vanish between reading the table and
                    // statfs are normal churn, not errors.
                    if e.kind() != std::io::ErrorKind::NotFound {
                        self.problems.report(
                            NAME,
                            &m.mountpoint,
                            &format!("statfs {} failed: {e}", m.mountpoint),
                        );
                        readonly.push(labels.clone(), if m.readonly { 1.0 } else { 0.0 });
                        device_error.push(labels, 1.0);
                    }
                }
                Answer::Stuck => {
                    self.problems.report(
                        NAME,
                        &m.mountpoint,
                        &format!(
                            "statfs {} did not answer within {}; the mount is skipped until it does",
                            m.mountpoint,
                            humantime::format_duration(self.cfg.mount_timeout)
                        ),
                    );
                    readonly.push(labels.clone(), if m.readonly { 1.0 } else { 0.0 });
                    device_error.push(labels, 1.0);
                }
            }
        }
        out.extend(fams);
        out.push(readonly);
        out.push(device_error);
    }

    fn network(&mut self, out: &mut Vec<Family>) {
        if !self.read(Source::NetDev) {
            return;
        }
        let devices = parse::netdev(self.buf.as_str(), &self.exclude_interfaces, out);
        let mut up = Family::gauge(
            "node_network_up",
            "Value is 1 if operstate is 'up', 0 otherwise.",
        );
        let class = self.paths.sys.join("class/net");
        for dev in devices {
            let state =
                std::fs::read_to_string(class.join(&dev).join("operstate")).unwrap_or_default();
            up.push(
                Labels::from_pairs([("device", dev.as_str())]),
                if state.trim() == "up" { 1.0 } else { 0.0 },
            );
        }
        out.push(up);
    }
}

impl BlockingSampler for HostSampler {
    fn name(&self) -> &'static str {
        NAME
    }

    fn sample(&mut self, now: SystemTime) -> anyhow::Result<Output> {
        let mut out: Vec<Family> = Vec::with_capacity(128);
        let mut failures = 0;
        if self.read(Source::Stat) {
            parse::stat(self.text(), self.ticks, &mut out);
        } else {
            failures += 1;
        }
        if self.read(Source::Meminfo) {
            parse::meminfo(self.text(), &mut out);
        } else {
            failures += 1;
        }
        if self.read(Source::Loadavg) {
            parse::loadavg(self.text(), &mut out);
        } else {
            failures += 1;
        }
        if self.read(Source::Diskstats) {
            parse::diskstats(self.buf.as_str(), &self.exclude_disks, &mut out);
        }
        if self.read(Source::Vmstat) {
            parse::vmstat(self.text(), &mut out);
        }
        if self.read(Source::FileNr) {
            let mut f = self.text().split_ascii_whitespace();
            if let (Some(alloc), Some(_), Some(max)) = (f.next(), f.next(), f.next()) {
                out.push(Family::single(
                    "node_filefd_allocated",
                    "File descriptor statistics: allocated.",
                    MetricKind::Gauge,
                    alloc.parse().unwrap_or(0.0),
                ));
                out.push(Family::single(
                    "node_filefd_maximum",
                    "File descriptor statistics: maximum.",
                    MetricKind::Gauge,
                    max.parse().unwrap_or(0.0),
                ));
            }
        }
        for (source, name, help) in [
            (
                Source::ConntrackCount,
                "node_nf_conntrack_entries",
                "Number of currently allocated flow entries for connection tracking.",
            ),
            (
                Source::ConntrackMax,
                "node_nf_conntrack_entries_limit",
                "Maximum size of connection tracking table.",
            ),
        ] {
            if self.read(source)
                && let Ok(v) = self.text().trim().parse::<f64>()
            {
                out.push(Family::single(name, help, MetricKind::Gauge, v));
            }
        }
        for resource in ["cpu", "memory", "io", "irq"] {
            if self.read(Source::Pressure(resource)) {
                parse::pressure(resource, self.buf.as_str(), &mut out);
            }
        }
        self.filesystems(&mut out);
        self.network(&mut out);
        out.extend(uname_info());
        out.extend(timex());
        out.push(Family::single(
            "node_time_seconds",
            "System time in seconds since epoch (1970).",
            MetricKind::Gauge,
            crate::clock::unix_seconds(now),
        ));
        Ok(Output {
            families: out,
            partial_failures: failures,
        })
    }
}

fn uname_info() -> Option<Family> {
    // SAFETY: zeroed utsname is a valid out-value.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return None;
    }
    let field = |f: &[libc::c_char]| -> String {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|c| **c != 0)
            .map(|c| *c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    let mut fam = Family::gauge(
        "node_uname_info",
        "Labeled system information as provided by the uname system call.",
    );
    fam.push(
        Labels::from_pairs([
            ("domainname", field(&u.domainname)),
            ("machine", field(&u.machine)),
            ("nodename", field(&u.nodename)),
            ("release", field(&u.release)),
            ("sysname", field(&u.sysname)),
            ("version", field(&u.version)),
        ]),
        1.0,
    );
    Some(fam)
}

/// Clock synchronisation state from `adjtimex`, read-only (modes = 0); the
/// NodeClockNotSynchronising and NodeClockSkewDetected rules use these.
fn timex() -> Vec<Family> {
    // SAFETY: zeroed timex with modes 0 only reads the kernel's state.
    let mut t: libc::timex = unsafe { std::mem::zeroed() };
    let state = unsafe { libc::adjtimex(&mut t) };
    if state < 0 {
        return Vec::new();
    }
    let nano = t.status & libc::STA_NANO != 0;
    let offset = if nano {
        t.offset as f64 / 1e9
    } else {
        t.offset as f64 / 1e6
    };
    let synced = state != libc::TIME_ERROR && t.status & libc::STA_UNSYNC == 0;
    vec![
        Family::single(
            "node_timex_offset_seconds",
            "Time offset in between local system and reference clock.",
            MetricKind::Gauge,
            offset,
        ),
        Family::single(
            "node_timex_maxerror_seconds",
            "Maximum error in seconds.",
            MetricKind::Gauge,
            t.maxerror as f64 / 1e6,
        ),
        Family::single(
            "node_timex_sync_status",
            "Is clock synchronized to a reliable server (1 = yes, 0 = no).",
            MetricKind::Gauge,
            if synced { 1.0 } else { 0.0 },
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_this_host() {
        let mut s = HostSampler::new(HostConfig::default(), Paths::default()).unwrap();
        let out = s.sample(SystemTime::now()).unwrap();
        assert_eq!(out.partial_failures, 0);
        let names: Vec<&str> = out
            .families
            .iter()
            .filter(|f| !f.samples.is_empty())
            .map(|f| f.name.as_str())
            .collect();
        for n in [
            "node_cpu_seconds_total",
            "node_memory_MemTotal_bytes",
            "node_memory_SwapTotal_bytes",
            "node_load1",
            "node_boot_time_seconds",
            "node_filesystem_size_bytes",
            "node_network_receive_bytes_total",
            "node_uname_info",
            "node_time_seconds",
        ] {
            assert!(names.contains(&n), "{n} missing");
        }
        // The root filesystem is reported, pseudo filesystems are not.
        let fs = out
            .families
            .iter()
            .find(|f| f.name == "node_filesystem_size_bytes")
            .unwrap();
        assert!(fs.samples.iter().all(|s| !matches!(
            s.labels.get("fstype"),
            Some("proc" | "sysfs" | "cgroup" | "tmpfs_never")
        )));
        // Names are unique across the sampler's families.
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len());
    }

    #[test]
    fn missing_proc_is_reported_as_partial_failure_not_panic() {
        let paths = Paths {
            proc: "/nonexistent-proc".into(),
            ..Paths::default()
        };
        let mut s = HostSampler::new(HostConfig::default(), paths).unwrap();
        let out = s.sample(SystemTime::now()).unwrap();
        assert_eq!(out.partial_failures, 3);
    }
}
