//! Reading one container's cgroup, v1 or v2, into a [`Reading`].
//!
//! Files are opened once per container and re-read with `pread`; see
//! [`crate::procfs::KeptFile`].

use std::path::{Path, PathBuf};

use crate::procfs::{KeptFile, ReadBuf, flat_keyed, for_each_keyed, open_optional};

/// How the host mounts cgroups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Unified hierarchy: one tree, all controllers.
    V2 { root: PathBuf },
    /// One tree per controller (possibly alongside an empty unified tree,
    /// the "hybrid" layout).
    V1 { root: PathBuf },
}

impl Layout {
    pub fn detect(root: &Path) -> Layout {
        if root.join("cgroup.controllers").exists() {
            Layout::V2 {
                root: root.to_path_buf(),
            }
        } else {
            Layout::V1 {
                root: root.to_path_buf(),
            }
        }
    }

    pub fn version(&self) -> u8 {
        match self {
            Layout::V2 { .. } => 2,
            Layout::V1 { .. } => 1,
        }
    }

    /// The directory of a cgroup (`/docker/<id>`) under one controller.
    pub fn dir(&self, controller: &str, cgroup: &str) -> PathBuf {
        let rel = cgroup.trim_start_matches('/');
        match self {
            Layout::V2 { root } => root.join(rel),
            Layout::V1 { root } => root.join(controller).join(rel),
        }
    }

    /// The tree that is scanned for container cgroups.
    pub fn scan_root(&self) -> PathBuf {
        match self {
            Layout::V2 { root } => root.clone(),
            Layout::V1 { root } => root.join("memory"),
        }
    }

    /// Picks this layout's line out of `/proc/<pid>/cgroup`.
    pub fn path_from_proc_cgroup(&self, text: &str) -> Option<String> {
        text.lines().find_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let wanted = match self {
                Layout::V2 { .. } => controllers.is_empty(),
                Layout::V1 { .. } => controllers.split(',').any(|c| c == "memory"),
            };
            wanted.then(|| path.to_string())
        })
    }
}

/// What one read of a container's cgroup gives. Counters are in seconds
/// and bytes; `None` where the kernel did not offer the figure.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reading {
    pub cpu_usage_seconds: Option<f64>,
    pub cpu_user_seconds: Option<f64>,
    pub cpu_system_seconds: Option<f64>,
    pub cfs_periods: Option<f64>,
    pub cfs_throttled_periods: Option<f64>,
    pub cfs_throttled_seconds: Option<f64>,
    pub cpu_quota: Option<f64>,
    pub cpu_period: Option<f64>,
    pub cpu_shares: Option<f64>,
    pub memory_usage: Option<f64>,
    pub memory_working_set: Option<f64>,
    pub memory_rss: Option<f64>,
    pub memory_cache: Option<f64>,
    pub memory_mapped_file: Option<f64>,
    pub memory_swap: Option<f64>,
    pub memory_failcnt: Option<f64>,
    /// 0 when unlimited.
    pub memory_limit: Option<f64>,
    pub oom_kills: Option<f64>,
    /// (major, minor, read bytes, written bytes)
    pub io: Vec<(u32, u32, f64, f64)>,
}

/// A v1 limit at or above this is "no limit" (the kernel reports
/// PAGE_COUNTER_MAX rounded to pages, 9223372036854771712 on x86_64).
const V1_UNLIMITED: u64 = 1 << 62;

pub struct V1Files {
    cpuacct_usage: Option<KeptFile>,
    cpuacct_stat: Option<KeptFile>,
    cpu_stat: Option<KeptFile>,
    cfs_quota: Option<KeptFile>,
    cfs_period: Option<KeptFile>,
    cpu_shares: Option<KeptFile>,
    mem_usage: Option<KeptFile>,
    mem_limit: Option<KeptFile>,
    mem_stat: Option<KeptFile>,
    mem_failcnt: Option<KeptFile>,
    mem_oom: Option<KeptFile>,
    blkio_bytes: Option<KeptFile>,
}

pub struct V2Files {
    cpu_stat: Option<KeptFile>,
    cpu_max: Option<KeptFile>,
    cpu_weight: Option<KeptFile>,
    mem_current: Option<KeptFile>,
    mem_max: Option<KeptFile>,
    mem_stat: Option<KeptFile>,
    mem_events: Option<KeptFile>,
    mem_swap: Option<KeptFile>,
    io_stat: Option<KeptFile>,
}

pub enum CgroupFiles {
    V1(Box<V1Files>),
    V2(Box<V2Files>),
}

impl CgroupFiles {
    /// Opens a container's files. Fails only when the cgroup is gone (its
    /// memory or cpu accounting cannot be opened).
    pub fn open(layout: &Layout, cgroup: &str) -> std::io::Result<CgroupFiles> {
        match layout {
            Layout::V1 { .. } => {
                let f = |ctrl: &str, name: &str| open_optional(layout.dir(ctrl, cgroup).join(name));
                let files = V1Files {
                    cpuacct_usage: f("cpuacct", "cpuacct.usage")?,
                    cpuacct_stat: f("cpuacct", "cpuacct.stat")?,
                    cpu_stat: f("cpu", "cpu.stat")?,
                    cfs_quota: f("cpu", "cpu.cfs_quota_us")?,
                    cfs_period: f("cpu", "cpu.cfs_period_us")?,
                    cpu_shares: f("cpu", "cpu.shares")?,
                    mem_usage: f("memory", "memory.usage_in_bytes")?,
                    mem_limit: f("memory", "memory.limit_in_bytes")?,
                    mem_stat: f("memory", "memory.stat")?,
                    mem_failcnt: f("memory", "memory.failcnt")?,
                    mem_oom: f("memory", "memory.oom_control")?,
                    blkio_bytes: f("blkio", "blkio.throttle.io_service_bytes")?,
                };
                if files.mem_usage.is_none() && files.cpuacct_usage.is_none() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "cgroup has no memory or cpuacct files",
                    ));
                }
                Ok(CgroupFiles::V1(Box::new(files)))
            }
            Layout::V2 { .. } => {
                let dir = layout.dir("", cgroup);
                let f = |name: &str| open_optional(dir.join(name));
                let files = V2Files {
                    cpu_stat: f("cpu.stat")?,
                    cpu_max: f("cpu.max")?,
                    cpu_weight: f("cpu.weight")?,
                    mem_current: f("memory.current")?,
                    mem_max: f("memory.max")?,
                    mem_stat: f("memory.stat")?,
                    mem_events: f("memory.events")?,
                    mem_swap: f("memory.swap.current")?,
                    io_stat: f("io.stat")?,
                };
                if files.cpu_stat.is_none() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "cgroup has no cpu.stat",
                    ));
                }
                Ok(CgroupFiles::V2(Box::new(files)))
            }
        }
    }

    /// Reads every file; an error means the cgroup went away mid-read.
    pub fn read(&self, buf: &mut ReadBuf, ticks: f64) -> std::io::Result<Reading> {
        let mut r = self.read_usage(buf, ticks)?;
        self.read_spec(buf, &mut r)?;
        Ok(r)
    }

    /// Reads the usage figures, leaving the spec (limits, quota, shares)
    /// empty: those change only on `docker update` and are read less often.
    pub fn read_usage(&self, buf: &mut ReadBuf, ticks: f64) -> std::io::Result<Reading> {
        match self {
            CgroupFiles::V1(f) => read_v1(f, buf, ticks),
            CgroupFiles::V2(f) => read_v2(f, buf),
        }
    }

    /// Fills the spec fields of `r`.
    pub fn read_spec(&self, buf: &mut ReadBuf, r: &mut Reading) -> std::io::Result<()> {
        match self {
            CgroupFiles::V1(f) => read_v1_spec(f, buf, r),
            CgroupFiles::V2(f) => read_v2_spec(f, buf, r),
        }
    }
}

fn num(f: &Option<KeptFile>, buf: &mut ReadBuf) -> std::io::Result<Option<u64>> {
    match f {
        Some(f) => f.read_u64(buf).map(Some),
        None => Ok(None),
    }
}

fn text<'b>(f: &Option<KeptFile>, buf: &'b mut ReadBuf) -> std::io::Result<Option<&'b str>> {
    match f {
        Some(f) => f.read_str(buf).map(Some),
        None => Ok(None),
    }
}

fn read_v1(f: &V1Files, buf: &mut ReadBuf, ticks: f64) -> std::io::Result<Reading> {
    let mut r = Reading {
        cpu_usage_seconds: num(&f.cpuacct_usage, buf)?.map(|ns| ns as f64 / 1e9),
        ..Reading::default()
    };
    if let Some(t) = text(&f.cpuacct_stat, buf)? {
        r.cpu_user_seconds = flat_keyed(t, "user").map(|v| v as f64 / ticks);
        r.cpu_system_seconds = flat_keyed(t, "system").map(|v| v as f64 / ticks);
    }
    if let Some(t) = text(&f.cpu_stat, buf)? {
        r.cfs_periods = flat_keyed(t, "nr_periods").map(|v| v as f64);
        r.cfs_throttled_periods = flat_keyed(t, "nr_throttled").map(|v| v as f64);
        r.cfs_throttled_seconds = flat_keyed(t, "throttled_time").map(|v| v as f64 / 1e9);
    }
    let usage = num(&f.mem_usage, buf)?;
    r.memory_usage = usage.map(|v| v as f64);
    if let Some(t) = text(&f.mem_stat, buf)? {
        let mut inactive_file = None;
        for_each_keyed(t, |k, v| match k {
            "total_inactive_file" => inactive_file = Some(v),
            "total_rss" => r.memory_rss = Some(v as f64),
            "total_cache" => r.memory_cache = Some(v as f64),
            "total_mapped_file" => r.memory_mapped_file = Some(v as f64),
            "total_swap" => r.memory_swap = Some(v as f64),
            _ => {}
        });
        if let Some(u) = usage {
            r.memory_working_set = Some(u.saturating_sub(inactive_file.unwrap_or(0)) as f64);
        }
    }
    r.memory_failcnt = num(&f.mem_failcnt, buf)?.map(|v| v as f64);
    if let Some(t) = text(&f.mem_oom, buf)? {
        // `oom_kill` appeared in kernel 4.13; older kernels have no count.
        r.oom_kills = flat_keyed(t, "oom_kill").map(|v| v as f64);
    }
    if let Some(t) = text(&f.blkio_bytes, buf)? {
        r.io = parse_blkio_v1(t);
    }
    Ok(r)
}

fn read_v1_spec(f: &V1Files, buf: &mut ReadBuf, r: &mut Reading) -> std::io::Result<()> {
    if let Some(t) = text(&f.cfs_quota, buf)? {
        // -1 means no quota.
        r.cpu_quota = t
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|q| *q > 0)
            .map(|q| q as f64);
    }
    r.cpu_period = num(&f.cfs_period, buf)?.map(|v| v as f64);
    r.cpu_shares = num(&f.cpu_shares, buf)?.map(|v| v as f64);
    r.memory_limit =
        num(&f.mem_limit, buf)?.map(|v| if v >= V1_UNLIMITED { 0.0 } else { v as f64 });
    Ok(())
}

fn read_v2_spec(f: &V2Files, buf: &mut ReadBuf, r: &mut Reading) -> std::io::Result<()> {
    if let Some(t) = text(&f.cpu_max, buf)? {
        let mut p = t.split_ascii_whitespace();
        r.cpu_quota = p.next().and_then(|q| q.parse::<f64>().ok());
        r.cpu_period = p.next().and_then(|q| q.parse::<f64>().ok());
    }
    // cgroup v2 weight (1..10000, default 100) to v1 shares (2..262144,
    // default 1024), the conversion runc uses in reverse.
    r.cpu_shares =
        num(&f.cpu_weight, buf)?.map(|w| (2.0 + ((w as f64 - 1.0) * 262_142.0) / 9_999.0).round());
    if let Some(t) = text(&f.mem_max, buf)? {
        r.memory_limit = Some(t.trim().parse::<f64>().unwrap_or(0.0));
    }
    Ok(())
}

fn read_v2(f: &V2Files, buf: &mut ReadBuf) -> std::io::Result<Reading> {
    let mut r = Reading::default();
    if let Some(t) = text(&f.cpu_stat, buf)? {
        for_each_keyed(t, |k, v| {
            let v = v as f64;
            match k {
                "usage_usec" => r.cpu_usage_seconds = Some(v / 1e6),
                "user_usec" => r.cpu_user_seconds = Some(v / 1e6),
                "system_usec" => r.cpu_system_seconds = Some(v / 1e6),
                "nr_periods" => r.cfs_periods = Some(v),
                "nr_throttled" => r.cfs_throttled_periods = Some(v),
                "throttled_usec" => r.cfs_throttled_seconds = Some(v / 1e6),
                _ => {}
            }
        });
    }
    let usage = num(&f.mem_current, buf)?;
    r.memory_usage = usage.map(|v| v as f64);
    if let Some(t) = text(&f.mem_stat, buf)? {
        let mut inactive_file = None;
        for_each_keyed(t, |k, v| match k {
            "inactive_file" => inactive_file = Some(v),
            "anon" => r.memory_rss = Some(v as f64),
            "file" => r.memory_cache = Some(v as f64),
            "file_mapped" => r.memory_mapped_file = Some(v as f64),
            _ => {}
        });
        if let Some(u) = usage {
            r.memory_working_set = Some(u.saturating_sub(inactive_file.unwrap_or(0)) as f64);
        }
    }
    r.memory_swap = num(&f.mem_swap, buf)?.map(|v| v as f64);
    if let Some(t) = text(&f.mem_events, buf)? {
        r.oom_kills = flat_keyed(t, "oom_kill").map(|v| v as f64);
    }
    if let Some(t) = text(&f.io_stat, buf)? {
        r.io = parse_io_stat_v2(t);
    }
    Ok(r)
}

fn parse_dev(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// `blkio.throttle.io_service_bytes`: `8:0 Read 123` lines per device.
pub fn parse_blkio_v1(text: &str) -> Vec<(u32, u32, f64, f64)> {
    let mut out: Vec<(u32, u32, f64, f64)> = Vec::new();
    for line in text.lines() {
        let mut p = line.split_ascii_whitespace();
        let (Some(dev), Some(op), Some(v)) = (p.next(), p.next(), p.next()) else {
            continue;
        };
        let (Some((maj, min)), Ok(v)) = (parse_dev(dev), v.parse::<f64>()) else {
            continue;
        };
        let slot = match out.iter_mut().position(|e| e.0 == maj && e.1 == min) {
            Some(i) => i,
            None => {
                out.push((maj, min, 0.0, 0.0));
                out.len() - 1
            }
        };
        match op {
            "Read" => out[slot].2 = v,
            "Write" => out[slot].3 = v,
            _ => {}
        }
    }
    out
}

/// `io.stat`: `8:0 rbytes=1 wbytes=2 rios=3 wios=4 ...` per device.
pub fn parse_io_stat_v2(text: &str) -> Vec<(u32, u32, f64, f64)> {
    text.lines()
        .filter_map(|line| {
            let mut p = line.split_ascii_whitespace();
            let (maj, min) = parse_dev(p.next()?)?;
            let (mut r, mut w) = (0.0, 0.0);
            for kv in p {
                if let Some(v) = kv.strip_prefix("rbytes=") {
                    r = v.parse().unwrap_or(0.0);
                } else if let Some(v) = kv.strip_prefix("wbytes=") {
                    w = v.parse().unwrap_or(0.0);
                }
            }
            Some((maj, min, r, w))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, content: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(name), content).unwrap();
    }

    #[test]
    fn v2_files_read_into_cadvisor_quantities() {
        let root = tempfile::tempdir().unwrap();
        write(root.path(), "cgroup.controllers", "cpu memory io");
        let layout = Layout::detect(root.path());
        assert_eq!(layout.version(), 2);
        let d = root.path().join("system.slice/docker-x.scope");
        write(
            &d,
            "cpu.stat",
            "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\nnr_periods 10\nnr_throttled 4\nthrottled_usec 300000\n",
        );
        write(&d, "cpu.max", "50000 100000\n");
        write(&d, "memory.current", "1000\n");
        write(&d, "memory.max", "max\n");
        write(
            &d,
            "memory.stat",
            "anon 600\nfile 400\nkernel 5\nfile_mapped 100\ninactive_file 300\n",
        );
        write(
            &d,
            "memory.events",
            "low 0\nhigh 0\nmax 3\noom 2\noom_kill 1\n",
        );
        write(
            &d,
            "io.stat",
            "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n",
        );
        let files = CgroupFiles::open(&layout, "/system.slice/docker-x.scope").unwrap();
        let r = files.read(&mut ReadBuf::new(), 100.0).unwrap();
        assert_eq!(r.cpu_usage_seconds, Some(2.5));
        assert_eq!(r.cpu_system_seconds, Some(0.5));
        assert_eq!(r.cfs_throttled_periods, Some(4.0));
        assert_eq!(r.cfs_throttled_seconds, Some(0.3));
        assert_eq!((r.cpu_quota, r.cpu_period), (Some(50000.0), Some(100000.0)));
        assert_eq!(r.memory_usage, Some(1000.0));
        assert_eq!(r.memory_working_set, Some(700.0));
        assert_eq!(r.memory_rss, Some(600.0));
        assert_eq!(r.memory_limit, Some(0.0));
        assert_eq!(r.oom_kills, Some(1.0));
        assert_eq!(r.io, vec![(8, 0, 4096.0, 8192.0)]);
        assert_eq!(r.memory_swap, None);
    }

    #[test]
    fn v1_files_read_into_cadvisor_quantities() {
        let root = tempfile::tempdir().unwrap();
        let cg = "/docker/abc";
        write(
            &root.path().join("cpuacct/docker/abc"),
            "cpuacct.usage",
            "1500000000\n",
        );
        write(
            &root.path().join("cpuacct/docker/abc"),
            "cpuacct.stat",
            "user 100\nsystem 50\n",
        );
        write(
            &root.path().join("cpu/docker/abc"),
            "cpu.stat",
            "nr_periods 5\nnr_throttled 2\nthrottled_time 2000000000\n",
        );
        write(
            &root.path().join("cpu/docker/abc"),
            "cpu.cfs_quota_us",
            "-1\n",
        );
        write(
            &root.path().join("memory/docker/abc"),
            "memory.usage_in_bytes",
            "5000\n",
        );
        write(
            &root.path().join("memory/docker/abc"),
            "memory.limit_in_bytes",
            "9223372036854771712\n",
        );
        write(
            &root.path().join("memory/docker/abc"),
            "memory.stat",
            "cache 1\nrss 2\ntotal_cache 1000\ntotal_rss 3000\ntotal_inactive_file 6000\n",
        );
        write(
            &root.path().join("memory/docker/abc"),
            "memory.oom_control",
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        );
        write(
            &root.path().join("blkio/docker/abc"),
            "blkio.throttle.io_service_bytes",
            "8:0 Read 10\n8:0 Write 20\n8:0 Sync 30\nTotal 30\n",
        );
        let layout = Layout::detect(root.path());
        assert_eq!(layout.version(), 1);
        let files = CgroupFiles::open(&layout, cg).unwrap();
        let r = files.read(&mut ReadBuf::new(), 100.0).unwrap();
        assert_eq!(r.cpu_usage_seconds, Some(1.5));
        assert_eq!(r.cpu_user_seconds, Some(1.0));
        assert_eq!(r.cfs_throttled_seconds, Some(2.0));
        assert_eq!(r.cpu_quota, None);
        assert_eq!(r.memory_limit, Some(0.0));
        assert_eq!(r.memory_rss, Some(3000.0));
        // Working set clamps at zero when inactive_file exceeds usage.
        assert_eq!(r.memory_working_set, Some(0.0));
        assert_eq!(r.oom_kills, Some(2.0));
        assert_eq!(r.io, vec![(8, 0, 10.0, 20.0)]);
    }

    #[test]
    fn a_missing_cgroup_fails_to_open() {
        let root = tempfile::tempdir().unwrap();
        let layout = Layout::V1 {
            root: root.path().to_path_buf(),
        };
        assert!(CgroupFiles::open(&layout, "/docker/gone").is_err());
    }

    #[test]
    fn proc_cgroup_lines_per_layout() {
        let text =
            "12:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/system.slice/docker-abc.scope\n";
        assert_eq!(
            Layout::V1 { root: "/x".into() }
                .path_from_proc_cgroup(text)
                .as_deref(),
            Some("/docker/abc")
        );
        assert_eq!(
            Layout::V2 { root: "/x".into() }
                .path_from_proc_cgroup(text)
                .as_deref(),
            Some("/system.slice/docker-abc.scope")
        );
    }
}
